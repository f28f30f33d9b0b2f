// Reliability tests for the HTTPProxy server (reliability.md §2, rows R4, R5, P9 and RFC 9110 §7.6.2):
// idle-connection reclaim near the connection limit, the limit itself with an admin listener beside
// it, early responses during a 10 MiB upload, and Max-Forwards. Real sockets on 127.0.0.1.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

/// A backend that holds requests for `/hold…` until `gate` is set and answers the rest at once.
private func gatedBackend(_ gate: TestFlag) throws -> ScriptedBackend {
    try ScriptedBackend { connection in
        while let request = try connection.readRequest() {
            if request.target.hasPrefix("/hold") {
                while !gate.isSet { usleep(2_000) }
            }
            try connection.respond(body: Array("done \(request.target)".utf8))
        }
    }
}

/// Whether `client` has something to read (or EOF) within `milliseconds`.
private func readable(_ client: HTTPTestClient, within milliseconds: Int32) -> Bool {
    var poll = pollfd(fd: client.fd, events: Int16(POLLIN), revents: 0)
    return Glibc.poll(&poll, 1, milliseconds) > 0
}

private func summed(_ server: HTTPServer) -> HTTPServerStatistics {
    var total = HTTPServerStatistics()
    for loop in server.statistics() {
        total.connections += loop.connections
        total.limitPauses += loop.limitPauses
        total.reclaimed += loop.reclaimed
    }
    return total
}

extension ReliabilityUnderLoad {
@Suite("Reliability: connection limit and idle reclaim", .timeLimit(.minutes(1)))
struct ReliabilityConnectionLimitTests {
    @Test("the reclaim threshold is the limit minus 1/16 of it (94 of 100), and off below 16")
    func threshold() {
        #expect(HTTPServerLoop.reclaimThreshold(forLimit: 100) == 94)
        #expect(HTTPServerLoop.reclaimThreshold(forLimit: 32) == 30)
        #expect(HTTPServerLoop.reclaimThreshold(forLimit: 16) == 15)
        #expect(HTTPServerLoop.reclaimThreshold(forLimit: 15) == Int.max)
    }

    @Test("R4: idle kept-alive connections near the limit are closed oldest first and new clients are served at once")
    func idleReclaimOldestFirst() throws {
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 32 // one loop: reclaim from 30 open connections on
        let server = try localServer(configuration: configuration)
        defer { server.stop() }
        var clients: [HTTPTestClient] = []
        for _ in 0 ..< 40 {
            let client = try HTTPTestClient(port: server.port)
            #expect(try client.exchange(request("GET / HTTP/1.1")).status == 200)
            clients.append(client)
        }
        // Clients 1–11 were reclaimed (one per accept from the 30th on), the 29 newest stay open.
        for (index, client) in clients.enumerated() {
            if index < 11 {
                #expect(client.waitForEOF(timeout: .seconds(2)), "client \(index + 1) still open")
            } else {
                #expect(!readable(client, within: 0), "client \(index + 1) was closed")
            }
        }
        let stats = summed(server.server)
        #expect(stats.reclaimed == 11)
        #expect(stats.limitPauses == 0)
        #expect(stats.connections == 29)
        // A new client is served at once, and a kept connection still works.
        let start = ContinuousClock.now
        #expect(try HTTPTestClient(port: server.port).exchange(request("GET / HTTP/1.1")).status == 200)
        #expect(seconds(since: start) < 1)
        #expect(try clients[39].exchange(request("GET / HTTP/1.1")).status == 200)
    }

