// Tests for the KPA's per-second buckets, window averages, resize and the scale-down-delay window.
import Foundation
import Testing
@testable import SluiceCore

private func unixAt(_ s: Int64) -> UnixTime { UnixTime(seconds: s) }

@Suite("KPA metric buckets")
struct AutoscalingBucketsTests {
    @Test("linear average covers the seconds seen, drops a quiet tail and restarts after a silent window")
    func linearAverageFollowsTheSpecExample() {
        var b = MetricBuckets(windowSeconds: 5)
        for s in Int64(0)...4 { b.record(Double(s + 1), at: unixAt(s)) }
        #expect(b.linearAverage(now: unixAt(4)) == 3)
        #expect(b.linearAverage(now: unixAt(6)) == 4)  // (15 - 1 - 2) / 3
        #expect(b.linearAverage(now: unixAt(10)) == 0)
        #expect(b.isEmpty(now: unixAt(10)))
        #expect(!b.isEmpty(now: unixAt(9)))
    }

    @Test("linear average counts gaps inside the data as zeros and rounds to six decimals")
    func linearGapsAreZeros() {
        var b = MetricBuckets(windowSeconds: 60)
        b.record(10, at: unixAt(100))
        b.record(10, at: unixAt(102))
        #expect(b.linearAverage(now: unixAt(102)) == 6.666667)
    }

    @Test("right after the first write the average is over the seconds seen so far")
    func partialWindowAtStart() {
        var b = MetricBuckets(windowSeconds: 60)
        b.record(7, at: unixAt(1_000))
        #expect(b.linearAverage(now: unixAt(1_000)) == 7)
        b.record(3, at: UnixTime(nanoseconds: 1_000 * 1_000_000_000 + 500_000_000))  // same second adds up
        #expect(b.linearAverage(now: unixAt(1_000)) == 10)
    }

    @Test("a write older than one window is dropped; a late one inside the window lands in its slot")
    func lateWrites() {
        var b = MetricBuckets(windowSeconds: 5)
        b.record(5, at: unixAt(10))
        b.record(100, at: unixAt(5))  // 5 + 5 is not after 10: too old
        #expect(b.linearAverage(now: unixAt(10)) == 5)
        b.record(5, at: unixAt(8))  // late but inside: first write moves back to 8
        #expect(b.linearAverage(now: unixAt(10)) == (10.0 / 3.0).roundedTo6)
    }

    @Test("the weighted smoothing coefficient follows max(1-(1-0.9999)^(1/nb), 0.2)",
          arguments: [(Int64(5), 0.84151), (6, 0.78456), (40, 0.20567), (42, 0.2), (600, 0.2)])
    func smoothingCoefficients(slots: Int64, expected: Double) {
        #expect(abs(MetricBuckets.smoothingCoefficient(slotCount: slots) - expected) < 5e-6)
    }

    @Test("the weighted-exponential average is an unnormalised decayed sum, newest second first")
    func weightedAverage() {
        var b = MetricBuckets(windowSeconds: 5, algorithm: .weightedExponential)
        for (s, v) in [(Int64(0), 10.0), (1, 10), (2, 5), (3, 5)] { b.record(v, at: unixAt(s)) }
        let m = b.smoothingCoefficient
        let k = 1 - m
        let expected = 5 * m + 5 * m * k + 10 * m * k * k + 10 * m * k * k * k
        #expect(abs(b.windowAverage(now: unixAt(3)) - expected) < 1e-12)
        // One quiet second: weights start one step further, one slot fewer.
        let later = 5 * m * k + 5 * m * k * k + 10 * m * k * k * k + 10 * m * k * k * k * k
        #expect(abs(b.windowAverage(now: unixAt(4)) - later) < 1e-12)
        #expect(b.windowAverage(now: unixAt(9)) == 0)
    }

    @Test("shrinking a window keeps the newest seconds and moves the first write to the old ring's start")
    func resizeShrinks() {
        var b = MetricBuckets(windowSeconds: 10)
        for s in Int64(0)..<10 { b.record(Double(s + 1), at: unixAt(100 + s)) }
        #expect(b.linearAverage(now: unixAt(109)) == 5.5)
        b.resize(windowSeconds: 5, now: unixAt(109))
        #expect(b.windowSeconds == 5)
        #expect(b.linearAverage(now: unixAt(109)) == 8)  // (6+7+8+9+10) / 5
    }

    @Test("growing a window keeps every slot and the average")
    func resizeGrows() {
        var b = MetricBuckets(windowSeconds: 5)
        for s in Int64(0)..<5 { b.record(2, at: unixAt(200 + s)) }
        b.resize(windowSeconds: 20, now: unixAt(204))
        #expect(b.linearAverage(now: unixAt(204)) == 2)
        b.record(12, at: unixAt(205))
        #expect(b.linearAverage(now: unixAt(205)) == 3.666667)  // (5 x 2 + 12) / 6 seconds since 200
    }

    @Test("resizing after a silent window leaves the buckets empty")
    func resizeWhenStale() {
        var b = MetricBuckets(windowSeconds: 5)
        b.record(9, at: unixAt(10))
        b.resize(windowSeconds: 8, now: unixAt(30))
        #expect(b.isEmpty(now: unixAt(30)))
        #expect(b.linearAverage(now: unixAt(30)) == 0)
        b.record(4, at: unixAt(31))
        #expect(b.linearAverage(now: unixAt(31)) == 4)
    }

    @Test("resizing a weighted set recomputes the smoothing coefficient")
    func resizeWeighted() {
        var b = MetricBuckets(windowSeconds: 5, algorithm: .weightedExponential)
        b.resize(windowSeconds: 6, now: unixAt(0))
        #expect(abs(b.smoothingCoefficient - 0.78456) < 5e-6)
    }
}

@Suite("KPA scale-down-delay window")
struct ScaleDownDelayWindowTests {
    @Test("a 5-minute delay keeps 4 pods until the value has aged out of 150 two-second slots")
    func holdsTheMaximum() {
        var w = ScaleDownDelayWindow(delay: .minutes(5))
        #expect(w.slotCount == 150)
        w.record(4, at: unixAt(2))
        var t: Int64 = 4
        while t <= 300 {
            w.record(0, at: unixAt(t))
            t += 2
        }
        #expect(w.current == 4)
        w.record(0, at: unixAt(302))
        #expect(w.current == 0)
    }

    @Test("values age out in order: 4 until 840 s, 3 until 900 s, then 0")
    func agesOutInOrder() {
        var w = ScaleDownDelayWindow(delay: .minutes(5))
        var seen: [Int64: Int32] = [:]
        var t: Int64 = 540
        while t <= 902 {
            let v: Int32 = t == 540 ? 4 : (t == 600 ? 3 : 0)
            w.record(v, at: unixAt(t))
            seen[t] = w.current
            t += 2
        }
        #expect(seen[838] == 4)
        #expect(seen[840] == 3)
        #expect(seen[898] == 3)
        #expect(seen[900] == 0)
    }

    @Test("two records in one slot keep the larger; increases apply at once")
    func sameSlot() {
        var w = ScaleDownDelayWindow(delay: .seconds(10))
        w.record(5, at: unixAt(10))
        w.record(2, at: unixAt(11))
        #expect(w.current == 5)
        w.record(9, at: unixAt(12))
        #expect(w.current == 9)
    }
}

extension Double {
    var roundedTo6: Double { (self * 1e6).rounded() / 1e6 }
}
