import Foundation
import SwiftProtobuf
import Testing
@testable import SluiceCore
import SluiceTestSupport

@Suite("Request statistics and the Stat", .timeLimit(.minutes(1)))
struct ServingStatsTests {
    @Test("two requests of 500 ms each in a 1 s window average a concurrency of 1")
    func timeWeightedAverage() {
        var stats = RequestStatistics(startedAt: at(0))
        stats.requestStarted(at: at(0), proxied: false)
        stats.requestFinished(at: at(500), proxied: false)
        stats.requestStarted(at: at(500), proxied: false)
        stats.requestFinished(at: at(1000), proxied: false)
        let report = stats.report(at: at(1000))
        #expect(report == RequestStatisticsReport(averageConcurrency: 1, averageProxiedConcurrency: 0, requestCount: 2, proxiedRequestCount: 0))
    }

    @Test("proxied requests count in both the plain and the proxied figures")
    func proxiedRequests() {
        var stats = RequestStatistics(startedAt: at(0))
        stats.requestStarted(at: at(0), proxied: true)
        stats.requestStarted(at: at(0), proxied: false)
        stats.requestFinished(at: at(250), proxied: true)
        let report = stats.report(at: at(1000))
        #expect(report.requestCount == 2)
        #expect(report.proxiedRequestCount == 1)
        #expect(report.averageConcurrency == 1.25)
        #expect(report.averageProxiedConcurrency == 0.25)
    }

    @Test("in-flight requests carry over into the next window; counts restart")
    func concurrencyCarriesOver() {
        var stats = RequestStatistics(startedAt: at(0))
        stats.requestStarted(at: at(0), proxied: false)
        stats.requestStarted(at: at(0), proxied: false)
        #expect(stats.report(at: at(1000)).averageConcurrency == 2)
        let second = stats.report(at: at(2000))
        #expect(second.averageConcurrency == 2)
        #expect(second.requestCount == 0)
        stats.requestFinished(at: at(2500), proxied: false)
        #expect(stats.report(at: at(3000)).averageConcurrency == 1.5)
        #expect(stats.concurrency == 1)
    }

    @Test("an idle window reports zeros; a clock step backwards is ignored")
    func idleAndBackwardsTime() {
        var stats = RequestStatistics(startedAt: at(1000))
        #expect(stats.report(at: at(2000)) == RequestStatisticsReport())
        stats.requestStarted(at: at(1500), proxied: false)
        #expect(stats.report(at: at(3000)).averageConcurrency == 1)
    }

    @Test("reports of several event loops add up")
    func mergeLoops() {
        let a = RequestStatisticsReport(averageConcurrency: 1.5, averageProxiedConcurrency: 0.5, requestCount: 3, proxiedRequestCount: 1)
        let b = RequestStatisticsReport(averageConcurrency: 0.5, averageProxiedConcurrency: 0, requestCount: 2, proxiedRequestCount: 0)
        #expect(a + b == RequestStatisticsReport(averageConcurrency: 2, averageProxiedConcurrency: 0.5, requestCount: 5, proxiedRequestCount: 1))
    }

    @Test("before the first report the Stat carries only the pod name")
    func initialStat() throws {
        let reporter = PodStatReporter(podName: "pod-1", startedAt: at(0))
        #expect(reporter.latestBytes == [0x0A, 0x05] + Array("pod-1".utf8))
        #expect(try Metrics_Stat(serializedBytes: reporter.latestBytes) == reporter.latestStat)
    }

    @Test("request counts become rates per second of the reporting period; uptime counts from start")
    func statFromReport() {
        var reporter = PodStatReporter(podName: "p", startedAt: at(1000), reportingPeriod: .seconds(2))
        let stat = reporter.record(
            RequestStatisticsReport(averageConcurrency: 3, averageProxiedConcurrency: 1, requestCount: 10, proxiedRequestCount: 4),
            at: at(3500))
        #expect(stat.podName == "p")
        #expect(stat.averageConcurrentRequests == 3)
        #expect(stat.averageProxiedConcurrentRequests == 1)
        #expect(stat.requestCount == 5)
        #expect(stat.proxiedRequestCount == 2)
        #expect(stat.processUptime == 2.5)
        #expect(stat.timestamp == 0)
    }

    @Test("an idle Stat encodes only pod_name and process_uptime; timestamp is never set")
    func idleStatBytes() {
        var reporter = PodStatReporter(podName: "pod", startedAt: at(0))
        reporter.record(RequestStatisticsReport(), at: at(1500))
        // field 1 (string) then field 6 (double, wire type 1): 1.5 little-endian.
        let expected: [UInt8] = [0x0A, 0x03] + Array("pod".utf8) + [0x31] + withUnsafeBytes(of: (1.5).bitPattern.littleEndian, Array.init)
        #expect(reporter.latestBytes == expected)
    }

    @Test("protoc decodes the Stat bytes as metrics.Stat with Knative's field names")
    func protocDecodesStat() throws {
        var reporter = PodStatReporter(podName: "hello-00001-deployment-abc", startedAt: at(0))
        reporter.record(
            RequestStatisticsReport(averageConcurrency: 2.5, averageProxiedConcurrency: 0.75, requestCount: 12, proxiedRequestCount: 3),
            at: at(4000))
        let decoded = try protocDecode(type: "metrics.Stat", bytes: reporter.latestBytes)
        #expect(decoded == """
            pod_name: "hello-00001-deployment-abc"
            average_concurrent_requests: 2.5
            average_proxied_concurrent_requests: 0.75
            request_count: 12
            proxied_request_count: 3
            process_uptime: 4

            """)
    }

    @Test("protoc decodes the activator's WireStatMessages batch")
    func protocDecodesWireStats() throws {
        var stat = Metrics_Stat()
        stat.podName = "activator-1"
        stat.averageConcurrentRequests = 1
        let batch = Metrics_WireStatMessages([(namespace: "default", name: "hello-00001", stat: stat)])
        let bytes: [UInt8] = try batch.serializedBytes()
        let decoded = try protocDecode(type: "metrics.WireStatMessages", bytes: bytes)
        #expect(decoded == """
            messages {
              namespace: "default"
              name: "hello-00001"
              stat {
                pod_name: "activator-1"
                average_concurrent_requests: 1
              }
            }

            """)
    }
}
