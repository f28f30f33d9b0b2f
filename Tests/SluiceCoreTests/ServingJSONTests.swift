// The strict JSON parser behind SERVING_READINESS_PROBE, OBSERVABILITY_CONFIG and the simulator's input,
// and the Foundation-free %f formatting the KPA's error texts use.
import Testing
@testable import SluiceCore

@Suite("Strict JSON parser", .timeLimit(.minutes(1)))
struct ServingJSONParserTests {
    @Test("objects, lists, strings, numbers, booleans and null are read as written")
    func values() throws {
        let node = try JSONParser.parse(#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "d"}, "e": ""} "#)
        guard case .object(let fields) = node, case .array(let list)? = fields["a"] else {
            Issue.record("expected an object with a list, got \(node)")
            return
        }
        #expect(list.count == 5)
        if case .number(let one) = list[0] { #expect(one.integer == 1 && one.double == 1) } else { Issue.record("\(list[0])") }
        if case .number(let big) = list[1] { #expect(big.integer == nil && big.double == -2500) } else { Issue.record("\(list[1])") }
        #expect(list[2] == .bool(true) && list[3] == .bool(false) && list[4] == .null)
        #expect(fields["b"] == .object(["c": .string("d")]))
        #expect(fields["e"] == .string(""))
    }

    @Test("escapes decode, including UTF-16 surrogate pairs")
    func escapes() throws {
        let node = try JSONParser.parse(#"["\"\\\/\b\f\n\r\t", "\u00e9\u4e2d", "\ud83d\ude00", "é"]"#)
        #expect(node == .array([.string("\"\\/\u{8}\u{C}\n\r\t"), .string("é中"), .string("😀"), .string("é")]))
    }

    @Test("integers beyond 2^53 are kept exactly")
    func exactIntegers() throws {
        guard case .number(let number) = try JSONParser.parse("9007199254740993") else {
            Issue.record("not a number")
            return
        }
        #expect(number.integer == 9_007_199_254_740_993)
    }

    @Test("input that is not strict JSON is refused with the problem and its line and column", arguments: [
        ("", "expected a JSON value, found end of input at line 1, column 1"),
        ("{\"a\": 1,}", "expected a string key, found '}' at line 1, column 9"),
        ("[1, 2,]", "expected a JSON value, found ']' at line 1, column 7"),
        ("{\"a\": 1 \"b\": 2}", "expected ',' or '}' in an object, found '\"' at line 1, column 9"),
        ("{\n  \"a\": 01\n}", "leading zero in a number at line 2, column 8"),
        ("{\"a\": 1, \"a\": 2}", "duplicate key \"a\" at line 1, column 10"),
        ("{'a': 1}", "expected a string key, found ''' at line 1, column 2"),
        ("[1] x", "unexpected 'x' after the JSON value at line 1, column 5"),
        ("[tru]", "invalid literal (expected true) at line 1, column 2"),
        ("[\"a\nb\"]", "control character byte 0x0A in a string (escape it) at line 1, column 4"),
        ("[\"\\x\"]", "invalid escape \\'x' in a string at line 1, column 4"),
        ("[\"\\ud800\"]", "unpaired UTF-16 surrogate in \\u escape at line 1, column 3"),
        ("[1.]", "expected a digit after '.', found ']' at line 1, column 4"),
        ("[1e999]", "number 1e999 is out of range at line 1, column 2"),
        ("[\"abc", "unterminated string at line 1, column 2"),
        ("// comment\n{}", "expected a JSON value, found '/' at line 1, column 1"),
    ])
    func refused(json: String, message: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(json) }
        do {
            _ = try JSONParser.parse(json)
        } catch {
            #expect(error.description == message)
        }
    }

    @Test("bytes that are not UTF-8 inside a string are refused")
    func invalidUTF8() {
        #expect(throws: JSONSyntaxError(message: "string is not valid UTF-8", line: 1, column: 2)) {
            try JSONParser.parse([UInt8(ascii: "["), UInt8(ascii: "\""), 0xC3, 0x28, UInt8(ascii: "\""), UInt8(ascii: "]")])
        }
    }

    @Test("nesting deeper than the limit is refused instead of exhausting the stack")
    func depthLimit() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(deep) }
        let allowed = JSONParser.maximumDepth
        _ = try JSONParser.parse(String(repeating: "[", count: allowed) + String(repeating: "]", count: allowed))
    }

    @Test("typed field reads name the JSON path of a field of the wrong type")
    func fieldErrors() throws {
        let reader = try JSONObjectReader(try JSONParser.parse(#"{"a": {"n": 1.5, "s": 3, "b": null}}"#), path: "")
        let inner = try #require(try reader.object("a"))
        #expect(try inner.bool("b") == nil)
        #expect(try inner.double("n") == 1.5)
        #expect(throws: JSONFieldError(path: ".a.n", message: "expected an integer, got 1.5")) { try inner.int("n") }
        #expect(throws: JSONFieldError(path: ".a.s", message: "expected a string, got a number")) { try inner.string("s") }
    }
}

@Suite("Go's %f without Foundation", .timeLimit(.minutes(1)))
struct ServingFixedFormatTests {
    @Test("six decimals, exactly rounded like C's and Go's %f", arguments: [
        (0.0, "0.000000"), (1.0, "1.000000"), (-2.5, "-2.500000"), (0.1, "0.100000"),
        (1e-7, "0.000000"), (0.0000015, "0.000002"), (123456789.123456789, "123456789.123457"),
        (1e20, "100000000000000000000.000000"),
    ])
    func fixed(value: Double, text: String) {
        #expect(GoFormat.f(value) == text)
    }

    @Test("magnitudes longer than the first buffer are formatted whole")
    func huge() {
        let text = GoFormat.f(1e300)
        #expect(text.hasPrefix("100000000000000005250476025520442024870446858110815915491585"))
        #expect(text.hasSuffix(".000000"))
        #expect(text.count == 301 + 7)
    }
}
