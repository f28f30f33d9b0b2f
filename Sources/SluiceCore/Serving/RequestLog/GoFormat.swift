// Go's printing and escaping rules that request-log templates depend on (fmt's %v for floats, strconv's
// quoting, text/template's js/html/urlquery escapers, textproto's header-name canonical form), reproduced
// byte for byte into caller-owned buffers, plus the control-character escaping Sluice adds to log lines.
// Serving layer.

public enum GoFormat {
    private static let upperHex = Array("0123456789ABCDEF".utf8)
    private static let lowerHex = Array("0123456789abcdef".utf8)

    /// Copies `bytes`, writing every ASCII control character and DEL as `\u00XX` so request data cannot
    /// start a new log line or hide text (CVE-2024-45808).
    public static func appendEscapingControls<Bytes: Collection>(_ bytes: Bytes, to output: inout [UInt8]) where Bytes.Element == UInt8 {
        for byte in bytes {
            if byte < 0x20 || byte == 0x7F {
                appendUnicodeEscape(UInt32(byte), to: &output)
            } else {
                output.append(byte)
            }
        }
    }

    private static func appendUnicodeEscape(_ value: UInt32, to output: inout [UInt8]) {
        ASCII.append("\\u", to: &output)
        var digits = 4
        while digits < 8, value >> (UInt32(digits) * 4) != 0 { digits += 1 }
        for shift in stride(from: digits - 1, through: 0, by: -1) {
            output.append(upperHex[Int((value >> (UInt32(shift) * 4)) & 0xF)])
        }
    }

    // MARK: Floats

