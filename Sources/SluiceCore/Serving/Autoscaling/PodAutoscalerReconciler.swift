// Applying decisions (Serving layer, KPA): the PodAutoscaler reconciler's rules — min/max/initial
// bounds, the scale-to-zero gate with grace and pod-retention periods, activator-in-path (SKS mode),
// the activator count and the Active condition — as pure functions of their inputs (kpa-spec §9, §10).

/// The PodAutoscaler's Active condition: Unknown = activating, True = active, False = inactive.
public enum ActiveState: String, Sendable, Equatable {
    case activating = "Unknown"
    case active = "True"
    case inactive = "False"
}

/// The Active condition with the time it last changed status (reasons are informational).
public struct ActiveCondition: Sendable, Equatable {
    public var state: ActiveState
    public var since: UnixTime
    public var reason: String

    public init(state: ActiveState, since: UnixTime, reason: String = "") {
        self.state = state
        self.since = since
        self.reason = reason
    }

    /// Time spent in `state` at `now`, or -1 ns when in another state (Knative's `inStatusFor`).
    public func duration(in state: ActiveState, now: UnixTime) -> GoDuration {
        self.state == state ? now - since : GoDuration(nanoseconds: -1)
    }

    /// Sets the state; the transition time moves only when the state changes.
    mutating func mark(_ newState: ActiveState, reason: String, now: UnixTime) {
        if state != newState { since = now }
        state = newState
        self.reason = reason
    }
}

/// Whether the activator sits in the request path (the ServerlessService mode).
public enum ServerlessServiceMode: String, Sendable, Equatable {
    /// Activator in path: requests are buffered by the activator.
    case proxy = "Proxy"
    /// Activator out of path: requests go straight to the pods.
    case serve = "Serve"
}

/// What the reconciler knows about the PodAutoscaler between reconciles.
public struct PodAutoscalerStatus: Sendable, Equatable {
    public var active: ActiveCondition
    public var scaleTargetInitialized: Bool
    /// Last published desired scale (nil before the first).
    public var desiredScale: Int32?
    public var actualScale: Int32?
    /// True once the ServerlessService has a public service name (needed for initialization).
    public var hasServiceName: Bool

    public init(active: ActiveCondition, scaleTargetInitialized: Bool = false, desiredScale: Int32? = nil,
                actualScale: Int32? = nil, hasServiceName: Bool = true) {
        self.active = active
        self.scaleTargetInitialized = scaleTargetInitialized
        self.desiredScale = desiredScale
        self.actualScale = actualScale
        self.hasServiceName = hasServiceName
    }
}

/// The ServerlessService as observed.
public struct ServerlessServiceObservation: Sendable, Equatable {
    public var mode: ServerlessServiceMode
    /// Since when the activator endpoints are populated in Proxy mode (nil when not).
    public var activatorEndpointsSince: UnixTime?

    public init(mode: ServerlessServiceMode, activatorEndpointsSince: UnixTime? = nil) {
        self.mode = mode
        self.activatorEndpointsSince = activatorEndpointsSince
    }

    /// How long the activator has been in the path (0 when not).
    public func proxyFor(now: UnixTime) -> GoDuration {
        activatorEndpointsSince.map { now - $0 } ?? .zero
    }
}

/// The per-revision settings the reconciler applies, resolved once from config and annotations.
public struct ScaleSettings: Sendable, Equatable {
    public var minScale: Int32
    /// 0 = unbounded.
    public var maxScale: Int32
    public var initialScale: Int32
    public var reachability: Reachability
    public var enableScaleToZero: Bool
    /// The PA's own stable window (annotation, else ConfigMap).
    public var stableWindow: GoDuration
    public var scaleToZeroGracePeriod: GoDuration
    /// Last-pod retention; 0 for unreachable revisions.
    public var podRetention: GoDuration
    /// Progress deadline + 30 s: how long activation may take before giving up.
    public var activationTimeout: GoDuration
    public var targetBurstCapacity: Double

    /// Knative's default deployment progress deadline (config-deployment).
    public static let defaultProgressDeadline = GoDuration.seconds(600)
    static let activationTimeoutBuffer = GoDuration.seconds(30)

