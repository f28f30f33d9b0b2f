// Knative's queue-proxy breaker (also the activator's per-revision breaker): at most `capacity` requests
// in flight, a bounded FIFO of waiters behind them, overflow refused at once. Serving layer; loop-local:
// one breaker belongs to one event loop and is only touched there, so there are no locks and no awaits.

/// Called when a queued ticket gets its slot. Implemented by the per-request (or per-connection) object
/// that already exists on the event loop, so waiting allocates nothing.
public protocol BreakerWaiter: AnyObject {
    /// The ticket now holds a slot; the request may proceed and must call `Breaker.release` when done.
    /// Runs on the breaker's loop, from inside `release`, `updateCapacity` or `tryAcquire`'s caller chain.
    func breakerDidGrantSlot(_ ticket: BreakerTicket)
}

/// A request's place in a breaker: idle, waiting in the queue, or holding a slot. Create one per request
/// context and reuse it; it is its own queue node (an intrusive FIFO), so queueing never allocates.
public final class BreakerTicket {
    public enum State: Sendable, Equatable {
        case idle
        case queued
        case holding
    }

    public fileprivate(set) var state: State = .idle
    fileprivate var next: BreakerTicket?
    fileprivate unowned(safe) var previous: BreakerTicket?
    // Strong only while queued (cleared on grant or cancel), so a request context owning its ticket
    // forms no lasting cycle.
    fileprivate var waiter: (any BreakerWaiter)?

    public init() {}
}

/// What `tryAcquire` decided.
public enum BreakerAdmission: Sendable, Equatable {
    /// A slot was free: proceed now, release later.
    case acquired
    /// Waiting in the FIFO; the waiter is called when a slot frees. Cancel it if the request ends first.
    case queued
    /// In-flight plus waiting requests are at the limit: answer 503 `pending request queue full`.
    case overflow
}

/// Invalid breaker parameters (the message names the parameter and its value).
public struct BreakerParameterError: Error, Equatable, CustomStringConvertible {
    public let description: String
}

public final class Breaker {
    /// Knative's text for a refused request (the 503 body, without Go's trailing newline).
    public static let queueFullMessage = "pending request queue full"

    /// Largest capacity a breaker accepts (Knative bounds it to Int32).
    public static let maximumCapacity = Int(Int32.max)

    /// Requests allowed to wait behind the in-flight ones.
    public let queueDepth: Int
    /// Largest capacity `updateCapacity` may set.
    public let maxConcurrency: Int
    /// In-flight plus waiting requests beyond which `tryAcquire` overflows (queue depth + max concurrency).
    public let totalSlots: Int

    /// Requests allowed in flight right now.
    public private(set) var capacity: Int
    /// Requests holding a slot.
    public private(set) var inFlight = 0
    /// Requests waiting for a slot.
    public private(set) var waiting = 0

    private var head: BreakerTicket?
    // Queued tickets are kept alive by the strong `next` chain from `head`, so unowned links are sound.
    private unowned(safe) var tail: BreakerTicket?
    private var granting = false

    /// In flight plus waiting: what Knative's breaker reports as `InFlight()` and the queue-depth metric.
    public var pending: Int { inFlight + waiting }

    /// A breaker with Knative's parameters: `queueDepth` > 0, 0 ≤ `initialCapacity` ≤ `maxConcurrency`.
    public init(queueDepth: Int, maxConcurrency: Int, initialCapacity: Int) throws(BreakerParameterError) {
        guard queueDepth > 0 else {
            throw BreakerParameterError(description: "breaker queue depth must be greater than 0, got \(queueDepth)")
        }
        guard maxConcurrency >= 0, maxConcurrency <= Breaker.maximumCapacity else {
            throw BreakerParameterError(
                description: "breaker max concurrency must be between 0 and \(Breaker.maximumCapacity), got \(maxConcurrency)")
        }
        guard initialCapacity >= 0, initialCapacity <= maxConcurrency else {
            throw BreakerParameterError(
                description: "breaker initial capacity must be between 0 and max concurrency \(maxConcurrency), got \(initialCapacity)")
        }
        self.queueDepth = queueDepth
        self.maxConcurrency = maxConcurrency
        self.totalSlots = queueDepth + maxConcurrency
        self.capacity = initialCapacity
    }

