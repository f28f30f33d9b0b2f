// Test support, child processes: this package's built executables started with a chosen environment,
// their output in temporary files, waits for a log line, and stops by PID (a signal, then SIGKILL).
import Foundation
import Glibc

/// Where `swift build` put executable `name` of this package: next to the test bundle (the bundle may
/// sit in a directory below the build products), else `.build/debug` under the working directory.
public func executablePath(_ name: String) throws -> String {
    var candidates: [String] = []
    for start in ["/proc/self/exe", CommandLine.arguments.first ?? "."] {
        var directory = URL(fileURLWithPath: start).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0 ..< 4 {
            candidates.append(directory.appendingPathComponent(name).path)
            directory = directory.deletingLastPathComponent()
        }
    }
    candidates.append(FileManager.default.currentDirectoryPath + "/.build/debug/\(name)")
    for path in candidates where FileManager.default.isExecutableFile(atPath: path) { return path }
    throw TestFailure("\(name) executable not found (tried \(candidates)); run `swift build --build-tests` first")
}

/// How a child that ran to completion ended.
public struct CompletedProcess: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// stdout split into lines.
    public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// A child process with its stdout and stderr in temporary files (read at any time, complete once it
/// has exited). Killed by PID, if still running, when released.
public final class ChildProcess: @unchecked Sendable {
    public enum Output: Sendable { case stdout, stderr }

    public let name: String
    public let process = Process()
    public let stdoutPath: String
    public let stderrPath: String
    private let stdinPath: String?

    /// Starts executable `executable` (a name of this package's products, or a path).
    /// - environment: nil inherits the test's; otherwise exactly these variables plus PATH, so that no
    ///   inherited variable can change the child's configuration.
    /// - stdin: the child's standard input (nil: /dev/null).
    public init(executable: String, arguments: [String] = [], environment: [String: String]? = nil, stdin: [UInt8]? = nil) throws {
        name = (executable as NSString).lastPathComponent
        let stem = NSTemporaryDirectory() + "sluice-test-\(name)-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        stdoutPath = stem + ".out"
        stderrPath = stem + ".err"
        stdinPath = stdin.map { _ in stem + ".in" }
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        if let stdinPath, let stdin { _ = FileManager.default.createFile(atPath: stdinPath, contents: Data(stdin)) }
        let path = executable.contains("/") ? executable : try executablePath(executable)
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if var environment {
            environment["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            process.environment = environment
        }
        process.standardInput = try stdinPath.map { try FileHandle(forReadingFrom: URL(fileURLWithPath: $0)) } ?? FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        do {
            try process.run()
        } catch {
            removeFiles()
            throw error
        }
    }

    /// Runs `executable` to completion; kills it by PID and throws if it outlives `deadline`.
    public static func run(_ executable: String, _ arguments: [String] = [], stdin: [UInt8]? = nil,
                           environment: [String: String]? = nil, deadline: Duration = .seconds(20)) throws -> CompletedProcess {
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment, stdin: stdin)
        guard let status = child.waitForExit(timeout: deadline) else {
            child.stop(signal: SIGKILL)
            throw TestFailure("\(child.name) \(arguments) did not exit within \(deadline); killed pid \(child.pid)")
        }
        return CompletedProcess(status: status, stdout: child.stdout, stderr: child.stderr)
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    public func signal(_ signal: Int32) {
        if process.isRunning { kill(pid, signal) }
    }

    /// The exit status (the signal number if a signal ended it), or nil if still running after `timeout`.
    public func waitForExit(timeout: Duration = .seconds(20)) -> Int32? {
        guard eventually(timeout: timeout, { !process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The first line of `output` that satisfies `matches`, waiting up to `timeout` (less if the child exits).
    public func line(in output: Output, timeout: Duration = .seconds(20), where matches: (Substring) -> Bool) -> String? {
        var found: String?
        eventually(timeout: timeout, interval: .milliseconds(10)) {
            let exited = !process.isRunning
            found = (output == .stdout ? stdout : stderr).split(separator: "\n").first(where: matches).map(String.init)
            return found != nil || exited
        }
        return found
    }

    /// The first stdout line starting with `prefix` (a helper's "READY 1234").
    public func line(startingWith prefix: String, timeout: Duration = .seconds(20)) -> String? {
        line(in: .stdout, timeout: timeout) { $0.hasPrefix(prefix) }
    }

    /// Waits until a stderr line (the JSON logs) contains `text`; false at the deadline or if the child exits first.
    public func waitForLog(_ text: String, timeout: Duration = .seconds(20)) -> Bool {
        line(in: .stderr, timeout: timeout) { $0.contains(text) } != nil
    }

    /// Sends `signal` by PID, waits up to `grace` for the exit, then SIGKILL. Returns the exit status,
    /// or nil if it had to be killed.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, grace: Duration = .seconds(10)) -> Int32? {
        if process.isRunning { kill(pid, signal) }
        if let status = waitForExit(timeout: grace) { return status }
        kill(pid, SIGKILL)
        process.waitUntilExit()
        return nil
    }

    /// VmRSS of the child in KiB.
    public var residentKiB: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }

    public func removeFiles() {
        for path in [stdoutPath, stderrPath] + (stdinPath.map { [$0] } ?? []) {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        removeFiles()
    }
}

/// Open fds of process `pid` (count of /proc/PID/fd entries; -1 if unreadable).
public func openFileDescriptorCount(pid: Int32 = getpid()) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
}

/// utime + stime of process `pid` in clock ticks (from /proc/PID/stat).
public func cpuTicks(pid: Int32) -> Int? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After "pid (comm)": fields[0] is state (field 3), so utime (14) and stime (15) are [11] and [12].
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
    return user + system
}

/// Makes the calling process's fd limit at least `count` (raising the soft limit toward the hard one).
public func ensureFileDescriptorLimit(_ count: Int) -> Bool {
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    if limit.rlim_cur >= rlim_t(count) { return true }
    limit.rlim_cur = min(limit.rlim_max, rlim_t(count))
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    return limit.rlim_cur >= rlim_t(count)
}
