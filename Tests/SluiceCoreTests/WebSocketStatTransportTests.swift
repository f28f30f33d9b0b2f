// End-to-end tests of the activator → autoscaler stat transport over real sockets on 127.0.0.1: the
// StatServer against a byte-level test client, the StatReporter against a byte-level test server, both
// against each other (round trip, restart and reconnect), and a Python stdlib client for interop.
import Foundation
import Glibc
import Testing
@testable import SluiceCore
// The shared test-support target on main (absent on this branch when it was written).
import SluiceTestSupport

// MARK: - support

struct ReceivedStat: Sendable, Equatable {
    let namespace: String
    let name: String
    let stat: Metrics_Stat
}

/// A StatServer on its own loop whose sink appends to `received`.
final class StatHarness {
    let group: EventLoopGroup
    let server: StatServer
    let received: Locked<[ReceivedStat]>
    var port: UInt16 { server.localAddress.port }

    init(port: UInt16 = 0, maxMessageBytes: Int? = nil, maxConnections: Int? = nil, received: Locked<[ReceivedStat]> = Locked([])) throws {
        group = try EventLoopGroup(loopCount: 1)
        var configuration = StatServerConfiguration(address: .loopback(port: port))
        if let maxMessageBytes { configuration.maxMessageBytes = maxMessageBytes }
        if let maxConnections { configuration.maxConnections = maxConnections }
        configuration.closeTimeout = .seconds(2)
        self.received = received
        do {
            server = try StatServer.start(on: group, configuration: configuration) { _ in
                { namespace, name, stat in received.withLock { $0.append(ReceivedStat(namespace: namespace, name: name, stat: stat)) } }
            }
        } catch {
            group.shutdown()
            throw error
        }
    }

    /// Stops the server (close frames, drain) and its loop; true when the stop completed in time.
    @discardableResult
    func stop() -> Bool {
        let done = TestFlag()
        server.stop(timeout: .seconds(3)) { done.set() }
        let completed = eventually(timeout: .seconds(10)) { done.isSet }
        group.shutdown()
        return completed
    }
}

/// A StatReporter on its own loop, driven from the test thread.
final class ReporterHarness {
    let group: EventLoopGroup
    let box: LoopBound<StatReporter?>

    init(url: String, tune: (inout StatReporterConfiguration) -> Void = { _ in }) throws {
        var configuration = try StatReporterConfiguration(url: url)
        tune(&configuration)
        group = try EventLoopGroup(loopCount: 1)
        let loop = group.loops[0]
        let box = LoopBound<StatReporter?>(nil, on: loop)
        self.box = box
        let settings = configuration
        _ = try runOnLoop(loop) {
            var seed: UInt64 = 0x5EED
            let reporter = StatReporter(configuration: settings, on: loop, random: {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return seed
            })
            box.value = reporter
            reporter.start()
            return true
        }
    }

    var isConnected: Bool {
        let box = self.box
        return (try? runOnLoop(box.loop) { box.value?.isConnected ?? false }) ?? false
    }

    var statistics: StatReporterStatistics {
        let box = self.box
        return (try? runOnLoop(box.loop) { box.value?.statistics ?? StatReporterStatistics() }) ?? StatReporterStatistics()
    }

    func send(_ messages: [Metrics_WireStatMessage]) throws -> Bool {
        let box = self.box
        return try runOnLoop(box.loop) { box.value?.send(messages) ?? false }
    }

    func stop() {
        let box = self.box
        _ = try? runOnLoop(box.loop) { box.value?.stop(); return true }
        group.shutdown()
    }
}

func sampleMessages(_ count: Int, first: Int = 0) -> [Metrics_WireStatMessage] {
    (first ..< first + count).map { i in
        var stat = Metrics_Stat()
        stat.podName = "activator-5f7d9c-\(i)"
        stat.averageConcurrentRequests = 1.5 + Double(i)
        stat.averageProxiedConcurrentRequests = 1.5 + Double(i)
        stat.requestCount = 3
        stat.proxiedRequestCount = 3
        stat.processUptime = 12.25
        stat.timestamp = 1_764_000_000 + Int64(i)
        var message = Metrics_WireStatMessage()
        message.namespace = "default"
        message.name = "hello-0000\(i + 1)"
        message.stat = stat
        return message
    }
}

