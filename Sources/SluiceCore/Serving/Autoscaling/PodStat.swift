// The metric record a queue-proxy (or the activator) reports to the autoscaler (Serving layer, KPA):
// the fields of Knative's protobuf `Stat`, as a plain value the collector and scraper work with.

/// One report: a pod's averages over the last reporting second, or an activator's per-revision
/// report (then `podName` is the activator pod and the proxied fields are 0).
public struct PodStat: Sendable, Equatable {
    /// Reporting pod (Stat field 1).
    public var podName: String
    /// Time-averaged in-flight requests, proxied ones included (field 2).
    public var averageConcurrentRequests: Double
    /// The part of the average that came through the activator (field 3).
    public var averageProxiedConcurrentRequests: Double
    /// Requests per second that arrived, proxied ones included (field 4).
    public var requestCount: Double
    /// Requests per second that came through the activator (field 5).
    public var proxiedRequestCount: Double
    /// Seconds since the reporter started (field 6).
    public var processUptime: Double
    /// Unix seconds when the stat was produced; 0 when unset (field 7).
    public var timestamp: Int64

    public init(
        podName: String,
        averageConcurrentRequests: Double = 0,
        averageProxiedConcurrentRequests: Double = 0,
        requestCount: Double = 0,
        proxiedRequestCount: Double = 0,
        processUptime: Double = 0,
        timestamp: Int64 = 0
    ) {
        self.podName = podName
        self.averageConcurrentRequests = averageConcurrentRequests
        self.averageProxiedConcurrentRequests = averageProxiedConcurrentRequests
        self.requestCount = requestCount
        self.proxiedRequestCount = proxiedRequestCount
        self.processUptime = processUptime
        self.timestamp = timestamp
    }

    /// Concurrency that did not come through the activator: what the collector records, so the
    /// activator's own report and the pods' reports add up without counting a request twice.
    public var directConcurrency: Double { averageConcurrentRequests - averageProxiedConcurrentRequests }
    /// Requests per second that did not come through the activator.
    public var directRequestRate: Double { requestCount - proxiedRequestCount }

    /// True for the empty stat a pod serves before its first report (only the name may be set).
    public var isEmptyReport: Bool {
        averageConcurrentRequests == 0 && averageProxiedConcurrentRequests == 0 && requestCount == 0
            && proxiedRequestCount == 0 && processUptime == 0 && timestamp == 0
    }
}
