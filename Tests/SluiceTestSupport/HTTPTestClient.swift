// Test support, HTTP client: one raw-socket HTTP/1.1 client that sends exact bytes and reads messages
// framed by Content-Length, chunked or close (parsed with Sluice's own codec), with deadlines.
import Glibc
import SluiceCore

/// A parsed response (or request, on a scripted backend's side).
public struct HTTPTestMessage: CustomStringConvertible, Sendable {
    public var status = 0
    public var method = ""
    public var target = ""
    public var version = ""
    /// (name, value) in order, as received.
    public var fields: [(name: String, value: String)] = []
    /// The head bytes as received.
    public var rawHead: [UInt8] = []
    /// The body as received on the wire (chunk framing included).
    public var rawBody: [UInt8] = []
    /// The body payload (chunk framing removed).
    public var body: [UInt8] = []
    public var framing: HTTPBodyFraming = .none
    public var keepAlive = true

    public init() {}

    /// The first value of field `name` (case-insensitive).
    public func field(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }
    /// Every value of field `name` (case-insensitive), in order.
    public func all(_ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
    public var description: String {
        "\(status == 0 ? "\(method) \(target)" : "\(status)") \(fields.map { "\($0.name): \($0.value)" }) body=\(body.count)B \(bodyText.prefix(200))"
    }
}

/// Reads HTTP messages from a blocking socket, keeping bytes past a message for the next one.
public final class HTTPMessageReader {
    public let fd: Int32
    public private(set) var pending: [UInt8] = []
    public private(set) var sawEOF = false
    // Allocated on the first read: tests open a thousand clients that never read.
    private var chunk: [UInt8] = []

    public init(fd: Int32) { self.fd = fd }

    /// Reads more bytes into `pending`; false at EOF. Throws on errors and on the socket's timeout.
    @discardableResult
    public func fill() throws -> Bool {
        if sawEOF { return false }
        if chunk.isEmpty { chunk = [UInt8](repeating: 0, count: 256 * 1024) }
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestFailure("recv: errno \(errno) (\(String(cString: strerror(errno)))) with \(pending.count) bytes pending")
            }
            if n == 0 {
                sawEOF = true
                chunk = []
                return false
            }
            pending.append(contentsOf: chunk[0 ..< n])
            return true
        }
    }

    /// Reads a whole message. `isResponse` picks the parser; `requestMethod` makes HEAD responses bodiless.
    public func readMessage(isResponse: Bool, requestMethod: HTTPMethod = .get, limits: HTTPParserLimits = .default) throws -> HTTPTestMessage {
        var head = HTTPHead(limits: limits)
        var headLength = 0
        while true {
            if !pending.isEmpty {
                let result = isResponse ? head.parseResponse(pending.span, requestMethod: requestMethod) : head.parseRequest(pending.span)
                switch result {
                case .complete(let n):
                    headLength = n
                case .incomplete:
                    break
                case .error(let error, let offset):
                    throw TestFailure("bad message: \(error) at \(offset): \(String(decoding: pending.prefix(300), as: UTF8.self))")
                }
                if headLength > 0 { break }
            }
            guard try fill() else {
                throw TestFailure("EOF before a complete head (\(pending.count) bytes: \(String(decoding: pending.prefix(300), as: UTF8.self)))")
            }
        }
        var message = HTTPTestMessage()
        let bytes = pending
        func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
        message.status = head.status
        if !isResponse {
            message.method = text(head.methodRange)
            message.target = text(head.target)
        }
        message.version = head.version.text
        message.fields = head.fields.map { (text($0.name), text($0.value)) }
        message.rawHead = Array(bytes[0 ..< headLength])
        message.framing = head.framing
        message.keepAlive = head.keepAlive
        pending.removeFirst(headLength)
        if head.status == 101 { return message }
        var decoder = HTTPBodyDecoder(framing: head.framing == .tunnel ? .none : head.framing)
        while true {
            var offset = 0
            var done = false
            let input = pending
            decoding: while offset <= input.count {
                switch decoder.decode(input.span.extracting(offset...)) {
                case .payload(let range):
                    message.body.append(contentsOf: input[offset + range.lowerBound ..< offset + range.upperBound])
                    offset += range.upperBound
                case .needMore:
                    offset = input.count
                    break decoding
                case .complete(let consumed):
                    offset += consumed
                    done = true
                    break decoding
                case .error(let error, _):
                    throw TestFailure("bad body: \(error)")
                }
            }
            message.rawBody.append(contentsOf: input[0 ..< offset])
            pending.removeFirst(offset)
            if done { return message }
            if try !fill() {
                if case .complete = decoder.finish() { return message }
                throw TestFailure("EOF inside the body after \(message.rawBody.count) bytes (\(message.description))")
            }
        }
    }

    /// The bytes read but not parsed yet, handed over (raw relays and tunnels).
    public func takeAll() -> [UInt8] {
        defer { pending.removeAll() }
        return pending
    }

    /// Drops the first `count` pending bytes (all when nil): for raw relays read by hand.
    public func discardPending(_ count: Int? = nil) {
        pending.removeFirst(min(count ?? pending.count, pending.count))
    }

    /// Exactly `count` bytes (throws on EOF or timeout before that).
    public func read(exactly count: Int) throws -> [UInt8] {
        while pending.count < count {
            guard try fill() else { throw TestFailure("EOF after \(pending.count) of \(count) bytes") }
        }
        defer { pending.removeFirst(count) }
        return Array(pending[0 ..< count])
    }

    /// Reads until EOF (or `limit` bytes); returns the bytes pending plus everything read.
    public func readToEOF(limit: Int = 1 << 27) throws -> [UInt8] {
        while pending.count < limit, try fill() {}
        return takeAll()
    }
}