    @Test("R4: a connection that sent no head for over a second is reclaimed like an idle one; a busy one never is")
    func headWaitingReclaimedBusyKept() throws {
        let gate = TestFlag()
        let backend = try gatedBackend(gate)
        defer { gate.set(); backend.stop() }
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 16 // reclaim from 15 on
        let proxy = try InProcessProxy(upstreamPort: backend.port, configuration: configuration)
        defer { proxy.stop() }
        let silent = try HTTPTestClient(port: proxy.port)
        #expect(eventually { summed(proxy.server).connections == 1 })
        var busy: [HTTPTestClient] = []
        for index in 0 ..< 14 {
            let client = try HTTPTestClient(port: proxy.port)
            try client.send(request("GET /hold\(index) HTTP/1.1"))
            #expect(eventually { backend.requests.count == index + 1 })
            busy.append(client)
        }
        // A new connection gets 1 s to send its head before it counts as reclaimable.
        usleep(1_100_000)
        // The 16th connection brings the loop to 16 ≥ 15: the silent one (oldest reclaimable) goes.
        let newcomer = try HTTPTestClient(port: proxy.port)
        #expect(silent.waitForEOF(timeout: .seconds(2)))
        #expect(silent.reader.pending.isEmpty)
        #expect(summed(proxy.server).reclaimed == 1)
        gate.set()
        for client in busy { #expect(try client.readResponse().status == 200) }
        #expect(try newcomer.exchange(request("GET / HTTP/1.1")).status == 200)
    }

    @Test("R4: at the limit with every connection busy accepting pauses; the first to go idle makes room for a queued client")
    func pausedLimitFreesIdleForQueuedClient() throws {
        let gate = TestFlag()
        let backend = try gatedBackend(gate)
        defer { gate.set(); backend.stop() }
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 16
        let proxy = try InProcessProxy(upstreamPort: backend.port, configuration: configuration)
        defer { proxy.stop() }
        var busy: [HTTPTestClient] = []
        for index in 0 ..< 16 {
            let client = try HTTPTestClient(port: proxy.port)
            try client.send(request("GET /hold\(index) HTTP/1.1"))
            #expect(eventually { backend.requests.count == index + 1 })
            busy.append(client)
        }
        #expect(summed(proxy.server).limitPauses == 1)
        let queued = try HTTPTestClient(port: proxy.port) // waits in the backlog
        try queued.send(request("GET /queued HTTP/1.1"))
        #expect(!readable(queued, within: 300), "served while every slot was busy")
        // All 16 answers come; their connections go idle (keep-alive, 1 h idle timeout), and the
        // queued client must not wait for that timeout.
        gate.set()
        for (index, client) in busy.enumerated() {
            do {
                #expect(try client.readResponse().status == 200)
            } catch {
                Issue.record("client \(index): \(error)")
            }
        }
        let response = try queued.readResponse()
        #expect(response.status == 200)
        #expect(response.bodyText == "done /queued")
        #expect(summed(proxy.server).reclaimed >= 1)
    }

    @Test("R5: with a limit of 100, the 101st connection waits in the backlog, the admin listener answers, and it is served once a slot frees")
    func connectionLimitWithAdminListener() throws {
        let gate = TestFlag()
        let backend = try gatedBackend(gate)
        defer { gate.set(); backend.stop() }
        #expect(ensureFileDescriptorLimit(1024))
        var configuration = HTTPServerConfiguration()
        configuration.maxConnections = 100
        let proxy = try InProcessProxy(upstreamPort: backend.port, configuration: configuration)
        defer { proxy.stop() }
        // The admin/probe listener is a separate server on the same loop with its own small cap.
        var adminConfiguration = HTTPServerConfiguration()
        adminConfiguration.maxConnections = 64
        let admin = try HTTPServer.start(on: proxy.group, address: .loopback(port: 0), configuration: adminConfiguration) { _ in
            LocalHandler(.text(200, "ok"))
        }
        var busy: [HTTPTestClient] = []
        for index in 0 ..< 100 {
            let client = try HTTPTestClient(port: proxy.port)
            try client.send(request("GET /hold\(index) HTTP/1.1"))
            #expect(eventually { backend.requests.count == index + 1 })
            busy.append(client)
        }
        let extra = try HTTPTestClient(port: proxy.port)
        try extra.send(request("GET /extra HTTP/1.1"))
        #expect(!readable(extra, within: 300), "served beyond the limit")
        for _ in 0 ..< 3 {
            #expect(try HTTPTestClient(port: admin.localAddress.port).exchange(request("GET /healthz HTTP/1.1")).status == 200)
        }
        var stats = summed(proxy.server)
        #expect(stats.limitPauses == 1)
        #expect(stats.connections == 100)
        #expect(stats.reclaimed == 0)
        // One client gives up its slot: the waiting connection is accepted and served.
        let start = ContinuousClock.now
        busy[0].close()
        let response = try extra.readResponse()
        let waited = seconds(since: start)
        #expect(response.status == 200)
        #expect(response.bodyText == "done /extra")
        #expect(waited < 1, "served \(waited) s after a slot freed")
        gate.set()
        for client in busy.dropFirst() { #expect(try client.readResponse().status == 200) }
        stats = summed(proxy.server)
        // Accepting the waiting connection filled the last slot again.
        #expect(stats.limitPauses == 2)
    }
}

}

@Suite("Reliability: early responses during an upload", .timeLimit(.minutes(1)))
struct ReliabilityEarlyResponseTests {
    /// Sends a 10 MiB body and a pipelined GET on a background thread while the test reads.
    private func uploadThenGet(_ client: HTTPTestClient, head: String) -> Background<Bool> {
        let fd = client.fd
        return Background {
            var bytes = Array(head.utf8)
            bytes += [UInt8](repeating: UInt8(ascii: "x"), count: 10 * 1024 * 1024)
            bytes += Array(request("GET /after HTTP/1.1").utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, min($0.count, 256 * 1024), Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return false }
                offset += n
            }
            Glibc.shutdown(fd, Int32(SHUT_WR))
            return true
        }
    }

