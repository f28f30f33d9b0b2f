// HTTP1 layer (WebSocket, RFC 6455 §5): the frame codec — an incremental reader over the caller's receive
// buffer that assembles messages and enforces the RFC's rules, and a writer that appends frames to a
// caller-owned byte array. No I/O and no clock: the connection layer above drives both.

/// Frame opcodes (RFC 6455 §5.2, §11.8).
public enum WebSocketOpcode: UInt8, Sendable, Hashable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// A close status code (RFC 6455 §7.4, IANA "WebSocket Close Code Number Registry").
public struct WebSocketCloseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let normalClosure = WebSocketCloseCode(1000)
    public static let goingAway = WebSocketCloseCode(1001)
    public static let protocolError = WebSocketCloseCode(1002)
    public static let unsupportedData = WebSocketCloseCode(1003)
    /// Reported (never sent) when a close frame carried no code.
    public static let noStatusReceived = WebSocketCloseCode(1005)
    /// Reported (never sent) when the connection ended without a close frame.
    public static let abnormalClosure = WebSocketCloseCode(1006)
    public static let invalidPayloadData = WebSocketCloseCode(1007)
    public static let policyViolation = WebSocketCloseCode(1008)
    public static let messageTooBig = WebSocketCloseCode(1009)
    public static let mandatoryExtension = WebSocketCloseCode(1010)
    public static let internalError = WebSocketCloseCode(1011)
    /// What Knative's stat server sends its clients when it shuts down ("reconnect now").
    public static let serviceRestart = WebSocketCloseCode(1012)
    public static let tryAgainLater = WebSocketCloseCode(1013)

    /// Whether a peer may put this code in a close frame: the defined 1000–1003 and 1007–1014, and
    /// the ranges for libraries and applications (3000–4999). 1004–1006 and 1015 are reserved.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000 ... 1003, 1007 ... 1014, 3000 ... 4999: true
        default: false
        }
    }

    public var description: String { "\(rawValue)" }
}

/// Which end of the connection this codec serves: clients mask what they send, servers never do, and
/// each side refuses frames masked the wrong way (RFC 6455 §5.1).
public enum WebSocketRole: Sendable, Hashable {
    case server
    case client
}

/// A complete data message.
public enum WebSocketMessage: Sendable, Hashable {
    case text(String)
    case binary([UInt8])
}

/// What the reader produced from the bytes it was given.
public enum WebSocketEvent: Sendable, Hashable {
    case message(WebSocketMessage)
    case ping([UInt8])
    case pong([UInt8])
    /// The peer's close frame: its code (nil when the frame had no payload) and reason.
    case close(WebSocketCloseCode?, reason: String)
}

/// A violation that fails the connection: the code to send in our close frame and a reason naming the
/// offending input.
public struct WebSocketProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: WebSocketCloseCode
    public var reason: String
    public init(_ code: WebSocketCloseCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }
    public var description: String { "\(code.rawValue) \(reason)" }
}

/// The answer of one `WebSocketFrameReader.read` call. `consumed` counts bytes from the start of the
/// bytes passed; the caller drops them and calls again with the rest (plus whatever arrives).
public enum WebSocketReadResult: Sendable, Hashable {
    /// Every byte up to `consumed` was taken in; the next event needs more bytes.
    case needMore(consumed: Int)
    /// An event is complete after `consumed` bytes.
    case event(WebSocketEvent, consumed: Int)
    /// The bytes break the protocol: close with `error.code` and read no further.
    case failure(WebSocketProtocolError)
}

/// Incremental frame reader and message assembler. Feed it the unconsumed receive bytes; it keeps the
/// position inside a frame between calls, so frames may arrive split at any byte. Payloads are
/// unmasked into the message being assembled (the only copy), bounded by `maxMessageBytes`.
public struct WebSocketFrameReader: Sendable {
    public let role: WebSocketRole
    /// A data message (all its fragments) longer than this fails with 1009.
    public var maxMessageBytes: Int

    private var inPayload = false
    private var frameOpcode = WebSocketOpcode.continuation
    private var frameFin = false
    private var frameMasked = false
    private var mask: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
    private var remaining: UInt64 = 0
    private var maskOffset = 0
    /// The opcode of the fragmented message in progress (text or binary), nil between messages.
    private var messageOpcode: WebSocketOpcode?
    private var message: [UInt8] = []
    private var control: [UInt8] = []
    public private(set) var hasFailed = false

    public init(role: WebSocketRole, maxMessageBytes: Int = 1 << 20) {
        self.role = role
        self.maxMessageBytes = maxMessageBytes
        control.reserveCapacity(125)
    }

