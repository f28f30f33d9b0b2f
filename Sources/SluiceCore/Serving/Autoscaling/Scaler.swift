// Seams between the KPA and the world (Serving layer): where ready pods are counted and listed
// (`EndpointsSource`) and where a desired scale is applied (`Scaler`), with a first implementation
// over a static pod list read from a file or from flags.
import Synchronization
import Yams

/// Failures of a scaler or endpoints source, naming the revision.
public enum ScalerError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownRevision(RevisionKey)
    case rejected(RevisionKey, String)
    public var description: String {
        switch self {
        case .unknownRevision(let key): return "revision \(key) is not known to this scaler"
        case .rejected(let key, let reason): return "scaling revision \(key) failed: \(reason)"
        }
    }
}

/// Where the autoscaler learns a revision's ready pods (Knative reads the private service's
/// Endpoints; the local runtime knows its processes).
public protocol EndpointsSource: Sendable {
    /// Ready pods of `revision`: `.notFound` when the revision has no endpoints object.
    func readyPodCount(of revision: RevisionKey) -> ReadyPodCount
    /// The ready pods themselves, for the scraper.
    func readyPods(of revision: RevisionKey) -> [ScrapeCandidate]
}

/// Applies desired scales.
///
/// Implementations:
/// - `LocalScaler` (`autoscaler serve`): records each revision's replica count, logs every change
///   and exposes it on the status API; for running the autoscaler against pods managed elsewhere.
/// - `StaticPodList`: a fixed pod list (file or flags) that records the requested count.
/// - The local runtime's scale API (`sluice serve`), which starts and stops revision processes,
///   comes with the local-runtime issue.
/// - The Kubernetes implementation (not built) patches the revision Deployment's scale, as Knative's
///   PodAutoscaler reconciler does: `GET /apis/apps/v1/namespaces/{ns}/deployments/{revision}-deployment/scale`
///   for `spec.replicas` (unset counts as 1) and, when it differs from the desired count, `PATCH`
///   with `Content-Type: application/json-patch+json` and body
///   `[{"op":"replace","path":"/spec/replicas","value":N}]`, authenticated with the pod's service
///   account token; ready pods come from the revision's private Service Endpoints.
public protocol Scaler: Sendable {
    /// The scale target's replica count (nil when unset, which Knative treats as 1).
    func currentReplicas(of revision: RevisionKey) throws(ScalerError) -> Int32?
    /// Sets the scale target's replica count.
    func applyScale(_ replicas: Int32, to revision: RevisionKey) throws(ScalerError)
}

/// A fixed list of pods per revision: ready pods are the listed ones; applied scales are recorded.
public final class StaticPodList: Scaler, EndpointsSource {
    public struct Pod: Sendable, Equatable {
        public var name: String
        /// host:port of the pod's queue-proxy metrics endpoint.
        public var address: String
        /// Only ready pods count and are scraped.
        public var ready: Bool
        /// When the pod started running; nil = the list's `startedAt`.
        public var startedAt: UnixTime?
        public init(name: String, address: String, ready: Bool = true, startedAt: UnixTime? = nil) {
            self.name = name
            self.address = address
            self.ready = ready
            self.startedAt = startedAt
        }
    }

    private let pods: [RevisionKey: [Pod]]
    private let startedAt: UnixTime
    private let replicas: Mutex<[RevisionKey: Int32]>

    /// `startedAt` is when the listed pods are taken to have started (for old/young sampling).
    public init(pods: [RevisionKey: [Pod]], startedAt: UnixTime = UnixTime(seconds: 0)) {
        self.pods = pods
        self.startedAt = startedAt
        self.replicas = Mutex([:])
    }

    public var revisions: [RevisionKey] { pods.keys.sorted() }

    public func readyPodCount(of revision: RevisionKey) -> ReadyPodCount {
        guard let list = pods[revision] else { return .notFound }
        return .ready(list.reduce(0) { $0 + ($1.ready ? 1 : 0) })
    }

    public func readyPods(of revision: RevisionKey) -> [ScrapeCandidate] {
        (pods[revision] ?? []).filter(\.ready).map {
            ScrapeCandidate(name: $0.name, address: $0.address, startedAt: $0.startedAt ?? startedAt)
        }
    }

