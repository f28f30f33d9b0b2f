// Knative's graceful shutdown of queue-proxy as a pure state machine: on SIGTERM probes fail at once, the
// port keeps serving until a quiet period passes with no new request (each request re-arms it), then the
// listeners close, in-flight requests finish, upgraded connections get a bounded extra wait, and a hard
// cap bounds it all. `/wait-for-drain` (the user container's preStop hook) waits for the quiet period.
// Serving layer; time is passed in, effects are returned as flags for the event loop to carry out.

public struct DrainSettings: Sendable, Equatable {
    /// Time without new requests after which draining proceeds (Knative's queue-proxy: 30 s).
    public var quietPeriod: Duration
    /// Extra time granted to upgraded (hijacked) connections once ordinary requests are done (60 s).
    public var upgradedConnectionGrace: Duration
    /// Longest the whole shutdown may take from the signal (Knative's pod grace period is the revision
    /// timeout); nil for no cap.
    public var hardCap: Duration?
    /// A `/wait-for-drain` call not followed by SIGTERM within this time was a liveness restart of the
    /// user container, not a pod shutdown: the drain is called off (Knative waits 1 s).
    public var signalGraceAfterWaitForDrain: Duration

    public init(
        quietPeriod: Duration = .seconds(30), upgradedConnectionGrace: Duration = .seconds(60),
        hardCap: Duration? = nil, signalGraceAfterWaitForDrain: Duration = .seconds(1)
    ) {
        self.quietPeriod = quietPeriod
        self.upgradedConnectionGrace = upgradedConnectionGrace
        self.hardCap = hardCap
        self.signalGraceAfterWaitForDrain = signalGraceAfterWaitForDrain
    }
}

public struct DrainStateMachine: Sendable {
    public enum Phase: Sendable, Equatable {
        /// Normal operation: probes answer normally.
        case serving
        /// Probes fail; requests are served and each one pushes the deadline back.
        case quietPeriod(deadline: ServingInstant)
        /// The quiet period passed after a `/wait-for-drain` without SIGTERM; waiting for the signal or
        /// for the liveness-restart check to call the drain off. Probes still fail.
        case quietPeriodEnded
        /// Listeners closed; waiting for in-flight requests to finish.
        case finishingRequests
        /// Only upgraded connections remain; they get until `deadline`.
        case finishingUpgradedConnections(deadline: ServingInstant)
        /// Done: exit the process (status 0).
        case finished(FinishReason)
    }

    public enum FinishReason: Sendable, Equatable {
        /// Everything finished within the limits.
        case completed
        /// Upgraded connections were still open when their extra time ran out.
        case upgradedConnectionsTimedOut
        /// The hard cap passed with work still in flight.
        case hardCapReached
        /// A second SIGTERM/SIGINT asked for an immediate stop.
        case secondSignal
    }

    /// What the caller must do after an input.
    public struct Effects: Sendable, Equatable {
        /// Answer every waiting `/wait-for-drain` request with 200.
        public var releaseDrainWaiters = false
        /// Stop accepting: drain the accept queues, close the listeners, close idle kept-alive
        /// connections and send `Connection: close` on responses from now on.
        public var stopAccepting = false
        /// The drain was called off (liveness restart): probes answer normally again.
        public var drainCancelled = false
        /// Set when the phase became `.finished`.
        public var finished: FinishReason?

        public init() {}
    }

    public let settings: DrainSettings
    public private(set) var phase: Phase = .serving
    public private(set) var signalReceived = false
    private var hardDeadline: ServingInstant?
    private var cancelCheckDeadline: ServingInstant?

    public init(settings: DrainSettings = DrainSettings()) {
        self.settings = settings
    }

    /// Probes (kubelet, activator, ingress) answer 503 `shutting down` whenever this is true.
    public var isDraining: Bool {
        phase != .serving
    }

