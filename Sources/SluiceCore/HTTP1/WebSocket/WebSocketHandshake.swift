// HTTP1 layer (WebSocket, RFC 6455 §4): the opening handshake's rules and maths — validating a client's
// upgrade request, computing Sec-WebSocket-Accept, writing a client's request and checking the server's
// 101. Works on parsed heads and their bytes; the servers and clients above do the I/O.

/// Why a client's handshake was refused: the status to answer, a reason naming the header at fault,
/// and the fields the answer must carry (`Upgrade`, `Sec-WebSocket-Version`, `Allow`).
public struct WebSocketHandshakeRejection: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var reason: String
    public var fields: [(name: String, value: String)]

    public init(status: Int, reason: String, fields: [(name: String, value: String)] = []) {
        self.status = status
        self.reason = reason
        self.fields = fields
    }

    public var description: String { "\(status) \(reason)" }
}

public enum WebSocketHandshake {
    /// The GUID RFC 6455 §1.3 appends to the key before hashing.
    public static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    /// The only protocol version RFC 6455 defines.
    public static let version = "13"

    static let secWebSocketKey = HTTPFieldName("sec-websocket-key")
    static let secWebSocketVersion = HTTPFieldName("sec-websocket-version")
    static let secWebSocketAccept = HTTPFieldName("sec-websocket-accept")
    static let websocketToken: [UInt8] = Array("websocket".utf8)
    static let upgradeToken: [UInt8] = Array("upgrade".utf8)

    /// base64(SHA-1(key + GUID)): the value a server answers in Sec-WebSocket-Accept.
    public static func acceptValue(forKey key: some Collection<UInt8>) -> String {
        Base64.encode(SHA1.hash(Array(key) + Array(acceptGUID.utf8)))
    }

    public static func acceptValue(forKey key: String) -> String { acceptValue(forKey: key.utf8) }

