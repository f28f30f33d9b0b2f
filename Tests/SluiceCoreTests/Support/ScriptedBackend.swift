// Test support: a scriptable upstream on 127.0.0.1 with one thread per connection, so a test decides
// the exact bytes, delays, closes and resets an upstream produces, and sees exactly what it received.
import Foundation
import Glibc
import Synchronization
@testable import SluiceCore

/// One accepted connection of a ScriptedBackend (used on that connection's thread only).
final class BackendConnection: @unchecked Sendable {
    let fd: Int32
    let index: Int
    let reader: HTTPMessageReader
    unowned let backend: ScriptedBackend

    init(fd: Int32, index: Int, backend: ScriptedBackend) {
        self.fd = fd
        self.index = index
        self.backend = backend
        reader = HTTPMessageReader(fd: fd)
    }

    /// The next request (head and body), or nil at EOF. Recorded in `backend.requests`.
    func readRequest() throws -> HTTPTestMessage? {
        if reader.pending.isEmpty, try !reader.fill() { return nil }
        let message = try reader.readMessage(isResponse: false)
        backend.record(message)
        return message
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HTTPTestError("backend send: errno \(errno)")
            }
            offset += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// A response with Content-Length.
    func respond(status: Int = 200, fields: [String] = [], body: [UInt8] = []) throws {
        var head = "HTTP/1.1 \(status) \(HTTPStatusText.reason(status))\r\n"
        for field in fields { head += field + "\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        try send(Array(head.utf8) + body)
    }

    /// Closes with RST (SO_LINGER 0).
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }
}

/// A TCP server whose every connection runs `script` on its own thread; the connection closes when
/// the script returns. Counts connections and records every request it parsed.
final class ScriptedBackend: @unchecked Sendable {
    let port: UInt16
    private let listenFD: Int32
    private let script: @Sendable (BackendConnection) throws -> Void
    private let state = Mutex(State())
    private let stopped = Atomic<Bool>(false)

    struct State {
        var accepted = 0
        var requests: [HTTPTestMessage] = []
        var open: [Int32] = []
        var errors: [String] = []
        var threadsRunning = 0
    }

    init(script: @escaping @Sendable (BackendConnection) throws -> Void) throws {
        self.script = script
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HTTPTestError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 512) == 0 else {
            Glibc.close(fd)
            throw HTTPTestError("bind/listen: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        listenFD = fd
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// A backend answering every request with `status` and `body` on kept-alive connections.
    static func fixed(status: Int = 200, body: [UInt8] = Array("hello\n".utf8), fields: [String] = []) throws -> ScriptedBackend {
        try ScriptedBackend { connection in
            while try connection.readRequest() != nil {
                try connection.respond(status: status, fields: fields, body: body)
            }
        }
    }

    /// A backend echoing each request's payload back (Content-Length response) on kept-alive connections.
    static func echo() throws -> ScriptedBackend {
        try ScriptedBackend { connection in
            while let request = try connection.readRequest() {
                try connection.respond(status: 200, body: request.body)
            }
        }
    }

    private func acceptLoop() {
        var index = 0
        while !stopped.load(ordering: .relaxed) {
            let fd = Glibc.accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            if stopped.load(ordering: .relaxed) {
                Glibc.close(fd)
                return
            }
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let connection = BackendConnection(fd: fd, index: index, backend: self)
            index += 1
            state.withLock {
                $0.accepted += 1
                $0.open.append(fd)
                $0.threadsRunning += 1
            }
            let script = self.script
            Thread.detachNewThread { [self] in
                do {
                    try script(connection)
                } catch {
                    if !stopped.load(ordering: .relaxed) { state.withLock { $0.errors.append("\(error)") } }
                }
                state.withLock {
                    $0.open.removeAll { $0 == fd }
                    $0.threadsRunning -= 1
                }
                Glibc.close(fd)
            }
        }
    }

    func record(_ message: HTTPTestMessage) { state.withLock { $0.requests.append(message) } }

    var accepted: Int { state.withLock { $0.accepted } }
    var requests: [HTTPTestMessage] { state.withLock { $0.requests } }
    var errors: [String] { state.withLock { $0.errors } }

    /// Stops accepting and shuts every open connection down (their scripts end with EOF/errors).
    func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        Glibc.shutdown(listenFD, Int32(SHUT_RDWR))
        Glibc.close(listenFD)
        let open = state.withLock { $0.open }
        for fd in open { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        _ = eventually(timeout: .seconds(5)) { state.withLock { $0.threadsRunning == 0 } }
    }

    deinit { stop() }
}
