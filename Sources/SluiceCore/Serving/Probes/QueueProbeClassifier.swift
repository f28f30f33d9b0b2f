// What queue-proxy's main port does with a request before anything else: answer it as a probe (Knative's
// drainer and health handler) or pass it on, with the flags the rest of the chain needs. Serving layer;
// pure and allocation-free (header values stay views of the request).

/// The decision for one request on queue-proxy's serving port.
public enum QueueProbeDecision<Value: Collection>: Equatable where Value.Element == UInt8, Value: Equatable {
    /// Not answered here: run the normal chain (drainer re-arm, timeouts, stats, breaker, proxy).
    case proxy(QueueRequestTraits)
    /// Probe while draining: 503 `shutting down`.
    case shuttingDown
    /// A probe user agent with a missing or wrong `K-Network-Probe`: 400 naming the value (empty when absent).
    case unexpectedProbeValue(Value?)
    /// Pod readiness probe (`K-Network-Probe: queue`): run the user-container readiness probe, then answer
    /// 200 `queue` or 503 with an empty body.
    case readinessProbe
    /// Ingress probe (`K-Network-Probe: probe`): 200, empty body, `K-Network-Hash` echoed.
    case networkProbe(hash: Value)
    /// Ingress probe without a hash: 400.
    case networkProbeWithoutHash
}

/// Facts about a request that goes through the chain.
public struct QueueRequestTraits: Sendable, Equatable {
    /// A kubelet probe that reached the app (`K-Kubelet-Probe` header): skips stats and the breaker.
    public var isKubeletProbe: Bool
    /// Any probe (kubelet, or a non-empty `K-Network-Probe`): kept out of request metrics, and out of
    /// the request log unless probe logging is on.
    public var isProbe: Bool
    /// Came through the activator (`K-Proxy-Request: activator`): counted as proxied in the Stat.
    public var isProxiedByActivator: Bool

    public init(isKubeletProbe: Bool, isProbe: Bool, isProxiedByActivator: Bool) {
        self.isKubeletProbe = isKubeletProbe
        self.isProbe = isProbe
        self.isProxiedByActivator = isProxiedByActivator
    }
}

public enum QueueProbeClassifier {
    /// User agents whose requests are answered as health checks (besides `kube-probe/…`).
    public static let healthCheckUserAgentPrefixes = [
        KnativeHeader.activatorProbeUserAgent, KnativeHeader.autoscalingProbeUserAgent,
    ]

    /// Classifies a request exactly as Knative's queue-proxy does: probe user agents (kubelet, activator,
    /// autoscaling) are answered here; `K-Network-Probe: probe` from anyone is answered here; everything
    /// else goes through, flagged.
    public static func classify<Headers: RequestHeaderView>(
        _ headers: Headers, draining: Bool
    ) -> QueueProbeDecision<Headers.Bytes> where Headers.Bytes: Equatable {
        let userAgent = headers.firstValue(named: KnativeHeader.userAgent)
        let probeValue = headers.firstValue(named: KnativeHeader.networkProbe)
        let kubeletUserAgent =
            userAgent.map { ASCII.hasPrefix($0, KnativeHeader.kubeProbeUserAgentPrefix.utf8) } ?? false

        if kubeletUserAgent || isHealthCheckAgent(userAgent) {
            if draining { return .shuttingDown }
            guard let probeValue, probeValue.elementsEqual(KnativeHeader.queueProbeValue.utf8) else {
                return .unexpectedProbeValue(probeValue)
            }
            return .readinessProbe
        }
        if let probeValue, probeValue.elementsEqual(KnativeHeader.ingressProbeValue.utf8) {
            if draining { return .shuttingDown }
            guard let hash = headers.firstValue(named: KnativeHeader.networkHash), !hash.isEmpty else {
                return .networkProbeWithoutHash
            }
            return .networkProbe(hash: hash)
        }
        let kubeletHeader = headers.hasNonEmptyValue(named: KnativeHeader.kubeletProbe)
        let probeHeader = !(probeValue?.isEmpty ?? true)
        return .proxy(
            QueueRequestTraits(
                isKubeletProbe: kubeletHeader,
                isProbe: kubeletHeader || probeHeader,
                isProxiedByActivator: headers.firstValue(
                    named: KnativeHeader.proxyRequest, equals: KnativeHeader.activatorProxyValue)))
    }

