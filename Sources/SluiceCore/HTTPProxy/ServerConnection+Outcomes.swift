// HTTPProxy layer: how a server connection's requests end — local answers and errors, Knative's
// timeout outcomes, WebSocket tunnels, and the end of each exchange (report, reset, keep-alive or close).

extension ServerConnection {
    // MARK: local responses and errors

    func respondWithoutHandler(status: Int, message: String, available: Range<Int>) -> Int {
        handlerInvolved = false
        return respondLocally(.text(status, message), available: available, buffer: nil)
    }

    /// Answers from the proxy; the request body (if any) is dropped afterwards or the connection closes.
    func respondLocally(_ response: HTTPLocalResponse, available: Range<Int>?, buffer: IOBuffer?) -> Int {
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

    func writeLocalResponse(_ response: HTTPLocalResponse) {
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
    func failRequest(status: Int, message: String) {
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
    func finishWithLocalError(status: Int, message: String, cancel: HTTPCancellationReason?) {
        if exchange.isSuspended {
            exchange.isSuspended = false
            server.handler.requestCancelled(exchange, reason: cancel ?? .clientGone)
        }
        guard connection.isOpen else { return }
        _ = respondLocally(.text(status, message), available: nil, buffer: nil)
        if requestPhase == .discard { redeliverInput() }
    }

    // MARK: timeouts

    func armRequestTimeouts() {
        let timeouts = exchange.requestTimeouts
        let start = exchange.headCompleteTime
        // Handlers set the same timeouts on every request: convert (Int128 division) only on change.
        if timeouts.total != convertedTimeouts.total || timeouts.responseStart != convertedTimeouts.responseStart
            || timeouts.idle != convertedTimeouts.idle {
            convertedTimeouts = (timeouts.total, timeouts.responseStart, timeouts.idle)
            timeoutNanoseconds = (timeouts.total.map { EventLoop.nanoseconds($0) },
                                  timeouts.responseStart.map { EventLoop.nanoseconds($0) },
                                  timeouts.idle.map { EventLoop.nanoseconds($0) } ?? 0)
        }
        totalDeadline = timeoutNanoseconds.total.map { start &+ $0 } ?? 0
        responseStartDeadline = timeoutNanoseconds.responseStart.map { start &+ $0 } ?? 0
        idleBetweenNanoseconds = timeoutNanoseconds.idle
        idleBetweenDeadline = idleBetweenNanoseconds == 0 ? 0 : loop.now &+ idleBetweenNanoseconds
        rearm()
    }

    func armBodyDeadline() {
        bodyDeadline = loop.now &+ server.bodyTimeoutNanoseconds
        rearm()
    }

    func rearm() {
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
    func requestTimedOut() {
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

    func startTunnel() {
        requestPhase = .tunnel
        responseStartDeadline = 0
        totalDeadline = 0
        idleBetweenDeadline = 0
        rearm()
        server.handler.upgradeStarted(exchange)
        server.tunnelCount += 1
        redeliverInput()
    }

    func closeTunnel() {
        finishHandlerRequest()
        closeUpstream()
        requestPhase = .closed
        connection.close()
    }

    // MARK: exchange end

    func finishHandlerRequest() {
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
    func completeExchange() {
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
        if !hasPendingInput {
            server.connectionBecameReclaimable(self)
            // Reclaimed at once (the loop is at its limit with clients queued).
            guard requestPhase == .idle else { return }
        }
        if hasPendingInput || connection.isReadingPaused {
            hasPendingInput = false
            if !inReceive { redeliverInput() }
        }
    }

    /// The exchange ends abnormally: the upstream is closed (never pooled), a suspended request is
    /// cancelled, the handler hears the outcome. The caller closes the client connection.
    func abortExchange(reason: HTTPCancellationReason?) {
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

    func closeUpstream() {
        guard let upstream else { return }
        self.upstream = nil
        upstream.owner = nil
        upstream.connection.close()
    }

    /// Stop writing after what is queued, drop further input until EOF or the linger deadline, so
    /// the client reads the final response instead of a reset.
    func startLinger() {
        requestPhase = .linger
        if handlerInvolved { finishHandlerRequest() }
        exchange.end()
        connection.shutdownOutput()
        lingerEnd = loop.now &+ server.lingerTotalNanoseconds
        lingerDeadline = min(loop.now &+ server.lingerTimeoutNanoseconds, lingerEnd)
        headDeadline = 0
        idleDeadline = 0
        bodyDeadline = 0
        totalDeadline = 0
        responseStartDeadline = 0
        idleBetweenDeadline = 0
        rearm()
        resumeInput()
    }
}
