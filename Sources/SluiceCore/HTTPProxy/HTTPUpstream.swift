// HTTPProxy layer: the client side of the proxy — an upstream's settings, its per-loop pool of
// kept-alive connections, and the delegate of each upstream socket (response bytes go to the
// exchange that owns it; an idle pooled socket that hears anything is dropped before reuse).
import Synchronization

/// An upstream (host:port) the proxy forwards to. Create once, share across loops; each loop keeps
/// its own pool of connections to it.
public final class HTTPUpstream: Sendable, CustomStringConvertible {
    private static let nextID = Atomic<Int>(1)

    public let address: SocketAddress
    public let configuration: HTTPClientConfiguration
    /// Identifies the upstream's per-loop pools.
    let id: Int

    public init(address: SocketAddress, configuration: HTTPClientConfiguration = HTTPClientConfiguration()) {
        self.address = address
        self.configuration = configuration
        id = Self.nextID.add(1, ordering: .relaxed).newValue
    }

    public var description: String { "\(address)" }
}

/// Counters of one loop's pool (for tests and metrics).
public struct HTTPUpstreamPoolStatistics: Sendable, Equatable {
    /// Connections opened (connect started).
    public var connectsStarted = 0
    /// Requests sent on a pooled (reused) connection.
    public var reuses = 0
    /// Idle connections now.
    public var idle = 0
    /// Connections closed while idle (peer FIN or stray bytes, idle timeout).
    public var idleClosedByPeer = 0
    /// Requests retried because a reused connection failed before any request byte was written.
    public var retries = 0
}

/// Holds a new connection's place until its UpstreamConnection exists (never called: see `connect`).
private final class PlaceholderDelegate: ConnectionDelegate, Sendable {
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int { range.count }
    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {}
}

/// The idle connections to one upstream on one loop. Most recently used first, so a few connections
/// stay warm and the idle timeout retires the rest.
final class UpstreamPool {
    let upstream: HTTPUpstream
    let loop: EventLoop
    private var idle: [UpstreamConnection] = []
    var statistics = HTTPUpstreamPoolStatistics()
    private static let placeholder = PlaceholderDelegate()
    /// The idle timeout in loop-clock nanoseconds, converted once (Duration arithmetic per release is not free).
    private let idleTimeoutNanoseconds: UInt64

    init(upstream: HTTPUpstream, loop: EventLoop) {
        self.upstream = upstream
        self.loop = loop
        idleTimeoutNanoseconds = EventLoop.nanoseconds(upstream.configuration.idleTimeout)
        idle.reserveCapacity(min(upstream.configuration.maxIdleConnections, 256))
    }

    /// A live idle connection, or nil.
    func acquire() -> UpstreamConnection? {
        while let candidate = idle.popLast() {
            candidate.isIdle = false
            guard candidate.connection.isOpen, !candidate.connection.isInputClosed else {
                candidate.connection.close()
                continue
            }
            candidate.connection.setDeadline(after: nil)
            statistics.reuses += 1
            statistics.idle = idle.count
            return candidate
        }
        return nil
    }

    /// Starts a new connection for `owner`. Throws when no socket can be made (EMFILE).
    func connect(owner: ServerConnection) throws(SyscallError) -> UpstreamConnection {
        statistics.connectsStarted += 1
        // The connect reports on a later loop turn, so the real delegate is in place before any event.
        // The pool arms the deadline itself (idle timeout while pooled); no automatic idle re-arming.
        var options = upstream.configuration.connection
        options.idleTimeout = nil
        let connection = try Connector.connect(
            to: upstream.address, on: loop, timeout: upstream.configuration.connectTimeout,
            options: options, delegate: Self.placeholder)
        let upstreamConnection = UpstreamConnection(pool: self, connection: connection, limits: upstream.configuration.parserLimits)
        upstreamConnection.owner = owner
        connection.delegate = upstreamConnection
        return upstreamConnection
    }

    /// Takes a connection back after a complete exchange, or closes it when the pool is full.
    func release(_ upstreamConnection: UpstreamConnection) {
        upstreamConnection.owner = nil
        guard upstreamConnection.connection.isOpen, !upstreamConnection.connection.isInputClosed,
              idle.count < upstream.configuration.maxIdleConnections else {
            upstreamConnection.connection.close()
            return
        }
        upstreamConnection.isIdle = true
        upstreamConnection.connection.setDeadline(at: max(1, loop.now &+ idleTimeoutNanoseconds))
        idle.append(upstreamConnection)
        statistics.idle = idle.count
    }

    /// An idle connection closed (peer FIN, stray bytes, idle timeout): forget it.
    func remove(_ upstreamConnection: UpstreamConnection) {
        if let index = idle.lastIndex(where: { $0 === upstreamConnection }) {
            idle.remove(at: index)
        }
        statistics.idle = idle.count
    }

    /// Closes every idle connection (drain, shutdown).
    func closeIdle() {
        let all = idle
        idle.removeAll()
        statistics.idle = 0
        for upstreamConnection in all { upstreamConnection.connection.close() }
    }
}

/// The delegate of one upstream socket. While an exchange owns it, every event goes to that
/// exchange; while idle in the pool, any event (FIN, bytes, error) retires it.
final class UpstreamConnection: ConnectionDelegate {
    // Strong: an unowned reference costs a runtime check on every use; the pool outlives its connections.
    let pool: UpstreamPool
    let connection: Connection
    /// The exchange using this connection; nil while idle.
    var owner: ServerConnection?
    var isIdle = false
    /// True from the first completed exchange on: a failure before any byte is written may be retried.
    var wasUsed = false
    /// The response head parser, reused for every response on this connection.
    var head: HTTPHead

    init(pool: UpstreamPool, connection: Connection, limits: HTTPParserLimits) {
        self.pool = pool
        self.connection = connection
        head = HTTPHead(limits: limits)
    }

    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        if let owner { return owner.upstreamDidReceive(self, buffer: buffer, range: range) }
        // Bytes on an idle connection: the upstream broke framing or is closing; never reuse it.
        connection.close()
        return range.count
    }

    func connectionDidReadEOF(_ connection: Connection) {
        if let owner { owner.upstreamDidReadEOF(self) } else { connection.close() }
    }

    func connectionWritabilityChanged(_ connection: Connection) {
        owner?.upstreamWritabilityChanged(self)
    }

    func connectionDidConnect(_ connection: Connection) {
        owner?.upstreamDidConnect(self)
    }

    func connectionDeadlineExpired(_ connection: Connection) {
        // Only idle pooled connections arm a deadline (the pool idle timeout).
        connection.close()
    }

    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        if isIdle {
            isIdle = false
            pool.statistics.idleClosedByPeer += 1
            pool.remove(self)
        }
        let owner = self.owner
        self.owner = nil
        owner?.upstreamDidClose(self, error: error)
    }
}