    /// Go's `%v` for a float64 (`strconv.FormatFloat(v, 'g', -1, 64)`): the shortest digits that
    /// round-trip, in exponent form when the decimal exponent is below -4 or at least 6, with at least two
    /// exponent digits (`1e+06`, `1.5e-05`).
    public static func appendFloat(_ value: Double, to output: inout [UInt8]) {
        if value.isNaN { ASCII.append("NaN", to: &output); return }
        if value.isInfinite { ASCII.append(value < 0 ? "-Inf" : "+Inf", to: &output); return }
        var digits = DecimalDigits(value)
        if value.sign == .minus { output.append(UInt8(ascii: "-")) }
        if digits.count == 0 {
            output.append(UInt8(ascii: "0"))
            return
        }
        let exponent = digits.pointPosition - 1
        if exponent < -4 || exponent >= 6 {
            output.append(digits[0])
            if digits.count > 1 {
                output.append(UInt8(ascii: "."))
                for index in 1..<digits.count { output.append(digits[index]) }
            }
            output.append(UInt8(ascii: "e"))
            output.append(exponent < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            let magnitude = exponent.magnitude
            if magnitude < 10 { output.append(UInt8(ascii: "0")) }
            ASCII.appendDecimal(UInt64(magnitude), to: &output)
            return
        }
        appendPlain(&digits, fractionDigits: max(digits.count - digits.pointPosition, 0), to: &output)
    }

    /// Go's `%.Nf`: `fractionDigits` digits after the point, rounded half to even on the shortest decimal
    /// digits (Go rounds the exact binary value; the two agree except in rare ties).
    public static func appendFixed(_ value: Double, fractionDigits: Int, to output: inout [UInt8]) {
        if value.isNaN { ASCII.append("NaN", to: &output); return }
        if value.isInfinite { ASCII.append(value < 0 ? "-Inf" : "+Inf", to: &output); return }
        var digits = DecimalDigits(value)
        digits.round(toFractionDigits: fractionDigits)
        if value.sign == .minus { output.append(UInt8(ascii: "-")) }
        appendPlain(&digits, fractionDigits: fractionDigits, to: &output)
    }

    private static func appendPlain(_ digits: inout DecimalDigits, fractionDigits: Int, to output: inout [UInt8]) {
        if digits.pointPosition <= 0 {
            output.append(UInt8(ascii: "0"))
        } else {
            for index in 0..<digits.pointPosition {
                output.append(index < digits.count ? digits[index] : UInt8(ascii: "0"))
            }
        }
        guard fractionDigits > 0 else { return }
        output.append(UInt8(ascii: "."))
        for position in 0..<fractionDigits {
            let index = digits.pointPosition + position
            output.append(index >= 0 && index < digits.count ? digits[index] : UInt8(ascii: "0"))
        }
    }

    /// The shortest round-trip decimal digits of a double (from Swift's own shortest formatting) and
    /// where the decimal point goes: value = 0.d1d2d3… × 10^pointPosition.
    struct DecimalDigits {
        // Up to 17 significant digits plus rounding carry; a fixed tuple keeps this allocation-free.
        private var storage: (UInt64, UInt64, UInt64) = (0, 0, 0)
        private(set) var count = 0
        var pointPosition = 0

        subscript(index: Int) -> UInt8 {
            let word = index < 8 ? storage.0 : (index < 16 ? storage.1 : storage.2)
            return UInt8(truncatingIfNeeded: word >> (UInt64(index % 8) * 8))
        }

        private mutating func set(_ index: Int, _ digit: UInt8) {
            let shift = UInt64(index % 8) * 8
            let mask = ~(UInt64(0xFF) << shift)
            let bits = UInt64(digit) << shift
            switch index / 8 {
            case 0: storage.0 = (storage.0 & mask) | bits
            case 1: storage.1 = (storage.1 & mask) | bits
            default: storage.2 = (storage.2 & mask) | bits
            }
        }

        init(_ value: Double) {
            var exponent = 0
            var sawPoint = false
            var digitsBeforePoint = 0
            var leadingZerosAfterPoint = 0
            var inExponent = false
            var exponentSign = 1
            var exponentValue = 0
            for byte in value.magnitude.description.utf8 {
                if inExponent {
                    if byte == UInt8(ascii: "-") { exponentSign = -1 } else if byte != UInt8(ascii: "+") {
                        exponentValue = exponentValue * 10 + Int(byte &- 0x30)
                    }
                    continue
                }
                switch byte {
                case UInt8(ascii: "."):
                    sawPoint = true
                case UInt8(ascii: "e"), UInt8(ascii: "E"):
                    inExponent = true
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    if count == 0 && byte == UInt8(ascii: "0") {
                        if sawPoint { leadingZerosAfterPoint += 1 }
                        continue
                    }
                    if count < 24 {
                        set(count, byte)
                        count += 1
                    }
                    if !sawPoint { digitsBeforePoint += 1 }
                default:
                    continue
                }
            }
            exponent = exponentSign * exponentValue
            while count > 0 && self[count - 1] == UInt8(ascii: "0") { count -= 1 }
            pointPosition = count == 0 ? 0 : (digitsBeforePoint > 0 ? digitsBeforePoint : -leadingZerosAfterPoint) + exponent
        }

        /// Rounds to `fractionDigits` digits after the point (half to even on these digits).
        mutating func round(toFractionDigits fractionDigits: Int) {
            let keep = pointPosition + fractionDigits
            guard keep < count else { return }
            if keep < 0 {
                count = 0
                pointPosition = 0
                return
            }
            let next = self[keep]
            var roundUp = next > UInt8(ascii: "5")
            if next == UInt8(ascii: "5") {
                let hasMore = keep + 1 < count
                let previousOdd = keep > 0 && (self[keep - 1] - 0x30) % 2 == 1
                roundUp = hasMore || previousOdd
            }
            count = keep
            if roundUp {
                var index = keep - 1
                while index >= 0 {
                    if self[index] == UInt8(ascii: "9") {
                        set(index, UInt8(ascii: "0"))
                        index -= 1
                    } else {
                        set(index, self[index] + 1)
                        break
                    }
                }
                if index < 0 {
                    // Carry out of the first digit: 9.99 → 10.0.
                    var shift = count
                    while shift > 0 {
                        set(shift, self[shift - 1])
                        shift -= 1
                    }
                    set(0, UInt8(ascii: "1"))
                    count += 1
                    pointPosition += 1
                }
            }
            while count > 0 && self[count - 1] == UInt8(ascii: "0") && count > pointPosition { count -= 1 }
            if count == 0 { pointPosition = 0 }
        }
    }

    // MARK: Escapers (text/template's js, html, urlquery)

    /// text/template's `js`: `\\ \' \"`, `<>&=` as `\u003C…`, controls as `\u00XX`, non-printable runes
    /// as `\uXXXX`; printable UTF-8 (and invalid bytes) copied. Reads `range` of `buffer`, appends to it.
    public static func appendJSEscaped(from range: Range<Int>, in buffer: inout [UInt8]) {
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = buffer[index]
            if byte < 0x80 {
                switch byte {
                case UInt8(ascii: "\\"): ASCII.append("\\\\", to: &buffer)
                case UInt8(ascii: "'"): ASCII.append("\\'", to: &buffer)
                case UInt8(ascii: "\""): ASCII.append("\\\"", to: &buffer)
                case UInt8(ascii: "<"): ASCII.append("\\u003C", to: &buffer)
                case UInt8(ascii: ">"): ASCII.append("\\u003E", to: &buffer)
                case UInt8(ascii: "&"): ASCII.append("\\u0026", to: &buffer)
                case UInt8(ascii: "="): ASCII.append("\\u003D", to: &buffer)
                default:
                    if byte < 0x20 {
                        ASCII.append("\\u00", to: &buffer)
                        buffer.append(upperHex[Int(byte >> 4)])
                        buffer.append(upperHex[Int(byte & 0xF)])
                    } else {
                        buffer.append(byte)
                    }
                }
                index += 1
                continue
            }
            let (scalar, length) = decodeScalar(buffer, at: index, end: range.upperBound)
            if let scalar, !isPrintable(scalar) {
                appendUnicodeEscape(scalar.value, to: &buffer)
            } else {
                for offset in 0..<length { buffer.append(buffer[index + offset]) }
            }
            index += length
        }
    }

