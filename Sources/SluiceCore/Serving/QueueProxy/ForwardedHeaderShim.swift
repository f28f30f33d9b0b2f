// Knative's forwarded-header shim: when a request has no `Forwarded` header but has `X-Forwarded-*`
// ones, queue-proxy synthesises an RFC 7239 `Forwarded` value from them for the app. Serving layer;
// writes into a caller-owned buffer, so it allocates nothing once the buffer has grown.

public enum ForwardedHeaderShim {
    public static let forwarded = "Forwarded"
    public static let xForwardedFor = "X-Forwarded-For"
    public static let xForwardedProto = "X-Forwarded-Proto"
    public static let xForwardedHost = "X-Forwarded-Host"

    /// Writes the `Forwarded` value to add into `value` (cleared first) and returns true; returns false
    /// when none should be added (one is already present, or there is no `X-Forwarded-*` to build from).
    /// Like Knative, only the first field of each header is read and `X-Forwarded-By` is ignored.
    public static func synthesize<Headers: RequestHeaderView>(from headers: Headers, into value: inout [UInt8]) -> Bool {
        value.removeAll(keepingCapacity: true)
        if headers.hasNonEmptyValue(named: forwarded) { return false }
        let forwardedFor = nonEmpty(headers.firstValue(named: xForwardedFor))
        let proto = nonEmpty(headers.firstValue(named: xForwardedProto))
        let host = nonEmpty(headers.firstValue(named: xForwardedHost))
        if forwardedFor == nil && proto == nil && host == nil { return false }

        var firstNodeIsEmpty = true
        var rest: Headers.Bytes.SubSequence?
        if let forwardedFor {
            let (node, remainder) = nextNode(forwardedFor[...])
            firstNodeIsEmpty = node.isEmpty
            ASCII.append("for=", to: &value)
            appendNode(node, to: &value)
            rest = remainder
        }
        if let host {
            if !firstNodeIsEmpty { value.append(UInt8(ascii: ";")) }
            ASCII.append("host=", to: &value)
            value.append(contentsOf: host)
        }
        if let proto {
            if !firstNodeIsEmpty || host != nil { value.append(UInt8(ascii: ";")) }
            ASCII.append("proto=", to: &value)
            value.append(contentsOf: proto)
        }
        while let remainder = rest {
            let (node, next) = nextNode(remainder)
            ASCII.append(", for=", to: &value)
            appendNode(node, to: &value)
            rest = next
        }
        return true
    }

    private static func nonEmpty<Value: Collection>(_ value: Value?) -> Value? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    /// Splits off the node before the next comma, trimmed of spaces and tabs; `rest` is nil at the end.
    private static func nextNode<Value: Collection>(_ list: Value) -> (node: Value.SubSequence, rest: Value.SubSequence?)
    where Value.Element == UInt8, Value.SubSequence == Value {
        guard let comma = list.firstIndex(of: UInt8(ascii: ",")) else {
            return (trimmed(list), nil)
        }
        let after = list.index(after: comma)
        return (trimmed(list[list.startIndex..<comma]), after == list.endIndex ? nil : list[after...])
    }

    private static func trimmed<Value: Collection>(_ text: Value) -> Value.SubSequence
    where Value.Element == UInt8, Value.SubSequence == Value {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || $0 == 0x0B || $0 == 0x0C }
        guard let start = text.firstIndex(where: { !isSpace($0) }) else { return text[text.endIndex...] }
        var end = text.endIndex
        var index = start
        while index != text.endIndex {
            if !isSpace(text[index]) { end = text.index(after: index) }
            index = text.index(after: index)
        }
        return text[start..<end]
    }

    /// An address with a colon is taken as IPv6 and quoted with brackets, as RFC 7239 requires.
    private static func appendNode<Node: Collection>(_ node: Node, to value: inout [UInt8]) where Node.Element == UInt8 {
        let ipv6 = node.contains(UInt8(ascii: ":"))
        if ipv6 { ASCII.append("\"[", to: &value) }
        value.append(contentsOf: node)
        if ipv6 { ASCII.append("]\"", to: &value) }
    }
}

extension ForwardedHeaderShim {
    /// The `X-Forwarded-For` value the app receives, as Go's reverse proxy builds it: every incoming
    /// `X-Forwarded-For` field joined with ", ", then the peer's IP address (no port). Written into
    /// `value` (cleared first); the proxy replaces all incoming `X-Forwarded-For` fields with it.
    public static func appendingPeer<Headers: RequestHeaderView, Peer: Collection>(
        to headers: Headers, peerAddress: Peer, into value: inout [UInt8]
    ) where Peer.Element == UInt8 {
        value.removeAll(keepingCapacity: true)
        headers.forEachField { name, fieldValue in
            if ASCII.equalsIgnoringCase(name, xForwardedFor.utf8) {
                value.append(contentsOf: fieldValue)
                ASCII.append(", ", to: &value)
            }
            return true
        }
        value.append(contentsOf: peerAddress)
    }
}
