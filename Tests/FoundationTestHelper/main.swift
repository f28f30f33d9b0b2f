// Test helper for the EventLoop/TCP suites: a child process the tests start by PID, so that process-
// wide state (fd limits, signal masks, the fd table) is tested in isolation from the test runner.
// Usage: foundation-test-helper signal|emfile LIMIT
//   signal: echo server on 2 loops until SIGTERM/SIGINT; then prints the fd counts before and after.
//   emfile: lowers RLIMIT_NOFILE to LIMIT, then an echo server on 1 loop until SIGTERM.
// Prints "READY <port>" on stdout once listening.
import Foundation
import Glibc
import Logging
import SluiceCore

final class Echo: ConnectionDelegate {
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        connection.write(buffer.slice(range))
        if !connection.isWritable { connection.pauseReading() }
        return range.count
    }
    func connectionWritabilityChanged(_ connection: Connection) {
        if connection.isWritable { connection.resumeReading() }
    }
    func connectionDidReadEOF(_ connection: Connection) { connection.close() }
    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {}
}

final class EchoAcceptor: ListenerDelegate {
    func didAccept(_ connection: Connection) { connection.delegate = Echo() }
}

func openFileDescriptors() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// One unbuffered line on stdout (the test reads it through a pipe).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("foundation-test-helper: \(message)\n".utf8))
    exit(2)
}

LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
let arguments = CommandLine.arguments
guard arguments.count >= 2 else { fail("usage: foundation-test-helper signal|emfile LIMIT") }
let mode = arguments[1]

do {
    try SignalSource.block([SIGTERM, SIGINT])
    if mode == "emfile" {
        guard arguments.count >= 3, let limit = Int(arguments[2]) else { fail("emfile needs a LIMIT") }
        var rl = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl)
        rl.rlim_cur = rlim_t(limit)
        guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0 else { fail("setrlimit failed: errno \(errno)") }
    }
    // Counted before the group exists; FileManager's directory fd is closed again by then.
    let before = openFileDescriptors()
    let group = try EventLoopGroup(loopCount: mode == "emfile" ? 1 : 2)
    let server = try TCPServer.start(on: group, address: .loopback(port: 0)) { _ in EchoAcceptor() }
    SignalSource.install(on: group.loops[0], signals: [SIGTERM, SIGINT]) { _ in
        server.close()
        group.requestShutdown()
    }
    say("READY \(server.localAddress.port)")
    group.wait()
    let after = openFileDescriptors()
    say("FDS before=\(before) after=\(after)")
    exit(0)
} catch {
    fail("\(error)")
}
