// The `config-autoscaler` ConfigMap (Serving layer, KPA): every key, default and validation rule of
// Knative's autoscaler configuration, parsed with Go's syntax and rejected with Knative's texts
// (kpa-spec §11). Unlike Knative, which stops at the first problem, every problem is reported.

/// The autoscaler's cluster-wide configuration, as Knative's `autoscalerconfig.Config`.
public struct AutoscalerConfig: Sendable, Equatable {
    public var enableScaleToZero = true
    /// `container-concurrency-target-percentage` as a fraction in (0, 1].
    public var containerConcurrencyTargetFraction = 0.7
    public var containerConcurrencyTargetDefault = 100.0
    /// Utilisation used for RPS targets: an internal constant, not a key.
    public var targetUtilization = AutoscalerConfig.rpsTargetUtilization
    public var rpsTargetDefault = 200.0
    public var maxScaleUpRate = 1000.0
    public var maxScaleDownRate = 2.0
    public var targetBurstCapacity = 211.0
    public var panicWindowPercentage = 10.0
    public var activatorCapacity = 100.0
    public var panicThresholdPercentage = 200.0
    public var stableWindow = GoDuration.seconds(60)
    public var scaleToZeroGracePeriod = GoDuration.seconds(30)
    public var scaleToZeroPodRetentionPeriod = GoDuration.zero
    public var scaleDownDelay = GoDuration.zero
    public var podAutoscalerClass = AutoscalingAnnotation.kpaClass
    public var allowZeroInitialScale = false
    public var initialScale: Int32 = 1
    public var minScale: Int32 = 0
    public var maxScale: Int32 = 0
    public var maxScaleLimit: Int32 = 0

    public static let rpsTargetUtilization = 0.7
    /// Smallest per-pod target (Knative's `TargetMin`).
    public static let targetMinimum = 0.01
    public static let windowMinimum = GoDuration.seconds(6)
    public static let windowMaximum = GoDuration.hours(1)
    public static let panicWindowPercentageRange = 1.0...100.0
    /// Bucket granularity and scrape period: fixed at one second.
    public static let bucketSeconds: Int64 = 1
    /// Decision period: fixed at two seconds.
    public static let tickInterval = GoDuration.seconds(2)

    /// The shipped defaults.
    public init() {}

    /// Every ConfigMap key this configuration reads, in the order of Knative's table.
    public static let keys: [String] = [
        "enable-scale-to-zero", "container-concurrency-target-percentage",
        "container-concurrency-target-default", "requests-per-second-target-default",
        "target-burst-capacity", "stable-window", "panic-window-percentage", "panic-threshold-percentage",
        "max-scale-up-rate", "max-scale-down-rate", "scale-to-zero-grace-period",
        "scale-to-zero-pod-retention-period", "scale-down-delay", "pod-autoscaler-class",
        "activator-capacity", "initial-scale", "allow-zero-initial-scale", "min-scale", "max-scale",
        "max-scale-limit",
    ]

