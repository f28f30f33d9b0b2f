// Log output shared by every Sluice binary: swift-log events as one JSON object per line (Knative's
// components log zap JSON lines too), and a plain line sink for request logs. Below every other layer:
// it only writes bytes to a file descriptor.
import Logging
import Synchronization

/// A blocking output descriptor (stdout, stderr) written one whole line at a time, so lines from
/// several threads never interleave.
public final class LineOutput: Sendable {
    public let fileDescriptor: Int32
    private let lock = Mutex(())

    public static let standardOutput = LineOutput(fileDescriptor: 1)
    public static let standardError = LineOutput(fileDescriptor: 2)

    public init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    /// Writes `line` (which should end with a newline). A failed write is dropped: logging never stops
    /// the program.
    public func write(_ line: [UInt8]) {
        lock.withLock { _ in
            try? Syscall.writeAll(fileDescriptor, line)
        }
    }
}

/// A swift-log handler writing `{"level":…,"ts":…,"logger":…,"msg":…, metadata…}` lines.
public struct JSONLogHandler: LogHandler {
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let output: LineOutput

    public init(label: String, level: Logger.Level, output: LineOutput = .standardError) {
        self.label = label
        logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "{\"level\":\(Self.quoted(event.level.rawValue)),\"ts\":\(Self.timestamp())"
        line += ",\"logger\":\(Self.quoted(label)),\"msg\":\(Self.quoted(event.message.description))"
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for key in merged.keys.sorted() {
            if let value = merged[key] { line += ",\(Self.quoted(key)):\(Self.json(value))" }
        }
        line += "}\n"
        output.write(Array(line.utf8))
    }

    /// Seconds since the Unix epoch with microseconds, like zap's epoch time encoder.
    static func timestamp() -> String {
        let micros = (Syscall.realtimeNanoseconds() + 500) / 1000
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return quoted(text)
        case .stringConvertible(let convertible):
            if let number = convertible as? Int { return String(number) }
            if let number = convertible as? Double, number.isFinite { return String(number) }
            if let flag = convertible as? Bool { return flag ? "true" : "false" }
            return quoted(convertible.description)
        case .array(let values): return "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let entries):
            return "{" + entries.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\(json($0.value))" }.joined(separator: ",") + "}"
        }
    }

    public static func quoted(_ text: String) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u00"
                    out.unicodeScalars.append(Unicode.Scalar(hex[Int(scalar.value >> 4)]))
                    out.unicodeScalars.append(Unicode.Scalar(hex[Int(scalar.value & 0xF)]))
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
