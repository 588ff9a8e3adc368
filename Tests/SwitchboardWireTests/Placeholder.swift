import Testing
@testable import SwitchboardWire
@Test func placeholderWire() {}