    /// SIGTERM or SIGINT arrived. A second one finishes at once.
    public mutating func signalReceived(at now: ServingInstant) -> Effects {
        var effects = Effects()
        if signalReceived {
            if case .finished = phase { return effects }
            finish(.secondSignal, &effects)
            return effects
        }
        signalReceived = true
        cancelCheckDeadline = nil
        if let cap = settings.hardCap {
            hardDeadline = now + cap
        }
        switch phase {
        case .serving:
            phase = .quietPeriod(deadline: now + settings.quietPeriod)
        case .quietPeriodEnded:
            // The preStop hook's wait already covered the quiet period.
            phase = .finishingRequests
            effects.stopAccepting = true
        default:
            break
        }
        return effects
    }

    /// A `/wait-for-drain` request arrived on the admin port. Returns true when it should be answered
    /// (200) at once; otherwise hold it until effects say `releaseDrainWaiters`.
    public mutating func waitForDrainRequested(at now: ServingInstant) -> Bool {
        switch phase {
        case .serving:
            phase = .quietPeriod(deadline: now + settings.quietPeriod)
            if !signalReceived {
                cancelCheckDeadline = now + settings.signalGraceAfterWaitForDrain
            }
            return false
        case .quietPeriod:
            return false
        case .quietPeriodEnded, .finishingRequests, .finishingUpgradedConnections, .finished:
            return true
        }
    }

    /// A request (not a probe) arrived on the serving port: during the quiet period it starts over.
    public mutating func requestArrived(at now: ServingInstant) {
        if case .quietPeriod = phase {
            phase = .quietPeriod(deadline: now + settings.quietPeriod)
        }
    }

    /// Moves the machine on at `now`, given how many ordinary requests are in flight and how many
    /// upgraded connections are open. Call it from the timer armed for `nextDeadline`, and whenever a
    /// request or upgraded connection ends while shutting down.
    public mutating func advance(at now: ServingInstant, inFlightRequests: Int, upgradedConnections: Int) -> Effects {
        var effects = Effects()
        if case .finished = phase { return effects }
        if let hardDeadline, now >= hardDeadline {
            finish(.hardCapReached, &effects)
            return effects
        }
        if let check = cancelCheckDeadline, now >= check, !signalReceived {
            cancelCheckDeadline = nil
            if phase == .quietPeriodEnded {
                phase = .serving
                effects.drainCancelled = true
                return effects
            }
            if case .quietPeriod = phase {
                phase = .serving
                effects.releaseDrainWaiters = true
                effects.drainCancelled = true
                return effects
            }
        }
        if case .quietPeriod(let deadline) = phase, now >= deadline {
            effects.releaseDrainWaiters = true
            if signalReceived {
                phase = .finishingRequests
                effects.stopAccepting = true
            } else {
                phase = .quietPeriodEnded
            }
        }
        if phase == .finishingRequests, inFlightRequests <= 0 {
            phase = .finishingUpgradedConnections(deadline: now + settings.upgradedConnectionGrace)
        }
        if case .finishingUpgradedConnections(let deadline) = phase {
            if upgradedConnections <= 0 {
                finish(.completed, &effects)
            } else if now >= deadline {
                finish(.upgradedConnectionsTimedOut, &effects)
            }
        }
        return effects
    }

    /// The earliest instant at which `advance` has something to do by time alone (nil: only events).
    public var nextDeadline: ServingInstant? {
        let phaseDeadline: ServingInstant?
        switch phase {
        case .serving, .finished:
            return nil
        case .quietPeriod(let deadline), .finishingUpgradedConnections(let deadline):
            phaseDeadline = deadline
        case .quietPeriodEnded, .finishingRequests:
            phaseDeadline = nil
        }
        return Self.earliest(Self.earliest(phaseDeadline, hardDeadline), signalReceived ? nil : cancelCheckDeadline)
    }

    private static func earliest(_ a: ServingInstant?, _ b: ServingInstant?) -> ServingInstant? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    private mutating func finish(_ reason: FinishReason, _ effects: inout Effects) {
        if case .finished = phase { return }
        if phase == .serving || phase == .quietPeriodEnded {
            effects.releaseDrainWaiters = true
        }
        if case .quietPeriod = phase {
            effects.releaseDrainWaiters = true
        }
        switch phase {
        case .serving, .quietPeriod, .quietPeriodEnded:
            effects.stopAccepting = true
        default:
            break
        }
        phase = .finished(reason)
        effects.finished = reason
    }
}
