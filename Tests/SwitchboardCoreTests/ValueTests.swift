import Testing
@testable import SwitchboardCore

@Suite struct ValueTests {
    @Test func objectsKeepOrderAndReplaceInPlace() {
        var object = Value.Object([("b", 1), ("a", 2)])
        object["b"] = "x"
        object["c"] = true
        #expect(object.members.map(\.key) == ["b", "a", "c"])
        object["a"] = nil
        #expect(object.members.map(\.key) == ["b", "c"])
        #expect(Value.object(object)["b"] == "x")
    }

    @Test func booleansAcceptSupabaseStrings() {
        #expect(Value.string("true").boolValue == true)
        #expect(Value.string("false").boolValue == false)
        #expect(Value.string("yes").boolValue == nil)
        #expect(Value.bool(true).boolValue == true)
    }

    @Test func numbersKeepTheirText() {
        #expect(Value.number("1.50").doubleValue == 1.5)
        #expect(Value.number("9007199254740993").int64Value == 9_007_199_254_740_993)
        #expect(Value.number("1e3").int64Value == 1000)
        #expect(Value.number("1.5").int64Value == nil)
    }
}
