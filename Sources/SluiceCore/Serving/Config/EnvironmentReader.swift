// Reads typed settings out of an environment dictionary, collecting every problem (missing required
// variables, invalid values) so one error can name them all. Serving layer, startup-time only.

/// A configuration problem a user can fix: names the variable, the value and what was expected.
public struct ConfigurationIssue: Sendable, Equatable, CustomStringConvertible {
    public var variable: String
    public var value: String
    public var reason: String

    public init(variable: String, value: String, reason: String) {
        self.variable = variable
        self.value = value
        self.reason = reason
    }

    public var description: String {
        "\(variable)=\(Self.quoted(value)): \(reason)"
    }

    static func quoted(_ value: String) -> String {
        var shown = ""
        for character in value.prefix(200) {
            shown += character == "\n" ? "\\n" : String(character)
        }
        return "\"" + shown + (value.count > 200 ? "…\"" : "\"")
    }
}

/// Everything wrong with an environment: all missing required variables by name, then every invalid value.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var missing: [String]
    public var invalid: [ConfigurationIssue]

    public init(missing: [String] = [], invalid: [ConfigurationIssue] = []) {
        self.missing = missing
        self.invalid = invalid
    }

    public var description: String {
        var lines: [String] = []
        if !missing.isEmpty {
            lines.append("missing required environment variable\(missing.count == 1 ? "" : "s"): \(missing.joined(separator: ", "))")
        }
        for issue in invalid {
            lines.append("invalid \(issue)")
        }
        return lines.joined(separator: "\n")
    }
}

struct EnvironmentReader {
    let environment: [String: String]
    var missing: [String] = []
    var invalid: [ConfigurationIssue] = []

    init(_ environment: [String: String]) {
        self.environment = environment
    }

    /// A required variable must be set; like Knative's envconfig an empty string counts as set.
    mutating func requiredString(_ name: String) -> String {
        guard let value = environment[name] else {
            missing.append(name)
            return ""
        }
        return value
    }

    func optionalString(_ name: String) -> String? {
        environment[name]
    }

    mutating func requiredInt(_ name: String, range: ClosedRange<Int>, expectation: String) -> Int {
        guard let raw = environment[name] else {
            missing.append(name)
            return range.lowerBound
        }
        return parseInt(name, raw, range: range, expectation: expectation) ?? range.lowerBound
    }

    /// An optional integer: absent or empty gives the default.
    mutating func optionalInt(_ name: String, default defaultValue: Int, range: ClosedRange<Int>, expectation: String) -> Int {
        guard let raw = environment[name], !raw.isEmpty else { return defaultValue }
        return parseInt(name, raw, range: range, expectation: expectation) ?? defaultValue
    }

    mutating func parseInt(_ name: String, _ raw: String, range: ClosedRange<Int>, expectation: String) -> Int? {
        guard let value = Int(raw), range.contains(value) else {
            invalid.append(ConfigurationIssue(variable: name, value: raw, reason: "must be \(expectation)"))
            return nil
        }
        return value
    }

    mutating func requiredPort(_ name: String) -> Int {
        requiredInt(name, range: 1...65535, expectation: "a port number between 1 and 65535")
    }

    mutating func optionalPort(_ name: String, default defaultValue: Int) -> Int {
        optionalInt(name, default: defaultValue, range: 1...65535, expectation: "a port number between 1 and 65535")
    }

    /// Go's strconv.ParseBool spellings; absent or empty gives false.
    mutating func optionalBool(_ name: String) -> Bool {
        guard let raw = environment[name], !raw.isEmpty else { return false }
        switch raw {
        case "1", "t", "T", "true", "TRUE", "True": return true
        case "0", "f", "F", "false", "FALSE", "False": return false
        default:
            invalid.append(ConfigurationIssue(variable: name, value: raw, reason: "must be true or false"))
            return false
        }
    }

    /// Non-negative decimal seconds ("30", "0.5"); absent or empty gives the default.
    mutating func optionalSeconds(_ name: String, default defaultValue: Duration) -> Duration {
        guard let raw = environment[name], !raw.isEmpty else { return defaultValue }
        guard let seconds = Double(raw), seconds.isFinite, seconds >= 0, seconds < 1e9 else {
            invalid.append(ConfigurationIssue(variable: name, value: raw, reason: "must be a number of seconds, 0 or more"))
            return defaultValue
        }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    mutating func report(_ name: String, _ value: String, _ reason: String) {
        invalid.append(ConfigurationIssue(variable: name, value: value, reason: reason))
    }

    func error() -> ConfigurationError? {
        missing.isEmpty && invalid.isEmpty ? nil : ConfigurationError(missing: missing, invalid: invalid)
    }
}
