// End-to-end test support: a blocking HTTP/1.1 client on real sockets (exact bytes out, responses framed
// by Content-Length, chunked or close, parsed with Sluice's own codec), and a scripted app server whose
// every connection runs a test-given closure on its own thread.
import Foundation
import Glibc
import Synchronization
import SluiceCore

/// Opens a blocking TCP connection to 127.0.0.1:`port` with send/receive timeouts.
func connectLoopback(port: UInt16, timeout: Duration = .seconds(20)) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw E2EError("socket: errno \(errno)") }
    let (secondsPart, attoseconds) = timeout.components
    var interval = timeval(tv_sec: Int(secondsPart), tv_usec: Int(attoseconds / 1_000_000_000_000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        let error = errno
        close(fd)
        throw E2EError("connect to 127.0.0.1:\(port): errno \(error)")
    }
    return fd
}

/// A parsed HTTP message (response, or request on the scripted app's side).
struct HTTPMessage: CustomStringConvertible {
    var status = 0
    var method = ""
    var target = ""
    var fields: [(name: String, value: String)] = []
    var body: [UInt8] = []

    func field(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }
    func all(_ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
    var text: String { String(decoding: body, as: UTF8.self) }
    var description: String {
        "\(status == 0 ? "\(method) \(target)" : "\(status)") \(fields.map { "\($0.name): \($0.value)" }) body=\(text.prefix(200))"
    }
}

/// Reads HTTP messages from a blocking socket, keeping bytes past a message for the next one.
final class MessageReader {
    let fd: Int32
    private(set) var pending: [UInt8] = []
    private(set) var sawEOF = false
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(fd: Int32) { self.fd = fd }

    /// Reads more bytes; false at EOF.
    @discardableResult
    func fill() throws -> Bool {
        if sawEOF { return false }
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw E2EError("recv: errno \(errno) (\(String(cString: strerror(errno)))) with \(pending.count) bytes pending")
            }
            if n == 0 {
                sawEOF = true
                return false
            }
            pending.append(contentsOf: chunk[0 ..< n])
            return true
        }
    }

    /// The bytes read but not parsed yet, handed over (raw relays).
    func takeAll() -> [UInt8] {
        defer { pending.removeAll() }
        return pending
    }

    func read(isResponse: Bool, requestMethod: HTTPMethod = .get) throws -> HTTPMessage {
        var head = HTTPHead()
        var headLength = 0
        while headLength == 0 {
            if !pending.isEmpty {
                let result = isResponse ? head.parseResponse(pending.span, requestMethod: requestMethod) : head.parseRequest(pending.span)
                switch result {
                case .complete(let n): headLength = n
                case .incomplete: break
                case .error(let error, _):
                    throw E2EError("bad message (\(error)): \(String(decoding: pending.prefix(300), as: UTF8.self))")
                }
            }
            if headLength == 0, try !fill() {
                throw E2EError("EOF before a complete head (\(pending.count) bytes: \(String(decoding: pending.prefix(300), as: UTF8.self)))")
            }
        }
        let bytes = pending
        func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
        var message = HTTPMessage()
        message.status = head.status
        if !isResponse {
            message.method = text(head.methodRange)
            message.target = text(head.target)
        }
        message.fields = head.fields.map { (text($0.name), text($0.value)) }
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
                    throw E2EError("bad body: \(error)")
                }
            }
            pending.removeFirst(offset)
            if done { return message }
            if try !fill() {
                if case .complete = decoder.finish() { return message }
                throw E2EError("EOF inside the body after \(message.body.count) bytes (\(message.description))")
            }
        }
    }
}

/// One client connection: send exact bytes, read responses.
final class HTTPConnection {
    let fd: Int32
    let reader: MessageReader
    private var closed = false

    init(port: UInt16, timeout: Duration = .seconds(20)) throws {
        fd = try connectLoopback(port: port, timeout: timeout)
        reader = MessageReader(fd: fd)
    }

