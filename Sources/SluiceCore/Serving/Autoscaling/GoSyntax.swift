// Go's textual forms for numbers, booleans and durations (Serving layer, KPA configuration): Knative
// parses its ConfigMap and annotations with Go's strconv/time rules and prints Go-formatted values in
// its error texts, so a drop-in autoscaler must accept exactly the same strings and say the same thing.

/// A duration with Go's `time.Duration` semantics: signed nanoseconds, Go's parsing syntax
/// (`60s`, `1m30s`, `1.5h`, `0`) and Go's printing (`1m0s`, `500ms`).
public struct GoDuration: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static func seconds(_ s: Int64) -> GoDuration { GoDuration(nanoseconds: s * 1_000_000_000) }
    public static func minutes(_ m: Int64) -> GoDuration { .seconds(m * 60) }
    public static func hours(_ h: Int64) -> GoDuration { .seconds(h * 3600) }
    public static let zero = GoDuration(nanoseconds: 0)

    public static func < (lhs: GoDuration, rhs: GoDuration) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
    public static func + (lhs: GoDuration, rhs: GoDuration) -> GoDuration {
        GoDuration(nanoseconds: lhs.nanoseconds &+ rhs.nanoseconds)
    }
    public static func - (lhs: GoDuration, rhs: GoDuration) -> GoDuration {
        GoDuration(nanoseconds: lhs.nanoseconds &- rhs.nanoseconds)
    }

    /// Seconds as a floating-point number.
    public var secondsValue: Double { Double(nanoseconds) / 1e9 }
    /// Whole seconds, truncated toward zero.
    public var wholeSeconds: Int64 { nanoseconds / 1_000_000_000 }

    /// Go's `Duration.Round(time.Second)`: halves round away from zero.
    public var roundedToSecond: GoDuration {
        let unit: Int64 = 1_000_000_000
        var r = nanoseconds % unit
        if nanoseconds < 0 {
            r = -r
            if r + r < unit { return GoDuration(nanoseconds: nanoseconds + r) }
            return GoDuration(nanoseconds: nanoseconds - unit + r)
        }
        if r + r < unit { return GoDuration(nanoseconds: nanoseconds - r) }
        return GoDuration(nanoseconds: nanoseconds + unit - r)
    }

    /// Go's `Duration.Truncate(time.Second)`: toward zero.
    public var truncatedToSecond: GoDuration {
        GoDuration(nanoseconds: nanoseconds - nanoseconds % 1_000_000_000)
    }

    /// Go's `Duration.String()`.
    public var description: String {
        if nanoseconds == 0 { return "0s" }
        let negative = nanoseconds < 0
        let u = nanoseconds.magnitude
        var out: String
        if u < 1_000_000_000 {
            if u < 1_000 {
                out = "\(u)ns"
            } else if u < 1_000_000 {
                out = Self.fraction(u, digits: 3) + "\u{00B5}s"
            } else {
                out = Self.fraction(u, digits: 6) + "ms"
            }
        } else {
            let seconds = u / 1_000_000_000
            let frac = Self.fractionDigits(u % 1_000_000_000, digits: 9)
            out = "\(seconds % 60)\(frac)s"
            let minutes = seconds / 60
            if minutes > 0 {
                out = "\(minutes % 60)m" + out
                let hours = minutes / 60
                if hours > 0 { out = "\(hours)h" + out }
            }
        }
        return negative ? "-" + out : out
    }

    private static func fraction(_ v: UInt64, digits: Int) -> String {
        var p: UInt64 = 1
        for _ in 0..<digits { p *= 10 }
        return "\(v / p)" + fractionDigits(v % p, digits: digits)
    }

    /// ".ddd" without trailing zeros, or "" when the fraction is zero.
    private static func fractionDigits(_ f: UInt64, digits: Int) -> String {
        if f == 0 { return "" }
        var s = String(f)
        while s.count < digits { s = "0" + s }
        while s.hasSuffix("0") { s.removeLast() }
        return "." + s
    }

    /// Go's `time.ParseDuration`, with its error texts.
    public static func parse(_ original: String) throws(GoSyntaxError) -> GoDuration {
        var s = Array(original.utf8)[...]
        var negative = false
        if let c = s.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
            negative = c == UInt8(ascii: "-")
            s = s.dropFirst()
        }
        if s.elementsEqual("0".utf8) { return .zero }
        let invalid = GoSyntaxError("time: invalid duration " + goQuote(original))
        if s.isEmpty { throw invalid }
        var total: UInt64 = 0
        let limit: UInt64 = 1 << 63
        while !s.isEmpty {
            guard let first = s.first, first == UInt8(ascii: ".") || isDigit(first) else { throw invalid }
            // Integer part, failing on overflow as Go's leadingInt does.
            var v: UInt64 = 0
            var sawInteger = false
            while let c = s.first, isDigit(c) {
                if v > (limit - 1) / 10 { throw invalid }
                v = v * 10 + UInt64(c - 48)
                if v > limit - 1 { throw invalid }
                s = s.dropFirst()
                sawInteger = true
            }
            var f: UInt64 = 0
            var scale = 1.0
            var sawFraction = false
            if s.first == UInt8(ascii: ".") {
                s = s.dropFirst()
                var overflow = false
                while let c = s.first, isDigit(c) {
                    sawFraction = true
                    s = s.dropFirst()
                    if overflow { continue }
                    if f > (limit - 1) / 10 { overflow = true; continue }
                    let y = f * 10 + UInt64(c - 48)
                    if y > limit { overflow = true; continue }
                    f = y
                    scale *= 10
                }
            }
            if !sawInteger && !sawFraction { throw invalid }
            var unitEnd = s.startIndex
            while unitEnd < s.endIndex, s[unitEnd] != UInt8(ascii: "."), !isDigit(s[unitEnd]) {
                unitEnd += 1
            }
            if unitEnd == s.startIndex {
                throw GoSyntaxError("time: missing unit in duration " + goQuote(original))
            }
            let unitText = String(decoding: s[s.startIndex..<unitEnd], as: UTF8.self)
            s = s[unitEnd...]
            guard let unit = unitNanoseconds[unitText] else {
                throw GoSyntaxError("time: unknown unit " + goQuote(unitText) + " in duration " + goQuote(original))
            }
            if v > limit / unit { throw invalid }
            v *= unit
            if f > 0 {
                v += UInt64(Double(f) * (Double(unit) / scale))
                if v > limit { throw invalid }
            }
            total += v
            if total > limit { throw invalid }
        }
        if negative { return GoDuration(nanoseconds: total == limit ? Int64.min : -Int64(total)) }
        if total > limit - 1 { throw invalid }
        return GoDuration(nanoseconds: Int64(total))
    }

    private static let unitNanoseconds: [String: UInt64] = [
        "ns": 1, "us": 1_000, "\u{00B5}s": 1_000, "\u{03BC}s": 1_000, "ms": 1_000_000,
        "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
    ]
}

