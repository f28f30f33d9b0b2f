// The KPA what-if simulator (Serving layer, KPA): reads an operator's scenario — a decider spec, or
// ConfigMap data + annotations + containerConcurrency resolved as Knative does, and a list of timed
// steps — and replays it through the real collector and decider, one output row per step.

/// A parsed scenario.
public struct SimulationScenario: Sendable {
    public var spec: DeciderSpec
    public var metricSpec: MetricSpec
    public var initialReadyPods: Int
    public var steps: [SimulationStep]
}

/// One step: at `t`, with `readyPods`, either given window averages, raw per-second samples, or no data.
public struct SimulationStep: Sendable, Equatable {
    public enum Input: Sendable, Equatable {
        /// Stable- and panic-window averages of the scaling metric (revision totals).
        case averages(stable: Double, panic: Double)
        /// Revision-total concurrency and RPS observed in the second containing `t`.
        case samples(concurrency: Double, rps: Double)
        /// The metric source had no data.
        case noData
    }
    public var t: Double
    public var readyPods: Int
    public var input: Input
}

/// One output row.
public struct SimulationRow: Sendable, Equatable {
    public var t: Double
    public var desiredPods: Int32
    public var excessBurstCapacity: Int32
    public var valid: Bool
    public var panic: Bool

    public var jsonLine: String {
        "{\"t\":\(JSONText.number(t)),\"desiredPods\":\(desiredPods),\"excessBurstCapacity\":\(excessBurstCapacity),\"valid\":\(valid),\"panic\":\(panic)}"
    }
    public static let csvHeader = "t,desiredPods,excessBurstCapacity,valid,panic"
    public var csvLine: String { "\(JSONText.number(t)),\(desiredPods),\(excessBurstCapacity),\(valid),\(panic)" }
}

/// A problem in the scenario document, naming the field (`steps[3].readyPods`).
public struct SimulationInputError: Error, Sendable, Equatable, CustomStringConvertible {
    public var messages: [String]
    public init(_ messages: [String]) { self.messages = messages }
    public init(_ field: String, _ message: String) { self.messages = ["\(field): \(message)"] }
    public var description: String { messages.joined(separator: "\n") }
}

/// A JSON value that keeps booleans and numbers apart.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(_ node: JSONNode) {
        switch node {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let n): self = .number(n.double)
        case .string(let text): self = .string(text)
        case .array(let elements): self = .array(elements.map(JSONValue.init))
        case .object(let fields): self = .object(fields.mapValues(JSONValue.init))
        }
    }

    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "a list"
        case .object: return "an object"
        }
    }
}

public enum Simulation {
    static let deciderFields: Set<String> = [
        "metric", "targetValue", "totalValue", "targetBurstCapacity", "panicThreshold", "maxScaleUpRate",
        "maxScaleDownRate", "activatorCapacity", "stableWindowSeconds", "scaleDownDelaySeconds", "reachable",
        "activationScale", "initialScale", "panicWindowPercentage", "metricAggregationAlgorithm",
    ]
    static let topFields: Set<String> = [
        "decider", "config", "annotations", "containerConcurrency", "reachable", "initialReadyPods", "steps",
    ]
    static let stepFields: Set<String> = ["t", "readyPods", "stable", "panic", "concurrency", "rps", "error"]

