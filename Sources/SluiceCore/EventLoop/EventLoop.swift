// EventLoop layer: one thread, one epoll instance, a slot table of handlers, timers, per-handler
// deadlines and a cross-thread task queue. Everything above (TCP, HTTP, proxy) runs inside its callbacks.
import CEpoll
import Logging
import Synchronization

// Readiness model (why edge-triggered): every fd is registered ONCE with EPOLLIN|EPOLLOUT|EPOLLRDHUP|
// EPOLLET and never modified, so steady-state traffic costs zero epoll_ctl calls. In exchange the
// handlers follow the edge-triggered contract: a reader keeps reading until a short read (a stream
// socket returning less than asked means its receive queue is empty, and new data raises a new edge),
// a writer keeps writing until a short write (which leaves the kernel's "no space" flag set, so the
// EPOLLOUT edge arrives when room frees), and an acceptor accepts until EAGAIN. A handler that stops
// early (paused reading, fairness cap) must remember that input may be pending and wake itself with
// `wake(_:events:)`, because no new edge will come for data already queued.

/// Readiness bits as epoll reports them, plus `wakeUp` for self-scheduled work.
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let readable = IOEvents(rawValue: 0x001)      // EPOLLIN
    public static let writable = IOEvents(rawValue: 0x004)      // EPOLLOUT
    public static let error = IOEvents(rawValue: 0x008)         // EPOLLERR
    public static let hangup = IOEvents(rawValue: 0x010)        // EPOLLHUP
    public static let readHangup = IOEvents(rawValue: 0x2000)   // EPOLLRDHUP: the peer shut down writing
    public static let edgeTriggered = IOEvents(rawValue: 1 << 31) // EPOLLET
    /// Not from epoll: delivered by `EventLoop.wake(_:events:)` (resume reading, re-arm accept, fairness).
    public static let wakeUp = IOEvents(rawValue: 1 << 30)

    /// What every socket is registered for, once.
    public static let socketInterest: IOEvents = [.readable, .writable, .readHangup, .edgeTriggered]
    /// Read-only sources (listeners, signalfd, pipes' read ends).
    public static let readInterest: IOEvents = [.readable, .edgeTriggered]
}

/// An object the loop dispatches to. Stored by reference in the loop's slot table (no closure, no
/// allocation per event); bound to the loop's thread.
public protocol EventLoopHandler: AnyObject {
    /// epoll readiness (or a `wakeUp`) for the handler's fd.
    func handleEvents(_ events: IOEvents)
    /// The deadline set with `EventLoop.setDeadline` has passed (called once per arming).
    func deadlineExpired()
    /// The loop is shutting down: close the fd and unregister.
    func closeForShutdown()
}

extension EventLoopHandler {
    public func deadlineExpired() {}
}

/// Names a handler's slot; stale tokens (slot freed and reused) are recognised by their generation,
/// so an event already fetched for a closed fd never reaches the slot's next occupant.
public struct HandlerToken: Hashable, Sendable {
    let slot: UInt32
    let generation: UInt32
    var raw: UInt64 { UInt64(generation) << 32 | UInt64(slot) }
    static let invalid = HandlerToken(slot: .max, generation: 0)
}

/// Identifies a timer for cancellation.
public struct TimerID: Hashable, Sendable {
    let raw: UInt64
}