    /// Every listed pod of `revision`, ready or not.
    public func pods(of revision: RevisionKey) -> [Pod] { pods[revision] ?? [] }

    public func currentReplicas(of revision: RevisionKey) throws(ScalerError) -> Int32? {
        guard let list = pods[revision] else { throw .unknownRevision(revision) }
        return replicas.withLock { $0[revision] } ?? Int32(clamping: list.count)
    }

    public func applyScale(_ count: Int32, to revision: RevisionKey) throws(ScalerError) {
        guard pods[revision] != nil else { throw .unknownRevision(revision) }
        guard count >= 0 else { throw .rejected(revision, "replicas must be >= 0, was \(count)") }
        replicas.withLock { $0[revision] = count }
    }

    /// Parses `--pod` flag values: `namespace/revision=podName@host:port`.
    public static func parse(flags: [String]) throws(StaticPodListError) -> StaticPodList {
        var pods: [RevisionKey: [Pod]] = [:]
        for (i, flag) in flags.enumerated() {
            let where_ = "--pod #\(i + 1) (\(flag))"
            guard let eq = flag.firstIndex(of: "=") else {
                throw StaticPodListError("\(where_): expected namespace/revision=pod@host:port")
            }
            let key = try revisionKey(String(flag[..<eq]), where: where_)
            let rest = flag[flag.index(after: eq)...]
            guard let at = rest.firstIndex(of: "@"), rest.startIndex < at, rest.index(after: at) < rest.endIndex else {
                throw StaticPodListError("\(where_): expected pod@host:port after '='")
            }
            pods[key, default: []].append(Pod(name: String(rest[..<at]), address: String(rest[rest.index(after: at)...])))
        }
        return StaticPodList(pods: pods)
    }

    /// Parses a YAML pod list:
    /// ```yaml
    /// revisions:
    ///   - namespace: default
    ///     name: hello-00001
    ///     pods:
    ///       - {name: hello-00001-a, address: "127.0.0.1:9091"}
    /// ```
    public static func parse(yaml: String, file: String) throws(StaticPodListError) -> StaticPodList {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw StaticPodListError("\(file): \(error)") }
        guard let root, let mapping = root.mapping else { throw StaticPodListError("\(file): expected a mapping with 'revisions'") }
        guard let list = mapping["revisions"]?.sequence else {
            throw StaticPodListError("\(file): missing 'revisions' list")
        }
        var pods: [RevisionKey: [Pod]] = [:]
        for (i, entry) in list.enumerated() {
            let at = "\(file):\(entry.mark?.line ?? 0): revisions[\(i)]"
            guard let m = entry.mapping else { throw StaticPodListError("\(at): expected a mapping") }
            guard let name = m["name"]?.string, !name.isEmpty else { throw StaticPodListError("\(at).name: missing") }
            let namespace = m["namespace"]?.string ?? "default"
            let key = RevisionKey(namespace: namespace, name: name)
            var revisionPods: [Pod] = []
            for (j, pod) in (m["pods"]?.sequence.map(Array.init) ?? []).enumerated() {
                let podAt = "\(file):\(pod.mark?.line ?? 0): revisions[\(i)].pods[\(j)]"
                guard let pm = pod.mapping, let podName = pm["name"]?.string, !podName.isEmpty else {
                    throw StaticPodListError("\(podAt).name: missing")
                }
                guard let address = pm["address"]?.string, address.contains(":") else {
                    throw StaticPodListError("\(podAt).address: expected host:port")
                }
                revisionPods.append(Pod(name: podName, address: address))
            }
            pods[key, default: []].append(contentsOf: revisionPods)
        }
        return StaticPodList(pods: pods)
    }

    private static func revisionKey(_ text: String, where place: String) throws(StaticPodListError) -> RevisionKey {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw StaticPodListError("\(place): expected namespace/revision before '='")
        }
        return RevisionKey(namespace: String(parts[0]), name: String(parts[1]))
    }
}

public struct StaticPodListError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
