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

    /// The peer's numeric host, for X-Forwarded-For / Forwarded.
    private var peerHost: [UInt8] = []
    private var peerIsIPv6 = false

    var requestPhase = RequestPhase.idle
    var responsePhase = ResponsePhase.none
    private var requestDecoder: HTTPBodyDecoder
    private var responseDecoder: HTTPBodyDecoder
    private var responseMode = ResponseBodyMode.verbatim

    private(set) var upstream: UpstreamConnection?
    private var upstreamTarget: HTTPUpstream?
    private var pool: UpstreamPool?
    private var connectAttempts = 0
    private var reuseRetries = 0
    private var writingHead = false
    private var headWriteFailed = false
    /// The request body went upstream completely (so the upstream connection may be reused).
    private var requestBodySent = false
    private var upstreamFramingBroken = false

    /// The request is an allowed upgrade (bodiless GET with Connection: upgrade).
    private var upgradeIndex = -1
    private var tunnelClientEOF = false
    private var tunnelUpstreamEOF = false

    /// The final response head was written to the client.
    private var responseStarted = false
    private var responseStatus = 0
    private var closeAfterResponse = false
    private var clientAborted = false
    private var truncated = false
    private var bytesIn: UInt64 = 0
    private var bytesOut: UInt64 = 0
    /// Bytes of response heads (interim and final) within `bytesOut`.
    private var responseHeadBytes: UInt64 = 0
    private var requestBodyBytes: UInt64 = 0
    private var discardBudget: UInt64 = 0
    private var handlerInvolved = false
    private var wasForwarded = false
    private var inReceive = false
    private var hasPendingInput = false
    private var headBytesSeen = false

    // Deadlines (monotonic ns, 0 = off); the earliest is armed on the connection.
    private var headDeadline: UInt64 = 0
    private var idleDeadline: UInt64 = 0
    private var bodyDeadline: UInt64 = 0
    private var writeDeadline: UInt64 = 0
    private var writeQueuedAtArm = 0
    private var lingerDeadline: UInt64 = 0
    private var totalDeadline: UInt64 = 0
    private var responseStartDeadline: UInt64 = 0
    private var idleBetweenDeadline: UInt64 = 0
    private var idleBetweenNanoseconds: UInt64 = 0
    private var armedDeadline: UInt64 = 0

    // Reusable storage: steady-state requests allocate none of these.
    private var slices: [IOSlice] = []
    private var scratch: IOBuffer?
    private var serialized: [UInt8] = []
    private var forwardedForValues: [Range<Int>] = []

    private var configuration: HTTPServerConfiguration { server.configuration }

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
                let result = buffer.withSpan(offset ..< end) { exchange.head.parseRequest($0) }
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
            case .linger, .closed:
                offset = end
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
        var scratch = self.scratch
        self.scratch = nil
        loop.bufferPool.recycle(&scratch)
        slices.removeAll()
        exchange.owner = nil
        server.connectionClosed(self)
    }

    // MARK: request head

    /// A head is complete at `buffer[headStart...]`; `available` are the bytes after it in this read.
    /// Returns how many of them were consumed (body bytes sent along with the head).
    private func headComplete(buffer: IOBuffer, headStart: Int, available: Range<Int>) -> Int {
        headDeadline = 0
        let head = exchange.head
        exchange.begin(buffer: buffer, headStart: headStart, now: loop.now, defaults: server.defaultTimeouts)
        bytesIn = UInt64(head.headLength)
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
        closeAfterResponse = !head.keepAlive || server.isDraining
        requestDecoder.reset(framing: head.framing)
        rearm()

        // Requests the server answers itself, before any handler sees them.
        if head.method == .connect {
            closeAfterResponse = true
            return respondWithoutHandler(status: 405, message: "CONNECT is not supported", available: available)
        }
        if head.method == .trace {
            return respondWithoutHandler(status: 405, message: "TRACE is not supported", available: available)
        }
        if head.hasUnsupportedExpectation {
            return respondWithoutHandler(status: 417, message: "unsupported expectation", available: available)
        }
        if let limit = configuration.maxRequestBodyBytes, case .contentLength(let length) = head.framing, length > limit {
            return respondWithoutHandler(status: 413, message: "request body too large", available: available)
        }
        if head.hasUpgrade && head.connectionUpgrade && head.method == .get && head.framing == .none {
            upgradeIndex = allowedUpgradeIndex()
        }

        handlerInvolved = true
        let decision = server.handler.handleRequest(exchange)
        if requestPhase == .closed { return available.count }
        return apply(decision, available: available, buffer: buffer)
    }

    private func allowedUpgradeIndex() -> Int {
        guard let field = exchange.head.firstField(.upgrade) else { return -1 }
        for (index, name) in server.allowedUpgradeBytes.enumerated()
        where exchange.value(of: field, equals: name, caseInsensitive: true) {
            return index
        }
        return -1
    }

    private func apply(_ decision: HTTPHandlerDecision, available: Range<Int>?, buffer: IOBuffer?) -> Int {
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
        }
    }

    /// A suspended request resumes (from `HTTPExchangeTicket.resume`, on the loop).
    func resume(_ decision: HTTPHandlerDecision) {
        guard requestPhase == .held else { return }
        _ = apply(decision, available: nil, buffer: nil)
        redeliverInput()
    }

    // MARK: forwarding

    private func startForward(to target: HTTPUpstream, available: Range<Int>?, buffer: IOBuffer?) -> Int {
        upstreamTarget = target
        wasForwarded = true
        let pool = server.pool(for: target)
        self.pool = pool
        armRequestTimeouts()
        while let candidate = pool.acquire() {
            candidate.owner = self
            upstream = candidate
            responsePhase = .awaitingHead
            let consumed = writeRequestHead(to: candidate, available: available, buffer: buffer)
            if headWriteFailed {
                // The reused connection died before any byte of the request was written: safe to retry.
                headWriteFailed = false
                pool.statistics.retries += 1
                reuseRetries += 1
                if reuseRetries > 3 { break }
                continue
            }
            return consumed
        }
        connectUpstream()
        return 0
    }

    private func connectUpstream() {
        guard let pool else { return }
        connectAttempts += 1
        responsePhase = .connecting
        requestPhase = .held
        do {
            upstream = try pool.connect(owner: self)
        } catch {
            upstream = nil
            upstreamFailed(status: 502, message: "upstream connection failed")
        }
    }

    func upstreamDidConnect(_ upstream: UpstreamConnection) {
        guard upstream === self.upstream, responsePhase == .connecting else { return }
        responsePhase = .awaitingHead
        _ = writeRequestHead(to: upstream, available: nil, buffer: nil)
        redeliverInput()
    }

    /// Writes the forwarded head (and the body bytes already read, in the same writev). Returns the
    /// number of `available` bytes consumed.
    private func writeRequestHead(to upstream: UpstreamConnection, available: Range<Int>?, buffer bodyBuffer: IOBuffer?) -> Int {
        guard let buffer = exchange.buffer else { return 0 }
        let head = exchange.head
        let base = exchange.headStart
        slices.removeAll(keepingCapacity: true)
        forwardedForValues.removeAll(keepingCapacity: true)
        var runStart = base + head.startLine.lowerBound
        var runEnd = base + head.startLine.upperBound
        var sawContentLength = false
        var hasForwardedProto = false
        let options = configuration.forwardedHeaders
        let removesAny = !exchange.removedNames.isEmpty
        buffer.withSpan(base ..< base + head.headLength) { span in
            for field in head.fields {
                var keep: Bool
                switch field.known {
                case .transferEncoding:
                    // A request's Transfer-Encoding is a lone `chunked` (the codec rejects others):
                    // the body is forwarded verbatim, so the line stays.
                    keep = true
                case .contentLength:
                    keep = !sawContentLength
                    sawContentLength = true
                case .host:
                    keep = !exchange.replacesHost
                default:
                    keep = !field.isHopByHop
                }
                if keep && field.known == .none {
                    if options.appendXForwardedFor && HTTPHead.nameEquals(field, Self.xForwardedFor.lowercased, span) {
                        forwardedForValues.append(field.value)
                        keep = false
                    } else if options.xForwardedProto != nil && HTTPHead.nameEquals(field, Self.xForwardedProto.lowercased, span) {
                        if options.overwriteXForwardedProto { keep = false } else { hasForwardedProto = true }
                    }
                    if keep && removesAny && exchange.isRemoved(field, in: span) { keep = false }
                }
                if keep {
                    let line = field.line
                    if base + line.lowerBound == runEnd {
                        runEnd = base + line.upperBound
                    } else {
                        slices.append(buffer.slice(runStart ..< runEnd))
                        runStart = base + line.lowerBound
                        runEnd = base + line.upperBound
                    }
                }
            }
        }
        slices.append(buffer.slice(runStart ..< runEnd))

        // Our own lines, then the empty line, in one scratch slice.
        let out = scratchBuffer(minimumFree: 512 + exchange.addedLines.count + exchange.hostReplacement.count
            + forwardedForValues.reduce(0) { $0 + $1.count + 2 })
        let addedStart = out.count
        if exchange.replacesHost {
            out.append(Self.hostPrefix)
            out.append(exchange.hostReplacement)
            out.append(Self.crlf)
        }
        if options.appendXForwardedFor {
            out.append(Self.xForwardedForPrefix)
            for value in forwardedForValues {
                out.append(buffer, range: base + value.lowerBound ..< base + value.upperBound)
                out.append(Self.commaSpace)
            }
            out.append(peerHost)
            out.append(Self.crlf)
        }
        if let proto = options.xForwardedProto, !hasForwardedProto {
            out.append(Self.xForwardedProtoPrefix)
            out.append(proto)
            out.append(Self.crlf)
        }
        if options.addForwarded {
            out.append(Self.forwardedPrefix)
            if peerIsIPv6 {
                out.append("\"[")
                out.append(peerHost)
                out.append("]\"")
            } else {
                out.append(peerHost)
            }
            if let proto = options.xForwardedProto {
                out.append(";proto=")
                out.append(proto)
            }
            out.append(Self.crlf)
        }
        if !exchange.addedLines.isEmpty { out.append(exchange.addedLines) }
        if upgradeIndex >= 0 {
            out.append(Self.connectionUpgrade)
            out.append(Self.upgradePrefix)
            out.append(server.allowedUpgradeBytes[upgradeIndex])
            out.append(Self.crlf)
        }
        out.append(Self.crlf)
        slices.append(out.slice(addedStart ..< out.count))

        // Body bytes that came with the head go out in the same writev.
        var consumed = 0
        let decoderBefore = requestDecoder
        let bytesBefore = (bytesIn, requestBodyBytes)
        if let available, let bodyBuffer, !available.isEmpty, !requestDecoder.isComplete {
            switch frameRequestBody(buffer: bodyBuffer, range: available) {
            case .bytes(let n, _):
                consumed = n
                if n > 0 { slices.append(bodyBuffer.slice(available.lowerBound ..< available.lowerBound + n)) }
            case .failed(let error):
                slices.removeAll(keepingCapacity: true)
                closeUpstream()
                failRequest(status: error.httpStatus, message: error.reason)
                return available.count
            }
        }
        writingHead = upstream.wasUsed
        upstream.connection.write(contentsOf: slices)
        slices.removeAll(keepingCapacity: true)
        writingHead = false
        if headWriteFailed {
            // Nothing was written: the body bytes stay unread for the retry.
            requestDecoder = decoderBefore
            (bytesIn, requestBodyBytes) = bytesBefore
            return 0
        }
        guard self.upstream === upstream else { return consumed }
        requestPhase = requestDecoder.isComplete ? .complete : .body
        if requestDecoder.isComplete { requestBodySent = true }
        if requestPhase == .body { armBodyDeadline() }
        if !upstream.connection.isWritable { connection.pauseReading() }
        return consumed
    }

    private enum BodyFrame {
        case bytes(Int, complete: Bool)
        case failed(ParseError)
    }

    /// How many of `range`'s bytes belong to the request body (and whether it ended), with the limits.
    private func frameRequestBody(buffer: IOBuffer, range: Range<Int>) -> BodyFrame {
        let step = buffer.withSpan(range) { requestDecoder.frame($0) }
        let n: Int
        switch step {
        case .needMore: n = range.count
        case .complete(let consumed): n = consumed
        case .error(let error, _): return .failed(error)
        }
        requestBodyBytes &+= UInt64(n)
        bytesIn &+= UInt64(n)
        if let limit = configuration.maxRequestBodyBytes, requestBodyBytes > limit {
            return .failed(.prematureEndOfBody)
        }
        return .bytes(n, complete: requestDecoder.isComplete)
    }

    /// Forwards request body bytes; returns how many were consumed (0: paused for backpressure).
    private func forwardRequestBody(buffer: IOBuffer, range: Range<Int>) -> Int {
        guard let upstream else {
            // The upstream went away (early response finished or failed): treat the rest as discardable.
            requestPhase = .discard
            return discardRequestBody(buffer: buffer, range: range)
        }
        if !upstream.connection.isWritable {
            connection.pauseReading()
            bodyDeadline = 0
            rearm()
            return 0
        }
        switch frameRequestBody(buffer: buffer, range: range) {
        case .failed(let error):
            if let limit = configuration.maxRequestBodyBytes, requestBodyBytes > limit, !responseStarted {
                closeUpstream()
                finishWithLocalError(status: 413, message: "request body too large", cancel: nil)
            } else {
                closeUpstream()
                failRequest(status: error.httpStatus, message: error.reason)
            }
            return range.count
        case .bytes(let n, let complete):
            if n > 0 { upstream.connection.write(buffer.slice(range.lowerBound ..< range.lowerBound + n)) }
            guard self.upstream === upstream else { return n }
            if complete {
                requestBodySent = true
                requestPhase = .complete
                bodyDeadline = 0
                rearm()
                if responsePhase == .complete { completeExchange() }
            } else {
                armBodyDeadline()
                if !upstream.connection.isWritable {
                    connection.pauseReading()
                    bodyDeadline = 0
                    rearm()
                }
            }
            return n
        }
    }

    private func discardRequestBody(buffer: IOBuffer, range: Range<Int>) -> Int {
        let step = buffer.withSpan(range) { requestDecoder.frame($0) }
        switch step {
        case .needMore:
            let n = UInt64(range.count)
            bytesIn &+= n
            if n > discardBudget {
                closeAfterResponse = true
                startLinger()
            } else {
                discardBudget -= n
                armBodyDeadline()
            }
            return range.count
        case .complete(let consumed):
            bytesIn &+= UInt64(consumed)
            requestPhase = .complete
            bodyDeadline = 0
            rearm()
            if responsePhase == .complete { completeExchange() }
            return consumed
        case .error:
            closeAfterResponse = true
            startLinger()
            return range.count
        }
    }

    func upstreamWritabilityChanged(_ upstream: UpstreamConnection) {
        guard upstream === self.upstream, upstream.connection.isWritable else { return }
        if requestPhase == .body || requestPhase == .tunnel {
            resumeInput()
            if requestPhase == .body { armBodyDeadline() }
        }
    }

    // MARK: response from upstream

    func upstreamDidReceive(_ upstream: UpstreamConnection, buffer: IOBuffer, range: Range<Int>) -> Int {
        guard upstream === self.upstream else {
            upstream.connection.close()
            return range.count
        }
        var offset = range.lowerBound
        let end = range.upperBound
        while offset < end && self.upstream === upstream {
            switch responsePhase {
            case .awaitingHead:
                let result = buffer.withSpan(offset ..< end) { upstream.head.parseResponse($0, requestMethod: exchange.head.method) }
                switch result {
                case .incomplete:
                    return offset - range.lowerBound
                case .error:
                    upstreamFramingBroken = true
                    upstreamFailed(status: 502, message: "invalid response from upstream")
                    return end - range.lowerBound
                case .complete(let length):
                    let status = upstream.head.status
                    if status >= 100 && status < 200 && status != 101 {
                        // Interim response (100 Continue, 103): relayed as is, then the final one follows.
                        connection.write(buffer.slice(offset ..< offset + length))
                        bytesOut &+= UInt64(length)
                        responseHeadBytes &+= UInt64(length)
                        offset += length
                        continue
                    }
                    offset += responseHeadComplete(upstream, buffer: buffer, headStart: offset, length: length, end: end)
                }
            case .body:
                offset += forwardResponseBody(upstream, buffer: buffer, range: offset ..< end)
                if !connection.isWritable || !connection.isOpen {
                    if connection.isOpen { upstream.connection.pauseReading() }
                    return offset - range.lowerBound
                }
            case .tunnel:
                bytesOut &+= UInt64(end - offset)
                connection.write(buffer.slice(offset ..< end))
                offset = end
                if connection.isOpen && !connection.isWritable { upstream.connection.pauseReading() }
            case .none, .connecting, .complete:
                // Bytes after a complete response: the upstream broke framing. Never reuse it.
                upstreamFramingBroken = true
                upstream.connection.close()
                return end - range.lowerBound
            }
        }
        return offset - range.lowerBound
    }

    /// The final response head is complete in `buffer[headStart ..< headStart + length]`; writes it
    /// with the body bytes already here. Returns the bytes consumed (head and body).
    private func responseHeadComplete(_ upstream: UpstreamConnection, buffer: IOBuffer, headStart: Int, length: Int, end: Int) -> Int {
        let head = upstream.head
        let status = head.status
        responseStatus = status
        responseStartDeadline = 0
        let request = exchange.head
        var isTunnel = false
        if status == 101 {
            guard upgradeIndex >= 0 else {
                upstreamFramingBroken = true
                upstreamFailed(status: 502, message: "unexpected 101 from upstream")
                return end - headStart
            }
            isTunnel = true
        } else if upgradeIndex >= 0 {
            // The upgrade was refused: answer normally, then close (the client may have sent bytes
            // meant for the tunnel, which must never be parsed as a request).
            closeAfterResponse = true
        }

        responseMode = .verbatim
        var framing = head.framing
        if isTunnel {
            framing = .none
        } else if framing == .closeDelimited {
            if request.version == .http11 && !closeAfterResponse {
                responseMode = .chunkify
            } else {
                closeAfterResponse = true
            }
        } else if framing == .chunked && request.version == .http10 {
            responseMode = .dechunk
            closeAfterResponse = true
        }
        if requestPhase == .body || requestPhase == .held {
            // An early response while the request body is still arriving: keep the connection only if
            // what remains can be read and dropped cheaply afterwards.
            // A client waiting for 100-continue never sends the body after a final answer.
            if case .contentLength(let total) = request.framing, !request.expectsContinue,
               total &- requestBodyBytes <= configuration.maxDiscardedBodyBytes {
                discardBudget = configuration.maxDiscardedBodyBytes
            } else {
                closeAfterResponse = true
            }
        }
        if server.isDraining { closeAfterResponse = true }
        responseDecoder.reset(framing: framing)

        server.handler.responseStarted(exchange, status: status)
        guard self.upstream === upstream, connection.isOpen else { return end - headStart }

        slices.removeAll(keepingCapacity: true)
        var runStart = headStart + head.startLine.lowerBound
        var runEnd = headStart + head.startLine.upperBound
        var sawContentLength = false
        for field in head.fields {
            var keep: Bool
            switch field.known {
            case .transferEncoding:
                keep = responseMode == .verbatim && framing == .chunked
            case .contentLength:
                keep = !sawContentLength
                sawContentLength = true
            default:
                keep = !field.isHopByHop
            }
            if field.isNominatedByConnection { keep = false }
            if keep {
                let line = field.line
                if headStart + line.lowerBound == runEnd {
                    runEnd = headStart + line.upperBound
                } else {
                    slices.append(buffer.slice(runStart ..< runEnd))
                    runStart = headStart + line.lowerBound
                    runEnd = headStart + line.upperBound
                }
            }
        }
        slices.append(buffer.slice(runStart ..< runEnd))
        let out = scratchBuffer(minimumFree: 128)
        let addedStart = out.count
        if isTunnel {
            out.append(Self.connectionUpgrade)
            out.append(Self.upgradePrefix)
            out.append(server.allowedUpgradeBytes[upgradeIndex])
            out.append(Self.crlf)
        } else if closeAfterResponse {
            out.append(Self.connectionClose)
        } else if request.version == .http10 {
            out.append(Self.connectionKeepAlive)
        }
        if responseMode == .chunkify { out.append(Self.transferEncodingChunked) }
        out.append(Self.crlf)
        slices.append(out.slice(addedStart ..< out.count))
        for slice in slices { responseHeadBytes &+= UInt64(slice.count) }
        responseStarted = true
        responsePhase = isTunnel ? .tunnel : .body

        var consumed = length
        let bodyStart = headStart + length
        if isTunnel {
            if bodyStart < end {
                slices.append(buffer.slice(bodyStart ..< end))
                consumed = end - headStart
            }
        } else {
            consumed += appendResponseBody(buffer: buffer, range: bodyStart ..< end)
            // Bytes after a complete response: the upstream broke framing; it must not be pooled.
            if responseDecoder.isComplete && headStart + consumed < end { upstreamFramingBroken = true }
        }
        writeToClient()
        guard connection.isOpen else { return end - headStart }
        if isTunnel {
            startTunnel()
        } else {
            noteResponseProgress()
            if responseDecoder.isComplete { responseComplete() }
        }
        return consumed
    }

    /// Frames `range` as response body, appending what to send to `slices`; returns bytes consumed.
    private func appendResponseBody(buffer: IOBuffer, range: Range<Int>) -> Int {
        guard !range.isEmpty, !responseDecoder.isComplete else { return 0 }
        switch responseMode {
        case .verbatim:
            let step = buffer.withSpan(range) { responseDecoder.frame($0) }
            let n: Int
            switch step {
            case .needMore: n = range.count
            case .complete(let consumed): n = consumed
            case .error:
                upstreamFramingBroken = true
                return failResponseBody(range.count)
            }
            if n > 0 { slices.append(buffer.slice(range.lowerBound ..< range.lowerBound + n)) }
            return n
        case .chunkify:
            // Close-delimited: everything is payload; each read becomes one chunk.
            let out = scratchBuffer(minimumFree: 32)
            let start = out.count
            appendHex(range.count, to: out)
            out.append(Self.crlf)
            slices.append(out.slice(start ..< out.count))
            slices.append(buffer.slice(range))
            slices.append(Self.crlfSlice(out))
            return range.count
        case .dechunk:
            var offset = range.lowerBound
            while offset < range.upperBound {
                let step = buffer.withSpan(offset ..< range.upperBound) { responseDecoder.decode($0) }
                switch step {
                case .payload(let r):
                    slices.append(buffer.slice(offset + r.lowerBound ..< offset + r.upperBound))
                    offset += r.upperBound
                case .needMore:
                    return range.count
                case .complete(let consumed):
                    return offset + consumed - range.lowerBound
                case .error:
                    upstreamFramingBroken = true
                    return failResponseBody(range.count)
                }
            }
            return offset - range.lowerBound
        }
    }

    private func failResponseBody(_ count: Int) -> Int {
        truncated = true
        closeAfterResponse = true
        return count
    }

    private func forwardResponseBody(_ upstream: UpstreamConnection, buffer: IOBuffer, range: Range<Int>) -> Int {
        slices.removeAll(keepingCapacity: true)
        let consumed = appendResponseBody(buffer: buffer, range: range)
        if responseDecoder.isComplete && consumed < range.count { upstreamFramingBroken = true }
        writeToClient()
        guard connection.isOpen, self.upstream === upstream else { return range.count }
        if truncated {
            // Broken framing mid-body: never fake a complete message.
            abortExchange(reason: nil)
            connection.close()
            return range.count
        }
        noteResponseProgress()
        if responseDecoder.isComplete { responseComplete() }
        return consumed
    }

    private func writeToClient() {
        guard !slices.isEmpty else { return }
        for slice in slices { bytesOut &+= UInt64(slice.count) }
        connection.write(contentsOf: slices)
        slices.removeAll(keepingCapacity: true)
    }

    private func noteResponseProgress() {
        if idleBetweenNanoseconds != 0 {
            idleBetweenDeadline = loop.now &+ idleBetweenNanoseconds
            rearm()
        }
    }

    func upstreamDidReadEOF(_ upstream: UpstreamConnection) {
        guard upstream === self.upstream else {
            upstream.connection.close()
            return
        }
        switch responsePhase {
        case .tunnel:
            tunnelUpstreamEOF = true
            if tunnelClientEOF { closeTunnel() } else { connection.shutdownOutput() }
        case .body:
            if case .complete = responseDecoder.finish() {
                if responseMode == .chunkify {
                    let out = scratchBuffer(minimumFree: 16)
                    let start = out.count
                    out.append(Self.lastChunk)
                    bytesOut &+= UInt64(out.count - start)
                    connection.write(out.slice(start ..< out.count))
                }
                upstreamFramingBroken = true // it closed: not reusable
                responseComplete()
            } else {
                truncated = true
                abortExchange(reason: nil)
                connection.close()
            }
        default:
            upstreamFramingBroken = true
            upstreamFailed(status: 502, message: "upstream closed the connection before responding")
        }
    }

    func upstreamDidClose(_ upstream: UpstreamConnection, error: ConnectionError?) {
        guard upstream === self.upstream else { return }
        self.upstream = nil
        if writingHead {
            headWriteFailed = true
            return
        }
        switch responsePhase {
        case .connecting:
            if connectAttempts <= (upstreamTarget?.configuration.connectRetries ?? 0) && requestPhase != .closed {
                connectUpstream()
            } else {
                upstreamFailed(status: 502, message: "upstream connection failed")
            }
        case .awaitingHead:
            upstreamFailed(status: 502, message: "upstream closed the connection before responding")
        case .body:
            if responseDecoder.isComplete { return }
            truncated = true
            abortExchange(reason: nil)
            connection.close()
        case .tunnel:
            tunnelUpstreamEOF = true
            closeTunnel()
        case .none, .complete:
            break
        }
    }

    /// The upstream failed before the response started: answer `status`; after it started: cut.
    private func upstreamFailed(status: Int, message: String) {
        closeUpstream()
        if responseStarted {
            truncated = true
            abortExchange(reason: nil)
            connection.close()
            return
        }
        finishWithLocalError(status: status, message: message, cancel: nil)
    }

    private func responseComplete() {
        responsePhase = .complete
        idleBetweenDeadline = 0
        responseStartDeadline = 0
        totalDeadline = 0
        if let upstream {
            let reusable = upstream.head.keepAlive && requestBodySent && !upstreamFramingBroken
                && exchange.head.version == .http11 && upgradeIndex < 0
            self.upstream = nil
            upstream.owner = nil
            if reusable, let pool {
                upstream.wasUsed = true
                pool.release(upstream)
            } else {
                upstream.connection.close()
            }
        }
        rearm()
        switch requestPhase {
        case .complete:
            completeExchange()
        case .body, .held:
            // The request body is still arriving: drop the rest (bounded) or close after flushing.
            if closeAfterResponse {
                startLinger()
            } else {
                requestPhase = .discard
                resumeInput()
            }
        default:
            break
        }
    }

    // MARK: local responses and errors

    private func respondWithoutHandler(status: Int, message: String, available: Range<Int>) -> Int {
        handlerInvolved = false
        return respondLocally(.text(status, message), available: available, buffer: nil)
    }

    /// Answers from the proxy; the request body (if any) is dropped afterwards or the connection closes.
    private func respondLocally(_ response: HTTPLocalResponse, available: Range<Int>?, buffer: IOBuffer?) -> Int {
        if !requestDecoder.isComplete {
            if case .contentLength(let total) = exchange.head.framing, !exchange.head.expectsContinue,
               total &- requestBodyBytes <= configuration.maxDiscardedBodyBytes {
                discardBudget = configuration.maxDiscardedBodyBytes
            } else {
                closeAfterResponse = true
            }
        }
        if server.isDraining { closeAfterResponse = true }
        writeLocalResponse(response)
        guard connection.isOpen else { return available?.count ?? 0 }
        responsePhase = .complete
        if requestDecoder.isComplete {
            requestPhase = .complete
            completeExchange()
            return 0
        }
        if closeAfterResponse {
            startLinger()
            return available?.count ?? 0
        }
        requestPhase = .discard
        armBodyDeadline()
        if let available, let buffer, !available.isEmpty {
            return discardRequestBody(buffer: buffer, range: available)
        }
        return 0
    }

    private func writeLocalResponse(_ response: HTTPLocalResponse) {
        if handlerInvolved { server.handler.responseStarted(exchange, status: response.status) }
        guard connection.isOpen else { return }
        serialized.removeAll(keepingCapacity: true)
        var status = response.status
        do {
            try HTTPSerializer.appendStatusLine(status: response.status, reason: response.reason, to: &serialized)
            for field in response.fields { try HTTPSerializer.appendField(name: field.name, value: field.value, to: &serialized) }
        } catch {
            serialized.removeAll(keepingCapacity: true)
            status = 500
            try? HTTPSerializer.appendStatusLine(status: 500, reason: "Internal Server Error", to: &serialized)
        }
        responseStatus = status
        if closeAfterResponse {
            serialized.append(contentsOf: Self.connectionClose)
        } else if exchange.head.version == .http10 {
            serialized.append(contentsOf: Self.connectionKeepAlive)
        }
        let bodiless = status < 200 || status == 204 || status == 304
        let sendsBody = !bodiless && exchange.head.method != .head && status == response.status
        if !bodiless { HTTPSerializer.appendContentLength(UInt64(status == response.status ? response.body.count : 0), to: &serialized) }
        serialized.append(contentsOf: Self.crlf)
        responseHeadBytes &+= UInt64(serialized.count)
        let body = sendsBody ? response.body : []
        let out = scratchBuffer(minimumFree: serialized.count + (body.count <= 4096 ? body.count : 0))
        let start = out.count
        out.append(serialized)
        slices.removeAll(keepingCapacity: true)
        if body.count <= 4096 {
            out.append(body)
            slices.append(out.slice(start ..< out.count))
        } else {
            slices.append(out.slice(start ..< out.count))
            let bodyBuffer = IOBuffer(bytes: body)
            slices.append(bodyBuffer.written)
        }
        responseStarted = true
        writeToClient()
    }

    /// A request that cannot go on (parse error, bad body): answer `status` with `Connection: close`
    /// unless a response already started, then close.
    private func failRequest(status: Int, message: String) {
        closeUpstream()
        if responseStarted {
            abortExchange(reason: nil)
            connection.close()
            return
        }
        closeAfterResponse = true
        if exchange.isSuspended {
            exchange.isSuspended = false
            server.handler.requestCancelled(exchange, reason: .clientGone)
        }
        writeLocalResponse(.text(status, message))
        responsePhase = .complete
        if handlerInvolved { finishHandlerRequest() }
        startLinger()
    }

    /// Answers a local error for the current request (status chosen by the proxy), tells the handler
    /// if it suspended the request, and ends the exchange.
    private func finishWithLocalError(status: Int, message: String, cancel: HTTPCancellationReason?) {
        if exchange.isSuspended {
            exchange.isSuspended = false
            server.handler.requestCancelled(exchange, reason: cancel ?? .clientGone)
        }
        guard connection.isOpen else { return }
        _ = respondLocally(.text(status, message), available: nil, buffer: nil)
        if requestPhase == .discard { redeliverInput() }
    }

    // MARK: timeouts

    private func armRequestTimeouts() {
        let timeouts = exchange.timeouts
        let start = exchange.startTime
        totalDeadline = timeouts.total.map { start &+ EventLoop.nanoseconds($0) } ?? 0
        responseStartDeadline = timeouts.responseStart.map { start &+ EventLoop.nanoseconds($0) } ?? 0
        idleBetweenNanoseconds = timeouts.idle.map { EventLoop.nanoseconds($0) } ?? 0
        idleBetweenDeadline = idleBetweenNanoseconds == 0 ? 0 : loop.now &+ idleBetweenNanoseconds
        rearm()
    }

    private func armBodyDeadline() {
        bodyDeadline = loop.now &+ server.bodyTimeoutNanoseconds
        rearm()
    }

    private func rearm() {
        // Written out (no array) so that re-arming per request allocates nothing.
        var next = UInt64.max
        if headDeadline != 0 { next = min(next, headDeadline) }
        if idleDeadline != 0 { next = min(next, idleDeadline) }
        if bodyDeadline != 0 { next = min(next, bodyDeadline) }
        if writeDeadline != 0 { next = min(next, writeDeadline) }
        if lingerDeadline != 0 { next = min(next, lingerDeadline) }
        if totalDeadline != 0 { next = min(next, totalDeadline) }
        if responseStartDeadline != 0 { next = min(next, responseStartDeadline) }
        if idleBetweenDeadline != 0 { next = min(next, idleBetweenDeadline) }
        let target = next == .max ? 0 : next
        if target != armedDeadline {
            armedDeadline = target
            connection.setDeadline(at: target)
        }
    }

    /// Knative's timeout outcome: before the response started → 504 with the message; after → the
    /// message is appended and the message ended where framing allows, else the connection closes.
    private func requestTimedOut() {
        let message = exchange.timeouts.message
        totalDeadline = 0
        responseStartDeadline = 0
        idleBetweenDeadline = 0
        if !responseStarted {
            closeUpstream()
            finishWithLocalError(status: 504, message: message, cancel: .timedOut)
            return
        }
        closeUpstream()
        truncated = true
        let text = Array(message.utf8)
        let out = scratchBuffer(minimumFree: text.count + 32)
        let start = out.count
        var ended = false
        switch responseMode {
        case .chunkify:
            ended = true
        case .verbatim:
            if responseDecoder.isAtChunkBoundary { ended = true }
        case .dechunk:
            break
        }
        if ended {
            if !text.isEmpty {
                appendHex(text.count, to: out)
                out.append(Self.crlf)
                out.append(text)
                out.append(Self.crlf)
            }
            out.append(Self.lastChunk)
            slices.append(out.slice(start ..< out.count))
            writeToClient()
            guard connection.isOpen else { return }
            responsePhase = .complete
            if requestPhase == .complete {
                completeExchange()
            } else {
                closeAfterResponse = true
                startLinger()
            }
            return
        }
        if responseDecoder.isCloseDelimited || responseMode == .dechunk {
            out.append(text)
            slices.append(out.slice(start ..< out.count))
            writeToClient()
        }
        // Content-Length not reached (or mid-chunk): only closing tells the client it is cut short.
        abortExchange(reason: nil)
        connection.closeAfterFlush()
    }

    // MARK: tunnel

    private func startTunnel() {
        requestPhase = .tunnel
        responseStartDeadline = 0
        totalDeadline = 0
        idleBetweenDeadline = 0
        rearm()
        server.handler.upgradeStarted(exchange)
        server.tunnelCount += 1
        redeliverInput()
    }

    private func closeTunnel() {
        finishHandlerRequest()
        closeUpstream()
        requestPhase = .closed
        connection.close()
    }

    // MARK: exchange end

    private func finishHandlerRequest() {
        guard handlerInvolved else { return }
        handlerInvolved = false
        let summary = HTTPRequestSummary(
            status: responseStarted ? responseStatus : 0, bytesIn: bytesIn, bytesOut: bytesOut,
            responseBodyBytes: bytesOut &- min(responseHeadBytes, bytesOut),
            startTime: exchange.startTime, endTime: loop.now, clientAborted: clientAborted, truncated: truncated,
            wasForwarded: wasForwarded)
        if requestPhase == .tunnel || responsePhase == .tunnel {
            server.tunnelCount -= 1
            server.handler.upgradeEnded(exchange)
        }
        server.handler.requestFinished(exchange, summary: summary)
    }

    /// Both directions are done: report, reset, and read the next request (or close).
    private func completeExchange() {
        finishHandlerRequest()
        exchange.end()
        requestPhase = .idle
        responsePhase = .none
        upstreamTarget = nil
        pool = nil
        bodyDeadline = 0
        totalDeadline = 0
        responseStartDeadline = 0
        idleBetweenDeadline = 0
        if closeAfterResponse || server.isDraining {
            if hasPendingInput {
                // Unread client bytes would turn the close into a reset that can destroy the response.
                startLinger()
            } else {
                requestPhase = .closed
                connection.closeAfterFlush()
            }
            return
        }
        headBytesSeen = false
        idleDeadline = loop.now &+ server.idleTimeoutNanoseconds
        rearm()
        if hasPendingInput || connection.isReadingPaused {
            hasPendingInput = false
            if !inReceive { redeliverInput() }
        }
    }

    /// The exchange ends abnormally: the upstream is closed (never pooled), a suspended request is
    /// cancelled, the handler hears the outcome. The caller closes the client connection.
    private func abortExchange(reason: HTTPCancellationReason?) {
        closeUpstream()
        if exchange.isSuspended {
            exchange.isSuspended = false
            server.handler.requestCancelled(exchange, reason: reason ?? .clientGone)
        }
        if responsePhase != .complete && reason == .clientGone { clientAborted = true }
        if reason == .timedOut && responseStarted { truncated = true }
        finishHandlerRequest()
        responsePhase = .complete
        if requestPhase != .closed { requestPhase = .linger }
    }

    private func closeUpstream() {
        guard let upstream else { return }
        self.upstream = nil
        upstream.owner = nil
        upstream.connection.close()
    }

    /// Stop writing after what is queued, drop further input until EOF or the linger deadline, so
    /// the client reads the final response instead of a reset.
    private func startLinger() {
        requestPhase = .linger
        if handlerInvolved { finishHandlerRequest() }
        exchange.end()
        connection.shutdownOutput()
        lingerDeadline = loop.now &+ server.lingerTimeoutNanoseconds
        headDeadline = 0
        idleDeadline = 0
        bodyDeadline = 0
        totalDeadline = 0
        responseStartDeadline = 0
        idleBetweenDeadline = 0
        rearm()
        resumeInput()
    }

    // MARK: drain

    /// Drain started: idle connections close now; busy ones close after their response.
    func beginDrain() {
        switch requestPhase {
        case .idle:
            connection.close()
        case .linger, .closed, .tunnel:
            break
        default:
            closeAfterResponse = true
        }
    }

    /// The drain deadline passed: end whatever is left.
    func forceClose() {
        if handlerInvolved { abortExchange(reason: .shutdown) }
        connection.close()
    }

    // MARK: input helpers

    private func resumeInput() {
        if connection.isReadingPaused { connection.resumeReading() }
    }

    /// Offers the bytes the connection still holds again (pipelined requests, held bodies).
    private func redeliverInput() {
        guard connection.isOpen else { return }
        if !connection.isReadingPaused { connection.pauseReading() }
        connection.resumeReading()
    }

    /// A scratch buffer with at least `minimumFree` bytes free. Bytes already written to it are never
    /// rewritten while a queued slice may reference them (append-only until it is uniquely held).
    private func scratchBuffer(minimumFree: Int) -> IOBuffer {
        if scratch != nil, isKnownUniquelyReferenced(&scratch!), let buffer = scratch, buffer.capacity >= minimumFree {
            if buffer.freeCapacity < minimumFree { buffer.clear() }
            return buffer
        }
        if let buffer = scratch, buffer.freeCapacity >= minimumFree { return buffer }
        loop.bufferPool.recycle(&scratch)
        let buffer = minimumFree <= loop.bufferPool.bufferSize ? loop.bufferPool.take() : IOBuffer(capacity: minimumFree)
        scratch = buffer
        return buffer
    }

    private func appendHex(_ value: Int, to out: IOBuffer) {
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
    private static func crlfSlice(_ out: IOBuffer) -> IOSlice {
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
