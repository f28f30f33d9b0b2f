// Tests for the config-autoscaler ConfigMap, the revision annotations and spec resolution.
import Testing
@testable import SluiceCore

@Suite("config-autoscaler ConfigMap")
struct AutoscalingConfigTests {
    @Test("an empty ConfigMap yields Knative's defaults")
    func defaults() throws {
        let c = try AutoscalerConfig.parse([:])
        #expect(c == AutoscalerConfig())
        #expect(c.containerConcurrencyTargetFraction == 0.7)
        #expect(c.stableWindow == .seconds(60))
        #expect(c.targetBurstCapacity == 211)
        #expect(c.scaleToZeroGracePeriod == .seconds(30))
        #expect(c.initialScale == 1)
    }

    @Test("every key is read with Go's syntax; unknown keys are ignored")
    func everyKey() throws {
        let c = try AutoscalerConfig.parse([
            "enable-scale-to-zero": "False", "container-concurrency-target-percentage": "80",
            "container-concurrency-target-default": "10", "requests-per-second-target-default": "150",
            "target-burst-capacity": "-1", "stable-window": "1m30s", "panic-window-percentage": "20",
            "panic-threshold-percentage": "300", "max-scale-up-rate": "10", "max-scale-down-rate": "4",
            "scale-to-zero-grace-period": "45s", "scale-to-zero-pod-retention-period": "2m",
            "scale-down-delay": "15m", "pod-autoscaler-class": " hpa.autoscaling.knative.dev ",
            "activator-capacity": "250", "initial-scale": "0", "allow-zero-initial-scale": "1",
            "min-scale": "2", "max-scale": "8", "max-scale-limit": "9", "tick-interval": "10s", "panic-window": "x",
        ])
        #expect(!c.enableScaleToZero)
        #expect(c.containerConcurrencyTargetFraction == 0.8)
        #expect(c.containerConcurrencyTargetDefault == 10)
        #expect(c.rpsTargetDefault == 150)
        #expect(c.targetBurstCapacity == -1)
        #expect(c.stableWindow == .seconds(90))
        #expect(c.panicWindowPercentage == 20)
        #expect(c.panicThresholdPercentage == 300)
        #expect(c.maxScaleUpRate == 10)
        #expect(c.maxScaleDownRate == 4)
        #expect(c.scaleToZeroGracePeriod == .seconds(45))
        #expect(c.scaleToZeroPodRetentionPeriod == .minutes(2))
        #expect(c.scaleDownDelay == .minutes(15))
        #expect(c.podAutoscalerClass == "hpa.autoscaling.knative.dev")
        #expect(c.activatorCapacity == 250)
        #expect(c.initialScale == 0)
        #expect(c.allowZeroInitialScale)
        #expect((c.minScale, c.maxScale, c.maxScaleLimit) == (2, 8, 9))
    }

    @Test("a target percentage above 1 is a percentage, up to 1 a fraction", arguments: [
        ("70", 0.7), ("1", 1.0), ("0.5", 0.5), ("1.5", 0.015), ("100", 1.0),
    ])
    func targetPercentage(text: String, fraction: Double) throws {
        let c = try AutoscalerConfig.parse(["container-concurrency-target-percentage": text])
        #expect(abs(c.containerConcurrencyTargetFraction - fraction) < 1e-12)
    }

