// HTTPProxy layer: one client connection of the server — parses requests in place, runs the handler,
// forwards heads as slices of the received bytes (writev), streams bodies both ways with backpressure,
// answers errors, enforces timeouts, relays upgraded connections. One request at a time, in order.
import CEpoll

/// Where the current request stands on the client side.
enum RequestPhase: UInt8 {
    /// Waiting for the first byte of a head.
    case idle
    /// Part of a head arrived.
    case head
    /// The handler is deciding.
    case handling
    /// Suspended by the handler or waiting for an upstream connect: request bytes stay unread.
    case held
    /// Forwarding the request body upstream.
    case body
    /// Reading and dropping the request body after a local or early response.
    case discard
    /// The request was read completely; bytes after it wait for the next turn.
    case complete
    /// Upgraded: bytes are relayed verbatim.
    case tunnel
    /// Output shut down after a final response; input is dropped until EOF or the linger deadline.
    case linger
    case closed
    /// Answered 101 and handed to the handler's `takeOver`: this object no longer owns the connection.
    case handedOff
}

/// Where the current response stands.
enum ResponsePhase: UInt8 {
    case none
    case connecting
    /// The request head went upstream; no response head yet.
    case awaitingHead
    case body
    case complete
    case tunnel
}

/// How upstream body bytes are framed towards the client.
enum ResponseBodyMode: UInt8 {
    /// Forwarded as received (Content-Length, chunked, close-delimited to a closing client).
    case verbatim
    /// A close-delimited body re-framed as chunked for a keep-alive HTTP/1.1 client.
    case chunkify
    /// A chunked body sent as close-delimited payload to an HTTP/1.0 client.
    case dechunk
}

final class ServerConnection: ConnectionDelegate {
    /// Strong (unowned costs a runtime check per use); the loop drops the connection when it closes.
    let server: HTTPServerLoop
    let connection: Connection
    let exchange: HTTPExchange
    let loop: EventLoop
    /// Index in the loop's registry (swap-remove).
    var registryIndex = -1
    /// Links in one of the loop's IdleConnectionQueues (reclaimable under pressure; 0: in none).
    var reclaimQueue: UInt8 = 0
    var acceptedAt: UInt64 = 0
    var reclaimPrevious: ServerConnection?
    var reclaimNext: ServerConnection?
    /// Reclaimed while its last response was still being flushed: closes once it is sent.
    var isClosingForReclaim = false

    /// The peer's numeric host, for X-Forwarded-For / Forwarded.
    var peerHost: [UInt8] = []
    var peerIsIPv6 = false

    var requestPhase = RequestPhase.idle
    var responsePhase = ResponsePhase.none
    var requestDecoder: HTTPBodyDecoder
    var responseDecoder: HTTPBodyDecoder
    var responseMode = ResponseBodyMode.verbatim

    var upstream: UpstreamConnection?
    var upstreamTarget: HTTPUpstream?
    var pool: UpstreamPool?
    var connectAttempts = 0
    var reuseRetries = 0
    var writingHead = false
    var headWriteFailed = false
    /// The request body went upstream completely (so the upstream connection may be reused).
    var requestBodySent = false
    var upstreamFramingBroken = false

    /// The request is an allowed upgrade (bodiless GET with Connection: upgrade).
    var upgradeIndex = -1
    var tunnelClientEOF = false
    var tunnelUpstreamEOF = false

    /// The final response head was written to the client.
    var responseStarted = false
    var responseStatus = 0
    var closeAfterResponse = false
    var clientAborted = false
    var truncated = false
    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0
    /// Bytes of response heads (interim and final) within `bytesOut`.
    var responseHeadBytes: UInt64 = 0
    var requestBodyBytes: UInt64 = 0
    var discardBudget: UInt64 = 0
    var handlerInvolved = false
    var wasForwarded = false
    var inReceive = false
    var hasPendingInput = false
    var headBytesSeen = false

