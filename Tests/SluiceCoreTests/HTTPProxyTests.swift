// Tests for the HTTPProxy layer's forwarding path: keep-alive both sides, bodies, the handler hook,
// and the real `sluice proxy` binary.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

@Suite("HTTP proxy forwarding", .timeLimit(.minutes(1)))
struct HTTPProxyForwardingTests {
    @Test("GETs and POSTs are proxied with keep-alive on both sides and one reused upstream connection")
    func keepAliveBothSides() throws {
        let backend = try ScriptedBackend.echo()
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        for i in 0 ..< 5 {
            let get = try client.exchange(request("GET /get/\(i) HTTP/1.1"))
            #expect(get.status == 200)
            #expect(get.body.isEmpty)
            let body = "payload number \(i)"
            let post = try client.exchange(request("POST /post HTTP/1.1", ["Host: test", "Content-Length: \(body.utf8.count)"], body: body))
            #expect(post.status == 200)
            #expect(post.bodyText == body)
        }
        #expect(backend.accepted == 1)
        #expect(backend.requests.count == 10)
        #expect(backend.requests.first?.target == "/get/0")
        let stats = proxy.statistics
        #expect(stats.upstream.connectsStarted == 1)
        #expect(stats.upstream.reuses == 9)
    }

    @Test("the forwarded head keeps the client's field lines and adds X-Forwarded-For and X-Forwarded-Proto")
    func forwardedHeaders() throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("GET /x?y=1 HTTP/1.1", ["Host: example.com", "X-Forwarded-For: 10.0.0.1", "Accept: */*", "X-Custom: a  b"]))
        #expect(response.status == 200)
        let seen = try #require(backend.requests.first)
        #expect(seen.method == "GET")
        #expect(seen.target == "/x?y=1")
        #expect(seen.field("host") == "example.com")
        #expect(seen.all("x-forwarded-for") == ["10.0.0.1, 127.0.0.1"])
        #expect(seen.field("x-forwarded-proto") == "http")
        #expect(seen.field("x-custom") == "a  b")
        #expect(seen.field("accept") == "*/*")
    }
}

/// A handler exercising the hook: local probe answers, suspend/resume, and per-request edits.
final class HookTestHandler: HTTPHandler {
    let upstream: HTTPUpstream
    let events: HookEvents
    static let probe = HTTPFieldName("k-network-probe")
    static let revision = HTTPFieldName("knative-serving-revision")
    static let originalHost = HTTPFieldName("k-original-host")
    static let probeAnswer = HTTPLocalResponse.text(200, "queue")
    var held: [HTTPExchangeTicket] = []

    init(upstream: HTTPUpstream, events: HookEvents) {
        self.upstream = upstream
        self.events = events
    }

    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        if let probe = exchange.firstField(named: Self.probe), exchange.value(of: probe, equals: Array("queue".utf8)) {
            return .respond(Self.probeAnswer)
        }
        exchange.removeFields(named: Self.revision)
        if let host = exchange.value(of: Self.originalHost) {
            try? exchange.replaceHost(with: host.bytes)
        }
        try? exchange.addField(name: "K-Proxy-Request", value: "activator")
        if exchange.target?.bytes == Array("/hold".utf8) {
            let ticket = exchange.ticket
            held.append(ticket)
            events.record("suspended")
            // Resume from another thread after a moment, as a breaker releasing capacity would.
            let upstream = self.upstream
            Thread.detachNewThread {
                usleep(100_000)
                ticket.resume(.forward(upstream))
            }
            return .suspend
        }
        return .forward(upstream)
    }

    func requestCancelled(_ exchange: HTTPExchange, reason: HTTPCancellationReason) {
        events.record("cancelled \(reason)")
    }

    func responseStarted(_ exchange: HTTPExchange, status: Int) { events.record("response \(status)") }

    func requestFinished(_ exchange: HTTPExchange, summary: HTTPRequestSummary) {
        events.record("finished \(summary.status) aborted=\(summary.clientAborted)")
    }
}

