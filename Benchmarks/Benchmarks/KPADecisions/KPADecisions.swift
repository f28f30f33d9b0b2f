// KPA benchmark: a full 2-second autoscaler tick for 10,000 revisions on one core — two seconds of
// scraped stats recorded per revision, then one decision each — plus the decisions alone.
// Goal: one full tick for 10,000 revisions in under 20 ms. No peer: Knative's Go autoscaler is not built here.
import Benchmark
import SluiceCore

let revisionCount = 10_000

/// The autoscaler under test, held by reference so every measured iteration mutates the same state
/// (a value copy per iteration would measure copy-on-write instead of the tick).
final class Fixture {
    var scaler: MultiScaler
    let slots: [RevisionSlot]
    var now: Int64
    var changed: [RevisionSlot] = []

    init(_ parts: (MultiScaler, [RevisionSlot], Int64)) {
        (scaler, slots, now) = parts
        changed.reserveCapacity(revisionCount)
    }
}

/// 10,000 revisions with a minute of history each, so every window is full.
func makeAutoscaler(algorithm: AggregationAlgorithm) -> (MultiScaler, [RevisionSlot], Int64) {
    var scaler = MultiScaler()
    var slots: [RevisionSlot] = []
    slots.reserveCapacity(revisionCount)
    let start: Int64 = 1_700_000_000
    let spec = DeciderSpec(targetValue: 70, totalValue: 100, targetBurstCapacity: 211)
    let metric = MetricSpec(stableWindowSeconds: 60, panicWindowSeconds: 6, algorithm: algorithm)
    for i in 0..<revisionCount {
        let key = RevisionKey(namespace: "bench", name: "revision-\(i)")
        slots.append(scaler.createOrUpdate(key, decider: spec, metric: metric, readyPods: .ready(1),
                                           now: UnixTime(seconds: start)))
    }
    for second in start..<(start + 60) {
        for (i, slot) in slots.enumerated() {
            let load = Double((i * 7 + Int(second)) % 400)
            scaler.recordScraped(PodStat(podName: "service-scraper", averageConcurrentRequests: load, requestCount: load * 3),
                                 slot: slot, now: UnixTime(seconds: second))
        }
    }
    return (scaler, slots, start + 60)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .peakMemoryResident],
        maxDuration: .seconds(10),
        maxIterations: 500)

    for algorithm in AggregationAlgorithm.allCases {
        Benchmark("KPA full 2 s tick, 10000 revisions (\(algorithm.rawValue))") { benchmark, fixture in
            let stat = PodStat(podName: "service-scraper", averageConcurrentRequests: 120, requestCount: 300)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                // Two scrape seconds, then the decider tick.
                let now = fixture.now
                for slot in fixture.slots { fixture.scaler.recordScraped(stat, slot: slot, now: UnixTime(seconds: now)) }
                for slot in fixture.slots { fixture.scaler.recordScraped(stat, slot: slot, now: UnixTime(seconds: now + 1)) }
                fixture.now += 2
                fixture.changed.removeAll(keepingCapacity: true)
                blackHole(fixture.scaler.tickAll(now: UnixTime(seconds: fixture.now), changed: &fixture.changed) { _ in .ready(3) })
            }
            benchmark.stopMeasurement()
        } setup: {
            Fixture(makeAutoscaler(algorithm: algorithm))
        }
    }

    // The decisions alone, one second after the last data (windows full, no recording).
    Benchmark("KPA decisions only, 10000 revisions (linear)") { benchmark, fixture in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            fixture.changed.removeAll(keepingCapacity: true)
            blackHole(fixture.scaler.tickAll(now: UnixTime(seconds: fixture.now), changed: &fixture.changed) { _ in .ready(3) })
        }
        benchmark.stopMeasurement()
    } setup: {
        Fixture(makeAutoscaler(algorithm: .linear))
    }
}
