// A small strict JSON parser (RFC 8259) for the startup-time inputs Knative hands over as JSON:
// SERVING_READINESS_PROBE, OBSERVABILITY_CONFIG, SERVING_LOGGING_CONFIG and the KPA simulator's scenario.
// Serving layer. It replaces Foundation's JSONDecoder so no binary loads Foundation (and ICU) for them.

/// A parsed JSON value. Numbers keep their literal, so integers are read exactly.
public indirect enum JSONNode: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONNode])
    /// Keys are unique (a duplicate key is a parse error, as the inputs are machine-written).
    case object([String: JSONNode])

    /// "a string", "an object", … for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }
}

/// A JSON number: its value as a Double and, when the literal is an integer that fits, exactly.
public struct JSONNumber: Sendable, Equatable {
    public let literal: String
    public let double: Double
    /// Set when the literal has no fraction or exponent and fits in Int64.
    public let integer: Int64?
}

/// Why a document is not JSON: the problem and where (1-based line and column, in bytes).
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var line: Int
    public var column: Int

    public var description: String { "\(message) at line \(line), column \(column)" }
}

public enum JSONParser {
    /// Nesting deeper than this is refused (the parser recurses once per level).
    public static let maximumDepth = 256

    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONNode {
        try parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONNode {
        var scanner = Scanner(bytes: bytes)
        scanner.skipWhitespace()
        let value = try scanner.value(depth: 0)
        scanner.skipWhitespace()
        if scanner.position < bytes.count {
            throw scanner.error("unexpected \(scanner.describeCurrent()) after the JSON value")
        }
        return value
    }

    private struct Scanner {
        let bytes: [UInt8]
        var position = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
            let end = min(offset ?? position, bytes.count)
            var line = 1
            var lineStart = 0
            for index in 0 ..< end where bytes[index] == UInt8(ascii: "\n") {
                line += 1
                lineStart = index + 1
            }
            return JSONSyntaxError(message: message, line: line, column: end - lineStart + 1)
        }

        func describeCurrent() -> String {
            guard position < bytes.count else { return "end of input" }
            let byte = bytes[position]
            if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
            let hex = String(byte, radix: 16, uppercase: true)
            return "byte 0x" + (hex.count < 2 ? "0" + hex : hex)
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONNode {
            guard position < bytes.count else { throw error("expected a JSON value, found end of input") }
            switch bytes[position] {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"): return .number(try number())
            default: throw error("expected a JSON value, found \(describeCurrent())")
            }
        }

        mutating func literal(_ word: String) throws(JSONSyntaxError) {
            let start = position
            for byte in word.utf8 {
                guard position < bytes.count, bytes[position] == byte else {
                    throw error("invalid literal (expected \(word))", at: start)
                }
                position += 1
            }
        }

        mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONNode {
            if depth > JSONParser.maximumDepth { throw error("nested deeper than \(JSONParser.maximumDepth) levels") }
            position += 1
            var fields: [String: JSONNode] = [:]
            skipWhitespace()
            if position < bytes.count && bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(fields)
            }
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                    throw error("expected a string key, found \(describeCurrent())")
                }
                let keyStart = position
                let key = try string()
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
                    throw error("expected ':' after a key, found \(describeCurrent())")
                }
                position += 1
                skipWhitespace()
                let member = try value(depth: depth)
                if fields.updateValue(member, forKey: key) != nil {
                    throw error("duplicate key \"\(key)\"", at: keyStart)
                }
                skipWhitespace()
                guard position < bytes.count else { throw error("unterminated object: expected ',' or '}'") }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                if bytes[position] == UInt8(ascii: "}") {
                    position += 1
                    return .object(fields)
                }
                throw error("expected ',' or '}' in an object, found \(describeCurrent())")
            }
        }

        mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONNode {
            if depth > JSONParser.maximumDepth { throw error("nested deeper than \(JSONParser.maximumDepth) levels") }
            position += 1
            var elements: [JSONNode] = []
            skipWhitespace()
            if position < bytes.count && bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try value(depth: depth))
                skipWhitespace()
                guard position < bytes.count else { throw error("unterminated list: expected ',' or ']'") }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                if bytes[position] == UInt8(ascii: "]") {
                    position += 1
                    return .array(elements)
                }
                throw error("expected ',' or ']' in a list, found \(describeCurrent())")
            }
        }

        mutating func string() throws(JSONSyntaxError) -> String {
            let start = position
            position += 1
            var out: [UInt8] = []
            while true {
                guard position < bytes.count else { throw error("unterminated string", at: start) }
                let byte = bytes[position]
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    guard let text = String(validating: out, as: UTF8.self) else {
                        throw error("string is not valid UTF-8", at: start)
                    }
                    return text
                case UInt8(ascii: "\\"):
                    position += 1
                    try escape(into: &out)
                case 0x00 ..< 0x20:
                    throw error("control character \(describeCurrent()) in a string (escape it)")
                default:
                    out.append(byte)
                    position += 1
                }
            }
        }

        /// One escape after the backslash; appends its UTF-8 bytes.
        mutating func escape(into out: inout [UInt8]) throws(JSONSyntaxError) {
            guard position < bytes.count else { throw error("unterminated escape in a string") }
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(byte)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                let escapeStart = position - 2
                var code = try hex4()
                if (0xD800 ..< 0xDC00).contains(code) {
                    // A high surrogate must be followed by an escaped low one (UTF-16 pair).
                    guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                          bytes[position + 1] == UInt8(ascii: "u")
                    else { throw error("unpaired UTF-16 surrogate in \\u escape", at: escapeStart) }
                    position += 2
                    let low = try hex4()
                    guard (0xDC00 ..< 0xE000).contains(low) else {
                        throw error("unpaired UTF-16 surrogate in \\u escape", at: escapeStart)
                    }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00 ..< 0xE000).contains(code) {
                    throw error("unpaired UTF-16 surrogate in \\u escape", at: escapeStart)
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape", at: escapeStart) }
                out.append(contentsOf: String(Character(scalar)).utf8)
            default:
                position -= 1
                throw error("invalid escape \\\(describeCurrent()) in a string")
            }
        }

        mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
            var code: UInt32 = 0
            for _ in 0 ..< 4 {
                guard position < bytes.count else { throw error("\\u escape needs four hex digits") }
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0") ... UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a") ... UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A") ... UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("\\u escape needs four hex digits, found \(describeCurrent())")
                }
                code = code << 4 | UInt32(digit)
                position += 1
            }
            return code
        }

        mutating func digits() -> Int {
            let start = position
            while position < bytes.count, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[position]) {
                position += 1
            }
            return position - start
        }

        mutating func number() throws(JSONSyntaxError) -> JSONNumber {
            let start = position
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard position < bytes.count, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[position]) else {
                throw error("expected a digit in a number, found \(describeCurrent())")
            }
            if bytes[position] == UInt8(ascii: "0") {
                position += 1
                if position < bytes.count, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[position]) {
                    throw error("leading zero in a number", at: start)
                }
            } else {
                _ = digits()
            }
            var isInteger = true
            if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
                isInteger = false
                position += 1
                guard digits() > 0 else { throw error("expected a digit after '.', found \(describeCurrent())") }
            }
            if position < bytes.count && (bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E")) {
                isInteger = false
                position += 1
                if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")) {
                    position += 1
                }
                guard digits() > 0 else { throw error("expected a digit in an exponent, found \(describeCurrent())") }
            }
            // The scanned bytes are ASCII digits, signs, '.' and 'e', so they decode as they are.
            let literal = String(decoding: bytes[start ..< position], as: UTF8.self)
            guard let double = Double(literal), double.isFinite else {
                throw error("number \(literal) is out of range", at: start)
            }
            return JSONNumber(literal: literal, double: double, integer: isInteger ? Int64(literal) : nil)
        }
    }
}
