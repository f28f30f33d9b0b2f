// TCP layer: one non-blocking TCP connection on one loop — reads into pooled buffers, writes at once
// from the caller and queues only what the kernel did not take, watermarks, half-close, deadlines.
import CEpoll

/// Why a connection closed (nil in `connectionDidClose` means someone called `close()`).
public enum ConnectionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A read, write or connect failed.
    case syscall(SyscallError)
    /// The deadline (or idle timeout) passed and the delegate did not handle it otherwise.
    case timedOut
    /// The outbound connect did not finish within its timeout.
    case connectTimedOut
    /// The peer sent more unconsumed bytes than `maxInputBytes`.
    case inputLimitExceeded
    /// The loop is shutting down.
    case loopShutdown

    public var description: String {
        switch self {
        case .syscall(let error): "\(error)"
        case .timedOut: "connection deadline passed"
        case .connectTimedOut: "connect timed out"
        case .inputLimitExceeded: "peer sent more unconsumed bytes than the input limit"
        case .loopShutdown: "event loop shutting down"
        }
    }
}

/// Per-connection limits and defaults.
public struct ConnectionOptions: Sendable {
    /// Above this many queued output bytes `isWritable` turns false (reliability.md: 64 KiB).
    public var highWaterMark = 64 * 1024
    /// At or below this many queued bytes `isWritable` turns true again (16 KiB).
    public var lowWaterMark = 16 * 1024
    /// Unconsumed input may grow the read buffer up to this size; past it the connection closes
    /// with `.inputLimitExceeded`. Upper layers enforce their own smaller limits (431, 413) first.
    public var maxInputBytes = 128 * 1024
    /// Closes (via `connectionDeadlineExpired`) after this long without read or write progress.
    public var idleTimeout: Duration? = nil
    /// TCP_NODELAY on outbound connections (accepted ones inherit it from the listener).
    public var noDelay = true
    /// Reads per readiness event before yielding to other connections (each up to one buffer).
    public var maxReadsPerEvent = 16

    public init() {}
}

/// What a connection tells its owner. All calls come on the connection's loop.
public protocol ConnectionDelegate: AnyObject {
    /// `buffer[range]` holds every byte not yet consumed (older ones first). Return how many bytes
    /// from `range.lowerBound` were consumed; the rest is presented again with the next bytes. Parse in
    /// place and keep `buffer.slice(...)`s (to write elsewhere on this loop) without copying.
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int
    /// The peer shut down its sending side (read returned 0). Default: close. Once input has ended
    /// and output is shut down (`shutdownOutput`) with nothing queued, the connection closes itself.
    func connectionDidReadEOF(_ connection: Connection)
    /// `isWritable` changed (crossed the high or low watermark). Default: nothing.
    func connectionWritabilityChanged(_ connection: Connection)
    /// An outbound connect finished. Default: nothing.
    func connectionDidConnect(_ connection: Connection)
    /// The deadline (or idle timeout) passed. Default: close with `.timedOut`.
    func connectionDeadlineExpired(_ connection: Connection)
    /// The connection is closed and its fd released; called exactly once, then the delegate is dropped.
    func connectionDidClose(_ connection: Connection, error: ConnectionError?)
}

extension ConnectionDelegate {
    public func connectionDidReadEOF(_ connection: Connection) { connection.close() }
    public func connectionWritabilityChanged(_ connection: Connection) {}
    public func connectionDidConnect(_ connection: Connection) {}
    public func connectionDeadlineExpired(_ connection: Connection) { connection.close(error: .timedOut) }
}

/// A TCP connection bound to one loop (not Sendable; see EventLoop's thread discipline).
public final class Connection: EventLoopHandler {
    public enum State: Equatable, Sendable { case connecting, open, closed }

    public let loop: EventLoop
    public let fileDescriptor: Int32
    public let options: ConnectionOptions
    // The per-request state below is stored in internal properties behind public computed
    // accessors: a public stored `var` can be accessed from other modules, so every access to it
    // pays a dynamic exclusivity check (swift_beginAccess); internal storage lets the optimizer
    // prove the accesses never overlap and drop the checks.
    public var delegate: (any ConnectionDelegate)? {
        get { currentDelegate }
        set { currentDelegate = newValue }
    }
    var currentDelegate: (any ConnectionDelegate)?
    public var state: State { currentState }
    private var currentState: State
    var token = HandlerToken.invalid

