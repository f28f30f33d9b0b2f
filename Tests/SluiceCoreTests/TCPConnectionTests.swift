// Tests for the TCP layer's Connection and Connector: echo, partial I/O, half-close, connect, deadlines.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

@Suite("TCP connection", .timeLimit(.minutes(1)))
struct TCPConnectionTests {
    @Test("an echo server returns what a client sends and closes after the client half-closes")
    func echoRoundTrip() throws {
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let stats = EchoStats()
        let server = try startEchoServer(on: group, stats: stats)
        let client = try HTTPTestClient(port: server.localAddress.port)
        try client.send("hello, sluice")
        #expect(try client.receive(exactly: 13) == Array("hello, sluice".utf8))
        client.shutdownWrite()
        #expect(try client.readToEOF().isEmpty)
        #expect(eventually { stats.eofs.load(ordering: .relaxed) == 1 })
    }
}

/// Client-side delegate that collects what it receives and records lifecycle events.
final class CollectingClient: ConnectionDelegate, @unchecked Sendable {
    // Only touched on the connection's loop, except the Mutex-guarded snapshot the test reads.
    let state = Mutex(Snapshot())
    struct Snapshot: Sendable {
        var connected = false
        var received: [UInt8] = []
        var eof = false
        var closed = false
        var closeError: ConnectionError?
    }

    func connectionDidConnect(_ connection: Connection) { state.withLock { $0.connected = true } }

    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        let bytes = buffer.bytes(range)
        state.withLock { $0.received.append(contentsOf: bytes) }
        return range.count
    }

    func connectionDidReadEOF(_ connection: Connection) {
        state.withLock { $0.eof = true }
        connection.close()
    }

    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        state.withLock {
            $0.closed = true
            $0.closeError = error
        }
    }
}

extension TCPConnectionTests {
    @Test("an outbound connection sends queued bytes once connected and reads the reply")
    func connectorRoundTrip() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let stats = EchoStats()
        let server = try startEchoServer(on: group, stats: stats)
        let loop = group.loops[0]
        let client = CollectingClient()
        let port = server.localAddress.port
        let delegate = client
        try onLoop(loop) {
            do {
                let connection = try Connector.connect(to: .loopback(port: port), on: loop, timeout: .seconds(5), delegate: delegate)
                // Written while still connecting: queued and flushed on connect.
                connection.write(IOBuffer("ping").written)
                connection.shutdownOutput()
            } catch {
                Issue.record("connect threw \(error)")
            }
        }
        #expect(eventually { client.state.withLock { $0.closed } })
        let snapshot = client.state.withLock { $0 }
        #expect(snapshot.connected)
        #expect(snapshot.received == Array("ping".utf8))
        #expect(snapshot.eof)
        #expect(snapshot.closeError == nil)
    }

    @Test("connecting to a port nobody listens on reports ECONNREFUSED through connectionDidClose")
    func connectRefused() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        // Bind a port, then close it, so nothing listens there.
        let probe = try ListeningSocket.open(.loopback(port: 0), backlog: 1, reusePort: false, noDelay: false)
        let port = probe.address.port
        Glibc.close(probe.fd)
        let client = CollectingClient()
        let delegate = client
        try onLoop(loop) {
            _ = try? Connector.connect(to: .loopback(port: port), on: loop, timeout: .seconds(5), delegate: delegate)
        }
        #expect(eventually { client.state.withLock { $0.closed } })
        let snapshot = client.state.withLock { $0 }
        #expect(!snapshot.connected)
        #expect(snapshot.closeError == .syscall(SyscallError("connect", errno: ECONNREFUSED)))
    }
}

// MARK: - volume, backpressure, limits

/// Relays everything read from a source connection to a sink connection, zero-copy, pausing the source
/// while the sink is above its high watermark (the proxy's pattern).
final class RelayAcceptor: ListenerDelegate {
    let stats: RelayStats
    private var sinkDelegate: RelaySink?
    init(stats: RelayStats) { self.stats = stats }

    func didAccept(_ connection: Connection) {
        if let sinkDelegate, let sink = sinkDelegate.connection {
            let source = RelaySource(sink: sink, stats: stats)
            connection.delegate = source
            sinkDelegate.source = connection
        } else {
            let sink = RelaySink(stats: stats)
            sink.connection = connection
            connection.delegate = sink
            sinkDelegate = sink
        }
        stats.accepted.add(1, ordering: .relaxed)
    }
}

