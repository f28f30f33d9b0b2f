// Which of the client's header fields queue-proxy hands to the app, and what it changes: the activator's
// revision routing headers are removed, `K-Original-Host` becomes the Host, a synthesised `Forwarded` is
// added. Hop-by-hop fields are the HTTP proxy's business (HTTPProxy layer), not decided here. Serving layer.

/// The rewrite decided for one request, before its fields are copied upstream.
public struct UpstreamHeaderPlan<Value: Collection>: Equatable where Value.Element == UInt8, Value: Equatable {
    /// When set, send this as the Host and drop the client's `Host` and `K-Original-Host` fields.
    public var hostOverride: Value?

    public init(hostOverride: Value?) {
        self.hostOverride = hostOverride
    }

    /// Knative's rule: the activator moved the original Host aside into `K-Original-Host`; put it back.
    /// Requests from kubelet probes skip this (they never pass Knative's proxy handler).
    public static func forRequest<Headers: RequestHeaderView>(_ headers: Headers, traits: QueueRequestTraits) -> UpstreamHeaderPlan<Headers.Bytes>
    where Headers.Bytes == Value {
        guard !traits.isKubeletProbe, let original = headers.firstValue(named: KnativeHeader.originalHost), !original.isEmpty else {
            return UpstreamHeaderPlan(hostOverride: nil)
        }
        return UpstreamHeaderPlan(hostOverride: original)
    }

    /// Whether the field called `name` goes to the app as it is.
    public func forwards<Name: Collection>(fieldNamed name: Name) -> Bool where Name.Element == UInt8 {
        if ASCII.equalsIgnoringCase(name, KnativeHeader.revisionName.utf8)
            || ASCII.equalsIgnoringCase(name, KnativeHeader.revisionNamespace.utf8)
        {
            return false
        }
        if hostOverride != nil,
            ASCII.equalsIgnoringCase(name, KnativeHeader.host.utf8)
                || ASCII.equalsIgnoringCase(name, KnativeHeader.originalHost.utf8)
        {
            return false
        }
        return true
    }
}

/// The traffic tag a request is attributed to (Knative's route-tag handler, used for metrics and spans).
public enum RouteTag<Value: Collection>: Equatable where Value.Element == UInt8, Value: Equatable {
    /// No tag header and no default-route header: tag routing is off (`kn:disabled`).
    case disabled
    /// Default-route header only (`kn:default`).
    case defaultRoute
    /// A tag header on a request routed by the default route (`kn:undefined`).
    case undefined
    /// The tag the ingress chose.
    case tag(Value)

    public static func of<Headers: RequestHeaderView>(_ headers: Headers) -> RouteTag<Headers.Bytes> where Headers.Bytes == Value {
        let name = headers.firstValue(named: KnativeHeader.routeTag)
        let isDefault = headers.firstValue(named: KnativeHeader.defaultRoute)
        guard let name, !name.isEmpty else {
            guard let isDefault, !isDefault.isEmpty else { return .disabled }
            return .defaultRoute
        }
        if let isDefault, isDefault.elementsEqual("true".utf8) { return .undefined }
        return .tag(name)
    }

    /// The label value Knative records.
    public var label: String {
        switch self {
        case .disabled: "kn:disabled"
        case .defaultRoute: "kn:default"
        case .undefined: "kn:undefined"
        case .tag(let value): String(decoding: value, as: UTF8.self)
        }
    }
}
