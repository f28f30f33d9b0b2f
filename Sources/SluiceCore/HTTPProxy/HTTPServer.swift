// HTTPProxy layer: the HTTP/1.1 server on an EventLoopGroup — one SO_REUSEPORT listener per loop
// (the foundation's default strategy), a per-loop share of the connection limit, per-loop upstream
// pools and handler, and graceful drain (stop accepting, finish in-flight, close idle, deadline).
import CEpoll
import Logging
import Synchronization

/// An HTTP/1.1 server (and reverse proxy, through its handler) on every loop of a group.
public final class HTTPServer: Sendable {
    /// The bound address (with the real port when port 0 was asked for).
    public let localAddress: SocketAddress
    public let configuration: HTTPServerConfiguration
    private let tcpServer: TCPServer
    private let loops: [LoopBound<HTTPServerLoop?>]
    private let drainState = Mutex(DrainState())

    private struct DrainState {
        var started = false
        var loopsLeft = 0
        var completion: (@Sendable () -> Void)?
    }

    /// Binds (errors are thrown here) and starts serving on every loop of `group`. `makeHandler` runs
    /// once per loop, on that loop, before its first connection.
    public static func start(
        on group: EventLoopGroup,
        address: SocketAddress,
        configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
        logger: Logger = Logger(label: "sluice.http"),
        makeHandler: @escaping @Sendable (EventLoop) -> any HTTPHandler
    ) throws(SyscallError) -> HTTPServer {
        let boxes = group.loops.map { LoopBound<HTTPServerLoop?>(nil, on: $0) }
        let perLoop = max(1, configuration.maxConnections / group.loops.count)
        var listenerOptions = ListenerOptions()
        listenerOptions.backlog = configuration.backlog
        listenerOptions.connection = configuration.connection
        // The server arms each connection's deadline itself (head, idle, body, write progress).
        listenerOptions.connection.idleTimeout = nil
        // A head may use the whole configured limit before the parser answers 431; the connection's
        // own input cap must not cut it short first.
        listenerOptions.connection.maxInputBytes = max(configuration.connection.maxInputBytes,
                                                       configuration.parserLimits.maxHeadBytes + 32 * 1024)
        let loopsByIdentity = Dictionary(uniqueKeysWithValues: boxes.map { (ObjectIdentifier($0.loop), $0) })
        let tcp = try TCPServer.start(on: group, address: address, strategy: .reusePortPerLoop, options: listenerOptions) { loop in
            let state = HTTPServerLoop(loop: loop, configuration: configuration, maxConnections: perLoop,
                                       handler: makeHandler(loop), logger: logger)
            loopsByIdentity[ObjectIdentifier(loop)]?.value = state
            return state
        }
        return HTTPServer(localAddress: tcp.localAddress, configuration: configuration, tcpServer: tcp, loops: boxes)
    }

    private init(localAddress: SocketAddress, configuration: HTTPServerConfiguration, tcpServer: TCPServer, loops: [LoopBound<HTTPServerLoop?>]) {
        self.localAddress = localAddress
        self.configuration = configuration
        self.tcpServer = tcpServer
        self.loops = loops
    }

    /// Graceful drain, from any thread: stop accepting, close idle connections, let in-flight requests
    /// finish (their responses carry `Connection: close`), then call `completion` (on some loop).
    /// At `timeout` whatever is left (slow requests, tunnels, suspended requests) is closed.
    public func drain(timeout: Duration, completion: @escaping @Sendable () -> Void) {
        let first = drainState.withLock { state -> Bool in
            if state.started { return false }
            state.started = true
            state.loopsLeft = loops.count
            state.completion = completion
            return true
        }
        guard first else { return }
        // reliability.md §1f: drain the accept queue before closing listeners (no reset for clients
        // whose connect already succeeded).
        tcpServer.close(acceptingQueued: true)
        for box in loops {
            box.loop.execute { [self] in
                guard let state = box.value else {
                    loopDrained()
                    return
                }
                state.beginDrain(timeout: timeout) { [self] in loopDrained() }
            }
        }
    }

    private func loopDrained() {
        let completion = drainState.withLock { state -> (@Sendable () -> Void)? in
            state.loopsLeft -= 1
            guard state.loopsLeft == 0 else { return nil }
            let c = state.completion
            state.completion = nil
            return c
        }
        completion?()
    }

