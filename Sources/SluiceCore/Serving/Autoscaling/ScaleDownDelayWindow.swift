// The scale-down-delay window (Serving layer, KPA): a sliding maximum of the decider's desired pod
// counts over 2-second slots keyed by unix time, so scale-ups apply at once and scale-downs wait
// until the higher values age out (kpa-spec §8.3).

/// A sliding-window maximum over `slotCount` slots of `slotSeconds` each (a monotonic deque in a
/// fixed ring: no allocation after creation).
public struct ScaleDownDelayWindow: Sendable {
    private struct Entry: Sendable {
        var value: Int32
        var slot: Int64
    }

    public let slotSeconds: Int64
    private var entries: [Entry]
    private var first = 0
    private var length = 0

    /// A window covering `delay` (> 0) with `slotSeconds`-second slots: `ceil(delay / slot)` slots.
    public init(delay: GoDuration, slotSeconds: Int64 = 2) {
        let slotNanoseconds = Double(slotSeconds) * 1e9
        let count = max(1, Int((Double(delay.nanoseconds) / slotNanoseconds).rounded(.up)))
        self.slotSeconds = slotSeconds
        self.entries = [Entry](repeating: Entry(value: 0, slot: 0), count: count)
    }

    public var slotCount: Int { entries.count }

    @inline(__always) private func ring(_ i: Int) -> Int { i % entries.count }

    /// Records `value` at `time`'s slot.
    public mutating func record(_ value: Int32, at time: UnixTime) {
        let slot = time.seconds.floorDivided(by: slotSeconds)
        var v = value
        // Older entries not larger than the new value can never be the maximum again.
        while length > 0 {
            if v < entries[ring(first + length - 1)].value { break }
            length -= 1
        }
        // Evict entries that have slid out of the window.
        while length > 0 && slot - entries[first].slot >= Int64(entries.count) {
            length -= 1
            first += 1
            if first == entries.count { first = 0 }
        }
        // Two records in one slot keep the larger.
        if length > 0 {
            let last = entries[ring(first + length - 1)]
            if last.slot == slot {
                if last.value > v { v = last.value }
                length -= 1
            }
        }
        // Only a clock going backwards can fill the ring (Knative panics there); drop the oldest.
        if length == entries.count {
            first = ring(first + 1)
            length -= 1
        }
        entries[ring(first + length)] = Entry(value: v, slot: slot)
        length += 1
    }

    /// The maximum over the window (the first entry of the deque).
    public var current: Int32 { entries[first].value }
}