    deinit { close() }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw E2EError("send: errno \(errno)")
            }
            offset += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Sends a request built from its parts (Host added unless given).
    func sendRequest(_ method: String = "GET", _ target: String, headers: [(String, String)] = [], body: String = "") throws {
        var text = "\(method) \(target) HTTP/1.1\r\n"
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { text += "Host: hello.default.example.com\r\n" }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if !body.isEmpty { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        try send(text)
    }

    func readResponse(requestMethod: HTTPMethod = .get) throws -> HTTPMessage {
        try reader.read(isResponse: true, requestMethod: requestMethod)
    }

    func request(_ method: String = "GET", _ target: String, headers: [(String, String)] = [], body: String = "") throws -> HTTPMessage {
        try sendRequest(method, target, headers: headers, body: body)
        return try readResponse(requestMethod: method == "HEAD" ? .head : .get)
    }

    /// Everything until EOF.
    func readToEOF() throws -> [UInt8] {
        while try reader.fill() {}
        return reader.pending
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
}

/// One request on a fresh connection.
func httpRequest(port: UInt16, _ method: String = "GET", _ target: String, headers: [(String, String)] = [],
                 body: String = "", timeout: Duration = .seconds(20)) throws -> HTTPMessage {
    let connection = try HTTPConnection(port: port, timeout: timeout)
    return try connection.request(method, target, headers: headers, body: body)
}

/// A kubelet readiness probe of the queue-proxy container.
let kubeletProbeHeaders = [("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "queue")]

// MARK: scripted app

/// One connection of a ScriptedApp (used on its thread only).
final class ScriptedConnection: @unchecked Sendable {
    let fd: Int32
    let reader: MessageReader
    unowned let app: ScriptedApp

    init(fd: Int32, app: ScriptedApp) {
        self.fd = fd
        self.app = app
        reader = MessageReader(fd: fd)
    }

    /// The next request, or nil at EOF; recorded in `app.requests`.
    func readRequest() throws -> HTTPMessage? {
        if reader.pending.isEmpty, try !reader.fill() { return nil }
        let message = try reader.read(isResponse: false)
        app.record(message)
        return message
    }

    func send(_ text: String) throws {
        try send(bytes: Array(text.utf8))
    }

    func send(bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw E2EError("app send: errno \(errno)")
            }
            offset += n
        }
    }

    func respond(status: Int = 200, fields: [String] = [], body: String = "") throws {
        var head = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Status")\r\n"
        for field in fields { head += field + "\r\n" }
        head += "Content-Length: \(body.utf8.count)\r\n\r\n"
        try send(head + body)
    }

    /// Reads raw bytes (for tunnels); empty at EOF.
    func readRaw() throws -> [UInt8] {
        if reader.pending.isEmpty, try !reader.fill() { return [] }
        return reader.takeAll()
    }
}

/// A TCP server on 127.0.0.1 whose every connection runs `script` on its own thread.
final class ScriptedApp: @unchecked Sendable {
    let port: UInt16
    private let listenFD: Int32
    private let script: @Sendable (ScriptedConnection) throws -> Void
    private let state = Mutex<[HTTPMessage]>([])
    private let stopped = Atomic<Bool>(false)

    init(port: UInt16 = 0, script: @escaping @Sendable (ScriptedConnection) throws -> Void) throws {
        self.script = script
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw E2EError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw E2EError("scripted app cannot listen: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = UInt16(bigEndian: address.sin_port)
        listenFD = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if stopped.load(ordering: .acquiring) { return }
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            var interval = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
            let connection = ScriptedConnection(fd: fd, app: self)
            let script = self.script
            Thread {
                try? script(connection)
                Glibc.close(fd)
            }.start()
        }
    }

    func record(_ message: HTTPMessage) { state.withLock { $0.append(message) } }
    var requests: [HTTPMessage] { state.withLock { $0 } }

    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }

    deinit { stop() }
}
