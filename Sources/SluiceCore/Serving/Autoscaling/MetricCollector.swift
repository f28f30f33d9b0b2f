// Per-revision metric collection (Serving layer, KPA): four 1-second bucket sets per revision
// (stable/panic × concurrency/RPS) fed by scraped and activator stats, and the stable/panic window
// averages the decider reads (kpa-spec §4). Revisions live in a dense slot array so a tick over
// thousands of them touches contiguous memory and allocates nothing.

/// A revision's identity (namespace/name), as Knative's `types.NamespacedName`.
public struct RevisionKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }
    public var description: String { "\(namespace)/\(name)" }
    public static func < (lhs: RevisionKey, rhs: RevisionKey) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}

/// The metric the KPA scales on (annotation `autoscaling.knative.dev/metric`).
public enum ScalingMetric: String, Sendable, Equatable, CaseIterable {
    case concurrency
    case rps
}

/// What the collector needs to know about a revision (Knative's `Metric` resource spec).
public struct MetricSpec: Sendable, Equatable {
    public var stableWindowSeconds: Int64
    public var panicWindowSeconds: Int64
    /// False when target burst capacity is -1: no scraper exists and an empty window averages to 0
    /// instead of meaning "no data".
    public var hasScrapeTarget: Bool
    public var algorithm: AggregationAlgorithm

    public init(stableWindowSeconds: Int64, panicWindowSeconds: Int64, hasScrapeTarget: Bool = true,
                algorithm: AggregationAlgorithm = .linear) {
        self.stableWindowSeconds = stableWindowSeconds
        self.panicWindowSeconds = panicWindowSeconds
        self.hasScrapeTarget = hasScrapeTarget
        self.algorithm = algorithm
    }
}

/// Stable- and panic-window averages of one metric, revision totals.
public struct WindowAverages: Sendable, Equatable {
    public var stable: Double
    public var panic: Double
    public init(stable: Double, panic: Double) {
        self.stable = stable
        self.panic = panic
    }
}

/// Why the collector has no averages for a revision.
public enum MetricError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable buckets saw nothing for a whole window while a scrape target exists.
    case noData
    /// The revision is not being collected.
    case notCollecting
    public var description: String {
        switch self {
        case .noData: return "no data available"
        case .notCollecting: return "no metrics are being collected for the requested resource"
        }
    }
}

/// Index of a revision inside a `MetricCollector` / `MultiScaler`; valid until the revision is deleted.
public struct RevisionSlot: Hashable, Sendable {
    public let index: Int
    init(_ index: Int) { self.index = index }
}

/// One revision's four bucket sets.
public struct RevisionMetrics: Sendable {
    public private(set) var spec: MetricSpec
    public private(set) var stableConcurrency: MetricBuckets
    public private(set) var panicConcurrency: MetricBuckets
    public private(set) var stableRPS: MetricBuckets
    public private(set) var panicRPS: MetricBuckets

    public init(spec: MetricSpec) {
        self.spec = spec
        stableConcurrency = MetricBuckets(windowSeconds: spec.stableWindowSeconds, algorithm: spec.algorithm)
        panicConcurrency = MetricBuckets(windowSeconds: spec.panicWindowSeconds, algorithm: spec.algorithm)
        stableRPS = MetricBuckets(windowSeconds: spec.stableWindowSeconds, algorithm: spec.algorithm)
        panicRPS = MetricBuckets(windowSeconds: spec.panicWindowSeconds, algorithm: spec.algorithm)
    }

    /// Records a stat at `time`: the activator-proxied share is subtracted first, and stats of the
    /// same second add up (scraper estimate plus every activator's report).
    public mutating func record(_ stat: PodStat, at time: UnixTime) {
        let concurrency = stat.directConcurrency
        stableConcurrency.record(concurrency, at: time)
        panicConcurrency.record(concurrency, at: time)
        let rps = stat.directRequestRate
        stableRPS.record(rps, at: time)
        panicRPS.record(rps, at: time)
    }

    /// Records already-aggregated revision totals for one second (the simulator's raw samples).
    public mutating func record(concurrency: Double, rps: Double, at time: UnixTime) {
        stableConcurrency.record(concurrency, at: time)
        panicConcurrency.record(concurrency, at: time)
        stableRPS.record(rps, at: time)
        panicRPS.record(rps, at: time)
    }