    /// Parses and validates ConfigMap `data`. Unknown keys are ignored (as Knative does). A value
    /// that fails to parse rejects the map ("failed to parse data: …"); when all parse, every
    /// validation rule is checked and each failure reported, in Knative's order.
    public static func parse(_ data: [String: String]) throws(AutoscalerConfigErrors) -> AutoscalerConfig {
        var config = AutoscalerConfig()
        var errors: [AutoscalerConfigError] = []

        func read<T>(_ key: String, _ parse: (String) throws(GoSyntaxError) -> T, into target: inout T) {
            guard let raw = data[key] else { return }
            do {
                target = try parse(raw)
            } catch {
                errors.append(AutoscalerConfigError(
                    key: key, message: "failed to parse data: failed to parse \(goQuote(key)): \(error.message)"))
            }
        }
        let float: (String) throws(GoSyntaxError) -> Double = { (s: String) throws(GoSyntaxError) -> Double in try GoParse.float(s) }
        let int32: (String) throws(GoSyntaxError) -> Int32 = { (s: String) throws(GoSyntaxError) -> Int32 in Int32(try GoParse.int(s, bits: 32)) }
        let bool: (String) throws(GoSyntaxError) -> Bool = { (s: String) throws(GoSyntaxError) -> Bool in try GoParse.bool(s) }
        let duration: (String) throws(GoSyntaxError) -> GoDuration = { (s: String) throws(GoSyntaxError) -> GoDuration in try GoDuration.parse(s) }

        // Knative's parse order (the first failure is the one Knative itself would report).
        if let raw = data["pod-autoscaler-class"] {
            config.podAutoscalerClass = raw.trimmingASCIIWhitespace()
        }
        read("enable-scale-to-zero", bool, into: &config.enableScaleToZero)
        read("allow-zero-initial-scale", bool, into: &config.allowZeroInitialScale)
        read("max-scale-up-rate", float, into: &config.maxScaleUpRate)
        read("max-scale-down-rate", float, into: &config.maxScaleDownRate)
        read("container-concurrency-target-percentage", float, into: &config.containerConcurrencyTargetFraction)
        read("container-concurrency-target-default", float, into: &config.containerConcurrencyTargetDefault)
        read("requests-per-second-target-default", float, into: &config.rpsTargetDefault)
        read("target-burst-capacity", float, into: &config.targetBurstCapacity)
        read("panic-window-percentage", float, into: &config.panicWindowPercentage)
        read("activator-capacity", float, into: &config.activatorCapacity)
        read("panic-threshold-percentage", float, into: &config.panicThresholdPercentage)
        read("initial-scale", int32, into: &config.initialScale)
        read("min-scale", int32, into: &config.minScale)
        read("max-scale", int32, into: &config.maxScale)
        read("max-scale-limit", int32, into: &config.maxScaleLimit)
        read("stable-window", duration, into: &config.stableWindow)
        read("scale-down-delay", duration, into: &config.scaleDownDelay)
        read("scale-to-zero-grace-period", duration, into: &config.scaleToZeroGracePeriod)
        read("scale-to-zero-pod-retention-period", duration, into: &config.scaleToZeroPodRetentionPeriod)
        if !errors.isEmpty { throw AutoscalerConfigErrors(errors: errors) }

        // Values above 1 are percentages; values in (0, 1] are already fractions.
        if config.containerConcurrencyTargetFraction > 1.0 {
            config.containerConcurrencyTargetFraction /= 100.0
        }
        let problems = config.validationErrors()
        if !problems.isEmpty { throw AutoscalerConfigErrors(errors: problems) }
        return config
    }

