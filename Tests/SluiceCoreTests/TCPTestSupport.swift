// Test support for the EventLoop and TCP suites: blocking client sockets, polling waits, echo delegates.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A Mutex in a class, so several closures and threads can share it.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
    var value: Value { mutex.withLock { $0 } }
}

/// Polls `condition` every few milliseconds until it holds or `timeout` passes.
@discardableResult
func waitUntil(timeout: Duration = .seconds(20), _ condition: () -> Bool) -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + timeout
    while clock.now < end {
        if condition() { return true }
        usleep(2_000)
    }
    return condition()
}

/// Runs `body` on `loop` and waits for its result (test-side convenience).
func onLoop<T: Sendable>(_ loop: EventLoop, timeout: Duration = .seconds(20), _ body: @escaping @Sendable () -> T) throws -> T {
    let result = Mutex<T?>(nil)
    loop.execute { let value = body(); result.withLock { $0 = value } }
    guard waitUntil(timeout: timeout, { result.withLock { $0 != nil } }) else { throw TestFailure("loop task did not run in time") }
    return result.withLock { $0! }
}

/// A blocking IPv4 client socket with receive/send timeouts.
final class TestSocket {
    let fd: Int32
    private(set) var closed = false

    init(port: UInt16, receiveBuffer: Int32? = nil, sendBuffer: Int32? = nil, timeoutSeconds: Int = 20) throws {
        fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        if let receiveBuffer { setOption(SOL_SOCKET, SO_RCVBUF, receiveBuffer) }
        if let sendBuffer { setOption(SOL_SOCKET, SO_SNDBUF, sendBuffer) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd)
            throw TestFailure("connect to 127.0.0.1:\(port): errno \(e)")
        }
    }

    deinit { close() }

    func setOption(_ level: Int32, _ name: Int32, _ value: Int32) {
        var value = value
        setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestFailure("send: errno \(errno)")
            }
            offset += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads exactly `count` bytes (throws on EOF or timeout).
    func receive(exactly count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = out[offset...].withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestFailure("recv: errno \(errno) after \(offset) of \(count) bytes")
            }
            if n == 0 { throw TestFailure("EOF after \(offset) of \(count) bytes") }
            offset += n
        }
        return out
    }

    /// Reads until EOF (throws on timeout); returns everything read.
    func receiveUntilEOF(limit: Int = 1 << 24) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestFailure("recv: errno \(errno) after \(out.count) bytes")
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0 ..< n])
        }
        return out
    }

    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
}

/// Echoes every byte back, zero-copy (writes slices of the receive buffer), pausing reads while the
/// write queue is above its high watermark. Counts what it saw for the tests.
final class EchoHandler: ConnectionDelegate {
    let stats: EchoStats
    init(stats: EchoStats) { self.stats = stats }

    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        stats.received.add(range.count, ordering: .relaxed)
        connection.write(buffer.slice(range))
        let queued = connection.queuedBytes
        if queued > stats.maxQueued.load(ordering: .relaxed) { stats.maxQueued.store(queued, ordering: .relaxed) }
        if !connection.isWritable { connection.pauseReading() }
        return range.count
    }

    func connectionWritabilityChanged(_ connection: Connection) {
        if connection.isWritable { connection.resumeReading() }
    }

    func connectionDidReadEOF(_ connection: Connection) {
        stats.eofs.add(1, ordering: .relaxed)
        connection.shutdownOutput()
    }

    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        stats.closed.add(1, ordering: .relaxed)
    }
}

final class EchoStats: Sendable {
    let accepted = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let maxQueued = Atomic<Int>(0)
    let eofs = Atomic<Int>(0)
    let closed = Atomic<Int>(0)
}

final class EchoListener: ListenerDelegate {
    let stats: EchoStats
    init(stats: EchoStats) { self.stats = stats }
    func didAccept(_ connection: Connection) {
        stats.accepted.add(1, ordering: .relaxed)
        connection.delegate = EchoHandler(stats: stats)
    }
}

/// Starts an echo server on `group` (127.0.0.1, ephemeral port).
func startEchoServer(on group: EventLoopGroup, strategy: TCPServer.Strategy = .reusePortPerLoop, stats: EchoStats) throws -> TCPServer {
    try TCPServer.start(on: group, address: .loopback(port: 0), strategy: strategy) { _ in EchoListener(stats: stats) }
}

/// Deterministic pseudo-random bytes.
func patternBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    var out = [UInt8](repeating: 0, count: count)
    for i in 0 ..< count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        out[i] = UInt8(truncatingIfNeeded: state >> 56)
    }
    return out
}

/// Open fds of process `pid` (count of /proc/PID/fd entries).
func openFileDescriptorCount(pid: Int32 = getpid()) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
}

/// utime + stime of process `pid` in clock ticks (from /proc/PID/stat).
func cpuTicks(pid: Int32) -> Int? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After "pid (comm)": fields[0] is state (field 3), so utime (14) and stime (15) are [11] and [12].
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
    return user + system
}

/// The foundation-test-helper child process, started and stopped by PID.
final class HelperProcess {
    let process = Process()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private let output = Locked("")
    private let errors = Locked("")
    /// Set when the child's stdout reaches end of file (the handler sees empty data), so `stop` can wait
    /// for the last lines instead of guessing how long the handler needs on a loaded machine.
    private let stdoutClosed = Locked(false)

    init(_ arguments: [String]) throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let helper = exe.deletingLastPathComponent().appendingPathComponent("foundation-test-helper")
        guard FileManager.default.isExecutableFile(atPath: helper.path) else {
            throw TestFailure("foundation-test-helper not built next to \(exe.path)")
        }
        process.executableURL = helper
        process.arguments = arguments
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        let output = self.output
        let errors = self.errors
        let stdoutClosed = self.stdoutClosed
        stdoutPipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { stdoutClosed.withLock { $0 = true } }
            output.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        stderrPipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            errors.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { output.withLock { $0 } }
    var stderr: String { errors.withLock { $0 } }

    /// The first stdout line starting with `prefix`, waiting up to `timeout`.
    func line(startingWith prefix: String, timeout: Duration = .seconds(20)) -> String? {
        var found: String?
        waitUntil(timeout: timeout) {
            found = stdout.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init)
            return found != nil || !process.isRunning
        }
        if found == nil { found = stdout.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init) }
        return found
    }

    /// Sends `signal` by PID and waits for exit; SIGKILL if it does not exit in time. Returns the exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(20)) -> Int32? {
        if process.isRunning { kill(pid, signal) }
        if !waitUntil(timeout: timeout, { !process.isRunning }) {
            kill(pid, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        process.waitUntilExit()
        // Let the readability handler collect the last output: wait for stdout's end of file (bounded).
        waitUntil(timeout: .seconds(5)) { stdoutClosed.withLock { $0 } }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        stdoutPipe.fileHandleForReading.readabilityHandler = nil
        stderrPipe.fileHandleForReading.readabilityHandler = nil
    }
}

/// Makes the calling process's fd limit at least `count` (raising the soft limit toward the hard one).
func ensureFileDescriptorLimit(_ count: Int) -> Bool {
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    if limit.rlim_cur >= rlim_t(count) { return true }
    limit.rlim_cur = min(limit.rlim_max, rlim_t(count))
    setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    return limit.rlim_cur >= rlim_t(count)
}

extension TestSocket {
    func setNonBlocking() {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }
}
