// The header names and values of Knative's data plane (knative.dev/networking header package) and the
// trace-context headers queue-proxy passes through untouched. Serving layer constants.

/// Header names and fixed values that Knative's queue-proxy and activator read or write.
public enum KnativeHeader {
    /// Probe marker: `queue` for readiness probes of the pod, `probe` for ingress probes.
    public static let networkProbe = "K-Network-Probe"
    /// The ingress probe's configuration hash, echoed in the probe's answer.
    public static let networkHash = "K-Network-Hash"
    /// Older kubelet-probe marker (Istio rewrote the user agent); such requests skip stats and breaker.
    public static let kubeletProbe = "K-Kubelet-Probe"
    /// Set to `activator` on requests the activator forwards.
    public static let proxyRequest = "K-Proxy-Request"
    /// The original Host, moved aside by the activator; queue-proxy restores it.
    public static let originalHost = "K-Original-Host"
    /// Which traffic tag the ingress chose.
    public static let routeTag = "Knative-Serving-Tag"
    /// `true` when the request came through the default route.
    public static let defaultRoute = "Knative-Serving-Default-Route"
    /// Tells load balancers to send the request straight to its target.
    public static let passthroughLoadBalancing = "K-Passthrough-Lb"
    /// Revision routing headers for the activator; removed before the app.
    public static let revisionName = "Knative-Serving-Revision"
    public static let revisionNamespace = "Knative-Serving-Namespace"
    public static let userAgent = "User-Agent"
    public static let host = "Host"

    /// `K-Network-Probe` value of the pod readiness probe (queue-proxy's component name).
    public static let queueProbeValue = "queue"
    /// `K-Network-Probe` value of ingress probes.
    public static let ingressProbeValue = "probe"
    /// `K-Proxy-Request` value set by the activator.
    public static let activatorProxyValue = "activator"

    /// User agent prefix of kubelet probes (`kube-probe/<major>.<minor>`).
    public static let kubeProbeUserAgentPrefix = "kube-probe/"
    public static let activatorProbeUserAgent = "Knative-Activator-Probe"
    public static let queueProxyProbeUserAgent = "Knative-Queue-Proxy-Probe"
    public static let ingressProbeUserAgent = "Knative-Ingress-Probe"
    public static let autoscalingProbeUserAgent = "Knative-Autoscaling-Probe"

    /// Media type of the Stat served on the metrics port.
    public static let protobufMediaType = "application/protobuf"
}

/// Trace-context headers: queue-proxy forwards them to the app unchanged and reads the trace id for
/// request logs (W3C first, then B3).
public enum TraceContextHeader {
    public static let traceparent = "traceparent"
    public static let tracestate = "tracestate"
    /// B3 single-header form.
    public static let b3 = "b3"
    public static let b3TraceID = "X-B3-TraceId"
    public static let b3SpanID = "X-B3-SpanId"
    public static let b3ParentSpanID = "X-B3-ParentSpanId"
    public static let b3Sampled = "X-B3-Sampled"
    public static let b3Flags = "X-B3-Flags"

    /// Every trace-context header name, for code that must keep them (for example when pruning).
    public static let all: [String] = [
        traceparent, tracestate, b3, b3TraceID, b3SpanID, b3ParentSpanID, b3Sampled, b3Flags,
    ]

    /// The trace id a request log shows: the second field of `traceparent`, else `X-B3-TraceId`, else
    /// nothing. Calls `body` with the bytes (a view of the header value) when there is one.
    public static func withTraceID<Headers: RequestHeaderView, Result>(
        in headers: Headers,
        _ body: (Headers.Bytes.SubSequence?) -> Result
    ) -> Result {
        if let parent = headers.firstValue(named: traceparent), !parent.isEmpty {
            // Knative splits on "-" at most twice and takes the second part when there are two or more.
            if let firstDash = parent.firstIndex(of: UInt8(ascii: "-")) {
                let rest = parent[parent.index(after: firstDash)...]
                let end = rest.firstIndex(of: UInt8(ascii: "-")) ?? rest.endIndex
                return body(rest[rest.startIndex..<end])
            }
        }
        if let b3Value = headers.firstValue(named: b3TraceID), !b3Value.isEmpty {
            return body(b3Value[...])
        }
        return body(nil)
    }
}
