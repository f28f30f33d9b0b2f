// Test support, scripted backend: an upstream (or user app) on 127.0.0.1 with one thread per connection,
// so a test decides the exact bytes, delays, closes and resets it produces and sees exactly what it got.
import Foundation
import Glibc
import Synchronization
import SluiceCore

/// One accepted connection of a ScriptedBackend (used on that connection's thread only).
public final class BackendConnection: @unchecked Sendable {
    public let fd: Int32
    /// 0 for the first connection the backend accepted, 1 for the next, …
    public let index: Int
    public let reader: HTTPMessageReader
    unowned let backend: ScriptedBackend

    init(fd: Int32, index: Int, backend: ScriptedBackend) {
        self.fd = fd
        self.index = index
        self.backend = backend
        reader = HTTPMessageReader(fd: fd)
    }

    /// The next request (head and body), or nil at EOF. Recorded in `backend.requests`.
    public func readRequest() throws -> HTTPTestMessage? {
        if reader.pending.isEmpty, try !reader.fill() { return nil }
        let message = try reader.readMessage(isResponse: false)
        backend.record(message)
        return message
    }

    /// Raw bytes as they arrive (tunnels); empty at EOF.
    public func readRaw() throws -> [UInt8] {
        if reader.pending.isEmpty, try !reader.fill() { return [] }
        return reader.takeAll()
    }

    public func send(_ bytes: [UInt8]) throws { try sendAll(fd, bytes) }
    public func send(_ text: String) throws { try sendAll(fd, Array(text.utf8)) }

    /// A response with Content-Length; `fields` are whole lines ("Name: value").
    public func respond(status: Int = 200, fields: [String] = [], body: [UInt8] = []) throws {
        var head = "HTTP/1.1 \(status) \(HTTPStatusText.reason(status))\r\n"
        for field in fields { head += field + "\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        try send(Array(head.utf8) + body)
    }

    public func respond(status: Int = 200, fields: [String] = [], body: String) throws {
        try respond(status: status, fields: fields, body: Array(body.utf8))
    }

    /// Closes with RST (SO_LINGER 0); the fd itself is closed when the script returns.
    public func reset() {
        setLingerZero(fd)
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    public func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }
}

/// A TCP server on 127.0.0.1 whose every connection runs `script` on its own thread; the connection
/// closes when the script returns. Counts connections, records every request parsed and every error a
/// script threw before `stop`.
public final class ScriptedBackend: @unchecked Sendable {
    public let port: UInt16
    private let listenFD: Int32
    private let script: @Sendable (BackendConnection) throws -> Void
    private let state = Mutex(State())
    private let stopped = Atomic<Bool>(false)

    private struct State {
        var accepted = 0
        var requests: [HTTPTestMessage] = []
        var open: [Int32] = []
        var errors: [String] = []
        var threadsRunning = 0
    }

    /// Listens on `port` (0: a free one, see `port`).
    public init(port: UInt16 = 0, script: @escaping @Sendable (BackendConnection) throws -> Void) throws {
        self.script = script
        (listenFD, self.port) = try bindLoopback(port: port, backlog: 512)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// A backend answering every request with `status` and `body` on kept-alive connections.
    public static func fixed(status: Int = 200, body: [UInt8] = Array("hello\n".utf8), fields: [String] = []) throws -> ScriptedBackend {
        try ScriptedBackend { connection in
            while try connection.readRequest() != nil {
                try connection.respond(status: status, fields: fields, body: body)
            }
        }
    }

    /// A backend echoing each request's payload back (Content-Length response) on kept-alive connections.
    public static func echo() throws -> ScriptedBackend {
        try ScriptedBackend { connection in
            while let request = try connection.readRequest() {
                try connection.respond(status: 200, body: request.body)
            }
        }
    }

    /// A backend answering a WebSocket upgrade with 101 and then echoing the tunnel's bytes until the
    /// peer closes; plain requests get 200 "ok".
    public static func upgradeEcho() throws -> ScriptedBackend {
        try ScriptedBackend { connection in
            guard let request = try connection.readRequest() else { return }
            guard request.field("Upgrade")?.lowercased() == "websocket" else {
                try connection.respond(status: 200, body: "ok")
                return
            }
            try connection.send("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            while true {
                let bytes = try connection.readRaw()
                if bytes.isEmpty { return }
                try connection.send(bytes)
            }
        }
    }

    private func acceptLoop() {
        var index = 0
        while !stopped.load(ordering: .acquiring) {
            let fd = Glibc.accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            if stopped.load(ordering: .acquiring) {
                Glibc.close(fd)
                return
            }
            setSocketTimeouts(fd, .seconds(30))
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
                    if !stopped.load(ordering: .acquiring) { state.withLock { $0.errors.append("\(error)") } }
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

    public var accepted: Int { state.withLock { $0.accepted } }
    public var requests: [HTTPTestMessage] { state.withLock { $0.requests } }
    public var errors: [String] { state.withLock { $0.errors } }

    /// Stops accepting and shuts every open connection down (their scripts end with EOF or errors);
    /// waits up to 5 s for the scripts to return.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Glibc.shutdown(listenFD, Int32(SHUT_RDWR))
        Glibc.close(listenFD)
        let open = state.withLock { $0.open }
        for fd in open { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        eventually(timeout: .seconds(5)) { state.withLock { $0.threadsRunning == 0 } }
    }

    deinit { stop() }
}
