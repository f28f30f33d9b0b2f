// End-to-end: Knative's three revision timeouts (reliability.md L8): within limits 200; the revision
// timeout, the response-start timeout and the idle timeout answer 504 `request timeout` before the
// response started; after it started the status stays and the timeout text is appended.
import Foundation
import Glibc
import Testing
import SluiceTestSupport

extension EndToEnd {
    @Suite("queue-proxy revision timeouts", .timeLimit(.minutes(1)))
    struct Timeouts {
        static func proxy(appPort: UInt16, total: Int, responseStart: Int = 0, idle: Int = 0) throws -> QueueProxyProcess {
            try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort, extra: [
                "REVISION_TIMEOUT_SECONDS": String(total),
                "REVISION_RESPONSE_START_TIMEOUT_SECONDS": String(responseStart),
                "REVISION_IDLE_TIMEOUT_SECONDS": String(idle),
            ]))
        }

        @Test("the revision timeout answers 504 request timeout; a request within it gets 200")
        func revisionTimeout() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try Self.proxy(appPort: appPort, total: 1)
            defer { proxy.stop(); app.stop() }

            #expect(try httpRequest(port: proxy.port, "GET", "/?sleep=100").status == 200)
            let start = ContinuousClock.now
            let late = try httpRequest(port: proxy.port, "GET", "/?sleep=2500")
            let elapsed = seconds(since: start)
            #expect(late.status == 504)
            #expect(late.bodyText == "request timeout")
            #expect(elapsed >= 0.95 && elapsed < 2.0, "504 after \(elapsed) s")
        }

        @Test("the response-start timeout answers 504 request timeout")
        func responseStartTimeout() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try Self.proxy(appPort: appPort, total: 10, responseStart: 1)
            defer { proxy.stop(); app.stop() }

            #expect(try httpRequest(port: proxy.port, "GET", "/?sleep=200").status == 200)
            let start = ContinuousClock.now
            let late = try httpRequest(port: proxy.port, "GET", "/?sleep=2500")
            #expect(late.status == 504)
            #expect(late.bodyText == "request timeout")
            #expect(seconds(since: start) < 2.0)
        }

        @Test("the idle timeout also runs before the first byte: 504 request timeout")
        func idleTimeoutBeforeFirstByte() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try Self.proxy(appPort: appPort, total: 10, idle: 1)
            defer { proxy.stop(); app.stop() }

            #expect(try httpRequest(port: proxy.port, "GET", "/?sleep=200").status == 200)
            let late = try httpRequest(port: proxy.port, "GET", "/?sleep=2500")
            #expect(late.status == 504)
            #expect(late.bodyText == "request timeout")
        }

        @Test("after the response started, the idle timeout keeps the 200 and appends request timeout to the body")
        func idleTimeoutAfterStreamingStarted() throws {
            let app = try ScriptedBackend { connection in
                guard try connection.readRequest() != nil else { return }
                try connection.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n")
                usleep(3_000_000) // stalls longer than the idle timeout
            }
            defer { app.stop() }
            let proxy = try Self.proxy(appPort: app.port, total: 10, idle: 1)
            defer { proxy.stop() }

            let response = try httpRequest(port: proxy.port, "GET", "/stream")
            #expect(response.status == 200)
            #expect(response.bodyText == "hello request timeout")
            #expect(response.field("Content-Type") == "text/plain")
        }
    }
}