    @Test("P9: a 503 or 413 answered while 10 MiB are uploading is read whole, the body is never parsed as a request, and the connection ends with a clean close",
          arguments: [503, 413])
    func earlyResponseDuringUpload(status: Int) throws {
        final class Overflow: HTTPHandler {
            let events: HookEvents
            init(events: HookEvents) { self.events = events }
            func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
                events.record("handled")
                return .respond(.text(503, "pending request queue full"))
            }
        }
        let events = HookEvents()
        var configuration = HTTPServerConfiguration()
        // 413 comes from the server itself, before the handler; 503 from the handler (a full breaker).
        configuration.maxRequestBodyBytes = status == 413 ? 1024 * 1024 : nil
        let server = try InProcessProxy(configuration: configuration) { _ in Overflow(events: events) }
        defer { server.stop() }
        let client = try HTTPTestClient(port: server.port, timeout: .seconds(30))
        let upload = uploadThenGet(client, head: "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: \(10 * 1024 * 1024)\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == status)
        #expect(response.field("connection") == "close")
        if status == 503 { #expect(response.bodyText == "pending request queue full") }
        // Nothing after the response: no second answer (the body was not parsed), and EOF, not a reset.
        let rest = try client.readToEOF()
        #expect(rest.isEmpty, "\(rest.count) bytes after the response: \(String(decoding: rest.prefix(200), as: UTF8.self))")
        #expect(try upload.wait(timeout: .seconds(30)))
        #expect(events.all.count == (status == 503 ? 1 : 0))
    }
}

@Suite("Reliability: Max-Forwards", .timeLimit(.minutes(1)))
struct ReliabilityMaxForwardsTests {
    @Test("OPTIONS with Max-Forwards: 0 is answered by the proxy with Allow and never forwarded")
    func zeroIsAnsweredHere() throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("OPTIONS * HTTP/1.1", ["Host: t", "Max-Forwards: 0"]))
        #expect(response.status == 200)
        #expect(response.field("allow") == "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS")
        #expect(response.body.isEmpty)
        // The connection stays usable and the next OPTIONS without Max-Forwards goes upstream.
        #expect(try client.exchange(request("OPTIONS /x HTTP/1.1")).status == 200)
        #expect(backend.requests.map(\.target) == ["/x"])
    }

