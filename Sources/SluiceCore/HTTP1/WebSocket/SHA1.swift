// HTTP1 layer (WebSocket handshake maths): SHA-1 (FIPS 180-4 §6.1), used only to compute
// Sec-WebSocket-Accept. Not for security: RFC 6455 uses it as a fingerprint, not a protection.

/// SHA-1 over a whole message held in memory.
public enum SHA1 {
    /// The 20-byte digest of `message`.
    public static func hash(_ message: some Collection<UInt8>) -> [UInt8] {
        var state: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        var block = [UInt8]()
        block.reserveCapacity(64)
        var words = [UInt32](repeating: 0, count: 80)
        var length: UInt64 = 0
        for byte in message {
            block.append(byte)
            length &+= 1
            if block.count == 64 {
                compress(block, into: &state, words: &words)
                block.removeAll(keepingCapacity: true)
            }
        }
        // Padding: 0x80, zeros to 56 mod 64, then the bit length big-endian.
        block.append(0x80)
        if block.count > 56 {
            while block.count < 64 { block.append(0) }
            compress(block, into: &state, words: &words)
            block.removeAll(keepingCapacity: true)
        }
        while block.count < 56 { block.append(0) }
        let bits = length &* 8
        for shift in stride(from: 56, through: 0, by: -8) { block.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        compress(block, into: &state, words: &words)

        var digest = [UInt8]()
        digest.reserveCapacity(20)
        for word in [state.0, state.1, state.2, state.3, state.4] {
            for shift in stride(from: 24, through: 0, by: -8) { digest.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
        }
        return digest
    }

    private static func compress(_ block: [UInt8], into state: inout (UInt32, UInt32, UInt32, UInt32, UInt32), words w: inout [UInt32]) {
        for i in 0 ..< 16 {
            w[i] = UInt32(block[4 * i]) << 24 | UInt32(block[4 * i + 1]) << 16 | UInt32(block[4 * i + 2]) << 8 | UInt32(block[4 * i + 3])
        }
        for i in 16 ..< 80 { w[i] = rotate(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1) }
        var (a, b, c, d, e) = state
        for i in 0 ..< 80 {
            let f: UInt32
            let k: UInt32
            switch i {
            case 0 ..< 20: f = (b & c) | (~b & d); k = 0x5A82_7999
            case 20 ..< 40: f = b ^ c ^ d; k = 0x6ED9_EBA1
            case 40 ..< 60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
            default: f = b ^ c ^ d; k = 0xCA62_C1D6
            }
            let t = rotate(a, 5) &+ f &+ e &+ k &+ w[i]
            e = d
            d = c
            c = rotate(b, 30)
            b = a
            a = t
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e)
    }

    @inline(__always)
    private static func rotate(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}
