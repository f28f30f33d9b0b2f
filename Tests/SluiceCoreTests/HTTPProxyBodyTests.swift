// Tests for the HTTPProxy layer's message handling: byte-exact bodies in every framing and both
// directions, pipelining, 100-continue, hop-by-hop stripping and WebSocket upgrades.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

/// 64 MiB of varied bytes, built once (64 copies of a 1 MiB block, each stamped with its index).
let largeBody: [UInt8] = {
    let block = testBytes(1 << 20)
    var out = [UInt8]()
    out.reserveCapacity(64 << 20)
    for i in 0 ..< 64 {
        var copy = block
        copy[0] = UInt8(i)
        copy[1] = UInt8(i >> 8)
        out.append(contentsOf: copy)
    }
    return out
}()

/// How the test backend frames the response body it sends.
enum ResponseFraming: String, CaseIterable, Sendable {
    case contentLength, chunked, closeDelimited
}

/// A backend that answers `GET /SIZE` with SIZE bytes of `largeBody` in the given framing.
func sizedBodyBackend(_ framing: ResponseFraming) throws -> ScriptedBackend {
    try ScriptedBackend { connection in
        while let request = try connection.readRequest() {
            let size = Int(request.target.dropFirst()) ?? 0
            let body = Array(largeBody[0 ..< size])
            switch framing {
            case .contentLength:
                try connection.respond(body: body)
            case .chunked:
                try connection.send(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8) + chunked(body, chunkSize: 40_000))
            case .closeDelimited:
                try connection.send(Array("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".utf8) + body)
                return
            }
        }
    }
}

@Suite("HTTP proxy bodies", .timeLimit(.minutes(1)))
struct HTTPProxyBodyTests {
    @Test("response bodies of 0 B to 1 MiB arrive byte-exact in every upstream framing", arguments: ResponseFraming.allCases)
    func responseBodies(framing: ResponseFraming) throws {
        let backend = try sizedBodyBackend(framing)
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        for size in [0, 1, 4096, 65_537, 1 << 20] {
            let response = try client.exchange(request("GET /\(size) HTTP/1.1"))
            #expect(response.status == 200)
            #expect(response.body.count == size)
            #expect(response.body == Array(largeBody[0 ..< size]))
            if framing == .closeDelimited {
                // Re-framed for the kept-alive HTTP/1.1 client: chunked, and the connection stays open.
                #expect(response.field("transfer-encoding") == "chunked")
                #expect(response.field("connection") == nil)
            }
        }
    }

