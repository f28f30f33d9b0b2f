// queue-proxy's check of the user container's readiness, run each time a readiness probe reaches the
// queue-proxy (Knative's readiness.Probe): every configured probe must pass; with periodSeconds 0 each one
// is retried every 50 ms with a 100 ms attempt timeout until it passes successThreshold times in a row or
// 10 s have gone by; otherwise one attempt with timeoutSeconds. Concurrent checks join the one running.
// Serving layer: a pure state machine. The socket work (HTTP GET, TCP connect, gRPC health) is done by the
// event loop, which starts the attempts this machine asks for and reports their outcome.

/// One attempt the event loop must carry out, then report with `attemptFinished`.
public struct ReadinessAttempt: Sendable, Equatable {
    /// Identifies the attempt in `attemptFinished` (late reports of abandoned attempts are ignored).
    public var id: UInt64
    /// Index into the prober's `probes`.
    public var probeIndex: Int
    public var spec: ReadinessProbeSpec
    /// Give up (and report failure) after this long.
    public var timeout: Duration
}

public struct ReadinessProber: Sendable {
    /// What a change in the machine requires from the event loop.
    public struct Effects: Sendable, Equatable {
        /// Attempts to start now.
        public var startAttempts: [ReadinessAttempt] = []
        /// Set when the running check finished: answer every waiting readiness probe with it
        /// (true → 200 `queue`, false → 503).
        public var decided: Bool?

        public init() {}
    }

    /// Knative's aggressive-mode figures.
    public static let retryInterval: Duration = .milliseconds(50)
    public static let pollLimit: Duration = .seconds(10)

    public let probes: [ReadinessProbeSpec]
    public let retryInterval: Duration
    public let pollLimit: Duration

    private enum ProbePhase: Sendable, Equatable {
        case idle
        case attempting(id: UInt64, deadline: ServingInstant)
        case waitingRetry(at: ServingInstant)
        case done(Bool)
    }

    private var phases: [ProbePhase]
    /// Consecutive successes per probe; like Knative it carries over between checks and resets on failure.
    private var successes: [Int]
    private var running = false
    private var pollDeadline = ServingInstant(nanoseconds: 0)
    private var nextAttemptID: UInt64 = 1

    public init(probes: [ReadinessProbeSpec], retryInterval: Duration = ReadinessProber.retryInterval, pollLimit: Duration = ReadinessProber.pollLimit) {
        self.probes = probes
        self.retryInterval = retryInterval
        self.pollLimit = pollLimit
        phases = Array(repeating: .idle, count: probes.count)
        successes = Array(repeating: 0, count: probes.count)
    }

    /// Whether a check is in progress (a new `check` joins it).
    public var isChecking: Bool { running }

    /// A readiness probe arrived. Without configured probes the app counts as ready at once. If a check
    /// is already running this one joins it (no new attempts; the decision comes with the running one).
    public mutating func check(at now: ServingInstant) -> Effects {
        var effects = Effects()
        if probes.isEmpty {
            effects.decided = true
            return effects
        }
        if running { return effects }
        running = true
        pollDeadline = now + pollLimit
        for index in probes.indices {
            phases[index] = .idle
            effects.startAttempts.append(startAttempt(index, at: now))
        }
        return effects
    }

    /// The event loop reports how attempt `id` ended.
    public mutating func attemptFinished(id: UInt64, succeeded: Bool, at now: ServingInstant) -> Effects {
        var effects = Effects()
        guard running, let index = phases.firstIndex(where: { phase in
            if case .attempting(let current, _) = phase { return current == id }
            return false
        }) else { return effects }
        conclude(index, succeeded: succeeded, at: now, &effects)
        finishIfDone(&effects)
        return effects
    }

    /// Timers: attempt timeouts, retries and the poll limit. Call at `nextDeadline`.
    public mutating func advance(at now: ServingInstant) -> Effects {
        var effects = Effects()
        guard running else { return effects }
        for index in phases.indices {
            switch phases[index] {
            case .attempting(_, let deadline) where now >= deadline:
                conclude(index, succeeded: false, at: now, &effects)
            case .waitingRetry(let at) where now >= at:
                effects.startAttempts.append(startAttempt(index, at: now))
            default:
                break
            }
        }
        finishIfDone(&effects)
        return effects
    }

