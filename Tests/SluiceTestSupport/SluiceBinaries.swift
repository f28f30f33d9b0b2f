// Test support, Sluice's binaries as child processes: `queue-proxy` with a Knative revision pod's
// environment on free ports, `sample-app`, and `sluice proxy`; each started, awaited and stopped by PID.
import Foundation
import Glibc

/// The environment Knative's revision reconciler gives a queue-proxy container, on free ports.
public struct RevisionPodEnvironment: Sendable {
    public var servingPort: UInt16
    public var adminPort: UInt16
    public var metricsPort: UInt16
    public var userMetricsPort: UInt16
    public var userPort: UInt16
    public var variables: [String: String]

    public init(userPort: UInt16, containerConcurrency: Int = 0, extra: [String: String] = [:]) throws {
        servingPort = try freePort()
        adminPort = try freePort()
        metricsPort = try freePort()
        userMetricsPort = try freePort()
        self.userPort = userPort
        variables = [
            "SERVING_NAMESPACE": "default",
            "SERVING_SERVICE": "hello",
            "SERVING_CONFIGURATION": "hello",
            "SERVING_REVISION": "hello-00001",
            "SERVING_POD": "hello-00001-deployment-7d4b9c6f5-x2x9k",
            "SERVING_POD_IP": "127.0.0.1",
            "QUEUE_SERVING_PORT": String(servingPort),
            "QUEUE_SERVING_TLS_PORT": String(try freePort()),
            "USER_PORT": String(userPort),
            "CONTAINER_CONCURRENCY": String(containerConcurrency),
            "REVISION_TIMEOUT_SECONDS": "300",
            "REVISION_RESPONSE_START_TIMEOUT_SECONDS": "0",
            "REVISION_IDLE_TIMEOUT_SECONDS": "0",
            "SERVING_LOGGING_CONFIG": "",
            "SERVING_LOGGING_LEVEL": "info",
            "SERVING_READINESS_PROBE": "{\"tcpSocket\":{\"port\":\(userPort),\"host\":\"127.0.0.1\"},\"successThreshold\":1}",
            "ENABLE_HTTP_FULL_DUPLEX": "false",
            "ENABLE_HTTP2_AUTO_DETECTION": "false",
            "ENABLE_MULTI_CONTAINER_PROBES": "false",
            "HOST_IP": "127.0.0.1",
            "SYSTEM_NAMESPACE": "knative-serving",
            "SLUICE_BIND_ADDRESS": "127.0.0.1",
            "SLUICE_ADMIN_PORT": String(adminPort),
            "SLUICE_METRICS_PORT": String(metricsPort),
            "SLUICE_USER_METRICS_PORT": String(userMetricsPort),
            // Short, so stopping a queue-proxy with SIGTERM (a graceful drain) keeps tests fast.
            "SLUICE_DRAIN_QUIET_PERIOD_SECONDS": "0.3",
        ]
        variables.merge(extra) { _, new in new }
    }
}

/// Starts `executable` and waits for a stderr line containing `readyLog`; stops it and throws with its
/// log if that line does not come.
private func startAndAwait(_ executable: String, arguments: [String] = [], environment: [String: String]?,
                           readyLog: String) throws -> ChildProcess {
    let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment)
    guard child.waitForLog(readyLog) else {
        child.stop(grace: .seconds(5))
        throw TestFailure("\(executable) did not start: \(child.stderr)")
    }
    return child
}

/// The real queue-proxy binary, started and listening.
public final class QueueProxyProcess {
    public let environment: RevisionPodEnvironment
    public let child: ChildProcess

    public init(_ environment: RevisionPodEnvironment, arguments: [String] = []) throws {
        self.environment = environment
        child = try startAndAwait("queue-proxy", arguments: arguments, environment: environment.variables,
                                  readyLog: "queue-proxy listening")
    }

    public var port: UInt16 { environment.servingPort }
    public var adminPort: UInt16 { environment.adminPort }
    public var metricsPort: UInt16 { environment.metricsPort }
    public var userMetricsPort: UInt16 { environment.userMetricsPort }

    /// SIGTERM (a graceful drain), SIGKILL after 5 s.
    public func stop() { child.stop(grace: .seconds(5)) }
    deinit { stop() }
}

/// The real sample-app binary, started and listening on `port`.
public final class SampleAppProcess {
    public let port: UInt16
    public let child: ChildProcess

    public init(port: UInt16, target: String? = nil) throws {
        self.port = port
        var environment = ["PORT": String(port), "SAMPLE_APP_HOST": "127.0.0.1", "SAMPLE_APP_LOOPS": "2"]
        if let target { environment["TARGET"] = target }
        child = try startAndAwait("sample-app", environment: environment, readyLog: "\"msg\":\"listening\"")
    }

    public func stop() { child.stop(grace: .seconds(5)) }
    deinit { stop() }
}

/// The real `sluice proxy` to 127.0.0.1:`upstreamPort`, on the port it reports in its listening log line.
public final class SluiceProxyProcess {
    public let child: ChildProcess
    public let port: UInt16

    public init(upstreamPort: UInt16, extraArguments: [String] = []) throws {
        child = try ChildProcess(executable: "sluice", arguments: ["proxy", "--listen", "127.0.0.1:0", "--upstream",
                                                                   "127.0.0.1:\(upstreamPort)", "--loops", "1"] + extraArguments)
        let line = child.line(in: .stderr) { $0.contains("\"msg\":\"listening\"") && $0.contains("\"port\":") }
        guard let line, let range = line.range(of: "\"port\":"),
              let found = UInt16(line[range.upperBound...].prefix { $0.isNumber }) else {
            child.stop(signal: SIGKILL)
            throw TestFailure("sluice proxy did not report listening: \(child.stderr)")
        }
        port = found
    }

    public var pid: Int32 { child.pid }
    /// Its stderr (JSON log lines).
    public var log: String { child.stderr }
    public var residentKiB: Int? { child.residentKiB }
    public func signal(_ signal: Int32) { child.signal(signal) }
    public func waitForExit(timeout: Duration = .seconds(20)) -> Int32? { child.waitForExit(timeout: timeout) }
    /// SIGTERM, SIGKILL after 5 s.
    public func stop() { child.stop(grace: .seconds(5)) }
    deinit { stop() }
}
