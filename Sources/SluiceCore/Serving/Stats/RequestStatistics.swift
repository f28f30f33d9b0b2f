// The autoscaler's input as Knative's queue-proxy measures it: every request is an "in" event on arrival
// and an "out" event on completion (time in the breaker queue counts), concurrency is integrated over
// time and reported once per period as averages plus request counts. Serving layer, loop-local value.

/// One reporting period's figures (Knative's RequestStatsReport).
public struct RequestStatisticsReport: Sendable, Equatable {
    /// Time-weighted mean of in-flight requests over the period.
    public var averageConcurrency: Double
    /// The same for requests that came through the activator.
    public var averageProxiedConcurrency: Double
    /// Requests that arrived during the period.
    public var requestCount: Double
    /// Requests through the activator that arrived during the period.
    public var proxiedRequestCount: Double

    public init(
        averageConcurrency: Double = 0, averageProxiedConcurrency: Double = 0,
        requestCount: Double = 0, proxiedRequestCount: Double = 0
    ) {
        self.averageConcurrency = averageConcurrency
        self.averageProxiedConcurrency = averageProxiedConcurrency
        self.requestCount = requestCount
        self.proxiedRequestCount = proxiedRequestCount
    }

    /// Combines the reports of several event loops taken at the same instant over the same period:
    /// concurrencies and counts add up.
    public static func + (lhs: Self, rhs: Self) -> Self {
        Self(
            averageConcurrency: lhs.averageConcurrency + rhs.averageConcurrency,
            averageProxiedConcurrency: lhs.averageProxiedConcurrency + rhs.averageProxiedConcurrency,
            requestCount: lhs.requestCount + rhs.requestCount,
            proxiedRequestCount: lhs.proxiedRequestCount + rhs.proxiedRequestCount)
    }
}

/// Concurrency and request counters for one event loop (one per loop; merge reports with `+`).
/// Integration is exact: concurrency × nanoseconds in integers, divided only when reporting.
public struct RequestStatistics: Sendable {
    /// Requests in flight now (not reset by reports).
    public private(set) var concurrency: Int64 = 0
    /// Of those, requests that came through the activator.
    public private(set) var proxiedConcurrency: Int64 = 0

    private var lastChange: ServingInstant
    private var requestCount: Int64 = 0
    private var proxiedCount: Int64 = 0
    private var concurrencyNanoseconds: Int64 = 0
    private var proxiedConcurrencyNanoseconds: Int64 = 0
    private var nanosecondsInUse: Int64 = 0

    public init(startedAt: ServingInstant) {
        lastChange = startedAt
    }

    /// A request arrived (before the breaker). `proxied`: it carries `K-Proxy-Request: activator`.
    public mutating func requestStarted(at now: ServingInstant, proxied: Bool) {
        integrate(until: now)
        requestCount &+= 1
        concurrency &+= 1
        if proxied {
            proxiedCount &+= 1
            proxiedConcurrency &+= 1
        }
    }

    /// A request finished (answered, refused by the breaker, or abandoned).
    public mutating func requestFinished(at now: ServingInstant, proxied: Bool) {
        integrate(until: now)
        concurrency &-= 1
        if proxied {
            proxiedConcurrency &-= 1
        }
    }

    /// The figures since the previous report, then starts a new period. Concurrency carries over.
    public mutating func report(at now: ServingInstant) -> RequestStatisticsReport {
        integrate(until: now)
        var report = RequestStatisticsReport(
            requestCount: Double(requestCount), proxiedRequestCount: Double(proxiedCount))
        if nanosecondsInUse > 0 {
            let span = Double(nanosecondsInUse)
            report.averageConcurrency = Double(concurrencyNanoseconds) / span
            report.averageProxiedConcurrency = Double(proxiedConcurrencyNanoseconds) / span
        }
        requestCount = 0
        proxiedCount = 0
        concurrencyNanoseconds = 0
        proxiedConcurrencyNanoseconds = 0
        nanosecondsInUse = 0
        return report
    }

    private mutating func integrate(until now: ServingInstant) {
        // Events from another loop's clock read may arrive slightly out of order; like Knative, a step
        // backwards in time is ignored rather than counted as negative.
        let elapsed = now.nanoseconds &- lastChange.nanoseconds
        guard elapsed > 0 else { return }
        nanosecondsInUse &+= elapsed
        concurrencyNanoseconds &+= concurrency &* elapsed
        proxiedConcurrencyNanoseconds &+= proxiedConcurrency &* elapsed
        lastChange = now
    }
}
