// HTTPProxy layer (WebSocket, RFC 6455): one WebSocket connection on a loop, at either end — the client's
// opening handshake, frames in (WebSocketFrameReader) and out, ping/pong, keep-alive pings, the close
// handshake with its timeout, and failing the connection with the right close code.
import Logging

/// Limits and timers of a WebSocket connection.
public struct WebSocketConfiguration: Sendable {
    /// A data message longer than this fails the connection with 1009.
    public var maxMessageBytes = 1 << 20
    /// After our close frame, how long to wait for the peer's close (or its TCP close) before closing.
    public var closeTimeout: Duration = .seconds(5)
    /// Client: the connect and the opening handshake must finish within this.
    public var handshakeTimeout: Duration = .seconds(3)
    /// Send a ping this often (nil: never). Knative's durable connection pings every 10/3 s.
    public var pingInterval: Duration? = nil
    /// Close when no byte (frame or pong) arrived for this long (nil: never). Knative: 10 s.
    public var readTimeout: Duration? = nil

    public init() {}
}

/// What a WebSocket connection tells its owner. All calls come on the connection's loop.
public protocol WebSocketDelegate: AnyObject {
    /// Client: the server accepted the handshake. Default: nothing.
    func webSocketDidOpen(_ socket: WebSocketConnection)
    /// A complete text or binary message.
    func webSocket(_ socket: WebSocketConnection, didReceive message: WebSocketMessage)
    /// A pong (the answer to our ping, or an unsolicited one). Default: nothing.
    func webSocket(_ socket: WebSocketConnection, didReceivePong payload: [UInt8])
    /// The connection is over; called exactly once, then the delegate is dropped. `code` is the peer's
    /// close code, the code we failed the connection with, 1005 for a close frame without one, or 1006
    /// when the connection ended without a close handshake (or the client's handshake failed).
    func webSocketDidClose(_ socket: WebSocketConnection, code: WebSocketCloseCode, reason: String)
}

extension WebSocketDelegate {
    public func webSocketDidOpen(_ socket: WebSocketConnection) {}
    public func webSocket(_ socket: WebSocketConnection, didReceivePong payload: [UInt8]) {}
}

/// A WebSocket connection bound to one loop (not Sendable: use it only on `loop`).
public final class WebSocketConnection: ConnectionDelegate {
    public enum State: Sendable, Equatable {
        /// Client: connecting or waiting for the 101.
        case connecting
        case open
        /// A close frame was sent or received; no more data is sent.
        case closing
        case closed
    }

    public let role: WebSocketRole
    public let loop: EventLoop
    public let configuration: WebSocketConfiguration
    public private(set) var state: State
    public var delegate: (any WebSocketDelegate)?
    /// The TCP connection (nil once closed).
    public private(set) var connection: Connection?

    private var reader: WebSocketFrameReader
    private let random: () -> UInt64
    private let logger: Logger
    private var frame: [UInt8] = []

    // Client handshake.
    private var handshakeKey = ""
    private var responseHead = HTTPHead()

    private var closeSent = false
    private var closeReceived = false
    private var closeCode = WebSocketCloseCode.abnormalClosure
    private var closeReason = ""
    private var reported = false

    // Deadlines (loop-clock ns, 0 = off); the earliest is armed on the connection.
    private var handshakeDeadline: UInt64 = 0
    private var closeDeadline: UInt64 = 0
    private var nextPing: UInt64 = 0
    private var lastReceive: UInt64 = 0
    private let pingNanoseconds: UInt64
    private let readTimeoutNanoseconds: UInt64

    private init(role: WebSocketRole, loop: EventLoop, configuration: WebSocketConfiguration, state: State,
                 random: @escaping () -> UInt64, logger: Logger) {
        self.role = role
        self.loop = loop
        self.configuration = configuration
        self.state = state
        self.random = random
        self.logger = logger
        reader = WebSocketFrameReader(role: role, maxMessageBytes: configuration.maxMessageBytes)
        pingNanoseconds = configuration.pingInterval.map { EventLoop.nanoseconds($0) } ?? 0
        readTimeoutNanoseconds = configuration.readTimeout.map { EventLoop.nanoseconds($0) } ?? 0
        frame.reserveCapacity(256)
    }

    /// Server side: runs the protocol on `connection`, whose handshake was just answered with 101
    /// (from `HTTPHandler.takeOver`). Becomes the connection's delegate. Call on the connection's loop.
    public convenience init(upgraded connection: Connection, configuration: WebSocketConfiguration = WebSocketConfiguration(),
                            delegate: any WebSocketDelegate, logger: Logger = Logger(label: "sluice.websocket")) {
        self.init(role: .server, loop: connection.loop, configuration: configuration, state: .open,
                  random: { 0 }, logger: logger)
        self.delegate = delegate
        self.connection = connection
        connection.delegate = self
        lastReceive = loop.now
        if pingNanoseconds != 0 { nextPing = loop.now &+ pingNanoseconds }
        rearm()
    }