/// A parse failure worded as Go's strconv/time packages word it.
public struct GoSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

@inline(__always) private func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }

/// Go's `strconv.Quote` for the characters configuration values contain.
public func goQuote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                let hex = String(scalar.value, radix: 16)
                out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// Go's strconv number and boolean parsers.
public enum GoParse {
    /// `strconv.ParseFloat(s, 64)`: decimal or hexadecimal literal, `inf`/`infinity`/`nan` in any case.
    public static func float(_ s: String) throws(GoSyntaxError) -> Double {
        let syntax = GoSyntaxError("strconv.ParseFloat: parsing \(goQuote(s)): invalid syntax")
        var body = Substring(s)
        var sign = 1.0
        if let c = body.first, c == "+" || c == "-" {
            sign = c == "-" ? -1 : 1
            body = body.dropFirst()
        }
        switch body.lowercased() {
        case "inf", "infinity": return sign * .infinity
        case "nan": return .nan
        default: break
        }
        guard isFloatLiteral(Array(body.utf8)), let value = Double(String(body)) else { throw syntax }
        if value.isInfinite {
            throw GoSyntaxError("strconv.ParseFloat: parsing \(goQuote(s)): value out of range")
        }
        return sign * value
    }

    /// `strconv.ParseInt(s, 10, bits)`.
    public static func int(_ s: String, bits: Int = 32) throws(GoSyntaxError) -> Int64 {
        let bytes = Array(s.utf8)
        var i = 0
        var negative = false
        if let c = bytes.first, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
            negative = c == UInt8(ascii: "-")
            i = 1
        }
        guard i < bytes.count else { throw GoSyntaxError("strconv.ParseInt: parsing \(goQuote(s)): invalid syntax") }
        let maxMagnitude: UInt64 = bits >= 64 ? 1 << 63 : 1 << UInt64(bits - 1)
        var value: UInt64 = 0
        var overflow = false
        while i < bytes.count {
            let c = bytes[i]
            guard isDigit(c) else { throw GoSyntaxError("strconv.ParseInt: parsing \(goQuote(s)): invalid syntax") }
            if !overflow {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(UInt64(c - 48))
                if o1 || o2 { overflow = true } else { value = a }
            }
            i += 1
        }
        if overflow || (!negative && value > maxMagnitude - 1) || (negative && value > maxMagnitude) {
            throw GoSyntaxError("strconv.ParseInt: parsing \(goQuote(s)): value out of range")
        }
        return negative ? (value == 1 << 63 ? Int64.min : -Int64(value)) : Int64(value)
    }

    /// `strconv.ParseBool`.
    public static func bool(_ s: String) throws(GoSyntaxError) -> Bool {
        switch s {
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default: throw GoSyntaxError("strconv.ParseBool: parsing \(goQuote(s)): invalid syntax")
        }
    }

    /// Go float literal grammar without a sign: decimal `1`, `1.5`, `.5`, `5.`, `1e3`, or
    /// hexadecimal `0x1.8p3` (a hexadecimal float needs its `p` exponent, as in Go).
    private static func isFloatLiteral(_ b: [UInt8]) -> Bool {
        var i = 0
        func digits(_ accept: (UInt8) -> Bool) -> Int {
            let start = i
            while i < b.count, accept(b[i]) { i += 1 }
            return i - start
        }
        let isHexDigit: (UInt8) -> Bool = { c in
            isDigit(c) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)
        }
        if b.count >= 2, b[0] == UInt8(ascii: "0"), b[1] == UInt8(ascii: "x") || b[1] == UInt8(ascii: "X") {
            i = 2
            var mantissa = digits(isHexDigit)
            if i < b.count, b[i] == UInt8(ascii: ".") { i += 1; mantissa += digits(isHexDigit) }
            guard mantissa > 0, i < b.count, b[i] == UInt8(ascii: "p") || b[i] == UInt8(ascii: "P") else { return false }
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            return digits(isDigit) > 0 && i == b.count
        }
        var mantissa = digits(isDigit)
        if i < b.count, b[i] == UInt8(ascii: ".") { i += 1; mantissa += digits(isDigit) }
        guard mantissa > 0 else { return false }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(isDigit) > 0 else { return false }
        }
        return i == b.count
    }
}

