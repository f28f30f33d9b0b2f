// Tests for the HTTPProxy layer's failure handling: upstream resets and refusals, timeouts, clients
// that go away, request smuggling attempts, broken upstream framing, and the retry rule.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

@Suite("HTTP proxy failures", .timeLimit(.minutes(1)))
struct HTTPProxyFailureTests {
    @Test("a refused upstream connect is answered 502 and the client connection stays usable")
    func connectRefused() throws {
        let proxy = try InProcessProxy(upstreamPort: try freePort())
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        for _ in 0 ..< 2 {
            let response = try client.exchange(request("GET / HTTP/1.1"))
            #expect(response.status == 502)
            #expect(response.bodyText == "upstream connection failed")
        }
        // One retry per request: two connects each.
        #expect(proxy.statistics.upstream.connectsStarted == 4)
    }

    @Test("an upstream that does not start its response in time is answered 504 with the timeout message")
    func responseStartTimeout() throws {
        let release = Atomic<Bool>(false)
        let backend = try ScriptedBackend { connection in
            _ = try connection.readRequest()
            while !release.load(ordering: .relaxed) { usleep(10_000) }
        }
        defer {
            release.store(true, ordering: .relaxed)
            backend.stop()
        }
        let proxy = try InProcessProxy(upstreamPort: backend.port, timeouts: HTTPRequestTimeouts(responseStart: .milliseconds(300)))
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("GET /slow HTTP/1.1"))
        #expect(response.status == 504)
        #expect(response.bodyText == "request timeout")
        // The upstream connection of the timed-out request is never reused.
        release.store(true, ordering: .relaxed)
        #expect(eventually { proxy.statistics.upstream.idle == 0 })
    }

    @Test("an upstream reset mid-response closes the client connection without completing the message")
    func upstreamResetMidResponse() throws {
        let backend = try ScriptedBackend { connection in
            _ = try connection.readRequest()
            try connection.send(Array("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".utf8) + Array(largeBody[0 ..< 1000]))
            usleep(50_000)
            connection.reset()
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(request("GET / HTTP/1.1"))
        #expect(throws: TestFailure.self) { _ = try client.readResponse() }
        #expect(client.reader.sawEOF || client.reader.pending.count < 100_000)
    }

    @Test("an upstream that closes before responding gets a 502, and a written request is never retried")
    func noRetryAfterWrite() throws {
        let backend = try ScriptedBackend { connection in
            _ = try connection.readRequest()
            connection.reset()
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("POST /pay HTTP/1.1", ["Host: t", "Content-Length: 3"], body: "abc"))
        #expect(response.status == 502)
        #expect(eventually { backend.requests.count == 1 })
        usleep(100_000)
        #expect(backend.requests.count == 1)
        #expect(backend.accepted == 1)
    }

    @Test("a reused connection that failed before any request byte was written is retried on a new one")
    func retryBeforeWrite() throws {
        let resetFirst = Atomic<Bool>(false)
        let backend = try ScriptedBackend { connection in
            while let _ = try connection.readRequest() {
                try connection.respond(body: Array("conn \(connection.index)".utf8))
                if connection.index == 0 {
                    // Reset once the test has frozen the proxy's loop and queued the next request.
                    while !resetFirst.load(ordering: .relaxed) { usleep(2_000) }
                    connection.reset()
                    return
                }
            }
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        #expect(try client.exchange(request("GET /1 HTTP/1.1")).bodyText == "conn 0")
        #expect(eventually { proxy.statistics.upstream.idle == 1 })
        // Freeze the loop; meanwhile the client's request arrives first and the pooled connection is
        // reset after it, so the loop sees both in one batch and writes to the dead socket first.
        let loop = proxy.group.loops[0]
        let frozen = Atomic<Bool>(false)
        loop.execute {
            frozen.store(true, ordering: .relaxed)
            usleep(800_000)
        }
        #expect(eventually { frozen.load(ordering: .relaxed) })
        try client.send(request("GET /2 HTTP/1.1"))
        usleep(50_000)
        resetFirst.store(true, ordering: .relaxed)
        let second = try client.readResponse()
        #expect(second.status == 200)
        #expect(second.bodyText == "conn 1")
        #expect(backend.requests.map(\.target) == ["/1", "/2"])
        let stats = proxy.statistics
        // epoll reports the client's bytes (ready first) before the reset in the same batch, so the
        // write to the dead pooled socket fails before any byte is written and is retried.
        #expect(stats.upstream.retries == 1, "retries \(stats.upstream.retries) idleClosed \(stats.upstream.idleClosedByPeer)")
    }

    @Test("a client that aborts mid-upload cancels the upstream request and that connection is not reused")
    func clientAbortMidUpload() throws {
        let backend = try ScriptedBackend { connection in
            while let request = try connection.readRequest() {
                try connection.respond(body: Array("\(request.body.count)".utf8))
            }
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let warm = try HTTPTestClient(port: proxy.port)
        #expect(try warm.exchange(request("GET / HTTP/1.1")).status == 200)
        warm.close()
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(Array("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n".utf8) + Array(largeBody[0 ..< 20_000]))
        usleep(100_000)
        client.reset()
        #expect(eventually { proxy.statistics.connections == 0 })
        let next = try HTTPTestClient(port: proxy.port)
        #expect(try next.exchange(request("GET / HTTP/1.1")).status == 200)
        // The aborted upload's upstream connection was closed, never handed to the next request.
        #expect(backend.accepted == 2)
        #expect(backend.requests.count == 2)
    }

    @Test("request smuggling attempts are answered 400 or 501 and never reach the upstream", arguments: [
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nabcde", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\nabcde\r\n0\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nabcde", 400),
    ])
    func smuggling(attempt: String, status: Int) throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(attempt)
        let response = try client.readResponse()
        #expect(response.status == status)
        #expect(response.field("connection") == "close")
        #expect(client.waitForEOF())
        #expect(backend.requests.isEmpty)
    }

    @Test("a chunked request body with a broken chunk is cut off upstream and the client gets 400")
    func brokenChunkInBody() throws {
        let backend = try ScriptedBackend { connection in
            while let _ = try connection.readRequest() {
                try connection.respond()
            }
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 400)
        #expect(client.waitForEOF())
        usleep(100_000)
        // The upstream got at most the truncated POST, never a request the client did not frame.
        #expect(!backend.requests.contains { $0.target == "/smuggled" })
    }

    @Test("broken upstream response framing is answered 502, the upstream is not pooled, and the client can go on",
          arguments: [
              "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
              "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
              "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
              "HTTP/9.9 200 OK\r\nContent-Length: 2\r\n\r\nok",
          ])
    func brokenResponseFraming(response bad: String) throws {
        let backend = try ScriptedBackend { connection in
            while let request = try connection.readRequest() {
                if request.target == "/bad" { try connection.send(bad) } else { try connection.respond(body: Array("fine".utf8)) }
            }
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("GET /bad HTTP/1.1"))
        #expect(response.status == 502)
        let next = try client.exchange(request("GET /good HTTP/1.1"))
        #expect(next.bodyText == "fine")
        #expect(backend.accepted == 2)
    }

    @Test("a body on a 204 or on a HEAD response is never passed on and the upstream is not pooled", arguments: [false, true])
    func bodyOnBodilessResponse(head: Bool) throws {
        let backend = try ScriptedBackend { connection in
            while let request = try connection.readRequest() {
                if request.target == "/bad" {
                    try connection.send(head ? "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray" : "HTTP/1.1 204 No Content\r\n\r\nstray")
                } else {
                    try connection.respond(body: Array("fine".utf8))
                }
            }
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let method = head ? "HEAD" : "GET"
        let response = try client.exchange(request("\(method) /bad HTTP/1.1"), requestMethod: head ? .head : .get)
        #expect(response.status == (head ? 200 : 204))
        #expect(response.body.isEmpty)
        let next = try client.exchange(request("GET /good HTTP/1.1"))
        #expect(next.bodyText == "fine")
        #expect(backend.accepted == 2)
    }
}

@Suite("HTTP proxy upstream connect and response head", .timeLimit(.minutes(1)))
struct HTTPProxyConnectTests {
    @Test("an upstream that never completes the connect is retried once, then answered 502")
    func connectTimeout() throws {
        // A listener with a zero backlog that never accepts: once its queue is full, SYNs are dropped.
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        Glibc.listen(fd, 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = UInt16(bigEndian: address.sin_port)
        // Fill the accept queue (non-blocking connects that complete or stay pending).
        var fillers: [Int32] = []
        defer { for f in fillers { Glibc.close(f) } }
        for _ in 0 ..< 4 {
            let f = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(f, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            fillers.append(f)
        }
        usleep(50_000)
        var client = HTTPClientConfiguration()
        client.connectTimeout = .milliseconds(200)
        let proxy = try InProcessProxy(upstreamPort: port, client: client)
        defer { proxy.stop() }
        let http = try HTTPTestClient(port: proxy.port)
        let response = try http.exchange(request("GET / HTTP/1.1"))
        #expect(response.status == 502)
        #expect(proxy.statistics.upstream.connectsStarted == 2)
    }

    @Test("hop-by-hop fields of the response and the fields its Connection names are not passed to the client")
    func responseHopByHop() throws {
        let backend = try ScriptedBackend { connection in
            while try connection.readRequest() != nil {
                try connection.send("HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\n"
                    + "Proxy-Authenticate: Basic\r\nTrailer: X-T\r\nX-App: visible\r\nContent-Length: 2\r\n\r\nok")
            }
        }
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("GET / HTTP/1.1"))
        #expect(response.status == 200)
        #expect(response.bodyText == "ok")
        for name in ["connection", "x-internal", "keep-alive", "proxy-authenticate", "trailer"] {
            #expect(response.field(name) == nil, "\(name) was passed on")
        }
        #expect(response.field("x-app") == "visible")
        #expect(try client.exchange(request("GET / HTTP/1.1")).bodyText == "ok")
        #expect(backend.accepted == 1)
    }
}