    /// Client side: connects to `address`, sends the opening handshake for `target` with `Host: host`,
    /// and reports `webSocketDidOpen` after a valid 101 (or `webSocketDidClose` with 1006 and the
    /// reason). `random` makes the key and the masks. Call on `loop`. Throws only when no socket can
    /// be created.
    public static func connect(
        to address: SocketAddress, host: String, target: String = "/", on loop: EventLoop,
        configuration: WebSocketConfiguration = WebSocketConfiguration(),
        extraFields: [(name: String, value: String)] = [],
        random: @escaping () -> UInt64, delegate: any WebSocketDelegate,
        logger: Logger = Logger(label: "sluice.websocket")
    ) throws(SyscallError) -> WebSocketConnection {
        let socket = WebSocketConnection(role: .client, loop: loop, configuration: configuration, state: .connecting,
                                         random: random, logger: logger)
        socket.delegate = delegate
        socket.handshakeKey = WebSocketHandshake.makeKey(random: random)
        let request: [UInt8]
        do {
            request = try WebSocketHandshake.requestHead(host: host, target: target, key: socket.handshakeKey, extraFields: extraFields)
        } catch {
            // Reported like a failed connect, on the next turn, so the caller never sees a callback
            // from inside `connect`.
            socket.closeReason = "invalid handshake request (host \"\(host)\", target \"\(target)\"): \(error)"
            socket.state = .closed
            let box = UncheckedBox(socket)
            _ = loop.execute { box.value.report() }
            return socket
        }
        let connection = try Connector.connect(to: address, on: loop, timeout: configuration.handshakeTimeout, delegate: socket)
        socket.connection = connection
        socket.handshakeDeadline = loop.now &+ EventLoop.nanoseconds(configuration.handshakeTimeout)
        connection.write(IOBuffer(bytes: request).written)
        return socket
    }

    // MARK: sending

    /// Whether the TCP send queue is below its high watermark (false: the peer is not reading).
    public var isWritable: Bool { connection?.isWritable ?? false }

    /// Sends one message in a single frame. False (nothing sent) unless the connection is open.
    @discardableResult
    public func send(_ message: WebSocketMessage) -> Bool {
        guard state == .open else { return false }
        switch message {
        case .text(let text): sendFrame(.text, Array(text.utf8))
        case .binary(let bytes): sendFrame(.binary, bytes)
        }
        return true
    }

    /// Sends a binary message (e.g. an encoded protobuf batch).
    @discardableResult
    public func send(binary bytes: [UInt8]) -> Bool {
        guard state == .open else { return false }
        sendFrame(.binary, bytes)
        return true
    }

    /// Sends a ping (payload up to 125 bytes; longer is cut).
    public func sendPing(_ payload: [UInt8] = []) {
        guard state == .open else { return }
        sendFrame(.ping, Array(payload.prefix(125)))
    }

    /// Starts the close handshake: sends a close frame with `code` and `reason`, then waits up to
    /// `closeTimeout` for the peer's close. A client still handshaking just disconnects.
    public func close(code: WebSocketCloseCode = .normalClosure, reason: String = "") {
        switch state {
        case .connecting:
            closeCode = code
            closeReason = reason
            connection?.close()
        case .open:
            closeCode = code
            closeReason = reason
            sendClose(code: code, reason: reason)
            state = .closing
            closeDeadline = loop.now &+ EventLoop.nanoseconds(configuration.closeTimeout)
            rearm()
        case .closing, .closed:
            break
        }
    }

    /// Closes the TCP connection now, without a close handshake (reported as 1006).
    public func abort() {
        connection?.close()
    }

    private func sendFrame(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        guard let connection else { return }
        frame.removeAll(keepingCapacity: frame.capacity <= 64 * 1024)
        let maskKey: UInt32? = role == .client ? UInt32(truncatingIfNeeded: random()) : nil
        WebSocketFrameWriter.appendFrame(opcode: opcode, payload: payload, maskKey: maskKey, to: &frame)
        if frame.count <= loop.bufferPool.bufferSize {
            var buffer: IOBuffer? = loop.bufferPool.take()
            if let out = buffer, out.append(frame) != nil {
                connection.write(out.written)
            }
            // Back to the pool when the kernel took everything; else the queued slice keeps it alive.
            loop.bufferPool.recycle(&buffer)
        } else {
            connection.write(IOBuffer(bytes: frame).written)
        }
    }

    private func sendClose(code: WebSocketCloseCode?, reason: String) {
        guard !closeSent else { return }
        closeSent = true
        sendFrame(.close, code.map { WebSocketFrameWriter.closePayload(code: $0, reason: reason) } ?? [])
    }

    // MARK: ConnectionDelegate