    public init(config: AutoscalerConfig, annotations: RevisionAnnotations, reachability: Reachability = .reachable,
                deploymentProgressDeadline: GoDuration = ScaleSettings.defaultProgressDeadline) {
        minScale = reachability == .unreachable ? 0 : (annotations.minScale ?? config.minScale)
        maxScale = annotations.maxScale ?? config.maxScale
        initialScale = SpecResolution.initialScale(config: config, annotations: annotations)
        self.reachability = reachability
        enableScaleToZero = config.enableScaleToZero
        stableWindow = SpecResolution.stableWindow(config: config, annotations: annotations)
        scaleToZeroGracePeriod = config.scaleToZeroGracePeriod
        podRetention = reachability == .unreachable
            ? .zero : (annotations.scaleToZeroPodRetention ?? config.scaleToZeroPodRetentionPeriod)
        activationTimeout = (annotations.progressDeadline ?? deploymentProgressDeadline) + Self.activationTimeoutBuffer
        targetBurstCapacity = SpecResolution.targetBurstCapacity(config: config, annotations: annotations)
    }
}

/// The result of `scale`: the count to report, whether to apply it, and follow-ups.
public struct ScaleOutcome: Sendable, Equatable {
    public var desired: Int32
    public var apply: Bool
    /// Reconcile again after this long (nil = no timer).
    public var requeueAfter: GoDuration?
    /// The synchronous activator probe failed: start the asynchronous one (1 s period, 45 s timeout).
    public var startActivatorProbe: Bool

    public init(desired: Int32, apply: Bool, requeueAfter: GoDuration? = nil, startActivatorProbe: Bool = false) {
        self.desired = desired
        self.apply = apply
        self.requeueAfter = requeueAfter
        self.startActivatorProbe = startActivatorProbe
    }
}

/// One reconcile's decisions for a revision.
public struct ReconcileOutcome: Sendable, Equatable {
    public var want: Int32
    /// The replica count to patch on the scale target, when it differs from the current one.
    public var patchReplicas: Int32?
    public var serverlessServiceMode: ServerlessServiceMode
    public var activatorCount: Int32
    public var requeueAfter: GoDuration?
    public var startActivatorProbe: Bool
    public var status: PodAutoscalerStatus
}

public enum PodAutoscalerReconciler {
    public static let minimumActivators: Int32 = 2
    /// Requeue period while waiting for the SKS to switch to Proxy mode.
    public static let proxyModeRequeue = GoDuration.seconds(3)

    /// Knative's `applyBounds`: below min → min; above a non-zero max → max.
    public static func applyBounds(min lower: Int32, max upper: Int32, _ x: Int32) -> Int32 {
        if x < lower { return lower }
        if upper != 0 && x > upper { return upper }
        return x
    }

    /// `activeThreshold`: ready pods needed to call the revision active.
    public static func activeThreshold(settings: ScaleSettings, status: PodAutoscalerStatus) -> Int32 {
        status.scaleTargetInitialized ? max(settings.minScale, 1) : max(settings.minScale, settings.initialScale)
    }

    /// The reconciler's `scale(desired)` (§9.2) up to the apply decision. `probeActivator` runs the
    /// synchronous activator probe; it is called only when the gate needs it (TBC != -1).
    public static func scale(desired input: Int32, settings: ScaleSettings, status: PodAutoscalerStatus,
                             serverlessService: ServerlessServiceObservation, now: UnixTime,
                             probeActivator: () -> Bool) -> ScaleOutcome {
        if input < 0 && status.active.state != .activating { return ScaleOutcome(desired: input, apply: false) }
        var lower = settings.minScale
        if settings.initialScale > 1 && !status.scaleTargetInitialized && settings.reachability != .unreachable {
            lower = max(settings.initialScale, lower)
        }
        let desired = applyBounds(min: lower, max: settings.maxScale, input)
        return handleScaleToZero(desired: desired, settings: settings, status: status,
                                 serverlessService: serverlessService, now: now, probeActivator: probeActivator)
    }

    /// The scale-to-zero gate (§9.3).
    public static func handleScaleToZero(desired: Int32, settings: ScaleSettings, status: PodAutoscalerStatus,
                                         serverlessService: ServerlessServiceObservation, now: UnixTime,
                                         probeActivator: () -> Bool) -> ScaleOutcome {
        if desired != 0 { return ScaleOutcome(desired: desired, apply: true) }
        if !settings.enableScaleToZero { return ScaleOutcome(desired: 1, apply: true) }
        switch status.active.state {
        case .activating:
            if status.active.duration(in: .activating, now: now) > settings.activationTimeout {
                return ScaleOutcome(desired: 0, apply: true)  // give up activating, scale to zero
            }
            return ScaleOutcome(desired: -1, apply: false, requeueAfter: settings.activationTimeout)
        case .active:
            let activeFor = status.active.duration(in: .active, now: now)
            if activeFor >= settings.stableWindow {
                // The reconciler marks the PA inactive, which puts the activator in the path.
                let requeue = serverlessService.mode == .proxy ? proxyModeRequeue : nil
                return ScaleOutcome(desired: 0, apply: false, requeueAfter: requeue)
            }
            return ScaleOutcome(desired: 1, apply: true, requeueAfter: settings.stableWindow - activeFor)
        case .inactive:
            let activatorInPath = settings.targetBurstCapacity == -1 ? true : probeActivator()
            guard activatorInPath else {
                return ScaleOutcome(desired: 0, apply: false, startActivatorProbe: true)
            }
            let inactiveFor = status.active.duration(in: .inactive, now: now)
            let retention = settings.podRetention
            if inactiveFor >= max(settings.scaleToZeroGracePeriod, retention) {
                return ScaleOutcome(desired: 0, apply: true)
            }
            if retention > .zero && inactiveFor < retention {
                return ScaleOutcome(desired: 0, apply: false, requeueAfter: retention - inactiveFor)
            }
            let remaining = settings.scaleToZeroGracePeriod - serverlessService.proxyFor(now: now)
            if remaining <= .zero { return ScaleOutcome(desired: 0, apply: true) }
            return ScaleOutcome(desired: 0, apply: false, requeueAfter: remaining)
        }
    }

