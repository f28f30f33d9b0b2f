// Tests for the HTTP1 layer's WebSocket maths and frame codec: SHA-1 and base64 against their standards'
// vectors, the RFC 6455 accept example, and a table of frames parsed whole, at every split point and
// byte by byte, including every strictness rule and its close code.
import Testing
@testable import SluiceCore

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// What feeding a byte stream to a reader produced.
struct FrameOutcome: Equatable, CustomStringConvertible {
    var events: [WebSocketEvent] = []
    var failure: WebSocketCloseCode? = nil
    /// Bytes consumed in total (all of them unless a failure stopped the reading).
    var consumed = 0
    var description: String { "events=\(events) failure=\(failure.map { "\($0.rawValue)" } ?? "-") consumed=\(consumed)" }
}

/// Feeds `bytes` in pieces cut at `cuts` (offsets), keeping unconsumed bytes like a receive buffer.
func feedFrames(_ bytes: [UInt8], cuts: [Int], role: WebSocketRole, maxMessageBytes: Int = 1 << 20) -> FrameOutcome {
    var reader = WebSocketFrameReader(role: role, maxMessageBytes: maxMessageBytes)
    var outcome = FrameOutcome()
    var pending: [UInt8] = []
    var start = 0
    for end in cuts.filter({ $0 > 0 && $0 < bytes.count }) + [bytes.count] where end >= start {
        pending.append(contentsOf: bytes[start ..< end])
        start = end
        reading: while true {
            switch reader.read(pending.span) {
            case .needMore(let consumed):
                pending.removeFirst(consumed)
                outcome.consumed += consumed
                break reading
            case .event(let event, let consumed):
                pending.removeFirst(consumed)
                outcome.consumed += consumed
                outcome.events.append(event)
            case .failure(let error):
                outcome.failure = error.code
                return outcome
            }
        }
    }
    return outcome
}

/// One frame (or frame sequence) as a sender would write it; masked when `mask` is given.
func frameBytes(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, mask: [UInt8]? = nil, rsv: UInt8 = 0) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | rsv | opcode]
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    if payload.count < 126 {
        out.append(maskBit | UInt8(payload.count))
    } else if payload.count <= 0xFFFF {
        out += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        out.append(maskBit | 127)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((payload.count >> shift) & 0xFF)) }
    }
    if let mask {
        out += mask
        for (i, b) in payload.enumerated() { out.append(b ^ mask[i % 4]) }
    } else {
        out += payload
    }
    return out
}

private let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
private let hello = Array("Hello".utf8)

struct FrameCase: CustomStringConvertible, Sendable {
    let name: String
    let role: WebSocketRole
    let bytes: [UInt8]
    let events: [WebSocketEvent]
    let failure: WebSocketCloseCode?
    var maxMessageBytes = 1 << 20
    var description: String { name }
}

