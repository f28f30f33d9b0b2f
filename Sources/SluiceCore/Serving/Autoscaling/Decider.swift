// The KPA decider (Serving layer): one revision's scaling state and the per-tick decision — desired
// pods from the stable/panic averages, rate clamps, activation scale, panic mode, the scale-down
// delay window and excess burst capacity — exactly as Knative's autoscaler computes them (kpa-spec §8).

/// Knative's `DeciderSpec`: the per-revision inputs of the decision.
public struct DeciderSpec: Sendable, Equatable {
    /// Growth limit per tick, relative to ready pods (> 1).
    public var maxScaleUpRate: Double
    /// Shrink limit per tick, relative to ready pods (> 1).
    public var maxScaleDownRate: Double
    public var scalingMetric: ScalingMetric
    /// Per-pod target of the scaling metric (T).
    public var targetValue: Double
    /// Per-pod total capacity (Tot), used for burst capacity.
    public var totalValue: Double
    /// Target burst capacity: >= 0, or -1 for "activator always in path".
    public var targetBurstCapacity: Double
    /// Requests one activator can take (for the activator count).
    public var activatorCapacity: Double
    /// Panic when the panic-window desire reaches this multiple of ready pods (2.0 = 200 %).
    public var panicThreshold: Double
    public var stableWindow: GoDuration
    public var scaleDownDelay: GoDuration
    public var initialScale: Int32
    /// False when the revision is not routed: no scale-down clamp, no delay window, min ignored.
    public var reachable: Bool
    /// Smallest non-zero size (applies when > 1).
    public var activationScale: Int32

    public init(maxScaleUpRate: Double = 1000, maxScaleDownRate: Double = 2,
                scalingMetric: ScalingMetric = .concurrency, targetValue: Double = 70, totalValue: Double = 100,
                targetBurstCapacity: Double = 211, activatorCapacity: Double = 100, panicThreshold: Double = 2,
                stableWindow: GoDuration = .seconds(60), scaleDownDelay: GoDuration = .zero,
                initialScale: Int32 = 1, reachable: Bool = true, activationScale: Int32 = 0) {
        self.maxScaleUpRate = maxScaleUpRate
        self.maxScaleDownRate = maxScaleDownRate
        self.scalingMetric = scalingMetric
        self.targetValue = targetValue
        self.totalValue = totalValue
        self.targetBurstCapacity = targetBurstCapacity
        self.activatorCapacity = activatorCapacity
        self.panicThreshold = panicThreshold
        self.stableWindow = stableWindow
        self.scaleDownDelay = scaleDownDelay
        self.initialScale = initialScale
        self.reachable = reachable
        self.activationScale = activationScale
    }
}

/// The ready-pod count as the endpoints lookup answered it.
public enum ReadyPodCount: Sendable, Equatable {
    case ready(Int)
    /// The revision's endpoints do not exist (yet): counts as 0 ready pods.
    case notFound
    /// Any other lookup failure: the tick yields no decision.
    case failed
}

/// The result of one tick (Knative's `ScaleResult`).
public struct ScaleDecision: Sendable, Equatable {
    public var desiredPodCount: Int32
    public var excessBurstCapacity: Int32
    public var valid: Bool

    public init(desiredPodCount: Int32, excessBurstCapacity: Int32, valid: Bool) {
        self.desiredPodCount = desiredPodCount
        self.excessBurstCapacity = excessBurstCapacity
        self.valid = valid
    }

    public static let invalid = ScaleDecision(desiredPodCount: 0, excessBurstCapacity: 0, valid: false)
}

/// The decider's published status: what the PodAutoscaler reconciler reads.
public struct DeciderStatus: Sendable, Equatable {
    /// -1 until the first valid decision.
    public var desiredScale: Int32
    public var excessBurstCapacity: Int32
}

/// One revision's decider: spec, status and the state carried between ticks.
public struct Decider: Sendable {
    public private(set) var spec: DeciderSpec
    public private(set) var status: DeciderStatus
    /// When the panic condition last held; nil when not panicking.
    public private(set) var panicStart: UnixTime?
    /// The running maximum of desired pods while panicking.
    public private(set) var maxPanicPods: Int32
    private var delayWindow: ScaleDownDelayWindow?

    /// Creates a decider at `now`. `readyPods` is the count read at construction (a failed lookup
    /// counts as 0): with more than one ready pod the decider starts in panic mode holding that
    /// scale, because after a restart it has no metric history yet.
    public init(spec: DeciderSpec, readyPods: ReadyPodCount, now: UnixTime) {
        self.spec = spec
        let ready: Int
        if case .ready(let n) = readyPods { ready = n } else { ready = 0 }
        maxPanicPods = Int32(clamping: ready)
        panicStart = ready > 1 ? now : nil
        delayWindow = spec.scaleDownDelay > .zero ? ScaleDownDelayWindow(delay: spec.scaleDownDelay) : nil
        let tbc = spec.targetBurstCapacity
        let ebc: Int32
        if tbc == 0 || tbc == -1 {
            ebc = Int32(saturating: tbc)
        } else {
            ebc = Int32(saturating: Double(spec.initialScale) * spec.totalValue - tbc)
        }
        status = DeciderStatus(desiredScale: -1, excessBurstCapacity: ebc)
    }

