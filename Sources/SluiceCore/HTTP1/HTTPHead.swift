// HTTP1 layer: the parsed head of a request or response, as offsets into the caller's bytes.
// One `HTTPHead` is reused for every message on a connection: parsing writes into its fixed-capacity
// field storage, so steady-state parsing allocates nothing. The bytes stay owned by the caller.

/// Limits a head must respect. Defaults follow reliability.md §1a (Envoy's values, which the Knative
/// ingress already enforces in front of queue-proxy and activator).
public struct HTTPParserLimits: Sendable, Hashable {
    /// Start line + field lines + final CRLF, in bytes (→ 431). Leading empty lines count too.
    public var maxHeadBytes: Int
    /// Request line or status line including its CRLF (→ 414).
    public var maxStartLineBytes: Int
    /// Field lines in a head, and separately in a trailer section (→ 431).
    public var maxFieldCount: Int
    /// Options a Connection header may nominate; bounds the hop-by-hop marking work.
    public var maxConnectionOptions: Int
    /// A chunk-size line (size and extensions, without CRLF).
    public var maxChunkLineBytes: Int
    /// Chunk-extension bytes over a whole message, so tiny chunks cannot carry unbounded metadata.
    public var maxChunkExtensionBytesPerMessage: Int
    /// Reject a request whose Transfer-Encoding is anything but a lone `chunked` with
    /// `unsupportedTransferCoding` (501). Sluice never decodes transfer codings, so this stays on.
    public var rejectTransferCodingsOtherThanChunked: Bool

    public init(
        maxHeadBytes: Int = 64 * 1024,
        maxStartLineBytes: Int = 16 * 1024,
        maxFieldCount: Int = 100,
        maxConnectionOptions: Int = 32,
        maxChunkLineBytes: Int = 4 * 1024,
        maxChunkExtensionBytesPerMessage: Int = 64 * 1024,
        rejectTransferCodingsOtherThanChunked: Bool = true
    ) {
        // Offsets are stored in 32 bits; clamp far below that so sums never overflow.
        let cap = 1 << 28
        self.maxHeadBytes = min(max(maxHeadBytes, 16), cap)
        self.maxStartLineBytes = min(max(maxStartLineBytes, 16), cap)
        self.maxFieldCount = min(max(maxFieldCount, 1), 1 << 16)
        self.maxConnectionOptions = min(max(maxConnectionOptions, 1), 1 << 16)
        self.maxChunkLineBytes = min(max(maxChunkLineBytes, 1), cap)
        self.maxChunkExtensionBytesPerMessage = min(max(maxChunkExtensionBytesPerMessage, 0), cap)
        self.rejectTransferCodingsOtherThanChunked = rejectTransferCodingsOtherThanChunked
    }

    public static let `default` = HTTPParserLimits()
}

/// The two protocol versions this codec speaks.
public enum HTTPVersion: UInt8, Sendable, Hashable {
    case http10
    case http11

    /// `HTTP/1.0` or `HTTP/1.1`.
    public var text: String { self == .http10 ? "HTTP/1.0" : "HTTP/1.1" }
}

/// Methods the server and proxy treat specially; everything else is `.other` (see `methodRange`).
public enum HTTPMethod: UInt8, Sendable, Hashable {
    case get, head, post, put, delete, connect, options, trace, patch, other
}

/// How the body after a head is delimited (RFC 9112 §6.3).
public enum HTTPBodyFraming: Sendable, Hashable {
    /// No body follows: requests without CL/TE, HEAD/1xx/204/304 responses.
    case none
    /// Exactly this many bytes follow.
    case contentLength(UInt64)
    /// A chunked body follows; decode or forward it with `HTTPBodyDecoder`.
    case chunked
    /// A response body that runs until the connection closes.
    case closeDelimited
    /// The bytes after the head belong to another protocol: a CONNECT request, a 101 response, or a
    /// 2xx answer to CONNECT. The parser stops; `HTTPParseResult.complete` tells where the rest starts.
    case tunnel
}

/// The shape of a request target (RFC 9112 §3.2).
public enum HTTPTargetForm: UInt8, Sendable, Hashable {
    case origin, absolute, authority, asterisk
}

/// Field names the parser recognises while it scans, so the server and proxy find them without a
/// lookup. `none` is any other name.
public enum HTTPKnownField: UInt8, Sendable, Hashable {
    case none
    case host, contentLength, transferEncoding, connection, upgrade, expect
    case keepAlive, proxyConnection, te, trailer, proxyAuthenticate, proxyAuthorization