    @Test("a 64 MiB response arrives byte-exact in every upstream framing", arguments: ResponseFraming.allCases)
    func largeResponse(framing: ResponseFraming) throws {
        let backend = try sizedBodyBackend(framing)
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("GET /\(largeBody.count) HTTP/1.1"))
        #expect(response.status == 200)
        #expect(response.body.count == largeBody.count)
        #expect(response.body == largeBody)
    }

    @Test("an HTTP/1.0 client gets a chunked upstream body as plain bytes, then the connection closes")
    func dechunkForHTTP10() throws {
        let backend = try sizedBodyBackend(.chunked)
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send("GET /100000 HTTP/1.0\r\nHost: t\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.field("transfer-encoding") == nil)
        #expect(response.body == Array(largeBody[0 ..< 100_000]))
        #expect(client.waitForEOF())
    }

    @Test("request bodies of 0 B to 64 MiB reach the upstream byte-exact with Content-Length and chunked", arguments: [false, true])
    func requestBodies(chunkedUpload: Bool) throws {
        let backend = try ScriptedBackend { connection in
            while let request = try connection.readRequest() {
                // Answer with a digest the test can check: size and the raw framing length.
                try connection.respond(fields: ["X-Raw-Length: \(request.rawBody.count)"], body: Array("\(request.body.count)".utf8))
                if request.body != Array(largeBody[0 ..< request.body.count]) { throw TestFailure("upload corrupted") }
            }
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        // Built before the first request: building 64 MiB between requests could outlast the
        // upstream pool's idle timeout and make the reuse check below meaningless.
        let sizes = [0, 1, 70_000, 1 << 20, largeBody.count]
        let uploads = sizes.map { size in
            chunkedUpload ? chunked(Array(largeBody[0 ..< size]), chunkSize: 100_003) : Array(largeBody[0 ..< size])
        }
        for (size, upload) in zip(sizes, uploads) {
            let body = upload
            if chunkedUpload {
                let framed = upload
                try client.send(Array("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".utf8) + framed)
                let response = try client.readResponse()
                #expect(response.bodyText == "\(size)")
                // Forwarded verbatim: the upstream saw exactly the client's chunk framing.
                #expect(response.field("x-raw-length") == "\(framed.count)")
            } else {
                try client.send(Array("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n".utf8) + body)
                let response = try client.readResponse()
                #expect(response.bodyText == "\(size)")
            }
        }
        #expect(backend.errors.isEmpty)
        #expect(backend.accepted == 1)
    }

    @Test("pipelined requests are answered in order, one at a time")
    func pipelining() throws {
        let backend = try ScriptedBackend { connection in
            while let request = try connection.readRequest() {
                try connection.respond(body: Array("answer to \(request.target) \(request.body.count)".utf8))
            }
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        var batch = ""
        for i in 0 ..< 20 {
            batch += i % 3 == 0
                ? request("POST /\(i) HTTP/1.1", ["Host: t", "Content-Length: 5"], body: "abcde")
                : request("GET /\(i) HTTP/1.1")
        }
        try client.send(batch)
        for i in 0 ..< 20 {
            let response = try client.readResponse()
            #expect(response.bodyText == "answer to /\(i) \(i % 3 == 0 ? 5 : 0)")
        }
        #expect(backend.requests.map(\.target) == (0 ..< 20).map { "/\($0)" })
    }

    @Test("Expect: 100-continue reaches the app and its 100 is relayed before the body is sent")
    func expectContinue() throws {
        let backend = try ScriptedBackend { connection in
            // Read the head only, answer 100, then read the body and answer.
            while try connection.reader.fill() {
                if let end = connection.reader.pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: connection.reader.pending[..<end.lowerBound], as: UTF8.self)
                    guard head.lowercased().contains("expect: 100-continue") else { throw TestFailure("no Expect forwarded") }
                    try connection.send("HTTP/1.1 100 Continue\r\n\r\n")
                    break
                }
            }
            while connection.reader.pending.count < 60 + 11 {
                guard try connection.reader.fill() else { return }
                if String(decoding: connection.reader.pending, as: UTF8.self).hasSuffix("hello world") { break }
            }
            try connection.respond(body: Array("got it".utf8))
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(request("PUT /x HTTP/1.1", ["Host: t", "Content-Length: 11", "Expect: 100-continue"]))
        let interim = try client.readResponse()
        #expect(interim.status == 100)
        try client.send("hello world")
        let final = try client.readResponse()
        #expect(final.status == 200)
        #expect(final.bodyText == "got it")
    }

    @Test("hop-by-hop fields and the fields Connection names never reach the upstream", arguments: [false, true])
    func hopByHop(upgrade: Bool) throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let connection = upgrade ? "Connection: upgrade, X-Secret, keep-alive" : "Connection: close, X-Secret"
        let fields = ["Host: t", connection, "X-Secret: hidden", "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive",
                      "TE: gzip", "Trailer: X-T", "Upgrade: \(upgrade ? "websocket" : "h2c")", "X-Visible: yes"]
        let response = try client.exchange(request("GET /hop HTTP/1.1", fields))
        #expect(response.status == 200)
        let seen = try #require(backend.requests.first)
        for name in ["x-secret", "keep-alive", "proxy-connection", "te", "trailer"] {
            #expect(seen.field(name) == nil, "\(name) was forwarded")
        }
        #expect(seen.field("x-visible") == "yes")
        if upgrade {
            // Only our own Connection/Upgrade pair for the allowed upgrade.
            #expect(seen.all("connection") == ["upgrade"])
            #expect(seen.all("upgrade") == ["websocket"])
        } else {
            #expect(seen.field("connection") == nil)
            #expect(seen.field("upgrade") == nil)
        }
    }

    @Test("a WebSocket upgrade is tunnelled only after the upstream's 101 and relays bytes both ways")
    func webSocketEcho() throws {
        let backend = try ScriptedBackend { connection in
            guard let upgrade = try connection.readRequest() else { return }
            guard upgrade.field("upgrade") == "websocket" else {
                try connection.respond(status: 400)
                return
            }
            try connection.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
            // Echo raw bytes (frames) until the client half-closes.
            repeat {
                let bytes = connection.reader.pending
                connection.reader.discardPending()
                if !bytes.isEmpty { try connection.send(bytes) }
            } while try connection.reader.fill()
            connection.shutdownWrite()
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(request("GET /ws HTTP/1.1", ["Host: t", "Connection: Upgrade", "Upgrade: websocket",
                                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]))
        let switching = try client.readResponse()
        #expect(switching.status == 101)
        #expect(switching.field("upgrade")?.lowercased() == "websocket")
        #expect(switching.field("connection")?.lowercased() == "upgrade")
        #expect(switching.field("sec-websocket-accept") == "x")
        #expect(eventually { proxy.statistics.tunnels == 1 })
        for i in 0 ..< 10 {
            let frame = Array(largeBody[i * 1000 ..< i * 1000 + 3000])
            try client.send(frame)
            var got: [UInt8] = []
            while got.count < frame.count {
                if client.reader.pending.isEmpty { _ = try client.reader.fill() }
                got.append(contentsOf: client.reader.pending)
                client.reader.discardPending()
            }
            #expect(got == frame)
        }
        client.shutdownWrite()
        #expect(client.waitForEOF())
        #expect(eventually { proxy.statistics.tunnels == 0 })
    }

    @Test("an upgrade the upstream refuses is answered normally and the connection then closes")
    func refusedUpgrade() throws {
        let backend = try ScriptedBackend.fixed(status: 403, body: Array("no".utf8))
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        // A pipelined request after the upgrade request must never be parsed as HTTP.
        try client.send(request("GET /ws HTTP/1.1", ["Host: t", "Connection: upgrade", "Upgrade: websocket"])
            + request("GET /smuggled HTTP/1.1"))
        let response = try client.readResponse()
        #expect(response.status == 403)
        #expect(response.field("connection") == "close")
        #expect(client.waitForEOF())
        #expect(backend.requests.map(\.target) == ["/ws"])
    }
}

@Suite("HTTP proxy HTTP/1.0 clients", .timeLimit(.minutes(1)))
struct HTTPProxyHTTP10Tests {
    @Test("an HTTP/1.0 client asking for keep-alive gets Connection: keep-alive and can send another request")
    func keepAliveHTTP10() throws {
        let backend = try ScriptedBackend.fixed(body: Array("ten".utf8))
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        for _ in 0 ..< 2 {
            let response = try client.exchange("GET / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n")
            #expect(response.bodyText == "ten")
            #expect(response.field("connection") == "keep-alive")
        }
        // Without keep-alive the proxy closes after the response.
        let plain = try client.exchange("GET / HTTP/1.0\r\nHost: t\r\n\r\n")
        #expect(plain.bodyText == "ten")
        #expect(plain.field("connection") == "close")
        #expect(client.waitForEOF())
    }
}
