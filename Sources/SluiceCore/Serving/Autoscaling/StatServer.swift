// Serving layer (autoscaler): the endpoint activators push stats to — Knative's stat server. WebSocket on
// port 8080; each binary message is a protobuf WireStatMessages batch whose entries go to a sink on the
// receiving loop. Kubelet probes are answered 200; other plain requests get the handshake refusal.
import Logging
import SwiftProtobuf
import Synchronization

/// Receives one activator stat: the revision's namespace and name, and the stat (timestamp as sent).
/// Called on the loop that read it.
public typealias StatSink = (_ namespace: String, _ name: String, _ stat: Metrics_Stat) -> Void

/// Settings of a `StatServer`, validated when built.
public struct StatServerConfiguration: Sendable {
    /// Knative's autoscaler listens for activator stats on :8080.
    public static let defaultPort: UInt16 = 8080

    /// Where to listen (default all IPv4 interfaces, port 8080).
    public var address: SocketAddress
    /// WebSocket connections open at once, across all loops (each loop takes an equal share); an
    /// upgrade beyond it is answered 503. One per activator pod is the normal load.
    public var maxConnections = 1000
    /// A WebSocket message (one batch) longer than this closes the connection with 1009.
    public var maxMessageBytes = 4 << 20
    /// On stop, how long each client gets to answer our close frame.
    public var closeTimeout: Duration = .seconds(5)
    /// The close code sent to clients on stop: Knative's stat server sends 1012 (service restart, "reconnect").
    public var shutdownCloseCode = WebSocketCloseCode.serviceRestart
    /// Dropped-message warnings are logged at most once per this interval (with a count of the rest).
    public var errorLogInterval: Duration = .seconds(10)
    /// The HTTP side (head limits and timeouts of the handshake request).
    public var http = HTTPServerConfiguration()

    /// `host` must be a numeric IPv4 or IPv6 address (errors name it).
    public init(host: String = "0.0.0.0", port: UInt16 = StatServerConfiguration.defaultPort) throws(SocketAddressError) {
        address = try SocketAddress(host: host, port: port)
        http.allowedUpgrades = []
    }

    public init(address: SocketAddress) {
        self.address = address
        http.allowedUpgrades = []
    }
}

/// What a stat server counted since it started (all loops).
public struct StatServerStatistics: Sendable, Equatable {
    /// WebSocket connections open now.
    public var connections = 0
    /// WebSocket connections accepted since start.
    public var accepted = 0
    /// Binary messages decoded as WireStatMessages.
    public var batches = 0
    /// Stats handed to the sink.
    public var stats = 0
    /// Messages dropped: not protobuf WireStatMessages, or text messages.
    public var dropped = 0
}

/// Knative's autoscaler stat server on our own stack.
public final class StatServer: Sendable {
    public let localAddress: SocketAddress
    public let configuration: StatServerConfiguration
    private let http: HTTPServer
    private let handlers: [LoopBound<StatServerHandler?>]
    private let counters: StatServerCounters
    private let stopState = Mutex<(started: Bool, left: Int, completion: (@Sendable () -> Void)?)>((false, 0, nil))

    /// Binds (errors thrown here) and serves on every loop of `group`. `makeSink` runs once per loop, on
    /// that loop; its sink is called on that loop for every stat received there.
    public static func start(
        on group: EventLoopGroup, configuration: StatServerConfiguration,
        logger: Logger = Logger(label: "sluice.autoscaler.statserver"),
        makeSink: @escaping @Sendable (EventLoop) -> StatSink
    ) throws(SyscallError) -> StatServer {
        let boxes = group.loops.map { LoopBound<StatServerHandler?>(nil, on: $0) }
        let byLoop = Dictionary(uniqueKeysWithValues: boxes.map { (ObjectIdentifier($0.loop), $0) })
        let counters = StatServerCounters()
        let perLoop = max(1, configuration.maxConnections / group.loops.count)
        let http = try HTTPServer.start(on: group, address: configuration.address, configuration: configuration.http,
                                        logger: logger) { loop in
            let handler = StatServerHandler(loop: loop, configuration: configuration, maxSessions: perLoop,
                                            sink: makeSink(loop), counters: counters, logger: logger)
            byLoop[ObjectIdentifier(loop)]?.value = handler
            return handler
        }
        logger.info("stat server listening", metadata: ["address": "\(http.localAddress)"])
        return StatServer(http: http, configuration: configuration, handlers: boxes, counters: counters)
    }

