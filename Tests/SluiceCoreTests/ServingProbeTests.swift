import Testing
@testable import SluiceCore

private func classify(_ fields: [(String, String)], draining: Bool = false) -> QueueProbeDecision<[UInt8]> {
    QueueProbeClassifier.classify(ListedHeaders(fields), draining: draining)
}

private let plain = QueueRequestTraits(isKubeletProbe: false, isProbe: false, isProxiedByActivator: false)

@Suite("Probe classification and answers", .timeLimit(.minutes(1)))
struct ServingProbeClassifierTests {
    @Test("kubelet, activator and autoscaling probe agents with K-Network-Probe: queue run the readiness check",
          arguments: ["kube-probe/1.29", "Knative-Activator-Probe", "Knative-Autoscaling-Probe"])
    func readinessProbeAgents(agent: String) {
        #expect(classify([("User-Agent", agent), ("K-Network-Probe", "queue")]) == .readinessProbe)
    }

    @Test("a probe agent with another K-Network-Probe value gets 400 naming it; a missing one names nothing")
    func unexpectedValue() {
        #expect(classify([("User-Agent", "kube-probe/1.29"), ("K-Network-Probe", "bogus")]) == .unexpectedProbeValue(Array("bogus".utf8)))
        #expect(classify([("User-Agent", "kube-probe/1.29")]) == .unexpectedProbeValue(nil))
        #expect(LocalResponse.unexpectedProbeValue(Array("bogus".utf8)) == LocalResponse(
            status: 400, body: Array("unexpected probe header value: bogus\n".utf8),
            headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]))
        #expect(text(LocalResponse.unexpectedProbeValue(Optional<[UInt8]>.none).body) == "unexpected probe header value: \n")
    }

    @Test("K-Network-Probe: probe from any agent is answered with the hash echoed, even a curl")
    func networkProbe() {
        #expect(classify([("User-Agent", "curl/8"), ("K-Network-Probe", "probe"), ("K-Network-Hash", "abc")]) == .networkProbe(hash: Array("abc".utf8)))
        #expect(classify([("K-Network-Probe", "probe"), ("K-Network-Hash", "")]) == .networkProbeWithoutHash)
        #expect(classify([("K-Network-Probe", "probe")]) == .networkProbeWithoutHash)
        let answer = LocalResponse.networkProbe(hash: Array("abc".utf8))
        #expect(answer.status == 200)
        #expect(answer.body.isEmpty)
        #expect(answer.headers.map(\.name) == ["K-Network-Hash"])
        #expect(answer.headers.map(\.value) == ["abc"])
        #expect(text(LocalResponse.networkProbeWithoutHash.body) == "a probe request must contain a non-empty \"K-Network-Hash\" header\n")
        #expect(LocalResponse.networkProbeWithoutHash.status == 400)
    }

    @Test("while draining every probe answers 503 shutting down, ordinary requests still go through")
    func drainingProbes() {
        #expect(classify([("User-Agent", "kube-probe/1.29"), ("K-Network-Probe", "queue")], draining: true) == .shuttingDown)
        #expect(classify([("User-Agent", "Knative-Activator-Probe"), ("K-Network-Probe", "bogus")], draining: true) == .shuttingDown)
        #expect(classify([("K-Network-Probe", "probe"), ("K-Network-Hash", "x")], draining: true) == .shuttingDown)
        #expect(classify([("User-Agent", "curl/8")], draining: true) == .proxy(plain))
        #expect(LocalResponse.shuttingDown == LocalResponse(
            status: 503, body: Array("shutting down\n".utf8),
            headers: [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]))
    }

    @Test("other K-Network-Probe values from ordinary agents, and the ingress probe agent, go to the app flagged as probes")
    func proxiedProbeLikeRequests() {
        #expect(classify([("User-Agent", "curl/8"), ("K-Network-Probe", "queue")])
            == .proxy(QueueRequestTraits(isKubeletProbe: false, isProbe: true, isProxiedByActivator: false)))
        #expect(classify([("User-Agent", "Knative-Ingress-Probe"), ("K-Network-Probe", "queue")])
            == .proxy(QueueRequestTraits(isKubeletProbe: false, isProbe: true, isProxiedByActivator: false)))
        #expect(classify([("User-Agent", "Knative-Queue-Proxy-Probe")]) == .proxy(plain))
    }

    @Test("a K-Kubelet-Probe header is proxied but skips stats and breaker")
    func kubeletHeader() {
        #expect(classify([("K-Kubelet-Probe", "queue")]) == .proxy(QueueRequestTraits(isKubeletProbe: true, isProbe: true, isProxiedByActivator: false)))
        #expect(classify([("K-Kubelet-Probe", "")]) == .proxy(plain))
    }

    @Test("K-Proxy-Request: activator marks the request as proxied; other values do not")
    func activatorMarker() {
        #expect(classify([("K-Proxy-Request", "activator")]) == .proxy(QueueRequestTraits(isKubeletProbe: false, isProbe: false, isProxiedByActivator: true)))
        #expect(classify([("K-Proxy-Request", "Activator")]) == .proxy(plain))
    }

    @Test("header names match in any case; only the first field counts, like Go's Header.Get")
    func headerLookup() {
        #expect(classify([("user-agent", "kube-probe/1.30"), ("k-network-probe", "queue")]) == .readinessProbe)
        #expect(classify([("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "probe"), ("K-Network-Probe", "queue")])
            == .unexpectedProbeValue(Array("probe".utf8)))
    }

    @Test("readiness answers: 200 queue without a newline, 503 with an empty body")
    func readinessAnswers() {
        #expect(LocalResponse.ready.status == 200)
        #expect(text(LocalResponse.ready.body) == "queue")
        #expect(LocalResponse.notReady == LocalResponse(status: 503, body: [], headers: []))
        #expect(text(LocalResponse.queueFull.body) == "pending request queue full\n")
        #expect(LocalResponse.queueFull.status == 503)
        #expect(text(LocalResponse.requestTimeout.body) == "request timeout")
        #expect(LocalResponse.requestTimeout.status == 504)
    }
}

