// Tests for the WebSocket opening handshake (HTTP1 rules: accept and reject cases, the client's check of
// the 101) and for the HTTPServer hook that answers 101 and hands a connection to its handler.
import Foundation
import Glibc
import Testing
@testable import SluiceCore
// The shared test-support target on main (absent on this branch when it was written).
import SluiceTestSupport

/// Validates `text` (a request head) as a WebSocket handshake.
private func validate(_ text: String) -> Result<[UInt8], WebSocketHandshakeRejection> {
    var head = HTTPHead()
    let bytes = Array(text.utf8)
    guard case .complete = head.parseRequest(bytes.span) else {
        return .failure(WebSocketHandshakeRejection(status: 0, reason: "test request did not parse"))
    }
    return WebSocketHandshake.validateRequest(head, in: bytes.span)
}

private let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="

private func handshake(method: String = "GET", version: String = "HTTP/1.1", fields: [String]) -> String {
    request("\(method) /chat \(version)", ["Host: server.example.com"] + fields)
}

private let validFields = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: \(sampleKey)", "Sec-WebSocket-Version: 13"]

@Suite("WebSocket handshake", .timeLimit(.minutes(1)))
struct WebSocketHandshakeTests {
    @Test("a valid request yields its key; token lists and letter case are accepted")
    func acceptsValid() throws {
        let plain = try validate(handshake(fields: validFields)).get()
        #expect(plain == Array(sampleKey.utf8))
        let lists = try validate(handshake(fields: ["Upgrade: foo/2, WebSocket", "Connection: keep-alive, upgrade",
                                                    "sec-websocket-key: \(sampleKey)", "SEC-WEBSOCKET-VERSION: 13"])).get()
        #expect(lists == Array(sampleKey.utf8))
        // An empty body announced with Content-Length: 0 is no body.
        #expect((try? validate(handshake(fields: validFields + ["Content-Length: 0"])).get()) == Array(sampleKey.utf8))
    }

