// How Serving logic reads a request's header fields without copying them: a small protocol the HTTP1
// head view conforms to (values stay slices of the receive buffer), plus a list-backed form for tests.

/// Read access to a request's header fields, in arrival order. Names compare ASCII case-insensitively.
public protocol RequestHeaderView {
    /// A field name or value: a view of bytes the request already holds (no copy).
    associatedtype Bytes: Collection where Bytes.Element == UInt8

    /// The value of the first field called `name`, like Go's `Header.Get`; nil when there is none.
    func firstValue(named name: String) -> Bytes?

    /// Calls `body` with every field's name and value, in order, until it returns false.
    func forEachField(_ body: (Bytes, Bytes) -> Bool)
}

/// Header fields kept as a list of owned byte arrays: for tests, probes Sluice sends itself, and any
/// place off the per-request path.
public struct ListedHeaders: RequestHeaderView, Sendable, ExpressibleByDictionaryLiteral {
    public var fields: [(name: [UInt8], value: [UInt8])]

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { (Array($0.0.utf8), Array($0.1.utf8)) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    public mutating func append(_ name: String, _ value: String) {
        fields.append((Array(name.utf8), Array(value.utf8)))
    }

    public func firstValue(named name: String) -> [UInt8]? {
        for field in fields where ASCII.equalsIgnoringCase(field.name, name.utf8) {
            return field.value
        }
        return nil
    }

    public func forEachField(_ body: ([UInt8], [UInt8]) -> Bool) {
        for field in fields where !body(field.name, field.value) {
            return
        }
    }
}

extension RequestHeaderView {
    /// True when the first field called `name` exists and has a non-empty value (Go's `Get(name) != ""`).
    @inlinable
    public func hasNonEmptyValue(named name: String) -> Bool {
        guard let value = firstValue(named: name) else { return false }
        return !value.isEmpty
    }

    /// True when the first field called `name` has exactly the value `expected` (case-sensitive).
    @inlinable
    public func firstValue(named name: String, equals expected: String) -> Bool {
        guard let value = firstValue(named: name) else { return false }
        return value.elementsEqual(expected.utf8)
    }

    /// True when the first field called `name` starts with `prefix` (case-sensitive).
    @inlinable
    public func firstValue(named name: String, hasPrefix prefix: String) -> Bool {
        guard let value = firstValue(named: name) else { return false }
        return ASCII.hasPrefix(value, prefix.utf8)
    }
}

/// ASCII byte helpers shared by the Serving code (header names are ASCII tokens); the enum itself is the
/// codec's (HTTP1/HTTPCharacterClasses.swift).
extension ASCII {
    @inlinable
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
    }

    /// Compares two byte sequences, ignoring ASCII case.
    @inlinable
    public static func equalsIgnoringCase<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        var left = a.makeIterator()
        var right = b.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil):
                return true
            case let (x?, y?) where lowercased(x) == lowercased(y):
                continue
            default:
                return false
            }
        }
    }

    /// True when `value` starts with `prefix`, byte for byte.
    @inlinable
    public static func hasPrefix<A: Collection, B: Collection>(_ value: A, _ prefix: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        var iterator = value.makeIterator()
        for expected in prefix {
            guard let byte = iterator.next(), byte == expected else { return false }
        }
        return true
    }

    /// Appends the decimal digits of `value` to `buffer` without allocating.
    @inlinable
    public static func appendDecimal(_ value: Int64, to buffer: inout [UInt8]) {
        if value < 0 {
            buffer.append(UInt8(ascii: "-"))
            appendDecimal(UInt64(value.magnitude), to: &buffer)
        } else {
            appendDecimal(UInt64(value), to: &buffer)
        }
    }

    /// Appends the decimal digits of `value` to `buffer` without allocating.
    @inlinable
    public static func appendDecimal(_ value: UInt64, to buffer: inout [UInt8]) {
        if value < 10 {
            buffer.append(UInt8(truncatingIfNeeded: value) &+ 0x30)
            return
        }
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor &*= 10 }
        var rest = value
        while divisor > 0 {
            buffer.append(UInt8(truncatingIfNeeded: rest / divisor) &+ 0x30)
            rest %= divisor
            divisor /= 10
        }
    }

    /// Appends the UTF-8 bytes of `text`.
    @inlinable
    public static func append(_ text: String, to buffer: inout [UInt8]) {
        buffer.append(contentsOf: text.utf8)
    }
}
