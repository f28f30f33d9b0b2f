// How a revision's decider and metric specs follow from the ConfigMap, its annotations and its
// containerConcurrency (Serving layer, KPA): per-pod target resolution, windows, burst capacity and
// initial scale exactly as Knative's PodAutoscaler reconciler derives them (kpa-spec §5–§7, §10.1).

/// Whether the revision receives traffic (the PodAutoscaler's reachability).
public enum Reachability: String, Sendable, Equatable {
    case reachable = "Reachable"
    case unreachable = "Unreachable"
    case unknown = ""
}

/// Per-pod target value T and total capacity Tot.
public struct MetricTarget: Sendable, Equatable {
    public var target: Double
    public var total: Double
}

public enum SpecResolution {
    /// Knative's `ResolveMetricTarget` (§6).
    public static func metricTarget(config: AutoscalerConfig, annotations: RevisionAnnotations,
                                    containerConcurrency: Int64) -> MetricTarget {
        var total: Double
        var utilization: Double
        let metric = annotations.metricName
        if metric == ScalingMetric.rps.rawValue {
            total = config.rpsTargetDefault
            utilization = config.targetUtilization
        } else {
            total = Double(containerConcurrency)
            if total == 0 { total = config.containerConcurrencyTargetDefault }
            utilization = config.containerConcurrencyTargetFraction
        }
        if let annotated = annotations.target {
            total = annotated
            // Never aim above the container's hard concurrency limit.
            if metric == ScalingMetric.concurrency.rawValue && containerConcurrency != 0 {
                total = min(annotated, Double(containerConcurrency))
            }
        }
        if let tu = annotations.targetUtilization { utilization = tu }
        return MetricTarget(target: max(AutoscalerConfig.targetMinimum, total * utilization), total: total)
    }

    /// Stable window: the annotation, else the ConfigMap.
    public static func stableWindow(config: AutoscalerConfig, annotations: RevisionAnnotations) -> GoDuration {
        annotations.window ?? config.stableWindow
    }

    /// Target burst capacity: the annotation, else the ConfigMap.
    public static func targetBurstCapacity(config: AutoscalerConfig, annotations: RevisionAnnotations) -> Double {
        annotations.targetBurstCapacity ?? config.targetBurstCapacity
    }

    /// Effective initial scale (§10.1): the annotation unless it is 0 while the cluster does not
    /// allow a zero initial scale, else the ConfigMap.
    public static func initialScale(config: AutoscalerConfig, annotations: RevisionAnnotations) -> Int32 {
        guard let annotated = annotations.initialScale, !(annotated == 0 && !config.allowZeroInitialScale) else {
            return config.initialScale
        }
        return annotated
    }

    /// Knative's `MakeMetric`: windows and whether a scrape target exists (not when TBC is -1).
    public static func metricSpec(config: AutoscalerConfig, annotations: RevisionAnnotations) -> MetricSpec {
        let stable = stableWindow(config: config, annotations: annotations)
        let percentage = annotations.panicWindowPercentage ?? config.panicWindowPercentage
        let panic = AutoscalerConfig.panicWindow(stableWindow: stable, percentage: percentage)
        let seconds = max(1, Int64((Double(stable.nanoseconds) / 1e9).rounded(.up)))
        return MetricSpec(stableWindowSeconds: seconds,
                          panicWindowSeconds: max(1, panic.wholeSeconds),
                          hasScrapeTarget: targetBurstCapacity(config: config, annotations: annotations) != -1,
                          algorithm: annotations.aggregationAlgorithm)
    }

    /// Knative's `MakeDecider`.
    public static func deciderSpec(config: AutoscalerConfig, annotations: RevisionAnnotations,
                                   containerConcurrency: Int64, reachability: Reachability = .reachable) -> DeciderSpec {
        let target = metricTarget(config: config, annotations: annotations, containerConcurrency: containerConcurrency)
        return DeciderSpec(
            maxScaleUpRate: config.maxScaleUpRate,
            maxScaleDownRate: config.maxScaleDownRate,
            scalingMetric: annotations.scalingMetric,
            targetValue: target.target,
            totalValue: target.total,
            targetBurstCapacity: targetBurstCapacity(config: config, annotations: annotations),
            activatorCapacity: config.activatorCapacity,
            panicThreshold: (annotations.panicThresholdPercentage ?? config.panicThresholdPercentage) / 100.0,
            stableWindow: stableWindow(config: config, annotations: annotations),
            scaleDownDelay: annotations.scaleDownDelay ?? config.scaleDownDelay,
            initialScale: initialScale(config: config, annotations: annotations),
            reachable: reachability != .unreachable,
            activationScale: annotations.activationScale ?? 0)
    }
}