final class HookEvents: Sendable {
    private let list = Mutex<[String]>([])
    func record(_ event: String) { list.withLock { $0.append(event) } }
    var all: [String] { list.withLock { $0 } }
}

@Suite("HTTP handler hook", .timeLimit(.minutes(1)))
struct HTTPHandlerHookTests {
    @Test("a handler answers a probe locally, suspends and resumes a request, and edits the forwarded head")
    func probeSuspendAndEdits() throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let upstream = HTTPUpstream(address: .loopback(port: backend.port))
        let events = HookEvents()
        let proxy = try InProcessProxy { _ in HookTestHandler(upstream: upstream, events: events) }
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)

        let probe = try client.exchange(request("GET / HTTP/1.1", ["Host: a", "K-Network-Probe: queue"]))
        #expect(probe.status == 200)
        #expect(probe.bodyText == "queue")
        #expect(backend.requests.isEmpty)

        let held = try client.exchange(request("GET /hold HTTP/1.1", ["Host: public.example", "K-Original-Host: app.internal",
                                                                     "Knative-Serving-Revision: rev-1", "X-Keep: yes"]))
        #expect(held.status == 200)
        let seen = try #require(backend.requests.last)
        #expect(seen.field("host") == "app.internal")
        #expect(seen.field("knative-serving-revision") == nil)
        #expect(seen.field("k-proxy-request") == "activator")
        #expect(seen.field("x-keep") == "yes")
        #expect(events.all.contains("suspended"))
        #expect(eventually { events.all.filter { $0.hasPrefix("finished 200") }.count == 2 })
    }

    @Test("a suspended request whose client goes away is cancelled and never forwarded")
    func suspendedClientGone() throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let events = HookEvents()
        final class Holder: HTTPHandler {
            let events: HookEvents
            var tickets: [HTTPExchangeTicket] = []
            init(events: HookEvents) { self.events = events }
            func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
                tickets.append(exchange.ticket)
                return .suspend
            }
            func requestCancelled(_ exchange: HTTPExchange, reason: HTTPCancellationReason) {
                events.record("cancelled \(reason) live=\(tickets.last?.isLive ?? true)")
            }
            func requestFinished(_ exchange: HTTPExchange, summary: HTTPRequestSummary) {
                events.record("finished aborted=\(summary.clientAborted)")
            }
        }
        let proxy = try InProcessProxy { _ in Holder(events: events) }
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(request("GET / HTTP/1.1"))
        usleep(50_000)
        client.close()
        #expect(eventually { events.all.contains { $0.hasPrefix("cancelled clientGone") } })
        #expect(eventually { events.all.contains("finished aborted=true") })
        #expect(backend.requests.isEmpty)
    }
}

