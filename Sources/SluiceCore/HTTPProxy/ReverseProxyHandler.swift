// HTTPProxy layer: the plain reverse proxy — every request goes to one upstream, with the operator's
// response-start and whole-request timeouts. `sluice proxy` and the benchmark run this handler.

/// Forwards every request to `upstream`.
public final class ReverseProxyHandler: HTTPHandler {
    public let upstream: HTTPUpstream
    public let timeouts: HTTPRequestTimeouts
    private let decision: HTTPHandlerDecision

    public init(upstream: HTTPUpstream, timeouts: HTTPRequestTimeouts = HTTPRequestTimeouts()) {
        self.upstream = upstream
        self.timeouts = timeouts
        decision = .forward(upstream)
    }

    public func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        exchange.timeouts = timeouts
        return decision
    }
}
