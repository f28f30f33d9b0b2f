// Test support: an in-process HTTPServer on its own EventLoopGroup (reverse proxy or custom handler),
// and the real `sluice proxy` binary as a child process, stopped by PID.
import Foundation
import Glibc
import Synchronization
@testable import SluiceCore

/// An HTTPServer on a fresh group, for one test.
final class InProcessProxy {
    let group: EventLoopGroup
    let server: HTTPServer
    var port: UInt16 { server.localAddress.port }

    init(loops: Int = 1, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
         makeHandler: @escaping @Sendable (EventLoop) -> any HTTPHandler) throws {
        group = try EventLoopGroup(loopCount: loops)
        do {
            server = try HTTPServer.start(on: group, address: .loopback(port: 0), configuration: configuration, makeHandler: makeHandler)
        } catch {
            group.shutdown()
            throw error
        }
    }

    /// A reverse proxy to 127.0.0.1:`upstreamPort`.
    convenience init(upstreamPort: UInt16, loops: Int = 1, configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
                     client: HTTPClientConfiguration = HTTPClientConfiguration(), timeouts: HTTPRequestTimeouts = HTTPRequestTimeouts()) throws {
        let upstream = HTTPUpstream(address: .loopback(port: upstreamPort), configuration: client)
        try self.init(loops: loops, configuration: configuration) { _ in ReverseProxyHandler(upstream: upstream, timeouts: timeouts) }
    }

    var statistics: HTTPServerStatistics {
        var total = HTTPServerStatistics()
        for s in server.statistics() {
            total.connections += s.connections
            total.accepted += s.accepted
            total.limitPauses += s.limitPauses
            total.tunnels += s.tunnels
            total.upstream.connectsStarted += s.upstream.connectsStarted
            total.upstream.reuses += s.upstream.reuses
            total.upstream.idle += s.upstream.idle
            total.upstream.idleClosedByPeer += s.upstream.idleClosedByPeer
            total.upstream.retries += s.upstream.retries
        }
        return total
    }

    func stop() { group.shutdown() }
}

/// Where `swift build` put the `sluice` executable (next to the test bundle).
func sluiceExecutablePath() throws -> String {
    var candidates: [String] = []
    if let env = ProcessInfo.processInfo.environment["SLUICE_BIN"] { candidates.append(env) }
    var directory = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").deletingLastPathComponent()
    for _ in 0 ..< 4 {
        candidates.append(directory.appendingPathComponent("sluice").path)
        directory = directory.deletingLastPathComponent()
    }
    let cwd = FileManager.default.currentDirectoryPath
    candidates.append(cwd + "/.build/debug/sluice")
    for path in candidates where FileManager.default.isExecutableFile(atPath: path) { return path }
    throw HTTPTestError("sluice executable not found (tried \(candidates)); run `swift build` first")
}

/// The real `sluice proxy` as a child process. Its stderr goes to a file the test can read.
final class SluiceProxyProcess {
    let process: Process
    let port: UInt16
    let logPath: String
    var pid: Int32 { process.processIdentifier }

    init(upstreamPort: UInt16, extraArguments: [String] = []) throws {
        logPath = NSTemporaryDirectory() + "sluice-proxy-test-\(getpid())-\(UInt32.random(in: 0 ... .max)).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process = Process()
        process.executableURL = URL(fileURLWithPath: try sluiceExecutablePath())
        process.arguments = ["proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:\(upstreamPort)", "--loops", "1"] + extraArguments
        process.standardError = log
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var found: UInt16?
        let deadline = ContinuousClock.now + .seconds(20)
        while found == nil && ContinuousClock.now < deadline && process.isRunning {
            if let text = try? String(contentsOfFile: logPath, encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.contains("\"msg\":\"listening\"") }),
               let range = line.range(of: "\"port\":") {
                let digits = line[range.upperBound...].prefix { $0.isNumber }
                found = UInt16(digits)
            }
            if found == nil { usleep(20_000) }
        }
        guard let found else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw HTTPTestError("sluice proxy did not report listening: \(text)")
        }
        port = found
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) { if process.isRunning { kill(pid, signal) } }

    /// Waits for exit; returns the status, or nil if still running after `timeout`.
    func waitForExit(timeout: Duration = .seconds(20)) -> Int32? {
        let end = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < end { usleep(10_000) }
        if process.isRunning { return nil }
        return process.terminationStatus
    }

    /// VmRSS of the child in KiB.
    var residentKiB: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }

    /// Stops the child by PID (SIGKILL if it does not exit after SIGTERM) and removes its log.
    func stop() {
        if process.isRunning {
            kill(pid, SIGTERM)
            if waitForExit(timeout: .seconds(5)) == nil {
                kill(pid, SIGKILL)
                process.waitUntilExit()
            }
        }
        try? FileManager.default.removeItem(atPath: logPath)
    }

    deinit { stop() }
}
