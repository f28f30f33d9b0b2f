// End-to-end: the real queue-proxy in front of the real sample-app, with Knative's breaker
// (CONTAINER_CONCURRENCY in flight, 10 × CC waiting, the rest 503 `pending request queue full`).
import Foundation
import Glibc
import Testing
import SluiceTestSupport

/// Every end-to-end suite runs inside this one, one test at a time: they start real processes and
/// some measure timing, which a loaded 2-core machine must not distort further.
@Suite("End to end", .serialized)
struct EndToEnd {}

extension EndToEnd {
    @Suite("queue-proxy breaker", .timeLimit(.minutes(1)))
    struct Breaker {
        /// Sends `count` requests on their own connections, all before reading any answer, so they are
        /// concurrent at queue-proxy. The first `holders` sleep long enough for every request to arrive
        /// while they hold the slots; the rest are short so the queued ones drain quickly.
        static func burst(port: UInt16, count: Int, holders: Int, holderSleep: Int, sleep: Int) throws -> [HTTPTestMessage] {
            var connections: [HTTPTestClient] = []
            for index in 0 ..< count {
                let connection = try HTTPTestClient(port: port, timeout: .seconds(40))
                try connection.sendRequest("GET", "/?sleep=\(index < holders ? holderSleep : sleep)")
                connections.append(connection)
                if index == holders - 1 { usleep(100_000) } // the holders take the slots first
            }
            return try connections.map { try $0.readResponse() }
        }

        @Test("concurrent slow requests: CC succeed at once, 10 × CC more after queueing, the rest get 503",
              arguments: [(1, 100, 11), (1, 20, 11), (10, 100, 100), (10, 130, 110)])
        func breakerCapacityAndQueue(containerConcurrency: Int, concurrent: Int, expectedSuccesses: Int) throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, containerConcurrency: containerConcurrency))
            defer { proxy.stop(); app.stop() }

            let start = ContinuousClock.now
            let responses = try Self.burst(port: proxy.port, count: concurrent, holders: containerConcurrency, holderSleep: 1500, sleep: 200)
            let elapsed = seconds(since: start)
            let succeeded = responses.filter { $0.status == 200 }
            let rejected = responses.filter { $0.status == 503 }
            #expect(succeeded.count == expectedSuccesses, "\(responses.map(\.status))")
            #expect(rejected.count == concurrent - expectedSuccesses)
            for response in succeeded { #expect(response.bodyText.hasPrefix("Hello World!\n")) }
            for response in rejected {
                #expect(response.bodyText == "pending request queue full\n")
                #expect(response.field("Content-Type") == "text/plain; charset=utf-8")
            }
            // At most CC in flight: the queued requests ran in ceil(queued / CC) rounds after the holders.
            let queued = expectedSuccesses - containerConcurrency
            let rounds = (queued + containerConcurrency - 1) / containerConcurrency
            #expect(elapsed >= (1.5 + Double(rounds) * 0.2) * 0.95, "finished in \(elapsed) s")
        }

        @Test("probes and kubelet-probe requests pass a full breaker")
        func probesPassFullBreaker() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, containerConcurrency: 1))
            defer { proxy.stop(); app.stop() }

            // One request holds the only slot; ten more fill the queue.
            var connections: [HTTPTestClient] = []
            for index in 0 ..< 11 {
                let connection = try HTTPTestClient(port: proxy.port)
                try connection.sendRequest("GET", index == 0 ? "/?sleep=1500" : "/?sleep=100")
                connections.append(connection)
                if index == 0 { usleep(50_000) }
            }
            usleep(200_000)
            let overflow = try httpRequest(port: proxy.port, "GET", "/")
            #expect(overflow.status == 503)
            let probe = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(1))
            #expect(probe.status == 200)
            #expect(probe.bodyText == "queue")
            // A K-Kubelet-Probe request reaches the app without waiting for a slot.
            let kubelet = try httpRequest(port: proxy.port, "GET", "/", headers: [("K-Kubelet-Probe", "queue")], timeout: .seconds(1))
            #expect(kubelet.status == 200)
            #expect(kubelet.bodyText == "Hello World!\n")
            for connection in connections { #expect(try connection.readResponse().status == 200) }
        }
    }
}
