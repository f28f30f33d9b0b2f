// The gRPC readiness probe (Kubernetes' `grpc` probe action, which Knative passes to queue-proxy): one
// `grpc.health.v1.Health/Check` call over HTTP/2 cleartext with prior knowledge, as a byte-level state
// machine. Only what a single unary call needs: the preface, SETTINGS (and its ACK), one HEADERS frame
// with static-table/literal HPACK, one DATA frame, and the frames of the answer. Serving layer, pure.

/// One health check exchange: `openingBytes()` once connected, then feed every received byte to
/// `receive`; the outcome says what to send back and, once known, whether the service is SERVING.
struct GRPCHealthExchange {
    /// HealthCheckResponse.ServingStatus.SERVING.
    static let servingStatus: UInt64 = 1
    static let path = "/grpc.health.v1.Health/Check"

    let service: String
    private var input: [UInt8] = []
    private var message: [UInt8] = []
    private(set) var finished = false

    init(service: String) {
        self.service = service
    }

    struct Outcome {
        /// Frames to write (SETTINGS/PING acknowledgements).
        var reply: [UInt8] = []
        /// Set once the answer is known: true only for status SERVING.
        var serving: Bool?
    }

    /// The connection preface, our SETTINGS, the request HEADERS and the request DATA (END_STREAM).
    func openingBytes(authority: String = "127.0.0.1") -> [UInt8] {
        var out = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        Self.appendFrame(type: 0x4, flags: 0, stream: 0, payload: [], to: &out)

        var block: [UInt8] = []
        block.append(0x83) // :method POST (static index 3)
        block.append(0x86) // :scheme http (static index 6)
        Self.appendLiteral(nameIndex: 4, value: Self.path, to: &block) // :path
        Self.appendLiteral(nameIndex: 1, value: authority, to: &block) // :authority
        Self.appendLiteral(nameIndex: 31, value: "application/grpc", to: &block) // content-type
        Self.appendLiteral(name: "te", value: "trailers", to: &block)
        Self.appendLiteral(nameIndex: 58, value: ReadinessProbeRunner.userAgent, to: &block) // user-agent
        Self.appendFrame(type: 0x1, flags: 0x4, stream: 1, payload: block, to: &out) // END_HEADERS

        // HealthCheckRequest { string service = 1; }, framed as one uncompressed gRPC message.
        var request: [UInt8] = []
        if !service.isEmpty {
            request.append(0x0A)
            Self.appendVarint(UInt64(service.utf8.count), to: &request)
            request.append(contentsOf: service.utf8)
        }
        var data: [UInt8] = [0]
        let length = UInt32(request.count)
        data.append(contentsOf: [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)])
        data.append(contentsOf: request)
        Self.appendFrame(type: 0x0, flags: 0x1, stream: 1, payload: data, to: &out) // END_STREAM
        return out
    }

    /// Consumes `bytes` from the server.
    mutating func receive(_ bytes: [UInt8]) -> Outcome {
        var outcome = Outcome()
        guard !finished else { return outcome }
        input.append(contentsOf: bytes)
        var offset = 0
        while input.count - offset >= 9 {
            let length = Int(input[offset]) << 16 | Int(input[offset + 1]) << 8 | Int(input[offset + 2])
            guard input.count - offset - 9 >= length else { break }
            let type = input[offset + 3]
            let flags = input[offset + 4]
            let stream = (UInt32(input[offset + 5]) & 0x7F) << 24 | UInt32(input[offset + 6]) << 16
                | UInt32(input[offset + 7]) << 8 | UInt32(input[offset + 8])
            let payload = Array(input[(offset + 9) ..< (offset + 9 + length)])
            offset += 9 + length
            switch type {
            case 0x0 where stream == 1: // DATA
                var body = payload[...]
                if flags & 0x8 != 0, let pad = body.first { // PADDED
                    body = body.dropFirst().dropLast(Int(pad))
                }
                message.append(contentsOf: body)
                if let status = decodeStatus() {
                    outcome.serving = status == Self.servingStatus
                } else if flags & 0x1 != 0 {
                    outcome.serving = false
                }
            case 0x1 where stream == 1: // HEADERS: trailers-only (an error status) ends the call unanswered
                if flags & 0x1 != 0 { outcome.serving = false }
            case 0x3 where stream == 1, 0x7: // RST_STREAM, GOAWAY
                outcome.serving = false
            case 0x4 where flags & 0x1 == 0: // SETTINGS: acknowledge
                Self.appendFrame(type: 0x4, flags: 0x1, stream: 0, payload: [], to: &outcome.reply)
            case 0x6 where flags & 0x1 == 0: // PING: answer with the same payload
                Self.appendFrame(type: 0x6, flags: 0x1, stream: 0, payload: payload, to: &outcome.reply)
            default:
                break
            }
            if outcome.serving != nil {
                finished = true
                break
            }
        }
        input.removeFirst(min(offset, input.count))
        return outcome
    }

    /// The `status` of a complete HealthCheckResponse message, once one has arrived.
    private func decodeStatus() -> UInt64? {
        guard message.count >= 5 else { return nil }
        let length = Int(message[1]) << 24 | Int(message[2]) << 16 | Int(message[3]) << 8 | Int(message[4])
        guard message.count >= 5 + length else { return nil }
        var index = 5
        let end = 5 + length
        var status: UInt64 = 0 // proto3: an absent enum is UNKNOWN (0)
        while index < end {
            guard let (key, next) = Self.readVarint(message, at: index, end: end) else { return 0 }
            index = next
            switch key & 0x7 {
            case 0:
                guard let (value, after) = Self.readVarint(message, at: index, end: end) else { return 0 }
                if key >> 3 == 1 { status = value }
                index = after
            case 2:
                guard let (count, after) = Self.readVarint(message, at: index, end: end) else { return 0 }
                index = after + Int(min(count, UInt64(end)))
            case 1: index += 8
            case 5: index += 4
            default: return 0
            }
        }
        return status
    }

    private static func readVarint(_ bytes: [UInt8], at start: Int, end: Int) -> (UInt64, Int)? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var index = start
        while index < end, shift < 64 {
            let byte = bytes[index]
            value |= UInt64(byte & 0x7F) << shift
            index += 1
            if byte & 0x80 == 0 { return (value, index) }
            shift += 7
        }
        return nil
    }

    private static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    static func appendFrame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8], to out: inout [UInt8]) {
        let length = payload.count
        out.append(contentsOf: [UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF), type, flags])
        out.append(contentsOf: [UInt8((stream >> 24) & 0x7F), UInt8((stream >> 16) & 0xFF), UInt8((stream >> 8) & 0xFF), UInt8(stream & 0xFF)])
        out.append(contentsOf: payload)
    }

    /// HPACK integer with an `prefixBits`-bit prefix (RFC 7541 §5.1), OR-ed into `first`.
    private static func appendInteger(_ value: Int, prefixBits: Int, first: UInt8, to out: inout [UInt8]) {
        let limit = (1 << prefixBits) - 1
        if value < limit {
            out.append(first | UInt8(value))
            return
        }
        out.append(first | UInt8(limit))
        var rest = value - limit
        while rest >= 128 {
            out.append(UInt8(rest % 128 + 128))
            rest /= 128
        }
        out.append(UInt8(rest))
    }

    /// Literal header field without indexing, name from the static table (RFC 7541 §6.2.2).
    private static func appendLiteral(nameIndex: Int, value: String, to out: inout [UInt8]) {
        appendInteger(nameIndex, prefixBits: 4, first: 0x00, to: &out)
        appendInteger(value.utf8.count, prefixBits: 7, first: 0x00, to: &out) // no Huffman
        out.append(contentsOf: value.utf8)
    }

    /// Literal header field without indexing, new name.
    private static func appendLiteral(name: String, value: String, to out: inout [UInt8]) {
        out.append(0x00)
        appendInteger(name.utf8.count, prefixBits: 7, first: 0x00, to: &out)
        out.append(contentsOf: name.utf8)
        appendInteger(value.utf8.count, prefixBits: 7, first: 0x00, to: &out)
        out.append(contentsOf: value.utf8)
    }
}