private let sampleKey = "dGhlIHNhbXBsZSBub25jZQ=="

/// Runs `body` on `loop` and waits for its result.
func runOnLoop<T: Sendable>(_ loop: EventLoop, timeout: Duration = .seconds(20), _ body: @escaping @Sendable () -> T) throws -> T {
    let result = Locked<T?>(nil)
    guard loop.execute({ let value = body(); result.withLock { $0 = value } }) else { throw TestFailure("the loop is stopped") }
    guard eventually(timeout: timeout, { result.value != nil }) else { throw TestFailure("loop task did not run in time") }
    guard let value = result.value else { throw TestFailure("loop task produced nothing") }
    return value
}

/// A blocking WebSocket client over a raw socket: exact bytes out, frames in.
final class RawWebSocketClient {
    let http: HTTPTestClient
    private var reader = WebSocketFrameReader(role: .client, maxMessageBytes: 1 << 22)

    init(port: UInt16) throws { http = try HTTPTestClient(port: port) }

    /// Sends a valid opening handshake (plus `extra` lines) and reads the answer.
    func upgrade(extra: [String] = []) throws -> HTTPTestMessage {
        try http.send(request("GET / HTTP/1.1", ["Host: autoscaler", "Upgrade: websocket", "Connection: Upgrade",
                                                 "Sec-WebSocket-Key: \(sampleKey)", "Sec-WebSocket-Version: 13"] + extra))
        return try http.readResponse()
    }

    func send(_ opcode: WebSocketOpcode, _ payload: [UInt8], masked: Bool = true, fin: Bool = true) throws {
        var frame: [UInt8] = []
        WebSocketFrameWriter.appendFrame(opcode: opcode, payload: payload, fin: fin, maskKey: masked ? 0x1BAD_F00D : nil, to: &frame)
        try http.send(frame)
    }

    /// The next event the server sent (throws at EOF, timeout or a protocol violation by the server).
    func readEvent() throws -> WebSocketEvent {
        while true {
            let pending = http.reader.pending
            switch reader.read(pending.span) {
            case .needMore(let consumed):
                http.reader.discardPending(consumed)
            case .event(let event, let consumed):
                http.reader.discardPending(consumed)
                return event
            case .failure(let error):
                throw TestFailure("server broke the protocol: \(error)")
            }
            guard try http.reader.fill() else { throw TestFailure("EOF while waiting for a frame") }
        }
    }
}

/// A blocking listener on 127.0.0.1 standing in for the autoscaler.
final class RawListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, length) == 0 && Glibc.listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(fd)
            throw TestFailure("bind/listen: errno \(errno)")
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { Glibc.close(fd) }

    /// The next connection, within `timeout`.
    func accept(timeout: Duration = .seconds(10)) throws -> AcceptedPeer {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000)
        guard Glibc.poll(&poll, 1, milliseconds) > 0 else { throw TestFailure("no connection within \(timeout)") }
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { throw TestFailure("accept: errno \(errno)") }
        var receiveTimeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &receiveTimeout, socklen_t(MemoryLayout<timeval>.size))
        return AcceptedPeer(fd: client)
    }
}

final class AcceptedPeer {
    let fd: Int32
    let reader: HTTPMessageReader
    private var frames = WebSocketFrameReader(role: .server, maxMessageBytes: 1 << 22)

    init(fd: Int32) {
        self.fd = fd
        reader = HTTPMessageReader(fd: fd)
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else { throw TestFailure("send: errno \(errno)") }
    }

    /// The next event the client sent (throws at EOF or timeout).
    func readEvent() throws -> WebSocketEvent {
        while true {
            let pending = reader.pending
            switch frames.read(pending.span) {
            case .needMore(let consumed):
                reader.discardPending(consumed)
            case .event(let event, let consumed):
                reader.discardPending(consumed)
                return event
            case .failure(let error):
                throw TestFailure("client broke the protocol: \(error)")
            }
            guard try reader.fill() else { throw TestFailure("EOF while waiting for a frame") }
        }
    }
}

