// HTTPProxy layer: a one-shot HTTP/1.1 client on a loop, for the data plane's own requests (readiness
// probes of the app, activator probes of pods): one fresh connection per request, bounded response
// body, one deadline for the whole exchange. Proxied traffic uses the pools instead.

/// A complete response read by `HTTPClient`.
public struct HTTPClientResponse: Sendable {
    public var status: Int
    /// Field lines as (name, value) text, in order.
    public var fields: [(name: String, value: String)]
    /// The payload (chunk framing removed), at most the request's `maxBodyBytes`.
    public var body: [UInt8]

    /// The first value of `name` (ASCII case-insensitive).
    public func field(_ name: String) -> String? {
        let lower = name.lowercased()
        return fields.first { $0.name.lowercased() == lower }?.value
    }
}

/// Why an `HTTPClient` request failed.
public enum HTTPClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connect failed (refused, unreachable, no socket).
    case connectFailed(String)
    /// No complete response within the timeout.
    case timedOut
    /// The connection closed or failed before the response was complete.
    case connectionClosed(String)
    /// The response broke HTTP/1.1 framing.
    case invalidResponse(String)
    /// The body exceeded `maxBodyBytes`.
    case bodyTooLarge
    /// The request could not be serialized (bad method, target or field).
    case invalidRequest(String)

    public var description: String {
        switch self {
        case .connectFailed(let why): "connect failed: \(why)"
        case .timedOut: "timed out"
        case .connectionClosed(let why): "connection closed before the response was complete: \(why)"
        case .invalidResponse(let why): "invalid response: \(why)"
        case .bodyTooLarge: "response body too large"
        case .invalidRequest(let why): "invalid request: \(why)"
        }
    }
}

/// One-shot requests on a loop.
public enum HTTPClient {
    /// Sends `method target` to `address` on a new connection and calls `completion` once, on `loop`.
    /// Call on `loop`'s thread. `Host` defaults to the address; `Connection: close` is always sent.
    public static func send(
        method: String = "GET", target: String, to address: SocketAddress, host: String? = nil,
        fields: [(name: String, value: String)] = [], body: [UInt8] = [],
        timeout: Duration, maxBodyBytes: Int = 64 * 1024, on loop: EventLoop,
        completion: @escaping (Result<HTTPClientResponse, HTTPClientError>) -> Void
    ) {
        var head: [UInt8] = []
        do {
            try HTTPSerializer.appendRequestLine(method: method, target: target, to: &head)
            try HTTPSerializer.appendField(name: "Host", value: host ?? "\(address)", to: &head)
            for field in fields { try HTTPSerializer.appendField(name: field.name, value: field.value, to: &head) }
            try HTTPSerializer.appendField(name: "Connection", value: "close", to: &head)
            if !body.isEmpty || method == "POST" || method == "PUT" { HTTPSerializer.appendContentLength(UInt64(body.count), to: &head) }
            HTTPSerializer.appendEndOfHead(to: &head)
        } catch {
            completion(.failure(.invalidRequest("\(error)")))
            return
        }
        let requestMethod: HTTPMethod = method == "HEAD" ? .head : .get
        let exchange = ClientExchange(requestMethod: requestMethod, maxBodyBytes: maxBodyBytes, completion: completion)
        do {
            let connection = try Connector.connect(to: address, on: loop, timeout: timeout, delegate: exchange)
            exchange.deadline = loop.now &+ EventLoop.nanoseconds(timeout)
            connection.write(IOBuffer(bytes: head + body).written)
        } catch {
            completion(.failure(.connectFailed("\(error)")))
        }
    }
}

/// The delegate of one `HTTPClient` connection.
private final class ClientExchange: ConnectionDelegate {
    let requestMethod: HTTPMethod
    let maxBodyBytes: Int
    var completion: ((Result<HTTPClientResponse, HTTPClientError>) -> Void)?
    var head = HTTPHead()
    var decoder = HTTPBodyDecoder(framing: .none)
    var response: HTTPClientResponse?
    var deadline: UInt64 = 0

    init(requestMethod: HTTPMethod, maxBodyBytes: Int, completion: @escaping (Result<HTTPClientResponse, HTTPClientError>) -> Void) {
        self.requestMethod = requestMethod
        self.maxBodyBytes = maxBodyBytes
        self.completion = completion
    }

    func connectionDidConnect(_ connection: Connection) {
        // The whole exchange shares one deadline, counted from the start.
        connection.setDeadline(at: deadline)
    }

    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        var offset = range.lowerBound
        let end = range.upperBound
        while offset < end && completion != nil {
            if response == nil {
                switch buffer.withSpan(offset ..< end, { head.parseResponse($0, requestMethod: requestMethod) }) {
                case .incomplete:
                    return offset - range.lowerBound
                case .error(let error, _):
                    finish(connection, .failure(.invalidResponse(error.reason)))
                    return range.count
                case .complete(let length):
                    if head.status < 200 {
                        offset += length // interim response: the final one follows
                        continue
                    }
                    let base = offset
                    let fields = head.fields.map { field in
                        (name: String(decoding: buffer.bytes(base + field.name.lowerBound ..< base + field.name.upperBound), as: UTF8.self),
                         value: String(decoding: buffer.bytes(base + field.value.lowerBound ..< base + field.value.upperBound), as: UTF8.self))
                    }
                    response = HTTPClientResponse(status: head.status, fields: fields, body: [])
                    decoder.reset(framing: head.framing == .tunnel ? .none : head.framing)
                    offset += length
                }
            }
            guard response != nil else { continue }
            if decoder.isComplete {
                complete(connection)
                return range.count
            }
            switch buffer.withSpan(offset ..< end, { decoder.decode($0) }) {
            case .payload(let r):
                response?.body.append(contentsOf: buffer.bytes(offset + r.lowerBound ..< offset + r.upperBound))
                offset += r.upperBound
                if (response?.body.count ?? 0) > maxBodyBytes {
                    finish(connection, .failure(.bodyTooLarge))
                    return range.count
                }
            case .needMore:
                offset = end
            case .complete(let consumed):
                offset += consumed
                complete(connection)
                return range.count
            case .error(let error, _):
                finish(connection, .failure(.invalidResponse(error.reason)))
                return range.count
            }
        }
        if response != nil && decoder.isComplete { complete(connection) }
        return offset - range.lowerBound
    }

    func connectionDidReadEOF(_ connection: Connection) {
        if response != nil, case .complete = decoder.finish() {
            complete(connection)
        } else {
            finish(connection, .failure(.connectionClosed("end of stream")))
        }
    }

    func connectionDeadlineExpired(_ connection: Connection) {
        finish(connection, .failure(.timedOut))
    }

    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        guard let completion else { return }
        self.completion = nil
        switch error {
        case .connectTimedOut?: completion(.failure(.timedOut))
        case .syscall(let e)? where response == nil && e.call.description == "connect": completion(.failure(.connectFailed("\(e)")))
        case let e?: completion(.failure(.connectionClosed("\(e)")))
        case nil: completion(.failure(.connectionClosed("closed")))
        }
    }

    private func complete(_ connection: Connection) {
        guard let response else { return }
        finish(connection, .success(response))
    }

    private func finish(_ connection: Connection, _ result: Result<HTTPClientResponse, HTTPClientError>) {
        guard let completion else { return }
        self.completion = nil
        connection.close()
        completion(result)
    }
}