    /// True between frames and outside any fragmented message (a clean place to stop reading).
    public var isAtMessageBoundary: Bool { !inPayload && messageOpcode == nil }

    /// Reads from `bytes` until an event completes, the bytes run out, or the protocol is broken.
    public mutating func read(_ bytes: Span<UInt8>) -> WebSocketReadResult {
        if hasFailed { return .failure(WebSocketProtocolError(.protocolError, "read after a protocol failure")) }
        var offset = 0
        let count = bytes.count
        while true {
            if !inPayload {
                guard count - offset >= 2 else { return .needMore(consumed: offset) }
                let b0 = bytes[offset]
                let b1 = bytes[offset + 1]
                let length7 = Int(b1 & 0x7F)
                let extended = length7 == 126 ? 2 : (length7 == 127 ? 8 : 0)
                let masked = b1 & 0x80 != 0
                let headerLength = 2 + extended + (masked ? 4 : 0)
                // Checks that need only the first two bytes fail fast, before the rest arrives.
                if let error = checkFirstBytes(b0, b1) { return fail(error) }
                guard count - offset >= headerLength else { return .needMore(consumed: offset) }
                var length = UInt64(length7)
                if extended == 2 {
                    length = UInt64(bytes[offset + 2]) << 8 | UInt64(bytes[offset + 3])
                    if length < 126 { return fail(.init(.protocolError, "payload length \(length) not minimally encoded (16-bit form)")) }
                } else if extended == 8 {
                    length = 0
                    for i in 0 ..< 8 { length = length << 8 | UInt64(bytes[offset + 2 + i]) }
                    if length >> 63 != 0 { return fail(.init(.protocolError, "64-bit payload length with the most significant bit set")) }
                    if length < 65536 { return fail(.init(.protocolError, "payload length \(length) not minimally encoded (64-bit form)")) }
                }
                let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) ?? .continuation
                if !opcode.isControl {
                    let sofar = UInt64(opcode == .continuation ? message.count : 0)
                    if sofar &+ length > UInt64(maxMessageBytes) {
                        return fail(.init(.messageTooBig, "message of \(sofar &+ length)+ bytes exceeds the limit of \(maxMessageBytes)"))
                    }
                }
                if masked {
                    let m = offset + 2 + extended
                    mask = (bytes[m], bytes[m + 1], bytes[m + 2], bytes[m + 3])
                }
                frameOpcode = opcode
                frameFin = b0 & 0x80 != 0
                frameMasked = masked
                remaining = length
                maskOffset = 0
                offset += headerLength
                if opcode.isControl {
                    control.removeAll(keepingCapacity: true)
                } else {
                    if opcode != .continuation {
                        messageOpcode = opcode
                        message.removeAll(keepingCapacity: message.capacity <= 64 * 1024)
                        // Grown as bytes arrive beyond 64 KiB: a header alone must not reserve megabytes.
                        message.reserveCapacity(min(Int(length), 64 * 1024))
                    }
                }
                inPayload = true
            }
            if remaining > 0 {
                let available = count - offset
                guard available > 0 else { return .needMore(consumed: offset) }
                let n = Int(min(UInt64(available), remaining))
                if frameOpcode.isControl {
                    maskOffset = Self.appendPayload(bytes, offset, n, masked: frameMasked, mask: mask, maskOffset: maskOffset, to: &control)
                } else {
                    maskOffset = Self.appendPayload(bytes, offset, n, masked: frameMasked, mask: mask, maskOffset: maskOffset, to: &message)
                }
                offset += n
                remaining -= UInt64(n)
                if remaining > 0 { return .needMore(consumed: offset) }
            }
            inPayload = false
            switch frameComplete() {
            case .none:
                continue
            case .some(.success(let event)):
                return .event(event, consumed: offset)
            case .some(.failure(let error)):
                return fail(error)
            }
        }
    }

    private mutating func fail(_ error: WebSocketProtocolError) -> WebSocketReadResult {
        hasFailed = true
        return .failure(error)
    }

    private func checkFirstBytes(_ b0: UInt8, _ b1: UInt8) -> WebSocketProtocolError? {
        if b0 & 0x70 != 0 {
            return .init(.protocolError, "reserved bits 0x\(String(b0 & 0x70, radix: 16)) set without a negotiated extension")
        }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else {
            return .init(.protocolError, "unknown opcode 0x\(String(b0 & 0x0F, radix: 16))")
        }
        let masked = b1 & 0x80 != 0
        switch role {
        case .server where !masked: return .init(.protocolError, "client frame is not masked")
        case .client where masked: return .init(.protocolError, "server frame is masked")
        default: break
        }
        if opcode.isControl {
            if b0 & 0x80 == 0 { return .init(.protocolError, "fragmented control frame (opcode \(opcode.rawValue))") }
            if b1 & 0x7F > 125 { return .init(.protocolError, "control frame payload longer than 125 bytes") }
        } else if opcode == .continuation {
            if messageOpcode == nil { return .init(.protocolError, "continuation frame without a message in progress") }
        } else if messageOpcode != nil {
            return .init(.protocolError, "new data frame while a fragmented message is in progress")
        }
        return nil
    }

    /// Appends `n` payload bytes from `start`, unmasked; returns the mask position for the next byte.
    private static func appendPayload(_ bytes: Span<UInt8>, _ start: Int, _ n: Int, masked: Bool,
                                      mask: (UInt8, UInt8, UInt8, UInt8), maskOffset: Int, to out: inout [UInt8]) -> Int {
        if !masked {
            for i in start ..< start + n { out.append(bytes[i]) }
            return maskOffset
        }
        var k = maskOffset
        for i in start ..< start + n {
            let m: UInt8
            switch k & 3 {
            case 0: m = mask.0
            case 1: m = mask.1
            case 2: m = mask.2
            default: m = mask.3
            }
            out.append(bytes[i] ^ m)
            k &+= 1
        }
        return k & 3
    }

    /// A frame's payload is complete: the event it completes, nil when the message goes on.
    private mutating func frameComplete() -> Result<WebSocketEvent, WebSocketProtocolError>? {
        switch frameOpcode {
        case .ping:
            return .success(.ping(control))
        case .pong:
            return .success(.pong(control))
        case .close:
            if control.isEmpty { return .success(.close(nil, reason: "")) }
            if control.count == 1 { return .failure(.init(.protocolError, "close frame with a 1-byte payload")) }
            let code = WebSocketCloseCode(UInt16(control[0]) << 8 | UInt16(control[1]))
            if !code.isValidOnWire { return .failure(.init(.protocolError, "invalid close code \(code.rawValue)")) }
            guard let reason = String(validating: control[2...], as: UTF8.self) else {
                return .failure(.init(.invalidPayloadData, "close reason is not valid UTF-8"))
            }
            return .success(.close(code, reason: reason))
        case .text, .binary, .continuation:
            guard frameFin, let opcode = messageOpcode else { return nil }
            messageOpcode = nil
            if opcode == .text {
                guard let text = String(validating: message, as: UTF8.self) else {
                    return .failure(.init(.invalidPayloadData, "text message is not valid UTF-8"))
                }
                return .success(.message(.text(text)))
            }
            let payload = message
            message.removeAll(keepingCapacity: message.capacity <= 64 * 1024)
            return .success(.message(.binary(payload)))
        }
    }
}