/// `protoc --decode=type` of `bytes` against the committed stat.proto.
func decodeWithProtoc(type: String, bytes: [UInt8]) throws -> String {
    let protoDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/SluiceCore/Serving/Metrics")
    let output = try runProcess(["protoc", "--proto_path=\(protoDirectory.path)", "--decode=\(type)", "stat.proto"], input: bytes)
    guard output.status == 0 else { throw TestFailure("protoc failed (\(output.status)): \(output.errors)") }
    return output.text
}

/// A child process started through /usr/bin/env, its output collected; killed by PID if it overstays.
final class ExternalClientProcess {
    let process = Process()
    private let collected = Locked<(Data, Data)>((Data(), Data()))
    private let readers = DispatchGroup()

    init(_ arguments: [String], input: [UInt8] = []) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(Data(input))
        try stdin.fileHandleForWriting.close()
        let collected = self.collected
        for (index, pipe) in [stdout, stderr].enumerated() {
            readers.enter()
            let group = readers
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                collected.withLock { if index == 0 { $0.0 = data } else { $0.1 = data } }
                group.leave()
            }
        }
    }

    /// Waits for the exit (SIGKILL by PID after `timeout`); returns status, stdout and stderr.
    func finish(timeout: Duration = .seconds(30)) -> (status: Int32, text: String, errors: String) {
        if !eventually(timeout: timeout, { !process.isRunning }) {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        _ = readers.wait(timeout: .now() + 5)
        let (out, err) = collected.value
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }
}

/// Runs `arguments` through /usr/bin/env with `input` on stdin; kills it (by PID) after `timeout`.
func runProcess(_ arguments: [String], input: [UInt8] = [], timeout: Duration = .seconds(30)) throws -> (status: Int32, text: String, errors: String) {
    try ExternalClientProcess(arguments, input: input).finish(timeout: timeout)
}

// MARK: - tests

@Suite("WebSocket stat transport", .timeLimit(.minutes(1)))
struct WebSocketStatTransportTests {
    @Test("a reporter's batch reaches the server's sink with every field intact")
    func roundTrip() throws {
        let server = try StatHarness()
        defer { server.stop() }
        let reporter = try ReporterHarness(url: "ws://127.0.0.1:\(server.port)")
        defer { reporter.stop() }
        #expect(eventually { reporter.isConnected })
        let messages = sampleMessages(3)
        #expect(try reporter.send(messages))
        #expect(eventually { server.received.value.count == 3 })
        #expect(server.received.value == messages.map { ReceivedStat(namespace: $0.namespace, name: $0.name, stat: $0.stat) })
        #expect(reporter.statistics.sentBatches == 1)
        #expect(reporter.statistics.sentStats == 3)
        #expect(eventually { server.server.statistics.batches == 1 && server.server.statistics.stats == 3 })
    }

