// End-to-end: queue-proxy's configuration at the edge: Knative's environment, the same settings as flags,
// one clear error naming every missing or invalid variable, Sluice's port overrides.
import Foundation
import Glibc
import Testing
import SluiceTestSupport

extension EndToEnd {
    @Suite("queue-proxy configuration", .timeLimit(.minutes(1)))
    struct Configuration {
        @Test("missing required variables stop queue-proxy with one error naming all of them, exit status 1")
        func missingVariables() throws {
            let child = try ChildProcess(executable: "queue-proxy", environment: [
                "SERVING_NAMESPACE": "default", "USER_PORT": "8080", "CONTAINER_CONCURRENCY": "0",
            ])
            #expect(child.waitForExit(timeout: .seconds(10)) == 1)
            let message = child.stderr
            #expect(message.contains("missing required environment variables:"))
            for name in ["SERVING_CONFIGURATION", "SERVING_REVISION", "SERVING_POD", "SERVING_POD_IP", "QUEUE_SERVING_PORT",
                         "QUEUE_SERVING_TLS_PORT", "REVISION_TIMEOUT_SECONDS", "SERVING_LOGGING_CONFIG", "SERVING_LOGGING_LEVEL"] {
                #expect(message.contains(name), "\(name) in \(message)")
            }
            #expect(!message.contains("SERVING_NAMESPACE,"))
        }

        @Test("invalid values are named with the variable and the value")
        func invalidValues() throws {
            var environment = try RevisionPodEnvironment(userPort: 8080)
            environment.variables["CONTAINER_CONCURRENCY"] = "-3"
            environment.variables["SERVING_READINESS_PROBE"] = "{\"exec\":{\"command\":[\"true\"]}}"
            environment.variables["SLUICE_ADMIN_PORT"] = "70000"
            let child = try ChildProcess(executable: "queue-proxy", environment: environment.variables)
            #expect(child.waitForExit(timeout: .seconds(10)) == 1)
            let message = child.stderr
            #expect(message.contains("CONTAINER_CONCURRENCY=\"-3\""), "\(message)")
            #expect(message.contains("SERVING_READINESS_PROBE"))
            #expect(message.contains("SLUICE_ADMIN_PORT=\"70000\""))
        }

        @Test("flags carry the same settings as the environment and override it")
        func flags() throws {
            let appPort = try freePort()
            let app = try SampleAppProcess(port: appPort)
            defer { app.stop() }
            let environment = try RevisionPodEnvironment(userPort: appPort)
            var arguments: [String] = []
            for (name, value) in environment.variables.sorted(by: { $0.key < $1.key }) {
                arguments += ["--" + name.lowercased().replacingOccurrences(of: "_", with: "-"), value]
            }
            arguments += ["--container-concurrency=1"]
            // Only a bad value in the environment: the flag wins.
            let child = try ChildProcess(executable: "queue-proxy", arguments: arguments, environment: ["CONTAINER_CONCURRENCY": "bad"])
            defer { child.stop() }
            #expect(child.waitForLog("queue-proxy listening"), "\(child.stderr)")
            #expect(child.stderr.contains("\"breaker_capacity\":1"))
            let response = try httpRequest(port: environment.servingPort, "GET", "/")
            #expect(response.status == 200)
            #expect(response.bodyText == "Hello World!\n")
            #expect(try httpRequest(port: environment.adminPort, "GET", "/nothing").status == 404)
            #expect(try httpRequest(port: environment.metricsPort, "GET", "/metrics").status == 200)
            #expect(try httpRequest(port: environment.userMetricsPort, "GET", "/metrics").status == 200)

            let unknown = try ChildProcess(executable: "queue-proxy", arguments: ["--no-such-option", "1"], environment: [:])
            #expect(unknown.waitForExit(timeout: .seconds(10)) == 2)
            #expect(unknown.stderr.contains("unknown option '--no-such-option'"))
        }
    }

    @Suite("sample-app", .timeLimit(.minutes(1)))
    struct SampleApp {
        @Test("hello $TARGET on $PORT; sleep, prime and bloat do their work; bad values get a 400 naming the parameter")
        func sampleApp() throws {
            let port = try freePort()
            let app = try SampleAppProcess(port: port, target: "Sluice")
            defer { app.stop() }

            #expect(try httpRequest(port: port, "GET", "/").bodyText == "Hello Sluice!\n")
            let start = ContinuousClock.now
            let slept = try httpRequest(port: port, "GET", "/?sleep=300")
            #expect(seconds(since: start) >= 0.29)
            #expect(slept.bodyText == "Hello Sluice!\nSlept for 300 ms.\n")
            #expect(try httpRequest(port: port, "GET", "/?prime=1000").bodyText == "Hello Sluice!\nThe largest prime <= 1000 is 997.\n")
            #expect(try httpRequest(port: port, "GET", "/?prime=1").bodyText == "Hello Sluice!\nThere is no prime <= 1.\n")
            #expect(try httpRequest(port: port, "GET", "/x?bloat=8&prime=100&sleep=10").bodyText
                == "Hello Sluice!\nAllocated 8 MiB.\nThe largest prime <= 100 is 97.\nSlept for 10 ms.\n")

            // A sleeping request does not hold up the loop.
            let sleeper = try HTTPTestClient(port: port)
            try sleeper.sendRequest("GET", "/?sleep=1500")
            let quickStart = ContinuousClock.now
            #expect(try httpRequest(port: port, "GET", "/").status == 200)
            #expect(seconds(since: quickStart) < 1.0)
            #expect(try sleeper.readResponse().status == 200)

            for (query, parameter) in [("sleep=abc", "sleep"), ("sleep=-1", "sleep"), ("prime=0", "prime"),
                                       ("prime=99999999999999999999", "prime"), ("bloat=100000", "bloat"), ("bloat=", "bloat")] {
                let response = try httpRequest(port: port, "GET", "/?\(query)")
                #expect(response.status == 400, "\(query)")
                #expect(response.bodyText.hasPrefix("invalid value for '\(parameter)'"), "\(query): \(response.bodyText)")
            }
        }

        @Test("SIGTERM drains in-flight requests and exits 0")
        func sampleAppDrains() throws {
            let port = try freePort()
            let app = try SampleAppProcess(port: port)
            let connection = try HTTPTestClient(port: port)
            try connection.sendRequest("GET", "/?sleep=800")
            usleep(100_000)
            app.child.signal(SIGTERM)
            #expect(try connection.readResponse().status == 200)
            #expect(app.child.waitForExit(timeout: .seconds(5)) == 0)
        }
    }
}