    /// A fresh Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 §4.1), from the injected source.
    public static func makeKey(random: () -> UInt64) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for _ in 0 ..< 2 {
            let r = random()
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: r >> UInt64(shift))) }
        }
        return Base64.encode(bytes)
    }

    /// Checks a parsed request head (`bytes` are the bytes it was parsed from) as a client's opening
    /// handshake. Returns the Sec-WebSocket-Key to answer, or the rejection to send: 405 for a method
    /// other than GET, 426 without `Upgrade: websocket` or with a version other than 13 (RFC 6455
    /// §4.4), 400 for the rest.
    public static func validateRequest(_ head: HTTPHead, in bytes: Span<UInt8>) -> Result<[UInt8], WebSocketHandshakeRejection> {
        let upgradeFields = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
        if head.method != .get {
            return .failure(.init(status: 405, reason: "a WebSocket handshake must be a GET request", fields: [("Allow", "GET")]))
        }
        var hasWebSocketToken = false
        for field in head.fields where field.known == .upgrade {
            if containsToken(websocketToken, in: value(field, bytes)) { hasWebSocketToken = true }
        }
        if !hasWebSocketToken {
            let reason = head.hasUpgrade
                ? "the Upgrade header does not name websocket"
                : "this endpoint accepts only WebSocket connections: send Upgrade: websocket"
            return .failure(.init(status: 426, reason: reason, fields: upgradeFields))
        }
        if !head.connectionUpgrade {
            return .failure(.init(status: 400, reason: "the Connection header lacks the upgrade token"))
        }
        if head.version != .http11 {
            return .failure(.init(status: 400, reason: "a WebSocket handshake needs HTTP/1.1"))
        }
        if head.framing != .none && head.framing != .contentLength(0) {
            return .failure(.init(status: 400, reason: "a WebSocket handshake carries no body"))
        }
        guard let versionField = head.firstField(named: secWebSocketVersion, in: bytes) else {
            return .failure(.init(status: 426, reason: "Sec-WebSocket-Version is missing (13 is supported)",
                                  fields: upgradeFields + [("Sec-WebSocket-Version", version)]))
        }
        let versionValue = value(versionField, bytes)
        if versionValue != Array(version.utf8) {
            let shown = String(decoding: versionValue.prefix(32), as: UTF8.self)
            return .failure(.init(status: 426, reason: "unsupported Sec-WebSocket-Version \"\(shown)\" (13 is supported)",
                                  fields: upgradeFields + [("Sec-WebSocket-Version", version)]))
        }
        guard let keyField = head.firstField(named: secWebSocketKey, in: bytes) else {
            return .failure(.init(status: 400, reason: "Sec-WebSocket-Key is missing"))
        }
        let key = value(keyField, bytes)
        guard let decoded = Base64.decode(key), decoded.count == 16 else {
            return .failure(.init(status: 400, reason: "Sec-WebSocket-Key is not the base64 of 16 bytes"))
        }
        return .success(key)
    }

    /// A client's opening handshake head for `target` on `host`.
    public static func requestHead(host: String, target: String, key: String,
                                   extraFields: [(name: String, value: String)] = []) throws(HTTPSerializationError) -> [UInt8] {
        var out: [UInt8] = []
        try HTTPSerializer.appendRequestLine(method: "GET", target: target, to: &out)
        try HTTPSerializer.appendField(name: "Host", value: host, to: &out)
        try HTTPSerializer.appendField(name: "Upgrade", value: "websocket", to: &out)
        try HTTPSerializer.appendField(name: "Connection", value: "Upgrade", to: &out)
        try HTTPSerializer.appendField(name: "Sec-WebSocket-Key", value: key, to: &out)
        try HTTPSerializer.appendField(name: "Sec-WebSocket-Version", value: version, to: &out)
        for field in extraFields { try HTTPSerializer.appendField(name: field.name, value: field.value, to: &out) }
        HTTPSerializer.appendEndOfHead(to: &out)
        return out
    }

    /// Checks the server's answer to a handshake sent with `key` (RFC 6455 §4.1, client side): nil when
    /// it accepted, else what was wrong.
    public static func validateResponse(_ head: HTTPHead, in bytes: Span<UInt8>, key: String) -> String? {
        guard head.status == 101 else { return "the server answered \(head.status) instead of 101" }
        var hasWebSocketToken = false
        for field in head.fields where field.known == .upgrade {
            if containsToken(websocketToken, in: value(field, bytes)) { hasWebSocketToken = true }
        }
        guard hasWebSocketToken else { return "the 101 response lacks Upgrade: websocket" }
        var hasUpgradeToken = false
        for field in head.fields where field.known == .connection {
            if containsToken(upgradeToken, in: value(field, bytes)) { hasUpgradeToken = true }
        }
        guard hasUpgradeToken else { return "the 101 response lacks Connection: Upgrade" }
        guard let accept = head.firstField(named: secWebSocketAccept, in: bytes) else {
            return "the 101 response lacks Sec-WebSocket-Accept"
        }
        guard value(accept, bytes) == Array(acceptValue(forKey: key).utf8) else {
            return "Sec-WebSocket-Accept does not match the key sent"
        }
        return nil
    }

    static func value(_ field: HTTPField, _ bytes: Span<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        let range = field.value
        guard range.upperBound <= bytes.count else { return out }
        out.reserveCapacity(range.count)
        for i in range { out.append(bytes[i]) }
        return out
    }

    /// Whether the comma-separated list `list` holds `token` (ASCII case-insensitive, spaces trimmed).
    static func containsToken(_ token: [UInt8], in list: [UInt8]) -> Bool {
        var start = 0
        while start <= list.count {
            var end = start
            while end < list.count && list[end] != 0x2C { end += 1 }
            var a = start
            var b = end
            while a < b && (list[a] == 0x20 || list[a] == 0x09) { a += 1 }
            while b > a && (list[b - 1] == 0x20 || list[b - 1] == 0x09) { b -= 1 }
            if b - a == token.count {
                var equal = true
                for i in 0 ..< token.count {
                    let c = list[a + i]
                    if (c &- 0x41 < 26 ? c | 0x20 : c) != token[i] { equal = false; break }
                }
                if equal { return true }
            }
            start = end + 1
        }
        return false
    }
}