    /// When `advance` next has something to do.
    public var nextDeadline: ServingInstant? {
        guard running else { return nil }
        var earliest: ServingInstant?
        for phase in phases {
            let candidate: ServingInstant
            switch phase {
            case .attempting(_, let deadline): candidate = deadline
            case .waitingRetry(let at): candidate = at
            case .idle, .done: continue
            }
            if earliest.map({ candidate < $0 }) ?? true { earliest = candidate }
        }
        return earliest
    }

    private mutating func startAttempt(_ index: Int, at now: ServingInstant) -> ReadinessAttempt {
        let spec = probes[index]
        let id = nextAttemptID
        nextAttemptID &+= 1
        phases[index] = .attempting(id: id, deadline: now + spec.attemptTimeout)
        return ReadinessAttempt(id: id, probeIndex: index, spec: spec, timeout: spec.attemptTimeout)
    }

    private mutating func conclude(_ index: Int, succeeded: Bool, at now: ServingInstant, _ effects: inout Effects) {
        let spec = probes[index]
        guard spec.isAggressive else {
            phases[index] = .done(succeeded)
            return
        }
        if succeeded {
            successes[index] += 1
            if successes[index] >= spec.requiredSuccesses {
                phases[index] = .done(true)
                return
            }
        } else {
            successes[index] = 0
        }
        let retryAt = now + retryInterval
        if retryAt >= pollDeadline {
            // The poll ends at its deadline without another attempt.
            phases[index] = .done(false)
        } else {
            phases[index] = .waitingRetry(at: retryAt)
        }
    }

    private mutating func finishIfDone(_ effects: inout Effects) {
        var allReady = true
        for phase in phases {
            guard case .done(let ready) = phase else { return }
            allReady = allReady && ready
        }
        running = false
        effects.decided = allReady
    }
}

/// The kubelet's view of a probe, for places with no kubelet (the local runtime, the activator's pod
/// probing): a container is ready after `successThreshold` passes in a row and unready after
/// `failureThreshold` failures in a row; probes run every `periodSeconds` after `initialDelaySeconds`.
public struct ProbeThresholdTracker: Sendable, Equatable {
    public let successThreshold: Int
    public let failureThreshold: Int
    public let period: Duration
    public let initialDelay: Duration
    public private(set) var isReady = false
    private var consecutiveSuccesses = 0
    private var consecutiveFailures = 0

    public init(successThreshold: Int, failureThreshold: Int, period: Duration, initialDelay: Duration = .zero) {
        self.successThreshold = max(successThreshold, 1)
        self.failureThreshold = max(failureThreshold, 1)
        self.period = period
        self.initialDelay = initialDelay
    }

    /// Kubernetes' thresholds and timing from a probe spec (period 0 means Kubernetes' default of 10 s;
    /// Knative's aggressive mode is for queue-proxy's own check, not for the kubelet's schedule).
    public init(spec: ReadinessProbeSpec) {
        self.init(
            successThreshold: spec.requiredSuccesses, failureThreshold: spec.requiredFailures,
            period: .seconds(spec.periodSeconds > 0 ? spec.periodSeconds : 10), initialDelay: .seconds(spec.initialDelaySeconds))
    }

    /// Records one probe outcome; returns true when readiness changed.
    @discardableResult
    public mutating func record(succeeded: Bool) -> Bool {
        let before = isReady
        if succeeded {
            consecutiveSuccesses += 1
            consecutiveFailures = 0
            if consecutiveSuccesses >= successThreshold { isReady = true }
        } else {
            consecutiveFailures += 1
            consecutiveSuccesses = 0
            if consecutiveFailures >= failureThreshold { isReady = false }
        }
        return before != isReady
    }

    /// When the n-th probe (0-based) is due, counted from the container's start.
    public func probeTime(number: Int, startedAt: ServingInstant) -> ServingInstant {
        startedAt + initialDelay + period * number
    }
}