/// One event loop: a thread that waits in epoll_wait and runs handlers, timers and tasks.
///
/// Thread discipline: an EventLoop is Sendable only so that any thread can call `execute`,
/// `inEventLoop` and `requestStop`. Every other member, and every object bound to the loop
/// (Connection, Listener, IOBuffer, IOBufferPool, SignalSource, handlers), is touched only on the
/// loop's own thread; another thread hands work over with `execute { }`. Debug builds assert this.
public final class EventLoop: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Events fetched per epoll_wait.
        public var maxEventsPerWait = 512
        /// Coarsest spacing of deadline sweeps (deadlines fire up to this late, never early).
        public var deadlineResolution: Duration = .milliseconds(50)
        /// Capacity of each pooled read/write buffer.
        public var bufferSize = 16 * 1024
        /// Free buffers a loop keeps for reuse.
        public var maxFreeBuffers = 512
        /// Thread name prefix.
        public var name = "sluice-loop"

        public init() {}
    }

    public let configuration: Configuration
    public let logger: Logger
    /// Per-loop buffer pool: every read lands in one of these.
    public let bufferPool: IOBufferPool
    let vectors = IOVectors()

    let epollFD: Int32
    private let wakeFD: Int32
    private static let wakeToken: UInt64 = .max
    private let events: EpollEventBuffer

    private let threadID = Atomic<UInt64>(0)
    private let tasks = Mutex(TaskQueue())
    private var runningTasks: [LoopTask] = []

    private struct Slot {
        var handler: (any EventLoopHandler)?
        var generation: UInt32 = 1
        var deadline: UInt64 = 0
    }
    /// Read in place, but written only through `editSlots`, never in place: an in-place write may
    /// release a handler (its deinit is arbitrary code) inside the access to `slots`, and then every
    /// access to `slots`, the per-request deadline stores included, pays a dynamic exclusivity check.
    private var slots: [Slot] = []
    private var freeSlots: [UInt32] = []
    /// Handlers registered now.
    public var handlerCount: Int { registeredHandlers }
    private var registeredHandlers = 0

    private var deferred: [(HandlerToken, IOEvents)] = []
    private var deferredRunning: [(HandlerToken, IOEvents)] = []

    private var timers = TimerHeap()
    private var timerBodies: [UInt64: () -> Void] = [:]
    private var nextTimerID: UInt64 = 1

    private var armedDeadlines = 0
    private var nextSweep: UInt64 = .max
    private var lastSweep: UInt64 = 0
    private let resolution: UInt64

    private var fileDescriptorWaiters: [HandlerToken] = []

    /// Monotonic nanoseconds read once per wake-up (vDSO, no syscall); deadlines are computed from it.
    /// Public stored `var`s pay a dynamic exclusivity check per access, so hot state such as this is
    /// stored internally behind a computed accessor (the optimizer drops the checks on internal storage).
    public var now: UInt64 { currentTime }
    private var currentTime: UInt64

    private enum RunState { case notStarted, running, stopping, stopped }
    private var runState = RunState.notStarted

    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "sluice.eventloop")) throws(SyscallError) {
        self.configuration = configuration
        self.logger = logger
        bufferPool = IOBufferPool(bufferSize: configuration.bufferSize, maxFreeBuffers: configuration.maxFreeBuffers)
        events = EpollEventBuffer(capacity: max(1, configuration.maxEventsPerWait))
        resolution = max(1_000_000, EventLoop.nanoseconds(configuration.deadlineResolution))
        currentTime = Syscall.monotonicNanoseconds()
        let epoll = try Syscall.epollCreate()
        let wake: Int32
        do {
            wake = try Syscall.eventFD()
        } catch {
            Syscall.close(epoll)
            throw error
        }
        // Edge-triggered eventfd: every write(2) to an eventfd wakes its waiters, so each `execute`
        // that finds the queue empty raises a fresh edge and the counter never needs draining.
        do {
            try Syscall.epollControl(epoll, EPOLL_CTL_ADD, wake, events: IOEvents.readInterest.rawValue, token: Self.wakeToken)
        } catch {
            Syscall.close(wake)
            Syscall.close(epoll)
            throw error
        }
        epollFD = epoll
        wakeFD = wake
        slots.reserveCapacity(1024)
        deferred.reserveCapacity(64)
        deferredRunning.reserveCapacity(64)
        runningTasks.reserveCapacity(64)
    }

    deinit {
        if runState != .stopped {
            Syscall.close(wakeFD)
            Syscall.close(epollFD)
        }
    }

    /// True on the loop's own thread.
    public var inEventLoop: Bool { threadID.load(ordering: .relaxed) == Syscall.currentThreadID() }

    @inline(__always)
    func assertInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(inEventLoop || runState == .notStarted, "EventLoop-bound state touched off its loop", file: file, line: line)
    }

    // MARK: tasks (any thread)

    /// Runs `task` on the loop's thread, after the current batch of events. FIFO per loop. Returns
    /// false (and drops the task) once the loop has stopped.
    @discardableResult
    public func execute(_ task: sending @escaping () -> Void) -> Bool {
        let onLoop = inEventLoop
        return tasks.withLock { queue -> Bool in
            if queue.closed { return false }
            let wasEmpty = queue.items.isEmpty
            queue.items.append(LoopTask(body: task))
            // Only the producer that makes the queue non-empty signals: the loop drains the whole
            // queue under this lock, so a later producer finds it empty again and signals in turn.
            // The loop itself needs no signal (it drains before its next epoll_wait). The write
            // happens under the lock so that the eventfd cannot be closed underneath it.
            if wasEmpty && !onLoop { Syscall.eventFDSignal(wakeFD) }
            return true
        }
    }

    /// Stops the loop from any thread: every registered handler is closed, then the thread ends.
    public func requestStop() {
        execute { [self] in
            if runState == .running { runState = .stopping }
        }
    }

    // MARK: handlers (loop thread)

    /// Registers `fd` once with `events` (edge-triggered; see the note at the top of this file).
    public func register(fileDescriptor fd: Int32, events: IOEvents = .socketInterest, handler: any EventLoopHandler) throws(SyscallError) -> HandlerToken {
        let token = addHandler(handler)
        do {
            try Syscall.epollControl(epollFD, EPOLL_CTL_ADD, fd, events: events.rawValue, token: token.raw)
        } catch {
            removeHandler(token)
            throw error
        }
        return token
    }

    /// Runs `body` on the slot table moved out of `slots` (two moves, no copy), then moves it back.
    @inline(__always)
    private func editSlots<R>(_ body: (inout [Slot]) -> R) -> R {
        var table: [Slot] = []
        swap(&table, &slots)
        let result = body(&table)
        swap(&table, &slots)
        return result
    }

    /// A slot with no fd: for handlers that only use deadlines and wake-ups.
    public func addHandler(_ handler: any EventLoopHandler) -> HandlerToken {
        assertInEventLoop()
        registeredHandlers += 1
        if let index = freeSlots.popLast() {
            return editSlots { table in
                table[Int(index)].handler = handler
                return HandlerToken(slot: index, generation: table[Int(index)].generation)
            }
        }
        return editSlots { table in
            table.append(Slot(handler: handler))
            return HandlerToken(slot: UInt32(table.count - 1), generation: 1)
        }
    }

    /// Frees the handler's slot. The caller closes its fd, which also removes it from epoll: no
    /// epoll_ctl(DEL) is spent, and a stale event for it is dropped by the generation check.
    public func removeHandler(_ token: HandlerToken) {
        assertInEventLoop()
        guard isLive(token) else { return }
        let i = Int(token.slot)
        if slots[i].deadline != 0 { armedDeadlines -= 1 }
        editSlots { table in
            table[i] = Slot(handler: nil, generation: table[i].generation &+ 1, deadline: 0)
            if table[i].generation == 0 { table[i].generation = 1 }
        }
        freeSlots.append(token.slot)
        registeredHandlers -= 1
    }

    /// Removes `fd` from epoll while it stays open (e.g. before handing it to another loop), then frees the slot.
    public func deregister(fileDescriptor fd: Int32, token: HandlerToken) throws(SyscallError) {
        removeHandler(token)
        try Syscall.epollControl(epollFD, EPOLL_CTL_DEL, fd, events: 0, token: 0)
    }

    @inline(__always)
    func isLive(_ token: HandlerToken) -> Bool {
        let i = Int(token.slot)
        return i < slots.count && slots[i].generation == token.generation && slots[i].handler != nil
    }

    /// Delivers `events` to the handler after the current batch, as if epoll had reported them.
    public func wake(_ token: HandlerToken, events: IOEvents = .wakeUp) {
        assertInEventLoop()
        deferred.append((token, events))
    }

    // MARK: deadlines (loop thread; no allocation, no syscall)

    /// Arms the handler's single deadline at `deadline` (monotonic ns, see `now`); 0 disarms. Re-arming
    /// is one store: per-request idle, head and body-progress deadlines cost nothing.
    public func setDeadline(_ token: HandlerToken, at deadline: UInt64) {
        guard isLive(token) else { return }
        let i = Int(token.slot)
        let old = slots[i].deadline
        if old == 0 && deadline != 0 { armedDeadlines += 1 }
        if old != 0 && deadline == 0 { armedDeadlines -= 1 }
        editSlots { $0[i].deadline = deadline }
        if deadline != 0 && deadline < nextSweep { nextSweep = deadline }
    }

    /// Arms the deadline `duration` after `now`.
    public func setDeadline(_ token: HandlerToken, after duration: Duration) {
        setDeadline(token, at: max(1, now &+ Self.nanoseconds(duration)))
    }

    /// The handler's armed deadline, or nil.
    public func deadline(_ token: HandlerToken) -> UInt64? {
        guard isLive(token) else { return nil }
        let d = slots[Int(token.slot)].deadline
        return d == 0 ? nil : d
    }

    // MARK: timers (loop thread)

    /// Runs `body` on the loop once `duration` has passed. For rare events (retry delays, periodic
    /// jobs); per-connection timeouts use `setDeadline`, which allocates nothing.
    @discardableResult
    public func scheduleTimer(after duration: Duration, _ body: @escaping () -> Void) -> TimerID {
        assertInEventLoop()
        let id = nextTimerID
        nextTimerID += 1
        timers.push(deadline: now &+ Self.nanoseconds(duration), id: id)
        timerBodies[id] = body
        return TimerID(raw: id)
    }

    /// Cancels a timer that has not fired; returns whether it was pending.
    @discardableResult
    public func cancelTimer(_ id: TimerID) -> Bool {
        assertInEventLoop()
        return timerBodies.removeValue(forKey: id.raw) != nil
    }

    // MARK: file-descriptor release (EMFILE recovery)

    /// `token`'s handler gets a `wakeUp` when the next fd on this loop is closed.
    func waitForFileDescriptor(_ token: HandlerToken) {
        if !fileDescriptorWaiters.contains(token) { fileDescriptorWaiters.append(token) }
    }

    func stopWaitingForFileDescriptor(_ token: HandlerToken) {
        fileDescriptorWaiters.removeAll { $0 == token }
    }

    /// Called by whoever closes an fd on this loop.
    func fileDescriptorReleased() {
        guard !fileDescriptorWaiters.isEmpty else { return }
        for token in fileDescriptorWaiters { wake(token) }
        fileDescriptorWaiters.removeAll(keepingCapacity: true)
    }

    // MARK: the loop

    /// Runs the loop on the calling thread until `requestStop`; then closes every handler and its own fds.
    public func run() {
        threadID.store(Syscall.currentThreadID(), ordering: .relaxed)
        runState = .running
        currentTime = Syscall.monotonicNanoseconds()
        lastSweep = now
        while runState == .running {
            let timeout = nextTimeout()
            do {
                _ = try events.wait(epollFD, timeoutMilliseconds: timeout)
            } catch {
                logger.critical("epoll_wait failed; stopping loop", metadata: ["error": "\(error)"])
                runState = .stopping
                break
            }
            currentTime = Syscall.monotonicNanoseconds()
            for i in 0 ..< events.count {
                dispatch(token: events.token(at: i), mask: events.mask(at: i))
            }
            runDeferred()
            runTimers()
            if armedDeadlines > 0 && now >= nextSweep && now &- lastSweep >= resolution { sweepDeadlines() }
            runTasks()
        }
        shutDownHandlers()
    }

    @inline(__always)
    private func dispatch(token raw: UInt64, mask: UInt32) {
        if raw == Self.wakeToken { return } // tasks are drained after every batch
        let index = Int(truncatingIfNeeded: raw & 0xffff_ffff)
        let generation = UInt32(truncatingIfNeeded: raw >> 32)
        guard index < slots.count, slots[index].generation == generation, let handler = slots[index].handler else { return }
        handler.handleEvents(IOEvents(rawValue: mask))
    }

    private func runDeferred() {
        guard !deferred.isEmpty else { return }
        // Work a snapshot; wake-ups raised meanwhile run in the next iteration (epoll_wait timeout 0).
        swap(&deferred, &deferredRunning)
        for (token, events) in deferredRunning {
            let i = Int(token.slot)
            guard i < slots.count, slots[i].generation == token.generation, let handler = slots[i].handler else { continue }
            handler.handleEvents(events)
        }
        deferredRunning.removeAll(keepingCapacity: true)
    }

    private func runTimers() {
        while let top = timers.peek, top.deadline <= now {
            timers.pop()
            if let body = timerBodies.removeValue(forKey: top.id) { body() }
        }
    }

    private func sweepDeadlines() {
        lastSweep = now
        nextSweep = .max
        var next = UInt64.max
        var i = 0
        while i < slots.count {
            let d = slots[i].deadline
            if d != 0 {
                if d <= now {
                    editSlots { $0[i].deadline = 0 }
                    armedDeadlines -= 1
                    if let handler = slots[i].handler { handler.deadlineExpired() }
                } else if d < next {
                    next = d
                }
            }
            i += 1
        }
        // Handlers may have armed new deadlines during the sweep (they lowered nextSweep already).
        nextSweep = min(nextSweep, next)
    }

    private func runTasks() {
        // Swap the whole queue out under the lock (the array storage ping-pongs, so no allocation).
        tasks.withLock { queue in swap(&queue.items, &runningTasks) }
        guard !runningTasks.isEmpty else { return }
        for task in runningTasks { task.body() }
        runningTasks.removeAll(keepingCapacity: true)
    }

    private func nextTimeout() -> Int32 {
        if !deferred.isEmpty { return 0 }
        if tasks.withLock({ !$0.items.isEmpty }) { return 0 }
        var wakeAt = UInt64.max
        if let top = timers.peek { wakeAt = top.deadline }
        if armedDeadlines > 0 { wakeAt = min(wakeAt, max(nextSweep, lastSweep &+ resolution)) }
        if wakeAt == .max { return -1 }
        let current = Syscall.monotonicNanoseconds()
        if wakeAt <= current { return 0 }
        let ms = (wakeAt - current + 999_999) / 1_000_000
        return Int32(min(ms, UInt64(Int32.max)))
    }

    private func shutDownHandlers() {
        runState = .stopping
        // Close every handler (each closes its fd); repeat while closing callbacks register new ones.
        for _ in 0 ..< 8 {
            let live = slots.compactMap(\.handler)
            if live.isEmpty { break }
            for handler in live { handler.closeForShutdown() }
            runTasks()
        }
        editSlots { table in
            for i in table.indices where table[i].handler != nil {
                table[i].handler = nil
            }
            table.removeAll()
        }
        freeSlots.removeAll()
        registeredHandlers = 0
        timerBodies.removeAll()
        timers = TimerHeap()
        deferred.removeAll()
        tasks.withLock { queue in
            queue.closed = true
            queue.items.removeAll()
            Syscall.close(wakeFD)
        }
        Syscall.close(epollFD)
        runState = .stopped
    }

    /// Whole nanoseconds in `duration` (negative durations count as zero).
    public static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds < 0) { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max / 2 }
        return whole &+ UInt64(attoseconds / 1_000_000_000)
    }
}

