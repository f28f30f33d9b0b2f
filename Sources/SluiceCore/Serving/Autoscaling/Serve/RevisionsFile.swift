// The `autoscaler serve` revisions file (Serving layer, KPA): the revisions to autoscale with their
// annotations, containerConcurrency, private-service stats address and pods — the local stand-in for
// the PodAutoscaler, Revision and Endpoints objects Knative's autoscaler watches. Errors name file:line.
import Yams

/// One revision of the file.
public struct RevisionEntry: Sendable, Equatable {
    public var key: RevisionKey
    public var annotations: RevisionAnnotations
    /// The revision's `containerConcurrency` (0 = unlimited).
    public var containerConcurrency: Int64
    /// host:port of the private service's stats port, for service scraping (mesh fallback).
    public var serviceAddress: String?
    public var pods: [StaticPodList.Pod]
    /// 1-based line of the entry in its file.
    public var line: Int

    public init(key: RevisionKey, annotations: RevisionAnnotations = RevisionAnnotations(), containerConcurrency: Int64 = 0,
                serviceAddress: String? = nil, pods: [StaticPodList.Pod], line: Int = 0) {
        self.key = key
        self.annotations = annotations
        self.containerConcurrency = containerConcurrency
        self.serviceAddress = serviceAddress
        self.pods = pods
        self.line = line
    }
}

/// A parsed revisions file.
public struct RevisionsDocument: Sendable, Equatable {
    public var revisions: [RevisionEntry]

    public init(revisions: [RevisionEntry]) { self.revisions = revisions }

    /// The pods as an endpoints source (ready pods and start times as listed).
    public func podList(startedAt: UnixTime) -> StaticPodList {
        var pods: [RevisionKey: [StaticPodList.Pod]] = [:]
        for entry in revisions { pods[entry.key] = entry.pods }
        return StaticPodList(pods: pods, startedAt: startedAt)
    }

    static let revisionFields: Set<String> = ["namespace", "name", "annotations", "containerConcurrency", "service", "pods"]
    static let podFields: Set<String> = ["name", "address", "ready", "startTime", "uptime"]