    static let rejections: [(data: [String: String], key: String, message: String)] = [
        (["scale-to-zero-grace-period": "0s"], "scale-to-zero-grace-period",
         "scale-to-zero-grace-period must be positive, was: 0s"),
        (["scale-down-delay": "-1s"], "scale-down-delay", "scale-down-delay cannot be negative, was: -1s"),
        (["scale-down-delay": "1.5s"], "scale-down-delay",
         "scale-down-delay = 1.5s, must be specified with at most second precision"),
        (["scale-to-zero-pod-retention-period": "-1m"], "scale-to-zero-pod-retention-period",
         "scale-to-zero-pod-retention-period cannot be negative, was: -1m0s"),
        (["target-burst-capacity": "-2"], "target-burst-capacity",
         "target-burst-capacity must be either non-negative or -1 (for unlimited), was: -2.000000"),
        (["container-concurrency-target-percentage": "0"], "container-concurrency-target-percentage",
         "container-concurrency-target-percentage = 0.000000 is outside of valid range of (0, 100]"),
        (["container-concurrency-target-percentage": "200"], "container-concurrency-target-percentage",
         "container-concurrency-target-percentage = 2.000000 is outside of valid range of (0, 100]"),
        (["container-concurrency-target-percentage": "1.5", "container-concurrency-target-default": "0.5"],
         "container-concurrency-target-default",
         "container-concurrency-target-percentage and container-concurrency-target-default yield target concurrency of 0.0075, can't be less than 0.01"),
        (["requests-per-second-target-default": "0.001"], "requests-per-second-target-default",
         "requests-per-second-target-default must be at least 0.01, was: 0.001"),
        (["activator-capacity": "0.5"], "activator-capacity", "activator-capacity = 0.5, must be at least 1"),
        (["max-scale-up-rate": "1"], "max-scale-up-rate", "max-scale-up-rate = 1, must be greater than 1.0"),
        (["max-scale-down-rate": "0.5"], "max-scale-down-rate", "max-scale-down-rate = 0.5, must be greater than 1.0"),
        (["stable-window": "5s"], "stable-window", "stable-window = 5s, must be in [6s; 1h0m0s] range"),
        (["stable-window": "61m"], "stable-window", "stable-window = 1h1m0s, must be in [6s; 1h0m0s] range"),
        (["stable-window": "6500ms"], "stable-window", "stable-window = 6.5s, must be specified with at most second precision"),
        (["panic-window-percentage": "0.5"], "panic-window-percentage",
         "panic-window-percentage = 0.5, must be in [1, 100] interval"),
        (["panic-window-percentage": "101"], "panic-window-percentage",
         "panic-window-percentage = 101, must be in [1, 100] interval"),
        (["initial-scale": "0"], "initial-scale",
         "initial-scale = 0, must be at least 0 (or at least 1 when allow-zero-initial-scale is false)"),
        (["initial-scale": "-1", "allow-zero-initial-scale": "true"], "initial-scale",
         "initial-scale = -1, must be at least 0 (or at least 1 when allow-zero-initial-scale is false)"),
        (["min-scale": "-1"], "min-scale", "min-scale = -1, must be at least 0"),
        (["max-scale": "-1"], "max-scale", "max-scale = -1, must be in [0, max-scale-limit(0)] range"),
        (["max-scale": "0", "max-scale-limit": "10"], "max-scale", "max-scale = 0, must be in [1, max-scale-limit(10)] range"),
        (["max-scale": "11", "max-scale-limit": "10"], "max-scale", "max-scale = 11, must be in [1, max-scale-limit(10)] range"),
        (["max-scale-limit": "-1"], "max-scale-limit", "max-scale-limit = -1, must be at least 0"),
        (["min-scale": "5", "max-scale": "3"], "min-scale", "min-scale (5) must be less than max-scale (3)"),
        // Parse failures name the key and carry Go's parser error.
        (["max-scale-up-rate": "fast"], "max-scale-up-rate",
         "failed to parse data: failed to parse \"max-scale-up-rate\": strconv.ParseFloat: parsing \"fast\": invalid syntax"),
        (["target-burst-capacity": "1e999"], "target-burst-capacity",
         "failed to parse data: failed to parse \"target-burst-capacity\": strconv.ParseFloat: parsing \"1e999\": value out of range"),
        (["initial-scale": "1.5"], "initial-scale",
         "failed to parse data: failed to parse \"initial-scale\": strconv.ParseInt: parsing \"1.5\": invalid syntax"),
        (["max-scale": "3000000000"], "max-scale",
         "failed to parse data: failed to parse \"max-scale\": strconv.ParseInt: parsing \"3000000000\": value out of range"),
        (["stable-window": "60"], "stable-window",
         "failed to parse data: failed to parse \"stable-window\": time: missing unit in duration \"60\""),
        (["stable-window": "1x"], "stable-window",
         "failed to parse data: failed to parse \"stable-window\": time: unknown unit \"x\" in duration \"1x\""),
        (["scale-down-delay": "soon"], "scale-down-delay",
         "failed to parse data: failed to parse \"scale-down-delay\": time: invalid duration \"soon\""),
        (["enable-scale-to-zero": "yes"], "enable-scale-to-zero",
         "failed to parse data: failed to parse \"enable-scale-to-zero\": strconv.ParseBool: parsing \"yes\": invalid syntax"),
    ]

