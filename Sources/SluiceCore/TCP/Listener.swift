// TCP layer: listening sockets — accept until EAGAIN, hand connections to loops, and survive fd
// exhaustion (EMFILE/ENFILE) without spinning: disarm, re-arm on the next close or after a delay.
import CEpoll
import Logging

/// Receives accepted connections on the loop that will own them.
public protocol ListenerDelegate: AnyObject {
    /// A new connection, registered on its loop; set its delegate here.
    func didAccept(_ connection: Connection)
    /// The listener this delegate serves is registered on its loop (TCPServer calls it once per
    /// listener), so the owner can `pause()`/`resume()` it, e.g. at a connection limit. Default: nothing.
    func listenerDidStart(_ listener: Listener)
    /// While the owner has accepting paused, new connections are waiting in the backlog (the kernel
    /// signalled one). A server at its connection limit may free a slot for them. Default: nothing.
    func listenerHasQueuedConnections(_ listener: Listener)
}

extension ListenerDelegate {
    public func listenerDidStart(_ listener: Listener) {}
    public func listenerHasQueuedConnections(_ listener: Listener) {}
}

/// Listening-socket options.
public struct ListenerOptions: Sendable {
    /// listen(2) backlog (capped by net.core.somaxconn). Also where connections wait while accepting is paused.
    public var backlog: Int32 = 1024
    /// Options for every accepted connection.
    public var connection = ConnectionOptions()
    /// How long accepting stays paused after EMFILE/ENFILE when no fd is closed meanwhile (reliability.md: 100 ms).
    public var acceptRetryDelay: Duration = .milliseconds(100)
    /// At most one fd-exhaustion log line per this interval (reliability.md: 1 s).
    public var exhaustionLogInterval: Duration = .seconds(1)
    /// Accepts per readiness event before yielding to the connections' own events.
    public var maxAcceptsPerEvent = 64
    /// SO_SNDBUF / SO_RCVBUF for accepted sockets (set once on the listener, inherited); nil: kernel autotuning.
    public var socketSendBufferSize: Int32? = nil
    public var socketReceiveBufferSize: Int32? = nil

    public init() {}
}

/// A listening socket created off-loop (so bind errors surface synchronously), adopted by a Listener.
struct ListeningSocket {
    let fd: Int32
    let address: SocketAddress

    static func open(_ address: SocketAddress, options: ListenerOptions, reusePort: Bool) throws(SyscallError) -> ListeningSocket {
        try open(address, backlog: options.backlog, reusePort: reusePort, noDelay: options.connection.noDelay,
                 sendBuffer: options.socketSendBufferSize, receiveBuffer: options.socketReceiveBufferSize)
    }

    static func open(_ address: SocketAddress, backlog: Int32, reusePort: Bool, noDelay: Bool, sendBuffer: Int32? = nil, receiveBuffer: Int32? = nil) throws(SyscallError) -> ListeningSocket {
        let fd = try Syscall.socket(family: address.family)
        do {
            try Syscall.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1, "setsockopt(SO_REUSEADDR)")
            if reusePort {
                try Syscall.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1, "setsockopt(SO_REUSEPORT)")
            }
            // Accepted sockets inherit TCP_NODELAY from the listener on Linux: no setsockopt per connection.
            if noDelay {
                try Syscall.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1, "setsockopt(TCP_NODELAY)")
            }
            if let sendBuffer { try Syscall.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, value: sendBuffer, "setsockopt(SO_SNDBUF)") }
            if let receiveBuffer { try Syscall.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, value: receiveBuffer, "setsockopt(SO_RCVBUF)") }
            try Syscall.bind(fd, address)
            try Syscall.listen(fd, backlog: backlog)
            return ListeningSocket(fd: fd, address: try Syscall.localAddress(fd))
        } catch {
            Syscall.close(fd)
            throw error
        }
    }
}