    /// Replaces the spec. The delay window is neither created, removed nor resized (as in Knative).
    public mutating func update(spec newSpec: DeciderSpec) {
        spec = newSpec
    }

    public var isPanicking: Bool { panicStart != nil }

    /// A stat for a revision whose last desire was 0 with non-zero concurrency asks for an
    /// immediate decision (fast scale from zero).
    public func wantsImmediateDecision(for stat: PodStat) -> Bool {
        status.desiredScale == 0 && stat.averageConcurrentRequests != 0
    }

    /// One tick at `now` (Knative's `autoscaler.Scale`).
    public mutating func decide(now: UnixTime, readyPods: ReadyPodCount,
                                averages: Result<WindowAverages, MetricError>) -> ScaleDecision {
        let originalReady: Int
        switch readyPods {
        case .ready(let n): originalReady = n
        case .notFound: originalReady = 0
        case .failed: return .invalid
        }
        guard case .success(let observed) = averages else { return .invalid }
        let ready = max(1, Double(originalReady))
        let spec = self.spec

        let maxScaleUp = (spec.maxScaleUpRate * ready).rounded(.up)
        let maxScaleDown = spec.reachable ? (ready / spec.maxScaleDownRate).rounded(.down) : 0

        let stableDesire = (observed.stable / spec.targetValue).rounded(.up)
        let panicDesire = (observed.panic / spec.targetValue).rounded(.up)

        var stablePods = Int32(saturating: min(max(stableDesire, maxScaleDown), maxScaleUp))
        var panicPods = Int32(saturating: min(max(panicDesire, maxScaleDown), maxScaleUp))

        // Activation scale applies after the clamps and only to non-zero desires, so 0 stays 0.
        if spec.activationScale > 1 {
            if stableDesire > 0 && spec.activationScale > stablePods { stablePods = spec.activationScale }
            if panicDesire > 0 && spec.activationScale > panicPods { panicPods = spec.activationScale }
        }

        // The unclamped panic desire against the ready pods decides panic mode.
        let overThreshold = panicDesire / ready >= spec.panicThreshold
        if panicStart == nil && overThreshold {
            panicStart = now
        } else if overThreshold {
            panicStart = now
        } else if let start = panicStart, start + spec.stableWindow < now {
            panicStart = nil
            maxPanicPods = 0
        }

        var desired = stablePods
        if panicStart != nil {
            if desired < panicPods { desired = panicPods }
            if desired > maxPanicPods { maxPanicPods = desired }
            desired = maxPanicPods  // never shrinks while panicking
        }

        if spec.reachable, delayWindow != nil {
            delayWindow?.record(desired, at: now)
            if let delayed = delayWindow?.current { desired = delayed }
        }

        let excess: Double
        if spec.targetBurstCapacity == 0 {
            excess = 0
        } else if spec.targetBurstCapacity > 0 {
            // Raw ready count (may be 0), total capacity and the raw panic value.
            excess = (Double(originalReady) * spec.totalValue - spec.targetBurstCapacity - observed.panic).rounded(.down)
        } else {
            excess = -1
        }
        return ScaleDecision(desiredPodCount: desired, excessBurstCapacity: Int32(saturating: excess), valid: true)
    }

    /// Publishes a decision into the status. Returns true when the reconciler must hear about it:
    /// the desired scale changed or the burst capacity changed sign (0 counts as non-negative).
    @discardableResult
    public mutating func publish(_ decision: ScaleDecision) -> Bool {
        guard decision.valid else { return false }
        var changed = false
        if status.desiredScale != decision.desiredPodCount {
            status.desiredScale = decision.desiredPodCount
            changed = true
        }
        if (status.excessBurstCapacity < 0) != (decision.excessBurstCapacity < 0) { changed = true }
        status.excessBurstCapacity = decision.excessBurstCapacity
        return changed
    }
}

extension Int32 {
    /// Go's float-to-int32 conversion for the values the KPA produces, saturating instead of
    /// wrapping when a pathological input would overflow (Go's result is undefined there).
    @inlinable init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 2_147_483_647 {
            self = .max
        } else if value <= -2_147_483_648 {
            self = .min
        } else {
            self = Int32(value)  // truncates toward zero, as Go does
        }
    }
}