    // Deadlines (monotonic ns, 0 = off); the earliest is armed on the connection.
    var headDeadline: UInt64 = 0
    var idleDeadline: UInt64 = 0
    var bodyDeadline: UInt64 = 0
    var writeDeadline: UInt64 = 0
    var writeQueuedAtArm = 0
    var lingerDeadline: UInt64 = 0
    /// Lingering never lasts beyond this, however slowly the client keeps sending.
    var lingerEnd: UInt64 = 0
    var totalDeadline: UInt64 = 0
    var responseStartDeadline: UInt64 = 0
    var idleBetweenDeadline: UInt64 = 0
    var idleBetweenNanoseconds: UInt64 = 0
    /// The request timeouts last converted to nanoseconds, and the result (see `armRequestTimeouts`).
    var convertedTimeouts: (total: Duration?, responseStart: Duration?, idle: Duration?) = (nil, nil, nil)
    var timeoutNanoseconds: (total: UInt64?, responseStart: UInt64?, idle: UInt64) = (nil, nil, 0)
    var armedDeadline: UInt64 = 0

    // Reusable storage: steady-state requests allocate none of these.
    var slices: [IOSlice] = []
    var scratch: IOBuffer?
    var serialized: [UInt8] = []
    var forwardedForValues: [Range<Int>] = []

    var configuration: HTTPServerConfiguration { server.configuration }

    init(server: HTTPServerLoop, connection: Connection) {
        self.server = server
        self.connection = connection
        loop = connection.loop
        exchange = HTTPExchange(loop: connection.loop, limits: server.configuration.parserLimits)
        requestDecoder = HTTPBodyDecoder(framing: .none, limits: server.configuration.parserLimits)
        responseDecoder = HTTPBodyDecoder(framing: .none, limits: server.configuration.parserLimits)
        slices.reserveCapacity(24)
        serialized.reserveCapacity(512)
        forwardedForValues.reserveCapacity(4)
        exchange.owner = self
        if let address = connection.remoteAddress {
            peerHost = Array(address.host.utf8)
            peerIsIPv6 = address.family == AF_INET6
            exchange.peerAddress = address
        }
        // The first head must arrive within the head timeout from the connection's start (Go's
        // ReadHeaderTimeout); a silent connection is closed without a response.
        headDeadline = loop.now &+ server.headTimeoutNanoseconds
        rearm()
    }

