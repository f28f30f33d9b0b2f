// HTTPProxy layer: reclaiming idle client connections under connection pressure (reliability.md §1c,
// nginx's reusable-connection queue): idle keep-alive connections, then head-waiting ones, oldest
// first, are closed once a loop is within 1/16 of its connection limit; only then does accepting pause.

/// Reclaimable connections of one kind, in the order they became so, oldest first. Intrusive doubly
/// linked list: O(1) append and remove, no allocation — the links live on the connections, and a
/// connection is in at most one queue (`ServerConnection.reclaimQueue` names which).
struct IdleConnectionQueue {
    /// Kept-alive connections between requests.
    static let keptAlive: UInt8 = 1
    /// New connections that have not sent a complete head yet.
    static let headWaiting: UInt8 = 2

    let kind: UInt8
    private(set) var oldest: ServerConnection?
    private var newest: ServerConnection?
    private(set) var count = 0

    init(kind: UInt8) { self.kind = kind }

    mutating func append(_ connection: ServerConnection) {
        guard connection.reclaimQueue == 0 else { return }
        connection.reclaimQueue = kind
        connection.reclaimPrevious = newest
        connection.reclaimNext = nil
        if let newest { newest.reclaimNext = connection } else { oldest = connection }
        newest = connection
        count += 1
    }

    mutating func remove(_ connection: ServerConnection) {
        guard connection.reclaimQueue == kind else { return }
        connection.reclaimQueue = 0
        let previous = connection.reclaimPrevious
        let next = connection.reclaimNext
        if let previous { previous.reclaimNext = next } else { oldest = next }
        if let next { next.reclaimPrevious = previous } else { newest = previous }
        connection.reclaimPrevious = nil
        connection.reclaimNext = nil
        count -= 1
    }
}

extension HTTPServerLoop {
    /// Open connections at which idle ones start being reclaimed: the limit minus 1/16 of it (nginx
    /// reuses connections when fewer than 1/16 are free; 94 % for a limit of 100). Below 16 connections
    /// per loop there is no margin to keep, so nothing is reclaimed and only the pause applies.
    static func reclaimThreshold(forLimit maxConnections: Int) -> Int {
        let reserve = maxConnections / 16
        return reserve > 0 ? maxConnections - reserve : Int.max
    }

    /// A new connection is reclaimable only after this long without a complete head: its request is
    /// usually already in the socket, just not read yet in this loop turn, and closing it then would
    /// reset it instead of serving it.
    static let headWaitingGraceNanoseconds: UInt64 = 1_000_000_000

    /// How long a connection that has sent nothing yet may still send its first request once a drain
    /// started (it was accepted from the queue, or had just connected).
    static let drainHeadGraceNanoseconds: UInt64 = 1_000_000_000

    /// A new connection waits for its first head (reclaimable after the grace).
    func connectionAccepted(_ connection: ServerConnection) {
        connection.acceptedAt = loop.now
        headWaitingConnections.append(connection)
    }

    /// `connection` is idle between requests: it may be reclaimed from now on. If the listener is
    /// paused at the limit with clients queued, the oldest idle connection makes room now.
    func connectionBecameReclaimable(_ connection: ServerConnection) {
        keptAliveConnections.append(connection)
        if let listener, listener.isPaused, listener.mayHaveQueuedConnections, !isDraining {
            reclaimOne()
        }
    }

    /// `connection` has a complete head (busy until its exchange ends), or closed.
    func connectionBecameBusy(_ connection: ServerConnection) {
        keptAliveConnections.remove(connection)
        headWaitingConnections.remove(connection)
    }

    /// After an accept: close idle connections, oldest first, until the loop is below the threshold.
    func reclaimIfCrowded() {
        while connections.count - reclaimsInProgress >= reclaimThreshold, reclaimOne() {}
    }

    /// The paused listener has clients waiting: free a slot if an idle connection can give one up.
    func listenerHasQueuedConnections(_ listener: Listener) {
        guard !isDraining, connections.count - reclaimsInProgress >= maxConnections else { return }
        reclaimOne()
    }

    /// Closes the oldest kept-alive idle connection, else the oldest head-waiting one past its grace.
    @discardableResult
    private func reclaimOne() -> Bool {
        guard reclaimThreshold != Int.max else { return false }
        let victim: ServerConnection
        if let oldest = keptAliveConnections.oldest {
            victim = oldest
        } else if let oldest = headWaitingConnections.oldest, loop.now &- oldest.acceptedAt >= Self.headWaitingGraceNanoseconds {
            victim = oldest
        } else {
            return false
        }
        connectionBecameBusy(victim)
        reclaimedConnections += 1
        if reclaimedConnections == 1 || reclaimedConnections % 1000 == 0 {
            logger.warning("connection limit nearly reached; closing idle connections, oldest first",
                           metadata: ["limit": "\(maxConnections)", "reclaimed_total": "\(reclaimedConnections)"])
        }
        if !victim.reclaim() { reclaimsInProgress += 1 }
        return true
    }
}
