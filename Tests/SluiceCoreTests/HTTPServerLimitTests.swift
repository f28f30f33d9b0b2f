// Tests for the HTTPProxy layer's server limits and timeouts: head limits, slowloris, idle and body
// progress timeouts, the connection limit, early responses, and requests the server answers itself.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

/// Answers everything locally with `response` (no upstream).
final class LocalHandler: HTTPHandler {
    let response: HTTPLocalResponse
    init(_ response: HTTPLocalResponse) { self.response = response }
    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision { .respond(response) }
}

func localServer(_ response: HTTPLocalResponse = .text(200, "ok"), configuration: HTTPServerConfiguration = HTTPServerConfiguration()) throws -> InProcessProxy {
    try InProcessProxy(configuration: configuration) { _ in LocalHandler(response) }
}

@Suite("HTTP server limits and timeouts", .timeLimit(.minutes(1)))
struct HTTPServerLimitTests {
    @Test("head limits answer 431 and 414 and close; a 6 KB cookie with 60 fields is accepted", arguments: [
        (65 * 1024, 1, 0, 431),
        (100, 101, 0, 431),
        (100, 1, 17 * 1024, 414),
        (6000, 60, 0, 200),
    ])
    func headLimits(valueBytes: Int, fieldCount: Int, targetBytes: Int, status: Int) throws {
        let server = try localServer()
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port)
        let target = "/" + String(repeating: "a", count: targetBytes)
        var fields = ["Host: t", "Cookie: " + String(repeating: "c", count: valueBytes)]
        for i in 1 ..< fieldCount { fields.append("X-Field-\(i): v") }
        try client.send(request("GET \(target) HTTP/1.1", fields))
        let response = try client.readResponse()
        #expect(response.status == status)
        if status != 200 {
            #expect(response.field("connection") == "close")
            #expect(client.waitForEOF())
        }
    }

    @Test("a head that does not complete within the head timeout gets 408; a silent connection is just closed")
    func slowloris() throws {
        var configuration = HTTPServerConfiguration()
        configuration.headTimeout = .milliseconds(500)
        let server = try localServer(configuration: configuration)
        defer { server.stop() }
        let slow = try HTTPTestClient(port: server.port)
        let silent = try HTTPTestClient(port: server.port)
        try slow.send("GET / HTTP/1.1\r\nHost: t\r\n")
        // Trickling bytes does not extend the deadline: it is a total.
        for _ in 0 ..< 3 {
            usleep(100_000)
            try slow.send("X-A: b\r\n")
        }
        let response = try slow.readResponse()
        #expect(response.status == 408)
        #expect(slow.waitForEOF())
        #expect(silent.waitForEOF())
        #expect(silent.reader.pending.isEmpty)
    }

    @Test("an idle kept-alive connection is closed after the idle timeout")
    func idleTimeout() throws {
        var configuration = HTTPServerConfiguration()
        configuration.idleTimeout = .milliseconds(300)
        let server = try localServer(configuration: configuration)
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port)
        #expect(try client.exchange(request("GET / HTTP/1.1")).status == 200)
        #expect(client.waitForEOF())
        #expect(eventually { server.statistics.connections == 0 })
    }

    @Test("a request body that stops arriving gets 408 after the body progress timeout")
    func bodyProgressTimeout() throws {
        let backend = try ScriptedBackend.echo()
        defer { backend.stop() }
        var configuration = HTTPServerConfiguration()
        configuration.bodyProgressTimeout = .milliseconds(300)
        let proxy = try InProcessProxy(upstreamPort: backend.port, configuration: configuration)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(request("POST / HTTP/1.1", ["Host: t", "Content-Length: 100"], body: "only ten b"))
        let response = try client.readResponse()
        #expect(response.status == 408)
        #expect(client.waitForEOF())
    }

    @Test("at the connection limit new connections wait in the backlog and are served once a slot frees")
    func connectionLimit() throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 2
        let server = try localServer(configuration: configuration)
        defer { server.stop() }
        let first = try HTTPTestClient(port: server.port)
        let second = try HTTPTestClient(port: server.port)
        #expect(try first.exchange(request("GET / HTTP/1.1")).status == 200)
        #expect(try second.exchange(request("GET / HTTP/1.1")).status == 200)
        let third = try HTTPTestClient(port: server.port) // completes in the kernel backlog
        try third.send(request("GET / HTTP/1.1"))
        var poll = pollfd(fd: third.fd, events: Int16(POLLIN), revents: 0)
        #expect(Glibc.poll(&poll, 1, 300) == 0, "served while at the limit")
        #expect(server.statistics.limitPauses == 1)
        first.close()
        let response = try third.readResponse()
        #expect(response.status == 200)
    }

    @Test("an early local response keeps the connection when little body remains, else closes after the response")
    func earlyResponse() throws {
        let server = try localServer(.text(503, "pending request queue full"))
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port)
        // Small body: read and dropped, the connection stays usable.
        let small = try client.exchange(request("POST / HTTP/1.1", ["Host: t", "Content-Length: 1000"], body: String(repeating: "x", count: 1000)))
        #expect(small.status == 503)
        #expect(small.bodyText == "pending request queue full")
        #expect(small.field("connection") == nil)
        #expect(try client.exchange(request("GET / HTTP/1.1")).status == 503)
        // Large body: Connection: close, and the client reads the whole answer (no reset) while sending.
        let large = try HTTPTestClient(port: server.port)
        try large.send(request("POST / HTTP/1.1", ["Host: t", "Content-Length: 10000000"], body: String(repeating: "y", count: 100_000)))
        let response = try large.readResponse()
        #expect(response.status == 503)
        #expect(response.field("connection") == "close")
        #expect(response.bodyText == "pending request queue full")
    }

    @Test("a body larger than the configured maximum is answered 413")
    func requestBodyTooLarge() throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxRequestBodyBytes = 1000
        let server = try localServer(configuration: configuration)
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port)
        let response = try client.exchange(request("POST / HTTP/1.1", ["Host: t", "Content-Length: 100000"]))
        #expect(response.status == 413)
        #expect(response.field("connection") == "close")
    }

    @Test("CONNECT and TRACE are answered 405 without reaching the handler", arguments: ["CONNECT example.com:443 HTTP/1.1", "TRACE / HTTP/1.1"])
    func connectAndTrace(line: String) throws {
        let events = HookEvents()
        final class Recorder: HTTPHandler {
            let events: HookEvents
            init(events: HookEvents) { self.events = events }
            func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
                events.record("handled")
                return .respond(.text(200, "no"))
            }
        }
        let server = try InProcessProxy { _ in Recorder(events: events) }
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port)
        let response = try client.exchange(request(line, ["Host: example.com:443"]))
        #expect(response.status == 405)
        #expect(events.all.isEmpty)
    }

    @Test("a client that reads nothing of a large response is closed after the write progress timeout")
    func writeProgressTimeout() throws {
        let backend = try sizedBodyBackend(.contentLength)
        defer { backend.stop() }
        var configuration = HTTPServerConfiguration()
        configuration.writeProgressTimeout = .milliseconds(400)
        let proxy = try InProcessProxy(upstreamPort: backend.port, configuration: configuration)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port, receiveBuffer: 4096)
        try client.send(request("GET /\(largeBody.count) HTTP/1.1"))
        #expect(eventually(timeout: .seconds(10)) { proxy.statistics.connections == 0 })
    }
}

@Suite("HTTP server lingering close", .timeLimit(.minutes(1)))
struct HTTPServerLingerTests {
    @Test("after a closing early response, input keeps the connection lingering up to the total cap, then it closes")
    func lingerIsExtendedButBounded() throws {
        var configuration = HTTPServerConfiguration()
        configuration.lingerTimeout = .seconds(1)
        configuration.lingerTotalTimeout = .seconds(3)
        let server = try localServer(.text(503, "no"), configuration: configuration)
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port)
        try client.send(request("POST / HTTP/1.1", ["Host: t", "Content-Length: 10000000"], body: "x"))
        let response = try client.readResponse()
        #expect(response.status == 503)
        #expect(response.field("connection") == "close")
        // Keep sending for longer than one linger timeout: the connection must still be there.
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .milliseconds(1800) {
            try client.send(String(repeating: "x", count: 100))
            usleep(100_000)
        }
        #expect(server.statistics.connections == 1)
        // ...but not beyond the total cap, even while bytes keep coming.
        let closed = eventually(timeout: .seconds(15)) {
            (try? client.send(String(repeating: "x", count: 100))) == nil || server.statistics.connections == 0
        }
        #expect(closed)
    }
}
