// Per-revision autoscaling annotations (Serving layer, KPA): the `autoscaling.knative.dev/...` keys
// with their legacy aliases, the typed values the KPA reads (ignoring values that fail to parse, as
// Knative does) and the admission validation with Knative's field-error texts (kpa-spec §12).

/// Annotation keys, classes and limits.
public enum AutoscalingAnnotation {
    public static let group = "autoscaling.knative.dev"
    public static let kpaClass = "kpa.autoscaling.knative.dev"
    public static let hpaClass = "hpa.autoscaling.knative.dev"

    public static let classKey = group + "/class"
    public static let metricKey = group + "/metric"
    public static let targetKey = group + "/target"
    public static let targetUtilizationPercentageKey = group + "/target-utilization-percentage"
    public static let targetBurstCapacityKey = group + "/target-burst-capacity"
    public static let windowKey = group + "/window"
    public static let panicWindowPercentageKey = group + "/panic-window-percentage"
    public static let panicThresholdPercentageKey = group + "/panic-threshold-percentage"
    public static let minScaleKey = group + "/min-scale"
    public static let maxScaleKey = group + "/max-scale"
    public static let initialScaleKey = group + "/initial-scale"
    public static let activationScaleKey = group + "/activation-scale"
    public static let scaleDownDelayKey = group + "/scale-down-delay"
    public static let scaleToZeroPodRetentionPeriodKey = group + "/scale-to-zero-pod-retention-period"
    public static let metricAggregationAlgorithmKey = group + "/metric-aggregation-algorithm"
    public static let progressDeadlineKey = "serving.knative.dev/progress-deadline"

    /// Current name first, legacy camelCase alias second: the first present wins.
    public static let classNames = [classKey]
    public static let metricNames = [metricKey]
    public static let targetNames = [targetKey]
    public static let targetUtilizationPercentageNames = [targetUtilizationPercentageKey, group + "/targetUtilizationPercentage"]
    public static let targetBurstCapacityNames = [targetBurstCapacityKey, group + "/targetBurstCapacity"]
    public static let windowNames = [windowKey]
    public static let panicWindowPercentageNames = [panicWindowPercentageKey, group + "/panicWindowPercentage"]
    public static let panicThresholdPercentageNames = [panicThresholdPercentageKey, group + "/panicThresholdPercentage"]
    public static let minScaleNames = [minScaleKey, group + "/minScale"]
    public static let maxScaleNames = [maxScaleKey, group + "/maxScale"]
    public static let initialScaleNames = [initialScaleKey, group + "/initialScale"]
    public static let activationScaleNames = [activationScaleKey]
    public static let scaleDownDelayNames = [scaleDownDelayKey, group + "/scaleDownDelay"]
    public static let scaleToZeroPodRetentionPeriodNames = [scaleToZeroPodRetentionPeriodKey, group + "/scaleToZeroPodRetentionPeriod"]
    public static let metricAggregationAlgorithmNames = [metricAggregationAlgorithmKey, group + "/metricAggregationAlgorithm"]
    public static let progressDeadlineNames = [progressDeadlineKey]

    public static let panicThresholdPercentageRange = 110.0...1000.0
}

/// One validation problem in Knative's `apis.FieldError` shape: a message and the field paths.
public struct AnnotationFieldError: Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var paths: [String]
    public init(_ message: String, paths: [String]) {
        self.message = message
        self.paths = paths
    }
    public var description: String { "\(message): \(paths.joined(separator: ", "))" }

    /// Knative's rendering of several errors: equal messages merged (paths united and sorted),
    /// then sorted by message, one per line.
    public static func render(_ errors: [AnnotationFieldError]) -> String {
        merged(errors).map(\.description).joined(separator: "\n")
    }

    public static func merged(_ errors: [AnnotationFieldError]) -> [AnnotationFieldError] {
        var byMessage: [String: AnnotationFieldError] = [:]
        var order: [String] = []
        for error in errors {
            if var existing = byMessage[error.message] {
                for p in error.paths where !existing.paths.contains(p) { existing.paths.append(p) }
                byMessage[error.message] = existing
            } else {
                byMessage[error.message] = error
                order.append(error.message)
            }
        }
        return order.sorted().compactMap { message in
            byMessage[message].map { AnnotationFieldError($0.message, paths: $0.paths.sorted()) }
        }
    }
}

/// Validation failures of a revision's annotations.
public struct AnnotationValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [AnnotationFieldError]
    public var description: String { AnnotationFieldError.render(errors) }
}

