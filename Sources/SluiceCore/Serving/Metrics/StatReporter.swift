// Serving layer (activator side): sends each tick's per-revision stats to the autoscaler as one binary
// WebSocket message (protobuf WireStatMessages), like Knative's activator over its durable connection:
// reconnects with bounded, jittered backoff, pings to detect a dead peer, drops (and counts) while down.
import Logging
import SwiftProtobuf

/// A stats endpoint URL that cannot be used.
public struct StatReporterConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where and how the activator reports.
public struct StatReporterConfiguration: Sendable {
    /// The endpoint as given (`ws://autoscaler.knative-serving:8080` in Knative).
    public let url: String
    public let host: String
    public let port: UInt16
    /// Request target of the handshake (`/` when the URL has no path).
    public let target: String
    /// Connect plus handshake, per attempt (Knative's dialer: 3 s).
    public var handshakeTimeout: Duration = .seconds(3)
    /// Keep-alive pings (Knative: three per pong timeout) and the silence after which the connection
    /// counts as broken (Knative's pong timeout: 10 s).
    public var pingInterval: Duration = .milliseconds(3333)
    public var readTimeout: Duration = .seconds(10)
    /// Reconnect backoff: first delay, growth factor, cap, and jitter (a delay grows by up to this
    /// fraction at random). Knative: 100 ms × 1.3 with jitter 0.5.
    public var initialBackoff: Duration = .milliseconds(100)
    public var backoffFactor = 1.3
    public var maxBackoff: Duration = .seconds(10)
    public var backoffJitter = 0.5
    /// Warnings about dropped batches are logged at most once per this interval.
    public var dropLogInterval: Duration = .seconds(10)

    /// Parses `ws://host[:port][/path]` (IPv6 hosts in brackets). `wss` is not supported.
    public init(url: String) throws(StatReporterConfigurationError) {
        self.url = url
        let prefix = "ws://"
        guard url.hasPrefix(prefix) else {
            throw StatReporterConfigurationError("stats endpoint \"\(url)\": only ws:// URLs are supported")
        }
        var rest = Substring(url.dropFirst(prefix.count))
        var path = "/"
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        var hostPart = rest
        var portText: Substring? = nil
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw StatReporterConfigurationError("stats endpoint \"\(url)\": unterminated IPv6 address")
            }
            hostPart = rest[rest.index(after: rest.startIndex) ..< close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw StatReporterConfigurationError("stats endpoint \"\(url)\": unexpected \"\(after)\" after the address")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            hostPart = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw StatReporterConfigurationError("stats endpoint \"\(url)\": no host") }
        host = String(hostPart)
        if let portText {
            guard let parsed = UInt16(portText), parsed > 0 else {
                throw StatReporterConfigurationError("stats endpoint \"\(url)\": port \"\(portText)\" is not a number in 1...65535")
            }
            port = parsed
        } else {
            port = 80
        }
        target = path
    }

    /// The Host header value.
    var hostHeader: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// What a reporter counted.
public struct StatReporterStatistics: Sendable, Equatable {
    /// Batches written to the connection, and the stats in them.
    public var sentBatches = 0
    public var sentStats = 0
    /// Batches (and stats) dropped because no connection was open or the send queue was full.
    public var droppedBatches = 0
    public var droppedStats = 0
    /// Handshakes that succeeded, and connections that ended (or attempts that failed).
    public var connects = 0
    public var disconnects = 0
}

/// The activator's durable connection to the autoscaler. Loop-bound: create and use it on `loop`.
public final class StatReporter: WebSocketDelegate {
    public let configuration: StatReporterConfiguration
    public let loop: EventLoop
    public private(set) var statistics = StatReporterStatistics()
    /// Knative's WithOnConnect / WithOnDisconnect: called on the loop when the connection opens or ends.
    public var onConnect: (() -> Void)?
    public var onDisconnect: ((_ reason: String) -> Void)?

    private let logger: Logger
    private let random: () -> UInt64
    private let resolve: (String, UInt16) -> SocketAddress?
    private var socket: WebSocketConnection?
    private var isOpen = false
    private var stopped = true
    private var reconnectTimer: TimerID?
    private var nextBackoff: Duration
    private var dropWarnings: RateLimitedWarnings
    private var encoded: [UInt8] = []

    /// `random` feeds the handshake keys, frame masks and backoff jitter; `resolve` turns the URL's host
    /// into an address on each attempt (the default accepts numeric addresses only).
    public init(configuration: StatReporterConfiguration, on loop: EventLoop,
                logger: Logger = Logger(label: "sluice.activator.statreporter"),
                random: @escaping () -> UInt64 = { UInt64.random(in: .min ... .max) },
                resolve: @escaping (String, UInt16) -> SocketAddress? = { host, port in try? SocketAddress(host: host, port: port) }) {
        self.configuration = configuration
        self.loop = loop
        self.logger = logger
        self.random = random
        self.resolve = resolve
        nextBackoff = configuration.initialBackoff
        dropWarnings = RateLimitedWarnings(interval: EventLoop.nanoseconds(configuration.dropLogInterval))
    }

