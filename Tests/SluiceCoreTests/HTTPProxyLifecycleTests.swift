// Tests for the HTTPProxy layer's lifecycle and memory bounds: graceful drain in process and in the
// real binary (SIGTERM, second signal), and a slow client that must not make the proxy buffer a
// whole 64 MiB response.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

/// A backend that answers after `delay`.
func slowBackend(delay: Duration) throws -> ScriptedBackend {
    let micros = UInt32(EventLoop.nanoseconds(delay) / 1000)
    return try ScriptedBackend { connection in
        while let request = try connection.readRequest() {
            usleep(micros)
            try connection.respond(body: Array("slow \(request.target)".utf8))
        }
    }
}

@Suite("HTTP proxy lifecycle", .timeLimit(.minutes(1)))
struct HTTPProxyLifecycleTests {
    @Test("drain finishes in-flight requests with Connection: close, closes idle connections and refuses new ones")
    func drainInProcess() throws {
        let backend = try slowBackend(delay: .milliseconds(600))
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let idle = try HTTPTestClient(port: proxy.port)
        let busy = try HTTPTestClient(port: proxy.port)
        #expect(eventually { proxy.statistics.connections == 2 })
        try busy.send(request("GET /inflight HTTP/1.1"))
        #expect(eventually { backend.requests.count == 1 })
        let drained = Atomic<Bool>(false)
        proxy.server.drain(timeout: .seconds(10)) { drained.store(true, ordering: .relaxed) }
        #expect(idle.waitForEOF())
        #expect(throws: TestFailure.self) { _ = try HTTPTestClient(port: proxy.port) }
        let response = try busy.readResponse()
        #expect(response.status == 200)
        #expect(response.bodyText == "slow /inflight")
        #expect(response.field("connection") == "close")
        #expect(busy.waitForEOF())
        #expect(eventually { drained.load(ordering: .relaxed) })
    }

    @Test("drain closes what is left at its deadline")
    func drainDeadline() throws {
        let backend = try slowBackend(delay: .seconds(5))
        defer { backend.stop() }
        let proxy = try InProcessProxy(upstreamPort: backend.port)
        defer { proxy.stop() }
        let busy = try HTTPTestClient(port: proxy.port)
        try busy.send(request("GET /forever HTTP/1.1"))
        #expect(eventually { backend.requests.count == 1 })
        let drained = Atomic<Bool>(false)
        proxy.server.drain(timeout: .milliseconds(300)) { drained.store(true, ordering: .relaxed) }
        #expect(eventually(timeout: .seconds(5)) { drained.load(ordering: .relaxed) })
        #expect(busy.waitForEOF())
    }

    @Test("sluice proxy finishes an in-flight request after SIGTERM, refuses new connections, and exits 0")
    func binaryDrain() throws {
        let backend = try slowBackend(delay: .milliseconds(800))
        defer { backend.stop() }
        let proxy = try SluiceProxyProcess(upstreamPort: backend.port)
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(request("GET /inflight HTTP/1.1"))
        #expect(eventually { backend.requests.count == 1 })
        proxy.signal(SIGTERM)
        #expect(eventually { (try? HTTPTestClient(port: proxy.port)) == nil })
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.field("connection") == "close")
        #expect(proxy.waitForExit() == 0)
        #expect(proxy.log.contains("\"msg\":\"draining\""))
    }

    @Test("a second signal stops sluice proxy at once, without waiting for in-flight requests")
    func secondSignal() throws {
        let backend = try slowBackend(delay: .seconds(30))
        defer { backend.stop() }
        let proxy = try SluiceProxyProcess(upstreamPort: backend.port, extraArguments: ["--drain-timeout", "60"])
        defer { proxy.stop() }
        let client = try HTTPTestClient(port: proxy.port)
        try client.send(request("GET /forever HTTP/1.1"))
        #expect(eventually { backend.requests.count == 1 })
        proxy.signal(SIGTERM)
        usleep(200_000)
        #expect(proxy.waitForExit(timeout: .milliseconds(10)) == nil, "exited before the in-flight request ended")
        proxy.signal(SIGINT)
        #expect(proxy.waitForExit(timeout: .seconds(10)) != nil)
        #expect(client.waitForEOF())
    }

    @Test("a slow client does not make the proxy buffer a 64 MiB response")
    func slowClientBoundedMemory() throws {
        let backend = try sizedBodyBackend(.contentLength)
        defer { backend.stop() }
        let proxy = try SluiceProxyProcess(upstreamPort: backend.port)
        defer { proxy.stop() }
        // Warm up so allocator and pool growth from startup are in the baseline.
        let warm = try HTTPTestClient(port: proxy.port)
        #expect(try warm.exchange(request("GET /100000 HTTP/1.1")).body.count == 100_000)
        warm.close()
        let baseline = try #require(proxy.residentKiB)
        let client = try HTTPTestClient(port: proxy.port, receiveBuffer: 16 * 1024)
        try client.send(request("GET /\(largeBody.count) HTTP/1.1"))
        var peak = baseline
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        // Read 4 MiB slowly (the backend could send all 64 MiB in a fraction of that time).
        let end = ContinuousClock.now + .seconds(20)
        while received < 4 << 20 && ContinuousClock.now < end {
            let n = buffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            received += n
            usleep(2_000)
            if received % (256 * 1024) < n, let rss = proxy.residentKiB { peak = max(peak, rss) }
        }
        #expect(received >= 4 << 20)
        let growthKiB = peak - baseline
        #expect(growthKiB < 32 * 1024, "proxy RSS grew by \(growthKiB) KiB while the client read slowly")
    }
}