/// A revision's (PodAutoscaler's) annotations and the autoscaling values they carry.
public struct RevisionAnnotations: Sendable, Equatable {
    public var values: [String: String]

    public init(_ values: [String: String] = [:]) { self.values = values }

    /// The first present name of `names` and its value (Knative's `kmap.KeyPriority.Get`).
    public func lookup(_ names: [String]) -> (key: String, value: String)? {
        for name in names {
            if let v = values[name] { return (name, v) }
        }
        return nil
    }

    private func int32(_ names: [String]) -> Int32? {
        guard let (_, s) = lookup(names), let v = try? GoParse.int(s, bits: 32) else { return nil }
        return Int32(v)
    }
    private func float(_ names: [String]) -> Double? {
        guard let (_, s) = lookup(names), let v = try? GoParse.float(s) else { return nil }
        return v
    }
    private func duration(_ names: [String]) -> GoDuration? {
        guard let (_, s) = lookup(names), let v = try? GoDuration.parse(s) else { return nil }
        return v
    }

    /// The autoscaler class; KPA when not annotated.
    public var autoscalerClass: String { values[AutoscalingAnnotation.classKey] ?? AutoscalingAnnotation.kpaClass }
    /// The raw metric name: the annotation, else `concurrency` for KPA ("cpu" for HPA).
    public var metricName: String {
        if let m = values[AutoscalingAnnotation.metricKey] { return m }
        return autoscalerClass == AutoscalingAnnotation.hpaClass ? "cpu" : ScalingMetric.concurrency.rawValue
    }
    /// The KPA scales on RPS only when asked; anything else is concurrency.
    public var scalingMetric: ScalingMetric { metricName == ScalingMetric.rps.rawValue ? .rps : .concurrency }
    public var target: Double? { float(AutoscalingAnnotation.targetNames) }
    /// Utilisation as a fraction (the annotation is a percentage).
    public var targetUtilization: Double? { float(AutoscalingAnnotation.targetUtilizationPercentageNames).map { $0 / 100 } }
    public var targetBurstCapacity: Double? { float(AutoscalingAnnotation.targetBurstCapacityNames) }
    public var window: GoDuration? { duration(AutoscalingAnnotation.windowNames) }
    public var panicWindowPercentage: Double? { float(AutoscalingAnnotation.panicWindowPercentageNames) }
    public var panicThresholdPercentage: Double? { float(AutoscalingAnnotation.panicThresholdPercentageNames) }
    public var minScale: Int32? { int32(AutoscalingAnnotation.minScaleNames) }
    public var maxScale: Int32? { int32(AutoscalingAnnotation.maxScaleNames) }
    public var initialScale: Int32? { int32(AutoscalingAnnotation.initialScaleNames) }
    public var activationScale: Int32? { int32(AutoscalingAnnotation.activationScaleNames) }
    public var scaleDownDelay: GoDuration? { duration(AutoscalingAnnotation.scaleDownDelayNames) }
    public var scaleToZeroPodRetention: GoDuration? { duration(AutoscalingAnnotation.scaleToZeroPodRetentionPeriodNames) }
    public var progressDeadline: GoDuration? { duration(AutoscalingAnnotation.progressDeadlineNames) }
    /// Weighted-exponential only when asked for by one of its two spellings.
    public var aggregationAlgorithm: AggregationAlgorithm {
        switch lookup(AutoscalingAnnotation.metricAggregationAlgorithmNames)?.value {
        case "weighted-exponential", "weightedExponential": return .weightedExponential
        default: return .linear
        }
    }

    /// Knative's admission validation (`ValidateAnnotations`): all problems, or nil.
    public func validate(config: AutoscalerConfig) -> AnnotationValidationError? {
        var errors: [AnnotationFieldError] = []
        validateClass(&errors)
        validateMinMaxScale(config: config, &errors)
        validateFloats(&errors)
        validateWindow(&errors)
        validateLastPodRetention(&errors)
        validateScaleDownDelay(&errors)
        validateMetric(config: config, &errors)
        validateAlgorithm(&errors)
        validateInitialScale(config: config, &errors)
        return errors.isEmpty ? nil : AnnotationValidationError(errors: errors)
    }

    private static func invalidValue(_ value: String, _ path: String) -> AnnotationFieldError {
        AnnotationFieldError("invalid value: \(value)", paths: [path])
    }
    private static func outOfBounds(_ value: String, _ lower: String, _ upper: String, _ path: String) -> AnnotationFieldError {
        AnnotationFieldError("expected \(lower) <= \(value) <= \(upper)", paths: [path])
    }

