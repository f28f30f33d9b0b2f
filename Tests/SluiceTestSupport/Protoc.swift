// Test support, Stat wire checks: decodes Stat bytes with Debian's protoc against the committed
// stat.proto, so the bytes are checked by a decoder that is not ours.
import Foundation

/// The text form of `bytes` as message `type`, from `protoc --decode` (a child process, bounded in time).
public func protocDecode(type: String = "metrics.Stat", bytes: [UInt8]) throws -> String {
    let protoDirectory = packageRoot.appendingPathComponent("Sources/SluiceCore/Serving/Metrics")
    let result = try ChildProcess.run("/usr/bin/env", ["protoc", "--proto_path=\(protoDirectory.path)", "--decode=\(type)", "stat.proto"],
                                      stdin: bytes)
    guard result.status == 0 else { throw TestFailure("protoc failed (\(result.status)): \(result.stderr)") }
    return result.stdout
}

/// `protoc --decode` text as field → value (quotes removed from strings).
public struct DecodedStat: Equatable, Sendable {
    public var fields: [String: String] = [:]

    public init(_ text: String) {
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\"") && value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            fields[name] = value
        }
    }

    /// The field as a number (0 when absent: proto3 leaves zero values out).
    public func number(_ name: String) -> Double { fields[name].flatMap(Double.init) ?? 0 }
}