    /// Parses a scenario document; every problem found is reported with its field.
    public static func parse(json: [UInt8]) throws(SimulationInputError) -> SimulationScenario {
        let root: JSONValue
        do {
            root = JSONValue(try JSONParser.parse(json))
        } catch {
            throw SimulationInputError(["invalid JSON: \(error)"])
        }
        guard case .object(let top) = root else { throw SimulationInputError("(document)", "expected a JSON object") }
        var problems: [String] = []
        for key in top.keys.sorted() where !topFields.contains(key) {
            problems.append("\(key): unknown field (expected one of \(topFields.sorted().joined(separator: ", ")))")
        }

        var reader = FieldReader(problems: problems)
        let spec: DeciderSpec
        let metricSpec: MetricSpec
        let resolvedForm = top["config"] != nil || top["annotations"] != nil || top["containerConcurrency"] != nil
        if let decider = top["decider"] {
            if resolvedForm {
                reader.problems.append("decider: give either \"decider\" or \"config\"/\"annotations\"/\"containerConcurrency\", not both")
            }
            if top["reachable"] != nil {
                reader.problems.append("reachable: belongs inside \"decider\" when \"decider\" is given")
            }
            (spec, metricSpec) = reader.decider(decider)
        } else {
            (spec, metricSpec) = reader.resolved(config: top["config"], annotations: top["annotations"],
                                                 containerConcurrency: top["containerConcurrency"], reachable: top["reachable"])
        }
        let initial = reader.integer(top["initialReadyPods"], "initialReadyPods", minimum: 0) ?? 0
        var steps: [SimulationStep] = []
        if let stepsValue = top["steps"] {
            if case .array(let list) = stepsValue {
                var ready = initial
                var lastT = -Double.infinity
                for (i, item) in list.enumerated() {
                    if let step = reader.step(item, index: i, previousReady: ready, previousT: lastT) {
                        ready = step.readyPods
                        lastT = step.t
                        steps.append(step)
                    }
                }
            } else {
                reader.problems.append("steps: expected a list, got \(stepsValue.typeName)")
            }
        } else {
            reader.problems.append("steps: missing (a list of {\"t\", \"readyPods\", \"stable\", \"panic\"} or {\"t\", \"readyPods\", \"concurrency\", \"rps\"})")
        }
        if !reader.problems.isEmpty { throw SimulationInputError(reader.problems) }
        return SimulationScenario(spec: spec, metricSpec: metricSpec, initialReadyPods: initial, steps: steps)
    }

    /// Replays a scenario: the decider is created at the first step's time with the initial ready
    /// pods, then every step records its samples (if any) and runs one decision.
    public static func run(_ scenario: SimulationScenario) -> [SimulationRow] {
        let start = UnixTime(secondsValue: scenario.steps.first?.t ?? 0)
        var decider = Decider(spec: scenario.spec, readyPods: .ready(scenario.initialReadyPods), now: start)
        var metrics = RevisionMetrics(spec: scenario.metricSpec)
        var rows: [SimulationRow] = []
        rows.reserveCapacity(scenario.steps.count)
        for step in scenario.steps {
            let now = UnixTime(secondsValue: step.t)
            let averages: Result<WindowAverages, MetricError>
            switch step.input {
            case .averages(let stable, let panic):
                averages = .success(WindowAverages(stable: stable, panic: panic))
            case .samples(let concurrency, let rps):
                metrics.record(concurrency: concurrency, rps: rps, at: now)
                averages = metrics.averages(scenario.spec.scalingMetric, now: now)
            case .noData:
                averages = .failure(.noData)
            }
            let decision = decider.decide(now: now, readyPods: .ready(step.readyPods), averages: averages)
            decider.publish(decision)
            rows.append(SimulationRow(t: step.t, desiredPods: decider.status.desiredScale,
                                      excessBurstCapacity: decider.status.excessBurstCapacity,
                                      valid: decision.valid, panic: decider.isPanicking))
        }
        return rows
    }
}

/// Typed reads from the scenario's JSON, collecting problems instead of stopping at the first.
struct FieldReader {
    var problems: [String]

    mutating func number(_ value: JSONValue?, _ field: String) -> Double? {
        guard let value else { return nil }
        guard case .number(let n) = value else {
            problems.append("\(field): expected a number, got \(value.typeName)")
            return nil
        }
        return n
    }

    mutating func integer(_ value: JSONValue?, _ field: String, minimum: Int) -> Int? {
        guard let n = number(value, field) else { return nil }
        guard n == n.rounded(), n >= Double(minimum), n <= Double(Int32.max) else {
            problems.append("\(field): expected an integer >= \(minimum), got \(JSONText.number(n))")
            return nil
        }
        return Int(n)
    }

    mutating func bool(_ value: JSONValue?, _ field: String) -> Bool? {
        guard let value else { return nil }
        guard case .bool(let b) = value else {
            problems.append("\(field): expected true or false, got \(value.typeName)")
            return nil
        }
        return b
    }

    mutating func string(_ value: JSONValue?, _ field: String) -> String? {
        guard let value else { return nil }
        guard case .string(let s) = value else {
            problems.append("\(field): expected a string, got \(value.typeName)")
            return nil
        }
        return s
    }

    mutating func object(_ value: JSONValue, _ field: String, allowed: Set<String>?) -> [String: JSONValue]? {
        guard case .object(let o) = value else {
            problems.append("\(field): expected an object, got \(value.typeName)")
            return nil
        }
        if let allowed {
            for key in o.keys.sorted() where !allowed.contains(key) {
                problems.append("\(field).\(key): unknown field")
            }
        }
        return o
    }

    mutating func check(_ ok: Bool, _ field: String, _ message: String) {
        if !ok { problems.append("\(field): \(message)") }
    }