    @Test("each invalid ConfigMap is rejected with Knative's message naming the key",
          arguments: rejections.indices)
    func rejection(index: Int) {
        let r = Self.rejections[index]
        #expect(throws: AutoscalerConfigErrors(errors: [AutoscalerConfigError(key: r.key, message: r.message)])) {
            try AutoscalerConfig.parse(r.data)
        }
    }

    @Test("all problems are reported together, in Knative's order")
    func severalProblems() {
        do {
            _ = try AutoscalerConfig.parse(["stable-window": "5s", "max-scale-down-rate": "1", "scale-to-zero-grace-period": "0s"])
            Issue.record("expected a rejection")
        } catch {
            #expect(error.errors.map(\.key) == ["scale-to-zero-grace-period", "max-scale-down-rate", "stable-window"])
        }
    }

    @Test("a ConfigMap file is read with each key's line; errors carry file, line and key")
    func yamlFile() throws {
        let ok = """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: config-autoscaler
              namespace: knative-serving
            data:
              _example: |
                stable-window: "60s"
              stable-window: "2m"
              scale-down-delay: '30s'
            """
        let c = try AutoscalerConfig.load(yaml: ok, file: "ok.yaml")
        #expect(c.stableWindow == .minutes(2))
        #expect(c.scaleDownDelay == .seconds(30))

        let bad = """
            kind: ConfigMap
            metadata:
              name: config-autoscaler
            data:
              stable-window: "5s"
              max-scale: 3
              min-scale: ~
            """
        #expect(throws: ConfigMapLoadError([
            ConfigMapProblem(file: "bad.yaml", line: 6, key: "max-scale", message: "value must be a string; quote it: \"3\""),
        ])) { try AutoscalerConfig.load(yaml: bad, file: "bad.yaml") }

        let invalid = bad.replacingOccurrences(of: "max-scale: 3", with: "max-scale: \"3\"")
        do {
            _ = try AutoscalerConfig.load(yaml: invalid, file: "bad.yaml")
            Issue.record("expected a rejection")
        } catch {
            #expect(error.problems.map(\.description) == [
                "bad.yaml:7: min-scale: failed to parse data: failed to parse \"min-scale\": strconv.ParseInt: parsing \"\": invalid syntax",
            ])
        }
    }

    @Test("the file must hold the config-autoscaler ConfigMap")
    func wrongDocuments() {
        #expect(throws: ConfigMapLoadError.self) { try AutoscalerConfig.load(yaml: "kind: Secret\n", file: "f") }
        #expect(throws: ConfigMapLoadError.self) {
            try AutoscalerConfig.load(yaml: "kind: ConfigMap\nmetadata:\n  name: config-network\n", file: "f")
        }
        #expect(throws: ConfigMapLoadError.self) { try AutoscalerConfig.load(yaml: "kind: [", file: "f") }
        let multi = "kind: ConfigMap\nmetadata: {name: config-network}\n---\nkind: ConfigMap\nmetadata: {name: config-autoscaler}\ndata: {min-scale: \"2\"}\n"
        #expect((try? AutoscalerConfig.load(yaml: multi, file: "f"))?.minScale == 2)
        #expect((try? AutoscalerConfig.load(yaml: "kind: ConfigMap\n", file: "f")) == AutoscalerConfig())
    }

    @Test("the effective configuration prints as JSON with Go durations")
    func effectiveJSON() throws {
        let json = try AutoscalerConfig.parse(["stable-window": "90s", "container-concurrency-target-percentage": "0.85"]).effectiveJSON
        #expect(json.contains("\"stable-window\": \"1m30s\""))
        #expect(json.contains("\"container-concurrency-target-percentage\": 85"))
        #expect(json.contains("\"enable-scale-to-zero\": true"))
    }
}

@Suite("Go syntax")
struct GoSyntaxTests {
    @Test("durations parse as Go's time.ParseDuration does", arguments: [
        ("60s", Int64(60_000_000_000)), ("1m30s", 90_000_000_000), ("1.5h", 5_400_000_000_000), ("0", 0),
        ("-2s", -2_000_000_000), ("300ms", 300_000_000), ("1us", 1_000), ("1\u{00B5}s", 1_000), ("+5m", 300_000_000_000),
        (".5s", 500_000_000),
    ])
    func parse(text: String, nanoseconds: Int64) throws {
        #expect(try GoDuration.parse(text).nanoseconds == nanoseconds)
    }

