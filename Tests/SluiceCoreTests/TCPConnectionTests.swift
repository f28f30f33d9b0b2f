// Tests for the TCP layer's Connection and Connector: echo, partial I/O, half-close, connect, deadlines.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore

@Suite("TCP connection", .timeLimit(.minutes(1)))
struct TCPConnectionTests {
    @Test("an echo server returns what a client sends and closes after the client half-closes")
    func echoRoundTrip() throws {
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let stats = EchoStats()
        let server = try startEchoServer(on: group, stats: stats)
        let client = try TestSocket(port: server.localAddress.port)
        try client.send("hello, sluice")
        #expect(try client.receive(exactly: 13) == Array("hello, sluice".utf8))
        client.shutdownWrite()
        #expect(try client.receiveUntilEOF().isEmpty)
        #expect(waitUntil { stats.eofs.load(ordering: .relaxed) == 1 })
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
        #expect(waitUntil { client.state.withLock { $0.closed } })
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
        #expect(waitUntil { client.state.withLock { $0.closed } })
        let snapshot = client.state.withLock { $0 }
        #expect(!snapshot.connected)
        #expect(snapshot.closeError == .syscall(SyscallError("connect", errno: ECONNREFUSED)))
    }
}