    /// Knative's validation rules, each failure with the key it concerns.
    public func validationErrors() -> [AutoscalerConfigError] {
        var errors: [AutoscalerConfigError] = []
        func fail(_ key: String, _ message: String) { errors.append(AutoscalerConfigError(key: key, message: message)) }
        let v = GoFormat.v

        if scaleToZeroGracePeriod <= .zero {
            fail("scale-to-zero-grace-period", "scale-to-zero-grace-period must be positive, was: \(scaleToZeroGracePeriod)")
        }
        if scaleDownDelay < .zero {
            fail("scale-down-delay", "scale-down-delay cannot be negative, was: \(scaleDownDelay)")
        } else if scaleDownDelay.roundedToSecond != scaleDownDelay {
            fail("scale-down-delay", "scale-down-delay = \(scaleDownDelay), must be specified with at most second precision")
        }
        if scaleToZeroPodRetentionPeriod < .zero {
            fail("scale-to-zero-pod-retention-period",
                 "scale-to-zero-pod-retention-period cannot be negative, was: \(scaleToZeroPodRetentionPeriod)")
        }
        if targetBurstCapacity < 0 && targetBurstCapacity != -1 {
            fail("target-burst-capacity",
                 "target-burst-capacity must be either non-negative or -1 (for unlimited), was: \(GoFormat.f(targetBurstCapacity))")
        }
        let fractionValid = !(containerConcurrencyTargetFraction <= 0 || containerConcurrencyTargetFraction > 1)
        if !fractionValid {
            fail("container-concurrency-target-percentage",
                 "container-concurrency-target-percentage = \(GoFormat.f(containerConcurrencyTargetFraction)) is outside of valid range of (0, 100]")
        } else {
            let x = containerConcurrencyTargetFraction * containerConcurrencyTargetDefault
            if x < Self.targetMinimum {
                fail("container-concurrency-target-default",
                     "container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of \(v(x)), can't be less than \(v(Self.targetMinimum))")
            }
        }
        if rpsTargetDefault < Self.targetMinimum {
            fail("requests-per-second-target-default",
                 "requests-per-second-target-default must be at least \(v(Self.targetMinimum)), was: \(v(rpsTargetDefault))")
        }
        if activatorCapacity < 1 {
            fail("activator-capacity", "activator-capacity = \(v(activatorCapacity)), must be at least 1")
        }
        if maxScaleUpRate <= 1.0 {
            fail("max-scale-up-rate", "max-scale-up-rate = \(v(maxScaleUpRate)), must be greater than 1.0")
        }
        if maxScaleDownRate <= 1.0 {
            fail("max-scale-down-rate", "max-scale-down-rate = \(v(maxScaleDownRate)), must be greater than 1.0")
        }
        if stableWindow < Self.windowMinimum || stableWindow > Self.windowMaximum {
            fail("stable-window",
                 "stable-window = \(stableWindow), must be in [\(Self.windowMinimum); \(Self.windowMaximum)] range")
        } else if stableWindow.roundedToSecond != stableWindow {
            fail("stable-window", "stable-window = \(stableWindow), must be specified with at most second precision")
        }
        if panicWindowPercentage < Self.panicWindowPercentageRange.lowerBound
            || panicWindowPercentage > Self.panicWindowPercentageRange.upperBound {
            fail("panic-window-percentage",
                 "panic-window-percentage = \(v(panicWindowPercentage)), must be in [\(v(Self.panicWindowPercentageRange.lowerBound)), \(v(Self.panicWindowPercentageRange.upperBound))] interval")
        }
        if initialScale < 0 || (initialScale == 0 && !allowZeroInitialScale) {
            fail("initial-scale",
                 "initial-scale = \(initialScale), must be at least 0 (or at least 1 when allow-zero-initial-scale is false)")
        }
        var boundsValid = true
        if minScale < 0 {
            fail("min-scale", "min-scale = \(minScale), must be at least 0")
            boundsValid = false
        }
        let lowestMaxScale: Int32 = maxScaleLimit > 0 ? 1 : 0
        if maxScale < lowestMaxScale || (maxScaleLimit > 0 && maxScale > maxScaleLimit) {
            fail("max-scale", "max-scale = \(maxScale), must be in [\(lowestMaxScale), max-scale-limit(\(maxScaleLimit))] range")
            boundsValid = false
        }
        if maxScaleLimit < 0 {
            fail("max-scale-limit", "max-scale-limit = \(maxScaleLimit), must be at least 0")
        }
        if boundsValid && minScale > maxScale && maxScale > 0 {
            fail("min-scale", "min-scale (\(minScale)) must be less than max-scale (\(maxScale))")
        }
        return errors
    }

    /// Panic window for a stable window and percentage: rounded to the second, at least 1 s.
    public static func panicWindow(stableWindow: GoDuration, percentage: Double) -> GoDuration {
        let raw = GoDuration(nanoseconds: Int64(saturatingDouble: Double(stableWindow.nanoseconds) * percentage / 100.0))
        let rounded = raw.roundedToSecond
        return rounded < .seconds(bucketSeconds) ? .seconds(bucketSeconds) : rounded
    }
}

/// One configuration problem and the key it concerns.
public struct AutoscalerConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var message: String
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { message }
}

/// All problems found in one ConfigMap.
public struct AutoscalerConfigErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [AutoscalerConfigError]
    public init(errors: [AutoscalerConfigError]) { self.errors = errors }
    public var description: String { errors.map(\.message).joined(separator: "\n") }
}

extension Int64 {
    /// Go's float64 → Duration conversion for in-range values, saturating at the ends.
    init(saturatingDouble value: Double) {
        if value.isNaN { self = 0 } else if value >= 9.2e18 { self = .max } else if value <= -9.2e18 { self = .min } else { self = Int64(value) }
    }
}

extension String {
    /// Go's `strings.TrimSpace` for ASCII whitespace (what ConfigMap string values get).
    func trimmingASCIIWhitespace() -> String {
        let ws: Set<Character> = [" ", "\t", "\n", "\r", "\u{0B}", "\u{0C}"]
        var s = Substring(self)
        while let c = s.first, ws.contains(c) { s.removeFirst() }
        while let c = s.last, ws.contains(c) { s.removeLast() }
        return String(s)
    }
}
