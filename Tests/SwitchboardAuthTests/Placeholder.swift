import Testing
@testable import SwitchboardAuth
@Test func placeholderAuth() {}