    private init(http: HTTPServer, configuration: StatServerConfiguration, handlers: [LoopBound<StatServerHandler?>], counters: StatServerCounters) {
        self.http = http
        self.localAddress = http.localAddress
        self.configuration = configuration
        self.handlers = handlers
        self.counters = counters
    }

    public var statistics: StatServerStatistics { counters.snapshot }

    /// Stops, from any thread: no new connections; every WebSocket client gets a close frame with
    /// `shutdownCloseCode` ("Restarting") and `closeTimeout` to answer; plain HTTP connections drain.
    /// `completion` runs (on some loop) once everything is closed, at the latest after `timeout`.
    public func stop(timeout: Duration = .seconds(10), completion: @escaping @Sendable () -> Void = {}) {
        let first = stopState.withLock { state -> Bool in
            if state.started { return false }
            state = (true, handlers.count + 1, completion)
            return true
        }
        guard first else { return }
        http.drain(timeout: timeout) { [self] in partStopped() }
        for box in handlers {
            let handedOver = box.loop.execute { [self] in
                guard let handler = box.value else {
                    partStopped()
                    return
                }
                handler.beginStop(timeout: timeout) { [self] in partStopped() }
            }
            // A loop that already stopped closed its connections itself.
            if !handedOver { partStopped() }
        }
    }

    private func partStopped() {
        let completion = stopState.withLock { state -> (@Sendable () -> Void)? in
            state.left -= 1
            guard state.left == 0 else { return nil }
            let c = state.completion
            state.completion = nil
            return c
        }
        completion?()
    }
}

/// Shared counters (a message a second per activator: atomics cost nothing here).
final class StatServerCounters: Sendable {
    let connections = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)
    let batches = Atomic<Int>(0)
    let stats = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)

    var snapshot: StatServerStatistics {
        var s = StatServerStatistics()
        s.connections = connections.load(ordering: .relaxed)
        s.accepted = accepted.load(ordering: .relaxed)
        s.batches = batches.load(ordering: .relaxed)
        s.stats = stats.load(ordering: .relaxed)
        s.dropped = dropped.load(ordering: .relaxed)
        return s
    }
}

/// One loop's share: answers the HTTP side and owns that loop's WebSocket sessions.
final class StatServerHandler: HTTPHandler, WebSocketDelegate {
    let loop: EventLoop
    let configuration: StatServerConfiguration
    let sink: StatSink
    let counters: StatServerCounters
    let logger: Logger
    let webSocketConfiguration: WebSocketConfiguration
    let maxSessions: Int
    let fullAnswer: HTTPLocalResponse
    private var sessions: [ObjectIdentifier: WebSocketConnection] = [:]
    private var stopping = false
    private var stopCompletion: (() -> Void)?
    private var stopTimer: TimerID?
    private var warnings: RateLimitedWarnings

    static let userAgent = HTTPFieldName("user-agent")
    static let kubeletProbe = HTTPFieldName(KnativeHeader.kubeletProbe)
    static let kubeProbePrefix = Array(KnativeHeader.kubeProbeUserAgentPrefix.utf8)
    static let probeAnswer = HTTPLocalResponse(status: 200)
    static let stoppingAnswer = HTTPLocalResponse.text(503, "the autoscaler's stat server is shutting down")

    init(loop: EventLoop, configuration: StatServerConfiguration, maxSessions: Int, sink: @escaping StatSink,
         counters: StatServerCounters, logger: Logger) {
        self.loop = loop
        self.maxSessions = maxSessions
        fullAnswer = .text(503, "the autoscaler's stat server has its maximum of \(configuration.maxConnections) connections open")
        self.configuration = configuration
        self.sink = sink
        self.counters = counters
        self.logger = logger
        var ws = WebSocketConfiguration()
        ws.maxMessageBytes = configuration.maxMessageBytes
        ws.closeTimeout = configuration.closeTimeout
        webSocketConfiguration = ws
        warnings = RateLimitedWarnings(interval: EventLoop.nanoseconds(configuration.errorLogInterval))
    }

