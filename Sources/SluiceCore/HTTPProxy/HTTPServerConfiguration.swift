// HTTPProxy layer: the server's and the upstream client's settings, one value type each, validated
// once at the edge. Defaults follow reliability.md (§1a–1f) for an internal hop (queue-proxy, activator).

/// Limits, timeouts and forwarding rules of an `HTTPServer`.
public struct HTTPServerConfiguration: Sendable {
    /// Head limits (64 KiB → 431, request line 16 KiB → 414, 100 fields → 431).
    public var parserLimits = HTTPParserLimits()
    /// Whole request head, from the connection's start (first request) or from its first byte
    /// (later requests): slowloris. 408 if any byte arrived, silent close otherwise.
    public var headTimeout: Duration = .seconds(60)
    /// Keep-alive idle time between requests (internal hop default: 1 h).
    public var idleTimeout: Duration = .seconds(3600)
    /// Longest wait for request body bytes while the server is reading (408 before the response started).
    public var bodyProgressTimeout: Duration = .seconds(60)
    /// Longest time the client may accept no response bytes while some are queued (then close).
    public var writeProgressTimeout: Duration = .seconds(60)
    /// Connections across all loops (each loop gets an equal share); at the limit accepting pauses
    /// and new connections wait in the kernel backlog. Default: (RLIMIT_NOFILE − 64) / 2 at the edge.
    public var maxConnections = 4096
    /// Request bodies longer than this are answered 413 (nil: unlimited).
    public var maxRequestBodyBytes: UInt64? = nil
    /// An early response (sent before the request body was read) keeps the connection alive only if at
    /// most this many body bytes remain to be read and discarded; otherwise `Connection: close`.
    public var maxDiscardedBodyBytes: UInt64 = 64 * 1024
    /// How long a connection that got a final response with `Connection: close` waits for more input
    /// (which it discards) after its output is shut down — lingering close, so the client reads the
    /// response instead of a reset. Each read re-arms it, up to `lingerTotalTimeout` (nginx: 5 s / 30 s).
    public var lingerTimeout: Duration = .seconds(5)
    public var lingerTotalTimeout: Duration = .seconds(30)
    /// Upgrade protocols proxied after the upstream's 101 (compared case-insensitively). Only on
    /// bodiless GET requests.
    public var allowedUpgrades: [String] = ["websocket"]
    /// Headers the proxy adds to every forwarded request.
    public var forwardedHeaders = ForwardedHeaderOptions()
    /// Per-connection TCP options (watermarks: 64 KiB high / 16 KiB low).
    public var connection = ConnectionOptions()
    /// Listen backlog.
    public var backlog: Int32 = 1024

    public init() {}

    /// reliability.md §1c: (RLIMIT_NOFILE − 64) / 2 — each proxied connection may need an upstream fd.
    public static func defaultMaxConnections(fileDescriptorLimit: Int) -> Int {
        max(1, (fileDescriptorLimit - 64) / 2)
    }
}

/// The forwarding headers the proxy adds (RFC 7239 and the de-facto X-Forwarded-* family).
public struct ForwardedHeaderOptions: Sendable {
    /// Append the peer's address to X-Forwarded-For (one combined line, as Go's ReverseProxy does).
    public var appendXForwardedFor = true
    /// X-Forwarded-Proto value to add (nil: none).
    public var xForwardedProto: String? = "http"
    /// Replace a client-sent X-Forwarded-Proto (an ingress must; an internal hop keeps the caller's).
    public var overwriteXForwardedProto = false
    /// Add an RFC 7239 `Forwarded: for=…;proto=…` line for this hop.
    public var addForwarded = false

    public init() {}
}

/// How the proxy talks to one upstream: connect timeout, retries and the idle pool.
public struct HTTPClientConfiguration: Sendable {
    /// One connect attempt (reliability.md §1e: 1 s to an app on loopback).
    public var connectTimeout: Duration = .seconds(1)
    /// A failed connect (refused, timed out) is retried this many times before 502.
    public var connectRetries = 1
    /// Idle pooled connections kept per loop; more are closed when released.
    public var maxIdleConnections = 1000
    /// How long a pooled connection may sit idle (below the app's own keep-alive: gunicorn 2 s,
    /// Node 5 s), so the app never closes one we are about to reuse.
    public var idleTimeout: Duration = .milliseconds(1500)
    /// TCP options of upstream connections (watermarks).
    public var connection = ConnectionOptions()
    /// Longest upstream response head accepted (a longer one is a 502).
    public var parserLimits = HTTPParserLimits(maxHeadBytes: 64 * 1024, maxStartLineBytes: 16 * 1024, maxFieldCount: 100)

    public init() {}
}

/// Per-request timeouts a handler may set (Knative's revision timeouts). Zero or nil: off.
/// Before the response started, expiry answers 504 with `message`; after, `message` is appended to
/// the body and the message is ended (last chunk for chunked, close when short of Content-Length).
public struct HTTPRequestTimeouts: Sendable, Equatable {
    /// Whole request, from the complete head (queueing while suspended counts).
    public var total: Duration?
    /// From the complete head to the first response byte.
    public var responseStart: Duration?
    /// Between two response bytes; also runs before the first one.
    public var idle: Duration?
    /// Body of the 504 and the text appended after the response started.
    public var message: String

    public init(total: Duration? = nil, responseStart: Duration? = nil, idle: Duration? = nil, message: String = "request timeout") {
        self.total = total
        self.responseStart = responseStart
        self.idle = idle
        self.message = message
    }
}
