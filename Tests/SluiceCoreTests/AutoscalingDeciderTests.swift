// Tests for the KPA decider, the collector's stat intake and the multi-revision tick.
import Testing
@testable import SluiceCore

private func unixAt(_ s: Int64) -> UnixTime { UnixTime(seconds: s) }
private func averages(_ s: Double, _ p: Double) -> Result<WindowAverages, MetricError> {
    .success(WindowAverages(stable: s, panic: p))
}

@Suite("KPA decider")
struct AutoscalingDeciderTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var spec: DeciderSpec
        var ready: Int
        var stable: Double
        var panic: Double
        var desired: Int32
        var ebc: Int32
        var description: String { name }
    }

    static let base = DeciderSpec(targetValue: 10, totalValue: 10, targetBurstCapacity: 0)

    static let cases: [Case] = [
        Case(name: "scale up to ceil(stable/target)", spec: base, ready: 1, stable: 35, panic: 35, desired: 4, ebc: 0),
        Case(name: "scale up limited by ceil(up rate x ready)",
             spec: { var s = base; s.maxScaleUpRate = 1.1; return s }(), ready: 2, stable: 100, panic: 15, desired: 3, ebc: 0),
        Case(name: "zero ready pods count as one for the up clamp",
             spec: { var s = base; s.maxScaleUpRate = 10; return s }(), ready: 0, stable: 1000, panic: 5, desired: 10, ebc: 0),
        Case(name: "scale down limited by floor(ready / down rate)",
             spec: { var s = base; s.maxScaleDownRate = 1.1; return s }(), ready: 100, stable: 0, panic: 0, desired: 90, ebc: 0),
        Case(name: "scale down from 2 with rate 1.1 allows 1",
             spec: { var s = base; s.maxScaleDownRate = 1.1; return s }(), ready: 2, stable: 0, panic: 0, desired: 1, ebc: 0),
        Case(name: "scale to zero from one pod is allowed by the clamp", spec: base, ready: 1, stable: 0, panic: 0, desired: 0, ebc: 0),
        Case(name: "unreachable revisions have no down clamp",
             spec: { var s = base; s.reachable = false; return s }(), ready: 10, stable: 0, panic: 0, desired: 0, ebc: 0),
        Case(name: "burst capacity uses ready x total - TBC - panic",
             spec: DeciderSpec(targetValue: 70, totalValue: 100, targetBurstCapacity: 211), ready: 1, stable: 50, panic: 50,
             desired: 1, ebc: -161),
        Case(name: "burst capacity with zero ready pods uses 0 capacity",
             spec: DeciderSpec(targetValue: 70, totalValue: 100, targetBurstCapacity: 100), ready: 0, stable: 1, panic: 1,
             desired: 1, ebc: -101),
        Case(name: "TBC 0 gives burst capacity 0",
             spec: DeciderSpec(targetValue: 70, totalValue: 100, targetBurstCapacity: 0), ready: 1, stable: 50, panic: 500,
             desired: 8, ebc: 0),
        Case(name: "TBC -1 gives burst capacity -1",
             spec: DeciderSpec(targetValue: 70, totalValue: 100, targetBurstCapacity: -1), ready: 1, stable: 50, panic: 50,
             desired: 1, ebc: -1),
        Case(name: "activation scale raises a non-zero desire",
             spec: { var s = base; s.activationScale = 3; return s }(), ready: 0, stable: 5, panic: 5, desired: 3, ebc: 0),
        Case(name: "activation scale leaves zero at zero",
             spec: { var s = base; s.activationScale = 3; return s }(), ready: 1, stable: 0, panic: 0, desired: 0, ebc: 0),
        Case(name: "activation scale applies after the up clamp",
             spec: { var s = base; s.activationScale = 5; s.maxScaleUpRate = 2; return s }(), ready: 1, stable: 30, panic: 15,
             desired: 5, ebc: 0),
    ]

    @Test("one tick from a fresh decider", arguments: cases)
    func oneTick(_ c: Case) {
        var d = Decider(spec: c.spec, readyPods: .ready(min(c.ready, 1)), now: unixAt(0))
        let r = d.decide(now: unixAt(2), readyPods: .ready(c.ready), averages: averages(c.stable, c.panic))
        #expect(r.valid)
        #expect(r.desiredPodCount == c.desired)
        #expect(r.excessBurstCapacity == c.ebc)
    }

    @Test("panic starts on the unclamped panic desire, holds the maximum and ends one stable window later (spec §8.2 example)")
    func workedExample() {
        var d = Decider(spec: DeciderSpec(), readyPods: .ready(1), now: unixAt(0))
        var r = d.decide(now: unixAt(0), readyPods: .ready(3), averages: averages(150, 450))
        #expect(r == ScaleDecision(desiredPodCount: 7, excessBurstCapacity: -361, valid: true))
        #expect(d.isPanicking)
        r = d.decide(now: unixAt(30), readyPods: .ready(7), averages: averages(200, 210))
        #expect(r == ScaleDecision(desiredPodCount: 7, excessBurstCapacity: 279, valid: true))
        #expect(d.isPanicking)
        r = d.decide(now: unixAt(60), readyPods: .ready(7), averages: averages(200, 210))
        #expect(d.isPanicking, "exit is strict: start + window must be before now")
        #expect(r.desiredPodCount == 7)
        r = d.decide(now: unixAt(61), readyPods: .ready(7), averages: averages(200, 210))
        #expect(!d.isPanicking)
        #expect(r.desiredPodCount == 3)
        r = d.decide(now: unixAt(62), readyPods: .ready(7), averages: averages(100, 100))
        #expect(r.desiredPodCount == 3)  // dspc 2, but floor(7/2) = 3
    }

    @Test("no scale-down while panicking, and the panic start is refreshed while over the threshold")
    func noScaleDownInPanic() {
        var d = Decider(spec: Self.base, readyPods: .ready(1), now: unixAt(0))
        _ = d.decide(now: unixAt(0), readyPods: .ready(1), averages: averages(10, 100))  // 10 pods, 10/1 >= 2
        #expect(d.isPanicking)
        var r = d.decide(now: unixAt(40), readyPods: .ready(4), averages: averages(10, 80))  // 8/4 >= 2: extend
        #expect(r.desiredPodCount == 10)
        r = d.decide(now: unixAt(90), readyPods: .ready(10), averages: averages(10, 10))
        #expect(d.isPanicking)  // 40 + 60 is not before 90
        #expect(r.desiredPodCount == 10)
        r = d.decide(now: unixAt(101), readyPods: .ready(10), averages: averages(10, 10))
        #expect(!d.isPanicking)
        #expect(r.desiredPodCount == 5)  // floor(10/2)
    }

    @Test("in panic the stable desire still drives growth")
    func stableGrowsInPanic() {
        var d = Decider(spec: Self.base, readyPods: .ready(1), now: unixAt(0))
        _ = d.decide(now: unixAt(0), readyPods: .ready(1), averages: averages(10, 30))
        let r = d.decide(now: unixAt(2), readyPods: .ready(3), averages: averages(120, 60))
        #expect(r.desiredPodCount == 12)
    }

    @Test("a decider created with more than one ready pod starts in panic holding that scale")
    func startsInPanicAfterRestart() {
        var d = Decider(spec: Self.base, readyPods: .ready(5), now: unixAt(100))
        #expect(d.isPanicking)
        var r = d.decide(now: unixAt(102), readyPods: .ready(5), averages: averages(0, 0))
        #expect(r.desiredPodCount == 5)
        r = d.decide(now: unixAt(161), readyPods: .ready(5), averages: averages(0, 0))
        #expect(r.desiredPodCount == 2)
        #expect(!d.isPanicking)
    }

    @Test("a fresh decider reports -1 and the initial burst capacity trunc(initial x total - TBC)",
          arguments: [(42.0, Int32(8)), (0, 0), (-1, -1)])
    func creationStatus(tbc: Double, expected: Int32) {
        let spec = DeciderSpec(totalValue: 25, targetBurstCapacity: tbc, initialScale: 2)
        let d = Decider(spec: spec, readyPods: .ready(0), now: unixAt(0))
        #expect(d.status.desiredScale == -1)
        #expect(d.status.excessBurstCapacity == expected)
    }

    @Test("no data or a failed pod count gives no decision and leaves the status alone")
    func invalidResults() {
        var d = Decider(spec: Self.base, readyPods: .ready(0), now: unixAt(0))
        let r1 = d.decide(now: unixAt(2), readyPods: .ready(1), averages: .failure(.noData))
        #expect(!r1.valid)
        let r2 = d.decide(now: unixAt(2), readyPods: .failed, averages: averages(10, 10))
        #expect(!r2.valid)
        let r3 = d.decide(now: unixAt(2), readyPods: .notFound, averages: averages(10, 10))
        #expect(r3.valid)
        let r4 = d.publish(.invalid)
        #expect(!r4)
        #expect(d.status.desiredScale == -1)
    }

    @Test("the reconciler is told when the desired scale changes or burst capacity changes sign")
    func publishNotifies() {
        var d = Decider(spec: Self.base, readyPods: .ready(0), now: unixAt(0))
        let r5 = d.publish(ScaleDecision(desiredPodCount: 2, excessBurstCapacity: 5, valid: true))
        #expect(r5)
        let r6 = d.publish(ScaleDecision(desiredPodCount: 2, excessBurstCapacity: 9, valid: true))
        #expect(!r6)
        let r7 = d.publish(ScaleDecision(desiredPodCount: 2, excessBurstCapacity: 0, valid: true))
        #expect(!r7)
        let r8 = d.publish(ScaleDecision(desiredPodCount: 2, excessBurstCapacity: -1, valid: true))
        #expect(r8)
    }

    @Test("the scale-down delay holds the maximum desire for the delay, but not for unreachable revisions")
    func delayWindow() {
        var spec = Self.base
        spec.scaleDownDelay = .seconds(10)
        var d = Decider(spec: spec, readyPods: .ready(1), now: unixAt(0))
        let r9 = d.decide(now: unixAt(0), readyPods: .ready(1), averages: averages(15, 0))
        #expect(r9.desiredPodCount == 2)
        let r10 = d.decide(now: unixAt(2), readyPods: .ready(2), averages: averages(0, 0))
        #expect(r10.desiredPodCount == 2)
        let r11 = d.decide(now: unixAt(8), readyPods: .ready(2), averages: averages(0, 0))
        #expect(r11.desiredPodCount == 2)
        let r12 = d.decide(now: unixAt(10), readyPods: .ready(2), averages: averages(0, 0))
        #expect(r12.desiredPodCount == 1)
        spec.reachable = false
        d.update(spec: spec)
        let r13 = d.decide(now: unixAt(12), readyPods: .ready(2), averages: averages(0, 0))
        #expect(r13.desiredPodCount == 0)
    }

    @Test("a stat with concurrency for a revision at desired 0 asks for an immediate decision")
    func pokeFromZero() {
        var d = Decider(spec: Self.base, readyPods: .ready(0), now: unixAt(0))
        d.publish(ScaleDecision(desiredPodCount: 0, excessBurstCapacity: 0, valid: true))
        #expect(d.wantsImmediateDecision(for: PodStat(podName: "activator", averageConcurrentRequests: 1, requestCount: 1)))
        #expect(!d.wantsImmediateDecision(for: PodStat(podName: "activator", requestCount: 1)))
    }
}

