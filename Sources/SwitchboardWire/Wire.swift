public enum SwitchboardWire {}
