// HTTP1 layer: one 256-entry table classifies every byte for the scanners (RFC 9110 §5.6.2 tokens,
// RFC 3986 target and authority bytes, field-value bytes, hex digits, quoted-string text).

enum CharacterClass {
    static let token: UInt8 = 1
    static let target: UInt8 = 2
    static let host: UInt8 = 4
    static let hex: UInt8 = 8
    static let quotedText: UInt8 = 16
    static let fieldValue: UInt8 = 32

    /// Flags per byte value; built once, read through a pointer in the scanning core.
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 256)
        func mark(_ chars: String, _ flag: UInt8) { for b in chars.utf8 { t[Int(b)] |= flag } }
        let alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        let digit = "0123456789"
        // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
        mark(alpha + digit + "!#$%&'*+-.^_`|~", token)
        // unreserved / pct-encoded / sub-delims / ":" / "@" / "/" / "?" plus "[" "]" for IP literals
        // in absolute-form. Never "#", SP, CTLs, non-ASCII or the bytes RFC 3986 excludes ("<>\^`{|}).
        mark(alpha + digit + "-._~" + "%" + "!$&'()*+,;=" + ":@/?" + "[]", target)
        mark(alpha + digit + "-._~" + "%" + "!$&'()*+,;=" + ":" + "[]", host)
        mark(digit + "abcdefABCDEF", hex)
        for b in 0..<256 {
            let byte = UInt8(b)
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
            if byte == 0x09 || byte == 0x20 || byte == 0x21 || (byte >= 0x23 && byte <= 0x5B)
                || (byte >= 0x5D && byte <= 0x7E) || byte >= 0x80 {
                t[b] |= quotedText
            }
            // field-vchar / SP / HTAB / obs-text
            if byte == 0x09 || (byte >= 0x20 && byte != 0x7F) {
                t[b] |= fieldValue
            }
        }
        return t
    }()

    /// The same table at a fixed address for the scanning core: allocated once, never freed, never
    /// written after initialisation, so reading it from any thread is safe and costs no retain.
    nonisolated(unsafe) static let pointer: UnsafePointer<UInt8> = {
        let memory = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        unsafe memory.initialize(from: table, count: 256)
        return unsafe UnsafePointer(memory)
    }()

    @inline(__always) static func isToken(_ b: UInt8) -> Bool { unsafe pointer[Int(b)] & token != 0 }
    @inline(__always) static func isHex(_ b: UInt8) -> Bool { unsafe pointer[Int(b)] & hex != 0 }
    @inline(__always) static func isQuotedText(_ b: UInt8) -> Bool { unsafe pointer[Int(b)] & quotedText != 0 }
    @inline(__always) static func isFieldValue(_ b: UInt8) -> Bool { unsafe pointer[Int(b)] & fieldValue != 0 }

    @inline(__always) static func hexValue(_ b: UInt8) -> UInt64 {
        if b <= 0x39 { return UInt64(b &- 0x30) }
        return UInt64((b | 0x20) &- 0x61 &+ 10)
    }
}

/// The table's address, taken once when an `HTTPHead` is made, so a parse call reads a stored pointer
/// instead of passing the lazy global's initialisation check each time.
@safe struct CharacterTable: @unchecked Sendable {
    // @unchecked: the table is immutable after initialisation and never freed (see `pointer`).
    let pointer: UnsafePointer<UInt8>
    init() { unsafe pointer = CharacterClass.pointer }
}

/// ASCII bytes the codec names (public: Serving extends it with header-matching helpers).
public enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let semicolon: UInt8 = 0x3B
    static let comma: UInt8 = 0x2C
    static let equals: UInt8 = 0x3D
    static let quote: UInt8 = 0x22
    static let backslash: UInt8 = 0x5C
    static let hash: UInt8 = 0x23
    static let slash: UInt8 = 0x2F
    static let star: UInt8 = 0x2A

    @inline(__always) static func isWhitespace(_ b: UInt8) -> Bool { b == sp || b == htab }
    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }
    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { b &- 0x41 < 26 ? b | 0x20 : b }
}
