// HTTP1 layer, tooling: turns a byte stream (pipelined messages, any split) into whole messages with
// copied fields and bodies. Used by `sluice http-parse`, the fuzzer and tests; it allocates freely,
// so the server's hot path drives `HTTPHead` and `HTTPBodyDecoder` directly instead.

/// One message with its bytes copied out of the stream.
public struct HTTPParsedMessage: Hashable, Sendable {
    public var isRequest: Bool
    public var method: [UInt8] = []
    public var target: [UInt8] = []
    public var version: HTTPVersion = .http11
    public var status: Int = 0
    public var reason: [UInt8] = []
    /// Every field line, in order.
    public var fields: [HTTPFieldBytes] = []
    public var body: [UInt8] = []
    public var keepAlive: Bool = false
    public var framing: HTTPBodyFraming = .none
    /// For `.tunnel` framing: every byte after the head, up to the end of the stream.
    public var tunnel: [UInt8]? = nil
    /// Where the message started in the stream.
    public var offset: Int = 0
}

/// A field line's name and (trimmed) value.
public struct HTTPFieldBytes: Hashable, Sendable {
    public var name: [UInt8]
    public var value: [UInt8]
}

/// What the stream produced.
public enum HTTPStreamEvent: Hashable, Sendable {
    case message(HTTPParsedMessage)
    /// `offset` counts from the first byte of the stream.
    case error(ParseError, offset: Int)
    /// The stream ended in the middle of a message.
    case incomplete
}

/// Splits a stream of requests (or responses) into messages. Feed bytes as they arrive, then call
/// `finish()` at the end of the stream.
public struct HTTPMessageStream: Sendable {
    enum Phase: Sendable { case head, body, tunnel, failed }

    public let parsesResponses: Bool
    var head: HTTPHead
    var decoder: HTTPBodyDecoder
    var buffer: [UInt8] = []
    /// Stream offset of `buffer[0]`.
    var base = 0
    var bodyStart = 0
    var phase: Phase = .head
    var current = HTTPParsedMessage(isRequest: true)

    public init(parsesResponses: Bool = false, limits: HTTPParserLimits = .default) {
        self.parsesResponses = parsesResponses
        head = HTTPHead(limits: limits)
        decoder = HTTPBodyDecoder(framing: .none, limits: limits)
    }

    /// Adds bytes; returns the messages (and at most one error) they completed.
    public mutating func feed(_ bytes: [UInt8]) -> [HTTPStreamEvent] {
        guard phase != .failed else { return [] }
        buffer.append(contentsOf: bytes)
        var events: [HTTPStreamEvent] = []
        while true {
            switch phase {
            case .failed:
                return events
            case .tunnel:
                return events
            case .head:
                if buffer.isEmpty { return events }
                let bytes = buffer
                let result = parsesResponses ? head.parseResponse(bytes.span) : head.parseRequest(bytes.span)
                switch result {
                case .incomplete:
                    return events
                case .error(let error, let offset):
                    phase = .failed
                    events.append(.error(error, offset: base + offset))
                    return events
                case .complete(let length):
                    current = copyHead()
                    current.offset = base
                    consume(length)
                    bodyStart = base
                    if head.framing == .tunnel {
                        phase = .tunnel
                        return events
                    }
                    decoder.reset(framing: head.framing)
                    phase = .body
                }
            case .body:
                var offset = 0
                var done = false
                let bytes = buffer
                decodeLoop: while true {
                    switch decoder.decode(bytes.span.extracting(offset...)) {
                    case .payload(let range):
                        current.body.append(contentsOf: buffer[(offset + range.lowerBound)..<(offset + range.upperBound)])
                        offset += range.upperBound
                    case .needMore:
                        offset = buffer.count
                        break decodeLoop
                    case .complete(let consumed):
                        offset += consumed
                        done = true
                        break decodeLoop
                    case .error(let error, let at):
                        phase = .failed
                        events.append(.error(error, offset: bodyStart + at))
                        return events
                    }
                }
                consume(offset)
                if !done { return events }
                events.append(.message(current))
                phase = .head
            }
        }
    }

    /// The stream ended: completes a close-delimited body or a tunnel, or reports what is missing.
    public mutating func finish() -> [HTTPStreamEvent] {
        switch phase {
        case .failed:
            return []
        case .tunnel:
            current.tunnel = buffer
            consume(buffer.count)
            phase = .failed
            return [.message(current)]
        case .head:
            phase = .failed
            return buffer.isEmpty ? [] : [.incomplete]
        case .body:
            phase = .failed
            switch decoder.finish() {
            case .complete: return [.message(current)]
            case .error(.prematureEndOfBody, _): return [.incomplete]
            case .error(let error, let at): return [.error(error, offset: bodyStart + at)]
            default: return [.incomplete]
            }
        }
    }

    private mutating func consume(_ count: Int) {
        buffer.removeFirst(count)
        base += count
    }

    private func copyHead() -> HTTPParsedMessage {
        var m = HTTPParsedMessage(isRequest: !parsesResponses)
        m.method = Array(buffer[head.methodRange])
        m.target = Array(buffer[head.target])
        m.version = head.version
        m.status = head.status
        m.reason = Array(buffer[head.reason])
        m.fields = head.fields.map { HTTPFieldBytes(name: Array(buffer[$0.name]), value: Array(buffer[$0.value])) }
        m.keepAlive = head.keepAlive
        m.framing = head.framing
        return m
    }
}
