// Serving tests: the gRPC readiness probe's HTTP/2 exchange (grpc.health.v1.Health/Check over h2c),
// byte for byte against hand-made server frames.
import Testing
@testable import SluiceCore

@Suite("gRPC health probe exchange")
struct ServingGRPCHealthTests {
    /// A frame as a server writes it.
    static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        GRPCHealthExchange.appendFrame(type: type, flags: flags, stream: stream, payload: payload, to: &out)
        return out
    }

    /// HEADERS `:status: 200` (HPACK static index 8), END_HEADERS.
    static let responseHeaders = frame(type: 0x1, flags: 0x4, stream: 1, [0x88])
    /// A HealthCheckResponse with `status` as one gRPC message in a DATA frame.
    static func response(status: UInt8, flags: UInt8 = 0) -> [UInt8] {
        frame(type: 0x0, flags: flags, stream: 1, [0, 0, 0, 0, 2, 0x08, status])
    }

    /// Splits the client's bytes into (type, flags, stream, payload) after the preface.
    static func frames(_ bytes: [UInt8]) -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] {
        var out: [(UInt8, UInt8, UInt32, [UInt8])] = []
        var offset = 24
        while offset + 9 <= bytes.count {
            let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            let stream = UInt32(bytes[offset + 5] & 0x7F) << 24 | UInt32(bytes[offset + 6]) << 16 | UInt32(bytes[offset + 7]) << 8 | UInt32(bytes[offset + 8])
            out.append((bytes[offset + 3], bytes[offset + 4], stream, Array(bytes[(offset + 9) ..< (offset + 9 + length)])))
            offset += 9 + length
        }
        return out
    }

    @Test("the request is the h2c preface, SETTINGS, one HEADERS frame for Health/Check and one DATA frame with the service")
    func requestBytes() {
        let exchange = GRPCHealthExchange(service: "hello.Greeter")
        let bytes = exchange.openingBytes(authority: "127.0.0.1:8080")
        #expect(Array(bytes.prefix(24)) == Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8))
        let frames = Self.frames(bytes)
        #expect(frames.map(\.type) == [0x4, 0x1, 0x0])
        #expect(frames[0].payload.isEmpty && frames[0].stream == 0)
        #expect(frames[1].stream == 1 && frames[1].flags == 0x4)
        let block = String(decoding: frames[1].payload, as: UTF8.self)
        for text in ["/grpc.health.v1.Health/Check", "127.0.0.1:8080", "application/grpc", "te", "trailers", "kube-probe/"] {
            #expect(block.contains(text), "\(text)")
        }
        #expect(frames[1].payload.prefix(2) == [0x83, 0x86]) // :method POST, :scheme http
        #expect(frames[2].stream == 1 && frames[2].flags == 0x1)
        #expect(frames[2].payload == [0, 0, 0, 0, 15, 0x0A, 13] + Array("hello.Greeter".utf8))
        // No service: an empty HealthCheckRequest.
        #expect(Self.frames(GRPCHealthExchange(service: "").openingBytes()).last?.payload == [0, 0, 0, 0, 0])
    }

    @Test("SERVING passes; SETTINGS and PING are acknowledged on the way")
    func serving() {
        var exchange = GRPCHealthExchange(service: "")
        let settings = exchange.receive(Self.frame(type: 0x4, flags: 0, stream: 0, [0, 3, 0, 0, 0, 100]))
        #expect(settings.reply == Self.frame(type: 0x4, flags: 0x1, stream: 0, []))
        #expect(settings.serving == nil)
        let ping = exchange.receive(Self.frame(type: 0x6, flags: 0, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(ping.reply == Self.frame(type: 0x6, flags: 0x1, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(exchange.receive(Self.responseHeaders).serving == nil)
        #expect(exchange.receive(Self.response(status: 1)).serving == true)
    }

    @Test("a response split at every byte is still read")
    func splitResponse() {
        let bytes = Self.frame(type: 0x4, flags: 0, stream: 0, []) + Self.responseHeaders + Self.response(status: 1)
        var exchange = GRPCHealthExchange(service: "")
        var outcome: Bool?
        for byte in bytes where outcome == nil {
            outcome = exchange.receive([byte]).serving
        }
        #expect(outcome == true)
    }

    @Test("NOT_SERVING, UNKNOWN, trailers-only errors, RST_STREAM and GOAWAY all fail")
    func failures() {
        var notServing = GRPCHealthExchange(service: "")
        #expect(notServing.receive(Self.responseHeaders + Self.response(status: 2)).serving == false)
        var unknown = GRPCHealthExchange(service: "")
        #expect(unknown.receive(Self.frame(type: 0x0, flags: 0x1, stream: 1, [0, 0, 0, 0, 0])).serving == false)
        var trailersOnly = GRPCHealthExchange(service: "missing")
        #expect(trailersOnly.receive(Self.frame(type: 0x1, flags: 0x5, stream: 1, [0x88])).serving == false)
        var reset = GRPCHealthExchange(service: "")
        #expect(reset.receive(Self.frame(type: 0x3, flags: 0, stream: 1, [0, 0, 0, 2])).serving == false)
        var away = GRPCHealthExchange(service: "")
        #expect(away.receive(Self.frame(type: 0x7, flags: 0, stream: 0, [0, 0, 0, 0, 0, 0, 0, 1])).serving == false)
    }

    @Test("a padded DATA frame is unpadded")
    func paddedData() {
        var exchange = GRPCHealthExchange(service: "")
        let padded = Self.frame(type: 0x0, flags: 0x8, stream: 1, [3, 0, 0, 0, 0, 2, 0x08, 1, 0, 0, 0])
        #expect(exchange.receive(padded).serving == true)
    }
}