@Suite("sluice proxy binary", .timeLimit(.minutes(1)))
struct SluiceProxyBinaryTests {
    @Test("sluice proxy logs its port, proxies requests, and exits 0 after SIGTERM")
    func proxyRunsAndDrains() throws {
        let backend = try ScriptedBackend.fixed(body: Array("from backend".utf8))
        defer { backend.stop() }
        let proxy = try SluiceProxyProcess(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let response = try client.exchange(request("GET / HTTP/1.1"))
        #expect(response.status == 200)
        #expect(response.bodyText == "from backend")
        client.close()
        proxy.signal(SIGTERM)
        #expect(proxy.waitForExit() == 0)
        #expect(proxy.log.contains("\"msg\":\"listening\""))
    }

    @Test("sluice proxy rejects a malformed --upstream with a message naming the option")
    func badArguments() throws {
        let result = try ChildProcess.run("sluice", ["proxy", "--listen", "127.0.0.1:0", "--upstream", "nowhere"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--upstream"))
    }
}

@Suite("HTTP proxy buffer reuse", .timeLimit(.minutes(1)))
struct HTTPProxyBufferReuseTests {
    @Test("steady-state proxying takes every buffer from the loop's pool (none allocated per request)")
    func buffersComeFromThePool() throws {
        let backend = try ScriptedBackend.fixed()
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        for _ in 0 ..< 20 { _ = try client.exchange(request("GET / HTTP/1.1")) }
        let loop = proxy.group.loops[0]
        let before = try onLoop(loop) { loop.bufferPool.allocations }
        for _ in 0 ..< 200 { _ = try client.exchange(request("GET / HTTP/1.1")) }
        let after = try onLoop(loop) { loop.bufferPool.allocations }
        #expect(after - before == 0, "\(after - before) buffers allocated for 200 requests")
    }
}

/// Forwards everything and records what the after-hooks report.
final class RecordingHandler: HTTPHandler {
    let upstream: HTTPUpstream
    let summaries: SummaryLog
    init(upstream: HTTPUpstream, summaries: SummaryLog) {
        self.upstream = upstream
        self.summaries = summaries
    }
    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision { .forward(upstream) }
    func responseStarted(_ exchange: HTTPExchange, status: Int) { summaries.note("response \(status)") }
    func upgradeStarted(_ exchange: HTTPExchange) { summaries.note("upgrade started") }
    func upgradeEnded(_ exchange: HTTPExchange) { summaries.note("upgrade ended") }
    func requestFinished(_ exchange: HTTPExchange, summary: HTTPRequestSummary) { summaries.add(summary) }
}

final class SummaryLog: Sendable {
    private let state = Mutex<([HTTPRequestSummary], [String])>(([], []))
    func add(_ summary: HTTPRequestSummary) { state.withLock { $0.0.append(summary) } }
    func note(_ event: String) { state.withLock { $0.1.append(event) } }
    var summaries: [HTTPRequestSummary] { state.withLock { $0.0 } }
    var events: [String] { state.withLock { $0.1 } }
}

@Suite("HTTP handler after-hooks", .timeLimit(.minutes(1)))
struct HTTPHandlerAfterHookTests {
    @Test("requestFinished reports status, bytes in and out, loop-clock times and that the request was forwarded")
    func summaryOfAForwardedRequest() throws {
        let backend = try ScriptedBackend.echo()
        defer { backend.stop() }
        let upstream = HTTPUpstream(address: .loopback(port: backend.port))
        let log = SummaryLog()
        let proxy = try InProcessProxy { _ in RecordingHandler(upstream: upstream, summaries: log) }
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let sent = request("POST /x HTTP/1.1", ["Host: t", "Content-Length: 11"], body: "hello world")
        let response = try client.exchange(sent)
        #expect(response.bodyText == "hello world")
        #expect(eventually { log.summaries.count == 1 })
        let summary = try #require(log.summaries.first)
        #expect(summary.status == 200)
        #expect(summary.bytesIn == UInt64(sent.utf8.count))
        #expect(summary.bytesOut == UInt64(response.rawHead.count + response.rawBody.count))
        #expect(summary.endTime >= summary.startTime)
        #expect(summary.wasForwarded)
        #expect(!summary.clientAborted && !summary.truncated)
        #expect(log.events == ["response 200"])
    }

    @Test("a WebSocket tunnel reports upgrade started and ended around its request")
    func upgradeHooks() throws {
        let backend = try ScriptedBackend { connection in
            _ = try connection.readRequest()
            try connection.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            while try connection.reader.fill() {}
        }
        defer { backend.stop() }
        let upstream = HTTPUpstream(address: .loopback(port: backend.port))
        let log = SummaryLog()
        let proxy = try InProcessProxy { _ in RecordingHandler(upstream: upstream, summaries: log) }
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        let switching = try client.exchange(request("GET /ws HTTP/1.1", ["Host: t", "Connection: Upgrade", "Upgrade: websocket"]))
        #expect(switching.status == 101)
        #expect(eventually { log.events.contains("upgrade started") })
        client.close()
        #expect(eventually { log.events.contains("upgrade ended") && log.summaries.count == 1 })
        #expect(log.summaries.first?.status == 101)
    }
}