    @Test("the reporter sends Knative's handshake and one masked binary frame that protoc decodes as metrics.WireStatMessages")
    func reporterWireBytes() throws {
        let listener = try RawListener()
        let reporter = try ReporterHarness(url: "ws://127.0.0.1:\(listener.port)/")
        defer { reporter.stop() }
        let peer = try listener.accept()
        let handshake = try peer.reader.readMessage(isResponse: false)
        #expect(handshake.method == "GET")
        #expect(handshake.target == "/")
        #expect(handshake.field("host") == "127.0.0.1:\(listener.port)")
        #expect(handshake.field("upgrade") == "websocket")
        #expect(handshake.field("connection") == "Upgrade")
        #expect(handshake.field("sec-websocket-version") == "13")
        let key = try #require(handshake.field("sec-websocket-key"))
        #expect(Base64.decode(key)?.count == 16)
        try peer.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: \(WebSocketHandshake.acceptValue(forKey: key))\r\n\r\n")
        #expect(eventually { reporter.isConnected })
        // The reporter answers the autoscaler's pings (a masked pong, same payload).
        var ping: [UInt8] = []
        WebSocketFrameWriter.appendFrame(opcode: .ping, payload: Array("hb".utf8), to: &ping)
        try peer.send(ping)
        var answered = false
        for _ in 0 ..< 10 where !answered {
            if case .pong(let payload) = try peer.readEvent() { answered = payload == Array("hb".utf8) }
        }
        #expect(answered)
        let messages = sampleMessages(2)
        #expect(try reporter.send(messages))
        var payload: [UInt8] = []
        // Keep-alive pings may come first; the frame reader (server role) also proves the client masked.
        for _ in 0 ..< 10 {
            if case .message(.binary(let bytes)) = try peer.readEvent() {
                payload = bytes
                break
            }
        }
        var batch = Metrics_WireStatMessages()
        batch.messages = messages
        #expect(payload == (try batch.serializedBytes()))
        let decoded = try decodeWithProtoc(type: "metrics.WireStatMessages", bytes: payload)
        #expect(decoded.contains("messages {"))
        #expect(decoded.contains("namespace: \"default\""))
        #expect(decoded.contains("name: \"hello-00001\""))
        #expect(decoded.contains("name: \"hello-00002\""))
        #expect(decoded.contains("pod_name: \"activator-5f7d9c-1\""))
        #expect(decoded.contains("average_concurrent_requests: 2.5"))
        #expect(decoded.contains("request_count: 3"))
        #expect(decoded.contains("timestamp: 1764000001"))

        // Stopping says goodbye with 1001 and does not dial again.
        let box = reporter.box
        _ = try runOnLoop(box.loop) { box.value?.stop(); return true }
        var goodbye: WebSocketEvent? = nil
        for _ in 0 ..< 10 where goodbye == nil {
            let event = try peer.readEvent()
            if case .close = event { goodbye = event }
        }
        #expect(goodbye == .close(.goingAway, reason: "activator shutting down"))
        #expect(throws: (any Error).self) { _ = try listener.accept(timeout: .milliseconds(500)) }
    }

    @Test("reporter URLs parse like Knative's ws:// endpoints; others are refused with a message naming the URL", arguments: [
        ("ws://autoscaler.knative-serving:8080", "autoscaler.knative-serving", 8080, "/"),
        ("ws://10.0.0.7", "10.0.0.7", 80, "/"),
        ("ws://[::1]:9000/stats", "::1", 9000, "/stats"),
    ])
    func reporterURLs(url: String, host: String, port: Int, target: String) throws {
        let configuration = try StatReporterConfiguration(url: url)
        #expect(configuration.host == host)
        #expect(Int(configuration.port) == port)
        #expect(configuration.target == target)
    }

    @Test("bad reporter URLs are refused", arguments: ["http://autoscaler:8080", "wss://autoscaler:8080", "ws://:8080", "ws://a:0", "ws://a:x", "ws://[::1", "ws://a:70000"])
    func badReporterURLs(url: String) {
        do {
            _ = try StatReporterConfiguration(url: url)
            Issue.record("accepted \(url)")
        } catch {
            #expect(error.description.contains(url))
        }
    }

    @Test("the reporter pings a silent autoscaler and reconnects once nothing came back within the read timeout")
    func reporterDetectsSilentPeer() throws {
        let listener = try RawListener()
        let reporter = try ReporterHarness(url: "ws://127.0.0.1:\(listener.port)") {
            $0.pingInterval = .milliseconds(100)
            $0.readTimeout = .milliseconds(700)
            $0.initialBackoff = .milliseconds(50)
        }
        defer { reporter.stop() }
        let peer = try listener.accept()
        let key = try #require(try peer.reader.readMessage(isResponse: false).field("sec-websocket-key"))
        try peer.send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: \(WebSocketHandshake.acceptValue(forKey: key))\r\n\r\n")
        #expect(try peer.readEvent() == .ping([]))
        #expect(try peer.readEvent() == .ping([]))
        // No pong: the reporter gives up on this connection and dials again.
        let second = try listener.accept()
        #expect(try second.reader.readMessage(isResponse: false).field("upgrade") == "websocket")
        #expect(reporter.statistics.connects == 1)
        #expect(reporter.statistics.disconnects >= 1)
    }