@Suite("SERVING_READINESS_PROBE decoding", .timeLimit(.minutes(1)))
struct ServingProbeSpecTests {
    @Test("an httpGet probe keeps host, port, path, scheme, headers and timing")
    func httpGet() throws {
        let specs = try ReadinessProbeSpec.decodeList(#"""
            {"httpGet":{"path":"healthz","port":8080,"host":"127.0.0.1","scheme":"HTTP","httpHeaders":[{"name":"X-Custom","value":"1"}]},
             "initialDelaySeconds":2,"timeoutSeconds":3,"periodSeconds":5,"successThreshold":2,"failureThreshold":4}
            """#)
        let get = ReadinessProbeSpec.HTTPGet(host: "127.0.0.1", port: 8080, path: "healthz", scheme: .http, headers: [.init(name: "X-Custom", value: "1")])
        #expect(specs == [ReadinessProbeSpec(action: .httpGet(get), initialDelaySeconds: 2, periodSeconds: 5, timeoutSeconds: 3, successThreshold: 2, failureThreshold: 4)])
        #expect(get.requestTarget == "/healthz")
        #expect(specs[0].targetDescription == "http://127.0.0.1:8080/healthz")
        #expect(specs[0].attemptTimeout == .seconds(3))
        #expect(!specs[0].isAggressive)
    }

    @Test("period 0 is Knative's aggressive mode with a 100 ms attempt timeout; defaults fill the rest")
    func aggressiveDefaults() throws {
        let specs = try ReadinessProbeSpec.decodeList(#"{"tcpSocket":{"port":"8080"}}"#)
        #expect(specs == [ReadinessProbeSpec(action: .tcpSocket(host: "127.0.0.1", port: 8080))])
        #expect(specs[0].isAggressive)
        #expect(specs[0].attemptTimeout == .milliseconds(100))
        #expect(specs[0].requiredSuccesses == 1)
    }

    @Test("a list decodes every probe (multi-container probing), skipping nulls")
    func list() throws {
        let specs = try ReadinessProbeSpec.decodeList(#"[null,{"tcpSocket":{"port":8080}},{"grpc":{"port":9000,"service":"health"}},{"httpGet":{"port":8081,"scheme":"HTTPS"}}]"#)
        #expect(specs.map(\.action) == [
            .tcpSocket(host: "127.0.0.1", port: 8080),
            .grpc(port: 9000, service: "health"),
            .httpGet(.init(port: 8081, path: "/", scheme: .https)),
        ])
    }

    @Test("invalid probes are refused with the JSON path and the reason", arguments: [
        (#"{"httpGet":{"port":0}}"#, ".httpGet.port: must be between 1 and 65535, got 0"),
        (#"{"httpGet":{"port":"http"}}"#, ".httpGet.port: named port \"http\" cannot be resolved by queue-proxy; give the number"),
        (#"{"httpGet":{"port":8080,"scheme":"FTP"}}"#, ".httpGet.scheme: must be HTTP or HTTPS, got \"FTP\""),
        (#"{"periodSeconds":1}"#, "probe: no handler: expected one of httpGet, tcpSocket or grpc"),
        (#"{"exec":{"command":["true"]}}"#, "probe.exec: exec probes are not run by queue-proxy (Knative turns them into tcpSocket probes)"),
        (#"{"tcpSocket":{"port":80},"httpGet":{"port":80}}"#, "probe: more than one handler; a probe has exactly one of httpGet, tcpSocket or grpc"),
        (#"[{"tcpSocket":{"port":80},"periodSeconds":-1}]"#, "[0].periodSeconds: must be 0 or more, got -1"),
        (#"{"grpc":{}}"#, ".grpc.port: must be between 1 and 65535, got nothing"),
    ])
    func invalid(json: String, reason: String) {
        #expect(throws: ConfigurationError(invalid: [ConfigurationIssue(variable: "SERVING_READINESS_PROBE", value: json, reason: reason)])) {
            try ReadinessProbeSpec.decodeList(json)
        }
    }

    @Test("JSON that is not a probe says where it went wrong")
    func malformed() {
        do {
            _ = try ReadinessProbeSpec.decodeList(#"{"httpGet":{"port":8080,"path":5}}"#)
            Issue.record("expected an error")
        } catch {
            #expect(error.invalid.first?.reason.hasPrefix("is not a Kubernetes Probe in JSON: .httpGet.path:") == true)
        }
    }
}

@Suite("Readiness prober", .timeLimit(.minutes(1)))
struct ServingReadinessProberTests {
    let aggressive = ReadinessProbeSpec(action: .tcpSocket(host: "127.0.0.1", port: 8080))

    @Test("without a configured probe the app counts as ready at once")
    func noProbes() {
        var prober = ReadinessProber(probes: [])
        #expect(prober.check(at: at(0)).decided == true)
    }

    @Test("aggressive mode retries every 50 ms after a failure and is ready on the first success")
    func aggressiveRetries() throws {
        var prober = ReadinessProber(probes: [aggressive])
        let first = prober.check(at: at(0))
        #expect(first.decided == nil)
        let attempt = try #require(first.startAttempts.first)
        #expect(attempt.timeout == .milliseconds(100))
        #expect(prober.attemptFinished(id: attempt.id, succeeded: false, at: at(2)) == ReadinessProber.Effects())
        #expect(prober.nextDeadline == at(52))
        #expect(prober.advance(at: at(51)).startAttempts.isEmpty)
        let retry = prober.advance(at: at(52))
        let second = try #require(retry.startAttempts.first)
        #expect(second.id != attempt.id)
        #expect(prober.attemptFinished(id: second.id, succeeded: true, at: at(53)).decided == true)
        #expect(!prober.isChecking)
    }

    @Test("an attempt that does not report within 100 ms counts as failed; its late report is ignored")
    func attemptTimeout() throws {
        var prober = ReadinessProber(probes: [aggressive])
        let attempt = try #require(prober.check(at: at(0)).startAttempts.first)
        #expect(prober.nextDeadline == at(100))
        #expect(prober.advance(at: at(100)).decided == nil)
        #expect(prober.nextDeadline == at(150))
        #expect(prober.attemptFinished(id: attempt.id, succeeded: true, at: at(120)) == ReadinessProber.Effects())
        #expect(prober.isChecking)
    }

    @Test("aggressive mode gives up after the 10 s poll limit and answers not ready")
    func pollLimit() throws {
        var prober = ReadinessProber(probes: [aggressive])
        var effects = prober.check(at: at(0))
        var now: Int64 = 0
        var attempts = 0
        while effects.decided == nil, attempts < 1000 {
            for attempt in effects.startAttempts {
                attempts += 1
                effects = prober.attemptFinished(id: attempt.id, succeeded: false, at: at(now))
            }
            if effects.decided != nil { break }
            let deadline = try #require(prober.nextDeadline)
            now = deadline.nanoseconds / 1_000_000
            effects = prober.advance(at: deadline)
        }
        #expect(effects.decided == false)
        #expect(attempts == 200, "one immediate attempt plus one every 50 ms up to 10 s")
        #expect(now == 9950)
    }

    @Test("successThreshold counts consecutive successes, reset by a failure, and carries over to the next check")
    func successThreshold() throws {
        var spec = aggressive
        spec.successThreshold = 2
        var prober = ReadinessProber(probes: [spec])
        var attempt = try #require(prober.check(at: at(0)).startAttempts.first)
        _ = prober.attemptFinished(id: attempt.id, succeeded: true, at: at(1))
        attempt = try #require(prober.advance(at: at(51)).startAttempts.first)
        _ = prober.attemptFinished(id: attempt.id, succeeded: false, at: at(52))
        attempt = try #require(prober.advance(at: at(102)).startAttempts.first)
        _ = prober.attemptFinished(id: attempt.id, succeeded: true, at: at(103))
        attempt = try #require(prober.advance(at: at(153)).startAttempts.first)
        #expect(prober.attemptFinished(id: attempt.id, succeeded: true, at: at(154)).decided == true)
        // Knative keeps the count: the next check passes on its first success.
        attempt = try #require(prober.check(at: at(1000)).startAttempts.first)
        #expect(prober.attemptFinished(id: attempt.id, succeeded: true, at: at(1001)).decided == true)
    }

    @Test("with a period, one attempt with timeoutSeconds decides the check")
    func periodicSingleAttempt() throws {
        let spec = ReadinessProbeSpec(action: .tcpSocket(host: "127.0.0.1", port: 8080), periodSeconds: 10, timeoutSeconds: 2)
        var prober = ReadinessProber(probes: [spec])
        let attempt = try #require(prober.check(at: at(0)).startAttempts.first)
        #expect(attempt.timeout == .seconds(2))
        #expect(prober.attemptFinished(id: attempt.id, succeeded: false, at: at(5)).decided == false)
        let next = try #require(prober.check(at: at(10)).startAttempts.first)
        #expect(prober.advance(at: at(2010)).decided == false, "no answer within timeoutSeconds fails")
        _ = next
    }

    @Test("concurrent checks join the running one; all probes must pass")
    func joinAndAllProbes() throws {
        let http = ReadinessProbeSpec(action: .httpGet(.init(port: 8080)), periodSeconds: 1, timeoutSeconds: 1)
        let tcp = ReadinessProbeSpec(action: .tcpSocket(host: "127.0.0.1", port: 9000), periodSeconds: 1, timeoutSeconds: 1)
        var prober = ReadinessProber(probes: [http, tcp])
        let started = prober.check(at: at(0)).startAttempts
        #expect(started.map(\.probeIndex) == [0, 1])
        #expect(prober.check(at: at(1)) == ReadinessProber.Effects(), "a second probe joins")
        #expect(prober.attemptFinished(id: started[0].id, succeeded: true, at: at(2)).decided == nil)
        #expect(prober.attemptFinished(id: started[1].id, succeeded: false, at: at(3)).decided == false)
    }
}

@Suite("Kubelet probe thresholds", .timeLimit(.minutes(1)))
struct ServingProbeThresholdTests {
    @Test("ready after successThreshold successes in a row, unready after failureThreshold failures in a row")
    func thresholds() {
        var tracker = ProbeThresholdTracker(successThreshold: 2, failureThreshold: 3, period: .seconds(1))
        func record(succeeded: Bool) -> Bool { tracker.record(succeeded: succeeded) }
        #expect(!tracker.isReady)
        #expect(!record(succeeded: true))
        #expect(record(succeeded: true))
        #expect(tracker.isReady)
        #expect(!record(succeeded: false))
        #expect(!record(succeeded: false))
        #expect(!record(succeeded: true), "a success in between resets the failure run")
        #expect(!record(succeeded: false))
        #expect(!record(succeeded: false))
        #expect(record(succeeded: false))
        #expect(!tracker.isReady)
    }

    @Test("probes are scheduled after the initial delay, one per period")
    func schedule() {
        let spec = ReadinessProbeSpec(action: .tcpSocket(host: "127.0.0.1", port: 1), initialDelaySeconds: 5, periodSeconds: 2)
        let tracker = ProbeThresholdTracker(spec: spec)
        #expect(tracker.probeTime(number: 0, startedAt: at(0)) == at(5000))
        #expect(tracker.probeTime(number: 3, startedAt: at(0)) == at(11000))
        #expect(tracker.failureThreshold == 3)
    }
}
