// Tests for the HTTPProxy layer's upstream pool and per-request timeouts: idle sockets closed by the
// upstream are dropped before reuse, the idle timeout and idle bound, and Knative's timeout outcome
// once a response has started.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

@Suite("HTTP upstream pool", .timeLimit(.minutes(1)))
struct HTTPUpstreamPoolTests {
    @Test("a pooled connection the upstream closes while idle is dropped, and the next request opens a new one")
    func idleFINDropsConnection() throws {
        let backend = try ScriptedBackend { connection in
            _ = try connection.readRequest()
            try connection.respond(body: Array("once".utf8))
            // Like an app whose keep-alive timeout is shorter than the pool's: close while idle.
            usleep(100_000)
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        #expect(try client.exchange(request("GET /1 HTTP/1.1")).bodyText == "once")
        #expect(eventually { proxy.statistics.upstream.idleClosedByPeer == 1 })
        #expect(proxy.statistics.upstream.idle == 0)
        #expect(try client.exchange(request("GET /2 HTTP/1.1")).bodyText == "once")
        #expect(backend.accepted == 2)
        #expect(proxy.statistics.upstream.retries == 0)
    }

    @Test("idle pooled connections are closed after the pool's idle timeout")
    func idleTimeout() throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        var client = HTTPClientConfiguration()
        client.idleTimeout = .milliseconds(200)
        let proxy = try InProcessProxy(upstreamPort: backend.port, client: client)
        defer { proxy.stop() }
        let http = try HTTPTestClient(port: proxy.port)
        #expect(try http.exchange(request("GET / HTTP/1.1")).status == 200)
        #expect(proxy.statistics.upstream.idle == 1)
        #expect(eventually { proxy.statistics.upstream.idle == 0 })
        #expect(try http.exchange(request("GET / HTTP/1.1")).status == 200)
        #expect(backend.accepted == 2)
    }

    @Test("no more idle connections are kept than the pool's bound")
    func idleBound() throws {
        let backend = try slowBackend(delay: .milliseconds(200))
        defer { backend.stop() }
        var client = HTTPClientConfiguration()
        client.maxIdleConnections = 1
        let proxy = try InProcessProxy(upstreamPort: backend.port, client: client)
        defer { proxy.stop() }
        let a = try HTTPTestClient(port: proxy.port)
        let b = try HTTPTestClient(port: proxy.port)
        try a.send(request("GET /a HTTP/1.1"))
        try b.send(request("GET /b HTTP/1.1"))
        #expect(try a.readResponse().status == 200)
        #expect(try b.readResponse().status == 200)
        #expect(backend.accepted == 2)
        #expect(eventually { proxy.statistics.upstream.idle == 1 })
    }
}

@Suite("HTTP request timeouts after the response started", .timeLimit(.minutes(1)))
struct HTTPRequestTimeoutOutcomeTests {
    /// A backend that sends `bytes` and then stalls until the test ends.
    func stallingBackend(_ bytes: String, release: TestFlag) throws -> ScriptedBackend {
        try ScriptedBackend { connection in
            _ = try connection.readRequest()
            try connection.send(bytes)
            while !release.isSet { usleep(10_000) }
        }
    }

    @Test("a chunked response gets the timeout message as a last chunk and a proper end")
    func chunkedGetsMessage() throws {
        let release = TestFlag()
        let backend = try stallingBackend("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", release: release)
        defer {
            release.set()
            backend.stop()
        }
        let proxy = try InProcessProxy(upstreamPort: backend.port, timeouts: HTTPRequestTimeouts(idle: .milliseconds(300)))
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("GET / HTTP/1.1"))
        #expect(response.status == 200)
        #expect(response.bodyText == "hellorequest timeout")
        // The message ended properly, so the same client connection carries the next request.
        #expect(try client.exchange(request("GET / HTTP/1.1")).bodyText == "hellorequest timeout")
    }

    @Test("a Content-Length response cut by a timeout closes the connection short of its length")
    func contentLengthIsCut() throws {
        let release = TestFlag()
        let backend = try stallingBackend("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello", release: release)
        defer {
            release.set()
            backend.stop()
        }
        let proxy = try InProcessProxy(upstreamPort: backend.port, timeouts: HTTPRequestTimeouts(total: .milliseconds(300)))
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(request("GET / HTTP/1.1"))
        #expect(throws: TestFailure.self) { _ = try client.readResponse() }
        #expect(client.reader.sawEOF)
    }
}
