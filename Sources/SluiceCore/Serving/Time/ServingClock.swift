// Monotonic time for the Serving layer's state machines (breaker waits, stats windows, probes, drain,
// request timeouts). Logic never reads a clock itself: callers pass `now`, taken from a `ServingClock`.

/// A point on a monotonic timeline, in nanoseconds from an arbitrary origin.
public struct ServingInstant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    public static func < (lhs: ServingInstant, rhs: ServingInstant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    public static func + (lhs: ServingInstant, rhs: Duration) -> ServingInstant {
        let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(rhs.servingNanoseconds)
        return ServingInstant(nanoseconds: overflow ? (rhs < .zero ? .min : .max) : sum)
    }

    public static func - (lhs: ServingInstant, rhs: ServingInstant) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    public var description: String {
        "\(nanoseconds)ns"
    }
}

/// Where Serving code reads the current time. The event loop's clock in production, a manual one in tests.
public protocol ServingClock: Sendable {
    func now() -> ServingInstant
}

/// The process's monotonic clock (continuous across suspends), measured from the clock's creation.
public struct SystemServingClock: ServingClock {
    private let origin: ContinuousClock.Instant

    public init() {
        origin = ContinuousClock.now
    }

    public func now() -> ServingInstant {
        ServingInstant(nanoseconds: origin.duration(to: ContinuousClock.now).servingNanoseconds)
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating at the bounds of Int64.
    public var servingNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    /// The duration in seconds as a Double (for reports and logs).
    public var servingSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