/// One listening socket on one loop. Accepted connections are registered on this loop, or handed to
/// other loops in turn when the listener distributes (the single-acceptor strategy).
public final class Listener: EventLoopHandler {
    public let loop: EventLoop
    public let fileDescriptor: Int32
    public let localAddress: SocketAddress
    public let options: ListenerOptions
    public var delegate: (any ListenerDelegate)?
    public private(set) var isClosed = false
    /// False while accepting is paused after EMFILE/ENFILE.
    public private(set) var isAccepting = true
    /// Times accepting was paused for fd exhaustion (for metrics and tests).
    public private(set) var exhaustionPauses = 0
    /// True while the owner paused accepting with `pause()`; new connections wait in the backlog.
    public private(set) var isPaused = false
    /// While paused: connections may be waiting in the backlog (an edge arrived while paused, or the
    /// pause stopped an accept run before the queue was empty). Cleared when accepting resumes.
    public private(set) var mayHaveQueuedConnections = false

    var token = HandlerToken.invalid
    private var retryTimer: TimerID?
    private var lastExhaustionLog: UInt64 = 0
    private var suppressedLogs = 0
    private let distribution: [AcceptSink]
    private var nextTarget = 0

    /// Binds and listens on `address` on `loop` (call on the loop's thread).
    public convenience init(
        address: SocketAddress,
        on loop: EventLoop,
        options: ListenerOptions = ListenerOptions(),
        reusePort: Bool = false,
        delegate: any ListenerDelegate
    ) throws(SyscallError) {
        let socket = try ListeningSocket.open(address, options: options, reusePort: reusePort)
        try self.init(adopting: socket, on: loop, options: options, distribution: [])
        self.delegate = delegate
    }

    init(adopting socket: ListeningSocket, on loop: EventLoop, options: ListenerOptions, distribution: [AcceptSink]) throws(SyscallError) {
        self.loop = loop
        fileDescriptor = socket.fd
        localAddress = socket.address
        self.options = options
        self.distribution = distribution
        do {
            token = try loop.register(fileDescriptor: socket.fd, events: .readInterest, handler: self)
        } catch {
            Syscall.close(socket.fd)
            throw error
        }
    }

    public func handleEvents(_ events: IOEvents) {
        guard !isClosed else { return }
        if isPaused {
            // Edges are not repeated: remember that someone is waiting and tell the owner once per edge.
            if events.contains(.readable) {
                mayHaveQueuedConnections = true
                delegate?.listenerHasQueuedConnections(self)
            }
            return
        }
        if isAccepting {
            acceptPending()
        } else if events.contains(.wakeUp) {
            // An fd was released on this loop: try again at once instead of waiting for the timer.
            resumeAccepting()
        }
        // While paused, edges for new connections are ignored: edge-triggered epoll does not repeat
        // them, so nothing spins; the backlog holds the connections until we accept again.
    }

    public func closeForShutdown() { close() }

    /// Stops accepting until `resume()` (e.g. at a connection limit): connections wait in the kernel
    /// backlog instead of being accepted and reset. Costs no syscall.
    public func pause() { isPaused = true }

    /// Accepts again; connections that queued up meanwhile are accepted on the next loop turn
    /// (edge-triggered epoll will not repeat their edge, so the listener wakes itself).
    public func resume() {
        guard isPaused else { return }
        isPaused = false
        mayHaveQueuedConnections = false
        if !isClosed { loop.wake(token) }
    }

    /// Accepts every connection already in the kernel's queue (handing each to the delegate, even
    /// while paused), then closes. For a graceful drain: closing a listening socket — one of several
    /// SO_REUSEPORT sockets included — resets the connections still queued on it, though their
    /// clients saw the connect succeed. Bounded by the backlog, so a connect storm cannot hold it.
    public func closeAfterAcceptingQueued() {
        guard !isClosed else { return }
        var left = max(Int(options.backlog), 1) * 2
        accepting: while left > 0 {
            left -= 1
            do {
                guard let fd = try Syscall.accept(fileDescriptor) else { break accepting }
                hand(fd)
            } catch {
                switch error.errno {
                case Errno.connectionAborted, EPROTO, EPERM:
                    continue accepting
                default:
                    // Out of fds or memory: what is left is reset by the close, as before.
                    loop.logger.warning("cannot accept the queued connections before closing", metadata: ["error": "\(error)", "listener": "\(localAddress)"])
                    break accepting
                }
            }
        }
        close()
    }