let frameCases: [FrameCase] = [
    // RFC 6455 §5.7 examples.
    FrameCase(name: "unmasked text from a server", role: .client, bytes: [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F],
              events: [.message(.text("Hello"))], failure: nil),
    FrameCase(name: "masked text from a client", role: .server,
              bytes: [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58],
              events: [.message(.text("Hello"))], failure: nil),
    FrameCase(name: "fragmented text", role: .client, bytes: [0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F],
              events: [.message(.text("Hello"))], failure: nil),
    FrameCase(name: "ping then masked pong", role: .server,
              bytes: frameBytes(0x9, hello, mask: key) + [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58],
              events: [.ping(hello), .pong(hello)], failure: nil),
    FrameCase(name: "256-byte binary with a 16-bit length", role: .client,
              bytes: [0x82, 0x7E, 0x01, 0x00] + (0 ..< 256).map { UInt8($0) },
              events: [.message(.binary((0 ..< 256).map { UInt8($0) }))], failure: nil),
    FrameCase(name: "64 KiB binary with a 64-bit length, masked", role: .server,
              bytes: frameBytes(0x2, [UInt8](repeating: 0xA5, count: 65536), mask: key),
              events: [.message(.binary([UInt8](repeating: 0xA5, count: 65536)))], failure: nil),
    FrameCase(name: "a ping between the fragments of a message", role: .server,
              bytes: frameBytes(0x2, [1, 2], fin: false, mask: key) + frameBytes(0x9, [9], mask: key)
                  + frameBytes(0x0, [3], fin: false, mask: key) + frameBytes(0x0, [4], mask: key),
              events: [.ping([9]), .message(.binary([1, 2, 3, 4]))], failure: nil),
    FrameCase(name: "empty messages and an empty fragment", role: .client,
              bytes: frameBytes(0x1, []) + frameBytes(0x2, [], fin: false) + frameBytes(0x0, []),
              events: [.message(.text("")), .message(.binary([]))], failure: nil),
    FrameCase(name: "close with code and reason", role: .server,
              bytes: frameBytes(0x8, [0x03, 0xE8] + Array("bye".utf8), mask: key),
              events: [.close(.normalClosure, reason: "bye")], failure: nil),
    FrameCase(name: "close without payload", role: .client, bytes: [0x88, 0x00],
              events: [.close(nil, reason: "")], failure: nil),
    FrameCase(name: "close code 4000 (application range)", role: .client, bytes: frameBytes(0x8, [0x0F, 0xA0]),
              events: [.close(WebSocketCloseCode(4000), reason: "")], failure: nil),
    FrameCase(name: "multi-byte UTF-8 text split across fragments", role: .client,
              bytes: frameBytes(0x1, [0xE2, 0x82], fin: false) + frameBytes(0x0, [0xAC]),
              events: [.message(.text("€"))], failure: nil),
    FrameCase(name: "a message at exactly the limit", role: .client, bytes: frameBytes(0x2, [UInt8](repeating: 7, count: 10)),
              events: [.message(.binary([UInt8](repeating: 7, count: 10)))], failure: nil, maxMessageBytes: 10),

    // Strictness: each rule and its close code.
    FrameCase(name: "reserved bit set → 1002", role: .client, bytes: frameBytes(0x1, hello, rsv: 0x40), events: [], failure: .protocolError),
    FrameCase(name: "unknown data opcode 3 → 1002", role: .client, bytes: frameBytes(0x3, hello), events: [], failure: .protocolError),
    FrameCase(name: "unknown control opcode 0xB → 1002", role: .client, bytes: frameBytes(0xB, []), events: [], failure: .protocolError),
    FrameCase(name: "unmasked frame from a client → 1002", role: .server, bytes: frameBytes(0x1, hello), events: [], failure: .protocolError),
    FrameCase(name: "masked frame from a server → 1002", role: .client, bytes: frameBytes(0x1, hello, mask: key), events: [], failure: .protocolError),
    FrameCase(name: "fragmented ping → 1002", role: .client, bytes: frameBytes(0x9, [], fin: false), events: [], failure: .protocolError),
    FrameCase(name: "control payload over 125 bytes → 1002", role: .client, bytes: frameBytes(0x9, [UInt8](repeating: 1, count: 126)),
              events: [], failure: .protocolError),
    FrameCase(name: "continuation without a message → 1002", role: .client, bytes: frameBytes(0x0, hello), events: [], failure: .protocolError),
    FrameCase(name: "new text frame inside a fragmented message → 1002", role: .client,
              bytes: frameBytes(0x1, [0x41], fin: false) + frameBytes(0x1, [0x42]), events: [], failure: .protocolError),
    FrameCase(name: "16-bit length under 126 → 1002", role: .client, bytes: [0x82, 0x7E, 0x00, 0x05] + hello, events: [], failure: .protocolError),
    FrameCase(name: "64-bit length with the top bit set → 1002", role: .client,
              bytes: [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1], events: [], failure: .protocolError),
    FrameCase(name: "64-bit length under 65536 → 1002", role: .client,
              bytes: [0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5] + hello, events: [], failure: .protocolError),
    FrameCase(name: "message over the limit → 1009", role: .client, bytes: frameBytes(0x2, [UInt8](repeating: 7, count: 11)),
              events: [], failure: .messageTooBig, maxMessageBytes: 10),
    FrameCase(name: "fragments adding up over the limit → 1009", role: .client,
              bytes: frameBytes(0x2, [UInt8](repeating: 7, count: 6), fin: false) + frameBytes(0x0, [UInt8](repeating: 7, count: 6)),
              events: [], failure: .messageTooBig, maxMessageBytes: 10),
    FrameCase(name: "text that is not UTF-8 → 1007", role: .client, bytes: frameBytes(0x1, [0x48, 0xC3, 0x28]), events: [], failure: .invalidPayloadData),
    FrameCase(name: "text ending inside a UTF-8 sequence → 1007", role: .client, bytes: frameBytes(0x1, [0x48, 0xE2, 0x82]),
              events: [], failure: .invalidPayloadData),
    FrameCase(name: "close with a 1-byte payload → 1002", role: .client, bytes: frameBytes(0x8, [0x03]), events: [], failure: .protocolError),
    FrameCase(name: "close code 1005 on the wire → 1002", role: .client, bytes: frameBytes(0x8, [0x03, 0xED]), events: [], failure: .protocolError),
    FrameCase(name: "close code 999 → 1002", role: .client, bytes: frameBytes(0x8, [0x03, 0xE7]), events: [], failure: .protocolError),
    FrameCase(name: "close reason that is not UTF-8 → 1007", role: .client, bytes: frameBytes(0x8, [0x03, 0xE8, 0xFF]),
              events: [], failure: .invalidPayloadData),
    FrameCase(name: "events before a violation are kept", role: .client, bytes: frameBytes(0x9, [1]) + frameBytes(0x1, hello, rsv: 0x10),
              events: [.ping([1])], failure: .protocolError),
]

@Suite("WebSocket maths and frame codec", .timeLimit(.minutes(1)))
struct WebSocketCodecTests {
    @Test("SHA-1 matches the FIPS 180 and RFC 3174 test vectors", arguments: [
        ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
        (String(repeating: "01234567", count: 80), "dea356a2cddd90c7a7ecedc5ebb563934f460452"),
        (String(repeating: "a", count: 55), "c1c8bbdc22796e28c0e15163d20899b65621d65a"),
        (String(repeating: "a", count: 56), "c2db330f6083854c99d4b5bfb6e8f29f201be699"),
        (String(repeating: "a", count: 64), "0098ba824b5c16427bd7a1122a5a442a25ec644d"),
    ])
    func sha1Vectors(input: String, digest: String) {
        #expect(hex(SHA1.hash(Array(input.utf8))) == digest)
    }

