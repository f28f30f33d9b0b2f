// Test support, old names: the names the per-target support files used before this target existed, so
// test files written against them still compile (with a fix-it warning). Delete once no test uses them.
import Glibc

@available(*, deprecated, renamed: "HTTPTestClient")
public typealias HTTPConnection = HTTPTestClient
@available(*, deprecated, renamed: "HTTPTestClient")
public typealias TestSocket = HTTPTestClient
@available(*, deprecated, renamed: "HTTPTestMessage")
public typealias HTTPMessage = HTTPTestMessage
@available(*, deprecated, renamed: "HTTPMessageReader")
public typealias MessageReader = HTTPMessageReader
@available(*, deprecated, renamed: "ScriptedBackend")
public typealias ScriptedApp = ScriptedBackend
@available(*, deprecated, renamed: "BackendConnection")
public typealias ScriptedConnection = BackendConnection
@available(*, deprecated, renamed: "TestFailure")
public typealias E2EError = TestFailure
@available(*, deprecated, renamed: "TestFailure")
public typealias HTTPTestError = TestFailure

extension HTTPTestClient {
    @available(*, deprecated, message: "use init(port:timeout:receiveBuffer:sendBuffer:) with timeout: .seconds(n)")
    public convenience init(port: UInt16, receiveBuffer: Int32? = nil, sendBuffer: Int32? = nil, timeoutSeconds: Int) throws {
        try self.init(port: port, timeout: .seconds(timeoutSeconds), receiveBuffer: receiveBuffer, sendBuffer: sendBuffer)
    }

    @available(*, deprecated, renamed: "readToEOF(limit:)")
    public func receiveUntilEOF(limit: Int = 1 << 27) throws -> [UInt8] { try readToEOF(limit: limit) }
}

extension HTTPTestMessage {
    @available(*, deprecated, renamed: "bodyText")
    public var text: String { bodyText }
}

extension HTTPMessageReader {
    @available(*, deprecated, renamed: "readMessage(isResponse:requestMethod:limits:)")
    public func read(isResponse: Bool) throws -> HTTPTestMessage { try readMessage(isResponse: isResponse) }
}

extension BackendConnection {
    @available(*, deprecated, renamed: "send(_:)")
    public func send(bytes: [UInt8]) throws { try send(bytes) }
}

@available(*, deprecated, renamed: "eventually(timeout:_:)")
@discardableResult
public func waitUntil(timeout: Duration = .seconds(20), _ condition: () -> Bool) -> Bool {
    eventually(timeout: timeout, condition)
}

@available(*, deprecated, renamed: "testBytes(_:seed:)")
public func patternBytes(_ count: Int, seed: UInt64 = 0x5EED) -> [UInt8] { testBytes(count, seed: seed) }

@available(*, deprecated, renamed: "freePort()")
public func unusedPort() throws -> UInt16 { try freePort() }

@available(*, deprecated, message: "use executablePath(\"sluice\")")
public func sluiceExecutablePath() throws -> String { try executablePath("sluice") }

@available(*, deprecated, message: "use ChildProcess(executable: \"foundation-test-helper\", arguments:)")
public func HelperProcess(_ arguments: [String]) throws -> ChildProcess {
    try ChildProcess(executable: "foundation-test-helper", arguments: arguments)
}