    @Test("invalid requests are refused with the status and fields the RFC asks for", arguments: [
        (handshake(method: "POST", fields: validFields + ["Content-Length: 0"]), 405, "Allow"),
        (handshake(fields: ["Connection: Upgrade", "Sec-WebSocket-Key: \(sampleKey)", "Sec-WebSocket-Version: 13"]), 426, "Upgrade"),
        (handshake(fields: ["Upgrade: h2c", "Connection: Upgrade", "Sec-WebSocket-Key: \(sampleKey)", "Sec-WebSocket-Version: 13"]), 426, "Upgrade"),
        (handshake(fields: ["Upgrade: websocket", "Connection: keep-alive", "Sec-WebSocket-Key: \(sampleKey)", "Sec-WebSocket-Version: 13"]), 400, ""),
        (handshake(version: "HTTP/1.0", fields: validFields), 400, ""),
        (handshake(fields: ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: \(sampleKey)", "Sec-WebSocket-Version: 8"]), 426, "Sec-WebSocket-Version"),
        (handshake(fields: ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: \(sampleKey)"]), 426, "Sec-WebSocket-Version"),
        (handshake(fields: ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]), 400, ""),
        (handshake(fields: ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 13"]), 400, ""),
        (handshake(fields: ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: not base64!", "Sec-WebSocket-Version: 13"]), 400, ""),
    ])
    func rejects(text: String, status: Int, requiredField: String) {
        switch validate(text) {
        case .success:
            Issue.record("accepted: \(text)")
        case .failure(let rejection):
            #expect(rejection.status == status, "\(rejection) for \(text)")
            #expect(!rejection.reason.isEmpty)
            if !requiredField.isEmpty {
                #expect(rejection.fields.contains { $0.name == requiredField }, "\(rejection.fields)")
            }
            if requiredField == "Sec-WebSocket-Version" {
                #expect(rejection.fields.contains { $0.name == "Sec-WebSocket-Version" && $0.value == "13" })
            }
        }
    }

    @Test("the client accepts only a 101 with Upgrade, Connection and the matching Sec-WebSocket-Accept", arguments: [
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", true),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", true),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", false),
        ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", false),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", false),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
    ])
    func clientChecksResponse(text: String, accepted: Bool) {
        var head = HTTPHead()
        let bytes = Array(text.utf8)
        guard case .complete = head.parseResponse(bytes.span, requestMethod: .get) else {
            Issue.record("did not parse")
            return
        }
        let problem = WebSocketHandshake.validateResponse(head, in: bytes.span, key: sampleKey)
        #expect((problem == nil) == accepted, "\(problem ?? "accepted")")
    }

    @Test("the client's request carries GET, Host, Upgrade, Connection, the key and version 13")
    func clientRequest() throws {
        let bytes = try WebSocketHandshake.requestHead(host: "autoscaler.knative-serving:8080", target: "/", key: sampleKey)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("GET / HTTP/1.1\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"))
        let result = validate(text)
        #expect((try? result.get()) == Array(sampleKey.utf8))
        #expect(text.contains("Host: autoscaler.knative-serving:8080\r\n"))
        #expect(throws: HTTPSerializationError.self) { try WebSocketHandshake.requestHead(host: "bad\r\nhost", target: "/", key: sampleKey) }
    }
}

// MARK: - the HTTPServer hook

/// Echoes whatever arrives: the protocol a test handler switches to.
final class EchoTakeover: ConnectionDelegate {
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        connection.write(buffer.slice(range))
        return range.count
    }
    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {}
}

/// Switches every request to the echo protocol; records what the server reported.
final class SwitchingHandler: HTTPHandler {
    let finished: Locked<[Int]>
    let takenOver: Locked<[String]>
    init(finished: Locked<[Int]>, takenOver: Locked<[String]>) {
        self.finished = finished
        self.takenOver = takenOver
    }
    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        .switchProtocols(HTTPLocalResponse(status: 101, fields: [("Upgrade", "echo"), ("Connection", "Upgrade")]))
    }
    func requestFinished(_ exchange: HTTPExchange, summary: HTTPRequestSummary) {
        finished.withLock { $0.append(summary.status) }
    }
    func takeOver(_ exchange: HTTPExchange, connection: Connection) {
        let target = exchange.target.map { String(decoding: $0.bytes, as: UTF8.self) } ?? ""
        takenOver.withLock { $0.append(target) }
        connection.delegate = EchoTakeover()
    }
}

@Suite("HTTP server protocol switch", .timeLimit(.minutes(1)))
struct WebSocketServerHookTests {
    @Test(".switchProtocols writes the 101, reports it, and hands the connection over with the bytes sent after the head")
    func handsOver() throws {
        let finished = Locked<[Int]>([])
        let takenOver = Locked<[String]>([])
        let server = try InProcessProxy { _ in SwitchingHandler(finished: finished, takenOver: takenOver) }
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port)
        try client.send(request("GET /echo HTTP/1.1", ["Host: t", "Upgrade: echo", "Connection: Upgrade"]) + "early")
        let response = try client.readResponse()
        #expect(response.status == 101)
        #expect(response.field("upgrade") == "echo")
        #expect(response.field("content-length") == nil)
        #expect(response.field("connection") == "Upgrade")
        while client.reader.pending.count < 5, try client.reader.fill() {}
        #expect(client.reader.pending == Array("early".utf8))
        client.reader.discardPending()
        try client.send("later")
        while client.reader.pending.count < 5, try client.reader.fill() {}
        #expect(client.reader.pending == Array("later".utf8))
        #expect(finished.value == [101])
        #expect(takenOver.value == ["/echo"])
        // The server no longer counts the connection: its drain does not wait for the new protocol.
        #expect(eventually { server.statistics.connections == 0 })
    }

    @Test(".switchProtocols on a request that cannot be upgraded is answered 500 and the connection closes")
    func refusesWithoutUpgrade() throws {
        let finished = Locked<[Int]>([])
        let takenOver = Locked<[String]>([])
        let server = try InProcessProxy { _ in SwitchingHandler(finished: finished, takenOver: takenOver) }
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port)
        let response = try client.exchange(request("GET / HTTP/1.1", ["Host: t"]))
        #expect(response.status == 500)
        #expect(response.field("connection") == "close")
        #expect(client.waitForEOF())
        #expect(takenOver.value.isEmpty)
        #expect(eventually { finished.value == [500] })
    }
}
