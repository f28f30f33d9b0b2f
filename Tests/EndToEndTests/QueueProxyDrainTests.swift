// End-to-end: Knative's SIGTERM drain (reliability.md L1, L3, L4, L5 shortened with a 1.5 s quiet
// period): probes fail at once, requests keep being served and re-arm the quiet period, in-flight and
// upgraded connections finish, exit 0; `/wait-for-drain` returns when the quiet period ends; a second
// signal exits at once.
import Foundation
import Glibc
import Testing
import SluiceTestSupport

extension EndToEnd {
    @Suite("queue-proxy drain", .timeLimit(.minutes(1)))
    struct Drain {
        static let quiet = ["SLUICE_DRAIN_QUIET_PERIOD_SECONDS": "1.5"]

        @Test("SIGTERM: probes answer 503 shutting down at once, in-flight and new requests are served, exit 0")
        func sigtermLosesNoRequest() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: Self.quiet))
            defer { proxy.stop(); app.stop() }

            var connections: [HTTPTestClient] = []
            func startRequest() throws {
                let connection = try HTTPTestClient(port: proxy.port)
                try connection.sendRequest("GET", "/?sleep=3000")
                connections.append(connection)
            }
            for _ in 0 ..< 3 {
                try startRequest()
                usleep(200_000)
            }
            proxy.child.signal(SIGTERM)
            usleep(50_000)
            let probe = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders)
            #expect(probe.status == 503)
            #expect(probe.bodyText == "shutting down\n")
            let activatorProbe = try httpRequest(port: proxy.port, "GET", "/", headers: [("User-Agent", "Knative-Activator-Probe"), ("K-Network-Probe", "queue")])
            #expect(activatorProbe.status == 503)
            // New requests during the quiet period are served (and each one restarts it).
            for _ in 0 ..< 3 {
                try startRequest()
                usleep(200_000)
            }
            let lastArrival = ContinuousClock.now
            for connection in connections {
                let response = try connection.readResponse()
                #expect(response.status == 200)
                #expect(response.bodyText == "Hello World!\nSlept for 3000 ms.\n")
            }
            let status = proxy.child.waitForExit(timeout: .seconds(10))
            #expect(status == 0, "\(proxy.child.stderr)")
            // It stayed up for the quiet period after the last request arrived.
            #expect(seconds(since: lastArrival) >= 1.5)
            #expect(proxy.child.stderr.contains("drained; exiting"))
        }

        @Test("/wait-for-drain returns when the quiet period ends; the serving port then closes and queue-proxy exits 0")
        func waitForDrain() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: Self.quiet))
            defer { proxy.stop(); app.stop() }

            #expect(try httpRequest(port: proxy.adminPort, "GET", "/other").status == 404)
            let adminPort = proxy.adminPort
            // The user container's preStop hook calls /wait-for-drain, then the kubelet sends SIGTERM.
            let start = ContinuousClock.now
            let preStop = Background { try httpRequest(port: adminPort, "GET", "/wait-for-drain") }
            usleep(200_000)
            #expect(try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders).status == 503)
            proxy.child.signal(SIGTERM)
            let released = try preStop.wait(timeout: .seconds(10))
            let waited = seconds(since: start)
            #expect(released.status == 200)
            #expect(waited >= 1.4 && waited < 4, "/wait-for-drain returned after \(waited) s")
            #expect(proxy.child.waitForExit(timeout: .seconds(5)) == 0)
            #expect(throws: (any Error).self) { try HTTPTestClient(port: proxy.port).request("GET", "/") }
        }

        @Test("/wait-for-drain without a following SIGTERM is a container restart: probes recover")
        func waitForDrainWithoutSignal() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: Self.quiet))
            defer { proxy.stop(); app.stop() }

            let adminPort = proxy.adminPort
            let preStop = Background { try httpRequest(port: adminPort, "GET", "/wait-for-drain") }
            usleep(200_000)
            #expect(try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders).status == 503)
            #expect(try preStop.wait(timeout: .seconds(5)).status == 200)
            #expect(eventually(timeout: .seconds(3)) {
                (try? httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders).status) == 200
            })
            #expect(proxy.child.isRunning)
        }

        @Test("an idle queue-proxy exits 0 within the quiet period after SIGTERM")
        func idleExitIsTimely() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: Self.quiet))
            defer { proxy.stop(); app.stop() }

            let start = ContinuousClock.now
            proxy.child.signal(SIGTERM)
            #expect(proxy.child.waitForExit(timeout: .seconds(5)) == 0)
            let elapsed = seconds(since: start)
            #expect(elapsed >= 1.4 && elapsed < 3.5, "exited after \(elapsed) s")
        }

        @Test("a second signal exits at once with status 1")
        func secondSignalExitsAtOnce() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: ["SLUICE_DRAIN_QUIET_PERIOD_SECONDS": "30"]))
            defer { proxy.stop(); app.stop() }

            let connection = try HTTPTestClient(port: proxy.port)
            try connection.sendRequest("GET", "/?sleep=5000")
            usleep(100_000)
            proxy.child.signal(SIGTERM)
            usleep(100_000)
            let start = ContinuousClock.now
            proxy.child.signal(SIGINT)
            #expect(proxy.child.waitForExit(timeout: .seconds(3)) == 1)
            #expect(seconds(since: start) < 2)
        }

        @Test("an upgraded connection open at SIGTERM keeps working after the quiet period; exit 0 once it closes")
        func upgradedConnectionFinishes() throws {
            let app = try ScriptedBackend.upgradeEcho()
            defer { app.stop() }
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: app.port, extra: Self.quiet))
            defer { proxy.stop() }

            let tunnel = try HTTPTestClient(port: proxy.port)
            try tunnel.sendRequest("GET", "/ws", headers: [
                ("Connection", "Upgrade"), ("Upgrade", "websocket"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
            ])
            let switched = try tunnel.readResponse()
            #expect(switched.status == 101)
            func echo(_ text: String) throws -> String {
                try tunnel.send(text)
                var received: [UInt8] = []
                while received.count < text.utf8.count {
                    if tunnel.reader.pending.isEmpty, try !tunnel.reader.fill() { break }
                    received += tunnel.reader.takeAll()
                }
                return String(decoding: received, as: UTF8.self)
            }
            #expect(try echo("before") == "before")
            proxy.child.signal(SIGTERM)
            usleep(2_500_000) // past the quiet period: the serving port is closed, the tunnel stays
            #expect(proxy.child.isRunning)
            #expect(try echo("after the quiet period") == "after the quiet period")
            tunnel.close()
            #expect(proxy.child.waitForExit(timeout: .seconds(5)) == 0, "\(proxy.child.stderr)")
        }
    }
}
