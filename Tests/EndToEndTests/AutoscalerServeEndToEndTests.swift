// End-to-end: the real `autoscaler serve` scraping a real queue-proxy (in front of the real sample-app)
// on 127.0.0.1: load raises the desired scale seen on the status API; idle, the revision reaches zero
// after its (short) stable window and grace period; SIGTERM exits 0. Bad input exits 1 with file:line.
import Foundation
import Glibc
import SluiceTestSupport
import Synchronization
import Testing

/// The real autoscaler binary in `serve` mode, started and serving.
final class AutoscalerProcess {
    let child: ChildProcess
    let statusPort: UInt16

    init(arguments: [String]) throws {
        statusPort = try freePort()
        child = try ChildProcess(executable: "autoscaler",
                                 arguments: ["serve", "--status-port", String(statusPort),
                                             "--stats-port", String(try freePort()), "--stats-host", "127.0.0.1"]
                                             + arguments, environment: [:])
        guard child.waitForLog("autoscaler serving") else {
            let log = child.stderr
            child.stop()
            throw TestFailure("autoscaler did not start: \(log)")
        }
    }

    /// The status API's JSON for one revision.
    func status(_ namespace: String = "default", _ name: String = "hello-00001") throws -> [String: Any] {
        let response = try httpRequest(port: statusPort, "GET", "/revisions/\(namespace)/\(name)", timeout: .seconds(5))
        guard response.status == 200,
              let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw TestFailure("status API: \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        return object
    }

    deinit { child.stop() }
}

extension EndToEnd {
    @Suite("autoscaler serve", .timeLimit(.minutes(1)))
    struct AutoscalerServe {
        @Test("load through a real queue-proxy raises the desired scale; idle, the revision scales to zero after window and grace; SIGTERM exits 0")
        func scalesUpAndToZero() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            let proxy = try QueueProxyProcess(RevisionPodEnvironment(userPort: appPort))
            defer { proxy.stop(); app.stop() }
            let directory = try TemporaryDirectory()
            let config = try directory.file("config-autoscaler.yaml", """
                apiVersion: v1
                kind: ConfigMap
                metadata:
                  name: config-autoscaler
                  namespace: knative-serving
                data:
                  stable-window: "6s"
                  scale-to-zero-grace-period: "2s"
                """)
            let revisions = try directory.file("revisions.yaml", """
                revisions:
                  - namespace: default
                    name: hello-00001
                    annotations:
                      autoscaling.knative.dev/target: "1"
                    pods:
                      - name: hello-00001-deployment-7d4b9c6f5-x2x9k
                        address: "127.0.0.1:\(proxy.metricsPort)"
                        uptime: 1h
                """)
            let autoscaler = try AutoscalerProcess(arguments: ["--revisions", revisions, "--config", config])
            defer { autoscaler.child.stop() }

            // Scraping works before any load: a stat of the pod arrives.
            #expect(eventually(timeout: .seconds(10)) { ((try? autoscaler.status())?["lastScrape"] as? [String: Any]) != nil })

            // 6 clients keep a 400 ms request in flight each for 7 s: concurrency ~6 against T = 0.7.
            let servingPort = proxy.port
            let clients = (0 ..< 6).map { _ in
                Background<Int> {
                    let connection = try HTTPTestClient(port: servingPort)
                    var done = 0
                    let end = ContinuousClock.now + .seconds(7)
                    while ContinuousClock.now < end {
                        guard try connection.request("GET", "/?sleep=400").status == 200 else { break }
                        done += 1
                    }
                    return done
                }
            }
            var highest = -1
            let loadEnd = ContinuousClock.now + .seconds(7)
            while ContinuousClock.now < loadEnd {
                if let status = try? autoscaler.status(), let desired = status["desiredScale"] as? Int {
                    highest = max(highest, desired)
                }
                usleep(200_000)
            }
            let requests = try clients.map { try $0.wait(timeout: .seconds(10)) }.reduce(0, +)
            #expect(requests > 20)
            #expect(highest >= 3, "highest desired scale during load: \(highest)")
            let underLoad = try autoscaler.status()
            #expect((underLoad["replicas"] as? Int ?? 0) >= 3, "\(underLoad)")
            #expect(autoscaler.child.stderr.contains("\"msg\":\"scale changed\""))

            // Idle: panic ends and the stable average falls after one 6 s window, the PA goes inactive,
            // and the last pod goes after the 2 s grace period.
            var last: [String: Any] = [:]
            let reachedZero = eventually(timeout: .seconds(30)) {
                guard let status = try? autoscaler.status() else { return false }
                last = status
                return status["replicas"] as? Int == 0
            }
            #expect(reachedZero, "\(last)")
            #expect(last["desiredScale"] as? Int == 0)
            #expect(last["active"] as? String == "Inactive")
            #expect(last["lastScrapeError"] is NSNull)

            autoscaler.child.signal(SIGTERM)
            #expect(autoscaler.child.waitForExit(timeout: .seconds(10)) == 0)
        }

        @Test("SIGHUP re-reads the revisions file, a bad edit keeps the running revisions, SIGINT exits 0")
        func reloadOnHangup() throws {
            let directory = try TemporaryDirectory()
            let unused = try freePort()
            func revision(_ name: String) -> String {
                "  - name: \(name)\n    pods:\n      - {name: \(name)-pod, address: \"127.0.0.1:\(unused)\"}\n"
            }
            let path = try directory.file("revisions.yaml", "revisions:\n" + revision("first"))
            let autoscaler = try AutoscalerProcess(arguments: ["--revisions", path])
            defer { autoscaler.child.stop() }
            #expect(try autoscaler.status("default", "first")["name"] as? String == "first")
            // The pod refuses connections: the status says why.
            #expect(eventually(timeout: .seconds(10)) {
                ((try? autoscaler.status("default", "first"))?["lastScrapeError"] as? String)?.contains("Connection refused") == true
            })

            _ = try directory.file("revisions.yaml", "revisions:\n" + revision("first") + revision("second"))
            autoscaler.child.signal(SIGHUP)
            #expect(eventually(timeout: .seconds(10)) { (try? autoscaler.status("default", "second")) != nil })

            _ = try directory.file("revisions.yaml", "revisions:\n  - pods: []\n")
            autoscaler.child.signal(SIGHUP)
            #expect(autoscaler.child.waitForLog("revisions file not reloaded", timeout: .seconds(10)))
            #expect(autoscaler.child.stderr.contains("revisions[0].name: missing"))
            #expect((try? autoscaler.status("default", "second")) != nil)
            #expect((try? autoscaler.status("default", "first")) != nil)

            autoscaler.child.signal(SIGINT)
            #expect(autoscaler.child.waitForExit(timeout: .seconds(10)) == 0)
        }

        @Test("a bad revisions file stops the autoscaler with exit 1 and a message naming file, line and field")
        func badRevisionsFile() throws {
            let directory = try TemporaryDirectory()
            let revisions = try directory.file("revisions.yaml", """
                revisions:
                  - name: hello-00001
                    pods:
                      - name: a
                        address: "pod-a.default.svc:9090"
                """)
            let child = try ChildProcess(executable: "autoscaler", arguments: ["serve", "--revisions", revisions,
                                                                              "--status-port", String(try freePort()), "--stats-port", "0"],
                                         environment: [:])
            defer { child.stop() }
            #expect(child.waitForExit(timeout: .seconds(20)) == 1)
            #expect(child.stderr.contains("\(revisions):5: revisions[0].pods[0].address: invalid stats address 'pod-a.default.svc:9090'"),
                    "\(child.stderr)")
        }
    }
}