    // Input: `input[inputStart ..< input.count]` is unconsumed. An idle connection holds no buffer.
    private var input: IOBuffer?
    private var inputStart = 0
    private var readingPaused = false
    /// An edge (or a full read) said input may be waiting; cleared by a short read.
    private var inputMayBePending = false
    /// The peer shut down writing (EPOLLRDHUP/HUP seen): read on until 0 even after a short read.
    private var peerShutdownSeen = false
    /// True once read returned 0.
    public var isInputClosed: Bool { inputClosed }
    private var inputClosed = false

    // Output: queue[queueHead...] are unsent slices (all non-nil), `queuedBytes` bytes in total.
    /// Read in place, written only through `editQueue` (see EventLoop's `slots`: an in-place write
    /// may release a buffer inside the access, which would make every access to `queue` checked
    /// dynamically for exclusivity).
    private var queue: [IOSlice?] = []
    private var queueHead = 0
    /// Bytes accepted by `write` but not yet taken by the kernel.
    public var queuedBytes: Int { queuedByteCount }
    private var queuedByteCount = 0
    /// False from when `queuedBytes` passes the high watermark until it falls to the low one.
    public var isWritable: Bool { writable }
    private var writable = true
    /// True once output is shut down (or will be, after the queue drains).
    public var isOutputClosed: Bool { outputClosed }
    private var outputClosed = false
    private var shutdownWhenFlushed = false
    private var closeWhenFlushed = false

    private let idleNanoseconds: UInt64
    /// Set while connecting when connect(2) finished synchronously (0 = success, else errno).
    private var immediateConnectResult: Int32?

    init(loop: EventLoop, fileDescriptor: Int32, options: ConnectionOptions, state: State) {
        self.loop = loop
        self.fileDescriptor = fileDescriptor
        self.options = options
        currentState = state
        idleNanoseconds = options.idleTimeout.map { EventLoop.nanoseconds($0) } ?? 0
    }

    /// Wraps a connected, non-blocking socket (accepted or otherwise obtained) and registers it.
    /// On failure the fd is closed.
    public static func adopt(fileDescriptor fd: Int32, on loop: EventLoop, options: ConnectionOptions = ConnectionOptions()) throws(SyscallError) -> Connection {
        let connection = Connection(loop: loop, fileDescriptor: fd, options: options, state: .open)
        do {
            connection.token = try loop.register(fileDescriptor: fd, events: .socketInterest, handler: connection)
        } catch {
            Syscall.close(fd)
            throw error
        }
        connection.noteProgress()
        return connection
    }

    public var isOpen: Bool { state == .open }

    /// The peer's address (a syscall; for logs and access checks, not per request).
    public var remoteAddress: SocketAddress? { try? Syscall.peerAddress(fileDescriptor) }
    /// This side's address.
    public var localAddress: SocketAddress? { try? Syscall.localAddress(fileDescriptor) }
    /// Whether TCP_NODELAY is set (a syscall; for tests and diagnostics).
    public var isNoDelay: Bool { ((try? Syscall.getOption(fileDescriptor, level: Int32(IPPROTO_TCP), name: TCP_NODELAY)) ?? 0) != 0 }

    // MARK: events

    public func handleEvents(_ events: IOEvents) {
        if state == .connecting {
            finishConnect()
            guard state == .open else { return }
        }
        guard state == .open else { return }
        if events.contains(.writable) || events.contains(.error) || events.contains(.hangup), queuedBytes > 0 {
            flush()
            guard state == .open else { return }
        }
        if !events.isDisjoint(with: [.readable, .readHangup, .hangup, .error]) {
            inputMayBePending = true
            if !events.isDisjoint(with: [.readHangup, .hangup, .error]) { peerShutdownSeen = true }
        }
        if events.contains(.wakeUp) && !readingPaused {
            // Resumed: first offer what is already buffered (e.g. a pipelined request).
            deliverInput()
            guard state == .open else { return }
        }
        if inputMayBePending && !readingPaused && !isInputClosed {
            readInput()
        } else if events.contains(.error) && isInputClosed {
            // Nothing will read the error; fetch it so the connection does not linger half-dead.
            let code = (try? Syscall.socketError(fileDescriptor)) ?? 0
            if code != 0 { close(error: .syscall(SyscallError("socket", errno: code))) }
        }
    }

