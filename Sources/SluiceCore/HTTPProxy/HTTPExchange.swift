// HTTPProxy layer: the request as a handler sees it — the parsed head over the receive buffer (no
// copy), the peer, per-request timeouts and edits for the forwarded head. One object per client
// connection, reused for each of its requests, so the common path allocates nothing.

/// One request on a server connection. Loop-bound: touch it only on `loop` (inside handler calls or
/// `loop.execute`). Reused for the next request on the same connection once this one finished:
/// keep an `HTTPExchangeTicket` (not the exchange) to come back later.
public final class HTTPExchange {
    public let loop: EventLoop
    /// The client's address (resolved once per connection).
    public internal(set) var peerAddress: SocketAddress?
    /// The parsed request head; its ranges index `withHeadBytes`' span (and `slice(_:)`).
    public var head: HTTPHead { requestHead }
    /// `EventLoop.now` when the head was complete.
    public var startTime: UInt64 { headCompleteTime }
    /// Timeouts for this request (reset to the server's defaults for each request).
    public var timeouts: HTTPRequestTimeouts {
        get { requestTimeouts }
        set { requestTimeouts = newValue }
    }
    /// Free slot for the handler's per-request state (cleared when the request finishes).
    public var context: AnyObject? {
        get { handlerContext }
        set { handlerContext = newValue }
    }
    /// Increases with every request on the connection; tickets of older requests are stale.
    public var generation: UInt64 { requestGeneration }

    // Storage of the accessors above. Internal, not public stored `var`s: every access to a public
    // stored property of a class pays a dynamic exclusivity check, and these are touched several
    // times per request; on internal storage the optimizer proves the accesses disjoint.
    var requestHead: HTTPHead
    var headCompleteTime: UInt64 = 0
    var requestTimeouts = HTTPRequestTimeouts()
    var handlerContext: AnyObject?
    var requestGeneration: UInt64 = 0

    /// Strong (no weak side table on the hot path); cleared when the connection closes.
    var owner: ServerConnection?
    /// The buffer holding the head (kept referenced for the whole request, so its bytes stay put).
    var buffer: IOBuffer?
    /// Offset of the head's first byte in `buffer`.
    var headStart = 0
    var isSuspended = false

    // Edits for the forwarded head.
    var removedNames: [HTTPFieldName] = []
    var hostReplacement: [UInt8] = []
    var replacesHost = false
    var addedLines: [UInt8] = []

    init(loop: EventLoop, limits: HTTPParserLimits) {
        self.loop = loop
        requestHead = HTTPHead(limits: limits)
        removedNames.reserveCapacity(8)
        addedLines.reserveCapacity(256)
        hostReplacement.reserveCapacity(64)
    }

    // MARK: reading the request (no allocation)

    /// Calls `body` with the head's bytes; `head`'s ranges (fields, target, ...) index this span.
    public func withHeadBytes<R>(_ body: (Span<UInt8>) -> R) -> R {
        guard let buffer else { return [UInt8]().withUnsafeBufferPointerFreeSpan(body) }
        return buffer.withSpan(headStart ..< headStart + head.headLength) { body($0) }
    }

    /// The head bytes of `range` (a range from `head`) as a slice of the receive buffer.
    public func slice(_ range: Range<Int>) -> IOSlice? {
        guard let buffer, range.upperBound <= head.headLength else { return nil }
        return buffer.slice(headStart + range.lowerBound ..< headStart + range.upperBound)
    }

    public var method: HTTPMethod { head.method }

    /// The request target bytes.
    public var target: IOSlice? { slice(head.target) }

    /// The first field named `name` (case-insensitive).
    public func firstField(named name: HTTPFieldName) -> HTTPField? {
        withHeadBytes { head.firstField(named: name, in: $0) }
    }

    /// The value of the first field named `name`.
    public func value(of name: HTTPFieldName) -> IOSlice? {
        guard let field = firstField(named: name) else { return nil }
        return slice(field.value)
    }

