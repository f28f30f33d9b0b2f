// The first `Scaler` (Serving layer, KPA): for an operator running the autoscaler locally against pods
// managed elsewhere. It records each revision's replica count, logs every change as a JSON line and
// exposes the counts (the status API reads them); it starts and stops nothing.
import Logging
import Synchronization

/// Records and logs desired replica counts.
///
/// The second implementation, for a cluster, is the Kubernetes scale subresource, as Knative's
/// PodAutoscaler reconciler applies a decision (not built yet): read
/// `GET /apis/apps/v1/namespaces/{namespace}/deployments/{revision}-deployment/scale` for
/// `spec.replicas` (unset counts as 1) and, when it differs from the desired count, send
/// `PATCH` to the same path with `Content-Type: application/json-patch+json` and the body
/// `[{"op":"replace","path":"/spec/replicas","value":N}]`, authenticated with the pod's service
/// account token (`/var/run/secrets/kubernetes.io/serviceaccount/token`) against the API server's CA;
/// `currentReplicas` is the GET, `applyScale` the PATCH, a 404 is `ScalerError.unknownRevision` and
/// any other failure `ScalerError.rejected` with the API server's message.
public final class LocalScaler: Scaler {
    public struct Change: Sendable, Equatable {
        public var from: Int32?
        public var to: Int32
        public var at: UnixTime
    }

    private struct Entry {
        var replicas: Int32?
        var changes = 0
        var last: Change?
    }

    private let state = Mutex<[RevisionKey: Entry]>([:])
    private let clock: any WallClock
    private let logger: Logger

    public init(clock: any WallClock, logger: Logger = Logger(label: "sluice.autoscaler.scaler")) {
        self.clock = clock
        self.logger = logger
    }

    /// Makes `revision` known with its current replica count (nil = unset, which Knative reads as 1).
    /// A revision already known keeps its recorded count.
    public func register(_ revision: RevisionKey, replicas: Int32?) {
        state.withLock { entries in
            if entries[revision] == nil { entries[revision] = Entry(replicas: replicas) }
        }
    }

    public func forget(_ revision: RevisionKey) {
        _ = state.withLock { $0.removeValue(forKey: revision) }
    }

    public func currentReplicas(of revision: RevisionKey) throws(ScalerError) -> Int32? {
        let entry = state.withLock { $0[revision] }
        guard let entry else { throw .unknownRevision(revision) }
        return entry.replicas
    }

    public func applyScale(_ replicas: Int32, to revision: RevisionKey) throws(ScalerError) {
        guard replicas >= 0 else { throw .rejected(revision, "replicas must be >= 0, was \(replicas)") }
        let now = clock.now()
        let change = state.withLock { entries -> Change? in
            guard var entry = entries[revision] else { return nil }
            let change = Change(from: entry.replicas, to: replicas, at: now)
            entry.replicas = replicas
            entry.changes += 1
            entry.last = change
            entries[revision] = entry
            return change
        }
        guard let change else { throw .unknownRevision(revision) }
        logger.info("scale changed", metadata: [
            "knative.dev/key": "\(revision)",
            "from": change.from.map { .stringConvertible($0) } ?? "unset",
            "to": .stringConvertible(replicas),
        ])
    }

    /// The last applied change of `revision` and how many there were.
    public func lastChange(of revision: RevisionKey) -> (change: Change?, count: Int) {
        state.withLock { entries in (entries[revision]?.last, entries[revision]?.changes ?? 0) }
    }
}