    public func deadlineExpired() {
        if state == .connecting {
            close(error: .connectTimedOut)
        } else if state == .open {
            delegate?.connectionDeadlineExpired(self) ?? close(error: .timedOut)
        }
    }

    public func closeForShutdown() { close(error: .loopShutdown) }

    // MARK: reading

    /// Stops reading (backpressure): no read syscalls until `resumeReading`; the kernel's receive
    /// window then pushes back on the peer. Costs no syscall (no epoll_ctl).
    public func pauseReading() { readingPaused = true }

    /// Reads again: buffered bytes are offered to the delegate, then pending input is read.
    public func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        if state == .open { loop.wake(token) }
    }

    public var isReadingPaused: Bool { readingPaused }

    private func readInput() {
        var reads = 0
        while state == .open && !readingPaused && !isInputClosed {
            guard prepareInput() else {
                close(error: .inputLimitExceeded)
                return
            }
            let result: IOResult
            let space: Int
            do {
                (result, space) = try readOnce()
            } catch {
                close(error: .syscall(error))
                return
            }
            switch result {
            case .wouldBlock:
                inputMayBePending = false
            case .processed(0):
                inputMayBePending = false
                inputClosed = true
                releaseInputIfConsumed()
                noteProgress()
                if let delegate { delegate.connectionDidReadEOF(self) } else { close() }
                closeIfFinished()
                return
            case .processed(let n):
                noteProgress()
                // A short read drained the socket; the next edge reports new data. After the peer
                // shut down, read on to collect the 0 that reports EOF.
                if n < space && !peerShutdownSeen { inputMayBePending = false }
                deliverInput()
                reads += 1
                if inputMayBePending && reads >= options.maxReadsPerEvent {
                    // Yield to other connections; no new edge will come for the rest, so wake ourselves.
                    loop.wake(token)
                    releaseInputIfConsumed()
                    return
                }
            }
            if !inputMayBePending { break }
        }
        releaseInputIfConsumed()
    }

    /// One read into the free tail of `input` (which `prepareInput` made non-nil). Kept separate so
    /// no local reference to the buffer outlives the read: the pool's uniqueness check must see only
    /// `input` when the buffer is released.
    private func readOnce() throws(SyscallError) -> (IOResult, Int) {
        guard let buffer = input else { return (.wouldBlock, 0) }
        let space = buffer.capacity - buffer.count
        let result = try Syscall.read(fileDescriptor, into: buffer, at: buffer.count, count: space)
        if case .processed(let n) = result { buffer.count += n }
        return (result, space)
    }

    private func deliverInput() {
        guard let buffer = input, inputStart < buffer.count else { return }
        guard let delegate else {
            inputStart = buffer.count
            return
        }
        let available = buffer.count - inputStart
        let consumed = delegate.connection(self, didReceive: buffer, range: inputStart ..< buffer.count)
        guard state != .closed, input === buffer else { return }
        precondition(consumed >= 0 && consumed <= available, "delegate consumed \(consumed) of \(available) bytes")
        inputStart += consumed
    }

    /// Puts `buffer` in `input` and returns the previous one, so that releasing it (possibly the
    /// buffer's last reference) happens outside the access to `input`: a release inside it would make
    /// every access to `input` pay a dynamic exclusivity check (see `queue`).
    @inline(__always)
    private func replaceInput(with buffer: IOBuffer?) -> IOBuffer? {
        var other = buffer
        swap(&other, &input)
        return other
    }

    /// Makes `input` a buffer with free space for the next read; false when the input limit is reached.
    ///
    /// Bytes below `count` are never rewritten while anyone else references the buffer (a slice of
    /// it queued on some connection); reading into the free tail after `count` is always allowed, so a
    /// shared buffer keeps filling until its end before a new one is taken from the pool. No local
    /// reference to the buffer is held here, so uniqueness checks and recycling see the true count.
    private func prepareInput() -> Bool {
        let pool = loop.bufferPool
        if input == nil {
            _ = replaceInput(with: pool.take())
            inputStart = 0
            return true
        }
        let unique = isKnownUniquelyReferenced(&input!)
        let count = input!.count
        let capacity = input!.capacity
        let unconsumed = count - inputStart
        if unconsumed == 0 && unique {
            if capacity != pool.bufferSize {
                // A grown buffer goes back to normal size once drained.
                _ = replaceInput(with: nil)
                _ = replaceInput(with: pool.take())
            } else {
                input!.clear()
            }
            inputStart = 0
            return true
        }
        // Keep reads large enough that a short read reliably means "drained", not "buffer full".
        let minimumSpace = min(4096, capacity / 4)
        if capacity - count >= minimumSpace { return true }
        let needed = unconsumed + minimumSpace
        if unique && inputStart > 0 && needed <= capacity {
            input!.moveToFront(inputStart ..< count)
            inputStart = 0
            return true
        }
        var newCapacity = pool.bufferSize
        while newCapacity < needed { newCapacity *= 2 }
        if newCapacity > options.maxInputBytes {
            newCapacity = max(options.maxInputBytes, pool.bufferSize)
            if unconsumed >= newCapacity { return false }
        }
        let replacement = newCapacity == pool.bufferSize ? pool.take() : IOBuffer(capacity: newCapacity)
        if unconsumed > 0 { replacement.append(input!, range: inputStart ..< count) }
        var old = replaceInput(with: replacement)
        inputStart = 0
        pool.recycle(&old)
        return true
    }

    /// Gives the input buffer back when everything in it was consumed, so an idle connection holds
    /// none. A buffer still referenced by queued slices is kept while its tail has room, so the next
    /// reads fill it instead of pinning a fresh 16 KiB buffer per small read.
    private func releaseInputIfConsumed() {
        guard input != nil else { return }
        let unique = isKnownUniquelyReferenced(&input!)
        guard inputStart == input!.count else { return }
        if !unique && input!.freeCapacity >= min(4096, input!.capacity / 4) { return }
        inputStart = 0
        var released = replaceInput(with: nil)
        loop.bufferPool.recycle(&released)
    }

    // MARK: writing

    /// Sends `slice` now if nothing is queued; whatever the kernel does not take is queued (the
    /// slice keeps its buffer alive) and sent on EPOLLOUT. A failed send closes the connection
    /// (the delegate hears `connectionDidClose` before this returns).
    public func write(_ slice: IOSlice) {
        guard acceptsWrites, slice.count > 0 else { return }
        if queuedBytes == 0 && state == .open {
            let result: IOResult
            do {
                result = try Syscall.send(fileDescriptor, slice)
            } catch {
                close(error: .syscall(error))
                return
            }
            switch result {
            case .processed(let n) where n == slice.count:
                noteProgress()
                return
            case .processed(let n):
                noteProgress()
                enqueue(slice.dropFirst(n))
            case .wouldBlock:
                enqueue(slice)
            }
        } else {
            enqueue(slice)
        }
        checkHighWater()
    }

    /// Sends two slices (e.g. head and body) in one vectored send.
    public func write(_ first: IOSlice, _ second: IOSlice) {
        write(contentsOf: CollectionOfTwo(first, second))
    }

    /// Sends `slices` in one vectored send (up to 64 per call) when nothing is queued; queues the rest.
    public func write<C: Collection<IOSlice>>(contentsOf slices: C) {
        guard acceptsWrites else { return }
        let wasEmpty = queuedBytes == 0
        for slice in slices where slice.count > 0 { enqueue(slice) }
        if wasEmpty && state == .open && queuedBytes > 0 { flush() }
        if state != .closed { checkHighWater() }
    }

    private var acceptsWrites: Bool {
        (state == .open || state == .connecting) && !isOutputClosed && !closeWhenFlushed
    }

    /// Runs `body` on the queue moved out of `queue` (two moves, no copy), then moves it back.
    @inline(__always)
    private func editQueue<R>(_ body: (inout [IOSlice?]) -> R) -> R {
        var slices: [IOSlice?] = []
        swap(&slices, &queue)
        let result = body(&slices)
        swap(&slices, &queue)
        return result
    }

    private func enqueue(_ slice: IOSlice) {
        let head = queueHead
        if head > 32 && head * 2 > queue.count {
            editQueue { $0.removeFirst(head) }
            queueHead = 0
        }
        editQueue { $0.append(slice) }
        queuedByteCount += slice.count
    }

    private func checkHighWater() {
        if isWritable && queuedBytes > options.highWaterMark {
            writable = false
            delegate?.connectionWritabilityChanged(self)
        }
    }

    /// Sends queued slices until the queue is empty or the kernel takes less than offered.
    private func flush() {
        let vectors = loop.vectors
        while queuedBytes > 0 && state == .open {
            var offered = 0
            var count = 0
            var i = queueHead
            while i < queue.count && count < IOVectors.capacity {
                guard let slice = queue[i] else { break }
                vectors.set(count, slice)
                offered += slice.count
                count += 1
                i += 1
            }
            let result: IOResult
            do {
                result = try Syscall.send(fileDescriptor, vectors: vectors, count: count)
            } catch {
                close(error: .syscall(error))
                return
            }
            guard case .processed(let n) = result else { break }
            noteProgress()
            consumeQueue(n)
            if n < offered { break }
        }
        guard state == .open else { return }
        if queuedBytes == 0 {
            editQueue { $0.removeAll(keepingCapacity: true) }
            queueHead = 0
            if closeWhenFlushed {
                close()
                return
            }
            if shutdownWhenFlushed { shutdownOutputNow() }
        }
        if !isWritable && queuedBytes <= options.lowWaterMark {
            writable = true
            delegate?.connectionWritabilityChanged(self)
        }
    }

    private func consumeQueue(_ written: Int) {
        var remaining = written
        queuedByteCount -= written
        while remaining > 0 && queueHead < queue.count {
            let sliceCount = queue[queueHead]?.count ?? 0
            if sliceCount <= remaining {
                remaining -= sliceCount
                // Move the slice out (no IOSlice binding stays alive), so that when this was the
                // last reference the pool sees the buffer as unique and takes it back.
                let index = queueHead
                var buffer = editQueue { $0[index].take() }?.buffer
                queueHead += 1
                loop.bufferPool.recycle(&buffer)
            } else {
                let index = queueHead
                let rest = remaining
                editQueue { $0[index] = $0[index]?.dropFirst(rest) }
                remaining = 0
            }
        }
    }

    // MARK: half-close and close

    /// Shuts down the sending side (FIN) once everything queued is sent; reading goes on.
    public func shutdownOutput() {
        guard (state == .open || state == .connecting) && !isOutputClosed else { return }
        if queuedBytes == 0 && state == .open {
            shutdownOutputNow()
        } else {
            shutdownWhenFlushed = true
        }
    }

    private func shutdownOutputNow() {
        shutdownWhenFlushed = false
        outputClosed = true
        do {
            try Syscall.shutdown(fileDescriptor, how: Int32(SHUT_WR))
        } catch {
            close(error: .syscall(error))
            return
        }
        closeIfFinished()
    }

    /// Both directions are shut down and nothing is queued: nothing can happen on the socket any more.
    private func closeIfFinished() {
        if state == .open && isInputClosed && isOutputClosed && queuedBytes == 0 { close() }
    }

    /// Closes once everything queued is sent (e.g. after a `Connection: close` response).
    public func closeAfterFlush() {
        guard state != .closed else { return }
        if queuedBytes == 0 && state == .open { close() } else { closeWhenFlushed = true }
    }

    /// Closes now: queued output is dropped, the fd is released, the delegate hears
    /// `connectionDidClose` once and is then dropped.
    public func close(error: ConnectionError? = nil) {
        guard state != .closed else { return }
        currentState = .closed
        loop.removeHandler(token)
        Syscall.close(fileDescriptor)
        loop.fileDescriptorReleased()
        inputStart = 0
        var released = replaceInput(with: nil)
        loop.bufferPool.recycle(&released)
        if queuedBytes > 0 { consumeQueue(queuedBytes) }
        editQueue { $0.removeAll() }
        queueHead = 0
        let delegate = self.delegate
        self.delegate = nil
        delegate?.connectionDidClose(self, error: error)
    }

    // MARK: deadlines

    /// Arms this connection's deadline (`connectionDeadlineExpired` fires once it passes); nil disarms.
    /// Re-arming is a store, not a syscall. Replaces an armed idle timeout until the next progress.
    public func setDeadline(after duration: Duration?) {
        guard state != .closed else { return }
        if let duration { loop.setDeadline(token, after: duration) } else { loop.setDeadline(token, at: 0) }
    }

    /// Arms the deadline at `deadline` monotonic nanoseconds (see `EventLoop.now`); 0 disarms.
    public func setDeadline(at deadline: UInt64) {
        guard state != .closed else { return }
        loop.setDeadline(token, at: deadline)
    }

    @inline(__always)
    private func noteProgress() {
        if idleNanoseconds != 0 { loop.setDeadline(token, at: loop.now &+ idleNanoseconds) }
    }

    // MARK: connecting

    func startConnect(to address: SocketAddress, timeout: Duration) {
        do {
            if try Syscall.connect(fileDescriptor, address) { immediateConnectResult = 0 }
        } catch {
            immediateConnectResult = error.errno
        }
        if immediateConnectResult != nil {
            // Report on the next loop turn so the caller never sees callbacks from inside connect().
            loop.wake(token)
        } else {
            loop.setDeadline(token, after: timeout)
        }
    }

    private func finishConnect() {
        let code: Int32
        if let immediate = immediateConnectResult {
            code = immediate
            immediateConnectResult = nil
        } else {
            do {
                code = try Syscall.socketError(fileDescriptor)
            } catch {
                close(error: .syscall(error))
                return
            }
        }
        guard code == 0 else {
            close(error: .syscall(SyscallError("connect", errno: code)))
            return
        }
        currentState = .open
        loop.setDeadline(token, at: 0)
        noteProgress()
        delegate?.connectionDidConnect(self)
        guard state == .open else { return }
        if closeWhenFlushed && queuedBytes == 0 {
            close()
        } else if queuedBytes > 0 {
            flush()
        } else if shutdownWhenFlushed {
            shutdownOutputNow()
        }
    }
}