    // MARK: client input

    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        inReceive = true
        defer { inReceive = false }
        var offset = range.lowerBound
        let end = range.upperBound
        receive: while offset < end {
            switch requestPhase {
            case .idle, .head:
                if !connection.isWritable {
                    // The previous response is still queued above the watermark: read no further.
                    connection.pauseReading()
                    hasPendingInput = true
                    break receive
                }
                if requestPhase == .idle {
                    requestPhase = .head
                    headBytesSeen = true
                    idleDeadline = 0
                    if headDeadline == 0 { headDeadline = loop.now &+ server.headTimeoutNanoseconds }
                    rearm()
                }
                let result = buffer.withSpan(offset ..< end) { exchange.requestHead.parseRequest($0) }
                switch result {
                case .incomplete:
                    break receive
                case .error(let error, _):
                    bytesIn &+= UInt64(end - offset)
                    offset = end
                    failRequest(status: error.httpStatus, message: error.reason)
                case .complete(let length):
                    offset += length
                    offset += headComplete(buffer: buffer, headStart: offset - length, available: offset ..< end)
                }
            case .body:
                let consumed = forwardRequestBody(buffer: buffer, range: offset ..< end)
                offset += consumed
                if consumed == 0 && requestPhase == .body { break receive }
            case .discard:
                offset += discardRequestBody(buffer: buffer, range: offset ..< end)
            case .tunnel:
                guard let upstream else {
                    offset = end
                    break
                }
                bytesIn &+= UInt64(end - offset)
                upstream.connection.write(buffer.slice(offset ..< end))
                offset = end
                if self.upstream != nil, !upstream.connection.isWritable { connection.pauseReading() }
            case .linger:
                // Discarding after a final response: each read extends the wait, up to the total cap.
                offset = end
                lingerDeadline = min(loop.now &+ server.lingerTimeoutNanoseconds, lingerEnd)
                rearm()
            case .closed:
                offset = end
            case .handedOff:
                // The rest belongs to the connection's new delegate.
                return offset - range.lowerBound
            case .handling, .held, .complete:
                // Bytes of the next request (pipelining) or of a held request: kept, read again later.
                hasPendingInput = true
                if end - offset > Self.pendingInputLimit { connection.pauseReading() }
                break receive
            }
            if requestPhase == .closed { return end - range.lowerBound }
        }
        return offset - range.lowerBound
    }

    /// Unconsumed input kept while a request is in progress before reading pauses.
    static let pendingInputLimit = 8 * 1024

    func connectionDidReadEOF(_ connection: Connection) {
        switch requestPhase {
        case .tunnel:
            tunnelClientEOF = true
            if tunnelUpstreamEOF || upstream == nil { closeTunnel() } else { upstream?.connection.shutdownOutput() }
        case .idle, .head, .linger, .closed:
            connection.close()
        case .complete where responsePhase == .complete:
            connection.close()
        default:
            // Go's server cancels the request context when the client's side reads EOF; so do we.
            abortExchange(reason: .clientGone)
            connection.close()
        }
    }

    func connectionWritabilityChanged(_ connection: Connection) {
        if connection.isWritable {
            writeDeadline = 0
            rearm()
            if let upstream, responsePhase == .body || responsePhase == .tunnel {
                upstream.connection.resumeReading()
            } else if requestPhase == .idle || requestPhase == .head {
                resumeInput()
            }
        } else {
            writeDeadline = loop.now &+ server.writeTimeoutNanoseconds
            writeQueuedAtArm = connection.queuedBytes
            rearm()
        }
    }

    func connectionDeadlineExpired(_ connection: Connection) {
        armedDeadline = 0
        let now = loop.now
        if lingerDeadline != 0 && now >= lingerDeadline {
            connection.close()
            return
        }
        if writeDeadline != 0 && now >= writeDeadline {
            if connection.queuedBytes < writeQueuedAtArm {
                // Progress since the deadline was armed: the client is slow, not stuck.
                writeQueuedAtArm = connection.queuedBytes
                writeDeadline = now &+ server.writeTimeoutNanoseconds
            } else {
                abortExchange(reason: .timedOut)
                connection.close(error: .timedOut)
                return
            }
        }
        if headDeadline != 0 && now >= headDeadline {
            headDeadline = 0
            if headBytesSeen && requestPhase == .head {
                failRequest(status: 408, message: "request head timeout")
            } else {
                connection.close(error: .timedOut)
            }
            return
        }
        if idleDeadline != 0 && now >= idleDeadline {
            connection.close(error: .timedOut)
            return
        }
        if bodyDeadline != 0 && now >= bodyDeadline {
            bodyDeadline = 0
            if responseStarted {
                abortExchange(reason: .timedOut)
                connection.close(error: .timedOut)
            } else {
                closeUpstream()
                finishWithLocalError(status: 408, message: "request body timeout", cancel: .timedOut)
            }
            return
        }
        if (totalDeadline != 0 && now >= totalDeadline) || (responseStartDeadline != 0 && now >= responseStartDeadline)
            || (idleBetweenDeadline != 0 && now >= idleBetweenDeadline) {
            requestTimedOut()
            return
        }
        rearm()
    }

    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        let wasActive = requestPhase != .idle && requestPhase != .head && requestPhase != .linger && requestPhase != .closed
        requestPhase = .closed
        if wasActive && handlerInvolved {
            abortExchange(reason: error == .loopShutdown ? .shutdown : .clientGone)
        } else {
            closeUpstream()
        }
        exchange.end()
        var scratch = self.scratch.take()
        loop.bufferPool.recycle(&scratch)
        slices.removeAll()
        exchange.owner = nil
        server.connectionClosed(self)
    }

    // MARK: request head

    /// A head is complete at `buffer[headStart...]`; `available` are the bytes after it in this read.
    /// Returns how many of them were consumed (body bytes sent along with the head).
    func headComplete(buffer: IOBuffer, headStart: Int, available: Range<Int>) -> Int {
        headDeadline = 0
        server.connectionBecameBusy(self)
        exchange.begin(buffer: buffer, headStart: headStart, now: loop.now, defaults: server.defaultTimeouts)
        // The facts needed here, read in place: copying the whole HTTPHead (field array included)
        // per request costs an outlined copy, a retain and a release.
        let method = exchange.requestHead.method
        let framing = exchange.requestHead.framing
        bytesIn = UInt64(exchange.requestHead.headLength)
        requestBodyBytes = 0
        requestPhase = .handling
        responsePhase = .none
        responseStarted = false
        responseStatus = 0
        clientAborted = false
        truncated = false
        bytesOut = 0
        responseHeadBytes = 0
        requestBodySent = false
        upstreamFramingBroken = false
        connectAttempts = 0
        reuseRetries = 0
        upgradeIndex = -1
        wasForwarded = false
        closeAfterResponse = !exchange.requestHead.keepAlive || server.isDraining
        requestDecoder.reset(framing: framing)
        rearm()

        // Requests the server answers itself, before any handler sees them.
        if method == .connect {
            closeAfterResponse = true
            return respondWithoutHandler(status: 405, message: "CONNECT is not supported", available: available)
        }
        if method == .trace {
            return respondWithoutHandler(status: 405, message: "TRACE is not supported", available: available)
        }
        if method == .options, let consumed = applyMaxForwards(available: available) {
            return consumed
        }
        if exchange.requestHead.hasUnsupportedExpectation {
            return respondWithoutHandler(status: 417, message: "unsupported expectation", available: available)
        }
        if let limit = configuration.maxRequestBodyBytes, case .contentLength(let length) = framing, length > limit {
            return respondWithoutHandler(status: 413, message: "request body too large", available: available)
        }
        if exchange.requestHead.hasUpgrade && exchange.requestHead.connectionUpgrade && method == .get && framing == .none {
            upgradeIndex = allowedUpgradeIndex()
        }

        handlerInvolved = true
        let decision = server.handler.handleRequest(exchange)
        if requestPhase == .closed { return available.count }
        return apply(decision, available: available, buffer: buffer)
    }

    func allowedUpgradeIndex() -> Int {
        guard let field = exchange.head.firstField(.upgrade) else { return -1 }
        for (index, name) in server.allowedUpgradeBytes.enumerated()
        where exchange.value(of: field, equals: name, caseInsensitive: true) {
            return index
        }
        return -1
    }

    func apply(_ decision: HTTPHandlerDecision, available: Range<Int>?, buffer: IOBuffer?) -> Int {
        switch decision {
        case .respond(let response):
            return respondLocally(response, available: available, buffer: buffer)
        case .forward(let target):
            return startForward(to: target, available: available, buffer: buffer)
        case .suspend:
            exchange.isSuspended = true
            requestPhase = .held
            armRequestTimeouts()
            return 0
        case .switchProtocols(let response):
            return switchProtocols(response, available: available, buffer: buffer)
        }
    }

    /// Writes the handler's 101 and hands the connection over (see `HTTPHandlerDecision.switchProtocols`).
    /// Consumes none of `available`: those bytes belong to the new protocol.
    func switchProtocols(_ response: HTTPLocalResponse, available: Range<Int>?, buffer: IOBuffer?) -> Int {
        let head = exchange.head
        guard response.status == 101, head.hasUpgrade, head.connectionUpgrade, head.method == .get,
              head.framing == .none || head.framing == .contentLength(0), head.version == .http11, !server.isDraining else {
            closeAfterResponse = true
            let refusal: HTTPLocalResponse = server.isDraining
                ? .text(503, "server is shutting down")
                : .text(500, "the handler switched protocols on a request that cannot be upgraded")
            return respondLocally(refusal, available: available, buffer: buffer)
        }
        closeAfterResponse = false
        writeLocalResponse(response)
        guard connection.isOpen else { return available?.count ?? 0 }
        responsePhase = .complete
        requestPhase = .handedOff
        finishHandlerRequest()
        headDeadline = 0
        idleDeadline = 0
        bodyDeadline = 0
        writeDeadline = 0
        totalDeadline = 0
        responseStartDeadline = 0
        idleBetweenDeadline = 0
        lingerDeadline = 0
        rearm()
        server.handler.takeOver(exchange, connection: connection)
        exchange.end()
        exchange.owner = nil
        var scratch = self.scratch.take()
        loop.bufferPool.recycle(&scratch)
        server.connectionClosed(self)
        if connection.delegate === self {
            connection.close()
        } else if let available, !available.isEmpty {
            // Offer the bytes after the head to the new delegate on the next turn.
            connection.pauseReading()
            connection.resumeReading()
        }
        return 0
    }

    /// A suspended request resumes (from `HTTPExchangeTicket.resume`, on the loop).
    func resume(_ decision: HTTPHandlerDecision) {
        guard requestPhase == .held else { return }
        _ = apply(decision, available: nil, buffer: nil)
        redeliverInput()
    }

    // MARK: drain

    /// Drain started: idle connections close now; busy ones close after their response.
    func beginDrain() {
        switch requestPhase {
        case .idle where reclaimQueue == IdleConnectionQueue.headWaiting:
            // Accepted but no request read yet: it may be in the socket already, and closing now would
            // reset it. It gets a short while to arrive (answered with Connection: close), else closes.
            let grace = loop.now &+ HTTPServerLoop.drainHeadGraceNanoseconds
            headDeadline = headDeadline == 0 ? grace : min(headDeadline, grace)
            rearm()
        case .idle:
            connection.close()
        case .linger, .closed, .tunnel, .handedOff:
            break
        default:
            closeAfterResponse = true
        }
    }

    /// Closed to make room near the connection limit: idle or mid-head, so nothing is answered; a
    /// response still queued is flushed first. True if the connection closed at once.
    func reclaim() -> Bool {
        requestPhase = .closed
        connection.closeAfterFlush()
        if connection.isOpen { isClosingForReclaim = true }
        return !isClosingForReclaim
    }

    /// The drain deadline passed: end whatever is left.
    func forceClose() {
        if handlerInvolved { abortExchange(reason: .shutdown) }
        connection.close()
    }

    // MARK: input helpers

    func resumeInput() {
        if connection.isReadingPaused { connection.resumeReading() }
    }

    /// Offers the bytes the connection still holds again (pipelined requests, held bodies).
    func redeliverInput() {
        guard connection.isOpen else { return }
        if !connection.isReadingPaused { connection.pauseReading() }
        connection.resumeReading()
    }

    /// A scratch buffer with at least `minimumFree` bytes free. Bytes already written to it are never
    /// rewritten while a queued slice may reference them (append-only until it is uniquely held).
    func scratchBuffer(minimumFree: Int) -> IOBuffer {
        if scratch != nil, isKnownUniquelyReferenced(&scratch!), let buffer = scratch, buffer.capacity >= minimumFree {
            if buffer.freeCapacity < minimumFree { buffer.clear() }
            return buffer
        }
        if let buffer = scratch, buffer.freeCapacity >= minimumFree { return buffer }
        // Moved out before it is released or replaced: no release happens inside an access to
        // `scratch`, so its accesses need no dynamic exclusivity checks.
        var old = scratch.take()
        loop.bufferPool.recycle(&old)
        let buffer = minimumFree <= loop.bufferPool.bufferSize ? loop.bufferPool.take() : IOBuffer(capacity: minimumFree)
        var previous: IOBuffer? = buffer
        swap(&previous, &scratch)
        return buffer
    }

    func appendHex(_ value: Int, to out: IOBuffer) {
        var digits = 0
        var v = value
        repeat { digits += 1; v >>= 4 } while v > 0
        var shift = (digits - 1) * 4
        while shift >= 0 {
            let nibble = UInt8((value >> shift) & 0xF)
            out.append(CollectionOfOne(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10))
            shift -= 4
        }
    }

    // MARK: constant bytes

    static let crlf: [UInt8] = [0x0D, 0x0A]
    static let commaSpace: [UInt8] = Array(", ".utf8)
    static let hostPrefix: [UInt8] = Array("Host: ".utf8)
    static let xForwardedForPrefix: [UInt8] = Array("X-Forwarded-For: ".utf8)
    static let xForwardedProtoPrefix: [UInt8] = Array("X-Forwarded-Proto: ".utf8)
    static let forwardedPrefix: [UInt8] = Array("Forwarded: for=".utf8)
    static let connectionUpgrade: [UInt8] = Array("Connection: upgrade\r\n".utf8)
    static let upgradePrefix: [UInt8] = Array("Upgrade: ".utf8)
    static let connectionClose: [UInt8] = Array("Connection: close\r\n".utf8)
    static let connectionKeepAlive: [UInt8] = Array("Connection: keep-alive\r\n".utf8)
    static let transferEncodingChunked: [UInt8] = Array("Transfer-Encoding: chunked\r\n".utf8)
    static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)
    static let xForwardedFor = HTTPFieldName("x-forwarded-for")
    static let xForwardedProto = HTTPFieldName("x-forwarded-proto")

    /// A CRLF slice in `out` (appended once per call; chunk endings are tiny).
    static func crlfSlice(_ out: IOBuffer) -> IOSlice {
        let start = out.count
        out.append(crlf)
        return out.slice(start ..< out.count)
    }
}

extension HTTPBodyDecoder {
    /// Between chunks of a chunked body (a text chunk and the last chunk may be appended).
    var isAtChunkBoundary: Bool { state == .sizeStart }
    /// The body runs to the connection's end.
    var isCloseDelimited: Bool { state == .closeDelimited }
}