    /// SKS mode (§9.1 step 4): Serve only when pods are wanted and burst capacity is not negative.
    public static func serverlessServiceMode(want: Int32, excessBurstCapacity: Int32) -> ServerlessServiceMode {
        want > 0 && excessBurstCapacity >= 0 ? .serve : .proxy
    }

    /// Activators to put in the path (§9.1 step 5).
    public static func activatorCount(readyPods: Int, spec: DeciderSpec) -> Int32 {
        if spec.targetBurstCapacity == 0 { return minimumActivators }
        var capacity = Double(readyPods) * spec.totalValue
        if spec.targetBurstCapacity > 0 { capacity += spec.targetBurstCapacity }
        return Int32(saturating: max(Double(minimumActivators), (capacity / spec.activatorCapacity).rounded(.up)))
    }

    /// Status update after a reconcile (§9.1 steps 6–7).
    public static func computeStatus(_ status: inout PodAutoscalerStatus, want: Int32, readyPods: Int,
                                     settings: ScaleSettings, now: UnixTime) {
        status.actualScale = Int32(clamping: readyPods)
        // An autoscaler restart (want -1) does not erase a known desired scale.
        if !(want == -1 && (status.desiredScale ?? -1) >= 0) { status.desiredScale = want }
        let minimumReady = Int(activeThreshold(settings: settings, status: status))
        if readyPods >= minimumReady && status.hasServiceName { status.scaleTargetInitialized = true }
        if want == 0 || minimumReady == 0 {
            if status.active.state == .activating && minimumReady > 0 {
                status.active.mark(.inactive, reason: "TimedOut", now: now)
            } else {
                status.active.mark(.inactive, reason: "NoTraffic", now: now)
            }
        } else if readyPods < minimumReady {
            if want > 0 || status.active.state != .inactive {
                status.active.mark(.activating, reason: "Queued", now: now)
            } else {
                status.active.mark(.inactive, reason: "NoTraffic", now: now)
            }
        } else if want > 0 || status.active.state != .inactive {
            status.active.mark(.active, reason: "", now: now)
        }
    }

    /// One reconcile of a revision that has its SKS (§9.1 steps 3–7): scale, SKS mode, activator
    /// count and status. `currentReplicas` is the scale target's replica count (nil = unset = 1).
    public static func reconcile(decider: DeciderStatus, spec: DeciderSpec, settings: ScaleSettings,
                                 status: PodAutoscalerStatus, serverlessService: ServerlessServiceObservation,
                                 readyPods: Int, currentReplicas: Int32?, now: UnixTime,
                                 probeActivator: () -> Bool) -> ReconcileOutcome {
        let outcome = scale(desired: decider.desiredScale, settings: settings, status: status,
                            serverlessService: serverlessService, now: now, probeActivator: probeActivator)
        let want = outcome.desired
        var patch: Int32?
        if outcome.apply && want != (currentReplicas ?? 1) { patch = want }
        let mode: ServerlessServiceMode =
            (want == -1 && status.active.state == .inactive)
            ? .proxy : serverlessServiceMode(want: want, excessBurstCapacity: decider.excessBurstCapacity)
        var newStatus = status
        computeStatus(&newStatus, want: want, readyPods: readyPods, settings: settings, now: now)
        return ReconcileOutcome(want: want, patchReplicas: patch, serverlessServiceMode: mode,
                                activatorCount: activatorCount(readyPods: readyPods, spec: spec),
                                requeueAfter: outcome.requeueAfter, startActivatorProbe: outcome.startActivatorProbe,
                                status: newStatus)
    }
}