    /// Stops accepting (established connections stay).
    public func close() { tcpServer.close() }

    /// Per-loop statistics snapshot, gathered on each loop (for tests and metrics). From any thread
    /// except a loop of this server.
    public func statistics(timeout: Duration = .seconds(5)) -> [HTTPServerStatistics] {
        let collector = StatisticsCollector(expected: loops.count)
        for box in loops {
            box.loop.execute {
                let stats = box.value?.statistics ?? HTTPServerStatistics()
                collector.add(stats)
            }
        }
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while !collector.isComplete && clock.now < end {
            usleep(1_000)
        }
        return collector.results
    }
}

private final class StatisticsCollector: Sendable {
    private let state: Mutex<[HTTPServerStatistics]>
    private let expected: Int
    init(expected: Int) {
        self.expected = expected
        state = Mutex([])
    }
    func add(_ stats: HTTPServerStatistics) { state.withLock { $0.append(stats) } }
    var isComplete: Bool { state.withLock { $0.count >= expected } }
    var results: [HTTPServerStatistics] { state.withLock { $0 } }
}

/// What one loop of a server counted.
public struct HTTPServerStatistics: Sendable, Equatable {
    /// Open client connections now.
    public var connections = 0
    /// Client connections accepted since start.
    public var accepted = 0
    /// Times accepting paused at the connection limit.
    public var limitPauses = 0
    /// Idle or head-waiting connections closed to make room near the connection limit.
    public var reclaimed = 0
    /// Upgraded (tunnelled) connections now.
    public var tunnels = 0
    /// Upstream pools on this loop, summed.
    public var upstream = HTTPUpstreamPoolStatistics()

    public init() {}
}

/// A server's state on one loop: its listener, connections, handler and upstream pools.
final class HTTPServerLoop: ListenerDelegate {
    let loop: EventLoop
    let configuration: HTTPServerConfiguration
    let handler: any HTTPHandler
    let logger: Logger
    let maxConnections: Int
    let defaultTimeouts = HTTPRequestTimeouts()
    /// Lower-cased upgrade tokens, as bytes.
    let allowedUpgradeBytes: [[UInt8]]
    // Timeouts in loop-clock nanoseconds, converted once.
    let headTimeoutNanoseconds: UInt64
    let idleTimeoutNanoseconds: UInt64
    let bodyTimeoutNanoseconds: UInt64
    let writeTimeoutNanoseconds: UInt64
    let lingerTimeoutNanoseconds: UInt64
    let lingerTotalNanoseconds: UInt64

    private(set) var listener: Listener?
    private(set) var connections: [ServerConnection] = []
    /// Reclaimable connections, oldest first (see ConnectionReclaim.swift).
    var keptAliveConnections = IdleConnectionQueue(kind: IdleConnectionQueue.keptAlive)
    var headWaitingConnections = IdleConnectionQueue(kind: IdleConnectionQueue.headWaiting)
    let reclaimThreshold: Int
    var reclaimedConnections = 0
    /// Reclaimed connections still flushing their last response (they hold a slot a little longer).
    var reclaimsInProgress = 0
    private var pools: [Int: UpstreamPool] = [:]
    /// The pool used last: a server forwarding to one upstream finds it without hashing per request.
    private var lastPool: UpstreamPool?
    /// The X-Forwarded-Proto value as bytes, encoded once (nil: none is added).
    let xForwardedProtoBytes: [UInt8]?
    private(set) var isDraining = false
    private var drainCompletion: (() -> Void)?
    private var drainTimer: TimerID?
    private var accepted = 0
    private var limitPauses = 0
    var tunnelCount = 0

    init(loop: EventLoop, configuration: HTTPServerConfiguration, maxConnections: Int, handler: any HTTPHandler, logger: Logger) {
        self.loop = loop
        self.configuration = configuration
        self.maxConnections = maxConnections
        reclaimThreshold = Self.reclaimThreshold(forLimit: maxConnections)
        self.handler = handler
        self.logger = logger
        allowedUpgradeBytes = configuration.allowedUpgrades.map { Array($0.lowercased().utf8) }
        xForwardedProtoBytes = configuration.forwardedHeaders.xForwardedProto.map { Array($0.utf8) }
        headTimeoutNanoseconds = EventLoop.nanoseconds(configuration.headTimeout)
        idleTimeoutNanoseconds = EventLoop.nanoseconds(configuration.idleTimeout)
        bodyTimeoutNanoseconds = EventLoop.nanoseconds(configuration.bodyProgressTimeout)
        writeTimeoutNanoseconds = EventLoop.nanoseconds(configuration.writeProgressTimeout)
        lingerTimeoutNanoseconds = EventLoop.nanoseconds(configuration.lingerTimeout)
        lingerTotalNanoseconds = max(lingerTimeoutNanoseconds, EventLoop.nanoseconds(configuration.lingerTotalTimeout))
        connections.reserveCapacity(min(maxConnections, 4096))
    }