    @Test("durations print as Go's Duration.String does", arguments: [
        (Int64(0), "0s"), (60_000_000_000, "1m0s"), (3_600_000_000_000, "1h0m0s"), (1_500_000_000, "1.5s"),
        (500_000_000, "500ms"), (1_500, "1.5\u{00B5}s"), (7, "7ns"), (-90_000_000_000, "-1m30s"), (3_661_000_000_000, "1h1m1s"),
    ])
    func format(nanoseconds: Int64, text: String) {
        #expect(GoDuration(nanoseconds: nanoseconds).description == text)
    }

    @Test("invalid durations are rejected with Go's messages", arguments: [
        ("", "time: invalid duration \"\""), ("s", "time: invalid duration \"s\""), ("5", "time: missing unit in duration \"5\""),
        ("5d", "time: unknown unit \"d\" in duration \"5d\""), ("9999999999h", "time: invalid duration \"9999999999h\""),
    ])
    func invalidDuration(text: String, message: String) {
        #expect(throws: GoSyntaxError(message)) { try GoDuration.parse(text) }
    }

    @Test("floats print as Go's %v does", arguments: [
        (1.0, "1"), (0.5, "0.5"), (100.0, "100"), (0.01, "0.01"), (1e-05, "1e-05"), (1_000_000.0, "1e+06"),
        (123456.0, "123456"), (0.0075, "0.0075"), (-2.5, "-2.5"), (1234567.0, "1.234567e+06"),
    ])
    func formatFloat(value: Double, text: String) {
        #expect(GoFormat.v(value) == text)
    }

    @Test("float, int and bool parsing accepts Go's forms and nothing else")
    func parsing() throws {
        #expect(try GoParse.float("1e3") == 1000)
        #expect(try GoParse.float("-Inf") == -.infinity)
        #expect(try GoParse.float("0x1p3") == 8)
        #expect(throws: GoSyntaxError.self) { try GoParse.float(" 1") }
        #expect(throws: GoSyntaxError.self) { try GoParse.float("1_0") }
        #expect(try GoParse.int("-2147483648") == -2_147_483_648)
        #expect(throws: GoSyntaxError.self) { try GoParse.int("2147483648") }
        #expect(throws: GoSyntaxError.self) { try GoParse.int("+") }
        #expect(try GoParse.bool("T"))
        #expect(throws: GoSyntaxError.self) { try GoParse.bool("yes") }
    }
}

