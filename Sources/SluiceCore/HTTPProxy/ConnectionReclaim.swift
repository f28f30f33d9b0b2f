// HTTPProxy layer: reclaiming idle client connections under connection pressure (reliability.md §1c,
// nginx's reusable-connection queue): idle keep-alive and head-waiting connections, oldest first, are
// closed once a loop is within 1/16 of its connection limit; only then does accepting pause.

/// A loop's reclaimable connections (idle keep-alive, or waiting for a complete request head) in the
/// order they became so, oldest first. Intrusive doubly linked list: O(1) append and remove, no
/// allocation — the links live on the connections.
struct IdleConnectionQueue {
    private(set) var oldest: ServerConnection?
    private var newest: ServerConnection?
    private(set) var count = 0

    mutating func append(_ connection: ServerConnection) {
        guard !connection.isReclaimable else { return }
        connection.isReclaimable = true
        connection.reclaimPrevious = newest
        connection.reclaimNext = nil
        if let newest { newest.reclaimNext = connection } else { oldest = connection }
        newest = connection
        count += 1
    }

    mutating func remove(_ connection: ServerConnection) {
        guard connection.isReclaimable else { return }
        connection.isReclaimable = false
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

    /// `connection` is idle (keep-alive) or waits for a head: it may be reclaimed from now on. If the
    /// listener is paused at the limit with clients queued, the oldest idle connection makes room now.
    func connectionBecameReclaimable(_ connection: ServerConnection) {
        idleConnections.append(connection)
        if let listener, listener.isPaused, listener.mayHaveQueuedConnections, !isDraining {
            reclaim(count: 1)
        }
    }

    /// `connection` has a complete head: it is busy until its exchange ends.
    func connectionBecameBusy(_ connection: ServerConnection) {
        idleConnections.remove(connection)
    }

    /// After an accept: close idle connections, oldest first, until the loop is below the threshold.
    /// `spare` (the connection just accepted) is never reclaimed.
    func reclaimIfCrowded(sparing spare: ServerConnection) {
        while connections.count - reclaimsInProgress >= reclaimThreshold, let oldest = idleConnections.oldest, oldest !== spare {
            close(reclaimed: oldest)
        }
    }

    /// The paused listener has clients waiting: free a slot if an idle connection can give one up.
    func listenerHasQueuedConnections(_ listener: Listener) {
        guard !isDraining, connections.count - reclaimsInProgress >= maxConnections else { return }
        reclaim(count: 1)
    }

    private func reclaim(count: Int) {
        guard reclaimThreshold != Int.max else { return }
        var left = count
        while left > 0, let oldest = idleConnections.oldest {
            close(reclaimed: oldest)
            left -= 1
        }
    }

    private func close(reclaimed connection: ServerConnection) {
        idleConnections.remove(connection)
        reclaimedConnections += 1
        if reclaimedConnections == 1 || reclaimedConnections % 1000 == 0 {
            logger.warning("connection limit nearly reached; closing idle connections, oldest first",
                           metadata: ["limit": "\(maxConnections)", "reclaimed_total": "\(reclaimedConnections)"])
        }
        if !connection.reclaim() { reclaimsInProgress += 1 }
    }
}
