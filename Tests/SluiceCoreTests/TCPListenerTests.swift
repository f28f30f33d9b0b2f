// Tests for the TCP layer's listeners and whole-process behaviour: accept strategies, fd exhaustion
// (EMFILE) in a child with a lowered RLIMIT_NOFILE, and SIGTERM shutdown that leaves no fd open.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

/// Records on which loop each connection was accepted.
final class LoopRecordingAcceptor: ListenerDelegate {
    let index: Int
    let counts: Locked<[Int]>
    let stats: EchoStats
    init(index: Int, counts: Locked<[Int]>, stats: EchoStats) {
        self.index = index
        self.counts = counts
        self.stats = stats
    }
    func didAccept(_ connection: Connection) {
        precondition(connection.loop.inEventLoop)
        counts.withLock { $0[index] += 1 }
        connection.delegate = EchoHandler(stats: stats)
    }
}

@Suite("TCP listener", .timeLimit(.minutes(1)))
struct TCPListenerTests {
    func spread(_ strategy: TCPServer.Strategy, connections: Int) throws -> [Int] {
        let group = try EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let counts = Locked([0, 0])
        let stats = EchoStats()
        let server = try TCPServer.start(on: group, address: .loopback(port: 0), strategy: strategy) { loop in
            LoopRecordingAcceptor(index: group.loops.firstIndex { $0 === loop } ?? 0, counts: counts, stats: stats)
        }
        var clients: [HTTPTestClient] = []
        for i in 0 ..< connections {
            let client = try HTTPTestClient(port: server.localAddress.port)
            try client.send("\(i)")
            #expect(try client.receive(exactly: "\(i)".utf8.count) == Array("\(i)".utf8))
            clients.append(client)
        }
        #expect(eventually { counts.value.reduce(0, +) == connections })
        server.close()
        return counts.value
    }

    @Test("a single acceptor hands connections to every loop in turn")
    func singleAcceptorDistributesRoundRobin() throws {
        let counts = try spread(.singleAcceptor, connections: 20)
        #expect(counts == [10, 10])
    }

    @Test("SO_REUSEPORT listeners on every loop share one port and both receive connections")
    func reusePortSpreadsAcrossLoops() throws {
        let counts = try spread(.reusePortPerLoop, connections: 64)
        #expect(counts.reduce(0, +) == 64)
        #expect(counts.allSatisfy { $0 > 0 })
    }

    @Test("binding a port already in use throws EADDRINUSE synchronously")
    func bindingABusyPortThrows() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let first = try TCPServer.start(on: group, address: .loopback(port: 0), strategy: .singleAcceptor) { _ in EchoListener(stats: EchoStats()) }
        #expect(throws: SyscallError("bind", errno: EADDRINUSE)) {
            _ = try TCPServer.start(on: group, address: first.localAddress, strategy: .singleAcceptor) { _ in EchoListener(stats: EchoStats()) }
        }
    }

    @Test("out of fds (RLIMIT_NOFILE 64): accept pauses without burning CPU, logs ≤ 1 line/s, and serves again once fds free")
    func fileDescriptorExhaustionPausesAndRecovers() throws {
        guard ensureFileDescriptorLimit(1_000) else {
            Issue.record("cannot raise this process's RLIMIT_NOFILE for 200 client sockets")
            return
        }
        let helper = try ChildProcess(executable: "foundation-test-helper", arguments: ["emfile", "64"])
        defer { helper.stop(signal: SIGKILL) }
        guard let ready = helper.line(startingWith: "READY "), let port = UInt16(ready.dropFirst(6)) else {
            Issue.record("helper did not start: \(helper.stderr)")
            return
        }
        // 200 connections: the kernel completes them all into the backlog (1024); the child can
        // hold only ~58 of them before accept4 fails with EMFILE.
        var clients: [HTTPTestClient] = []
        for _ in 0 ..< 200 { clients.append(try HTTPTestClient(port: port)) }
        #expect(eventually { openFileDescriptorCount(pid: helper.pid) >= 60 })
        #expect(eventually { helper.stderr.contains("accept paused") })
        // Saturated: measure CPU over 3 s. A listener that kept retrying accept would use ~100 %.
        usleep(300_000)
        let linesBefore = helper.stderr.components(separatedBy: "accept paused").count - 1
        guard let ticksBefore = cpuTicks(pid: helper.pid) else {
            Issue.record("cannot read /proc/\(helper.pid)/stat")
            return
        }
        let windowSeconds = 3
        sleep(UInt32(windowSeconds))
        let ticksAfter = cpuTicks(pid: helper.pid) ?? .max
        let linesAfter = helper.stderr.components(separatedBy: "accept paused").count - 1
        let ticksPerSecond = Int(sysconf(Int32(_SC_CLK_TCK)))
        // ≤ 10 % of one core over the window (R6 asks ≤ 5 %; the slack absorbs a loaded CI machine).
        #expect(ticksAfter - ticksBefore <= windowSeconds * ticksPerSecond / 10)
        // At most one log line per second (plus one for a window edge).
        #expect(linesAfter - linesBefore <= windowSeconds + 1)
        // Release 150 connections (including every one the child holds): it closes them, fds free up,
        // accepting resumes and drains the backlog.
        for client in clients.prefix(150) { client.close() }
        let survivors = Array(clients.suffix(50))
        for (i, client) in survivors.enumerated() {
            let message = Array("ping \(i)".utf8)
            try client.send(message)
            #expect(try client.receive(exactly: message.count) == message)
        }
        // And a brand-new connection is served.
        let fresh = try HTTPTestClient(port: port)
        try fresh.send("fresh")
        #expect(try fresh.receive(exactly: 5) == Array("fresh".utf8))
        for client in survivors { client.close() }
        fresh.close()
        #expect(helper.stop() == 0)
    }

    @Test("SIGTERM through a SignalSource shuts the group down, closes every fd and exits 0")
    func sigtermShutsDownCleanly() throws {
        let helper = try ChildProcess(executable: "foundation-test-helper", arguments: ["signal"])
        defer { helper.stop(signal: SIGKILL) }
        guard let ready = helper.line(startingWith: "READY "), let port = UInt16(ready.dropFirst(6)) else {
            Issue.record("helper did not start: \(helper.stderr)")
            return
        }
        // Live connections at shutdown, one mid-conversation.
        var clients: [HTTPTestClient] = []
        for i in 0 ..< 10 {
            let client = try HTTPTestClient(port: port)
            try client.send("hi \(i)")
            #expect(try client.receive(exactly: "hi \(i)".utf8.count) == Array("hi \(i)".utf8))
            clients.append(client)
        }
        let fdsWhileServing = openFileDescriptorCount(pid: helper.pid)
        #expect(helper.stop(signal: SIGTERM) == 0)
        // Every client sees the server side go away.
        for client in clients { #expect((try? client.readToEOF()) != nil) }
        guard let line = helper.line(startingWith: "FDS ") else {
            Issue.record("helper printed no fd counts: \(helper.stdout) \(helper.stderr)")
            return
        }
        // "FDS before=N after=M": after shutdown exactly the fds from before the group existed remain.
        let numbers = line.split(separator: " ").dropFirst().compactMap { Int($0.split(separator: "=").last ?? "") }
        #expect(numbers.count == 2)
        #expect(numbers.first == numbers.last)
        #expect(fdsWhileServing > (numbers.first ?? 0) + 10)
    }
}
