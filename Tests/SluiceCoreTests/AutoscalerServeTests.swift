// Tests for `autoscaler serve`'s core (Serving layer, KPA): the revisions file, the engine's scrape →
// collector → decider → reconciler → scaler path driven with a manual wall clock, the activator stat
// entry point's poke, and the JSON status API on a real socket.
import Foundation
import Glibc
import Synchronization
import SluiceTestSupport
import Testing
@testable import SluiceCore

/// A revisions document with one revision over `pods`.
func revisionsDocument(_ pods: [StatPod], annotations: [String: String] = [:], containerConcurrency: Int64 = 0,
                       uptime: GoDuration = .seconds(3600), now: UnixTime) -> RevisionsDocument {
    let listed = pods.map {
        StaticPodList.Pod(name: $0.name, address: $0.address, ready: true,
                          startedAt: UnixTime(nanoseconds: now.nanoseconds - uptime.nanoseconds))
    }
    return RevisionsDocument(revisions: [
        RevisionEntry(key: RevisionKey(namespace: "default", name: "hello-00001"),
                      annotations: RevisionAnnotations(annotations), containerConcurrency: containerConcurrency,
                      pods: listed),
    ])
}

let helloKey = RevisionKey(namespace: "default", name: "hello-00001")

/// Settings whose timers never fire during a test: the test drives scrapes and ticks itself.
func manualSettings() -> AutoscalerServeSettings {
    var settings = AutoscalerServeSettings()
    settings.scrapeInterval = .seconds(3600)
    settings.tickInterval = .seconds(3600)
    return settings
}

/// An engine on `loop`, loaded with `document` (timers not started).
func makeEngine(on loop: EventLoop, config: AutoscalerConfig = AutoscalerConfig(), document: RevisionsDocument,
                clock: ManualWallClock) throws -> LoopBound<AutoscalerEngine> {
    let engine = LoopBound(AutoscalerEngine(loop: loop, config: config, settings: manualSettings(), clock: clock,
                                            scaler: LocalScaler(clock: clock), logger: .init(label: "test")), on: loop)
    _ = try onLoop(loop) { engine.value.load(document); return true }
    return engine
}

/// Scrapes every revision once and waits for the scrapes to finish.
func scrapeAll(_ engine: LoopBound<AutoscalerEngine>) throws {
    let pending = Locked(0)
    _ = try onLoop(engine.loop) {
        for runtime in engine.value.revisions.values {
            pending.withLock { $0 += 1 }
            engine.value.scrape(runtime) { pending.withLock { $0 -= 1 } }
        }
        return true
    }
    guard eventually(timeout: .seconds(20), { pending.value == 0 }) else { throw TestFailure("scrapes did not finish") }
}

@Suite("Autoscaler serve", .timeLimit(.minutes(1)))
struct AutoscalerServeTests {
    @Test("each scrape's estimate lands in the collector's bucket for the second it finished")
    func scrapesFeedTheCollector() throws {
        let pods = try [StatPod(name: "a", concurrency: 3, rps: 10), StatPod(name: "b", concurrency: 5, rps: 20),
                        StatPod(name: "c", concurrency: 3, rps: 30)]
        defer { pods.forEach { $0.stop() } }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let t0 = UnixTime(seconds: 1_800_000_000)
        let clock = ManualWallClock(t0)
        let engine = try makeEngine(on: group.loops[0], document: revisionsDocument(pods, now: t0), clock: clock)

        try scrapeAll(engine)
        var averages = try onLoop(engine.loop) { engine.value.multi.collector.averages(.concurrency, for: helloKey, now: t0) }
        #expect(averages == .success(WindowAverages(stable: 11, panic: 11)))
        let rps = try onLoop(engine.loop) { engine.value.multi.collector.averages(.rps, for: helloKey, now: t0) }
        #expect(rps == .success(WindowAverages(stable: 60, panic: 60)))

        // The next second the pods report 1 each: two one-second buckets, 11 and 3.
        pods.forEach { pod in pod.update { $0.stat.averageConcurrentRequests = 1 } }
        let t1 = t0 + .seconds(1)
        clock.set(t1)
        try scrapeAll(engine)
        averages = try onLoop(engine.loop) { engine.value.multi.collector.averages(.concurrency, for: helloKey, now: t1) }
        #expect(averages == .success(WindowAverages(stable: 7, panic: 7)))

        // Proxied concurrency is subtracted before recording.
        pods.forEach { pod in pod.update { $0.stat.averageConcurrentRequests = 4; $0.stat.averageProxiedConcurrentRequests = 1 } }
        let t2 = t1 + .seconds(1)
        clock.set(t2)
        try scrapeAll(engine)
        averages = try onLoop(engine.loop) { engine.value.multi.collector.averages(.concurrency, for: helloKey, now: t2) }
        // (11 + 3 + 9) / 3, rounded to 6 decimals as Knative's linear average is.
        #expect(averages == .success(WindowAverages(stable: 7.666667, panic: 7.666667)))
    }

