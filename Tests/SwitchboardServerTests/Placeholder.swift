import Testing
@testable import SwitchboardServer
@Test func placeholderServer() {}