/// A raw HTTP/1.1 (or plain TCP) client on one blocking connection to 127.0.0.1: send exact bytes,
/// read framed responses or raw bytes. Every read is bounded by `timeout`.
public final class HTTPTestClient {
    public let fd: Int32
    public let reader: HTTPMessageReader
    public private(set) var isClosed = false

    public init(port: UInt16, timeout: Duration = .seconds(20), receiveBuffer: Int32? = nil, sendBuffer: Int32? = nil) throws {
        fd = try connectLoopback(port: port, timeout: timeout, receiveBuffer: receiveBuffer, sendBuffer: sendBuffer)
        reader = HTTPMessageReader(fd: fd)
    }

    deinit { close() }

    public func send(_ bytes: [UInt8]) throws { try sendAll(fd, bytes) }
    public func send(_ text: String) throws { try sendAll(fd, Array(text.utf8)) }

    /// Sends a request built from its parts (a Knative-style Host unless given; Content-Length for a body).
    public func sendRequest(_ method: String = "GET", _ target: String, headers: [(String, String)] = [], body: String = "") throws {
        var text = "\(method) \(target) HTTP/1.1\r\n"
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { text += "Host: hello.default.example.com\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if !body.isEmpty { text += "Content-Length: \(body.utf8.count)\r\n" }
        try send(text + "\r\n" + body)
    }

    public func readResponse(requestMethod: HTTPMethod = .get) throws -> HTTPTestMessage {
        try reader.readMessage(isResponse: true, requestMethod: requestMethod)
    }

    /// Sends `request` (exact text) and reads one response.
    public func exchange(_ request: String, requestMethod: HTTPMethod = .get) throws -> HTTPTestMessage {
        try send(request)
        return try readResponse(requestMethod: requestMethod)
    }

    /// Sends a request built from its parts (see `sendRequest`) and reads one response.
    public func request(_ method: String = "GET", _ target: String, headers: [(String, String)] = [], body: String = "") throws -> HTTPTestMessage {
        try sendRequest(method, target, headers: headers, body: body)
        return try readResponse(requestMethod: method == "HEAD" ? .head : .get)
    }

    /// Exactly `count` raw bytes (throws on EOF or timeout before that).
    public func receive(exactly count: Int) throws -> [UInt8] { try reader.read(exactly: count) }

    /// Everything until the peer closes (throws on timeout).
    public func readToEOF(limit: Int = 1 << 27) throws -> [UInt8] { try reader.readToEOF(limit: limit) }

    /// True when the peer closed (EOF) within `timeout` with no more bytes than those returned.
    public func waitForEOF(timeout: Duration = .seconds(10)) -> Bool {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if Glibc.poll(&poll, 1, 50) > 0 {
                return (try? reader.fill()) == false || reader.sawEOF
            }
        }
        return false
    }

    public func setOption(_ level: Int32, _ name: Int32, _ value: Int32) { setSocketOption(fd, level, name, value) }

    /// For tests that drive the socket with poll and raw send/recv themselves.
    public func setNonBlocking() {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    public func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with RST (SO_LINGER 0): an abort as the peer sees it.
    public func reset() {
        setLingerZero(fd)
        close()
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }
}

/// One request on a fresh connection to 127.0.0.1:`port`.
public func httpRequest(port: UInt16, _ method: String = "GET", _ target: String, headers: [(String, String)] = [],
                        body: String = "", timeout: Duration = .seconds(20)) throws -> HTTPTestMessage {
    let client = try HTTPTestClient(port: port, timeout: timeout)
    return try client.request(method, target, headers: headers, body: body)
}

/// A request as text with CRLF line ends: `request("GET / HTTP/1.1", ["Host: x"])`.
public func request(_ startLine: String, _ fields: [String] = ["Host: test"], body: String = "") -> String {
    ([startLine] + fields).joined(separator: "\r\n") + "\r\n\r\n" + body
}

/// The headers of a kubelet readiness probe of the queue-proxy container.
public let kubeletProbeHeaders = [("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "queue")]