final class RelaySource: ConnectionDelegate {
    let sink: Connection
    let stats: RelayStats
    init(sink: Connection, stats: RelayStats) {
        self.sink = sink
        self.stats = stats
    }
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        sink.write(buffer.slice(range))
        if sink.queuedBytes > stats.maxSinkQueued.load(ordering: .relaxed) {
            stats.maxSinkQueued.store(sink.queuedBytes, ordering: .relaxed)
        }
        let allocations = connection.loop.bufferPool.allocations
        if allocations > stats.poolAllocations.load(ordering: .relaxed) {
            stats.poolAllocations.store(allocations, ordering: .relaxed)
        }
        if !sink.isWritable {
            stats.pauses.add(1, ordering: .relaxed)
            connection.pauseReading()
        }
        return range.count
    }
    func connectionDidReadEOF(_ connection: Connection) {
        sink.shutdownOutput()
    }
    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {}
}

final class RelaySink: ConnectionDelegate {
    weak var connection: Connection?
    var source: Connection?
    let stats: RelayStats
    init(stats: RelayStats) { self.stats = stats }
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int { range.count }
    func connectionWritabilityChanged(_ connection: Connection) {
        if connection.isWritable { source?.resumeReading() }
    }
    func connectionDidClose(_ connection: Connection, error: ConnectionError?) { source?.close() }
}

final class RelayStats: Sendable {
    let accepted = Atomic<Int>(0)
    let maxSinkQueued = Atomic<Int>(0)
    let poolAllocations = Atomic<Int>(0)
    let pauses = Atomic<Int>(0)
}

/// Counts what arrives and never consumes anything (so the input buffer must grow).
final class HoardingHandler: ConnectionDelegate {
    let record: ClosingObserver
    init(record: ClosingObserver) { self.record = record }
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int { 0 }
    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        record.connectionDidClose(connection, error: error)
    }
}

final class ClosingObserver: ConnectionDelegate, Sendable {
    let error = Mutex<ConnectionError?>(nil)
    let closed = Atomic<Bool>(false)
    let received = Atomic<Int>(0)
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        received.add(range.count, ordering: .relaxed)
        return range.count
    }
    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        self.error.withLock { $0 = error }
        closed.store(true, ordering: .relaxed)
    }
}

final class FixedAcceptor: ListenerDelegate {
    let make: () -> any ConnectionDelegate
    let onAccept: (Connection) -> Void
    init(onAccept: @escaping (Connection) -> Void = { _ in }, make: @escaping () -> any ConnectionDelegate) {
        self.make = make
        self.onAccept = onAccept
    }
    func didAccept(_ connection: Connection) {
        connection.delegate = make()
        onAccept(connection)
    }
}

