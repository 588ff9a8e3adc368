import Testing
@testable import SwitchboardCore
@Test func placeholderCore() {}