    /// True while the WebSocket is open (Knative's activator readiness depends on it).
    public var isConnected: Bool { isOpen }

    /// Starts connecting (and keeps reconnecting until `stop`).
    public func start() {
        guard stopped else { return }
        stopped = false
        connect()
    }

    /// Sends one batch as a single binary message. While disconnected, or while the previous batches
    /// are still unsent (the peer does not read), the batch is dropped and counted, never buffered:
    /// stale stats are worth less than fresh ones. Returns whether it was written.
    @discardableResult
    public func send(_ messages: [Metrics_WireStatMessage]) -> Bool {
        guard !messages.isEmpty else { return true }
        guard isOpen, let socket, socket.isWritable else {
            dropped(messages.count, why: isOpen ? "the autoscaler is not reading (send queue full)" : "not connected to the autoscaler")
            return false
        }
        var batch = Metrics_WireStatMessages()
        batch.messages = messages
        do {
            encoded = try batch.serializedBytes()
        } catch {
            dropped(messages.count, why: "encoding failed: \(error)")
            return false
        }
        guard socket.send(binary: encoded) else {
            dropped(messages.count, why: "the connection is closing")
            return false
        }
        statistics.sentBatches += 1
        statistics.sentStats += messages.count
        return true
    }

    /// Stops for good: closes the connection with 1001 (going away) and cancels reconnects.
    public func stop() {
        stopped = true
        if let reconnectTimer { loop.cancelTimer(reconnectTimer) }
        reconnectTimer = nil
        socket?.close(code: .goingAway, reason: "activator shutting down")
    }

    // MARK: connection management

    private func connect() {
        guard !stopped, socket == nil else { return }
        guard let address = resolve(configuration.host, configuration.port) else {
            statistics.disconnects += 1
            logger.warning("cannot resolve the autoscaler's address", metadata: ["url": "\(configuration.url)"])
            scheduleReconnect()
            return
        }
        var ws = WebSocketConfiguration()
        ws.handshakeTimeout = configuration.handshakeTimeout
        ws.pingInterval = configuration.pingInterval
        ws.readTimeout = configuration.readTimeout
        ws.maxMessageBytes = 64 * 1024
        do {
            socket = try WebSocketConnection.connect(to: address, host: configuration.hostHeader, target: configuration.target,
                                                     on: loop, configuration: ws, random: random, delegate: self, logger: logger)
        } catch {
            statistics.disconnects += 1
            logger.warning("cannot open a socket to the autoscaler", metadata: ["url": "\(configuration.url)", "error": "\(error)"])
            scheduleReconnect()
        }
    }

    private func scheduleReconnect() {
        guard !stopped, reconnectTimer == nil else { return }
        let base = nextBackoff
        let fraction = Double(random() >> 11) / Double(UInt64(1) << 53)
        let delay = base + base * (configuration.backoffJitter * fraction)
        let grown = base * configuration.backoffFactor
        nextBackoff = grown > configuration.maxBackoff ? configuration.maxBackoff : grown
        reconnectTimer = loop.scheduleTimer(after: delay) { [weak self] in
            guard let self else { return }
            self.reconnectTimer = nil
            self.connect()
        }
    }

    private func dropped(_ count: Int, why: String) {
        statistics.droppedBatches += 1
        statistics.droppedStats += count
        if let suppressed = dropWarnings.shouldLog(now: loop.now) {
            logger.warning("autoscaler is not reachable from the activator; stats were not sent", metadata: [
                "reason": "\(why)", "stat_message_count": "\(count)", "suppressed": "\(suppressed)",
            ])
        }
    }

    // MARK: WebSocketDelegate

    public func webSocketDidOpen(_ socket: WebSocketConnection) {
        isOpen = true
        nextBackoff = configuration.initialBackoff
        statistics.connects += 1
        logger.info("autoscaler connection established", metadata: ["url": "\(configuration.url)"])
        onConnect?()
    }

    public func webSocket(_ socket: WebSocketConnection, didReceive message: WebSocketMessage) {
        // The autoscaler sends nothing on this connection; ignore anything it might.
    }

    public func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String) {
        guard socket === self.socket else { return }
        self.socket = nil
        let wasOpen = isOpen
        isOpen = false
        statistics.disconnects += 1
        if wasOpen {
            logger.warning("autoscaler connection lost; reconnecting", metadata: ["code": "\(code.rawValue)", "reason": "\(reason)"])
            onDisconnect?("\(code.rawValue) \(reason)")
        } else if !stopped {
            logger.debug("autoscaler connection attempt failed", metadata: ["reason": "\(reason)"])
        }
        scheduleReconnect()
    }
}