/// Go's fmt verbs for floats as Strings, used to reproduce Knative's error texts (the byte-appending
/// verbs for the request log live with `GoFormat` in RequestLog/).
extension GoFormat {
    /// `%v` (and `%g`) of a float64: the shortest round-trip digits, in exponent form when the
    /// decimal exponent is < -4 or >= 6 (Go's rule for shortest precision: 1e+06, 1.5e-05, 123456).
    public static func v(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-Inf" : "+Inf" }
        if x == 0 { return x.sign == .minus ? "-0" : "0" }
        let (negative, digits, pointPosition) = shortestDigits(x)
        let exponent = pointPosition - 1
        var out = negative ? "-" : ""
        if exponent < -4 || exponent >= 6 {
            out.append(digits[digits.startIndex])
            if digits.count > 1 { out += "." + String(digits.dropFirst()) }
            out += exponent < 0 ? "e-" : "e+"
            let e = String(abs(exponent))
            out += e.count < 2 ? "0" + e : e
            return out
        }
        if pointPosition <= 0 {
            out += "0." + String(repeating: "0", count: -pointPosition) + String(digits)
        } else if pointPosition >= digits.count {
            out += String(digits) + String(repeating: "0", count: pointPosition - digits.count)
        } else {
            let idx = digits.index(digits.startIndex, offsetBy: pointPosition)
            out += String(digits[..<idx]) + "." + String(digits[idx...])
        }
        return out
    }

    /// `%f`: six decimals.
    public static func f(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-Inf" : "+Inf" }
        return Syscall.formatFixed(x, precision: 6)
    }

    /// Shortest round-trip decimal digits of |x| and the decimal point position (digits × 10^(point - count)).
    static func shortestDigits(_ x: Double) -> (negative: Bool, digits: Substring, pointPosition: Int) {
        // Swift's description is the shortest round-trip form; re-read its digits and exponent.
        let text = "\(x.magnitude)"
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        var intPart = mantissa
        var fracPart: Substring = ""
        if let dot = mantissa.firstIndex(of: ".") {
            intPart = mantissa[..<dot]
            fracPart = mantissa[mantissa.index(after: dot)...]
        }
        var all = String(intPart) + String(fracPart)
        var point = intPart.count + exponent
        while all.hasPrefix("0") && all.count > 1 { all.removeFirst(); point -= 1 }
        while all.hasSuffix("0") && all.count > 1 { all.removeLast() }
        return (x.sign == .minus, Substring(all), point)
    }
}