    // MARK: HTTP side

    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        // Knative's stat server answers kubelet probes 200 as soon as it serves.
        if Self.isKubeletProbe(exchange) { return .respond(Self.probeAnswer) }
        if stopping { return .respond(Self.stoppingAnswer) }
        let decision = WebSocketUpgrade.decide(exchange)
        if case .switchProtocols = decision, sessions.count >= maxSessions {
            if let suppressed = warnings.shouldLog(now: loop.now) {
                logger.warning("refused a stat connection: connection limit reached", metadata: [
                    "limit": "\(configuration.maxConnections)", "suppressed": "\(suppressed)",
                ])
            }
            return .respond(fullAnswer)
        }
        return decision
    }

    static func isKubeletProbe(_ exchange: HTTPExchange) -> Bool {
        if let field = exchange.firstField(named: kubeletProbe), !field.value.isEmpty { return true }
        if let field = exchange.firstField(named: userAgent), exchange.value(of: field, hasPrefix: kubeProbePrefix) { return true }
        return false
    }

    func takeOver(_ exchange: HTTPExchange, connection: Connection) {
        let socket = WebSocketConnection(upgraded: connection, configuration: webSocketConfiguration, delegate: self, logger: logger)
        sessions[ObjectIdentifier(socket)] = socket
        counters.accepted.add(1, ordering: .relaxed)
        counters.connections.add(1, ordering: .relaxed)
        logger.debug("activator connected", metadata: ["peer": "\(exchange.peerAddress.map { "\($0)" } ?? "?")"])
    }

    // MARK: WebSocket side

    func webSocket(_ socket: WebSocketConnection, didReceive message: WebSocketMessage) {
        switch message {
        case .binary(let bytes):
            let batch: Metrics_WireStatMessages
            do {
                batch = try Metrics_WireStatMessages(serializedBytes: bytes)
            } catch {
                drop("a binary message is not a protobuf WireStatMessages (\(bytes.count) bytes): \(error)")
                return
            }
            counters.batches.add(1, ordering: .relaxed)
            var delivered = 0
            for entry in batch.messages where entry.hasStat {
                // An entry without a stat is skipped, as Knative does (room for schema changes).
                sink(entry.namespace, entry.name, entry.stat)
                delivered += 1
            }
            counters.stats.add(delivered, ordering: .relaxed)
        case .text(let text):
            drop("a text message was sent (\(text.utf8.count) bytes); stats are binary protobuf WireStatMessages")
        }
    }

    private func drop(_ why: String) {
        counters.dropped.add(1, ordering: .relaxed)
        if let suppressed = warnings.shouldLog(now: loop.now) {
            var metadata: Logger.Metadata = [:]
            if suppressed > 0 { metadata["suppressed"] = "\(suppressed)" }
            logger.warning("dropped a stat message: \(why)", metadata: metadata)
        }
    }

    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {
        guard sessions.removeValue(forKey: ObjectIdentifier(socket)) != nil else { return }
        counters.connections.add(-1, ordering: .relaxed)
        if code != .normalClosure && code != .goingAway && !stopping {
            logger.info("activator connection closed", metadata: ["code": "\(code.rawValue)", "reason": "\(reason)"])
        }
        checkStopped()
    }

    // MARK: stop

    func beginStop(timeout: Duration, completion: @escaping () -> Void) {
        guard !stopping else { return }
        stopping = true
        stopCompletion = completion
        for socket in Array(sessions.values) {
            socket.close(code: configuration.shutdownCloseCode, reason: "Restarting")
        }
        stopTimer = loop.scheduleTimer(after: timeout) { [weak self] in
            guard let self else { return }
            self.stopTimer = nil
            for socket in Array(self.sessions.values) { socket.abort() }
            self.checkStopped()
        }
        checkStopped()
    }

    private func checkStopped() {
        guard stopping, sessions.isEmpty, let completion = stopCompletion else { return }
        stopCompletion = nil
        if let stopTimer { _ = loop.cancelTimer(stopTimer) }
        stopTimer = nil
        completion()
    }
}

/// At most one warning per interval; says how many were held back meanwhile.
struct RateLimitedWarnings {
    let interval: UInt64
    private var lastLogged: UInt64 = 0
    private var hasLogged = false
    private var suppressed = 0

    init(interval: UInt64) { self.interval = interval }

    /// nil: stay quiet; else log now, mentioning the returned count of suppressed warnings.
    mutating func shouldLog(now: UInt64) -> Int? {
        if hasLogged && now &- lastLogged < interval {
            suppressed += 1
            return nil
        }
        hasLogged = true
        lastLogged = now
        let count = suppressed
        suppressed = 0
        return count
    }
}