/// Opens outbound connections.
public enum Connector {
    /// Starts a non-blocking connect to `address` on `loop` (call on the loop's thread). The
    /// delegate hears `connectionDidConnect`, or `connectionDidClose` with the error (refused,
    /// unreachable) or `.connectTimedOut`. Writes made before the connect completes are queued.
    /// Throws only when no socket can be created (e.g. EMFILE).
    public static func connect(
        to address: SocketAddress,
        on loop: EventLoop,
        timeout: Duration,
        options: ConnectionOptions = ConnectionOptions(),
        delegate: any ConnectionDelegate
    ) throws(SyscallError) -> Connection {
        let fd = try Syscall.socket(family: address.family)
        if options.noDelay {
            do {
                try Syscall.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1, "setsockopt(TCP_NODELAY)")
            } catch {
                Syscall.close(fd)
                throw error
            }
        }
        let connection = Connection(loop: loop, fileDescriptor: fd, options: options, state: .connecting)
        connection.delegate = delegate
        do {
            connection.token = try loop.register(fileDescriptor: fd, events: .socketInterest, handler: connection)
        } catch {
            Syscall.close(fd)
            throw error
        }
        connection.startConnect(to: address, timeout: timeout)
        return connection
    }
}

/// Two slices as a collection, so head + body go out in one vectored send without an array.
public struct CollectionOfTwo: RandomAccessCollection {
    public let first: IOSlice
    public let second: IOSlice
    public init(_ first: IOSlice, _ second: IOSlice) {
        self.first = first
        self.second = second
    }
    public var startIndex: Int { 0 }
    public var endIndex: Int { 2 }
    public subscript(position: Int) -> IOSlice {
        precondition(position == 0 || position == 1)
        return position == 0 ? first : second
    }
}
