// HTTPProxy layer: the forwarding half of a server connection — the request head and body going
// upstream as slices of the received bytes, and the upstream's response coming back the same way
// (head + body in one writev, verbatim chunked, re-framing only where the client needs it).

extension ServerConnection {
    // MARK: forwarding

    func startForward(to target: HTTPUpstream, available: Range<Int>?, buffer: IOBuffer?) -> Int {
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

    func connectUpstream() {
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
    func writeRequestHead(to upstream: UpstreamConnection, available: Range<Int>?, buffer bodyBuffer: IOBuffer?) -> Int {
        guard let buffer = exchange.buffer else { return 0 }
        // Only the field list and two ranges are needed: copying the whole HTTPHead per request
        // costs an outlined copy, a retain and a release.
        let fields = exchange.requestHead.fields
        let startLine = exchange.requestHead.startLine
        let headLength = exchange.requestHead.headLength
        let base = exchange.headStart
        slices.removeAll(keepingCapacity: true)
        forwardedForValues.removeAll(keepingCapacity: true)
        var runStart = base + startLine.lowerBound
        var runEnd = base + startLine.upperBound
        var sawContentLength = false
        var hasForwardedProto = false
        let options = configuration.forwardedHeaders
        let removesAny = !exchange.removedNames.isEmpty
        buffer.withSpan(base ..< base + headLength) { span in
            for field in fields {
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
        if let proto = server.xForwardedProtoBytes, !hasForwardedProto {
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
            if let proto = server.xForwardedProtoBytes {
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

    enum BodyFrame {
        case bytes(Int, complete: Bool)
        case failed(ParseError)
    }

    /// How many of `range`'s bytes belong to the request body (and whether it ended), with the limits.
    func frameRequestBody(buffer: IOBuffer, range: Range<Int>) -> BodyFrame {
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
    func forwardRequestBody(buffer: IOBuffer, range: Range<Int>) -> Int {
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

    func discardRequestBody(buffer: IOBuffer, range: Range<Int>) -> Int {
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
                let result = buffer.withSpan(offset ..< end) { upstream.head.parseResponse($0, requestMethod: exchange.requestHead.method) }
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
    func responseHeadComplete(_ upstream: UpstreamConnection, buffer: IOBuffer, headStart: Int, length: Int, end: Int) -> Int {
        // The facts needed, read in place (no copy of either HTTPHead per response).
        let status = upstream.head.status
        responseStatus = status
        responseStartDeadline = 0
        let requestVersion = exchange.requestHead.version
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
        var framing = upstream.head.framing
        if isTunnel {
            framing = .none
        } else if framing == .closeDelimited {
            if requestVersion == .http11 && !closeAfterResponse {
                responseMode = .chunkify
            } else {
                closeAfterResponse = true
            }
        } else if framing == .chunked && requestVersion == .http10 {
            responseMode = .dechunk
            closeAfterResponse = true
        }
        if requestPhase == .body || requestPhase == .held {
            // An early response while the request body is still arriving: keep the connection only if
            // what remains can be read and dropped cheaply afterwards.
            // A client waiting for 100-continue never sends the body after a final answer.
            if case .contentLength(let total) = exchange.requestHead.framing, !exchange.requestHead.expectsContinue,
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
        let startLine = upstream.head.startLine
        var runStart = headStart + startLine.lowerBound
        var runEnd = headStart + startLine.upperBound
        var sawContentLength = false
        for field in upstream.head.fields {
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
        } else if requestVersion == .http10 {
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
    func appendResponseBody(buffer: IOBuffer, range: Range<Int>) -> Int {
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

    func failResponseBody(_ count: Int) -> Int {
        truncated = true
        closeAfterResponse = true
        return count
    }

    func forwardResponseBody(_ upstream: UpstreamConnection, buffer: IOBuffer, range: Range<Int>) -> Int {
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

    func writeToClient() {
        guard !slices.isEmpty else { return }
        for slice in slices { bytesOut &+= UInt64(slice.count) }
        connection.write(contentsOf: slices)
        slices.removeAll(keepingCapacity: true)
    }

    func noteResponseProgress() {
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
    func upstreamFailed(status: Int, message: String) {
        closeUpstream()
        if responseStarted {
            truncated = true
            abortExchange(reason: nil)
            connection.close()
            return
        }
        finishWithLocalError(status: status, message: message, cancel: nil)
    }

    func responseComplete() {
        responsePhase = .complete
        idleBetweenDeadline = 0
        responseStartDeadline = 0
        totalDeadline = 0
        if let upstream {
            let reusable = upstream.head.keepAlive && requestBodySent && !upstreamFramingBroken
                && exchange.requestHead.version == .http11 && upgradeIndex < 0
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
}