    @Test("SHA-1 of a million 'a' matches FIPS 180's long-message vector")
    func sha1Million() {
        #expect(hex(SHA1.hash([UInt8](repeating: 0x61, count: 1_000_000))) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test("base64 matches RFC 4648's vectors both ways", arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ])
    func base64Vectors(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test("base64 decoding refuses bad lengths, foreign bytes, misplaced padding and non-canonical tails",
          arguments: ["Zg=", "Zm9", "Zm9v!A==", "Z===", "=Zm9", "Zm=v", "Zh==", "Zm9=", "Zm 9v"])
    func base64Rejects(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test("the RFC 6455 example key gives the example accept value")
    func acceptExample() {
        #expect(WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("a generated key is the base64 of 16 bytes from the injected source and differs per draw")
    func generatedKey() {
        var state: UInt64 = 1
        let next = { () -> UInt64 in state = state &* 6364136223846793005 &+ 1442695040888963407; return state }
        let first = WebSocketHandshake.makeKey(random: next)
        let second = WebSocketHandshake.makeKey(random: next)
        #expect(Base64.decode(first)?.count == 16)
        #expect(first != second)
    }

    @Test("each frame case gives the same events and close code whole, at every split point and byte by byte", arguments: frameCases)
    func frameTable(_ c: FrameCase) {
        let whole = feedFrames(c.bytes, cuts: [], role: c.role, maxMessageBytes: c.maxMessageBytes)
        #expect(whole.events == c.events, "\(c.name): \(whole)")
        #expect(whole.failure == c.failure, "\(c.name): \(whole)")
        if c.failure == nil { #expect(whole.consumed == c.bytes.count) }
        // The 64 KiB case is split at a sample of points (every point would be 65k parses of 64 KiB).
        let step = c.bytes.count > 4096 ? 997 : 1
        var cuts = Array(stride(from: 1, to: c.bytes.count, by: step)).map { [$0] }
        if c.bytes.count <= 4096 { cuts.append(Array(1 ..< c.bytes.count)) }
        cuts.append(Array(stride(from: 7, to: c.bytes.count, by: 7)))
        for plan in cuts {
            let outcome = feedFrames(c.bytes, cuts: plan, role: c.role, maxMessageBytes: c.maxMessageBytes)
            #expect(outcome.events == whole.events && outcome.failure == whole.failure,
                    "\(c.name) cut at \(plan.prefix(4))…: \(outcome) vs \(whole)")
        }
    }

    @Test("frames the writer makes parse back, masked by clients and plain from servers, at every length boundary",
          arguments: [0, 1, 125, 126, 127, 65535, 65536, 70000])
    func writerRoundTrip(length: Int) {
        let payload = (0 ..< length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var fromClient: [UInt8] = []
        WebSocketFrameWriter.appendFrame(opcode: .binary, payload: payload, maskKey: 0xDEAD_BEEF, to: &fromClient)
        var fromServer: [UInt8] = []
        WebSocketFrameWriter.appendFrame(opcode: .binary, payload: payload, to: &fromServer)
        #expect(fromClient[1] & 0x80 != 0)
        #expect(fromServer[1] & 0x80 == 0)
        #expect(fromClient.count == fromServer.count + 4)
        #expect(feedFrames(fromClient, cuts: [3, 9], role: .server).events == [.message(.binary(payload))])
        #expect(feedFrames(fromServer, cuts: [3, 9], role: .client).events == [.message(.binary(payload))])
    }

    @Test("a close payload carries the code big-endian and a reason cut to 123 bytes at a character boundary")
    func closePayload() {
        #expect(WebSocketFrameWriter.closePayload(code: .serviceRestart, reason: "Restarting") == [0x03, 0xF4] + Array("Restarting".utf8))
        let long = String(repeating: "é", count: 100) // 200 bytes
        let payload = WebSocketFrameWriter.closePayload(code: .goingAway, reason: long)
        #expect(payload.count == 2 + 122)
        #expect(String(validating: payload[2...], as: UTF8.self) != nil)
        var frame: [UInt8] = []
        WebSocketFrameWriter.appendFrame(opcode: .close, payload: payload, to: &frame)
        #expect(feedFrames(frame, cuts: [], role: .client).events == [.close(.goingAway, reason: String(repeating: "é", count: 61))])
    }

    @Test("after a failure the reader refuses further input")
    func failureIsFinal() {
        var reader = WebSocketFrameReader(role: .client)
        let bad = frameBytes(0x1, hello, rsv: 0x20)
        guard case .failure = reader.read(bad.span) else {
            Issue.record("expected a failure")
            return
        }
        #expect(reader.hasFailed)
        let good = frameBytes(0x1, hello)
        if case .event = reader.read(good.span) { Issue.record("read on after a failure") }
    }
}
