// Per-second metric buckets and their window averages (Serving layer, KPA): the ring of 1 s slots
// Knative's autoscaler keeps per revision and metric, with the linear and weighted-exponential
// averages and the window resize, reproduced slot for slot (see kpa-spec §4).
import Glibc

/// How a bucket set turns its slots into one value (annotation `metric-aggregation-algorithm`).
public enum AggregationAlgorithm: String, Sendable, Equatable, CaseIterable {
    /// Average over the observed span (Knative's default).
    case linear
    /// Exponentially decayed sum, newest second weighing most.
    case weightedExponential = "weighted-exponential"
}

/// A ring of 1-second slots covering one window, keyed by unix second.
///
/// Times are whole unix seconds. "Never written" is Go's zero time (year 1) so every comparison
/// behaves as Knative's does with an unset `time.Time`, without special cases.
public struct MetricBuckets: Sendable {
    /// Go's zero `time.Time` in unix seconds.
    static let unset: Int64 = -62_135_596_800
    /// The smoothing coefficient's floor and the weight sum it aims for (Knative's constants).
    static let minimumSmoothing = 0.2
    static let weightPrecision = 0.9999

    public private(set) var algorithm: AggregationAlgorithm
    public private(set) var windowSeconds: Int64
    private var slots: [Double]
    private var firstWrite: Int64 = MetricBuckets.unset
    private var lastWrite: Int64 = MetricBuckets.unset
    private var total: Double = 0
    private var smoothing: Double

    /// A bucket set over `windowSeconds` (>= 1) seconds.
    public init(windowSeconds: Int64, algorithm: AggregationAlgorithm = .linear) {
        let window = max(1, windowSeconds)
        self.algorithm = algorithm
        self.windowSeconds = window
        self.slots = [Double](repeating: 0, count: Int(window))
        self.smoothing = Self.smoothingCoefficient(slotCount: window)
    }

    /// `max(1 - (1 - 0.9999)^(1/nb), 0.2)`: the decay that makes the weights of one window sum to
    /// at least 0.9999, but never slower than 0.2 so long windows do not degrade to a plain mean.
    public static func smoothingCoefficient(slotCount: Int64) -> Double {
        max(1 - pow(1 - weightPrecision, 1 / Double(slotCount)), minimumSmoothing)
    }

    public var smoothingCoefficient: Double { smoothing }

    @inline(__always) private func slotIndex(_ second: Int64) -> Int {
        Int(second.positiveModulo(windowSeconds))
    }

    /// True when nothing was written within one window before `now` (the collector's "no data").
    public func isEmpty(now: UnixTime) -> Bool {
        now.seconds - lastWrite > windowSeconds
    }

    /// Adds `value` to the slot of `time`'s second, clearing slots skipped since the last write,
    /// restarting after a full window of silence and dropping values older than one window.
    public mutating func record(_ value: Double, at time: UnixTime) {
        let second = time.seconds
        if lastWrite != second {
            guard second + windowSeconds > lastWrite else { return }  // older than a window
            if firstWrite == Self.unset || firstWrite > second { firstWrite = second }
            if second > lastWrite {
                if second - lastWrite >= windowSeconds {
                    for i in slots.indices { slots[i] = 0 }
                    total = 0
                    firstWrite = second
                } else {
                    var s = lastWrite + 1
                    while s <= second {
                        let i = slotIndex(s)
                        total -= slots[i]
                        slots[i] = 0
                        s += 1
                    }
                }
                lastWrite = second
            }
        }
        slots[slotIndex(second)] += value
        total += value
    }

    /// The window average at `now` with this set's algorithm.
    public func windowAverage(now: UnixTime) -> Double {
        switch algorithm {
        case .linear: return linearAverage(now: now)
        case .weightedExponential: return weightedAverage(now: now)
        }
    }

    /// Average over the seconds observed: gaps inside the data count as zeros, a quiet tail
    /// shortens the divisor, a full quiet window yields 0. Rounded to 6 decimals as Knative does.
    public func linearAverage(now: UnixTime) -> Double {
        let n = now.seconds
        let d = n - lastWrite
        let nb = windowSeconds
        if d <= 0 {
            let divisor = min(lastWrite - firstWrite + 1, nb)
            return Self.roundTo6(total / Double(divisor))
        }
        if d < nb {
            var value = total
            var s = lastWrite + 1
            while s <= n {
                value -= slots[slotIndex(s)]
                s += 1
            }
            let divisor = min(lastWrite - firstWrite + 1, nb - d)
            return Self.roundTo6(value / Double(divisor))
        }
        return 0
    }

    /// Unnormalised exponentially decayed sum: the newest second weighs `m`, the one before
    /// `m(1-m)`, …; quiet seconds since the last write are skipped but still decay the weights.
    public func weightedAverage(now: UnixTime) -> Double {
        let n = now.seconds
        if n - lastWrite > windowSeconds { return 0 }
        var count = windowSeconds
        var multiplier = smoothing
        if n > lastWrite {
            let quiet = n - lastWrite
            multiplier *= pow(1 - smoothing, Double(quiet))
            count -= quiet
        }
        let start = slotIndex(lastWrite)
        let nb = Int(windowSeconds)
        let keep = 1 - smoothing
        var sum = 0.0
        var i = 0
        while i < Int(count) {
            var idx = start - i
            if idx < 0 { idx += nb }
            sum += slots[idx] * multiplier
            multiplier *= keep
            i += 1
        }
        return sum
    }

    /// Rebuilds the ring for a new window, keeping the newest `min(old, new)` seconds when data
    /// arrived within the old window before `now` (Knative judges this against the wall clock).
    public mutating func resize(windowSeconds newWindow: Int64, now: UnixTime) {
        let window = max(1, newWindow)
        if window == windowSeconds {
            smoothing = Self.smoothingCoefficient(slotCount: window)
            return
        }
        var newSlots = [Double](repeating: 0, count: Int(window))
        var newTotal = 0.0
        if now.seconds - lastWrite <= windowSeconds {
            let oldCount = windowSeconds
            var s = lastWrite
            for _ in 0..<min(window, oldCount) {
                let value = slots[Int(s.positiveModulo(oldCount))]
                newSlots[Int(s.positiveModulo(window))] = value
                newTotal += value
                s -= 1
            }
            // Knative's quirk: the first write moves to the earliest time the old ring could hold.
            firstWrite = lastWrite - (oldCount - 1)
        } else {
            firstWrite = Self.unset
        }
        windowSeconds = window
        slots = newSlots
        total = newTotal
        smoothing = Self.smoothingCoefficient(slotCount: window)
    }

    /// Go's `math.Round(f*1e6)/1e6`.
    @inline(__always) static func roundTo6(_ f: Double) -> Double {
        (f * 1e6).rounded(.toNearestOrAwayFromZero) / 1e6
    }
}