    /// Applies a changed spec: windows are resized (keeping recent data); the aggregation
    /// algorithm stays the one chosen at creation, as in Knative.
    public mutating func update(spec newSpec: MetricSpec, now: UnixTime) {
        let algorithm = spec.algorithm
        spec = newSpec
        spec.algorithm = algorithm
        stableConcurrency.resize(windowSeconds: newSpec.stableWindowSeconds, now: now)
        panicConcurrency.resize(windowSeconds: newSpec.panicWindowSeconds, now: now)
        stableRPS.resize(windowSeconds: newSpec.stableWindowSeconds, now: now)
        panicRPS.resize(windowSeconds: newSpec.panicWindowSeconds, now: now)
    }

    /// Stable and panic averages of `metric` at `now`, or `.noData`.
    public func averages(_ metric: ScalingMetric, now: UnixTime) -> Result<WindowAverages, MetricError> {
        switch metric {
        case .concurrency:
            if stableConcurrency.isEmpty(now: now) && spec.hasScrapeTarget { return .failure(.noData) }
            return .success(WindowAverages(stable: stableConcurrency.windowAverage(now: now),
                                           panic: panicConcurrency.windowAverage(now: now)))
        case .rps:
            if stableRPS.isEmpty(now: now) && spec.hasScrapeTarget { return .failure(.noData) }
            return .success(WindowAverages(stable: stableRPS.windowAverage(now: now),
                                           panic: panicRPS.windowAverage(now: now)))
        }
    }
}

/// The metric collector: one `RevisionMetrics` per revision, addressed by key or slot.
public struct MetricCollector: Sendable {
    private var revisions: [RevisionMetrics?] = []
    private var keys: [RevisionKey?] = []
    private var slots: [RevisionKey: Int] = [:]
    private var freeSlots: [Int] = []

    public init() {}

    public var count: Int { slots.count }

    public func slot(for key: RevisionKey) -> RevisionSlot? {
        slots[key].map(RevisionSlot.init)
    }

    public func key(of slot: RevisionSlot) -> RevisionKey? {
        slot.index < keys.count ? keys[slot.index] : nil
    }

    /// Starts collecting for `key`, or applies a changed spec (window resize) to an existing one.
    @discardableResult
    public mutating func createOrUpdate(_ key: RevisionKey, spec: MetricSpec, now: UnixTime) -> RevisionSlot {
        if let index = slots[key] {
            if revisions[index]?.spec != spec { revisions[index]?.update(spec: spec, now: now) }
            return RevisionSlot(index)
        }
        let metrics = RevisionMetrics(spec: spec)
        let index: Int
        if let free = freeSlots.popLast() {
            index = free
            revisions[index] = metrics
            keys[index] = key
        } else {
            index = revisions.count
            revisions.append(metrics)
            keys.append(key)
        }
        slots[key] = index
        return RevisionSlot(index)
    }

    public mutating func delete(_ key: RevisionKey) {
        guard let index = slots.removeValue(forKey: key) else { return }
        revisions[index] = nil
        keys[index] = nil
        freeSlots.append(index)
    }

    /// Records a stat for a collected revision (unknown revisions are ignored, as in Knative).
    public mutating func record(_ stat: PodStat, at time: UnixTime, for key: RevisionKey) {
        guard let index = slots[key] else { return }
        revisions[index]?.record(stat, at: time)
    }

    public mutating func record(_ stat: PodStat, at time: UnixTime, slot: RevisionSlot) {
        guard slot.index < revisions.count else { return }
        revisions[slot.index]?.record(stat, at: time)
    }

    public mutating func record(concurrency: Double, rps: Double, at time: UnixTime, slot: RevisionSlot) {
        guard slot.index < revisions.count else { return }
        revisions[slot.index]?.record(concurrency: concurrency, rps: rps, at: time)
    }

    public func averages(_ metric: ScalingMetric, slot: RevisionSlot, now: UnixTime) -> Result<WindowAverages, MetricError> {
        guard slot.index < revisions.count else { return .failure(.notCollecting) }
        // Read in place: binding the element would retain its four bucket arrays on every tick.
        return revisions[slot.index]?.averages(metric, now: now) ?? .failure(.notCollecting)
    }

    public func averages(_ metric: ScalingMetric, for key: RevisionKey, now: UnixTime) -> Result<WindowAverages, MetricError> {
        guard let index = slots[key] else { return .failure(.notCollecting) }
        return averages(metric, slot: RevisionSlot(index), now: now)
    }

    public func metrics(for key: RevisionKey) -> RevisionMetrics? {
        slots[key].flatMap { revisions[$0] }
    }
}
