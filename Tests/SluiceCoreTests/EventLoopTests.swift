// Tests for the EventLoop layer: execute from other threads, timers, deadlines, wake-ups.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

/// A handler with no fd that records deadline expiries (loop-bound; results read through the Mutex).
final class DeadlineProbe: EventLoopHandler, @unchecked Sendable {
    let fired = Mutex<[String]>([])
    let name: String
    init(name: String) { self.name = name }
    func handleEvents(_ events: IOEvents) { fired.withLock { $0.append("\(name):events") } }
    func deadlineExpired() { fired.withLock { $0.append(name) } }
    func closeForShutdown() {}
}

@Suite("EventLoop", .timeLimit(.minutes(2)))
struct EventLoopTests {
    @Test("execute runs a task handed over from another thread on the loop's own thread")
    func executeRunsOnTheLoopThread() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        #expect(!loop.inEventLoop)
        let ranOnLoop = try onLoop(loop) { loop.inEventLoop }
        #expect(ranOnLoop)
    }

    @Test("execute from 8 threads × 10,000 tasks runs every task exactly once, in order per thread")
    func executeFromManyThreadsRunsEachTaskOnce() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let threads = 8
        let perThread = 10_000
        // Written only on the loop thread; read by the test after the count says everything ran.
        let runs = LoopBound([Int](repeating: 0, count: threads * perThread), on: loop)
        let lastSeen = LoopBound([Int](repeating: -1, count: threads), on: loop)
        let outOfOrder = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        let started = Atomic<Int>(0)
        var workers: [Thread] = []
        for t in 0 ..< threads {
            let worker = Thread {
                started.add(1, ordering: .relaxed)
                // Start together so the producers really contend on the queue.
                while started.load(ordering: .relaxed) < threads { sched_yield() }
                for i in 0 ..< perThread {
                    let accepted = loop.execute { @Sendable in
                        runs.value[t * perThread + i] += 1
                        if lastSeen.value[t] != i - 1 { outOfOrder.add(1, ordering: .relaxed) }
                        lastSeen.value[t] = i
                        done.add(1, ordering: .relaxed)
                    }
                    if !accepted { Issue.record("execute refused a task") }
                }
            }
            workers.append(worker)
        }
        for worker in workers { worker.start() }
        #expect(eventually(timeout: .seconds(100)) { done.load(ordering: .relaxed) >= threads * perThread })
        // Give a duplicate run the chance to show up before counting.
        let counts = try onLoop(loop) { runs.value }
        let observed1 = done.load(ordering: .relaxed)
        #expect(observed1 == threads * perThread)
        #expect(counts.allSatisfy { $0 == 1 })
        let observed2 = outOfOrder.load(ordering: .relaxed)
        #expect(observed2 == 0)
    }

    @Test("timers fire in deadline order, equal deadlines in scheduling order, cancelled ones never")
    func timersFireInOrderAndCancelledOnesDoNot() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let fired = Mutex<[String]>([])
        let cancelled = try onLoop(loop) { () -> Bool in
            loop.scheduleTimer(after: .milliseconds(60)) { fired.withLock { $0.append("60") } }
            loop.scheduleTimer(after: .milliseconds(20)) { fired.withLock { $0.append("20a") } }
            let doomed = loop.scheduleTimer(after: .milliseconds(40)) { fired.withLock { $0.append("40-cancelled") } }
            loop.scheduleTimer(after: .milliseconds(20)) { fired.withLock { $0.append("20b") } }
            loop.scheduleTimer(after: .zero) { fired.withLock { $0.append("0") } }
            loop.scheduleTimer(after: .milliseconds(40)) { fired.withLock { $0.append("40") } }
            return loop.cancelTimer(doomed)
        }
        #expect(cancelled)
        #expect(eventually { fired.withLock { $0.count } == 5 })
        usleep(100_000) // the cancelled timer's deadline has passed by now
        #expect(fired.withLock { $0 } == ["0", "20a", "20b", "40", "60"])
        // Cancelling a timer that already fired reports false.
        let ran = Atomic<Bool>(false)
        let id = try onLoop(loop) { loop.scheduleTimer(after: .zero) { ran.store(true, ordering: .relaxed) } }
        #expect(eventually { ran.load(ordering: .relaxed) })
        #expect(try onLoop(loop) { loop.cancelTimer(id) } == false)
    }

    @Test("a timer cancelled from inside an earlier timer's body does not run")
    func timerCancelledByAnotherTimerDoesNotRun() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let fired = Mutex<[String]>([])
        try onLoop(loop) {
            let later = loop.scheduleTimer(after: .milliseconds(30)) { fired.withLock { $0.append("later") } }
            loop.scheduleTimer(after: .milliseconds(10)) {
                fired.withLock { $0.append("first") }
                loop.cancelTimer(later)
            }
            loop.scheduleTimer(after: .milliseconds(50)) { fired.withLock { $0.append("last") } }
        }
        #expect(eventually { fired.withLock { $0.count } == 2 })
        usleep(50_000)
        #expect(fired.withLock { $0 } == ["first", "last"])
    }

    @Test("handler deadlines fire once, in time order, and a re-armed or cleared deadline does not fire early")
    func deadlinesFireOnceAndCanBeRearmed() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let early = DeadlineProbe(name: "early")
        let late = DeadlineProbe(name: "late")
        let cleared = DeadlineProbe(name: "cleared")
        let rearmed = DeadlineProbe(name: "rearmed")
        let order = Mutex<[String]>([])
        let probes = [early, late, cleared, rearmed]
        let armedAt = try onLoop(loop) { () -> UInt64 in
            let tokens = probes.map { loop.addHandler($0) }
            loop.setDeadline(tokens[0], after: .milliseconds(100))
            loop.setDeadline(tokens[1], after: .milliseconds(300))
            loop.setDeadline(tokens[2], after: .milliseconds(100))
            loop.setDeadline(tokens[3], after: .milliseconds(100))
            loop.setDeadline(tokens[2], at: 0)
            loop.setDeadline(tokens[3], after: .milliseconds(600))
            return loop.now
        }
        _ = armedAt
        // Record arrival order across probes.
        #expect(eventually {
            let all = probes.flatMap { p in p.fired.withLock { $0 } }
            if all.count > order.withLock({ $0.count }) {
                for p in probes { for name in p.fired.withLock({ $0 }) where !order.withLock({ $0.contains(name) }) { order.withLock { $0.append(name) } } }
            }
            return all.count >= 3
        })
        usleep(200_000)
        #expect(order.withLock { $0 } == ["early", "late", "rearmed"])
        #expect(cleared.fired.withLock { $0 }.isEmpty)
        #expect(early.fired.withLock { $0 } == ["early"])
    }

    @Test("wake delivers a wakeUp event to a live handler and ignores a removed one")
    func wakeReachesOnlyLiveHandlers() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let live = DeadlineProbe(name: "live")
        let removed = DeadlineProbe(name: "removed")
        let reuse = DeadlineProbe(name: "reuse")
        let tokens = try onLoop(loop) { () -> [HandlerToken] in
            let a = loop.addHandler(live)
            let b = loop.addHandler(removed)
            loop.wake(a)
            loop.wake(b)
            loop.removeHandler(b)
            // The freed slot is reused by a new handler: the stale wake for `b` must not reach it.
            let c = loop.addHandler(reuse)
            return [a, b, c]
        }
        #expect(tokens[2].slot == tokens[1].slot && tokens[2].generation != tokens[1].generation)
        #expect(eventually { live.fired.withLock { $0 } == ["live:events"] })
        try onLoop(loop) {
            loop.removeHandler(tokens[0])
            loop.removeHandler(tokens[2])
            loop.wake(tokens[0])
        }
        _ = try onLoop(loop) { true }
        #expect(removed.fired.withLock { $0 }.isEmpty)
        #expect(reuse.fired.withLock { $0 }.isEmpty)
        #expect(live.fired.withLock { $0 } == ["live:events"])
    }

    @Test("after shutdown the group's loops refuse new tasks")
    func executeAfterShutdownIsRefused() throws {
        let group = try EventLoopGroup(loopCount: 2)
        group.shutdown()
        for loop in group.loops { #expect(!loop.execute {}) }
    }

    @Test("a loop wakes from an idle epoll_wait for a cross-thread task (no lost wake-up)")
    func idleLoopWakesForTasks() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        for _ in 0 ..< 200 {
            // Each round the loop is (very likely) asleep in epoll_wait with no timeout.
            usleep(200)
            _ = try onLoop(loop, timeout: .seconds(10)) { true }
        }
    }
}
