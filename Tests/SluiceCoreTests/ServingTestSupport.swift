// Helpers shared by the Serving tests: instants from milliseconds, a recording breaker waiter.
@testable import SluiceCore

func at(_ milliseconds: Int64) -> ServingInstant {
    ServingInstant(nanoseconds: milliseconds * 1_000_000)
}

func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

/// A manual clock for code that reads a ServingClock.
final class ManualServingClock: ServingClock, @unchecked Sendable {
    var current: ServingInstant

    init(_ start: ServingInstant = ServingInstant(nanoseconds: 0)) {
        current = start
    }

    func now() -> ServingInstant { current }

    func advance(_ duration: Duration) {
        current = current + duration
    }
}

/// Records grants, optionally releasing at once (a request that completes synchronously).
final class RecordingWaiter: BreakerWaiter {
    let name: String
    var granted = 0
    var log: (String) -> Void
    var onGrant: ((BreakerTicket) -> Void)?

    init(_ name: String, log: @escaping (String) -> Void = { _ in }) {
        self.name = name
        self.log = log
    }

    func breakerDidGrantSlot(_ ticket: BreakerTicket) {
        granted += 1
        log(name)
        onGrant?(ticket)
    }
}