/// The MPSC queue behind `execute`, guarded by the loop's Mutex.
struct TaskQueue: ~Copyable {
    var items: [LoopTask] = []
    var closed = false
}

/// A task handed to `execute`. The closure was passed as `sending` (its captures are disconnected
/// from the caller), and only the loop's thread runs it, so moving it through the queue is sound.
struct LoopTask: @unchecked Sendable {
    let body: () -> Void
}

/// A binary min-heap of (deadline, id); equal deadlines fire in scheduling order.
struct TimerHeap {
    struct Entry {
        let deadline: UInt64
        let id: UInt64
        func precedes(_ other: Entry) -> Bool {
            deadline < other.deadline || (deadline == other.deadline && id < other.id)
        }
    }
    private var entries: [Entry] = []

    var peek: Entry? { entries.first }
    var count: Int { entries.count }

    mutating func push(deadline: UInt64, id: UInt64) {
        entries.append(Entry(deadline: deadline, id: id))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].precedes(entries[parent]) else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        guard !entries.isEmpty else { return }
        entries.swapAt(0, entries.count - 1)
        entries.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var first = parent
            if left < entries.count && entries[left].precedes(entries[first]) { first = left }
            if right < entries.count && entries[right].precedes(entries[first]) { first = right }
            if first == parent { break }
            entries.swapAt(parent, first)
            parent = first
        }
    }
}

/// A value that belongs to one loop and is only touched there, carried across threads in a Sendable
/// box (e.g. a per-loop delegate a server keeps for each of its loops).
public final class LoopBound<Value>: @unchecked Sendable {
    public let loop: EventLoop
    private var stored: Value

    public init(_ value: Value, on loop: EventLoop) {
        self.loop = loop
        stored = value
    }

    /// The value; only on `loop`'s thread.
    public var value: Value {
        get {
            assert(loop.inEventLoop, "LoopBound value read off its loop")
            return stored
        }
        set {
            assert(loop.inEventLoop, "LoopBound value written off its loop")
            stored = newValue
        }
    }
}