    /// Hop-by-hop fields a proxy never forwards as-is (Go's ReverseProxy list, which Knative uses).
    /// Transfer-Encoding is in it: a proxy that forwards chunked bytes verbatim keeps that line.
    public var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade,
             .proxyAuthenticate, .proxyAuthorization:
            return true
        default:
            return false
        }
    }
}

/// One field line of a head, as offsets into the bytes the head was parsed from.
public struct HTTPField: Sendable, Hashable {
    @usableFromInline var lineStart: UInt32
    @usableFromInline var nameLength: UInt32
    @usableFromInline var valueStart: UInt32
    @usableFromInline var valueLength: UInt32
    @usableFromInline var lineLength: UInt32
    @usableFromInline var knownRaw: UInt8
    @usableFromInline var flags: UInt8

    static let nominatedFlag: UInt8 = 1

    @inlinable init() {
        lineStart = 0; nameLength = 0; valueStart = 0; valueLength = 0; lineLength = 0; knownRaw = 0; flags = 0
    }

    @inlinable init(
        lineStart: UInt32, nameLength: UInt32, valueStart: UInt32, valueLength: UInt32, lineLength: UInt32,
        knownRaw: UInt8, flags: UInt8
    ) {
        self.lineStart = lineStart
        self.nameLength = nameLength
        self.valueStart = valueStart
        self.valueLength = valueLength
        self.lineLength = lineLength
        self.knownRaw = knownRaw
        self.flags = flags
    }

    /// The field name, as received (case preserved).
    @inlinable public var name: Range<Int> { Int(lineStart)..<Int(lineStart &+ nameLength) }
    /// The field value without leading and trailing SP/HTAB.
    @inlinable public var value: Range<Int> { Int(valueStart)..<Int(valueStart &+ valueLength) }
    /// The whole line including its CRLF: what a proxy writes or skips.
    @inlinable public var line: Range<Int> { Int(lineStart)..<Int(lineStart &+ lineLength) }
    /// The recognised name, if it is one the codec tracks.
    public var known: HTTPKnownField { HTTPKnownField(rawValue: knownRaw) ?? .none }
    /// True when the Connection header names this field (so a proxy drops it). Content-Length,
    /// Transfer-Encoding and Host are never marked: dropping them would change the framing or routing.
    public var isNominatedByConnection: Bool { flags & HTTPField.nominatedFlag != 0 }
    /// True when a proxy must not forward this line: a standard hop-by-hop field or a nominated one.
    public var isHopByHop: Bool { isNominatedByConnection || known.isHopByHop }
}

/// The answer of one parse call.
public enum HTTPParseResult: Sendable, Hashable {
    /// The head is complete; it spans the first `consumed` bytes (leading empty lines included).
    case complete(Int)
    /// More bytes are needed. Call again with the same bytes plus what arrived.
    case incomplete
    /// The bytes break `ParseError` at `offset` (from the start of the bytes passed). Close after
    /// answering; never parse further on this connection.
    case error(ParseError, offset: Int)
}

/// A lower-case field name prepared once, for allocation-free case-insensitive lookups.
public struct HTTPFieldName: Sendable, Hashable {
    public let lowercased: [UInt8]

    /// `name` must be a token; upper-case ASCII letters are folded here, once.
    public init(_ name: String) {
        lowercased = name.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
    }
}

/// A parsed request or response head. Create one per connection and reuse it: each parse call
/// overwrites it. All ranges index the bytes passed to the parse call that returned `.complete`.
public struct HTTPHead: Sendable {
    public let limits: HTTPParserLimits

    @usableFromInline var storage: HTTPFieldStorage
    /// Number of field lines in `fields`.
    public internal(set) var fieldCount: Int = 0
    var scan = HeadScanState()
    let characterTable = CharacterTable()

    // Request line.
    public internal(set) var method: HTTPMethod = .other
    public internal(set) var methodRange: Range<Int> = 0..<0
    public internal(set) var target: Range<Int> = 0..<0
    public internal(set) var targetForm: HTTPTargetForm = .origin
    // Status line.
    public internal(set) var status: Int = 0
    public internal(set) var reason: Range<Int> = 0..<0
    // Both.
    public internal(set) var version: HTTPVersion = .http11
    /// The start line including its CRLF (after any leading empty lines).
    public internal(set) var startLine: Range<Int> = 0..<0
    /// Bytes of the whole head, final CRLF included (equals the `.complete` count).
    public internal(set) var headLength: Int = 0
    public internal(set) var isRequest: Bool = true

