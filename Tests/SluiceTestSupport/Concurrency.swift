// Test support, waiting and sharing: bounded polling, values shared between threads, blocking work on a
// background thread collected with a deadline, and running a closure on an event loop.
import Foundation
import Glibc
import Synchronization
import SluiceCore

/// Polls `condition` every `interval` until it holds or `timeout` passes; the last check decides.
@discardableResult
public func eventually(timeout: Duration = .seconds(20), interval: Duration = .milliseconds(5), _ condition: () -> Bool) -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if condition() { return true }
        usleep(useconds_t(interval / .microseconds(1)))
    }
    return condition()
}

/// Seconds elapsed since `start`.
public func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// A Mutex in a class, so several closures and threads can share it.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
    public var value: Value { mutex.withLock { $0 } }
}

/// A flag threads can share (scripts wait on it).
public final class TestFlag: Sendable {
    private let state = Atomic<Bool>(false)
    public init() {}
    public func set() { state.store(true, ordering: .releasing) }
    public var isSet: Bool { state.load(ordering: .acquiring) }
}

/// Blocking work running on its own thread; `wait` returns its result or throws at the deadline.
public final class Background<Value: Sendable>: Sendable {
    private let result = Mutex<Result<Value, any Error>?>(nil)

    public init(_ body: @escaping @Sendable () throws -> Value) {
        Thread.detachNewThread { [self] in
            let outcome = Result { try body() }
            result.withLock { $0 = outcome }
        }
    }

    public var isDone: Bool { result.withLock { $0 != nil } }

    public func wait(timeout: Duration = .seconds(30)) throws -> Value {
        var outcome: Result<Value, any Error>?
        eventually(timeout: timeout, interval: .milliseconds(2)) {
            outcome = result.withLock { $0 }
            return outcome != nil
        }
        guard let outcome else { throw TestFailure("background work did not finish within \(timeout)") }
        return try outcome.get()
    }
}

/// Runs `body` on `loop` and waits for its result (objects bound to a loop are touched only on it).
public func onLoop<T: Sendable>(_ loop: EventLoop, timeout: Duration = .seconds(20), _ body: @escaping @Sendable () -> T) throws -> T {
    let result = Locked<T?>(nil)
    _ = loop.execute { let value = body(); result.withLock { $0 = value } }
    var value: T?
    guard eventually(timeout: timeout, interval: .milliseconds(2), { value = result.value; return value != nil }), let value else {
        throw TestFailure("loop task did not run within \(timeout)")
    }
    return value
}