@Suite("KPA metric collector")
struct AutoscalingCollectorTests {
    let key = RevisionKey(namespace: "default", name: "hello-00001")

    @Test("the activator-proxied share is subtracted and same-second stats add up")
    func proxiedShare() {
        var c = MetricCollector()
        c.createOrUpdate(key, spec: MetricSpec(stableWindowSeconds: 60, panicWindowSeconds: 6), now: unixAt(100))
        // Pods saw 10 in flight, 4 of them via the activator; the activator reports its 4 itself.
        c.record(PodStat(podName: "scraper", averageConcurrentRequests: 10, averageProxiedConcurrentRequests: 4,
                         requestCount: 50, proxiedRequestCount: 20), at: unixAt(100), for: key)
        c.record(PodStat(podName: "activator-1", averageConcurrentRequests: 4, requestCount: 20), at: unixAt(100), for: key)
        #expect(c.averages(.concurrency, for: key, now: unixAt(100)) == .success(WindowAverages(stable: 10, panic: 10)))
        #expect(c.averages(.rps, for: key, now: unixAt(100)) == .success(WindowAverages(stable: 50, panic: 50)))
    }

    @Test("no data only after a silent stable window and only with a scrape target")
    func noData() {
        var c = MetricCollector()
        let other = RevisionKey(namespace: "default", name: "unlimited")
        c.createOrUpdate(key, spec: MetricSpec(stableWindowSeconds: 6, panicWindowSeconds: 1), now: unixAt(0))
        c.createOrUpdate(other, spec: MetricSpec(stableWindowSeconds: 6, panicWindowSeconds: 1, hasScrapeTarget: false), now: unixAt(0))
        #expect(c.averages(.concurrency, for: key, now: unixAt(10)) == .failure(.noData))
        #expect(c.averages(.concurrency, for: other, now: unixAt(10)) == .success(WindowAverages(stable: 0, panic: 0)))
        c.record(PodStat(podName: "p", averageConcurrentRequests: 3), at: unixAt(10), for: key)
        #expect(c.averages(.concurrency, for: key, now: unixAt(15)) == .success(WindowAverages(stable: 3, panic: 0)))
        #expect(c.averages(.concurrency, for: key, now: unixAt(16)) == .success(WindowAverages(stable: 0, panic: 0)))
        #expect(c.averages(.concurrency, for: key, now: unixAt(17)) == .failure(.noData))
        #expect(c.averages(.rps, for: RevisionKey(namespace: "x", name: "y"), now: unixAt(1)) == .failure(.notCollecting))
    }

