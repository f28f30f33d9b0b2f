// End-to-end test support: the real `queue-proxy` and `sample-app` binaries as child processes with a
// Knative revision pod's environment on free ports, each stopped by PID.
import Foundation
import Glibc
import Synchronization

struct E2EError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A port nobody listens on right now: bound without SO_REUSEPORT on 127.0.0.1:0, then released.
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw E2EError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw E2EError("bind: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw E2EError("getsockname: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

/// Where `swift build` put an executable of this package (next to the test bundle).
func executablePath(_ name: String) throws -> String {
    var candidates: [String] = []
    var directory = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").deletingLastPathComponent()
    for _ in 0 ..< 4 {
        candidates.append(directory.appendingPathComponent(name).path)
        directory = directory.deletingLastPathComponent()
    }
    candidates.append(FileManager.default.currentDirectoryPath + "/.build/debug/\(name)")
    for path in candidates where FileManager.default.isExecutableFile(atPath: path) { return path }
    throw E2EError("\(name) executable not found (tried \(candidates)); run `swift build` first")
}

/// A child process with its stdout and stderr in temporary files.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let process = Process()
    let stdoutPath: String
    let stderrPath: String

    init(executable: String, arguments: [String] = [], environment: [String: String]) throws {
        name = executable
        let stem = NSTemporaryDirectory() + "sluice-e2e-\(executable)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        stdoutPath = stem + ".out"
        stderrPath = stem + ".err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: try executablePath(executable))
        process.arguments = arguments
        // Only what the test gives: no inherited variable can change the configuration.
        var env = environment
        env["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        process.environment = env
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(pid, signal) }
    }

    /// The exit status, or nil if still running after `timeout`.
    func waitForExit(timeout: Duration) -> Int32? {
        let end = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < end { usleep(5_000) }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    /// Waits until stderr contains `text` (or the process exits).
    func waitForLog(_ text: String, timeout: Duration = .seconds(20)) -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if stderr.contains(text) { return true }
            if !process.isRunning { return stderr.contains(text) }
            usleep(10_000)
        }
        return false
    }

    /// Stops the child by PID: SIGTERM, then SIGKILL if it has not exited after `grace`.
    func stop(grace: Duration = .seconds(5)) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        if waitForExit(timeout: grace) == nil {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    func removeFiles() {
        try? FileManager.default.removeItem(atPath: stdoutPath)
        try? FileManager.default.removeItem(atPath: stderrPath)
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        removeFiles()
    }
}

/// The environment Knative's revision reconciler gives a queue-proxy container, on free ports.
struct RevisionPodEnvironment {
    var servingPort: UInt16
    var adminPort: UInt16
    var metricsPort: UInt16
    var userMetricsPort: UInt16
    var userPort: UInt16
    var variables: [String: String]

    init(userPort: UInt16, containerConcurrency: Int = 0, extra: [String: String] = [:]) throws {
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

/// The real queue-proxy binary, started and listening.
final class QueueProxyProcess {
    let environment: RevisionPodEnvironment
    let child: ChildProcess

    init(_ environment: RevisionPodEnvironment, arguments: [String] = []) throws {
        self.environment = environment
        child = try ChildProcess(executable: "queue-proxy", arguments: arguments, environment: environment.variables)
        guard child.waitForLog("queue-proxy listening") else {
            let log = child.stderr
            child.stop()
            throw E2EError("queue-proxy did not start: \(log)")
        }
    }

    var port: UInt16 { environment.servingPort }
    var adminPort: UInt16 { environment.adminPort }
    var metricsPort: UInt16 { environment.metricsPort }
    var userMetricsPort: UInt16 { environment.userMetricsPort }

    func stop() { child.stop() }
    deinit { child.stop() }
}

/// The real sample-app binary, started and listening on `port`.
final class SampleAppProcess {
    let port: UInt16
    let child: ChildProcess

    init(port: UInt16, target: String? = nil) throws {
        self.port = port
        var environment = ["PORT": String(port), "SAMPLE_APP_HOST": "127.0.0.1", "SAMPLE_APP_LOOPS": "2"]
        if let target { environment["TARGET"] = target }
        child = try ChildProcess(executable: "sample-app", environment: environment)
        guard child.waitForLog("\"msg\":\"listening\"") else {
            let log = child.stderr
            child.stop()
            throw E2EError("sample-app did not start: \(log)")
        }
    }

    func stop() { child.stop() }
    deinit { child.stop() }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
@discardableResult
func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// Seconds elapsed since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
