// Reading a Kubernetes ConfigMap YAML file (Serving layer, KPA configuration): the `data:` map of
// string values with each key's line, so configuration errors can point at file:line.
import Yams

/// The `data` of one ConfigMap and where each key was written.
public struct ConfigMapDocument: Sendable, Equatable {
    public var name: String?
    public var data: [String: String]
    /// 1-based line of each data key.
    public var lines: [String: Int]

    public init(name: String? = nil, data: [String: String], lines: [String: Int] = [:]) {
        self.name = name
        self.data = data
        self.lines = lines
    }

    /// Loads the ConfigMap named `expectedName` from `yaml` (which may hold several documents; a
    /// single ConfigMap without a name is accepted too). Values must be strings, as Kubernetes
    /// requires: an unquoted number or boolean is rejected with the line to quote.
    public static func load(yaml: String, file: String, expectedName: String) throws(ConfigMapLoadError) -> ConfigMapDocument {
        var roots: [Node] = []
        do {
            var documents = try Yams.compose_all(yaml: yaml)
            while let node = documents.next() { roots.append(node) }
            if let error = documents.error { throw error }
        } catch {
            throw ConfigMapLoadError([ConfigMapProblem(file: file, line: nil, key: nil, message: "invalid YAML: \(error)")])
        }
        let configMaps = roots.filter { $0.mapping?["kind"]?.string == "ConfigMap" }
        guard !configMaps.isEmpty else {
            let line = roots.first?.mark?.line
            throw ConfigMapLoadError([ConfigMapProblem(file: file, line: line, key: "kind",
                                                       message: "expected a document with kind: ConfigMap")])
        }
        let named = configMaps.first { $0.mapping?["metadata"]?.mapping?["name"]?.string == expectedName }
        let chosen: Node
        if let named {
            chosen = named
        } else if configMaps.count == 1 {
            chosen = configMaps[0]
            if let name = chosen.mapping?["metadata"]?.mapping?["name"] {
                throw ConfigMapLoadError([ConfigMapProblem(
                    file: file, line: name.mark?.line, key: "metadata.name",
                    message: "expected \(expectedName), was \(name.string ?? "not a string")")])
            }
        } else {
            throw ConfigMapLoadError([ConfigMapProblem(file: file, line: nil, key: "metadata.name",
                                                       message: "no ConfigMap named \(expectedName) among \(configMaps.count)")])
        }
        return try read(chosen, file: file)
    }

    private static func read(_ root: Node, file: String) throws(ConfigMapLoadError) -> ConfigMapDocument {
        guard let mapping = root.mapping else {
            throw ConfigMapLoadError([ConfigMapProblem(file: file, line: root.mark?.line, key: nil, message: "expected a mapping")])
        }
        let name = mapping["metadata"]?.mapping?["name"]?.string
        guard let dataNode = mapping["data"] else {
            // A ConfigMap without data is valid: every key takes its default.
            return ConfigMapDocument(name: name, data: [:])
        }
        if dataNode.scalar != nil, Resolver.default.resolveTag(of: dataNode) == .null {
            return ConfigMapDocument(name: name, data: [:])
        }
        guard let data = dataNode.mapping else {
            throw ConfigMapLoadError([ConfigMapProblem(file: file, line: dataNode.mark?.line, key: "data",
                                                       message: "expected a mapping of string values")])
        }
        var values: [String: String] = [:]
        var lines: [String: Int] = [:]
        var problems: [ConfigMapProblem] = []
        for (keyNode, valueNode) in data {
            let line = keyNode.mark?.line
            guard let key = keyNode.scalar?.string else {
                problems.append(ConfigMapProblem(file: file, line: line, key: nil, message: "data keys must be strings"))
                continue
            }
            if values[key] != nil {
                problems.append(ConfigMapProblem(file: file, line: line, key: key, message: "duplicate key"))
                continue
            }
            guard let scalar = valueNode.scalar else {
                problems.append(ConfigMapProblem(file: file, line: line, key: key,
                                                 message: "value must be a string, not a \(valueNode.mapping != nil ? "mapping" : "list")"))
                continue
            }
            switch Resolver.default.resolveTag(of: valueNode) {
            case .str:
                values[key] = scalar.string
            case .null:
                values[key] = ""  // Kubernetes reads a null data value as ""
            default:
                problems.append(ConfigMapProblem(file: file, line: line, key: key,
                                                 message: "value must be a string; quote it: \"\(scalar.string)\""))
                continue
            }
            lines[key] = line
        }
        if !problems.isEmpty { throw ConfigMapLoadError(problems) }
        return ConfigMapDocument(name: name, data: values, lines: lines)
    }
}