    /// Whether `field`'s value equals `bytes` (ASCII case-insensitive when asked).
    public func value(of field: HTTPField, equals bytes: some Collection<UInt8>, caseInsensitive: Bool = false) -> Bool {
        withHeadBytes { span in
            let range = field.value
            guard range.count == bytes.count, range.upperBound <= span.count else { return false }
            var i = range.lowerBound
            for b in bytes {
                var a = span[i]
                var c = b
                if caseInsensitive {
                    if a &- 0x41 < 26 { a |= 0x20 }
                    if c &- 0x41 < 26 { c |= 0x20 }
                }
                if a != c { return false }
                i += 1
            }
            return true
        }
    }

    /// Whether `field`'s value starts with `prefix` (case-sensitive), e.g. a `kube-probe/` user agent.
    public func value(of field: HTTPField, hasPrefix prefix: some Collection<UInt8>) -> Bool {
        withHeadBytes { span in
            let range = field.value
            guard range.count >= prefix.count, range.upperBound <= span.count else { return false }
            var i = range.lowerBound
            for b in prefix {
                if span[i] != b { return false }
                i += 1
            }
            return true
        }
    }

    // MARK: edits for the forwarded head

    /// Drops every field named `name` from the forwarded request (e.g. `Knative-Serving-Revision`).
    public func removeFields(named name: HTTPFieldName) {
        removedNames.append(name)
    }

    /// Replaces the Host field of the forwarded request with `value` (e.g. from `K-Original-Host`).
    public func replaceHost(with value: some Collection<UInt8>) throws(HTTPSerializationError) {
        guard value.allSatisfy({ CharacterClass.isFieldValue($0) }), !value.isEmpty else { throw .invalidFieldValue }
        hostReplacement.removeAll(keepingCapacity: true)
        hostReplacement.append(contentsOf: value)
        replacesHost = true
    }

    /// Adds `name: value` to the forwarded request (validated: CR, LF, NUL never pass).
    public func addField(name: some Collection<UInt8>, value: some Collection<UInt8>) throws(HTTPSerializationError) {
        try HTTPSerializer.appendField(name: name, value: value, to: &addedLines)
    }

    public func addField(name: String, value: String) throws(HTTPSerializationError) {
        try addField(name: name.utf8, value: value.utf8)
    }

    /// A ticket to resume this request after `.suspend`.
    public var ticket: HTTPExchangeTicket { HTTPExchangeTicket(exchange: self, generation: generation) }

    // MARK: internal

    func begin(buffer: IOBuffer, headStart: Int, now: UInt64, defaults: HTTPRequestTimeouts) {
        // Swapped in, so the previous buffer (normally none) is released outside the access.
        var previous: IOBuffer? = buffer
        swap(&previous, &self.buffer)
        self.headStart = headStart
        headCompleteTime = now
        requestGeneration &+= 1
        requestTimeouts = defaults
        isSuspended = false
        removedNames.removeAll(keepingCapacity: true)
        addedLines.removeAll(keepingCapacity: true)
        replacesHost = false
    }

    func end() {
        requestGeneration &+= 1
        isSuspended = false
        handlerContext = nil
        if buffer != nil {
            // Moved out first: the release happens outside the access to `buffer` (see `begin`).
            var released = buffer.take()
            loop.bufferPool.recycle(&released)
        }
    }

    func resume(generation: UInt64, _ decision: HTTPHandlerDecision) -> Bool {
        guard generation == requestGeneration, isSuspended, let owner else { return false }
        if case .suspend = decision { return false }
        isSuspended = false
        owner.resume(decision)
        return true
    }

    func isRemoved(_ field: HTTPField, in span: Span<UInt8>) -> Bool {
        for name in removedNames where HTTPHead.nameEquals(field, name.lowercased, span) { return true }
        return false
    }
}

extension Array where Element == UInt8 {
    /// An empty span for the no-buffer case.
    fileprivate func withUnsafeBufferPointerFreeSpan<R>(_ body: (Span<UInt8>) -> R) -> R {
        body(self.span)
    }
}