    func listenerDidStart(_ listener: Listener) {
        self.listener = listener
        if isDraining { listener.closeAfterAcceptingQueued() }
    }

    func didAccept(_ connection: Connection) {
        accepted += 1
        let serverConnection = ServerConnection(server: self, connection: connection)
        connection.delegate = serverConnection
        serverConnection.registryIndex = connections.count
        connections.append(serverConnection)
        reclaimIfCrowded()
        connectionAccepted(serverConnection)
        // Taken from the accept queue while draining: its request is answered with Connection: close.
        if isDraining { serverConnection.beginDrain() }
        if connections.count >= maxConnections, let listener, !listener.isPaused {
            // reliability.md §1c: at the limit, leave new connections in the kernel backlog.
            limitPauses += 1
            listener.pause()
            logger.warning("connection limit reached; accepting paused", metadata: ["limit": "\(maxConnections)"])
        }
    }

    func connectionClosed(_ serverConnection: ServerConnection) {
        // Unlinked first, whatever the registry says: a closed connection must never be reclaimed.
        connectionBecameBusy(serverConnection)
        if serverConnection.isClosingForReclaim {
            serverConnection.isClosingForReclaim = false
            reclaimsInProgress -= 1
        }
        let index = serverConnection.registryIndex
        guard index >= 0, index < connections.count, connections[index] === serverConnection else { return }
        let last = connections.removeLast()
        if index < connections.count {
            connections[index] = last
            last.registryIndex = index
        }
        serverConnection.registryIndex = -1
        if let listener, listener.isPaused, connections.count < maxConnections, !isDraining {
            listener.resume()
        }
        if isDraining { checkDrained() }
    }

    /// This loop's pool for `upstream` (made on first use).
    func pool(for upstream: HTTPUpstream) -> UpstreamPool {
        if let lastPool, lastPool.upstream === upstream { return lastPool }
        if let pool = pools[upstream.id] {
            lastPool = pool
            return pool
        }
        let pool = UpstreamPool(upstream: upstream, loop: loop)
        pools[upstream.id] = pool
        lastPool = pool
        return pool
    }

    var statistics: HTTPServerStatistics {
        var stats = HTTPServerStatistics()
        stats.connections = connections.count
        stats.accepted = accepted
        stats.limitPauses = limitPauses
        stats.reclaimed = reclaimedConnections
        stats.tunnels = tunnelCount
        for pool in pools.values {
            stats.upstream.connectsStarted += pool.statistics.connectsStarted
            stats.upstream.reuses += pool.statistics.reuses
            stats.upstream.idle += pool.statistics.idle
            stats.upstream.idleClosedByPeer += pool.statistics.idleClosedByPeer
            stats.upstream.retries += pool.statistics.retries
        }
        return stats
    }

    func beginDrain(timeout: Duration, completion: @escaping () -> Void) {
        guard !isDraining else { return }
        isDraining = true
        drainCompletion = completion
        listener?.closeAfterAcceptingQueued()
        listener = nil
        // Snapshot: closing idle connections edits the registry.
        for connection in connections { connection.beginDrain() }
        drainTimer = loop.scheduleTimer(after: timeout) { [weak self] in
            guard let self else { return }
            self.drainTimer = nil
            if !self.connections.isEmpty {
                self.logger.warning("drain deadline passed; closing remaining connections", metadata: ["connections": "\(self.connections.count)"])
            }
            for connection in self.connections { connection.forceClose() }
            self.checkDrained()
        }
        checkDrained()
    }

    private func checkDrained() {
        guard isDraining, connections.isEmpty, let completion = drainCompletion else { return }
        drainCompletion = nil
        if let drainTimer { loop.cancelTimer(drainTimer) }
        drainTimer = nil
        for pool in pools.values { pool.closeIdle() }
        completion()
    }
}