/// One problem in a ConfigMap file: where it is and what is wrong.
public struct ConfigMapProblem: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    /// The data key (or document field) concerned, when there is one.
    public var key: String?
    public var message: String

    public init(file: String, line: Int?, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `file:line: key: message`.
    public var description: String {
        var out = file
        if let line { out += ":\(line)" }
        out += ": "
        if let key { out += "\(key): " }
        return out + message
    }
}

public struct ConfigMapLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [ConfigMapProblem]
    public init(_ problems: [ConfigMapProblem]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

extension AutoscalerConfig {
    /// Loads and validates a `config-autoscaler` ConfigMap file; every problem carries file, line and key.
    public static func load(yaml: String, file: String) throws(ConfigMapLoadError) -> AutoscalerConfig {
        let document = try ConfigMapDocument.load(yaml: yaml, file: file, expectedName: "config-autoscaler")
        do {
            return try AutoscalerConfig.parse(document.data)
        } catch {
            throw ConfigMapLoadError(error.errors.map {
                ConfigMapProblem(file: file, line: document.lines[$0.key], key: $0.key, message: $0.message)
            })
        }
    }

    /// The effective configuration as JSON, ConfigMap keys in Knative's order; durations in Go
    /// syntax and the target percentage as a percentage.
    public var effectiveJSON: String {
        func number(_ x: Double) -> String { JSONText.number(x) }
        let entries: [(String, String)] = [
            ("enable-scale-to-zero", "\(enableScaleToZero)"),
            ("container-concurrency-target-percentage", number((containerConcurrencyTargetFraction * 100 * 1e9).rounded() / 1e9)),
            ("container-concurrency-target-default", number(containerConcurrencyTargetDefault)),
            ("requests-per-second-target-default", number(rpsTargetDefault)),
            ("target-burst-capacity", number(targetBurstCapacity)),
            ("stable-window", JSONText.string(stableWindow.description)),
            ("panic-window-percentage", number(panicWindowPercentage)),
            ("panic-threshold-percentage", number(panicThresholdPercentage)),
            ("max-scale-up-rate", number(maxScaleUpRate)),
            ("max-scale-down-rate", number(maxScaleDownRate)),
            ("scale-to-zero-grace-period", JSONText.string(scaleToZeroGracePeriod.description)),
            ("scale-to-zero-pod-retention-period", JSONText.string(scaleToZeroPodRetentionPeriod.description)),
            ("scale-down-delay", JSONText.string(scaleDownDelay.description)),
            ("pod-autoscaler-class", JSONText.string(podAutoscalerClass)),
            ("activator-capacity", number(activatorCapacity)),
            ("initial-scale", "\(initialScale)"),
            ("allow-zero-initial-scale", "\(allowZeroInitialScale)"),
            ("min-scale", "\(minScale)"),
            ("max-scale", "\(maxScale)"),
            ("max-scale-limit", "\(maxScaleLimit)"),
        ]
        return "{\n" + entries.map { "  \(JSONText.string($0.0)): \($0.1)" }.joined(separator: ",\n") + "\n}"
    }
}

/// Minimal JSON text for numbers and strings (the CLI's output formats).
public enum JSONText {
    /// Integral values without a fraction, others in shortest form; non-finite values as null.
    public static func number(_ x: Double) -> String {
        guard x.isFinite else { return "null" }
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
        return "\(x)"
    }

    /// A JSON string literal (the log handler's encoder: one escaping rule for every JSON we write).
    public static func string(_ s: String) -> String { JSONLogHandler.quoted(s) }
}
