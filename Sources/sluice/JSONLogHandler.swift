// The `sluice` executable's log output: one JSON object per line on stderr (Knative's components log
// JSON lines too), so operators and scripts can parse what the proxy says.
import Glibc
import Logging
import Synchronization

/// A swift-log handler writing `{"level":…,"ts":…,"logger":…,"msg":…, metadata…}` lines to stderr.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    private static let lock = Mutex(())

    init(label: String, level: Logger.Level) {
        self.label = label
        logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "{\"level\":\(Self.quoted(event.level.rawValue)),\"ts\":\(Self.timestamp())"
        line += ",\"logger\":\(Self.quoted(label)),\"msg\":\(Self.quoted(event.message.description))"
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for key in merged.keys.sorted() {
            if let value = merged[key] { line += ",\(Self.quoted(key)):\(Self.json(value))" }
        }
        line += "}\n"
        let data = Array(line.utf8)
        Self.lock.withLock { _ in
            data.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var offset = 0
                while offset < raw.count {
                    let n = write(2, base + offset, raw.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return quoted(text)
        case .stringConvertible(let convertible):
            if let number = convertible as? Int { return String(number) }
            if let number = convertible as? Double { return String(number) }
            if let flag = convertible as? Bool { return flag ? "true" : "false" }
            return quoted(convertible.description)
        case .array(let values): return "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let entries):
            return "{" + entries.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\(json($0.value))" }.joined(separator: ",") + "}"
        }
    }

    /// Seconds since the epoch with microseconds, e.g. `1795612987.073649` (no Foundation needed).
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let micros = String(now.tv_nsec / 1000)
        return "\(now.tv_sec)." + String(repeating: "0", count: 6 - micros.count) + micros
    }

    static func quoted(_ text: String) -> String {
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
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