/// Appends frames to a caller-owned byte array.
public enum WebSocketFrameWriter {
    /// One frame: header, then `payload` (masked with `maskKey` when given: clients must mask).
    public static func appendFrame(
        opcode: WebSocketOpcode, payload: some Collection<UInt8>, fin: Bool = true, maskKey: UInt32? = nil,
        to out: inout [UInt8]
    ) {
        out.append((fin ? 0x80 : 0) | opcode.rawValue)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        let length = payload.count
        if length < 126 {
            out.append(maskBit | UInt8(length))
        } else if length <= 0xFFFF {
            out.append(maskBit | 126)
            out.append(UInt8(length >> 8))
            out.append(UInt8(truncatingIfNeeded: length))
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: UInt64(length) >> UInt64(shift))) }
        }
        guard let maskKey else {
            out.append(contentsOf: payload)
            return
        }
        let key = [UInt8(maskKey >> 24), UInt8(truncatingIfNeeded: maskKey >> 16), UInt8(truncatingIfNeeded: maskKey >> 8), UInt8(truncatingIfNeeded: maskKey)]
        out.append(contentsOf: key)
        var i = 0
        for byte in payload {
            out.append(byte ^ key[i & 3])
            i &+= 1
        }
    }

    /// The payload of a close frame: the code big-endian, then the reason cut to fit the 125-byte
    /// control-frame limit at a character boundary.
    public static func closePayload(code: WebSocketCloseCode, reason: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(code.rawValue >> 8), UInt8(truncatingIfNeeded: code.rawValue)]
        var used = 0
        for scalar in reason.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if used + bytes.count > 123 { break }
            out.append(contentsOf: bytes)
            used += bytes.count
        }
        return out
    }
}