extension TCPConnectionTests {
    @Test("1 MiB echoes back byte-exact through partial reads and partial writes")
    func echoOneMebibyteThroughPartialIO() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let stats = EchoStats()
        var options = ListenerOptions()
        options.socketSendBufferSize = 8 * 1024   // small kernel buffers force short writes on the server
        options.socketReceiveBufferSize = 8 * 1024
        let server = try TCPServer.start(on: group, address: .loopback(port: 0), options: options) { _ in EchoListener(stats: stats) }
        let client = try HTTPTestClient(port: server.localAddress.port, receiveBuffer: 4096, sendBuffer: 4096)
        client.setNonBlocking()
        let data = testBytes(1 << 20)
        var sent = 0
        var received: [UInt8] = []
        received.reserveCapacity(data.count)
        var chunk = [UInt8](repeating: 0, count: 8192)
        let clock = ContinuousClock()
        let end = clock.now + .seconds(40)
        // Read nothing until the client's sends block: by then the server's queue has filled past its
        // high watermark, it has paused reading, and every buffer on the way is full.
        var reading = false
        while received.count < data.count && clock.now < end {
            var pfd = pollfd(fd: client.fd, events: (reading ? Int16(POLLIN) : 0) | (sent < data.count ? Int16(POLLOUT) : 0), revents: 0)
            let ready = poll(&pfd, 1, 200)
            if sent < data.count && pfd.revents & Int16(POLLOUT) != 0 {
                let n = data[sent...].prefix(8192).withUnsafeBytes { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 { sent += n }
            }
            if !reading && (ready == 0 || sent == data.count) { reading = true }
            if reading && pfd.revents & Int16(POLLIN) != 0 {
                let n = chunk.withUnsafeMutableBytes { Glibc.recv(client.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { received.append(contentsOf: chunk[0 ..< n]) }
                if n == 0 { break }
            }
        }
        #expect(received.count == data.count)
        #expect(received == data)
        // Short writes happened (something was queued) and the queue stayed near its high watermark.
        let maxQueued = stats.maxQueued.load(ordering: .relaxed)
        #expect(maxQueued > 0)
        #expect(maxQueued <= 64 * 1024 + 16 * 1024)
    }

    @Test("1,000 concurrent connections are each accepted, echoed and closed")
    func thousandConcurrentConnections() throws {
        guard ensureFileDescriptorLimit(2_300) else {
            Issue.record("cannot raise RLIMIT_NOFILE to 2300 for 1,000 client + 1,000 server sockets")
            return
        }
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let stats = EchoStats()
        let server = try startEchoServer(on: group, stats: stats)
        var clients: [HTTPTestClient] = []
        for _ in 0 ..< 1_000 { clients.append(try HTTPTestClient(port: server.localAddress.port)) }
        #expect(eventually { stats.accepted.load(ordering: .relaxed) == 1_000 })
        for (i, client) in clients.enumerated() { try client.send("connection \(i);") }
        for (i, client) in clients.enumerated() {
            let expected = Array("connection \(i);".utf8)
            #expect(try client.receive(exactly: expected.count) == expected)
        }
        for client in clients { client.shutdownWrite() }
        for client in clients { _ = try client.readToEOF() }
        for client in clients { client.close() }
        #expect(eventually { stats.closed.load(ordering: .relaxed) == 1_000 })
        let handlers = try group.loops.map { loop in try onLoop(loop) { loop.handlerCount } }
        // Only the listeners remain registered.
        #expect(handlers == [1, 1])
    }

    @Test("a slow reader does not grow the writer's queue or buffers past the high watermark")
    func slowReaderIsBoundedByHighWatermark() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let stats = RelayStats()
        var options = ListenerOptions()
        options.socketSendBufferSize = 8 * 1024
        let server = try TCPServer.start(on: group, address: .loopback(port: 0), options: options) { _ in RelayAcceptor(stats: stats) }
        let port = server.localAddress.port
        let sinkClient = try HTTPTestClient(port: port, receiveBuffer: 4096)
        #expect(eventually { stats.accepted.load(ordering: .relaxed) == 1 })
        let total = 4 << 20
        let data = testBytes(total, seed: 7)
        let sendError = Locked<String?>(nil)
        let writer = Thread {
            do {
                let source = try HTTPTestClient(port: port)
                try source.send(data)
                source.shutdownWrite()
                _ = try? source.readToEOF()
            } catch {
                sendError.withLock { $0 = "\(error)" }
            }
        }
        writer.start()
        var received: [UInt8] = []
        received.reserveCapacity(total)
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let clock = ContinuousClock()
        let end = clock.now + .seconds(45)
        while received.count < total && clock.now < end {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(sinkClient.fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received.append(contentsOf: chunk[0 ..< n])
            usleep(500) // the slow reader
        }
        #expect(sendError.withLock { $0 } == nil)
        #expect(received.count == total)
        #expect(received == data)
        let maxQueued = stats.maxSinkQueued.load(ordering: .relaxed)
        // One read (≤ one 16 KiB buffer) may land on top of the high watermark before the pause.
        #expect(maxQueued <= 64 * 1024 + 16 * 1024)
        let observed1 = stats.pauses.load(ordering: .relaxed)
        #expect(observed1 > 0)
        // Buffers pinned by queued slices stay within the watermark too (≈ 80 KiB / 16 KiB + in-flight reads).
        let observed2 = stats.poolAllocations.load(ordering: .relaxed)
        #expect(observed2 <= 12)
    }

    @Test("a peer that sends more unconsumed bytes than maxInputBytes is disconnected")
    func inputLimitClosesTheConnection() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        var options = ListenerOptions()
        options.connection.maxInputBytes = 64 * 1024
        let record = ClosingObserver()
        let server = try TCPServer.start(on: group, address: .loopback(port: 0), options: options) { _ in
            FixedAcceptor { HoardingHandler(record: record) }
        }
        let client = try HTTPTestClient(port: server.localAddress.port)
        try? client.send(testBytes(100 * 1024))
        #expect(eventually { record.closed.load(ordering: .relaxed) })
        #expect(record.error.withLock { $0 } == .inputLimitExceeded)
    }

    @Test("an idle connection is closed after its idle timeout; traffic keeps it open")
    func idleTimeoutClosesQuietConnections() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        var options = ListenerOptions()
        options.connection.idleTimeout = .milliseconds(300)
        let busy = ClosingObserver()
        let quiet = ClosingObserver()
        let observers = Locked<[ClosingObserver]>([busy, quiet])
        let server = try TCPServer.start(on: group, address: .loopback(port: 0), options: options) { _ in
            FixedAcceptor { observers.withLock { $0.removeFirst() } }
        }
        let busyClient = try HTTPTestClient(port: server.localAddress.port)
        #expect(eventually { observers.withLock { $0.count } == 1 })
        let quietClient = try HTTPTestClient(port: server.localAddress.port)
        // The busy client talks every 50 ms for ~1 s, well past three idle timeouts.
        for _ in 0 ..< 20 {
            try busyClient.send("x")
            usleep(50_000)
        }
        #expect(eventually { quiet.closed.load(ordering: .relaxed) })
        #expect(quiet.error.withLock { $0 } == .timedOut)
        let observed3 = busy.closed.load(ordering: .relaxed)
        #expect(!observed3)
        #expect(try quietClient.readToEOF().isEmpty)
        // Once quiet, the busy one times out too.
        #expect(eventually { busy.closed.load(ordering: .relaxed) })
        let observed4 = busy.received.load(ordering: .relaxed)
        #expect(observed4 == 20)
    }

