// All revisions' autoscaling in one value (Serving layer, KPA): the metric collector plus one decider
// per revision in aligned dense arrays, the stat intake (scraped and activator-pushed) and the 2 s
// tick over every revision — Knative's MultiScaler without goroutines, driven by the caller's timer.

/// What one tick of one revision produced.
public struct TickResult: Sendable, Equatable {
    public var decision: ScaleDecision
    /// True when the reconciler must run: desired scale changed or burst capacity changed sign.
    public var statusChanged: Bool
}

public struct MultiScaler: Sendable {
    public private(set) var collector = MetricCollector()
    private var deciders: [Decider?] = []

    public init() {}

    public var count: Int { collector.count }

    /// Creates the decider and collection for `key` (reading `readyPods` as Knative's constructor
    /// does), or updates both specs of an existing revision.
    @discardableResult
    public mutating func createOrUpdate(_ key: RevisionKey, decider spec: DeciderSpec, metric metricSpec: MetricSpec,
                                        readyPods: ReadyPodCount, now: UnixTime) -> RevisionSlot {
        let existed = collector.slot(for: key) != nil
        let slot = collector.createOrUpdate(key, spec: metricSpec, now: now)
        while deciders.count <= slot.index { deciders.append(nil) }
        if existed, deciders[slot.index] != nil {
            deciders[slot.index]?.update(spec: spec)
        } else {
            deciders[slot.index] = Decider(spec: spec, readyPods: readyPods, now: now)
        }
        return slot
    }

    public mutating func delete(_ key: RevisionKey) {
        if let slot = collector.slot(for: key) { deciders[slot.index] = nil }
        collector.delete(key)
    }

    public func slot(for key: RevisionKey) -> RevisionSlot? { collector.slot(for: key) }
    public func key(of slot: RevisionSlot) -> RevisionKey? { collector.key(of: slot) }

    public func decider(for key: RevisionKey) -> Decider? {
        guard let slot = collector.slot(for: key) else { return nil }
        return deciders[slot.index]
    }

    /// Records the scraper's revision estimate taken at `now`.
    public mutating func recordScraped(_ stat: PodStat, slot: RevisionSlot, now: UnixTime) {
        collector.record(stat, at: now, slot: slot)
    }

    /// Records an activator stat at its own timestamp (stamped with the arrival second when it has
    /// none). Returns true when the revision's decider should decide now (scale from zero).
    @discardableResult
    public mutating func recordActivatorStat(_ stat: PodStat, for key: RevisionKey, arrival: UnixTime) -> Bool {
        guard let slot = collector.slot(for: key) else { return false }
        let second = stat.timestamp != 0 ? stat.timestamp : arrival.seconds
        collector.record(stat, at: UnixTime(seconds: second), slot: slot)
        return deciders[slot.index]?.wantsImmediateDecision(for: stat) ?? false
    }

    /// One decider tick at `now`; a valid decision is published into the decider's status.
    public mutating func tick(slot: RevisionSlot, readyPods: ReadyPodCount, now: UnixTime) -> TickResult {
        guard slot.index < deciders.count, deciders[slot.index] != nil else {
            return TickResult(decision: .invalid, statusChanged: false)
        }
        let metric = deciders[slot.index]?.spec.scalingMetric ?? .concurrency
        let averages = collector.averages(metric, slot: slot, now: now)
        let decision = deciders[slot.index]?.decide(now: now, readyPods: readyPods, averages: averages) ?? .invalid
        let changed = deciders[slot.index]?.publish(decision) ?? false
        return TickResult(decision: decision, statusChanged: changed)
    }

    /// Ticks every revision at `now`; `readyPods` answers the ready count per revision. Keys whose
    /// status changed are appended to `changed` (reuse its storage across ticks). Returns the
    /// number of valid decisions.
    @discardableResult
    public mutating func tickAll(now: UnixTime, changed: inout [RevisionSlot],
                                 readyPods: (RevisionSlot) -> ReadyPodCount) -> Int {
        var valid = 0
        for index in deciders.indices where deciders[index] != nil {
            let slot = RevisionSlot(index)
            let result = tick(slot: slot, readyPods: readyPods(slot), now: now)
            if result.decision.valid { valid += 1 }
            if result.statusChanged { changed.append(slot) }
        }
        return valid
    }
}
