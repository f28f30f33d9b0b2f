// Test support, bytes: deterministic pseudo-random payloads and chunked framing for byte-exact body checks.

/// Deterministic pseudo-random bytes (xorshift64, word at a time so that debug builds make tens of MiB
/// quickly); the same `seed` gives the same bytes.
public func testBytes(_ count: Int, seed: UInt64 = 0x5EED) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var words = [UInt64](repeating: 0, count: (count + 7) / 8)
    words.withUnsafeMutableBufferPointer { buffer in
        for index in buffer.indices {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            buffer[index] = state
        }
    }
    return words.withUnsafeBytes { Array($0.prefix(count)) }
}

/// `body` as chunked framing with chunks of `chunkSize` bytes (plus the last chunk).
public func chunked(_ body: [UInt8], chunkSize: Int) -> [UInt8] {
    var out: [UInt8] = []
    var offset = 0
    while offset < body.count {
        let n = min(chunkSize, body.count - offset)
        out.append(contentsOf: Array(String(n, radix: 16).utf8) + [13, 10])
        out.append(contentsOf: body[offset ..< offset + n])
        out.append(contentsOf: [13, 10])
        offset += n
    }
    out.append(contentsOf: Array("0\r\n\r\n".utf8))
    return out
}
