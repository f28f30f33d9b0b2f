// Typed reads of a parsed JSON object's fields for the Serving configuration decoders (readiness probe,
// observability, zap logging config): absent or null fields read as nil, unknown fields are ignored (as
// Go's and Foundation's decoders do), and a wrong type is an error naming the field's JSON path.

/// A field of the wrong type (or a value out of range): `path` is like `.httpGet.port` or `[0].grpc`.
public struct JSONFieldError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Why a JSON configuration value was refused: not JSON at all, or JSON of the wrong shape.
public enum JSONDecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    case syntax(JSONSyntaxError)
    case field(JSONFieldError)

    public var description: String {
        switch self {
        case .syntax(let error): error.description
        case .field(let error): error.description
        }
    }
}

/// An object being read, with its path for error messages.
public struct JSONObjectReader {
    public let fields: [String: JSONNode]
    public let path: String

    /// Reads `node` as an object (`path` names it in errors).
    public init(_ node: JSONNode, path: String) throws(JSONFieldError) {
        guard case .object(let fields) = node else {
            throw JSONFieldError(path: path, message: "expected an object, got \(node.typeName)")
        }
        self.fields = fields
        self.path = path
    }

    func present(_ key: String) -> JSONNode? {
        switch fields[key] {
        case nil, .null?: nil
        case let node?: node
        }
    }

    func mismatch(_ key: String, _ expected: String, _ node: JSONNode) -> JSONFieldError {
        JSONFieldError(path: "\(path).\(key)", message: "expected \(expected), got \(node.typeName)")
    }

    public func string(_ key: String) throws(JSONFieldError) -> String? {
        guard let node = present(key) else { return nil }
        guard case .string(let value) = node else { throw mismatch(key, "a string", node) }
        return value
    }

    public func bool(_ key: String) throws(JSONFieldError) -> Bool? {
        guard let node = present(key) else { return nil }
        guard case .bool(let value) = node else { throw mismatch(key, "a boolean", node) }
        return value
    }

    public func double(_ key: String) throws(JSONFieldError) -> Double? {
        guard let node = present(key) else { return nil }
        guard case .number(let number) = node else { throw mismatch(key, "a number", node) }
        return number.double
    }

    public func int64(_ key: String) throws(JSONFieldError) -> Int64? {
        guard let node = present(key) else { return nil }
        guard case .number(let number) = node else { throw mismatch(key, "an integer", node) }
        guard let value = number.integer else {
            throw JSONFieldError(path: "\(path).\(key)", message: "expected an integer, got \(number.literal)")
        }
        return value
    }

    public func int(_ key: String) throws(JSONFieldError) -> Int? {
        guard let value = try int64(key) else { return nil }
        guard let narrowed = Int(exactly: value) else {
            throw JSONFieldError(path: "\(path).\(key)", message: "integer \(value) is out of range")
        }
        return narrowed
    }

    public func object(_ key: String) throws(JSONFieldError) -> JSONObjectReader? {
        guard let node = present(key) else { return nil }
        return try JSONObjectReader(node, path: "\(path).\(key)")
    }

    /// A list field's elements with their paths (`.key[0]`, …).
    public func array(_ key: String) throws(JSONFieldError) -> [(path: String, node: JSONNode)]? {
        guard let node = present(key) else { return nil }
        guard case .array(let elements) = node else { throw mismatch(key, "a list", node) }
        return elements.enumerated().map { ("\(path).\(key)[\($0.offset)]", $0.element) }
    }

    /// The raw node of a field (absent and null read as nil), for fields of more than one type.
    public func node(_ key: String) -> JSONNode? { present(key) }
}
