import Testing
@testable import SluiceCore

@Suite("Breaker", .timeLimit(.minutes(1)))
struct ServingBreakerTests {
    @Test("container concurrency 0 means no breaker at all")
    func zeroConcurrencyHasNoBreaker() throws {
        #expect(try Breaker.forContainerConcurrency(0) == nil)
    }

    @Test("queue-proxy's breaker has capacity CC and a queue ten times deeper", arguments: [1, 2, 10, 100])
    func parametersFollowContainerConcurrency(cc: Int) throws {
        let breaker = try #require(try Breaker.forContainerConcurrency(cc))
        #expect(breaker.capacity == cc)
        #expect(breaker.queueDepth == 10 * cc)
        #expect(breaker.totalSlots == 11 * cc)
    }

    @Test("with CC 1 and 20 concurrent requests, 1 runs, 10 wait and 9 are refused")
    func overflowMatchesKnative() throws {
        let breaker = try #require(try Breaker.forContainerConcurrency(1))
        var outcomes: [BreakerAdmission] = []
        let tickets = (0..<20).map { _ in BreakerTicket() }
        let waiters = (0..<20).map { RecordingWaiter("w\($0)") }
        for index in 0..<20 {
            outcomes.append(breaker.tryAcquire(tickets[index], waiter: waiters[index]))
        }
        #expect(outcomes.filter { $0 == .acquired }.count == 1)
        #expect(outcomes.filter { $0 == .queued }.count == 10)
        #expect(outcomes.filter { $0 == .overflow }.count == 9)
        #expect(outcomes[0] == .acquired)
        #expect(Array(outcomes[11...]) == Array(repeating: .overflow, count: 9))
        #expect(breaker.pending == 11)
        #expect(breaker.inFlight == 1)
        #expect(breaker.waiting == 10)
        #expect(Breaker.queueFullMessage == "pending request queue full")
    }

    @Test("a released slot goes to the longest-waiting request, first in first out")
    func releaseGrantsInArrivalOrder() throws {
        var order: [String] = []
        let breaker = try Breaker(queueDepth: 10, maxConcurrency: 1, initialCapacity: 1)
        let holder = BreakerTicket()
        #expect(breaker.tryAcquire(holder, waiter: RecordingWaiter("holder")) == .acquired)
        let names = ["a", "b", "c"]
        let tickets = names.map { _ in BreakerTicket() }
        let waiters = names.map { name in RecordingWaiter(name) { order.append($0) } }
        for index in names.indices {
            #expect(breaker.tryAcquire(tickets[index], waiter: waiters[index]) == .queued)
        }
        breaker.release(holder)
        #expect(order == ["a"])
        #expect(tickets[0].state == .holding)
        breaker.release(tickets[0])
        breaker.release(tickets[1])
        #expect(order == ["a", "b", "c"])
        breaker.release(tickets[2])
        #expect(breaker.pending == 0)
    }

    @Test("a cancelled waiter leaves the queue and frees its place; later ones keep their order")
    func cancelRemovesWaiter() throws {
        var order: [String] = []
        let breaker = try Breaker(queueDepth: 2, maxConcurrency: 1, initialCapacity: 1)
        let holder = BreakerTicket()
        _ = breaker.tryAcquire(holder, waiter: RecordingWaiter("holder"))
        let first = BreakerTicket()
        let second = BreakerTicket()
        let third = BreakerTicket()
        let w1 = RecordingWaiter("first") { order.append($0) }
        let w2 = RecordingWaiter("second") { order.append($0) }
        let w3 = RecordingWaiter("third") { order.append($0) }
        #expect(breaker.tryAcquire(first, waiter: w1) == .queued)
        #expect(breaker.tryAcquire(second, waiter: w2) == .queued)
        #expect(breaker.tryAcquire(third, waiter: w3) == .overflow)
        #expect(breaker.cancel(first))
        #expect(first.state == .idle)
        #expect(!breaker.cancel(first), "a second cancel is a no-op")
        #expect(breaker.tryAcquire(third, waiter: w3) == .queued)
        breaker.release(holder)
        #expect(order == ["second"])
        breaker.release(second)
        #expect(order == ["second", "third"])
        #expect(w1.granted == 0)
    }

    @Test("cancelling a ticket that holds a slot does nothing; releasing twice is harmless")
    func cancelAndDoubleReleaseAreSafe() throws {
        let breaker = try Breaker(queueDepth: 1, maxConcurrency: 1, initialCapacity: 1)
        let ticket = BreakerTicket()
        #expect(breaker.tryAcquire(ticket, waiter: RecordingWaiter("t")) == .acquired)
        #expect(!breaker.cancel(ticket))
        breaker.release(ticket)
        breaker.release(ticket)
        #expect(breaker.inFlight == 0)
        #expect(breaker.pending == 0)
    }

    @Test("waiters that finish synchronously inside their grant do not recurse and all get served")
    func reentrantReleaseIsIterative() throws {
        let breaker = try Breaker(queueDepth: 5000, maxConcurrency: 1, initialCapacity: 1)
        let holder = BreakerTicket()
        _ = breaker.tryAcquire(holder, waiter: RecordingWaiter("holder"))
        var served = 0
        let tickets = (0..<5000).map { _ in BreakerTicket() }
        let waiters = (0..<5000).map { _ in RecordingWaiter("w") }
        for index in tickets.indices {
            waiters[index].onGrant = { ticket in
                served += 1
                breaker.release(ticket)
            }
            #expect(breaker.tryAcquire(tickets[index], waiter: waiters[index]) == .queued)
        }
        breaker.release(holder)
        #expect(served == 5000)
        #expect(breaker.pending == 0)
    }

    @Test("raising capacity admits waiters at once; lowering it lets holders finish first")
    func capacityUpdates() throws {
        let breaker = try Breaker(queueDepth: 10, maxConcurrency: 5, initialCapacity: 0)
        let tickets = (0..<3).map { _ in BreakerTicket() }
        let waiters = (0..<3).map { RecordingWaiter("w\($0)") }
        for index in 0..<3 {
            #expect(breaker.tryAcquire(tickets[index], waiter: waiters[index]) == .queued)
        }
        breaker.updateCapacity(2)
        #expect(waiters.map(\.granted) == [1, 1, 0])
        breaker.updateCapacity(1)
        breaker.release(tickets[0])
        #expect(waiters[2].granted == 0, "still at capacity 1 with one holder")
        breaker.release(tickets[1])
        #expect(waiters[2].granted == 1)
        breaker.updateCapacity(99)
        #expect(breaker.capacity == 5, "capacity never exceeds max concurrency")
    }

    @Test("invalid parameters are refused with a message naming them")
    func invalidParameters() {
        #expect(throws: BreakerParameterError(description: "breaker queue depth must be greater than 0, got 0")) {
            try Breaker(queueDepth: 0, maxConcurrency: 1, initialCapacity: 1)
        }
        #expect(throws: BreakerParameterError(description: "breaker initial capacity must be between 0 and max concurrency 1, got 2")) {
            try Breaker(queueDepth: 1, maxConcurrency: 1, initialCapacity: 2)
        }
    }
}
