// Test support, in-process servers: an HTTPServer on its own EventLoopGroup (a reverse proxy or a custom
// handler) and a zero-copy TCP echo server, each for one test.
import Synchronization
import SluiceCore

/// An HTTPServer on a fresh group on 127.0.0.1, for one test; `stop` shuts the group down.
public final class InProcessProxy {
    public let group: EventLoopGroup
    public let server: HTTPServer
    public var port: UInt16 { server.localAddress.port }

    public init(loops: Int = 1, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
                makeHandler: @escaping @Sendable (EventLoop) -> any HTTPHandler) throws {
        group = try EventLoopGroup(loopCount: loops)
        do {
            server = try HTTPServer.start(on: group, address: .loopback(port: 0), configuration: configuration, makeHandler: makeHandler)
        } catch {
            group.shutdown()
            throw error
        }
    }

    /// A reverse proxy to 127.0.0.1:`upstreamPort`.
    public convenience init(upstreamPort: UInt16, loops: Int = 1, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
                            client: HTTPClientConfiguration = HTTPClientConfiguration(), timeouts: HTTPRequestTimeouts = HTTPRequestTimeouts()) throws {
        let upstream = HTTPUpstream(address: .loopback(port: upstreamPort), configuration: client)
        try self.init(loops: loops, configuration: configuration) { _ in ReverseProxyHandler(upstream: upstream, timeouts: timeouts) }
    }

    /// The statistics of every loop, summed.
    public var statistics: HTTPServerStatistics {
        var total = HTTPServerStatistics()
        for loop in server.statistics() {
            total.connections += loop.connections
            total.accepted += loop.accepted
            total.limitPauses += loop.limitPauses
            total.tunnels += loop.tunnels
            total.upstream.connectsStarted += loop.upstream.connectsStarted
            total.upstream.reuses += loop.upstream.reuses
            total.upstream.idle += loop.upstream.idle
            total.upstream.idleClosedByPeer += loop.upstream.idleClosedByPeer
            total.upstream.retries += loop.upstream.retries
        }
        return total
    }

    public func stop() { group.shutdown() }
}

/// Echoes every byte back, zero-copy (writes slices of the receive buffer), pausing reads while the
/// write queue is above its high watermark. Counts what it saw for the tests.
public final class EchoHandler: ConnectionDelegate {
    public let stats: EchoStats
    public init(stats: EchoStats) { self.stats = stats }

    public func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        stats.received.add(range.count, ordering: .relaxed)
        connection.write(buffer.slice(range))
        let queued = connection.queuedBytes
        if queued > stats.maxQueued.load(ordering: .relaxed) { stats.maxQueued.store(queued, ordering: .relaxed) }
        if !connection.isWritable { connection.pauseReading() }
        return range.count
    }

    public func connectionWritabilityChanged(_ connection: Connection) {
        if connection.isWritable { connection.resumeReading() }
    }

    public func connectionDidReadEOF(_ connection: Connection) {
        stats.eofs.add(1, ordering: .relaxed)
        connection.shutdownOutput()
    }

    public func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        stats.closed.add(1, ordering: .relaxed)
    }
}

/// What the echo handlers of one server saw, readable from any thread.
public final class EchoStats: Sendable {
    public let accepted = Atomic<Int>(0)
    public let received = Atomic<Int>(0)
    public let maxQueued = Atomic<Int>(0)
    public let eofs = Atomic<Int>(0)
    public let closed = Atomic<Int>(0)
    public init() {}
}

/// Gives every accepted connection an EchoHandler.
public final class EchoListener: ListenerDelegate {
    public let stats: EchoStats
    public init(stats: EchoStats) { self.stats = stats }
    public func didAccept(_ connection: Connection) {
        stats.accepted.add(1, ordering: .relaxed)
        connection.delegate = EchoHandler(stats: stats)
    }
}

/// Starts an echo server on `group` (127.0.0.1, ephemeral port).
public func startEchoServer(on group: EventLoopGroup, strategy: TCPServer.Strategy = .reusePortPerLoop, stats: EchoStats) throws -> TCPServer {
    try TCPServer.start(on: group, address: .loopback(port: 0), strategy: strategy) { _ in EchoListener(stats: stats) }
}