    private static func isHealthCheckAgent<Value: Collection>(_ userAgent: Value?) -> Bool where Value.Element == UInt8 {
        guard let userAgent else { return false }
        for prefix in healthCheckUserAgentPrefixes where ASCII.hasPrefix(userAgent, prefix.utf8) {
            return true
        }
        return false
    }
}

/// The fixed answers queue-proxy writes itself, byte for byte as Knative's Go handlers produce them:
/// `http.Error` bodies end in a newline and come with `text/plain` and `nosniff`; the readiness `queue`
/// and timeout bodies have no newline.
public struct LocalResponse: Sendable, Equatable {
    public var status: Int
    public var body: [UInt8]
    /// Extra header fields besides Date/Content-Length (the server adds those).
    public var headers: [(name: String, value: String)]

    public init(status: Int, body: [UInt8], headers: [(name: String, value: String)]) {
        self.status = status
        self.body = body
        self.headers = headers
    }

    public static func == (lhs: LocalResponse, rhs: LocalResponse) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body
            && lhs.headers.map { "\($0.name): \($0.value)" } == rhs.headers.map { "\($0.name): \($0.value)" }
    }

    public static let textPlain = "text/plain; charset=utf-8"

    /// Go's `http.Error`: the message plus a newline, `text/plain`, `X-Content-Type-Options: nosniff`.
    public static func goError(status: Int, message: String) -> LocalResponse {
        LocalResponse(
            status: status, body: Array((message + "\n").utf8),
            headers: [("Content-Type", textPlain), ("X-Content-Type-Options", "nosniff")])
    }

    /// 503 while draining.
    public static let shuttingDown = goError(status: 503, message: "shutting down")
    /// 503 from a full breaker.
    public static let queueFull = goError(status: 503, message: Breaker.queueFullMessage)
    /// 200 `queue`: the app is ready.
    public static let ready = LocalResponse(status: 200, body: Array("queue".utf8), headers: [("Content-Type", textPlain)])
    /// 503 with no body: the app is not ready.
    public static let notReady = LocalResponse(status: 503, body: [], headers: [])
    /// 400 for an ingress probe without `K-Network-Hash`.
    public static let networkProbeWithoutHash = goError(
        status: 400, message: "a probe request must contain a non-empty \"\(KnativeHeader.networkHash)\" header")
    /// 504 `request timeout` (queue-proxy's timeout handler writes no newline).
    public static let requestTimeout = LocalResponse(
        status: 504, body: Array(RequestTimeouts.queueProxyMessage.utf8), headers: [("Content-Type", textPlain)])

    /// 400 naming the unexpected `K-Network-Probe` value (empty when the header is absent).
    public static func unexpectedProbeValue<Value: Collection>(_ value: Value?) -> LocalResponse where Value.Element == UInt8 {
        var body = Array("unexpected probe header value: ".utf8)
        if let value { body.append(contentsOf: value) }
        body.append(UInt8(ascii: "\n"))
        return LocalResponse(
            status: 400, body: body,
            headers: [("Content-Type", textPlain), ("X-Content-Type-Options", "nosniff")])
    }

    /// 200 with no body, echoing the ingress probe's hash.
    public static func networkProbe<Value: Collection>(hash: Value) -> LocalResponse where Value.Element == UInt8 {
        LocalResponse(status: 200, body: [], headers: [(KnativeHeader.networkHash, String(decoding: hash, as: UTF8.self))])
    }
}