    /// queue-proxy's breaker for a revision's container concurrency: capacity CC, queue depth 10 × CC,
    /// so the autoscaler has time to react. nil when CC is 0 (unlimited: no breaker at all).
    public static func forContainerConcurrency(_ containerConcurrency: Int) throws(BreakerParameterError) -> Breaker? {
        guard containerConcurrency >= 1 else { return nil }
        let (depth, overflow) = containerConcurrency.multipliedReportingOverflow(by: 10)
        guard !overflow, containerConcurrency <= Breaker.maximumCapacity else {
            throw BreakerParameterError(description: "container concurrency \(containerConcurrency) is too large for a breaker")
        }
        return try Breaker(queueDepth: depth, maxConcurrency: containerConcurrency, initialCapacity: containerConcurrency)
    }

    /// Admits `ticket` (which must be idle) if a slot is free, queues it behind earlier waiters if the
    /// limit allows, or refuses it. A queued ticket's `waiter` is called when its slot comes.
    public func tryAcquire(_ ticket: BreakerTicket, waiter: any BreakerWaiter) -> BreakerAdmission {
        guard ticket.state == .idle else {
            // A ticket already in this breaker keeps its place; never count it twice.
            return ticket.state == .holding ? .acquired : .queued
        }
        guard pending < totalSlots else { return .overflow }
        if inFlight < capacity && head == nil {
            inFlight += 1
            ticket.state = .holding
            return .acquired
        }
        ticket.state = .queued
        ticket.waiter = waiter
        ticket.next = nil
        ticket.previous = tail
        if let last = tail {
            last.next = ticket
        } else {
            head = ticket
        }
        tail = ticket
        waiting += 1
        return .queued
    }

    /// Gives back the slot `ticket` holds and hands it to the longest-waiting request. A ticket that
    /// holds nothing is left alone (a second release is harmless).
    public func release(_ ticket: BreakerTicket) {
        guard ticket.state == .holding else { return }
        ticket.state = .idle
        inFlight -= 1
        grantFreeSlots()
    }

    /// Takes a waiting ticket out of the queue (client gone, request timed out). Returns false when the
    /// ticket was not waiting (a holder must `release` instead).
    @discardableResult
    public func cancel(_ ticket: BreakerTicket) -> Bool {
        guard ticket.state == .queued else { return false }
        unlink(ticket)
        ticket.state = .idle
        ticket.waiter = nil
        waiting -= 1
        return true
    }

    /// Changes how many requests may be in flight (the activator follows ready pods). Growing admits
    /// waiters at once; shrinking lets current holders finish and admits nobody until below the new value.
    public func updateCapacity(_ newCapacity: Int) {
        capacity = min(max(newCapacity, 0), maxConcurrency)
        grantFreeSlots()
    }

    private func grantFreeSlots() {
        // A waiter's callback may release or acquire re-entrantly; the outermost call keeps granting so
        // a chain of immediate completions never recurses.
        guard !granting else { return }
        granting = true
        defer { granting = false }
        while inFlight < capacity, let ticket = head {
            unlink(ticket)
            waiting -= 1
            inFlight += 1
            ticket.state = .holding
            let waiter = ticket.waiter
            ticket.waiter = nil
            waiter?.breakerDidGrantSlot(ticket)
        }
    }

    private func unlink(_ ticket: BreakerTicket) {
        let before = ticket.previous
        let after = ticket.next
        if let before { before.next = after } else { head = after }
        if let after { after.previous = before } else { tail = before }
        ticket.next = nil
        ticket.previous = nil
    }
}