    @Test("a window change resizes the buckets but keeps the algorithm chosen at creation")
    func updateResizes() {
        var c = MetricCollector()
        c.createOrUpdate(key, spec: MetricSpec(stableWindowSeconds: 10, panicWindowSeconds: 1), now: unixAt(0))
        for s in Int64(0)..<10 { c.record(PodStat(podName: "p", averageConcurrentRequests: Double(s + 1)), at: unixAt(s), for: key) }
        c.createOrUpdate(key, spec: MetricSpec(stableWindowSeconds: 5, panicWindowSeconds: 1, algorithm: .weightedExponential), now: unixAt(9))
        #expect(c.metrics(for: key)?.stableConcurrency.windowSeconds == 5)
        #expect(c.metrics(for: key)?.stableConcurrency.algorithm == .linear)
        #expect(c.averages(.concurrency, for: key, now: unixAt(9)) == .success(WindowAverages(stable: 8, panic: 10)))
    }

    @Test("the multiscaler records activator stats at their timestamp and pokes a revision at zero")
    func multiScalerPoke() {
        var m = MultiScaler()
        let slot = m.createOrUpdate(key, decider: DeciderSpec(targetValue: 10, targetBurstCapacity: 0),
                                    metric: MetricSpec(stableWindowSeconds: 60, panicWindowSeconds: 6),
                                    readyPods: .ready(0), now: unixAt(0))
        m.recordScraped(PodStat(podName: "s"), slot: slot, now: unixAt(0))
        #expect(m.tick(slot: slot, readyPods: .ready(1), now: unixAt(2)).decision.desiredPodCount == 0)
        let poke = m.recordActivatorStat(PodStat(podName: "activator", averageConcurrentRequests: 1, requestCount: 1),
                                         for: key, arrival: UnixTime(nanoseconds: 3_400_000_000))
        #expect(poke)
        let r = m.tick(slot: slot, readyPods: .ready(0), now: unixAt(3))
        #expect(r.decision.desiredPodCount == 1)
        #expect(r.statusChanged)
        var changed: [RevisionSlot] = []
        let r14 = m.tickAll(now: unixAt(4), changed: &changed) { _ in .ready(1) } == 1
        #expect(r14)
        m.delete(key)
        #expect(m.count == 0)
        #expect(m.decider(for: key) == nil)
    }
}