@Suite("Revision annotations")
struct AutoscalingAnnotationTests {
    static let messages: [(annotations: [String: String], config: [String: String], message: String)] = [
        (["autoscaling.knative.dev/panic-window-percentage": "202"], [:],
         "expected 1 <= 202 <= 100: autoscaling.knative.dev/panic-window-percentage"),
        (["autoscaling.knative.dev/panicWindowPercentage": "0"], [:],
         "expected 1 <= 0 <= 100: autoscaling.knative.dev/panicWindowPercentage"),
        (["autoscaling.knative.dev/panic-threshold-percentage": "fifty"], [:],
         "invalid value: fifty: autoscaling.knative.dev/panic-threshold-percentage"),
        (["autoscaling.knative.dev/panic-threshold-percentage": "100"], [:],
         "expected 110 <= 100 <= 1000: autoscaling.knative.dev/panic-threshold-percentage"),
        (["autoscaling.knative.dev/target": "0.001"], [:],
         "target 0.001 should be at least 0.01: autoscaling.knative.dev/target"),
        (["autoscaling.knative.dev/target-utilization-percentage": "0.5"], [:],
         "expected 1 <= 0.5 <= 100: autoscaling.knative.dev/target-utilization-percentage"),
        (["autoscaling.knative.dev/target-burst-capacity": "-2"], [:],
         "invalid value: -2: autoscaling.knative.dev/target-burst-capacity"),
        (["autoscaling.knative.dev/window": "5s"], [:], "expected 6s <= 5s <= 1h0m0s: autoscaling.knative.dev/window"),
        (["autoscaling.knative.dev/window": "6500ms"], [:],
         "must be specified with at most second precision: autoscaling.knative.dev/window"),
        (["autoscaling.knative.dev/window": "sixty"], [:], "invalid value: sixty: autoscaling.knative.dev/window"),
        (["autoscaling.knative.dev/min-scale": "-1"], [:], "expected 0 <= -1 <= 2147483647: autoscaling.knative.dev/min-scale"),
        (["autoscaling.knative.dev/minScale": "x"], [:], "invalid value: x: autoscaling.knative.dev/minScale"),
        (["autoscaling.knative.dev/min-scale": "5", "autoscaling.knative.dev/max-scale": "3"], [:],
         "max-scale=3 is less than min-scale=5: autoscaling.knative.dev/max-scale, autoscaling.knative.dev/min-scale"),
        (["autoscaling.knative.dev/max-scale": "20"], ["max-scale-limit": "10", "max-scale": "5"],
         "expected 1 <= 20 <= 10: autoscaling.knative.dev/max-scale"),
        (["autoscaling.knative.dev/max-scale": "0"], ["max-scale-limit": "10", "max-scale": "5"],
         "max-scale=0 (unlimited), must be less than 10: autoscaling.knative.dev/max-scale"),
        (["autoscaling.knative.dev/activation-scale": "1"], [:],
         "activation-scale=1 must be greater than 1: autoscaling.knative.dev/activation-scale"),
        (["autoscaling.knative.dev/activation-scale": "2", "autoscaling.knative.dev/min-scale": "3"], [:],
         "min-scale=3 is greater than activation-scale=2: autoscaling.knative.dev/activation-scale"),
        (["autoscaling.knative.dev/activation-scale": "5", "autoscaling.knative.dev/max-scale": "3"], [:],
         "max-scale=3 is less than activation-scale=5: autoscaling.knative.dev/activation-scale"),
        (["autoscaling.knative.dev/scale-down-delay": "2h"], [:],
         "expected 0s <= 2h <= 1h0m0s: autoscaling.knative.dev/scale-down-delay"),
        (["autoscaling.knative.dev/scaleDownDelay": "1.5s"], [:],
         "must be specified with at most second precision: autoscaling.knative.dev/scaleDownDelay"),
        (["autoscaling.knative.dev/scale-to-zero-pod-retention-period": "-1s"], [:],
         "expected 0s <= -1s <= 1h0m0s: autoscaling.knative.dev/scale-to-zero-pod-retention-period"),
        (["autoscaling.knative.dev/metric": "cpu"], [:], "invalid value: cpu: autoscaling.knative.dev/metric"),
        (["autoscaling.knative.dev/class": "foo.knative.dev"], [:], "invalid value: foo.knative.dev: autoscaling.knative.dev/class"),
        (["autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
          "autoscaling.knative.dev/metric-aggregation-algorithm": "median"], [:],
         "invalid value: median: autoscaling.knative.dev/metric-aggregation-algorithm"),
        (["autoscaling.knative.dev/initial-scale": "-1"], [:],
         "invalid value: -1: autoscaling.knative.dev/initial-scale must be greater than 0"),
        (["autoscaling.knative.dev/initialScale": "0"], [:],
         "invalid value: 0: autoscaling.knative.dev/initialScale=0 not allowed by cluster"),
        (["autoscaling.knative.dev/min-scale": "x", "autoscaling.knative.dev/max-scale": "x"], [:],
         "invalid value: x: autoscaling.knative.dev/max-scale, autoscaling.knative.dev/min-scale"),
        (["autoscaling.knative.dev/window": "5s", "autoscaling.knative.dev/target": "0"], [:],
         "expected 6s <= 5s <= 1h0m0s: autoscaling.knative.dev/window\ntarget 0 should be at least 0.01: autoscaling.knative.dev/target"),
    ]

    @Test("invalid annotations are rejected with Knative's field-error texts", arguments: messages.indices)
    func validation(index: Int) throws {
        let m = Self.messages[index]
        let config = try AutoscalerConfig.parse(m.config)
        #expect(RevisionAnnotations(m.annotations).validate(config: config)?.description == m.message)
    }

