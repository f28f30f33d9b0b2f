// Turns each second's RequestStatisticsReport into Knative's protobuf `Stat` and keeps the encoded bytes
// that :9090/metrics answers (Content-Type application/protobuf). Serving layer; encoding happens once
// per report, so a scrape only copies bytes.
import SwiftProtobuf

/// Knative's protobuf stats reporter: latest Stat for the pod, rates per second, uptime since start.
public struct PodStatReporter: Sendable {
    public let podName: String
    public let startedAt: ServingInstant
    public let reportingPeriod: Duration

    /// The most recent Stat. Before the first report it carries only the pod name.
    public private(set) var latestStat: Metrics_Stat
    /// `latestStat` encoded; what the metrics endpoint serves.
    public private(set) var latestBytes: [UInt8]

    public init(podName: String, startedAt: ServingInstant, reportingPeriod: Duration = .seconds(1)) {
        self.podName = podName
        self.startedAt = startedAt
        self.reportingPeriod = reportingPeriod
        var stat = Metrics_Stat()
        stat.podName = podName
        latestStat = stat
        latestBytes = (try? stat.serializedBytes()) ?? []
    }

    /// Records one period's figures taken at `now`. Counts become rates over the nominal period (as
    /// Knative divides by its reporting period, not by the measured one); the timestamp stays unset.
    @discardableResult
    public mutating func record(_ report: RequestStatisticsReport, at now: ServingInstant) -> Metrics_Stat {
        let periodSeconds = reportingPeriod.servingSeconds
        var stat = Metrics_Stat()
        stat.podName = podName
        stat.processUptime = (now - startedAt).servingSeconds
        stat.averageConcurrentRequests = report.averageConcurrency
        stat.averageProxiedConcurrentRequests = report.averageProxiedConcurrency
        if periodSeconds > 0 {
            stat.requestCount = report.requestCount / periodSeconds
            stat.proxiedRequestCount = report.proxiedRequestCount / periodSeconds
        }
        latestStat = stat
        // Encoding a message of strings and doubles cannot fail; should it ever, the previous bytes stay.
        if let bytes: [UInt8] = try? stat.serializedBytes() {
            latestBytes = bytes
        }
        return stat
    }
}

extension Metrics_WireStatMessages {
    /// The activator's batch: one entry per revision with its namespace, name and stat.
    public init(_ entries: [(namespace: String, name: String, stat: Metrics_Stat)]) {
        self.init()
        messages = entries.map { entry in
            var message = Metrics_WireStatMessage()
            message.namespace = entry.namespace
            message.name = entry.name
            message.stat = entry.stat
            return message
        }
    }
}
