// queue-proxy's request path on the serving port, composed in one place (Knative's sharedmain handlers):
// request log → drainer (probes answered here) → hijack tracking → route tag → revision timeouts →
// forwarded shim → stats + breaker → app metrics → reverse proxy to 127.0.0.1:$USER_PORT with the
// revision headers pruned. Serving layer; runs on queue-proxy's one event loop (see QueueProxyServer).

/// Per-request state: kept in a per-loop pool and reused, so a request allocates nothing here.
final class QueueRequestContext: BreakerWaiter {
    unowned let handler: QueueProxyHandler
    /// The request's place in the breaker (its own queue node).
    let breakerTicket = BreakerTicket()
    /// Where to resume the request when the breaker grants it a slot.
    var exchangeTicket: HTTPExchangeTicket?
    /// Counted as an "in" event in the autoscaler statistics (everything but kubelet probes).
    var countedInStatistics = false
    /// Came through the activator (`K-Proxy-Request: activator`).
    var proxied = false
    /// Knative's IsProbe: kept out of request metrics and, unless probe logging is on, the request log.
    var isProbe = false
    /// Went through the chain towards the app (request metrics apply).
    var reachedChain = false
    /// Suspended waiting for the user container's readiness check.
    var awaitsReadiness = false

    init(handler: QueueProxyHandler) {
        self.handler = handler
    }

    func reset() {
        exchangeTicket = nil
        countedInStatistics = false
        proxied = false
        isProbe = false
        reachedChain = false
        awaitsReadiness = false
    }

    func breakerDidGrantSlot(_ ticket: BreakerTicket) {
        handler.slotGranted(self)
    }
}

/// The serving port's handler. One instance on queue-proxy's loop; the shared state (breaker, stats,
/// drain, readiness) lives in `QueueProxyState`.
public final class QueueProxyHandler: HTTPHandler {
    let state: QueueProxyState
    private let forward: HTTPHandlerDecision
    private var pool: [QueueRequestContext] = []
    private var forwardedValue: [UInt8] = []
    private var logLine: [UInt8] = []
    private var logRenderer: RequestLogRenderer?

    // Knative's fixed answers, built once (using them allocates nothing).
    static let shuttingDown = HTTPLocalResponse(LocalResponse.shuttingDown)
    static let queueFull = HTTPLocalResponse(LocalResponse.queueFull)
    static let ready = HTTPLocalResponse(LocalResponse.ready)
    static let notReady = HTTPLocalResponse(LocalResponse.notReady)
    static let networkProbeWithoutHash = HTTPLocalResponse(LocalResponse.networkProbeWithoutHash)

    static let revisionName = HTTPFieldName(KnativeHeader.revisionName)
    static let revisionNamespace = HTTPFieldName(KnativeHeader.revisionNamespace)
    static let originalHost = HTTPFieldName(KnativeHeader.originalHost)
    static let forwardedName = Array(ForwardedHeaderShim.forwarded.utf8)
    static let teName = Array("TE".utf8)
    static let trailersValue = Array("trailers".utf8)

    init(state: QueueProxyState) {
        self.state = state
        forward = .forward(state.app)
        pool.reserveCapacity(64)
        forwardedValue.reserveCapacity(256)
        if let template = state.configuration.observability.requestLog, state.configuration.observability.enableRequestLog {
            logRenderer = RequestLogRenderer(template: template, revision: state.configuration.revision)
            logLine.reserveCapacity(1024)
        }
    }

    // MARK: request path

    public func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        let headers = ExchangeHeaderView(exchange)
        let context = takeContext()
        exchange.context = context
        // Requests answered here matter to the request log only; on the proxy path the traits say it.
        if logRenderer != nil { context.isProbe = Self.isProbe(headers) }

