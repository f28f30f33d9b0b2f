// Tests for the HTTPProxy layer's one-shot HTTPClient (the data plane's own probes).
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore
import SluiceTestSupport

/// Runs one HTTPClient request on `loop` and waits for its result.
func clientSend(on loop: EventLoop, target: String, port: UInt16, fields: [(name: String, value: String)] = [],
                timeout: Duration = .seconds(2)) throws -> Result<HTTPClientResponse, HTTPClientError> {
    let box = ResultBox()
    loop.execute {
        HTTPClient.send(target: target, to: .loopback(port: port), fields: fields, timeout: timeout, on: loop) { outcome in
            box.set(outcome)
        }
    }
    guard eventually(timeout: .seconds(20), { box.value != nil }), let value = box.value else { throw TestFailure("no result") }
    return value
}

final class ResultBox: Sendable {
    private let state = Mutex<Result<HTTPClientResponse, HTTPClientError>?>(nil)
    func set(_ value: Result<HTTPClientResponse, HTTPClientError>) { state.withLock { $0 = value } }
    var value: Result<HTTPClientResponse, HTTPClientError>? { state.withLock { $0 } }
}

@Suite("HTTP one-shot client", .timeLimit(.minutes(1)))
struct HTTPClientTests {
    @Test("a probe request gets the status, fields and body of the response")
    func probeSucceeds() throws {
        let backend = try ScriptedBackend { connection in
            guard let request = try connection.readRequest() else { return }
            try connection.respond(status: 200, fields: ["X-Seen-UA: \(request.field("user-agent") ?? "")"], body: Array("ready".utf8))
        }
        defer { backend.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let result = try clientSend(on: group.loops[0], target: "/healthz", port: backend.port, fields: [("User-Agent", "kube-probe/1.30")])
        let response = try result.get()
        #expect(response.status == 200)
        #expect(response.field("x-seen-ua") == "kube-probe/1.30")
        #expect(response.body == Array("ready".utf8))
        #expect(backend.requests.first?.target == "/healthz")
    }

    @Test("a refused connect and a silent upstream are reported as errors")
    func probeFails() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let refused = try clientSend(on: group.loops[0], target: "/", port: try freePort())
        guard case .failure(.connectFailed) = refused else {
            Issue.record("expected connectFailed, got \(refused)")
            return
        }
        let release = TestFlag()
        let silent = try ScriptedBackend { connection in
            _ = try connection.readRequest()
            while !release.isSet { usleep(10_000) }
        }
        defer {
            release.set()
            silent.stop()
        }
        let timedOut = try clientSend(on: group.loops[0], target: "/", port: silent.port, timeout: .milliseconds(200))
        guard case .failure(.timedOut) = timedOut else {
            Issue.record("expected timedOut, got \(timedOut)")
            return
        }
    }
}
