// End-to-end: what the app receives through queue-proxy (forwarded headers, original host, pruned revision
// and hop-by-hop headers, trace context), what the client gets back, and the request log.
import Foundation
import Glibc
import Testing
import SluiceTestSupport

extension EndToEnd {
    @Suite("queue-proxy headers and request log", .timeLimit(.minutes(1)))
    struct Headers {
        static func echoApp() throws -> ScriptedBackend {
            try ScriptedBackend { connection in
                while try connection.readRequest() != nil {
                    try connection.respond(status: 200, fields: ["X-App: yes", "Content-Type: text/plain"], body: "seen")
                }
            }
        }

        @Test("the app gets Knative's forwarded headers and the original host, without revision or hop-by-hop headers")
        func whatTheAppReceives() throws {
            let app = try Self.echoApp()
            defer { app.stop() }
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: app.port))
            defer { proxy.stop() }

            let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            let response = try httpRequest(port: proxy.port, "GET", "/path?q=1", headers: [
                ("Host", "hello.default.example.com"),
                ("K-Original-Host", "hello.default.svc.cluster.local"),
                ("X-Forwarded-For", "10.0.0.1"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "hello.example.com"),
                ("Knative-Serving-Revision", "hello-00001"),
                ("Knative-Serving-Namespace", "default"),
                ("K-Proxy-Request", "activator"),
                ("traceparent", traceparent),
                ("tracestate", "vendor=value"),
                ("TE", "trailers"),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("Custom", "value"),
            ])
            #expect(response.status == 200)
            #expect(response.bodyText == "seen")
            #expect(response.field("X-App") == "yes")
            #expect(response.field("Content-Type") == "text/plain")

            let seen = try #require(app.requests.first)
            #expect(seen.target == "/path?q=1")
            #expect(seen.all("Host") == ["hello.default.svc.cluster.local"])
            #expect(seen.field("K-Original-Host") == nil)
            #expect(seen.all("X-Forwarded-For") == ["10.0.0.1, 127.0.0.1"])
            #expect(seen.all("Forwarded") == ["for=10.0.0.1;host=hello.example.com;proto=https"])
            #expect(seen.field("X-Forwarded-Proto") == "https")
            #expect(seen.field("X-Forwarded-Host") == "hello.example.com")
            #expect(seen.field("Knative-Serving-Revision") == nil)
            #expect(seen.field("Knative-Serving-Namespace") == nil)
            #expect(seen.field("K-Proxy-Request") == "activator")
            #expect(seen.field("traceparent") == traceparent)
            #expect(seen.field("tracestate") == "vendor=value")
            #expect(seen.field("TE") == "trailers")
            #expect(seen.field("X-Hop") == nil)
            #expect(seen.field("Keep-Alive") == nil)
            #expect(seen.field("Custom") == "value")
        }

        @Test("an existing Forwarded header is left as is; an IPv6 X-Forwarded-For is quoted in a synthesised one")
        func forwardedShim() throws {
            let app = try Self.echoApp()
            defer { app.stop() }
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: app.port))
            defer { proxy.stop() }

            _ = try httpRequest(port: proxy.port, "GET", "/a", headers: [("Forwarded", "for=192.0.2.60;proto=http"), ("X-Forwarded-For", "10.0.0.1")])
            _ = try httpRequest(port: proxy.port, "GET", "/b", headers: [("X-Forwarded-For", "2001:db8::1")])
            _ = try httpRequest(port: proxy.port, "GET", "/c")
            let requests = app.requests
            #expect(requests.count == 3)
            #expect(requests[0].all("Forwarded") == ["for=192.0.2.60;proto=http"])
            #expect(requests[1].all("Forwarded") == ["for=\"[2001:db8::1]\""])
            #expect(requests[2].all("Forwarded") == [])
            #expect(requests[2].all("X-Forwarded-For") == ["127.0.0.1"])
            #expect(requests[2].all("Host") == ["hello.default.example.com"])
        }

        @Test("request logs: one line per request from the revision's template on stdout, probes left out")
        func requestLog() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let template = #"{"method": "{{.Request.Method}}", "uri": "{{.Request.RequestURI}}", "agent": "{{js .Request.UserAgent}}", "code": {{.Response.Code}}, "size": {{.Response.Size}}, "revision": "{{.Revision.Name}}", "namespace": "{{.Revision.Namespace}}", "pod": "{{.Revision.PodName}}", "trace": "{{.TraceID}}"}"#
            let observability = try String(decoding: JSONSerialization.data(withJSONObject: [
                "enableRequestLog": true, "requestLogTemplate": template,
            ]), as: UTF8.self)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: ["OBSERVABILITY_CONFIG": observability]))
            defer { proxy.stop(); app.stop() }

            _ = try httpRequest(port: proxy.port, "GET", "/hello?x=1", headers: [
                ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                ("User-Agent", "curl/8 \"quoted\" <tag>"),
            ])
            _ = try httpRequest(port: proxy.port, "GET", "/", headers: kubeletProbeHeaders)
            _ = try httpRequest(port: proxy.port, "POST", "/?sleep=bad", body: "abc")
            var lines: [String] = []
            #expect(eventually(timeout: .seconds(5)) {
                lines = proxy.child.stdout.split(separator: "\n").map(String.init)
                return lines.count >= 2
            })
            usleep(200_000)
            lines = proxy.child.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 2, "\(lines)")
            // `js` escapes like Go's text/template: quotes and angle brackets become \" and \u003C/\u003E.
            #expect(lines.first == #"{"method": "GET", "uri": "/hello?x=1", "agent": "curl/8 \"quoted\" \u003Ctag\u003E", "code": 200, "size": 13, "revision": "hello-00001", "namespace": "default", "pod": "hello-00001-deployment-7d4b9c6f5-x2x9k", "trace": "4bf92f3577b34da6a3ce929d0e0e4736"}"#)
            #expect(lines.last?.contains(#""method": "POST", "uri": "/?sleep=bad", "agent": "", "code": 400"#) == true, "\(lines)")
        }

        @Test("the default request-log template writes Knative's JSON line")
        func defaultRequestLogTemplate() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: [
                "OBSERVABILITY_CONFIG": #"{"enableRequestLog": true}"#,
            ]))
            defer { proxy.stop(); app.stop() }

            _ = try httpRequest(port: proxy.port, "GET", "/", headers: [("User-Agent", "e2e-test")])
            var line = ""
            #expect(eventually(timeout: .seconds(5)) {
                line = proxy.child.stdout.split(separator: "\n").first.map(String.init) ?? ""
                return !line.isEmpty
            })
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let http = try #require(object["httpRequest"] as? [String: Any])
            #expect(http["requestMethod"] as? String == "GET")
            #expect(http["status"] as? Int == 200)
            #expect(http["userAgent"] as? String == "e2e-test")
            #expect(http["serverIp"] as? String == "127.0.0.1")
            #expect(http["protocol"] as? String == "HTTP/1.1")
        }
    }
}