        // Drainer + health check: probes are answered here and never reach the app.
        switch QueueProbeClassifier.classify(headers, draining: state.drain.isDraining) {
        case .shuttingDown:
            return .respond(Self.shuttingDown)
        case .unexpectedProbeValue(let value):
            return .respond(HTTPLocalResponse(LocalResponse.unexpectedProbeValue(value)))
        case .networkProbeWithoutHash:
            return .respond(Self.networkProbeWithoutHash)
        case .networkProbe(let hash):
            return .respond(HTTPLocalResponse(LocalResponse.networkProbe(hash: hash)))
        case .readinessProbe:
            return state.readinessProbeArrived(exchange, context: context)
        case .proxy(let traits):
            return proxy(exchange, headers: headers, traits: traits, context: context)
        }
    }

    private func proxy(_ exchange: HTTPExchange, headers: ExchangeHeaderView, traits: QueueRequestTraits,
                       context: QueueRequestContext) -> HTTPHandlerDecision {
        let now = state.now
        context.reachedChain = true
        context.isProbe = traits.isProbe
        // Drainer: every request (not a probe) restarts the quiet period.
        state.drain.requestArrived(at: now)
        // Route tag: Knative only labels its OpenTelemetry metrics and spans with it; the headers reach
        // the app unchanged, and Sluice's Prometheus families carry no tag label (Knative's don't either).
        // Revision timeouts (queueing in the breaker counts, as the timeout handler wraps it).
        exchange.timeouts = state.requestTimeouts
        // Forwarded shim: an RFC 7239 Forwarded built from X-Forwarded-* when the request has none.
        if ForwardedHeaderShim.synthesize(from: headers, into: &forwardedValue) {
            try? exchange.addField(name: Self.forwardedName, value: forwardedValue)
        }
        // Header-pruning reverse proxy: the activator's revision headers never reach the app.
        exchange.removeFields(named: Self.revisionName)
        exchange.removeFields(named: Self.revisionNamespace)
        // Go's reverse proxy drops TE as hop-by-hop but keeps `TE: trailers` (gRPC needs it).
        if let te = exchange.head.firstField(.te), Self.listsTrailers(te, in: exchange) {
            try? exchange.addField(name: Self.teName, value: Self.trailersValue)
        }
        // Kubelet probes that reach the app skip the host rewrite, the statistics and the breaker.
        if traits.isKubeletProbe { return forward }

        let plan = UpstreamHeaderPlan.forRequest(headers, traits: traits)
        if let host = plan.hostOverride {
            do {
                try exchange.replaceHost(with: host)
                exchange.removeFields(named: Self.originalHost)
            } catch {
                // A K-Original-Host the serializer refuses (control bytes) leaves the Host as it was.
            }
        }

        context.countedInStatistics = true
        context.proxied = traits.isProxiedByActivator
        state.statistics.requestStarted(at: now, proxied: context.proxied)

        guard let breaker = state.breaker else { return forward }
        context.exchangeTicket = exchange.ticket
        switch breaker.tryAcquire(context.breakerTicket, waiter: context) {
        case .acquired:
            return forward
        case .queued:
            return .suspend
        case .overflow:
            return .respond(Self.queueFull)
        }
    }

    /// The breaker handed a waiting request its slot: resume it towards the app.
    func slotGranted(_ context: QueueRequestContext) {
        if let ticket = context.exchangeTicket, ticket.resume(forward) { return }
        // The request ended meanwhile (it is cancelled before this can happen; be safe anyway).
        state.breaker?.release(context.breakerTicket)
    }

    public func requestCancelled(_ exchange: HTTPExchange, reason: HTTPCancellationReason) {
        guard let context = exchange.context as? QueueRequestContext else { return }
        state.breaker?.cancel(context.breakerTicket)
        if context.awaitsReadiness { state.readinessWaiterGone(exchange) }
    }

    public func requestFinished(_ exchange: HTTPExchange, summary: HTTPRequestSummary) {
        guard let context = exchange.context as? QueueRequestContext else { return }
        let now = state.now
        if let breaker = state.breaker {
            breaker.cancel(context.breakerTicket)
            breaker.release(context.breakerTicket)
        }
        if context.countedInStatistics {
            state.statistics.requestFinished(at: now, proxied: context.proxied)
        }
        let latency = Duration.nanoseconds(Int64(truncatingIfNeeded: summary.endTime &- summary.startTime))
        if context.reachedChain && !context.isProbe && summary.status > 0 {
            state.requestMetrics.record(status: summary.status, latency: latency)
            if summary.wasForwarded { state.appRequestMetrics.record(status: summary.status, latency: latency) }
        }
        if logRenderer != nil && (!context.isProbe || state.configuration.observability.enableProbeRequestLog) {
            writeRequestLog(exchange, summary: summary, latency: latency)
        }
        context.reset()
        pool.append(context)
        state.requestEnded()
    }

    public func upgradeStarted(_ exchange: HTTPExchange) {
        state.upgradedConnections += 1
    }

    public func upgradeEnded(_ exchange: HTTPExchange) {
        // requestFinished follows and ends the request itself.
        state.upgradedConnections -= 1
    }

    // MARK: helpers

    private func takeContext() -> QueueRequestContext {
        state.activeRequests += 1
        if let context = pool.popLast() { return context }
        return QueueRequestContext(handler: self)
    }

    /// Knative's IsProbe: a `K-Network-Probe` value, a kubelet user agent or a `K-Kubelet-Probe` header.
    static func isProbe(_ headers: ExchangeHeaderView) -> Bool {
        headers.hasNonEmptyValue(named: KnativeHeader.networkProbe)
            || headers.firstValue(named: KnativeHeader.userAgent, hasPrefix: KnativeHeader.kubeProbeUserAgentPrefix)
            || headers.hasNonEmptyValue(named: KnativeHeader.kubeletProbe)
    }

    /// Whether a TE field lists the `trailers` token (comma-separated, case-insensitive).
    static func listsTrailers(_ field: HTTPField, in exchange: HTTPExchange) -> Bool {
        exchange.withHeadBytes { span in
            let range = field.value
            guard range.upperBound <= span.count else { return false }
            var start = range.lowerBound
            while start < range.upperBound {
                var end = start
                while end < range.upperBound && span[end] != UInt8(ascii: ",") { end += 1 }
                var lower = start
                var upper = end
                while lower < upper && (span[lower] == 0x20 || span[lower] == 0x09) { lower += 1 }
                while upper > lower && (span[upper - 1] == 0x20 || span[upper - 1] == 0x09) { upper -= 1 }
                if upper - lower == trailersValue.count {
                    var equal = true
                    for i in 0 ..< trailersValue.count where ASCII.lowercased(span[lower + i]) != trailersValue[i] {
                        equal = false
                        break
                    }
                    if equal { return true }
                }
                start = end + 1
            }
            return false
        }
    }

    private func writeRequestLog(_ exchange: HTTPExchange, summary: HTTPRequestSummary, latency: Duration) {
        guard logRenderer != nil, let whole = exchange.slice(0 ..< exchange.head.headLength) else { return }
        let head = exchange.head
        let base = whole.range.lowerBound
        let buffer = whole.buffer
        let contentLength: Int64
        switch head.framing {
        case .contentLength(let length): contentLength = Int64(clamping: length)
        case .chunked: contentLength = -1
        default: contentLength = 0
        }
        let request = RequestLogRequest(
            method: HeadBytes(buffer: buffer, range: base + head.methodRange.lowerBound ..< base + head.methodRange.upperBound),
            target: HeadBytes(buffer: buffer, range: base + head.target.lowerBound ..< base + head.target.upperBound),
            protocolMajor: 1, protocolMinor: head.version == .http10 ? 0 : 1,
            headers: ExchangeHeaderView(exchange), contentLength: contentLength,
            remoteAddress: Array((exchange.peerAddress?.description ?? "").utf8))
        let response = RequestLogResponse(
            code: summary.status, size: Int(clamping: summary.responseBodyBytes), latency: latency)
        logLine.removeAll(keepingCapacity: true)
        // Rendered in place (optional chaining mutates the stored renderer, so its buffers stay warm).
        logRenderer?.render(request: request, response: response, into: &logLine)
        state.requestLog?.write(logLine)
    }
}

extension HTTPLocalResponse {
    /// The server's form of one of Knative's fixed answers.
    init(_ response: LocalResponse) {
        self.init(status: response.status, fields: response.headers, body: response.body)
    }
}

/// Where request-log lines go (Knative writes them to stdout). Called on the loop, once per line.
public protocol RequestLogSink: AnyObject {
    func write(_ line: [UInt8])
}

extension LineOutput: RequestLogSink {}