@Suite("KPA scraper sampling")
struct ScrapeSamplingTests {
    @Test("sample size follows Knative's formula", arguments: [(0, 0), (1, 1), (3, 3), (5, 4), (10, 7), (100, 14), (1000, 16), (-2, 0)])
    func sampleSize(population: Int, expected: Int) {
        #expect(ScrapeSampling.sampleSize(population: population) == expected)
    }

    @Test("the sample is extrapolated to a revision total")
    func extrapolation() {
        let sample = [3.0, 5, 3].map { PodStat(podName: "p\($0)", averageConcurrentRequests: $0, requestCount: $0 * 2) }
        let total = ScrapeSampling.extrapolate(sample, population: 3)
        #expect(total?.averageConcurrentRequests == 11)
        #expect(total?.requestCount == 22)
        #expect(ScrapeSampling.extrapolate(Array(sample.prefix(2)), population: 10)?.averageConcurrentRequests == 40)
        #expect(ScrapeSampling.extrapolate([], population: 3) == nil)
    }

    @Test("old pods come first; the group that supplies the sample is shuffled reproducibly")
    func candidateOrder() {
        let now = unixAt(1_000)
        let old = (0..<5).map { ScrapeCandidate(name: "old\($0)", address: "a", startedAt: unixAt(0)) }
        let young = (0..<5).map { ScrapeCandidate(name: "young\($0)", address: "a", startedAt: unixAt(990)) }
        var g1 = SplitMix64(seed: 42)
        var g2 = SplitMix64(seed: 42)
        let a = ScrapeSampling.candidateOrder(young + old, now: now, stableWindow: .seconds(60), sampleSize: 4, using: &g1)
        let b = ScrapeSampling.candidateOrder(young + old, now: now, stableWindow: .seconds(60), sampleSize: 4, using: &g2)
        #expect(a == b)
        #expect(a.prefix(5).allSatisfy { $0.name.hasPrefix("old") })
        #expect(Set(a.prefix(5).map(\.name)) == Set(old.map(\.name)))
        // Fewer old pods than the sample: the young ones are shuffled, old still first.
        var g3 = SplitMix64(seed: 1)
        let c = ScrapeSampling.candidateOrder(young + [old[0]], now: now, stableWindow: .seconds(60), sampleSize: 4, using: &g3)
        #expect(c.first?.name == "old0")
    }

    @Test("service scraping prefers pods older than the stable window and fails without enough distinct pods")
    func serviceSample() {
        let stats = [PodStat(podName: "a", processUptime: 5), PodStat(podName: "b", processUptime: 100),
                     PodStat(podName: "b", processUptime: 100), PodStat(podName: "c", processUptime: 70)]
        let chosen = ScrapeSampling.selectServiceScrapeSample(stats, sampleSize: 2, stableWindow: .seconds(60))
        #expect(chosen?.map(\.podName) == ["b", "c"])
        #expect(ScrapeSampling.selectServiceScrapeSample(stats, sampleSize: 4, stableWindow: .seconds(60)) == nil)
    }
}