    private func validateClass(_ errors: inout [AnnotationFieldError]) {
        guard let (k, v) = lookup(AutoscalingAnnotation.classNames) else { return }
        if v.hasSuffix(".knative.dev") && v != AutoscalingAnnotation.kpaClass && v != AutoscalingAnnotation.hpaClass {
            errors.append(Self.invalidValue(v, k))
        }
    }

    /// A non-negative int32, or the error Knative reports for it.
    private func intAtLeastZero(_ names: [String], _ errors: inout [AnnotationFieldError]) -> Int32 {
        guard let (k, v) = lookup(names) else { return 0 }
        do {
            let i = try GoParse.int(v, bits: 32)
            if i < 0 {
                errors.append(Self.outOfBounds(v, "0", "\(Int32.max)", k))
                return 0
            }
            return Int32(i)
        } catch {
            if error.message.hasSuffix("value out of range") {
                errors.append(Self.outOfBounds(v, "0", "\(Int32.max)", k))
            } else {
                errors.append(Self.invalidValue(v, k))
            }
            return 0
        }
    }

    private func validateMinMaxScale(config: AutoscalerConfig, _ errors: inout [AnnotationFieldError]) {
        let minimum = intAtLeastZero(AutoscalingAnnotation.minScaleNames, &errors)
        let maximum = intAtLeastZero(AutoscalingAnnotation.maxScaleNames, &errors)
        if maximum != 0 && maximum < minimum {
            errors.append(AnnotationFieldError("max-scale=\(maximum) is less than min-scale=\(minimum)",
                                               paths: [AutoscalingAnnotation.maxScaleKey, AutoscalingAnnotation.minScaleKey]))
        }
        if let (k, _) = lookup(AutoscalingAnnotation.maxScaleNames), config.maxScaleLimit != 0 {
            if maximum > config.maxScaleLimit {
                errors.append(Self.outOfBounds("\(maximum)", "1", "\(config.maxScaleLimit)", k))
            }
            if maximum == 0 {
                errors.append(AnnotationFieldError("max-scale=0 (unlimited), must be less than \(config.maxScaleLimit)", paths: [k]))
            }
        }
        if let (k, v) = lookup(AutoscalingAnnotation.activationScaleNames) {
            guard let parsed = try? GoParse.int(v, bits: 32) else {
                errors.append(Self.invalidValue(v, k))
                return
            }
            let activation = Int32(parsed)
            if minimum > activation {
                errors.append(AnnotationFieldError("min-scale=\(minimum) is greater than activation-scale=\(activation)", paths: [k]))
            } else if maximum < activation && maximum != 0 {
                errors.append(AnnotationFieldError("max-scale=\(maximum) is less than activation-scale=\(activation)", paths: [k]))
            } else if activation < 2 {
                errors.append(AnnotationFieldError("activation-scale=\(activation) must be greater than 1", paths: [k]))
            }
        }
    }

    private func validateFloats(_ errors: inout [AnnotationFieldError]) {
        let v = GoFormat.v
        if let (k, s) = lookup(AutoscalingAnnotation.panicWindowPercentageNames) {
            if let f = try? GoParse.float(s) {
                let r = AutoscalerConfig.panicWindowPercentageRange
                if f < r.lowerBound || f > r.upperBound {
                    errors.append(Self.outOfBounds(s, v(r.lowerBound), v(r.upperBound), k))
                }
            } else {
                errors.append(Self.invalidValue(s, k))
            }
        }
        if let (k, s) = lookup(AutoscalingAnnotation.panicThresholdPercentageNames) {
            if let f = try? GoParse.float(s) {
                let r = AutoscalingAnnotation.panicThresholdPercentageRange
                if f < r.lowerBound || f > r.upperBound {
                    errors.append(Self.outOfBounds(s, v(r.lowerBound), v(r.upperBound), k))
                }
            } else {
                errors.append(Self.invalidValue(s, k))
            }
        }
        if let (k, s) = lookup(AutoscalingAnnotation.targetNames) {
            if let f = try? GoParse.float(s) {
                if f < AutoscalerConfig.targetMinimum {
                    errors.append(AnnotationFieldError("target \(s) should be at least \(v(AutoscalerConfig.targetMinimum))", paths: [k]))
                }
            } else {
                errors.append(Self.invalidValue(s, k))
            }
        }
        if let (k, s) = lookup(AutoscalingAnnotation.targetUtilizationPercentageNames) {
            if let f = try? GoParse.float(s) {
                if f < 1 || f > 100 { errors.append(Self.outOfBounds(s, "1", "100", k)) }
            } else {
                errors.append(Self.invalidValue(s, k))
            }
        }
        if let (k, s) = lookup(AutoscalingAnnotation.targetBurstCapacityNames) {
            let acceptable = (try? GoParse.float(s)).map { !($0 < 0 && $0 != -1) } ?? false
            if !acceptable { errors.append(Self.invalidValue(s, k)) }
        }
    }