    @Test("valid annotations pass; HPA metrics and the algorithm without a KPA class annotation are not checked")
    func validAnnotations() {
        let valid: [[String: String]] = [
            ["autoscaling.knative.dev/metric": "rps", "autoscaling.knative.dev/target": "0.01"],
            ["autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev", "autoscaling.knative.dev/metric": "memory"],
            ["autoscaling.knative.dev/metric-aggregation-algorithm": "median"],
            ["autoscaling.knative.dev/initial-scale": "0"].merging(["autoscaling.knative.dev/activation-scale": "2"]) { a, _ in a },
            ["autoscaling.knative.dev/target-burst-capacity": "-1", "autoscaling.knative.dev/window": "1h"],
        ]
        var config = AutoscalerConfig()
        config.allowZeroInitialScale = true
        for a in valid { #expect(RevisionAnnotations(a).validate(config: config) == nil, "\(a)") }
    }

    @Test("the current name wins over its legacy alias; unparsable values are ignored by the KPA")
    func aliases() {
        let a = RevisionAnnotations(["autoscaling.knative.dev/min-scale": "2", "autoscaling.knative.dev/minScale": "5",
                                     "autoscaling.knative.dev/maxScale": "9", "autoscaling.knative.dev/target": "lots",
                                     "autoscaling.knative.dev/metricAggregationAlgorithm": "weightedExponential"])
        #expect(a.minScale == 2)
        #expect(a.maxScale == 9)
        #expect(a.target == nil)
        #expect(a.aggregationAlgorithm == .weightedExponential)
    }
}

@Suite("KPA spec resolution")
struct AutoscalingResolutionTests {
    static let targets: [(config: [String: String], annotations: [String: String], cc: Int64, target: Double, total: Double)] = [
        (["container-concurrency-target-percentage": "1"], [:], 0, 100, 100),
        (["container-concurrency-target-percentage": "1"], ["autoscaling.knative.dev/target-utilization-percentage": "75"], 12, 9, 12),
        (["container-concurrency-target-percentage": "1"], ["autoscaling.knative.dev/target": "10"], 1, 1, 1),
        (["container-concurrency-target-percentage": "0.001"], ["autoscaling.knative.dev/target": "1"], 0, 0.01, 1),
        ([:], ["autoscaling.knative.dev/metric": "rps"], 0, 140, 200),
        ([:], ["autoscaling.knative.dev/metric": "rps", "autoscaling.knative.dev/target": "300"], 5, 210, 300),
        ([:], [:], 0, 70, 100),
    ]

    @Test("per-pod target and total follow Knative's resolution (spec §6 examples)", arguments: targets.indices)
    func target(index: Int) throws {
        let t = Self.targets[index]
        let r = SpecResolution.metricTarget(config: try AutoscalerConfig.parse(t.config),
                                            annotations: RevisionAnnotations(t.annotations), containerConcurrency: t.cc)
        #expect(abs(r.target - t.target) < 1e-9)
        #expect(r.total == t.total)
    }

    @Test("the panic window is the rounded percentage of the stable window, at least one second", arguments: [
        (Int64(60), 10.0, Int64(6)), (60, 51, 31), (10, 10, 1), (600, 10, 60), (6, 1, 1),
    ])
    func panicWindow(stable: Int64, percentage: Double, panic: Int64) {
        #expect(AutoscalerConfig.panicWindow(stableWindow: .seconds(stable), percentage: percentage) == .seconds(panic))
    }

    @Test("a decider spec resolves from config, annotations and containerConcurrency")
    func deciderSpec() throws {
        let config = try AutoscalerConfig.parse(["scale-down-delay": "30s", "target-burst-capacity": "100"])
        let annotations = RevisionAnnotations([
            "autoscaling.knative.dev/window": "2m", "autoscaling.knative.dev/panic-threshold-percentage": "150",
            "autoscaling.knative.dev/target-burst-capacity": "-1", "autoscaling.knative.dev/activation-scale": "3",
            "autoscaling.knative.dev/initial-scale": "0", "autoscaling.knative.dev/panic-window-percentage": "20",
        ])
        let spec = SpecResolution.deciderSpec(config: config, annotations: annotations, containerConcurrency: 10,
                                              reachability: .unreachable)
        #expect(spec.stableWindow == .minutes(2))
        #expect(spec.panicThreshold == 1.5)
        #expect(spec.targetBurstCapacity == -1)
        #expect(spec.activationScale == 3)
        #expect(spec.initialScale == 1)  // 0 needs allow-zero-initial-scale
        #expect(spec.scaleDownDelay == .seconds(30))
        #expect(!spec.reachable)
        #expect(spec.targetValue == 7)
        let metric = SpecResolution.metricSpec(config: config, annotations: annotations)
        #expect(metric == MetricSpec(stableWindowSeconds: 120, panicWindowSeconds: 24, hasScrapeTarget: false))
    }
}