    @Test("OPTIONS with Max-Forwards: n reaches the upstream with n - 1, once")
    func decremented() throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        #expect(try client.exchange(request("OPTIONS /a HTTP/1.1", ["Host: t", "Max-Forwards: 3"])).status == 200)
        #expect(try client.exchange(request("OPTIONS /b HTTP/1.1", ["Host: t", "max-forwards: 99999999999999999999999"])).status == 200)
        let requests = backend.requests
        #expect(requests.count == 2)
        #expect(requests.first?.all("max-forwards") == ["2"])
        #expect(requests.last?.all("max-forwards") == ["\(UInt64.max - 1)"])
    }

    @Test("an invalid or repeated Max-Forwards on OPTIONS is answered 400; other methods forward it untouched",
          arguments: ["Max-Forwards: abc", "Max-Forwards: -1", "Max-Forwards: ", "Max-Forwards: 1\r\nMax-Forwards: 2"])
    func invalid(field: String) throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("OPTIONS / HTTP/1.1", ["Host: t", field]))
        #expect(response.status == 400)
        #expect(response.bodyText == "invalid Max-Forwards")
        #expect(backend.requests.isEmpty)
        let get = try HTTPTestClient(port: proxy.port).exchange(request("GET / HTTP/1.1", ["Host: t", "Max-Forwards: 0"]))
        #expect(get.status == 200)
        #expect(backend.requests.first?.all("max-forwards") == ["0"])
    }
}

extension ReliabilityUnderLoad {
@Suite("Reliability: drain and the accept queue", .timeLimit(.minutes(1)))
struct ReliabilityDrainAcceptQueueTests {
    @Test("L7: connections waiting in the SO_REUSEPORT accept queues when a drain starts are answered with Connection: close, never reset")
    func queuedConnectionsSurviveListenerClose() throws {
        #expect(ensureFileDescriptorLimit(4096))
        let proxy = try InProcessProxy(loops: 2) { _ in LocalHandler(.text(200, "served")) }
        defer { proxy.stop() }
        #expect(try HTTPTestClient(port: proxy.port).exchange(request("GET /warm HTTP/1.1")).status == 200)
        // Freeze both loops, so every connection made now completes in the kernel and waits in one
        // of the two listeners' accept queues, request bytes included. More than a loop accepts in
        // one turn (2 × 64), so the listener close queued behind the freeze finds some still there.
        let frozen = Locked(0)
        for loop in proxy.group.loops {
            loop.execute {
                frozen.withLock { $0 += 1 }
                usleep(1_500_000)
            }
        }
        #expect(eventually { frozen.value == 2 })
        var clients: [HTTPTestClient] = []
        for index in 0 ..< 600 {
            let client = try HTTPTestClient(port: proxy.port)
            try client.send(request("GET /queued\(index) HTTP/1.1"))
            clients.append(client)
        }
        // Drain starts while they are queued: the listeners close once the loops run again.
        let drained = TestFlag()
        proxy.server.drain(timeout: .seconds(20)) { drained.set() }
        var outcomes: [String] = []
        for client in clients {
            do {
                let response = try client.readResponse()
                outcomes.append(response.status == 200 && response.field("connection") == "close" ? "ok" : "\(response.status) \(response.fields)")
            } catch {
                outcomes.append("\(error)")
            }
        }
        #expect(outcomes.filter { $0 != "ok" }.isEmpty, "\(outcomes.filter { $0 != "ok" })")
        #expect(eventually { drained.isSet })
        // New connections are refused once the listeners are closed.
        #expect(throws: TestFailure.self) { _ = try HTTPTestClient(port: proxy.port) }
    }

    @Test("L6: a connection accepted but silent when a drain starts gets a moment to send its request, then closes without an answer")
    func silentConnectionAtDrainCloses() throws {
        let proxy = try localServer()
        defer { proxy.stop() }
        let silent = try HTTPTestClient(port: proxy.port)
        let late = try HTTPTestClient(port: proxy.port)
        #expect(eventually { summed(proxy.server).connections == 2 })
        let drained = TestFlag()
        let start = ContinuousClock.now
        proxy.server.drain(timeout: .seconds(20)) { drained.set() }
        usleep(200_000)
        let response = try late.exchange(request("GET / HTTP/1.1"))
        #expect(response.status == 200)
        #expect(response.field("connection") == "close")
        #expect(silent.waitForEOF(timeout: .seconds(5)))
        #expect(silent.reader.pending.isEmpty)
        #expect(eventually { drained.isSet })
        #expect(seconds(since: start) < 3)
    }
}
}
