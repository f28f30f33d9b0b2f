import Testing
@testable import SluiceCore

private let revision = RevisionIdentity(name: "r-1", namespace: "ns", service: "svc", configuration: "cfg", podName: "pod-1", podIP: "10.0.0.1")
private let labels = #"configuration_name="cfg",container_name="queue-proxy""#
private let tail = #"namespace_name="ns",pod_name="pod-1""#

@Suite("Prometheus request metrics", .timeLimit(.minutes(1)))
struct ServingMetricsTests {
    @Test("counts and histograms by response code, with Knative's names, labels and buckets")
    func exposition() {
        var requests = RequestMetricsTable()
        requests.record(status: 200, latency: .milliseconds(3))
        requests.record(status: 200, latency: .microseconds(7500))
        requests.record(status: 503, latency: .seconds(200))
        var app = RequestMetricsTable()
        app.record(status: 200, latency: .milliseconds(5))
        var output: [UInt8] = []
        PrometheusExposition.write(requests: requests, appRequests: app, queueDepth: 4, revision: revision, into: &output)
        let lines = text(output).split(separator: "\n").map(String.init)

        #expect(lines.contains("# TYPE revision_request_count counter"))
        #expect(lines.contains(#"revision_request_count{\#(labels),\#(tail),response_code="200",response_code_class="2xx",revision_name="r-1",service_name="svc"} 2"#))
        #expect(lines.contains(#"revision_request_count{\#(labels),\#(tail),response_code="503",response_code_class="5xx",revision_name="r-1",service_name="svc"} 1"#))
        #expect(lines.contains("# TYPE revision_request_latencies histogram"))
        #expect(lines.contains(#"revision_request_latencies_bucket{\#(labels),le="5",\#(tail),response_code="200",response_code_class="2xx",revision_name="r-1",service_name="svc"} 1"#))
        #expect(lines.contains(#"revision_request_latencies_bucket{\#(labels),le="10",\#(tail),response_code="200",response_code_class="2xx",revision_name="r-1",service_name="svc"} 2"#))
        #expect(lines.contains(#"revision_request_latencies_bucket{\#(labels),le="100000",\#(tail),response_code="503",response_code_class="5xx",revision_name="r-1",service_name="svc"} 0"#))
        #expect(lines.contains(#"revision_request_latencies_bucket{\#(labels),le="+Inf",\#(tail),response_code="503",response_code_class="5xx",revision_name="r-1",service_name="svc"} 1"#))
        #expect(lines.contains(#"revision_request_latencies_sum{\#(labels),\#(tail),response_code="200",response_code_class="2xx",revision_name="r-1",service_name="svc"} 10.5"#))
        #expect(lines.contains(#"revision_request_latencies_count{\#(labels),\#(tail),response_code="200",response_code_class="2xx",revision_name="r-1",service_name="svc"} 2"#))
        #expect(lines.contains(#"revision_app_request_count{\#(labels),\#(tail),response_code="200",response_code_class="2xx",revision_name="r-1",service_name="svc"} 1"#))
        #expect(lines.contains(#"revision_app_request_latencies_bucket{\#(labels),le="5",\#(tail),response_code="200",response_code_class="2xx",revision_name="r-1",service_name="svc"} 1"#), "a bound is inclusive")
        #expect(lines.contains("# TYPE revision_queue_depth gauge"))
        #expect(lines.contains(#"revision_queue_depth{\#(labels),\#(tail),revision_name="r-1",service_name="svc"} 4"#))
        #expect(lines.filter { $0.hasPrefix("revision_request_latencies_bucket") }.count == 2 * 27)
        #expect(PrometheusExposition.contentType == "text/plain; version=0.0.4; charset=utf-8")
    }

    @Test("without a breaker (CC 0) there is no queue depth gauge")
    func noQueueDepth() {
        var output: [UInt8] = []
        PrometheusExposition.write(requests: RequestMetricsTable(), appRequests: RequestMetricsTable(), queueDepth: nil, revision: revision, into: &output)
        #expect(!text(output).contains("revision_queue_depth"))
        #expect(text(output).contains("# TYPE revision_request_count counter"))
    }

    @Test("tables of several loops merge; label values are escaped")
    func mergeAndEscape() {
        var a = RequestMetricsTable()
        a.record(status: 200, latency: .milliseconds(1))
        var b = RequestMetricsTable()
        b.record(status: 200, latency: .milliseconds(1))
        b.record(status: 404, latency: .milliseconds(1))
        a.merge(b)
        #expect(a.count(status: 200) == 2)
        #expect(a.count(status: 404) == 1)
        #expect(a.statusCodes == [200, 404])
        var output: [UInt8] = []
        let odd = RevisionIdentity(name: "a\"b\\c\nd", namespace: "ns", service: "", configuration: "", podName: "p", podIP: "")
        PrometheusExposition.write(requests: a, appRequests: RequestMetricsTable(), queueDepth: nil, revision: odd, into: &output)
        #expect(text(output).contains(#"revision_name="a\"b\\c\nd""#))
    }

    @Test("codes beyond the table's capacity are counted as dropped, not lost silently")
    func capacity() {
        var table = RequestMetricsTable(maxDistinctCodes: 2)
        table.record(status: 200, latency: .zero)
        table.record(status: 201, latency: .zero)
        table.record(status: 202, latency: .zero)
        #expect(table.droppedSamples == 1)
        #expect(table.count(status: 202) == 0)
    }

    @Test("sums print as decimal milliseconds")
    func milliseconds() {
        var output: [UInt8] = []
        PrometheusExposition.appendMilliseconds(1_500_000, to: &output)
        output.append(UInt8(ascii: " "))
        PrometheusExposition.appendMilliseconds(2_000_001, to: &output)
        output.append(UInt8(ascii: " "))
        PrometheusExposition.appendMilliseconds(0, to: &output)
        #expect(text(output) == "1.5 2.000001 0")
    }
}