    // What the server and proxy need without rescanning.
    public internal(set) var framing: HTTPBodyFraming = .none
    /// The yes/no facts below, one bit each, written once per head.
    var flagBits: UInt8 = 0
    static let keepAliveBit: UInt8 = 1
    static let expectsContinueBit: UInt8 = 2
    static let unsupportedExpectationBit: UInt8 = 4
    static let upgradeBit: UInt8 = 8
    static let connectionUpgradeBit: UInt8 = 16
    static let connectionCloseBit: UInt8 = 32
    static let codingsBeforeChunkedBit: UInt8 = 64
    static let repeatedContentLengthBit: UInt8 = 128

    /// Whether the connection may carry another message after this one (RFC 9112 §9.3).
    public var keepAlive: Bool { flagBits & HTTPHead.keepAliveBit != 0 }
    /// An HTTP/1.1 request with `Expect: 100-continue`.
    public var expectsContinue: Bool { flagBits & HTTPHead.expectsContinueBit != 0 }
    /// An Expect value other than 100-continue (a server may answer 417).
    public var hasUnsupportedExpectation: Bool { flagBits & HTTPHead.unsupportedExpectationBit != 0 }
    /// The message has an Upgrade field.
    public var hasUpgrade: Bool { flagBits & HTTPHead.upgradeBit != 0 }
    /// Connection lists the `upgrade` option.
    public var connectionUpgrade: Bool { flagBits & HTTPHead.connectionUpgradeBit != 0 }
    /// Connection lists `close`.
    public var connectionClose: Bool { flagBits & HTTPHead.connectionCloseBit != 0 }
    /// Transfer-Encoding lists codings other than the final `chunked` (only possible for responses,
    /// or for requests when `rejectTransferCodingsOtherThanChunked` is off).
    public var hasTransferCodingsBeforeChunked: Bool { flagBits & HTTPHead.codingsBeforeChunkedBit != 0 }
    /// More than one Content-Length value (identical, so accepted): a proxy forwards only one.
    public var hasRepeatedContentLength: Bool { flagBits & HTTPHead.repeatedContentLengthBit != 0 }
    /// The Host value (trimmed), when a Host line exists.
    public internal(set) var host: Range<Int>? = nil

    public init(limits: HTTPParserLimits = .default) {
        self.limits = limits
        self.storage = HTTPFieldStorage(capacity: limits.maxFieldCount)
    }

    /// Forget any partial parse so the next call starts a new message. Called implicitly after a
    /// `.complete` or `.error` result.
    public mutating func reset() {
        scan = HeadScanState()
        fieldCount = 0
    }

    /// The field lines, in order.
    public var fields: HTTPFieldList { HTTPFieldList(storage: storage, count: fieldCount) }

    /// The `index`-th field line.
    @inlinable public func field(at index: Int) -> HTTPField { storage[index] }

    /// The first field line the codec recognised as `known`.
    public func firstField(_ known: HTTPKnownField) -> HTTPField? {
        for i in 0..<fieldCount where storage[i].knownRaw == known.rawValue { return storage[i] }
        return nil
    }

    /// The first field line named `name` (ASCII case-insensitive), looked up in `bytes`, which must
    /// be the bytes this head was parsed from. Allocates nothing.
    public func firstField(named name: HTTPFieldName, in bytes: Span<UInt8>) -> HTTPField? {
        for i in 0..<fieldCount where HTTPHead.nameEquals(storage[i], name.lowercased, bytes) {
            return storage[i]
        }
        return nil
    }

    /// Every field line named `name`, in order.
    public func fields(named name: HTTPFieldName, in bytes: Span<UInt8>) -> [HTTPField] {
        var out: [HTTPField] = []
        for i in 0..<fieldCount where HTTPHead.nameEquals(storage[i], name.lowercased, bytes) {
            out.append(storage[i])
        }
        return out
    }

    static func nameEquals(_ field: HTTPField, _ lower: [UInt8], _ bytes: Span<UInt8>) -> Bool {
        guard Int(field.nameLength) == lower.count, field.line.upperBound <= bytes.count else { return false }
        let start = Int(field.lineStart)
        for j in 0..<lower.count {
            let b = bytes[start + j]
            let folded = b &- 0x41 < 26 ? b | 0x20 : b
            if folded != lower[j] { return false }
        }
        return true
    }
}

/// The field lines of a head, as a random-access collection (iterating allocates nothing).
public struct HTTPFieldList: RandomAccessCollection, Sendable {
    let storage: HTTPFieldStorage
    public let count: Int
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(position: Int) -> HTTPField {
        precondition(position >= 0 && position < count, "HTTPFieldList index out of range")
        return storage[position]
    }
}
