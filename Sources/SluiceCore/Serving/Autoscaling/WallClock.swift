// Wall-clock time for the KPA (Serving layer): Knative keys its 1 s metric buckets and 2 s delay slots
// by unix seconds, so the autoscaler reasons in unix time, always read through an injected clock.
import Synchronization

/// A point in wall-clock time, nanoseconds since the unix epoch.
public struct UnixTime: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public init(seconds: Int64) { self.nanoseconds = seconds &* 1_000_000_000 }
    /// Fractional seconds, rounded to the nanosecond (for the simulator's `t`).
    public init(secondsValue: Double) { self.nanoseconds = Int64((secondsValue * 1e9).rounded()) }

    /// Whole unix seconds, rounded down: the bucket a time falls into at 1 s granularity.
    public var seconds: Int64 { nanoseconds.floorDivided(by: 1_000_000_000) }
    public var secondsValue: Double { Double(nanoseconds) / 1e9 }

    public static func < (lhs: UnixTime, rhs: UnixTime) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
    public static func + (lhs: UnixTime, rhs: GoDuration) -> UnixTime {
        UnixTime(nanoseconds: lhs.nanoseconds &+ rhs.nanoseconds)
    }
    public static func - (lhs: UnixTime, rhs: UnixTime) -> GoDuration {
        GoDuration(nanoseconds: lhs.nanoseconds &- rhs.nanoseconds)
    }
    public var description: String { "\(secondsValue)" }
}

/// Where the autoscaler reads "now". Production uses `SystemWallClock`; tests and the simulator
/// drive a `ManualWallClock` so no rule needs sleeping to be checked.
public protocol WallClock: Sendable {
    func now() -> UnixTime
}

/// The machine's real-time clock (CLOCK_REALTIME), as Knative's `time.Now()`.
public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> UnixTime {
        // Microsecond resolution is plenty: every KPA rule works on whole seconds.
        UnixTime(nanoseconds: (Syscall.realtimeNanoseconds() + 500) / 1000 * 1000)
    }
}

/// A clock that only moves when told to.
public final class ManualWallClock: WallClock {
    private let current: Mutex<UnixTime>
    public init(_ start: UnixTime = UnixTime(seconds: 0)) { current = Mutex(start) }
    public func now() -> UnixTime { current.withLock { $0 } }
    public func set(_ time: UnixTime) { current.withLock { $0 = time } }
    public func advance(by duration: GoDuration) {
        current.withLock { $0 = $0 + duration }
    }
}

extension Int64 {
    /// Division rounding toward negative infinity (Go truncates, but every time we divide is >= 0
    /// in practice; flooring keeps ring indices valid even for times before 1970).
    @inlinable func floorDivided(by divisor: Int64) -> Int64 {
        let q = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? q - 1 : q
    }

    /// Non-negative remainder, for ring-buffer slot indices.
    @inlinable func positiveModulo(_ modulus: Int64) -> Int64 {
        let r = self % modulus
        return r < 0 ? r + modulus : r
    }
}