    /// Stops listening and closes the socket; connections already accepted are unaffected.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        if let retryTimer { loop.cancelTimer(retryTimer) }
        loop.stopWaitingForFileDescriptor(token)
        loop.removeHandler(token)
        Syscall.close(fileDescriptor)
        loop.fileDescriptorReleased()
    }

    private func acceptPending() {
        var accepted = 0
        while isAccepting && !isPaused && !isClosed {
            let fd: Int32?
            do {
                fd = try Syscall.accept(fileDescriptor)
            } catch {
                switch error.errno {
                case Errno.connectionAborted, EPROTO, EPERM:
                    // The peer gave up while queued, or a firewall refused it: next one.
                    continue
                case Errno.tooManyOpenFiles, Errno.fileTableFull, Errno.noBuffers, Errno.noMemory:
                    pauseAccepting(error)
                default:
                    loop.logger.error("accept failed; pausing accepts", metadata: ["error": "\(error)", "listener": "\(localAddress)"])
                    pauseAccepting(error)
                }
                return
            }
            guard let fd else { return } // EAGAIN: the accept queue is empty; the next edge reports more.
            hand(fd)
            accepted += 1
            // The owner paused inside this run: more may be queued, and no new edge will say so.
            if isPaused { mayHaveQueuedConnections = true }
            if accepted >= options.maxAcceptsPerEvent {
                loop.wake(token)
                return
            }
        }
    }

    private func hand(_ fd: Int32) {
        if distribution.count > 1 {
            let sink = distribution[nextTarget % distribution.count]
            nextTarget &+= 1
            if sink.loop !== loop {
                // Cross-loop hand-off: one task per connection (not per request).
                let target = sink
                let accepted = sink.loop.execute { target.accept(fd) }
                if !accepted { Syscall.close(fd) }
                return
            }
            sink.accept(fd)
            return
        }
        do {
            let connection = try Connection.adopt(fileDescriptor: fd, on: loop, options: options.connection)
            if let delegate { delegate.didAccept(connection) } else { connection.close() }
        } catch {
            loop.logger.error("cannot register accepted connection", metadata: ["error": "\(error)"])
        }
    }

    private func pauseAccepting(_ error: SyscallError) {
        isAccepting = false
        exhaustionPauses += 1
        loop.waitForFileDescriptor(token)
        retryTimer = loop.scheduleTimer(after: options.acceptRetryDelay) { [weak self] in
            self?.retryTimer = nil
            self?.resumeAccepting()
        }
        let interval = EventLoop.nanoseconds(options.exhaustionLogInterval)
        if lastExhaustionLog == 0 || loop.now &- lastExhaustionLog >= interval {
            loop.logger.error("accept paused: out of file descriptors; retrying on the next close or after the delay", metadata: [
                "error": "\(error)",
                "listener": "\(localAddress)",
                "handlers_on_loop": "\(loop.handlerCount)",
                "suppressed_since_last_log": "\(suppressedLogs)",
            ])
            lastExhaustionLog = max(1, loop.now)
            suppressedLogs = 0
        } else {
            suppressedLogs += 1
        }
    }

    private func resumeAccepting() {
        guard !isAccepting && !isClosed else { return }
        isAccepting = true
        if let retryTimer {
            loop.cancelTimer(retryTimer)
            self.retryTimer = nil
        }
        loop.stopWaitingForFileDescriptor(token)
        acceptPending()
    }
}

/// Where a distributing listener sends an accepted fd: a loop and the delegate that lives on it.
final class AcceptSink: @unchecked Sendable {
    let loop: EventLoop
    let options: ConnectionOptions
    /// Touched only on `loop` (set by the server's setup task, which runs before any accept task).
    var delegate: (any ListenerDelegate)?

