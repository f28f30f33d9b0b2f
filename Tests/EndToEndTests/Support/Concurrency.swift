// End-to-end test support: run blocking client work on background threads and collect the outcome with
// a deadline, and decode Stat bytes with Debian's protoc.
import Foundation
import Synchronization

/// Work running on its own thread; `wait` returns its result (or nil at the deadline).
final class Background<Value: Sendable>: @unchecked Sendable {
    private let result = Mutex<Result<Value, any Error>?>(nil)

    init(_ body: @escaping @Sendable () throws -> Value) {
        let thread = Thread { [self] in
            let outcome = Result { try body() }
            result.withLock { $0 = outcome }
        }
        thread.start()
    }

    var isDone: Bool { result.withLock { $0 != nil } }

    func wait(timeout: Duration = .seconds(30)) throws -> Value {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if let outcome = result.withLock({ $0 }) { return try outcome.get() }
            usleep(2_000)
        }
        throw E2EError("background work did not finish within \(timeout)")
    }
}

/// Runs Debian's protoc on the committed stat.proto: the text form of `bytes` as `type`.
func protocDecode(type: String = "metrics.Stat", bytes: [UInt8]) throws -> String {
    let protoDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/SluiceCore/Serving/Metrics")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["protoc", "--proto_path=\(protoDirectory.path)", "--decode=\(type)", "stat.proto"]
    let input = Pipe()
    let output = Pipe()
    let errors = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    input.fileHandleForWriting.write(Data(bytes))
    try input.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw E2EError("protoc failed (\(process.terminationStatus)): \(errorText)") }
    return String(decoding: data, as: UTF8.self)
}

/// `protoc --decode` text as field → value (numbers as Double, the pod name as text).
struct DecodedStat: Equatable {
    var fields: [String: String] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\"") && value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            fields[name] = value
        }
    }

    func number(_ name: String) -> Double { fields[name].flatMap(Double.init) ?? 0 }
}