    @Test("a reporter whose handshake gets no answer gives up after the handshake timeout and dials again")
    func reporterHandshakeTimeout() throws {
        let listener = try RawListener()
        let reporter = try ReporterHarness(url: "ws://127.0.0.1:\(listener.port)") {
            $0.handshakeTimeout = .milliseconds(300)
            $0.initialBackoff = .milliseconds(20)
        }
        defer { reporter.stop() }
        let silent = try listener.accept()
        #expect(try silent.reader.readMessage(isResponse: false).field("upgrade") == "websocket")
        let start = ContinuousClock.now
        let second = try listener.accept()
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        #expect(try second.reader.readMessage(isResponse: false).field("upgrade") == "websocket")
        #expect(!reporter.isConnected)
        #expect(reporter.statistics.connects == 0)
    }

    @Test("a reporter with a server that answers without 101 keeps retrying and drops batches meanwhile")
    func reporterRefusedHandshake() throws {
        let listener = try RawListener()
        let reporter = try ReporterHarness(url: "ws://127.0.0.1:\(listener.port)") { $0.initialBackoff = .milliseconds(20) }
        defer { reporter.stop() }
        for _ in 0 ..< 2 {
            let peer = try listener.accept()
            _ = try peer.reader.readMessage(isResponse: false)
            try peer.send("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
        }
        #expect(!reporter.isConnected)
        #expect(try reporter.send(sampleMessages(4)) == false)
        #expect(reporter.statistics.droppedBatches == 1)
        #expect(reporter.statistics.droppedStats == 4)
        #expect(reporter.statistics.connects == 0)
    }

    @Test("the reporter reconnects after the server restarts on the same port; batches sent while it is down are dropped and counted")
    func reconnectAfterRestart() throws {
        let received = Locked<[ReceivedStat]>([])
        let first = try StatHarness(received: received)
        let port = first.port
        let reporter = try ReporterHarness(url: "ws://127.0.0.1:\(port)") {
            $0.initialBackoff = .milliseconds(50)
            $0.maxBackoff = .milliseconds(200)
        }
        defer { reporter.stop() }
        #expect(eventually { reporter.isConnected })
        #expect(try reporter.send(sampleMessages(1)))
        #expect(eventually { received.value.count == 1 })

        #expect(first.stop())
        #expect(eventually { !reporter.isConnected })
        #expect(try reporter.send(sampleMessages(2)) == false)
        #expect(reporter.statistics.droppedBatches == 1)
        #expect(reporter.statistics.droppedStats == 2)

        let second = try StatHarness(port: port, received: received)
        defer { second.stop() }
        #expect(eventually { reporter.isConnected })
        #expect(try reporter.send(sampleMessages(1, first: 5)))
        #expect(eventually { received.value.count == 2 })
        #expect(received.value.last?.name == "hello-00006")
        #expect(reporter.statistics.connects == 2)
    }

    @Test("the server answers a ping with a pong carrying the same payload")
    func pingPong() throws {
        let server = try StatHarness()
        defer { server.stop() }
        let client = try RawWebSocketClient(port: server.port)
        #expect(try client.upgrade().status == 101)
        try client.send(.ping, Array("are you there".utf8))
        #expect(try client.readEvent() == .pong(Array("are you there".utf8)))
    }

    @Test("a client's close gets its code echoed and the server closes the TCP connection")
    func closeHandshake() throws {
        let server = try StatHarness()
        defer { server.stop() }
        let client = try RawWebSocketClient(port: server.port)
        #expect(try client.upgrade().status == 101)
        #expect(eventually { server.server.statistics.connections == 1 })
        try client.send(.close, WebSocketFrameWriter.closePayload(code: .goingAway, reason: "bye"))
        #expect(try client.readEvent() == .close(.goingAway, reason: "bye"))
        #expect(client.http.waitForEOF())
        #expect(eventually { server.server.statistics.connections == 0 })
    }

    @Test("a message over the server's limit is answered with close 1009 and the connection ends")
    func oversizeMessage() throws {
        let server = try StatHarness(maxMessageBytes: 64)
        defer { server.stop() }
        let client = try RawWebSocketClient(port: server.port)
        #expect(try client.upgrade().status == 101)
        try client.send(.binary, [UInt8](repeating: 1, count: 100))
        guard case .close(let code, _) = try client.readEvent() else {
            Issue.record("expected a close frame")
            return
        }
        #expect(code == .messageTooBig)
        try client.send(.close, WebSocketFrameWriter.closePayload(code: .messageTooBig, reason: ""))
        #expect(client.http.waitForEOF())
        #expect(server.received.value.isEmpty)
    }

    @Test("an unmasked client frame fails the connection with 1002")
    func unmaskedFrame() throws {
        let server = try StatHarness()
        defer { server.stop() }
        let client = try RawWebSocketClient(port: server.port)
        #expect(try client.upgrade().status == 101)
        try client.send(.binary, [1, 2, 3], masked: false)
        guard case .close(let code, let reason) = try client.readEvent() else {
            Issue.record("expected a close frame")
            return
        }
        #expect(code == .protocolError)
        #expect(reason.contains("not masked"))
        client.http.shutdownWrite()
        #expect(client.http.waitForEOF())
    }

    @Test("bad binary and text messages are dropped and counted; the connection stays and later batches arrive in fragments too")
    func badMessagesDropped() throws {
        let server = try StatHarness()
        defer { server.stop() }
        let client = try RawWebSocketClient(port: server.port)
        #expect(try client.upgrade().status == 101)
        try client.send(.binary, [0xFF, 0xFF, 0xFF])
        try client.send(.text, Array("{\"namespace\":\"default\"}".utf8))
        var batch = Metrics_WireStatMessages()
        batch.messages = sampleMessages(2)
        var entryWithoutStat = Metrics_WireStatMessage()
        entryWithoutStat.namespace = "default"
        entryWithoutStat.name = "no-stat"
        batch.messages.append(entryWithoutStat)
        let bytes: [UInt8] = try batch.serializedBytes()
        try client.send(.binary, Array(bytes[..<10]), fin: false)
        try client.send(.continuation, Array(bytes[10...]))
        #expect(eventually { server.received.value.count == 2 })
        #expect(server.received.value.map(\.name) == ["hello-00001", "hello-00002"])
        let statistics = server.server.statistics
        #expect(statistics.dropped == 2)
        #expect(statistics.batches == 1)
        #expect(statistics.connections == 1)
        try client.send(.ping, [7])
        #expect(try client.readEvent() == .pong([7]))
    }

    @Test("plain HTTP gets clear answers: kubelet probes 200, a plain GET 426, a bad version 426 with 13, POST 405, a bad key 400")
    func plainHTTP() throws {
        let server = try StatHarness()
        defer { server.stop() }
        func ask(_ text: String) throws -> HTTPTestMessage {
            let client = try HTTPTestClient(port: server.port)
            return try client.exchange(text)
        }
        #expect(try ask(request("GET / HTTP/1.1", ["Host: autoscaler", "User-Agent: kube-probe/1.30"])).status == 200)
        #expect(try ask(request("GET /healthz HTTP/1.1", ["Host: autoscaler", "K-Kubelet-Probe: queue"])).status == 200)
        let plain = try ask(request("GET / HTTP/1.1", ["Host: autoscaler"]))
        #expect(plain.status == 426)
        #expect(plain.field("upgrade") == "websocket")
        #expect(String(decoding: plain.body, as: UTF8.self).contains("WebSocket"))
        let version = try ask(request("GET / HTTP/1.1", ["Host: a", "Upgrade: websocket", "Connection: Upgrade",
                                                          "Sec-WebSocket-Key: \(sampleKey)", "Sec-WebSocket-Version: 8"]))
        #expect(version.status == 426)
        #expect(version.field("sec-websocket-version") == "13")
        let post = try ask(request("POST / HTTP/1.1", ["Host: a", "Upgrade: websocket", "Connection: Upgrade", "Content-Length: 0"]))
        #expect(post.status == 405)
        let badKey = try ask(request("GET / HTTP/1.1", ["Host: a", "Upgrade: websocket", "Connection: Upgrade",
                                                         "Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 13"]))
        #expect(badKey.status == 400)
        #expect(String(decoding: badKey.body, as: UTF8.self).contains("Sec-WebSocket-Key"))
        let client = try RawWebSocketClient(port: server.port)
        let accepted = try client.upgrade()
        #expect(accepted.status == 101)
        #expect(accepted.field("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test("upgrades beyond the connection limit are answered 503; a slot frees when a client leaves")
    func connectionLimit() throws {
        let server = try StatHarness(maxConnections: 1)
        defer { server.stop() }
        let first = try RawWebSocketClient(port: server.port)
        #expect(try first.upgrade().status == 101)
        let second = try RawWebSocketClient(port: server.port)
        let refused = try second.upgrade()
        #expect(refused.status == 503)
        #expect(String(decoding: refused.body, as: UTF8.self).contains("maximum of 1 connections"))
        try first.send(.close, WebSocketFrameWriter.closePayload(code: .normalClosure, reason: ""))
        #expect(try first.readEvent() == .close(.normalClosure, reason: ""))
        #expect(first.http.waitForEOF())
        #expect(eventually { server.server.statistics.connections == 0 })
        let third = try RawWebSocketClient(port: server.port)
        #expect(try third.upgrade().status == 101)
    }

    @Test("stopping the server sends connected clients close 1012 'Restarting' and completes once they answer")
    func stopSendsServiceRestart() throws {
        let server = try StatHarness()
        defer { server.group.shutdown() }
        let client = try RawWebSocketClient(port: server.port)
        #expect(try client.upgrade().status == 101)
        #expect(eventually { server.server.statistics.connections == 1 })
        let done = TestFlag()
        server.server.stop(timeout: .seconds(5)) { done.set() }
        #expect(try client.readEvent() == .close(.serviceRestart, reason: "Restarting"))
        #expect(!done.isSet)
        try client.send(.close, WebSocketFrameWriter.closePayload(code: .serviceRestart, reason: ""))
        #expect(client.http.waitForEOF())
        #expect(eventually { done.isSet })
        #expect(throws: (any Error).self) { _ = try HTTPTestClient(port: server.port).exchange(request("GET / HTTP/1.1")) }
    }

    @Test("Node's WebSocket client (undici) sends a batch to the server and closes cleanly with 1000")
    func nodeInteropClientClose() throws {
        let server = try StatHarness()
        defer { server.stop() }
        var batch = Metrics_WireStatMessages()
        batch.messages = sampleMessages(2)
        let hexPayload = (try batch.serializedBytes() as [UInt8]).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let result = try runProcess(["node", "--no-warnings", "--experimental-websocket", "-e", nodeClient, "close", "\(server.port)", hexPayload])
        #expect(result.status == 0, "\(result.text) \(result.errors)")
        #expect(result.text.contains(#""code":1000"#), "\(result.text) \(result.errors)")
        #expect(result.text.contains(#""wasClean":true"#), "\(result.text)")
        #expect(eventually { server.received.value.count == 2 })
        #expect(server.received.value.map(\.stat) == batch.messages.map(\.stat))
    }

    @Test("Node's WebSocket client sees the server's stop as a clean close 1012 'Restarting'")
    func nodeInteropServerStop() throws {
        let server = try StatHarness()
        var batch = Metrics_WireStatMessages()
        batch.messages = sampleMessages(1)
        let hexPayload = (try batch.serializedBytes() as [UInt8]).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let child = try ExternalClientProcess(["node", "--no-warnings", "--experimental-websocket", "-e", nodeClient, "wait", "\(server.port)", hexPayload])
        let arrived = eventually { server.received.value.count == 1 }
        #expect(arrived)
        #expect(server.stop())
        let result = child.finish()
        #expect(result.status == 0, "\(result.text) \(result.errors)")
        #expect(result.text.contains(#""code":1012"#), "\(result.text) \(result.errors)")
        #expect(result.text.contains(#""reason":"Restarting""#), "\(result.text)")
        #expect(result.text.contains(#""wasClean":true"#), "\(result.text)")
    }

    @Test("a Python stdlib WebSocket client (its own SHA-1 and base64) handshakes, sends a batch, gets its pong and closes")
    func pythonInterop() throws {
        let server = try StatHarness()
        defer { server.stop() }
        var batch = Metrics_WireStatMessages()
        batch.messages = sampleMessages(1)
        let payload: [UInt8] = try batch.serializedBytes()
        let hexPayload = payload.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let result = try runProcess(["python3", "-c", pythonClient, "\(server.port)", hexPayload])
        #expect(result.status == 0, "\(result.text) \(result.errors)")
        #expect(result.text.contains("ok"))
        #expect(eventually { server.received.value.count == 1 })
        #expect(server.received.value.first?.stat == batch.messages[0].stat)
    }
}

/// Node's WHATWG WebSocket client (undici, behind --experimental-websocket in Node 20): sends one binary
/// message, then closes with 1000 ("close") or waits for the server to close ("wait"); prints the close event.
private let nodeClient = #"""
const [mode, port, hex] = process.argv.slice(-3);
const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
ws.binaryType = 'arraybuffer';
const timer = setTimeout(() => { console.log('timeout'); process.exit(2); }, 15000);
ws.onopen = () => {
  ws.send(Buffer.from(hex, 'hex'));
  if (mode === 'close') ws.close(1000, 'done');
};
ws.onerror = (e) => { console.error('error', e.message || e.type); };
ws.onclose = (e) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ code: e.code, reason: e.reason, wasClean: e.wasClean }));
  process.exit(0);
};
"""#

/// An independent client: Python's socket, hashlib and base64 only.
private let pythonClient = #"""
import base64, hashlib, os, socket, struct, sys
port = int(sys.argv[1]); payload = bytes.fromhex(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    chunk = s.recv(4096)
    if not chunk: sys.exit("EOF during the handshake")
    buf += chunk
head, _, rest = buf.partition(b"\r\n\r\n")
lines = head.decode().split("\r\n")
if not lines[0].startswith("HTTP/1.1 101"): sys.exit("status line: " + lines[0])
headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
expected = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
if headers.get("sec-websocket-accept") != expected: sys.exit("bad Sec-WebSocket-Accept")
def frame(opcode, data):
    mask = os.urandom(4)
    n = len(data)
    if n < 126: hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536: hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else: hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
def need(k):
    global rest
    while len(rest) < k:
        c = s.recv(4096)
        if not c: sys.exit("EOF while reading a frame")
        rest += c
def read_frame():
    global rest
    need(2)
    b0, b1 = rest[0], rest[1]
    n = b1 & 0x7F; off = 2
    if n == 126: need(4); n = struct.unpack("!H", rest[2:4])[0]; off = 4
    elif n == 127: need(10); n = struct.unpack("!Q", rest[2:10])[0]; off = 10
    if b1 & 0x80: sys.exit("the server masked a frame")
    need(off + n)
    data = rest[off:off + n]; rest = rest[off + n:]
    return b0 & 0x0F, data
s.sendall(frame(2, payload))
s.sendall(frame(9, b"interop"))
op, data = read_frame()
if (op, data) != (10, b"interop"): sys.exit("expected a pong, got %r %r" % (op, data))
s.sendall(frame(8, struct.pack("!H", 1000) + b"done"))
op, data = read_frame()
if op != 8 or struct.unpack("!H", data[:2])[0] != 1000: sys.exit("expected close 1000, got %r %r" % (op, data))
if s.recv(1) != b"": sys.exit("expected EOF after the close handshake")
print("ok")
"""#
