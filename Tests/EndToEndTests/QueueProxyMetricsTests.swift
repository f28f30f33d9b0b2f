// End-to-end: the autoscaler's Stat on the metrics port (protobuf, checked with protoc against the load
// sent) and the Prometheus request metrics on the user metrics port.
import Foundation
import Glibc
import Testing
import SluiceTestSupport

extension EndToEnd {
    @Suite("queue-proxy metrics", .timeLimit(.minutes(1)))
    struct Metrics {
        static func scrapeStat(_ proxy: QueueProxyProcess) throws -> (DecodedStat, HTTPTestMessage) {
            let response = try httpRequest(port: proxy.metricsPort, "GET", "/metrics")
            return (DecodedStat(try protocDecode(bytes: response.body)), response)
        }

        @Test("the Stat port answers /metrics with protobuf (only pod_name and process_uptime when idle) and 404 elsewhere")
        func idleStat() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort))
            defer { proxy.stop(); app.stop() }

            // Probes are not requests: they must not show up in the Stat.
            _ = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders)
            var stat = DecodedStat("")
            #expect(eventually(timeout: .seconds(5)) {
                guard let scraped = try? Self.scrapeStat(proxy) else { return false }
                stat = scraped.0
                return stat.fields["process_uptime"] != nil
            })
            #expect(Set(stat.fields.keys) == ["pod_name", "process_uptime"], "\(stat.fields)")
            #expect(stat.fields["pod_name"] == "hello-00001-deployment-7d4b9c6f5-x2x9k")
            let (_, response) = try Self.scrapeStat(proxy)
            #expect(response.status == 200)
            #expect(response.field("Content-Type") == "application/protobuf")

            for path in ["/", "/metric", "/metrics/x", "/healthz"] {
                #expect(try httpRequest(port: proxy.metricsPort, "GET", path).status == 404, "\(path)")
            }
        }

        @Test("the Stat decoded by protoc matches the load sent: concurrency within 5%, request counts exact")
        func statMatchesLoad() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort))
            defer { proxy.stop(); app.stop() }

            // Start right after a report, so every report of the load window is seen with its predecessor.
            var last = try Self.scrapeStat(proxy).0.number("process_uptime")
            #expect(eventually(timeout: .seconds(3)) {
                let uptime = (try? Self.scrapeStat(proxy).0.number("process_uptime")) ?? last
                defer { last = uptime }
                return uptime != last && uptime > 0
            })
            var reports: [DecodedStat] = [try Self.scrapeStat(proxy).0]

            // 10 requests of 3.5 s, 4 of them through the activator; a probe meanwhile.
            var connections: [HTTPTestClient] = []
            for index in 0 ..< 10 {
                let connection = try HTTPTestClient(port: proxy.port)
                let headers = index < 4 ? [("K-Proxy-Request", "activator")] : []
                try connection.sendRequest("GET", "/?sleep=3500", headers: headers)
                connections.append(connection)
            }
            _ = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders)
            let deadline = ContinuousClock.now + .milliseconds(5600)
            while ContinuousClock.now < deadline {
                let stat = try Self.scrapeStat(proxy).0
                if stat.number("process_uptime") != reports.last?.number("process_uptime") { reports.append(stat) }
                usleep(200_000)
            }
            for connection in connections { #expect(try connection.readResponse().status == 200) }

            // Counts are per second over a one-second period: their sum is the number of requests.
            let requests = reports.dropFirst().reduce(0) { $0 + $1.number("request_count") }
            let proxied = reports.dropFirst().reduce(0) { $0 + $1.number("proxied_request_count") }
            #expect(requests == 10, "\(reports.map(\.fields))")
            #expect(proxied == 4)
            // Concurrency integrated over the reports = 10 requests × 3.5 s (4 × 3.5 s proxied), within 5%.
            var concurrencySeconds = 0.0
            var proxiedSeconds = 0.0
            for (previous, report) in zip(reports, reports.dropFirst()) {
                let period = report.number("process_uptime") - previous.number("process_uptime")
                concurrencySeconds += report.number("average_concurrent_requests") * period
                proxiedSeconds += report.number("average_proxied_concurrent_requests") * period
            }
            #expect(abs(concurrencySeconds - 35) <= 35 * 0.05, "concurrency-seconds \(concurrencySeconds)")
            #expect(abs(proxiedSeconds - 14) <= 14 * 0.05, "proxied concurrency-seconds \(proxiedSeconds)")
            // A period entirely inside the load reports the concurrency itself.
            #expect(reports.contains { abs($0.number("average_concurrent_requests") - 10) <= 0.5
                && abs($0.number("average_proxied_concurrent_requests") - 4) <= 0.2 }, "\(reports.map(\.fields))")
            #expect(reports.allSatisfy { $0.fields["timestamp"] == nil })
        }

        @Test("the user metrics port serves Prometheus request counts and latencies by response code, and the queue depth")
        func prometheusMetrics() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, containerConcurrency: 2))
            defer { proxy.stop(); app.stop() }

            for _ in 0 ..< 3 { #expect(try httpRequest(port: proxy.port, "GET", "/").status == 200) }
            #expect(try httpRequest(port: proxy.port, "GET", "/?sleep=x").status == 400)
            _ = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders)

            let response = try httpRequest(port: proxy.userMetricsPort, "GET", "/metrics")
            #expect(response.status == 200)
            #expect(response.field("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
            let text = response.bodyText
            let labels = "configuration_name=\"hello\",container_name=\"queue-proxy\",namespace_name=\"default\",pod_name=\"hello-00001-deployment-7d4b9c6f5-x2x9k\""
            #expect(text.contains("revision_request_count{\(labels),response_code=\"200\",response_code_class=\"2xx\",revision_name=\"hello-00001\",service_name=\"hello\"} 3"), "\(text)")
            #expect(text.contains("revision_request_count{\(labels),response_code=\"400\",response_code_class=\"4xx\",revision_name=\"hello-00001\",service_name=\"hello\"} 1"))
            #expect(text.contains("revision_app_request_count{\(labels),response_code=\"200\",response_code_class=\"2xx\",revision_name=\"hello-00001\",service_name=\"hello\"} 3"))
            #expect(text.contains("revision_request_latencies_bucket{"))
            #expect(text.contains("revision_queue_depth{\(labels),revision_name=\"hello-00001\",service_name=\"hello\"} 0"))
            #expect(try httpRequest(port: proxy.userMetricsPort, "GET", "/other").status == 404)
        }
    }
}
