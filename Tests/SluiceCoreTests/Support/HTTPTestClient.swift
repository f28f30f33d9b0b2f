// Test support (HTTPProxy suites, reused by the queue-proxy tests): a raw-socket HTTP/1.1 client that
// sends exact bytes and reads responses framed by Content-Length, chunked or connection close.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore

struct HTTPTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Opens a blocking IPv4 TCP socket to 127.0.0.1:`port` with send/receive timeouts.
func connectLoopback(port: UInt16, timeoutSeconds: Int = 20, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HTTPTestError("socket: errno \(errno)") }
    if var size = receiveBuffer {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        let e = errno
        Glibc.close(fd)
        throw HTTPTestError("connect to 127.0.0.1:\(port): errno \(e)")
    }
    return fd
}

/// A parsed response (or request, for the backend side).
struct HTTPTestMessage: CustomStringConvertible {
    var status = 0
    var method = ""
    var target = ""
    var version = ""
    /// (name, value) in order, as received.
    var fields: [(name: String, value: String)] = []
    /// The head bytes as received.
    var rawHead: [UInt8] = []
    /// The body as received on the wire (chunk framing included).
    var rawBody: [UInt8] = []
    /// The body payload (chunk framing removed).
    var body: [UInt8] = []
    var framing: HTTPBodyFraming = .none
    var keepAlive = true

    func field(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }
    func all(_ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    var description: String { "\(status == 0 ? "\(method) \(target)" : "\(status)") \(fields.map { "\($0.name): \($0.value)" }) body=\(body.count)B" }
}

/// Reads HTTP messages from a blocking socket, keeping bytes past a message for the next one.
final class HTTPMessageReader {
    let fd: Int32
    private(set) var pending: [UInt8] = []
    private(set) var sawEOF = false
    private var chunk = [UInt8](repeating: 0, count: 256 * 1024)

    init(fd: Int32) { self.fd = fd }

    /// Reads more bytes into `pending`; false at EOF.
    @discardableResult
    func fill() throws -> Bool {
        if sawEOF { return false }
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HTTPTestError("recv: errno \(errno) (\(String(cString: strerror(errno)))) with \(pending.count) bytes pending")
            }
            if n == 0 {
                sawEOF = true
                return false
            }
            pending.append(contentsOf: chunk[0 ..< n])
            return true
        }
    }

    /// Reads a whole message. `isResponse` picks the parser; `requestMethod` makes HEAD responses bodiless.
    func readMessage(isResponse: Bool, requestMethod: HTTPMethod = .get, limits: HTTPParserLimits = .default) throws -> HTTPTestMessage {
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
                    throw HTTPTestError("bad message: \(error.kind) at \(offset): \(String(decoding: pending.prefix(200), as: UTF8.self))")
                }
                if headLength > 0 { break }
            }
            guard try fill() else { throw HTTPTestError("EOF before a complete head (\(pending.count) bytes: \(String(decoding: pending.prefix(200), as: UTF8.self)))") }
        }
        var message = HTTPTestMessage()
        let bytes = pending
        func text(_ r: Range<Int>) -> String { String(decoding: bytes[r], as: UTF8.self) }
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
                case .payload(let r):
                    message.body.append(contentsOf: input[offset + r.lowerBound ..< offset + r.upperBound])
                    offset += r.upperBound
                case .needMore:
                    offset = input.count
                    break decoding
                case .complete(let c):
                    offset += c
                    done = true
                    break decoding
                case .error(let error, _):
                    throw HTTPTestError("bad body: \(error.kind)")
                }
            }
            message.rawBody.append(contentsOf: input[0 ..< offset])
            pending.removeFirst(offset)
            if done { return message }
            if try !fill() {
                if case .complete = decoder.finish() { return message }
                throw HTTPTestError("EOF inside the body after \(message.rawBody.count) bytes (\(message.description))")
            }
        }
    }

    /// Drops the first `count` pending bytes (all when nil): for raw relays read by hand.
    func discardPending(_ count: Int? = nil) {
        pending.removeFirst(min(count ?? pending.count, pending.count))
    }

    /// Reads until EOF; returns the bytes pending plus everything read.
    func readToEOF(limit: Int = 1 << 27) throws -> [UInt8] {
        while pending.count < limit, try fill() {}
        let all = pending
        pending.removeAll()
        return all
    }
}

/// A raw HTTP/1.1 client on one connection: send exact bytes, read framed responses.
final class HTTPTestClient {
    let fd: Int32
    let reader: HTTPMessageReader
    private(set) var isClosed = false

    init(port: UInt16, timeoutSeconds: Int = 20, receiveBuffer: Int32? = nil) throws {
        fd = try connectLoopback(port: port, timeoutSeconds: timeoutSeconds, receiveBuffer: receiveBuffer)
        reader = HTTPMessageReader(fd: fd)
    }

    deinit { close() }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HTTPTestError("send: errno \(errno) after \(offset) of \(bytes.count) bytes")
            }
            offset += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func readResponse(requestMethod: HTTPMethod = .get) throws -> HTTPTestMessage {
        try reader.readMessage(isResponse: true, requestMethod: requestMethod)
    }

    /// Sends `request` and reads one response.
    func exchange(_ request: String, requestMethod: HTTPMethod = .get) throws -> HTTPTestMessage {
        try send(request)
        return try readResponse(requestMethod: requestMethod)
    }

    func readToEOF() throws -> [UInt8] { try reader.readToEOF() }

    /// True when the peer closed (EOF) within `timeout` with no more bytes than those returned.
    func waitForEOF(timeout: Duration = .seconds(10)) -> Bool {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if Glibc.poll(&poll, 1, 50) > 0 {
                return (try? reader.fill()) == false || reader.sawEOF
            }
        }
        return false
    }

    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with RST (SO_LINGER 0): an abort as the peer sees it.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }
}

/// A request as text with CRLF line ends: `request("GET / HTTP/1.1", ["Host: x"])`.
func request(_ startLine: String, _ fields: [String] = ["Host: test"], body: String = "") -> String {
    ([startLine] + fields).joined(separator: "\r\n") + "\r\n\r\n" + body
}

/// Polls `condition` until it holds or `timeout` passes.
@discardableResult
func eventually(timeout: Duration = .seconds(20), _ condition: () -> Bool) -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}

/// Deterministic pseudo-random bytes (for byte-exact body checks); word-at-a-time so that even
/// debug builds make tens of MiB quickly.
func testBytes(_ count: Int, seed: UInt64 = 0x5EED) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    let words = (count + 7) / 8
    var out = [UInt64](repeating: 0, count: words)
    out.withUnsafeMutableBufferPointer { buffer in
        for i in 0 ..< words {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            buffer[i] = state
        }
    }
    return out.withUnsafeBytes { Array($0.prefix(count)) }
}

/// `body` as chunked framing with chunks of `chunkSize` bytes (plus the last chunk).
func chunked(_ body: [UInt8], chunkSize: Int) -> [UInt8] {
    var out: [UInt8] = []
    var offset = 0
    while offset < body.count {
        let n = min(chunkSize, body.count - offset)
        out.append(contentsOf: Array(String(n, radix: 16).utf8) + [13, 10])
        out.append(contentsOf: body[offset ..< offset + n])
        out.append(contentsOf: [13, 10])
        offset += n
    }
    out.append(contentsOf: Array("0\r\n\r\n".utf8))
    return out
}

/// A flag threads can share (scripts wait on it).
final class TestFlag: Sendable {
    private let state = Atomic<Bool>(false)
    func set() { state.store(true, ordering: .relaxed) }
    var isSet: Bool { state.load(ordering: .relaxed) }
}