    @Test("a connect that never completes fails with connectTimedOut")
    func connectTimeout() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        // A listener with backlog 0 whose queue is filled: further SYNs are dropped, so connect hangs.
        let blocked = try ListeningSocket.open(.loopback(port: 0), backlog: 0, reusePort: false, noDelay: false)
        defer { Glibc.close(blocked.fd) }
        var fillers: [HTTPTestClient] = []
        for _ in 0 ..< 4 { if let s = try? HTTPTestClient(port: blocked.address.port, timeout: .seconds(1)) { fillers.append(s) } }
        let client = CollectingClient()
        try onLoop(loop) {
            _ = try? Connector.connect(to: blocked.address, on: loop, timeout: .milliseconds(300), delegate: client)
        }
        #expect(eventually { client.state.withLock { $0.closed } })
        let snapshot = client.state.withLock { $0 }
        #expect(!snapshot.connected)
        #expect(snapshot.closeError == .connectTimedOut)
    }

    @Test("half-close: the server reads EOF, keeps writing, then closes; the client sees all data then EOF")
    func halfCloseKeepsTheOtherDirectionOpen() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let stats = EchoStats()
        let server = try startEchoServer(on: group, stats: stats)
        let client = try HTTPTestClient(port: server.localAddress.port)
        let payload = testBytes(300 * 1024, seed: 3)
        try client.send(payload)
        client.shutdownWrite()
        // The echo answers everything it read before its EOF, then shuts down its own side.
        let echoed = try client.readToEOF()
        #expect(echoed == payload)
        let observed5 = stats.eofs.load(ordering: .relaxed)
        #expect(observed5 == 1)
    }

    @Test("accepted connections have TCP_NODELAY (inherited from the listener)")
    func acceptedConnectionsHaveNoDelay() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let noDelay = Locked<Bool?>(nil)
        let server = try TCPServer.start(on: group, address: .loopback(port: 0)) { _ in
            FixedAcceptor(onAccept: { connection in noDelay.withLock { $0 = connection.isNoDelay } }) { ClosingObserver() }
        }
        let client = try HTTPTestClient(port: server.localAddress.port)
        #expect(eventually { noDelay.withLock { $0 } != nil })
        #expect(noDelay.withLock { $0 } == true)
        client.close()
    }

    @Test("splice moves bytes socket → pipe → socket without user-space copies")
    func spliceThroughAPipe() throws {
        var left: [Int32] = [0, 0]
        var right: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &left) == 0)
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &right) == 0)
        defer { for fd in left + right { Glibc.close(fd) } }
        let message = Array("upgraded bytes".utf8)
        _ = message.withUnsafeBytes { Glibc.write(left[0], $0.baseAddress, $0.count) }
        let pipe = try SplicePipe()
        #expect(try pipe.fill(from: left[1]) == .processed(message.count))
        #expect(pipe.bufferedBytes == message.count)
        #expect(try pipe.drain(to: right[0]) == .processed(message.count))
        var out = [UInt8](repeating: 0, count: 64)
        let n = out.withUnsafeMutableBytes { Glibc.read(right[1], $0.baseAddress, $0.count) }
        #expect(Array(out[0 ..< max(0, n)]) == message)
        // Nothing more to read: a non-blocking splice reports wouldBlock instead of waiting.
        let flags = fcntl(left[1], F_GETFL)
        _ = fcntl(left[1], F_SETFL, flags | O_NONBLOCK)
        #expect(try pipe.fill(from: left[1]) == .wouldBlock)
        pipe.close()
    }
}

extension TCPConnectionTests {
    @Test("steady-state request/response traffic reuses pooled buffers: no new buffer is allocated")
    func steadyStateReusesPooledBuffers() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let stats = EchoStats()
        let server = try startEchoServer(on: group, stats: stats)
        let client = try HTTPTestClient(port: server.localAddress.port)
        let message = Array(repeating: UInt8(ascii: "a"), count: 64)
        for _ in 0 ..< 100 {
            try client.send(message)
            _ = try client.receive(exactly: message.count)
        }
        let before = try onLoop(loop) { loop.bufferPool.allocations }
        for _ in 0 ..< 1_000 {
            try client.send(message)
            _ = try client.receive(exactly: message.count)
        }
        let after = try onLoop(loop) { (loop.bufferPool.allocations, loop.bufferPool.freeCount) }
        #expect(after.0 == before)
        // Between requests the idle connection holds no buffer: it is back in the pool.
        #expect(after.1 >= 1)
    }
}