    /// Parses and validates a revisions file:
    /// ```yaml
    /// revisions:
    ///   - namespace: default
    ///     name: hello-00001
    ///     containerConcurrency: 0
    ///     annotations:
    ///       autoscaling.knative.dev/target: "10"
    ///     service: "127.0.0.1:9190"        # optional: private service stats address
    ///     pods:
    ///       - name: hello-00001-a
    ///         address: "127.0.0.1:9090"   # the pod's queue-proxy stats port
    ///         ready: true                  # optional, default true
    ///         uptime: 5m                   # optional: running this long at load; or startTime (unix s)
    /// ```
    /// `loadedAt` anchors `uptime`; `config` validates the annotations as Knative's webhook would.
    public static func parse(yaml: String, file: String, config: AutoscalerConfig,
                             loadedAt: UnixTime) throws(StaticPodListError) -> RevisionsDocument {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw StaticPodListError("\(file): invalid YAML: \(error)") }
        guard let root, let top = root.mapping else {
            throw StaticPodListError("\(file):1: expected a mapping with a 'revisions' list")
        }
        for (keyNode, _) in top where keyNode.string != "revisions" {
            throw StaticPodListError("\(file):\(line(keyNode)): \(keyNode.string ?? "?"): unknown field (expected 'revisions')")
        }
        guard let listNode = top["revisions"] else { throw StaticPodListError("\(file):1: revisions: missing") }
        guard let list = listNode.sequence else {
            throw StaticPodListError("\(file):\(line(listNode)): revisions: expected a list")
        }
        var entries: [RevisionEntry] = []
        var seen: [RevisionKey: Int] = [:]
        for (i, node) in list.enumerated() {
            let field = "revisions[\(i)]"
            let entry = try parseRevision(node, field: field, file: file, config: config, loadedAt: loadedAt)
            if let first = seen[entry.key] {
                throw StaticPodListError("\(file):\(entry.line): \(field): revision \(entry.key) is already listed at line \(first)")
            }
            seen[entry.key] = entry.line
            entries.append(entry)
        }
        return RevisionsDocument(revisions: entries)
    }

    private static func line(_ node: Node) -> Int { node.mark?.line ?? 0 }

    private static func scalar(_ node: Node?, _ at: String) throws(StaticPodListError) -> String? {
        guard let node else { return nil }
        guard let text = node.scalar?.string else { throw StaticPodListError("\(at): expected a single value") }
        return text
    }

    private static func checkFields(_ mapping: Node.Mapping, allowed: Set<String>, file: String, field: String) throws(StaticPodListError) {
        for (keyNode, _) in mapping {
            guard let name = keyNode.string, allowed.contains(name) else {
                throw StaticPodListError("\(file):\(line(keyNode)): \(field).\(keyNode.string ?? "?"): unknown field (expected one of \(allowed.sorted().joined(separator: ", ")))")
            }
        }
    }

    private static func parseRevision(_ node: Node, field: String, file: String, config: AutoscalerConfig,
                                      loadedAt: UnixTime) throws(StaticPodListError) -> RevisionEntry {
        let at = "\(file):\(line(node))"
        guard let m = node.mapping else { throw StaticPodListError("\(at): \(field): expected a mapping") }
        try checkFields(m, allowed: revisionFields, file: file, field: field)
        func place(_ key: String) -> String { "\(file):\(line(m[key] ?? node)): \(field).\(key)" }

        guard let name = try scalar(m["name"], place("name")), !name.isEmpty else {
            throw StaticPodListError("\(at): \(field).name: missing")
        }
        let namespace = try scalar(m["namespace"], place("namespace")) ?? "default"
        guard !namespace.isEmpty else { throw StaticPodListError("\(place("namespace")): must not be empty") }

        var containerConcurrency: Int64 = 0
        if let text = try scalar(m["containerConcurrency"], place("containerConcurrency")) {
            guard let value = Int64(text), value >= 0 else {
                throw StaticPodListError("\(place("containerConcurrency")): expected an integer >= 0, was '\(text)'")
            }
            containerConcurrency = value
        }

        var values: [String: String] = [:]
        if let annotationsNode = m["annotations"] {
            guard let am = annotationsNode.mapping else {
                throw StaticPodListError("\(place("annotations")): expected a mapping of strings")
            }
            for (k, v) in am {
                guard let key = k.string, let value = v.scalar?.string else {
                    throw StaticPodListError("\(file):\(line(k)): \(field).annotations: expected string keys and values")
                }
                values[key] = value
            }
        }
        let annotations = RevisionAnnotations(values)
        if let problems = annotations.validate(config: config) {
            throw StaticPodListError("\(place("annotations")): \(problems.description.split(separator: "\n").joined(separator: "; "))")
        }
        if annotations.autoscalerClass != AutoscalingAnnotation.kpaClass {
            throw StaticPodListError("\(place("annotations")): class '\(annotations.autoscalerClass)' is not handled by the KPA")
        }

        var service: String?
        if let text = try scalar(m["service"], place("service")) {
            do { _ = try StatsAddress.parse(text) } catch {
                throw StaticPodListError("\(place("service")): \(error)")
            }
            service = text
        }

        var pods: [StaticPodList.Pod] = []
        if let podsNode = m["pods"] {
            guard let list = podsNode.sequence else { throw StaticPodListError("\(place("pods")): expected a list") }
            var names = Set<String>()
            for (j, podNode) in list.enumerated() {
                let pod = try parsePod(podNode, field: "\(field).pods[\(j)]", file: file, loadedAt: loadedAt)
                guard names.insert(pod.name).inserted else {
                    throw StaticPodListError("\(file):\(line(podNode)): \(field).pods[\(j)].name: pod '\(pod.name)' is listed twice")
                }
                pods.append(pod)
            }
        }
        return RevisionEntry(key: RevisionKey(namespace: namespace, name: name), annotations: annotations,
                             containerConcurrency: containerConcurrency, serviceAddress: service, pods: pods,
                             line: line(node))
    }

    private static func parsePod(_ node: Node, field: String, file: String, loadedAt: UnixTime) throws(StaticPodListError) -> StaticPodList.Pod {
        guard let m = node.mapping else { throw StaticPodListError("\(file):\(line(node)): \(field): expected a mapping") }
        try checkFields(m, allowed: podFields, file: file, field: field)
        func place(_ key: String) -> String { "\(file):\(line(m[key] ?? node)): \(field).\(key)" }
        guard let name = try scalar(m["name"], place("name")), !name.isEmpty else {
            throw StaticPodListError("\(file):\(line(node)): \(field).name: missing")
        }
        guard let address = try scalar(m["address"], place("address")) else {
            throw StaticPodListError("\(file):\(line(node)): \(field).address: missing (the pod's stats host:port)")
        }
        do { _ = try StatsAddress.parse(address) } catch {
            throw StaticPodListError("\(place("address")): \(error)")
        }
        var ready = true
        if let text = try scalar(m["ready"], place("ready")) {
            switch text {
            case "true", "True", "TRUE": ready = true
            case "false", "False", "FALSE": ready = false
            default: throw StaticPodListError("\(place("ready")): expected true or false, was '\(text)'")
            }
        }
        var startedAt: UnixTime?
        let startText = try scalar(m["startTime"], place("startTime"))
        let uptimeText = try scalar(m["uptime"], place("uptime"))
        if startText != nil && uptimeText != nil {
            throw StaticPodListError("\(place("uptime")): give either startTime or uptime, not both")
        }
        if let startText {
            guard let seconds = Int64(startText), seconds >= 0 else {
                throw StaticPodListError("\(place("startTime")): expected unix seconds, was '\(startText)'")
            }
            startedAt = UnixTime(seconds: seconds)
        }
        if let uptimeText {
            let uptime: GoDuration
            do { uptime = try GoDuration.parse(uptimeText) } catch {
                throw StaticPodListError("\(place("uptime")): \(error)")
            }
            guard uptime >= .zero else { throw StaticPodListError("\(place("uptime")): must not be negative") }
            startedAt = UnixTime(nanoseconds: loadedAt.nanoseconds - uptime.nanoseconds)
        }
        return StaticPodList.Pod(name: name, address: address, ready: ready, startedAt: startedAt)
    }
}