    public func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        lastReceive = loop.now
        var offset = range.lowerBound
        let end = range.upperBound
        if state == .connecting {
            let result = buffer.withSpan(offset ..< end) { responseHead.parseResponse($0, requestMethod: .get) }
            switch result {
            case .incomplete:
                return 0
            case .error(let error, _):
                failHandshake("invalid handshake response: \(error.reason)")
                return range.count
            case .complete(let length):
                let problem = buffer.withSpan(offset ..< offset + length) {
                    WebSocketHandshake.validateResponse(responseHead, in: $0, key: handshakeKey)
                }
                if let problem {
                    failHandshake(problem)
                    return range.count
                }
                offset += length
                state = .open
                handshakeDeadline = 0
                if pingNanoseconds != 0 { nextPing = loop.now &+ pingNanoseconds }
                rearm()
                delegate?.webSocketDidOpen(self)
                guard state == .open, self.connection != nil else { return range.count }
            }
        }
        while offset < end {
            if state == .closed || (closeReceived && closeSent) || reader.hasFailed {
                // Nothing after the close handshake (or a failure) is read.
                return range.count
            }
            let result = buffer.withSpan(offset ..< end) { reader.read($0) }
            switch result {
            case .needMore(let consumed):
                return offset + consumed - range.lowerBound
            case .event(let event, let consumed):
                offset += consumed
                handle(event)
            case .failure(let error):
                fail(error)
                return range.count
            }
        }
        return offset - range.lowerBound
    }

    private func handle(_ event: WebSocketEvent) {
        switch event {
        case .message(let message):
            // Data after the peer's close never arrives (the reader stops there); data after ours is
            // still delivered: the peer may have sent it before seeing our close.
            delegate?.webSocket(self, didReceive: message)
        case .ping(let payload):
            if state == .open { sendFrame(.pong, payload) }
        case .pong(let payload):
            delegate?.webSocket(self, didReceivePong: payload)
        case .close(let code, let reason):
            closeReceived = true
            if !closeSent {
                // Echo the peer's code (RFC 6455 §5.5.1); a close without one is answered without one.
                closeCode = code ?? .noStatusReceived
                closeReason = reason
                sendClose(code: code, reason: reason)
                state = .closing
            }
            guard let connection else { return }
            if role == .server {
                // The server closes the TCP connection first (RFC 6455 §7.1.1).
                connection.closeAfterFlush()
            } else {
                connection.shutdownOutput()
                closeDeadline = loop.now &+ EventLoop.nanoseconds(configuration.closeTimeout)
                rearm()
            }
        }
    }

    /// _Fail the WebSocket Connection_ (RFC 6455 §7.1.7): our close frame with the code, then no more
    /// reading; output is shut down and the TCP connection closes at the peer's EOF or the close timeout.
    private func fail(_ error: WebSocketProtocolError) {
        logger.debug("websocket protocol error; closing", metadata: ["code": "\(error.code.rawValue)", "reason": "\(error.reason)"])
        closeCode = error.code
        closeReason = error.reason
        sendClose(code: error.code, reason: error.reason)
        state = .closing
        connection?.shutdownOutput()
        closeDeadline = loop.now &+ EventLoop.nanoseconds(configuration.closeTimeout)
        rearm()
    }

    private func failHandshake(_ reason: String) {
        closeCode = .abnormalClosure
        closeReason = "WebSocket handshake failed: \(reason)"
        connection?.close()
    }

    public func connectionDidConnect(_ connection: Connection) {
        // The connect timeout is over; from here the handshake deadline runs.
        rearm()
    }

    public func connectionDidReadEOF(_ connection: Connection) {
        if state == .connecting {
            failHandshake("the server closed the connection before answering")
            return
        }
        if !closeReceived && !closeSent {
            closeCode = .abnormalClosure
            closeReason = "connection closed without a close frame"
        }
        connection.close()
    }

    public func connectionDeadlineExpired(_ connection: Connection) {
        let now = loop.now
        if handshakeDeadline != 0 && now >= handshakeDeadline {
            failHandshake("no 101 within \(configuration.handshakeTimeout)")
            return
        }
        if closeDeadline != 0 && now >= closeDeadline {
            connection.close()
            return
        }
        if readTimeoutNanoseconds != 0 && state == .open && now >= lastReceive &+ readTimeoutNanoseconds {
            closeCode = .abnormalClosure
            closeReason = "nothing received for \(configuration.readTimeout ?? .zero)"
            connection.close()
            return
        }
        if nextPing != 0 && now >= nextPing {
            sendPing()
            nextPing = now &+ pingNanoseconds
        }
        rearm()
    }

    public func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        if state == .connecting && closeReason.isEmpty {
            closeReason = "WebSocket connection failed: \(error.map { "\($0)" } ?? "closed")"
        } else if let error, !closeReceived, closeCode == .abnormalClosure, closeReason.isEmpty {
            closeReason = "\(error)"
        }
        state = .closed
        self.connection = nil
        report()
    }

    private func report() {
        guard !reported else { return }
        reported = true
        state = .closed
        let delegate = self.delegate
        self.delegate = nil
        delegate?.webSocketDidClose(self, code: closeCode, reason: closeReason)
    }

    private func rearm() {
        guard let connection else { return }
        var next = UInt64.max
        if handshakeDeadline != 0 { next = min(next, handshakeDeadline) }
        if closeDeadline != 0 { next = min(next, closeDeadline) }
        if state == .open {
            if nextPing != 0 { next = min(next, nextPing) }
            if readTimeoutNanoseconds != 0 { next = min(next, lastReceive &+ readTimeoutNanoseconds) }
        }
        connection.setDeadline(at: next == .max ? 0 : next)
    }
}