    /// text/template's `html`: `"`, `'`, `&`, `<`, `>` as entities, NUL as U+FFFD.
    public static func appendHTMLEscaped(from range: Range<Int>, in buffer: inout [UInt8]) {
        for index in range {
            switch buffer[index] {
            case UInt8(ascii: "\""): ASCII.append("&#34;", to: &buffer)
            case UInt8(ascii: "'"): ASCII.append("&#39;", to: &buffer)
            case UInt8(ascii: "&"): ASCII.append("&amp;", to: &buffer)
            case UInt8(ascii: "<"): ASCII.append("&lt;", to: &buffer)
            case UInt8(ascii: ">"): ASCII.append("&gt;", to: &buffer)
            case 0: buffer.append(contentsOf: [0xEF, 0xBF, 0xBD])
            default: buffer.append(buffer[index])
            }
        }
    }

    /// text/template's `urlquery` (Go's url.QueryEscape): unreserved bytes kept, space as `+`, the rest %XX.
    public static func appendQueryEscaped(from range: Range<Int>, in buffer: inout [UInt8]) {
        for index in range {
            let byte = buffer[index]
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                buffer.append(byte)
            case UInt8(ascii: " "):
                buffer.append(UInt8(ascii: "+"))
            default:
                buffer.append(UInt8(ascii: "%"))
                buffer.append(upperHex[Int(byte >> 4)])
                buffer.append(upperHex[Int(byte & 0xF)])
            }
        }
    }

    /// Go's strconv.Quote (printf `%q` on a string).
    public static func appendQuoted(from range: Range<Int>, in buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = buffer[index]
            if byte < 0x80 {
                switch byte {
                case 0x07: ASCII.append("\\a", to: &buffer)
                case 0x08: ASCII.append("\\b", to: &buffer)
                case 0x0C: ASCII.append("\\f", to: &buffer)
                case 0x0A: ASCII.append("\\n", to: &buffer)
                case 0x0D: ASCII.append("\\r", to: &buffer)
                case 0x09: ASCII.append("\\t", to: &buffer)
                case 0x0B: ASCII.append("\\v", to: &buffer)
                case UInt8(ascii: "\\"): ASCII.append("\\\\", to: &buffer)
                case UInt8(ascii: "\""): ASCII.append("\\\"", to: &buffer)
                default:
                    if byte < 0x20 || byte == 0x7F {
                        ASCII.append("\\x", to: &buffer)
                        buffer.append(lowerHex[Int(byte >> 4)])
                        buffer.append(lowerHex[Int(byte & 0xF)])
                    } else {
                        buffer.append(byte)
                    }
                }
                index += 1
                continue
            }
            let (scalar, length) = decodeScalar(buffer, at: index, end: range.upperBound)
            if let scalar {
                if isPrintable(scalar) {
                    for offset in 0..<length { buffer.append(buffer[index + offset]) }
                } else {
                    let value = scalar.value
                    ASCII.append(value > 0xFFFF ? "\\U" : "\\u", to: &buffer)
                    let digits = value > 0xFFFF ? 8 : 4
                    for shift in stride(from: digits - 1, through: 0, by: -1) {
                        buffer.append(lowerHex[Int((value >> (UInt32(shift) * 4)) & 0xF)])
                    }
                }
            } else {
                ASCII.append("\\x", to: &buffer)
                buffer.append(lowerHex[Int(byte >> 4)])
                buffer.append(lowerHex[Int(byte & 0xF)])
            }
            index += length
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// Decodes one UTF-8 scalar at `index`; nil with length 1 for an invalid sequence (as Go's RuneError).
    static func decodeScalar(_ bytes: [UInt8], at index: Int, end: Int) -> (Unicode.Scalar?, Int) {
        let first = bytes[index]
        let length: Int
        var value: UInt32
        switch first {
        case 0xC2...0xDF: length = 2; value = UInt32(first & 0x1F)
        case 0xE0...0xEF: length = 3; value = UInt32(first & 0x0F)
        case 0xF0...0xF4: length = 4; value = UInt32(first & 0x07)
        default: return (nil, 1)
        }
        guard index + length <= end else { return (nil, 1) }
        for offset in 1..<length {
            let next = bytes[index + offset]
            guard next & 0xC0 == 0x80 else { return (nil, 1) }
            value = value << 6 | UInt32(next & 0x3F)
        }
        let minimum: UInt32 = length == 2 ? 0x80 : (length == 3 ? 0x800 : 0x10000)
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { return (nil, 1) }
        return (scalar, length)
    }

    /// Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
    static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " { return true }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .nonspacingMark, .spacingMark, .enclosingMark,
            .decimalNumber, .letterNumber, .otherNumber,
            .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation,
            .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return true
        default:
            return false
        }
    }

    // MARK: URLs and header names

    /// Percent-decodes a URL path (Go's URL.Path); a malformed escape is copied as it is.
    public static func appendPercentDecoded<Bytes: Collection>(_ bytes: Bytes, to output: inout [UInt8]) where Bytes.Element == UInt8 {
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                output.append(byte)
                continue
            }
            guard let high = iterator.next() else { output.append(byte); return }
            guard let low = iterator.next() else { output.append(byte); output.append(high); return }
            if let h = hexValue(high), let l = hexValue(low) {
                output.append(h << 4 | l)
            } else {
                output.append(byte)
                output.append(high)
                output.append(low)
            }
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Whether Go's canonical form of header name `name` (`x-b3-traceid` → `X-B3-Traceid`) equals `key`
    /// exactly: what a Go map lookup on http.Header does. Names with bytes outside the token set stay as
    /// they are, like textproto.
    public static func canonicalNameEquals<Name: Collection, Key: Collection>(_ name: Name, _ key: Key) -> Bool
    where Name.Element == UInt8, Key.Element == UInt8 {
        guard name.count == key.count else { return false }
        let canonicalizable = name.allSatisfy { byte in
            byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: ":")
        }
        var upperNext = true
        var keyIterator = key.makeIterator()
        for byte in name {
            var expected = byte
            if canonicalizable {
                if upperNext, byte >= UInt8(ascii: "a"), byte <= UInt8(ascii: "z") {
                    expected = byte - 0x20
                } else if !upperNext, byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z") {
                    expected = byte + 0x20
                }
                upperNext = byte == UInt8(ascii: "-")
            }
            guard keyIterator.next() == expected else { return false }
        }
        return true
    }
}