    /// The camelCase DeciderSpec form; absent fields take the values Knative's defaults resolve to.
    mutating func decider(_ value: JSONValue) -> (DeciderSpec, MetricSpec) {
        var spec = SpecResolution.deciderSpec(config: AutoscalerConfig(), annotations: RevisionAnnotations(),
                                              containerConcurrency: 0)
        var panicPercentage = AutoscalerConfig().panicWindowPercentage
        var algorithm = AggregationAlgorithm.linear
        guard let d = object(value, "decider", allowed: Simulation.deciderFields) else {
            return (spec, MetricSpec(stableWindowSeconds: 60, panicWindowSeconds: 6))
        }
        if let m = string(d["metric"], "decider.metric") {
            if let metric = ScalingMetric(rawValue: m) { spec.scalingMetric = metric } else {
                problems.append("decider.metric: expected \"concurrency\" or \"rps\", got \(JSONText.string(m))")
            }
        }
        if let x = number(d["targetValue"], "decider.targetValue") {
            check(x >= AutoscalerConfig.targetMinimum, "decider.targetValue", "must be at least 0.01, got \(JSONText.number(x))")
            spec.targetValue = x
            if d["totalValue"] == nil { spec.totalValue = x }
        }
        if let x = number(d["totalValue"], "decider.totalValue") {
            check(x >= 0, "decider.totalValue", "must be >= 0, got \(JSONText.number(x))")
            spec.totalValue = x
        }
        if let x = number(d["targetBurstCapacity"], "decider.targetBurstCapacity") {
            check(x >= 0 || x == -1, "decider.targetBurstCapacity", "must be >= 0 or -1, got \(JSONText.number(x))")
            spec.targetBurstCapacity = x
        }
        if let x = number(d["panicThreshold"], "decider.panicThreshold") {
            check(x > 0, "decider.panicThreshold", "must be > 0 (a ratio: 2.0 = 200%), got \(JSONText.number(x))")
            spec.panicThreshold = x
        }
        if let x = number(d["maxScaleUpRate"], "decider.maxScaleUpRate") {
            check(x > 1, "decider.maxScaleUpRate", "must be greater than 1, got \(JSONText.number(x))")
            spec.maxScaleUpRate = x
        }
        if let x = number(d["maxScaleDownRate"], "decider.maxScaleDownRate") {
            check(x > 1, "decider.maxScaleDownRate", "must be greater than 1, got \(JSONText.number(x))")
            spec.maxScaleDownRate = x
        }
        if let x = number(d["activatorCapacity"], "decider.activatorCapacity") {
            check(x >= 1, "decider.activatorCapacity", "must be at least 1, got \(JSONText.number(x))")
            spec.activatorCapacity = x
        }
        if let x = integer(d["stableWindowSeconds"], "decider.stableWindowSeconds", minimum: 1) {
            check(x <= 3600, "decider.stableWindowSeconds", "must be at most 3600, got \(x)")
            spec.stableWindow = .seconds(Int64(x))
        }
        if let x = integer(d["scaleDownDelaySeconds"], "decider.scaleDownDelaySeconds", minimum: 0) {
            check(x <= 3600, "decider.scaleDownDelaySeconds", "must be at most 3600, got \(x)")
            spec.scaleDownDelay = .seconds(Int64(x))
        }
        if let b = bool(d["reachable"], "decider.reachable") { spec.reachable = b }
        if let x = integer(d["activationScale"], "decider.activationScale", minimum: 0) { spec.activationScale = Int32(x) }
        if let x = integer(d["initialScale"], "decider.initialScale", minimum: 0) { spec.initialScale = Int32(x) }
        if let x = number(d["panicWindowPercentage"], "decider.panicWindowPercentage") {
            check(x >= 1 && x <= 100, "decider.panicWindowPercentage", "must be in [1, 100], got \(JSONText.number(x))")
            panicPercentage = x
        }
        if let s = string(d["metricAggregationAlgorithm"], "decider.metricAggregationAlgorithm") {
            switch s {
            case "linear": algorithm = .linear
            case "weighted-exponential", "weightedExponential": algorithm = .weightedExponential
            default: problems.append("decider.metricAggregationAlgorithm: expected \"linear\" or \"weighted-exponential\", got \(JSONText.string(s))")
            }
        }
        let panic = AutoscalerConfig.panicWindow(stableWindow: spec.stableWindow, percentage: panicPercentage)
        let metricSpec = MetricSpec(stableWindowSeconds: max(1, spec.stableWindow.wholeSeconds),
                                    panicWindowSeconds: max(1, panic.wholeSeconds),
                                    hasScrapeTarget: spec.targetBurstCapacity != -1, algorithm: algorithm)
        return (spec, metricSpec)
    }