    private func validateWindow(_ errors: inout [AnnotationFieldError]) {
        guard let (_, s) = lookup(AutoscalingAnnotation.windowNames) else { return }
        let k = AutoscalingAnnotation.windowKey
        guard let d = try? GoDuration.parse(s) else {
            errors.append(Self.invalidValue(s, k))
            return
        }
        if d < AutoscalerConfig.windowMinimum || d > AutoscalerConfig.windowMaximum {
            errors.append(Self.outOfBounds(s, "\(AutoscalerConfig.windowMinimum)", "\(AutoscalerConfig.windowMaximum)", k))
        } else if d.truncatedToSecond != d {
            errors.append(AnnotationFieldError("must be specified with at most second precision", paths: [k]))
        }
    }

    private func validateLastPodRetention(_ errors: inout [AnnotationFieldError]) {
        guard let (k, s) = lookup(AutoscalingAnnotation.scaleToZeroPodRetentionPeriodNames) else { return }
        guard let d = try? GoDuration.parse(s) else {
            errors.append(Self.invalidValue(s, k))
            return
        }
        if d < .zero || d > AutoscalerConfig.windowMaximum {
            errors.append(Self.outOfBounds(s, "\(GoDuration.zero)", "\(AutoscalerConfig.windowMaximum)", k))
        }
    }

    private func validateScaleDownDelay(_ errors: inout [AnnotationFieldError]) {
        guard let (k, s) = lookup(AutoscalingAnnotation.scaleDownDelayNames) else { return }
        guard let d = try? GoDuration.parse(s) else {
            errors.append(Self.invalidValue(s, k))
            return
        }
        if d < .zero || d > AutoscalerConfig.windowMaximum {
            errors.append(Self.outOfBounds(s, "\(GoDuration.zero)", "\(AutoscalerConfig.windowMaximum)", k))
        } else if d.roundedToSecond != d {
            errors.append(AnnotationFieldError("must be specified with at most second precision", paths: [k]))
        }
    }

    private func validateMetric(config: AutoscalerConfig, _ errors: inout [AnnotationFieldError]) {
        guard let (_, metric) = lookup(AutoscalingAnnotation.metricNames) else { return }
        let cls = lookup(AutoscalingAnnotation.classNames)?.value ?? config.podAutoscalerClass
        switch cls {
        case AutoscalingAnnotation.kpaClass:
            if metric == ScalingMetric.concurrency.rawValue || metric == ScalingMetric.rps.rawValue { return }
        case AutoscalingAnnotation.hpaClass:
            if !metric.isEmpty { return }
        default:
            return
        }
        errors.append(Self.invalidValue(metric, AutoscalingAnnotation.metricKey))
    }

    /// Checked only when the class annotation says KPA (Knative looks at the annotation alone).
    private func validateAlgorithm(_ errors: inout [AnnotationFieldError]) {
        guard lookup(AutoscalingAnnotation.classNames)?.value == AutoscalingAnnotation.kpaClass else { return }
        guard let (k, v) = lookup(AutoscalingAnnotation.metricAggregationAlgorithmNames), !v.isEmpty else { return }
        switch v {
        case "linear", "weighted-exponential", "weightedExponential": return
        default: errors.append(Self.invalidValue(v, k))
        }
    }

    private func validateInitialScale(config: AutoscalerConfig, _ errors: inout [AnnotationFieldError]) {
        guard let (k, v) = lookup(AutoscalingAnnotation.initialScaleNames) else { return }
        // Go's Atoi: a 64-bit int.
        guard let i = try? GoParse.int(v, bits: 64) else {
            errors.append(Self.invalidValue(v, k))
            return
        }
        if i < 0 {
            errors.append(Self.invalidValue(v, k + " must be greater than 0"))
        } else if !config.allowZeroInitialScale && i == 0 {
            errors.append(Self.invalidValue(v, k + "=0 not allowed by cluster"))
        }
    }
}