    init(loop: EventLoop, options: ConnectionOptions) {
        self.loop = loop
        self.options = options
    }

    /// On `loop`: wrap the fd and give it to the delegate.
    func accept(_ fd: Int32) {
        do {
            let connection = try Connection.adopt(fileDescriptor: fd, on: loop, options: options)
            if let delegate { delegate.didAccept(connection) } else { connection.close() }
        } catch {
            loop.logger.error("cannot register accepted connection", metadata: ["error": "\(error)"])
        }
    }
}

/// A TCP server across an EventLoopGroup.
///
/// Strategies (measured in BENCHMARKS.md): `.reusePortPerLoop` gives every loop its own SO_REUSEPORT
/// socket, and the kernel spreads connections by hash with no cross-thread hand-off; `.singleAcceptor`
/// accepts on the first loop and hands each connection to the loops in turn (one `execute` each).
public final class TCPServer: Sendable {
    public enum Strategy: Sendable {
        case reusePortPerLoop
        case singleAcceptor
    }

    /// The bound address (with the real port when port 0 was asked for).
    public let localAddress: SocketAddress
    public let strategy: Strategy
    private let listeners: [LoopBound<Listener?>]

    /// Binds synchronously (so EADDRINUSE and friends are thrown here), then registers on the loops.
    /// `makeDelegate` runs once per loop, on that loop, before any connection arrives there.
    public static func start(
        on group: EventLoopGroup,
        address: SocketAddress,
        strategy: Strategy = .reusePortPerLoop,
        options: ListenerOptions = ListenerOptions(),
        makeDelegate: @escaping @Sendable (EventLoop) -> any ListenerDelegate
    ) throws(SyscallError) -> TCPServer {
        let loops = group.loops
        var sockets: [ListeningSocket] = []
        switch strategy {
        case .reusePortPerLoop:
            var bindTo = address
            for _ in loops {
                do {
                    let socket = try ListeningSocket.open(bindTo, options: options, reusePort: true)
                    sockets.append(socket)
                    bindTo = socket.address // port 0: the rest join the port the first one got
                } catch {
                    for socket in sockets { Syscall.close(socket.fd) }
                    throw error
                }
            }
        case .singleAcceptor:
            sockets.append(try ListeningSocket.open(address, options: options, reusePort: false))
        }
        let sinks = loops.map { AcceptSink(loop: $0, options: options.connection) }
        let bound = loops.map { LoopBound<Listener?>(nil, on: $0) }
        for (index, loop) in loops.enumerated() {
            let socket: ListeningSocket? = index < sockets.count ? sockets[index] : nil
            let sink = sinks[index]
            let box = bound[index]
            let distribution = strategy == .singleAcceptor ? sinks : []
            loop.execute {
                let delegate = makeDelegate(loop)
                sink.delegate = delegate
                guard let socket else { return }
                do {
                    let listener = try Listener(adopting: socket, on: loop, options: options, distribution: distribution)
                    listener.delegate = delegate
                    box.value = listener
                    delegate.listenerDidStart(listener)
                } catch {
                    loop.logger.error("cannot register listener", metadata: ["error": "\(error)"])
                }
            }
        }
        return TCPServer(localAddress: sockets[0].address, strategy: strategy, listeners: bound)
    }

    private init(localAddress: SocketAddress, strategy: Strategy, listeners: [LoopBound<Listener?>]) {
        self.localAddress = localAddress
        self.strategy = strategy
        self.listeners = listeners
    }

    /// Stops accepting on every loop (asynchronously); established connections stay open. With
    /// `acceptingQueued`, connections already queued in the kernel are accepted first (graceful drain).
    public func close(acceptingQueued: Bool = false) {
        for box in listeners {
            box.loop.execute {
                if acceptingQueued { box.value?.closeAfterAcceptingQueued() } else { box.value?.close() }
                box.value = nil
            }
        }
    }
}