    @Test("scraped load raises the desired scale and the scaler applies it; a quiet revision reaches zero after a stable window and the grace period")
    func scaleUpThenToZero() throws {
        let pod = try StatPod(name: "a", concurrency: 14)
        defer { pod.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let t0 = UnixTime(seconds: 1_800_000_000)
        let clock = ManualWallClock(t0)
        var config = AutoscalerConfig()
        config.stableWindow = .seconds(6)
        config.scaleToZeroGracePeriod = .seconds(2)
        // T = 2 × 0.7 = 1.4 per pod: 14 concurrent requests want 10 pods.
        let engine = try makeEngine(on: group.loops[0], config: config,
                                    document: revisionsDocument([pod], annotations: ["autoscaling.knative.dev/target": "2"], now: t0),
                                    clock: clock)
        func step(to t: UnixTime) throws -> AutoscalerRevisionStatus? {
            clock.set(t)
            try scrapeAll(engine)
            return try onLoop(engine.loop) { engine.value.tickAll(); return engine.value.status(of: helloKey) }
        }
        var status = try step(to: t0)
        #expect(status?.desiredScale == 10)
        #expect(status?.panicking == true)
        #expect(status?.replicas == 10)
        #expect(status?.active == .active)

        // Load stops. Panic holds the scale for a stable window after the condition last held.
        pod.update { $0.stat.averageConcurrentRequests = 0 }
        var t = t0
        var zeroAt: Int64?
        var inactiveAt: Int64?
        for second in 1 ... 30 {
            t = t0 + .seconds(Int64(second))
            clock.set(t)
            try scrapeAll(engine)
            guard second % 2 == 0 else { continue }
            status = try onLoop(engine.loop) { engine.value.tickAll(); return engine.value.status(of: helloKey) }
            if status?.active == .inactive && inactiveAt == nil { inactiveAt = Int64(second) }
            if status?.replicas == 0 {
                zeroAt = Int64(second)
                break
            }
        }
        #expect(status?.desiredScale == 0)
        #expect(status?.serverlessServiceMode == .proxy)
        let inactive = try #require(inactiveAt)
        let zero = try #require(zeroAt)
        // Scale to zero needs the PA inactive for the grace period (2 s), i.e. the next tick or later.
        #expect(zero - inactive >= 2)
        #expect(zero <= 30)
    }

    @Test("an activator stat for a revision at scale 0 is decided at once (poke), from any thread")
    func activatorStatPokes() throws {
        let pod = try StatPod(name: "a", concurrency: 0)
        defer { pod.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let t0 = UnixTime(seconds: 1_800_000_000)
        let clock = ManualWallClock(t0)
        let server = try AutoscalerServer.start(config: AutoscalerConfig(), revisions: revisionsDocument([pod], now: t0),
                                                settings: manualSettings(), statusAddress: nil, clock: clock,
                                                group: group, logger: .init(label: "test"))
        defer { server.stop() }
        #expect(eventually { (server.completedScrapes() ?? 0) >= 1 })
        let engine = server.engine
        _ = try onLoop(engine.loop) { engine.value.tickAll(); return true }
        #expect(server.statuses()?.first?.desiredScale == 0)

        // A stat without concurrency does not poke.
        server.record(namespace: "default", name: "hello-00001", stat: PodStat(podName: "activator-1", requestCount: 1))
        #expect(server.statuses()?.first?.desiredScale == 0)
        // One with concurrency does: no tick is needed.
        var stat = Metrics_Stat()
        stat.podName = "activator-1"
        stat.averageConcurrentRequests = 80
        server.record(namespace: "default", name: "hello-00001", stat: stat)
        #expect(eventually(timeout: .seconds(5)) { server.statuses()?.first?.desiredScale == 2 })
        // Unknown revisions are ignored.
        server.record(namespace: "default", name: "nope", stat: PodStat(podName: "activator-1", averageConcurrentRequests: 1))
        #expect(server.statuses()?.count == 1)
        // The stat was recorded at its arrival second, added to the scraped 0.
        let averages = try onLoop(engine.loop) { engine.value.multi.collector.averages(.concurrency, for: helloKey, now: t0) }
        #expect(averages == .success(WindowAverages(stable: 80, panic: 80)))
    }

    @Test("an activator's stat stream over the WebSocket stat server reaches the collector and pokes a revision at scale 0")
    func activatorStatStream() throws {
        let pod = try StatPod(name: "a", concurrency: 0)
        defer { pod.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let t0 = UnixTime(seconds: 1_800_000_000)
        let server = try AutoscalerServer.start(config: AutoscalerConfig(), revisions: revisionsDocument([pod], now: t0),
                                                settings: manualSettings(), statusAddress: nil,
                                                statsAddress: .loopback(port: 0), clock: ManualWallClock(t0),
                                                group: group, logger: .init(label: "test"))
        defer { server.stop() }
        let statsPort = try #require(server.statsAddress?.port)
        #expect(eventually { (server.completedScrapes() ?? 0) >= 1 })
        let engine = server.engine
        _ = try onLoop(engine.loop) { engine.value.tickAll(); return true }
        #expect(server.statuses()?.first?.desiredScale == 0)

        // Knative's activator side: one WireStatMessages batch per send over ws://.
        let reporter = try ReporterHarness(url: "ws://127.0.0.1:\(statsPort)")
        defer { reporter.stop() }
        #expect(eventually(timeout: .seconds(10)) { reporter.isConnected })
        var stat = Metrics_Stat()
        stat.podName = "activator-5f7d9c-x"
        stat.averageConcurrentRequests = 80
        stat.requestCount = 80
        var message = Metrics_WireStatMessage()
        message.namespace = "default"
        message.name = "hello-00001"
        message.stat = stat
        var unknown = message
        unknown.name = "not-listed"
        #expect(try reporter.send([message, unknown]))
        #expect(eventually(timeout: .seconds(10)) { server.statuses()?.first?.desiredScale == 2 })
        #expect(server.statServerStatistics?.stats == 2)
        let averages = try onLoop(engine.loop) { engine.value.multi.collector.averages(.concurrency, for: helloKey, now: t0) }
        #expect(averages == .success(WindowAverages(stable: 80, panic: 80)))
    }

    @Test("the status API serves every revision and one revision as JSON, 404 for others, 405 for POST")
    func statusAPI() throws {
        let pod = try StatPod(name: "a", concurrency: 3)
        defer { pod.stop() }
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let t0 = UnixTime(seconds: 1_800_000_000)
        let server = try AutoscalerServer.start(config: AutoscalerConfig(), revisions: revisionsDocument([pod], now: t0),
                                                settings: manualSettings(), statusAddress: .loopback(port: 0),
                                                clock: ManualWallClock(t0), group: group, logger: .init(label: "test"))
        defer { server.stop() }
        let port = try #require(server.statusAddress?.port)
        #expect(eventually { (server.completedScrapes() ?? 0) >= 1 })

        // Several connections, so both loops of the group answer at least once.
        for _ in 0 ..< 4 {
            let client = try HTTPTestClient(port: port)
            let response = try client.exchange(request("GET /revisions HTTP/1.1", ["Host: x"]))
            #expect(response.status == 200)
            #expect(response.field("content-type") == "application/json")
            let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            let revisions = try #require(object?["revisions"] as? [[String: Any]])
            #expect(revisions.count == 1)
            let first = try #require(revisions.first)
            #expect(first["name"] as? String == "hello-00001")
            #expect(first["readyPods"] as? Int == 1)
            #expect(first["desiredScale"] as? Int == -1)
            #expect(first["lastScrapeError"] is NSNull)
            let scrape = try #require(first["lastScrape"] as? [String: Any])
            #expect(scrape["concurrency"] as? Double == 3)
            #expect(scrape["method"] as? String == "pod")
        }
        let client = try HTTPTestClient(port: port)
        let one = try client.exchange(request("GET /revisions/default/hello-00001 HTTP/1.1", ["Host: x"]))
        #expect(one.status == 200)
        let object = try JSONSerialization.jsonObject(with: Data(one.body)) as? [String: Any]
        #expect(object?["namespace"] as? String == "default")
        for key in ["excessBurstCapacity", "panic", "stableAverage", "panicAverage", "readyPods", "replicas", "active"] {
            #expect(object?[key] != nil, "\(key)")
        }
        #expect(try client.exchange(request("GET /revisions/default/other HTTP/1.1", ["Host: x"])).status == 404)
        #expect(try client.exchange(request("GET /elsewhere HTTP/1.1", ["Host: x"])).status == 404)
        #expect(try client.exchange(request("POST /revisions HTTP/1.1", ["Host: x", "Content-Length: 0"])).status == 405)
        #expect(try client.exchange(request("GET /healthz HTTP/1.1", ["Host: x"])).status == 200)
    }

    @Test("reloading the revisions adds new ones, updates changed ones and removes missing ones")
    func reload() throws {
        let pod = try StatPod(name: "a", concurrency: 1)
        defer { pod.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let t0 = UnixTime(seconds: 1_800_000_000)
        let server = try AutoscalerServer.start(config: AutoscalerConfig(), revisions: revisionsDocument([pod], now: t0),
                                                settings: manualSettings(), statusAddress: nil, clock: ManualWallClock(t0),
                                                group: group, logger: .init(label: "test"))
        defer { server.stop() }
        var next = revisionsDocument([pod], annotations: ["autoscaling.knative.dev/target-burst-capacity": "-1"], now: t0)
        next.revisions.append(RevisionEntry(key: RevisionKey(namespace: "prod", name: "other"), pods: []))
        server.reload(next)
        #expect(eventually(timeout: .seconds(5)) { server.statuses()?.count == 2 })
        let statuses = try #require(server.statuses())
        #expect(statuses.map(\.key.name) == ["hello-00001", "other"])
        // TBC -1: the activator is always in the path; the revision is no longer scraped.
        #expect(statuses[0].scrapeMethod == nil)
        server.reload(RevisionsDocument(revisions: [next.revisions[1]]))
        #expect(eventually(timeout: .seconds(5)) { server.statuses()?.map(\.key.name) == ["other"] })
        #expect(throws: ScalerError.unknownRevision(helloKey)) { try server.scaler.currentReplicas(of: helloKey) }
    }

    @Test("a revisions file is read with its annotations, pods, readiness and start times")
    func revisionsFile() throws {
        let yaml = """
            revisions:
              - namespace: prod
                name: hello-00002
                containerConcurrency: 10
                annotations:
                  autoscaling.knative.dev/target: "5"
                service: "127.0.0.1:9190"
                pods:
                  - {name: a, address: "127.0.0.1:9091", uptime: 2m}
                  - {name: b, address: "127.0.0.1:9092", ready: false, startTime: 1700000000}
              - name: other
            """
        let now = UnixTime(seconds: 1_800_000_000)
        let document = try RevisionsDocument.parse(yaml: yaml, file: "r.yaml", config: AutoscalerConfig(), loadedAt: now)
        #expect(document.revisions.count == 2)
        let first = document.revisions[0]
        #expect(first.key == RevisionKey(namespace: "prod", name: "hello-00002"))
        #expect(first.containerConcurrency == 10)
        #expect(first.annotations.target == 5)
        #expect(first.serviceAddress == "127.0.0.1:9190")
        #expect(first.pods[0].startedAt == UnixTime(seconds: 1_800_000_000 - 120))
        #expect(first.pods[1].ready == false)
        #expect(first.pods[1].startedAt == UnixTime(seconds: 1_700_000_000))
        #expect(document.revisions[1].key == RevisionKey(namespace: "default", name: "other"))
        let list = document.podList(startedAt: now)
        #expect(list.readyPodCount(of: first.key) == .ready(1))
        #expect(list.readyPods(of: first.key).map(\.name) == ["a"])
    }

    @Test("revisions file errors name the file, line and field", arguments: [
        ("revisions:\n  - namespace: x\n", "r.yaml:2: revisions[0].name: missing"),
        ("revisions:\n  - name: a\n    pods:\n      - name: p\n        address: pod.local:9090\n",
         "r.yaml:5: revisions[0].pods[0].address: invalid stats address 'pod.local:9090'"),
        ("revisions:\n  - name: a\n    pods:\n      - name: p\n", "r.yaml:4: revisions[0].pods[0].address: missing"),
        ("revisions:\n  - name: a\n    replicas: 3\n", "r.yaml:3: revisions[0].replicas: unknown field"),
        ("revisions:\n  - name: a\n  - name: a\n", "r.yaml:3: revisions[1]: revision default/a is already listed at line 2"),
        ("revisions:\n  - name: a\n    annotations:\n      autoscaling.knative.dev/window: 2s\n",
         "r.yaml:4: revisions[0].annotations: expected 6s <= 2s <= 1h0m0s: autoscaling.knative.dev/window"),
        ("revisions:\n  - name: a\n    containerConcurrency: -1\n", "r.yaml:3: revisions[0].containerConcurrency: expected an integer >= 0"),
        ("revisions:\n  - name: a\n    pods:\n      - {name: p, address: \"127.0.0.1:1\", ready: maybe}\n",
         "r.yaml:4: revisions[0].pods[0].ready: expected true or false, was 'maybe'"),
        ("revisions:\n  - name: a\n    pods:\n      - {name: p, address: \"127.0.0.1:1\", uptime: 5m, startTime: 1}\n",
         "revisions[0].pods[0].uptime: give either startTime or uptime, not both"),
        ("pods: []\n", "r.yaml:1: pods: unknown field (expected 'revisions')"),
        ("revisions: [\n", "r.yaml: invalid YAML"),
    ])
    func revisionsFileErrors(yaml: String, expected: String) {
        do {
            _ = try RevisionsDocument.parse(yaml: yaml, file: "r.yaml", config: AutoscalerConfig(), loadedAt: UnixTime(seconds: 0))
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test("the local scaler records and reports each applied scale; unknown revisions are errors")
    func localScaler() throws {
        let clock = ManualWallClock(UnixTime(seconds: 100))
        let scaler = LocalScaler(clock: clock)
        scaler.register(helloKey, replicas: 1)
        #expect(try scaler.currentReplicas(of: helloKey) == 1)
        try scaler.applyScale(3, to: helloKey)
        #expect(try scaler.currentReplicas(of: helloKey) == 3)
        #expect(scaler.lastChange(of: helloKey).count == 1)
        #expect(scaler.lastChange(of: helloKey).change == LocalScaler.Change(from: 1, to: 3, at: UnixTime(seconds: 100)))
        let other = RevisionKey(namespace: "default", name: "other")
        #expect(throws: ScalerError.unknownRevision(other)) { try scaler.applyScale(1, to: other) }
        #expect(throws: ScalerError.rejected(helloKey, "replicas must be >= 0, was -1")) { try scaler.applyScale(-1, to: helloKey) }
    }
}
