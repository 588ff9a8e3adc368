public enum SwitchboardBench {}