    /// ConfigMap data + annotations + containerConcurrency, validated and resolved as Knative does.
    mutating func resolved(config: JSONValue?, annotations: JSONValue?, containerConcurrency: JSONValue?,
                           reachable: JSONValue?) -> (DeciderSpec, MetricSpec) {
        var data: [String: String] = [:]
        if let config, let o = object(config, "config", allowed: nil) {
            for (k, v) in o {
                if let s = string(v, "config.\(k)") { data[k] = s }
            }
        }
        var annotationValues: [String: String] = [:]
        if let annotations, let o = object(annotations, "annotations", allowed: nil) {
            for (k, v) in o {
                if let s = string(v, "annotations.\(k)") { annotationValues[k] = s }
            }
        }
        let cc = integer(containerConcurrency, "containerConcurrency", minimum: 0) ?? 0
        let isReachable = bool(reachable, "reachable") ?? true
        var parsed = AutoscalerConfig()
        do {
            parsed = try AutoscalerConfig.parse(data)
        } catch {
            for e in error.errors { problems.append("config.\(e.key): \(e.message)") }
        }
        let revision = RevisionAnnotations(annotationValues)
        if let invalid = revision.validate(config: parsed) {
            for e in AnnotationFieldError.merged(invalid.errors) { problems.append("annotations: \(e)") }
        }
        if let cls = annotationValues[AutoscalingAnnotation.classKey] ?? Optional(parsed.podAutoscalerClass),
           cls != AutoscalingAnnotation.kpaClass {
            problems.append("annotations: class \(cls) is not the KPA; the simulator models kpa.autoscaling.knative.dev only")
        }
        let spec = SpecResolution.deciderSpec(config: parsed, annotations: revision, containerConcurrency: Int64(cc),
                                              reachability: isReachable ? .reachable : .unreachable)
        return (spec, SpecResolution.metricSpec(config: parsed, annotations: revision))
    }

    mutating func step(_ value: JSONValue, index: Int, previousReady: Int, previousT: Double) -> SimulationStep? {
        let field = "steps[\(index)]"
        let before = problems.count
        guard let s = object(value, field, allowed: Simulation.stepFields) else { return nil }
        let t = number(s["t"], "\(field).t")
        if s["t"] == nil { problems.append("\(field).t: missing (seconds since the start)") }
        if let t {
            check(t >= 0, "\(field).t", "must be >= 0, got \(JSONText.number(t))")
            check(t >= previousT, "\(field).t", "must not go back in time (previous step was at \(JSONText.number(previousT)))")
        }
        let ready = integer(s["readyPods"], "\(field).readyPods", minimum: 0) ?? previousReady
        let stable = number(s["stable"], "\(field).stable")
        let panic = number(s["panic"], "\(field).panic")
        let concurrency = number(s["concurrency"], "\(field).concurrency")
        let rps = number(s["rps"], "\(field).rps")
        var noData = false
        if let e = string(s["error"], "\(field).error") {
            if e == "no data" { noData = true } else {
                problems.append("\(field).error: the only error a step can simulate is \"no data\", got \(JSONText.string(e))")
            }
        }
        let hasAverages = s["stable"] != nil || s["panic"] != nil
        let hasSamples = s["concurrency"] != nil || s["rps"] != nil
        var input: SimulationStep.Input = .noData
        if hasAverages && hasSamples {
            problems.append("\(field): give window averages (stable, panic) or raw samples (concurrency, rps), not both")
        } else if noData {
            if hasAverages || hasSamples { problems.append("\(field).error: \"no data\" cannot come with metric values") }
        } else if hasAverages {
            if s["stable"] == nil { problems.append("\(field).stable: missing (panic was given)") }
            if s["panic"] == nil { problems.append("\(field).panic: missing (stable was given)") }
            input = .averages(stable: stable ?? 0, panic: panic ?? 0)
        } else if hasSamples {
            input = .samples(concurrency: concurrency ?? 0, rps: rps ?? 0)
        } else {
            problems.append("\(field): needs stable+panic, concurrency/rps, or \"error\": \"no data\"")
        }
        guard problems.count == before, let t else { return nil }
        return SimulationStep(t: t, readyPods: ready, input: input)
    }
}
