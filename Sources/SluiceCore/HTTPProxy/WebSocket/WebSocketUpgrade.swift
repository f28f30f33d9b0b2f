// HTTPProxy layer (WebSocket): turns a request into a WebSocket handshake answer for a local endpoint —
// the 101 with Sec-WebSocket-Accept (then the server hands the connection to the handler's `takeOver`),
// or the 400/405/426 refusal with its reason.

public enum WebSocketUpgrade {
    /// The decision for a request that should open a WebSocket: `.switchProtocols` when the handshake is
    /// valid, else `.respond` with the rejection (status, reason as the text body, required fields).
    public static func decide(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        let result = exchange.withHeadBytes { WebSocketHandshake.validateRequest(exchange.head, in: $0) }
        switch result {
        case .success(let key):
            return .switchProtocols(HTTPLocalResponse(status: 101, fields: [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", WebSocketHandshake.acceptValue(forKey: key)),
            ]))
        case .failure(let rejection):
            return .respond(.text(rejection.status, rejection.reason, fields: rejection.fields))
        }
    }
}
