// End-to-end: every probe header and answer of Knative's queue-proxy, and the user container's readiness
// probe (SERVING_READINESS_PROBE) merged into queue-proxy's readiness.
import Foundation
import Glibc
import Synchronization
import Testing
import SluiceTestSupport

extension EndToEnd {
    @Suite("queue-proxy probes", .timeLimit(.minutes(1)))
    struct Probes {
        @Test("probe user agents with K-Network-Probe: queue get 200 queue; a missing or other value gets 400 naming it")
        func probeUserAgents() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort))
            defer { proxy.stop(); app.stop() }

            for agent in ["kube-probe/1.30", "Knative-Activator-Probe", "Knative-Autoscaling-Probe"] {
                let ready = try httpRequest(port: proxy.port, "GET", "/", headers: [("User-Agent", agent), ("K-Network-Probe", "queue")])
                #expect(ready.status == 200, "\(agent)")
                #expect(ready.body == Array("queue".utf8), "\(agent): no newline after queue")

                let missing = try httpRequest(port: proxy.port, "GET", "/", headers: [("User-Agent", agent)])
                #expect(missing.status == 400, "\(agent)")
                #expect(missing.bodyText == "unexpected probe header value: \n")

                let other = try httpRequest(port: proxy.port, "GET", "/", headers: [("User-Agent", agent), ("K-Network-Probe", "activator")])
                #expect(other.status == 400, "\(agent)")
                #expect(other.bodyText == "unexpected probe header value: activator\n")
            }
        }

        @Test("K-Network-Probe: probe answers 200 with the hash echoed even with the app down; without a hash 400")
        func ingressProbe() throws {
            let appPort = try freePort() // nothing listens there
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort))
            defer { proxy.stop() }

            let probe = try httpRequest(port: proxy.port, "GET", "/", headers: [("K-Network-Probe", "probe"), ("K-Network-Hash", "a1b2c3")])
            #expect(probe.status == 200)
            #expect(probe.body.isEmpty)
            #expect(probe.field("K-Network-Hash") == "a1b2c3")

            let noHash = try httpRequest(port: proxy.port, "GET", "/", headers: [("K-Network-Probe", "probe")])
            #expect(noHash.status == 400)
            #expect(noHash.bodyText == "a probe request must contain a non-empty \"K-Network-Hash\" header\n")

            // App down: a request that is no probe gets 502.
            let proxied = try httpRequest(port: proxy.port, "GET", "/")
            #expect(proxied.status == 502)
        }

        @Test("other K-Network-Probe values, the ingress probe agent and K-Kubelet-Probe requests reach the app")
        func requestsThatReachTheApp() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort))
            defer { proxy.stop(); app.stop() }

            let cases: [[(String, String)]] = [
                [("K-Network-Probe", "activator")],
                [("User-Agent", "Knative-Ingress-Probe"), ("K-Network-Probe", "queue")],
                [("User-Agent", "Knative-Queue-Proxy-Probe")],
                [("K-Kubelet-Probe", "queue")],
            ]
            for headers in cases {
                let response = try httpRequest(port: proxy.port, "GET", "/", headers: headers)
                #expect(response.status == 200, "\(headers)")
                #expect(response.bodyText == "Hello World!\n", "\(headers)")
            }
        }

        @Test("readiness is false until the app listens and true right after (aggressive probing)")
        func readinessFollowsTheApp() throws {
            let appPort = try freePort()
            // periodSeconds 0 (absent): Knative's aggressive mode, retry every 50 ms for up to 10 s.
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort))
            defer { proxy.stop() }

            // The probe arrives before the app exists and is held while queue-proxy polls.
            let port = proxy.port
            let probe = Background { () -> (HTTPTestMessage, ContinuousClock.Instant) in
                let response = try httpRequest(port: port, "GET", "/", headers: kubeletProbeHeaders)
                return (response, ContinuousClock.now)
            }
            usleep(700_000)
            #expect(!probe.isDone, "the probe must wait while the app is down")
            let app = try SampleAppProcess(port: appPort)
            defer { app.stop() }
            let listening = ContinuousClock.now
            let (response, answeredAt) = try probe.wait(timeout: .seconds(12))
            #expect(response.status == 200)
            #expect(response.bodyText == "queue")
            let delay = answeredAt - listening
            #expect(delay < .seconds(1), "answered \(delay) after the app reported listening (expected ~0.05 s)")

            // Ready now: later probes answer at once.
            let again = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(2))
            #expect(again.status == 200)
        }

        @Test("with a probe period, an app that is down makes the readiness probe answer 503 with an empty body")
        func periodicProbeNotReady() throws {
            let appPort = try freePort()
            let probe = "{\"tcpSocket\":{\"port\":\(appPort),\"host\":\"127.0.0.1\"},\"periodSeconds\":1,\"timeoutSeconds\":1,\"successThreshold\":1}"
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: ["SERVING_READINESS_PROBE": probe]))
            defer { proxy.stop() }

            let down = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(5))
            #expect(down.status == 503)
            #expect(down.body.isEmpty)

            let app = try SampleAppProcess(port: appPort)
            defer { app.stop() }
            let up = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(5))
            #expect(up.status == 200)
            #expect(up.bodyText == "queue")
        }

        @Test("an aggressive probe of an app that stays down answers 503 with an empty body after about 10 s")
        func aggressiveProbeGivesUp() throws {
            let appPort = try freePort()
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort))
            defer { proxy.stop() }
            let start = ContinuousClock.now
            let response = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(15))
            let elapsed = seconds(since: start)
            #expect(response.status == 503)
            #expect(response.body.isEmpty)
            #expect(elapsed > 9.5 && elapsed < 12.5, "answered after \(elapsed) s")
        }

        @Test("an HTTP GET readiness probe sends the kube-probe user agent and the probe's headers to the app's path")
        func httpReadinessProbe() throws {
            let healthy = Atomic<Bool>(false)
            let app = try ScriptedBackend { connection in
                while let request = try connection.readRequest() {
                    try connection.respond(status: healthy.load(ordering: .relaxed) ? 200 : 500, body: "ok")
                    _ = request
                }
            }
            defer { app.stop() }
            let probe = "{\"httpGet\":{\"path\":\"healthz\",\"port\":\(app.port),\"host\":\"127.0.0.1\",\"scheme\":\"HTTP\","
                + "\"httpHeaders\":[{\"name\":\"X-Probe-Token\",\"value\":\"s3cret\"}]},\"periodSeconds\":1,\"timeoutSeconds\":1}"
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: app.port, extra: ["SERVING_READINESS_PROBE": probe]))
            defer { proxy.stop() }

            let failing = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(5))
            #expect(failing.status == 503, "a 500 from the app is not ready")
            healthy.store(true, ordering: .relaxed)
            let passing = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(5))
            #expect(passing.status == 200)
            #expect(passing.bodyText == "queue")

            let seen = app.requests
            #expect(seen.count == 2)
            for request in seen {
                #expect(request.method == "GET")
                #expect(request.target == "/healthz")
                #expect(request.field("User-Agent")?.hasPrefix("kube-probe/") == true)
                #expect(request.field("X-Probe-Token") == "s3cret")
            }
        }

        final class GRPCHealthState: Sendable {
            /// 1 SERVING, 2 NOT_SERVING.
            let status = Atomic<UInt8>(2)
            let requests = Atomic<Int>(0)
        }

        /// An h2c server answering every grpc.health.v1.Health/Check with the state's status.
        static func grpcHealthApp(_ state: GRPCHealthState) throws -> ScriptedBackend {
            try ScriptedBackend { connection in
                var received: [UInt8] = []
                while !String(decoding: received, as: UTF8.self).contains("/grpc.health.v1.Health/Check") || received.count < 120 {
                    let bytes = try connection.readRaw()
                    if bytes.isEmpty { return }
                    received += bytes
                }
                state.requests.add(1, ordering: .relaxed)
                func frame(_ type: UInt8, _ flags: UInt8, _ stream: UInt8, _ payload: [UInt8]) -> [UInt8] {
                    [0, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF), type, flags, 0, 0, 0, stream] + payload
                }
                let trailers: [UInt8] = [0x00, 11] + Array("grpc-status".utf8) + [1] + Array("0".utf8)
                let reply = frame(0x4, 0, 0, []) + frame(0x4, 1, 0, []) + frame(0x1, 0x4, 1, [0x88])
                    + frame(0x0, 0, 1, [0, 0, 0, 0, 2, 0x08, state.status.load(ordering: .relaxed)]) + frame(0x1, 0x5, 1, trailers)
                try connection.send(reply)
                while try !connection.readRaw().isEmpty {}
            }
        }

        @Test("a gRPC readiness probe asks grpc.health.v1.Health/Check over h2c: SERVING is ready, NOT_SERVING is not")
        func grpcReadinessProbe() throws {
            let state = GRPCHealthState()
            let app = try Self.grpcHealthApp(state)
            defer { app.stop() }
            let probe = "{\"grpc\":{\"port\":\(app.port),\"service\":\"\"},\"periodSeconds\":1,\"timeoutSeconds\":1}"
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: app.port, extra: ["SERVING_READINESS_PROBE": probe]))
            defer { proxy.stop() }

            let notServing = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(5))
            #expect(notServing.status == 503)
            state.status.store(1, ordering: .relaxed)
            let serving = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders, timeout: .seconds(5))
            #expect(serving.status == 200)
            #expect(serving.bodyText == "queue")
            #expect(state.requests.load(ordering: .relaxed) == 2)
        }
    }
}
