// Knative's revision timeouts for one request as a pure state machine: the revision timeout bounds the
// whole request, the response-start timeout the wait for the first response byte, the idle timeout the
// gap between writes (counted from the start until the first write). Serving layer; lives inside the
// per-request context (no allocation); the event loop arms one timer at `nextDeadline`.

/// The three limits of a revision (0 or nil = off).
public struct RevisionTimeouts: Sendable, Equatable {
    /// Whole request (`REVISION_TIMEOUT_SECONDS`).
    public var total: Duration?
    /// Until the response starts (`REVISION_RESPONSE_START_TIMEOUT_SECONDS`).
    public var responseStart: Duration?
    /// Between two writes to the client, and from the start to the first one (`REVISION_IDLE_TIMEOUT_SECONDS`).
    public var idle: Duration?

    public init(total: Duration?, responseStart: Duration? = nil, idle: Duration? = nil) {
        self.total = Self.positive(total)
        self.responseStart = Self.positive(responseStart)
        self.idle = Self.positive(idle)
    }

    private static func positive(_ value: Duration?) -> Duration? {
        guard let value, value > .zero else { return nil }
        return value
    }
}

public struct RequestTimeouts: Sendable, Equatable {
    /// queue-proxy's timeout body (no trailing newline).
    public static let queueProxyMessage = "request timeout"
    /// The activator's timeout body.
    public static let activatorMessage = "activator request timeout"

    public enum Kind: Sendable, Equatable {
        case total, responseStart, idle
    }

    /// What to do when a timeout fires.
    public enum Expiry: Sendable, Equatable {
        /// Nothing was sent yet: answer 504 with the timeout message as the body.
        case respondGatewayTimeout(Kind)
        /// The response had started: append the timeout message to the body, end the message (last chunk
        /// for chunked; close the connection when the body is short of its Content-Length).
        case abortStartedResponse(Kind)
    }

    public let limits: RevisionTimeouts
    public private(set) var startedAt: ServingInstant
    public private(set) var lastWriteAt: ServingInstant?
    public private(set) var expired: Expiry?

    public init(limits: RevisionTimeouts, startedAt: ServingInstant) {
        self.limits = limits
        self.startedAt = startedAt
    }

    /// Whether the status line (or any byte) has been written to the client.
    public var responseStarted: Bool { lastWriteAt != nil }

    /// The response head or body bytes were written to the client at `now`.
    public mutating func noteWrite(at now: ServingInstant) {
        guard expired == nil else { return }
        lastWriteAt = now
    }

    /// When the next timeout could fire; nil when none is armed (or one already fired).
    public var nextDeadline: ServingInstant? {
        guard expired == nil else { return nil }
        var earliest: ServingInstant?
        if let total = limits.total { earliest = startedAt + total }
        if let start = limits.responseStart, lastWriteAt == nil {
            earliest = Self.earlier(earliest, startedAt + start)
        }
        if let idle = limits.idle {
            earliest = Self.earlier(earliest, (lastWriteAt ?? startedAt) + idle)
        }
        return earliest
    }

    /// Checks the limits at `now` (call it from the timer). Returns the expiry once, when a limit passed.
    public mutating func check(at now: ServingInstant) -> Expiry? {
        guard expired == nil else { return nil }
        let kind: Kind
        if let total = limits.total, now >= startedAt + total {
            kind = .total
        } else if let start = limits.responseStart, lastWriteAt == nil, now >= startedAt + start {
            kind = .responseStart
        } else if let idle = limits.idle, now >= (lastWriteAt ?? startedAt) + idle {
            kind = .idle
        } else {
            return nil
        }
        let expiry: Expiry = responseStarted ? .abortStartedResponse(kind) : .respondGatewayTimeout(kind)
        expired = expiry
        return expiry
    }

    private static func earlier(_ a: ServingInstant?, _ b: ServingInstant) -> ServingInstant {
        guard let a else { return b }
        return min(a, b)
    }
}
