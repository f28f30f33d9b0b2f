// HTTPProxy layer: the hook queue-proxy and the activator compose their request path on. Per request,
// on the loop, a handler sees the parsed head in the receive buffer and decides: answer locally,
// forward (with edits), or suspend and resume later. After-hooks report the response and the outcome.

/// What a handler does with a request.
public enum HTTPHandlerDecision: Sendable {
    /// Proxy the request to `upstream` (with the edits made on the exchange).
    case forward(HTTPUpstream)
    /// Answer from the proxy itself (probe answers, 503 overflow, ...).
    case respond(HTTPLocalResponse)
    /// Hold the request; call `HTTPExchangeTicket.resume` later with `.forward` or `.respond`. The
    /// client connection reads no further bytes meanwhile. If the client goes away or a request
    /// timeout passes first, `requestCancelled` tells the handler and the ticket goes stale.
    case suspend
    /// Answer with this 101 response, then hand the connection to the handler's `takeOver` (a local
    /// WebSocket endpoint). Only for a bodiless HTTP/1.1 GET carrying `Upgrade` and `Connection:
    /// upgrade`, and not while draining; otherwise the request is answered with an error instead.
    case switchProtocols(HTTPLocalResponse)
}

/// A response the proxy writes itself. Build one once and reuse it: nothing is copied per use but
/// the bytes written to the socket.
public struct HTTPLocalResponse: Sendable {
    public var status: Int
    public var reason: String
    public var fields: [(name: String, value: String)]
    public var body: [UInt8]

    /// Reason defaults to the standard phrase of `status`; `Content-Length` is added on writing.
    public init(status: Int, reason: String? = nil, fields: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.reason = reason ?? HTTPStatusText.reason(status)
        self.fields = fields
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response with `text` as its body (no trailing newline added).
    public static func text(_ status: Int, _ text: String, fields: [(name: String, value: String)] = []) -> HTTPLocalResponse {
        HTTPLocalResponse(status: status, fields: [("Content-Type", "text/plain; charset=utf-8")] + fields, body: Array(text.utf8))
    }
}

/// Why a suspended or in-flight request ended without a normal completion.
public enum HTTPCancellationReason: Sendable, Equatable {
    /// The client closed or reset its connection.
    case clientGone
    /// One of the request's timeouts passed.
    case timedOut
    /// The server is shutting down (drain deadline passed).
    case shutdown
}

/// What `requestFinished` reports for each request.
public struct HTTPRequestSummary: Sendable, Equatable {
    /// Status sent to the client (0 when none was sent).
    public var status: Int
    /// Request bytes read from the client (head and body).
    public var bytesIn: UInt64
    /// Response bytes written to the client (head and body).
    public var bytesOut: UInt64
    /// Of those, the response body's (what Knative's request log reports as the response size).
    public var responseBodyBytes: UInt64
    /// `EventLoop.now` when the head was complete, and when the request finished.
    public var startTime: UInt64
    public var endTime: UInt64
    /// The client went away before the response was complete.
    public var clientAborted: Bool
    /// The response was cut short (upstream reset, timeout after the response started).
    public var truncated: Bool
    /// The request was forwarded to an upstream (false for local answers and cancelled requests).
    public var wasForwarded: Bool
}

/// The request-path hook. One instance per event loop (made by the server's factory on that loop),
/// so it may keep loop-local state without locks. Every call comes on that loop.
public protocol HTTPHandler: AnyObject {
    /// A request head is complete. Inspect `exchange`, edit it, decide.
    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision
    /// A suspended request will never be resumed (client gone, timeout, shutdown): forget its ticket.
    func requestCancelled(_ exchange: HTTPExchange, reason: HTTPCancellationReason)
    /// The final response head is about to be written to the client (from the upstream or local).
    func responseStarted(_ exchange: HTTPExchange, status: Int)
    /// The request is over (response complete, failed, or client gone). Called once per request
    /// that reached `handleRequest`.
    func requestFinished(_ exchange: HTTPExchange, summary: HTTPRequestSummary)
    /// The upstream answered 101 and the connection became a tunnel (hijacked-connection tracking).
    func upgradeStarted(_ exchange: HTTPExchange)
    /// The tunnel closed.
    func upgradeEnded(_ exchange: HTTPExchange)
    /// After `.switchProtocols`: the 101 was written (maybe still queued) and `requestFinished`
    /// reported it. Set `connection.delegate` to the new protocol's handler; bytes the client sent
    /// after the request head are then delivered to it. The server no longer tracks the connection
    /// (its drain does not wait for it): the new owner closes it. `exchange` is valid only during the
    /// call. Default: close.
    func takeOver(_ exchange: HTTPExchange, connection: Connection)
}

extension HTTPHandler {
    public func requestCancelled(_ exchange: HTTPExchange, reason: HTTPCancellationReason) {}
    public func responseStarted(_ exchange: HTTPExchange, status: Int) {}
    public func requestFinished(_ exchange: HTTPExchange, summary: HTTPRequestSummary) {}
    public func upgradeStarted(_ exchange: HTTPExchange) {}
    public func upgradeEnded(_ exchange: HTTPExchange) {}
    public func takeOver(_ exchange: HTTPExchange, connection: Connection) { connection.close() }
}

/// Resumes a suspended request, from any thread. Stale (returns false / does nothing) once the
/// request finished or was cancelled.
public struct HTTPExchangeTicket: @unchecked Sendable {
    // @unchecked: the exchange is touched only on its loop: `resume` hops there when called elsewhere.
    let exchange: HTTPExchange
    let generation: UInt64

    /// Resumes with `.forward` or `.respond` (`.suspend` is ignored). On the exchange's loop the
    /// decision runs at once and the result says whether the ticket was still live; from another
    /// thread it is handed to the loop and the result is true when the hand-over was accepted.
    @discardableResult
    public func resume(_ decision: HTTPHandlerDecision) -> Bool {
        let exchange = self.exchange
        let generation = self.generation
        if exchange.loop.inEventLoop {
            return exchange.resume(generation: generation, decision)
        }
        let box = UncheckedBox(exchange)
        return exchange.loop.execute { _ = box.value.resume(generation: generation, decision) }
    }

    /// True while the request this ticket names is still suspended (only meaningful on its loop).
    public var isLive: Bool { exchange.generation == generation && exchange.isSuspended }
}

/// Carries a loop-bound reference to its own loop inside `execute`.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Standard reason phrases (RFC 9110 §15).
public enum HTTPStatusText {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 417: "Expectation Failed"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}
