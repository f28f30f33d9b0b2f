// HTTP1 layer (WebSocket handshake maths): base64 with the standard alphabet and padding (RFC 4648 §4),
// for Sec-WebSocket-Key and Sec-WebSocket-Accept.

public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Encodes `bytes` with `=` padding.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)])
            out.append(alphabet[Int(n & 63)])
            i += 3
        }
        let rest = input.count - i
        if rest > 0 {
            let n = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(rest == 2 ? alphabet[Int(n >> 6 & 63)] : 0x3D)
            out.append(0x3D)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes canonical padded base64; nil for a length that is not a multiple of 4, a byte outside
    /// the alphabet, misplaced padding, or non-zero bits hidden in the padding.
    public static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        let input = Array(text)
        guard input.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            let last = i + 4 == input.count
            var n: UInt32 = 0
            var padding = 0
            for j in 0 ..< 4 {
                let byte = input[i + j]
                if byte == 0x3D {
                    // Padding only in the last group, only in its last two places, and only trailing.
                    guard last, j >= 2 else { return nil }
                    padding += 1
                    n <<= 6
                    continue
                }
                guard padding == 0, let value = sextet(byte) else { return nil }
                n = n << 6 | value
            }
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            if padding < 2 { out.append(UInt8(truncatingIfNeeded: n >> 8)) } else if n & 0xFFFF != 0 { return nil }
            if padding < 1 { out.append(UInt8(truncatingIfNeeded: n)) } else if n & 0xFF != 0 { return nil }
            i += 4
        }
        return out
    }

    public static func decode(_ text: String) -> [UInt8]? { decode(text.utf8) }

    private static func sextet(_ byte: UInt8) -> UInt32? {
        switch byte {
        case 0x41 ... 0x5A: UInt32(byte - 0x41)
        case 0x61 ... 0x7A: UInt32(byte - 0x61 + 26)
        case 0x30 ... 0x39: UInt32(byte - 0x30 + 52)
        case 0x2B: 62
        case 0x2F: 63
        default: nil
        }
    }
}
