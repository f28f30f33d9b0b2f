// HTTP1 layer: writes request/response heads and chunked framing into a caller-owned byte buffer.
// It validates before it writes, so a rejected call leaves the buffer as it was: CR, LF, NUL and
// non-token names never reach the wire (the lesson of CVE-2023-25690).

/// Why the serializer refused to write.
public enum HTTPSerializationError: Error, Hashable, Sendable {
    /// Empty method or a non-token byte in it.
    case invalidMethod
    /// Empty target or a byte outside RFC 3986's set (CR, LF, NUL, SP and `#` included).
    case invalidTarget
    /// Empty field name or a non-token byte in it.
    case invalidFieldName
    /// CR, LF, NUL, DEL or another control character (HTAB allowed) in a field value.
    case invalidFieldValue
    /// A control character in the reason phrase.
    case invalidReasonPhrase
    /// A status code outside 100...599.
    case invalidStatusCode
    /// A chunk of zero bytes (that would end the body); use `appendLastChunk`.
    case emptyChunk
}

/// Appends HTTP/1.1 framing to a `[UInt8]` the caller owns and reuses (keep its capacity between
/// messages and nothing is allocated in steady state).
public enum HTTPSerializer {
    /// `method SP target SP version CRLF`.
    public static func appendRequestLine(
        method: some Collection<UInt8>, target: some Collection<UInt8>, version: HTTPVersion = .http11,
        to out: inout [UInt8]
    ) throws(HTTPSerializationError) {
        guard !method.isEmpty, method.allSatisfy(CharacterClass.isToken) else { throw .invalidMethod }
        guard !target.isEmpty, target.allSatisfy({ CharacterClass.table[Int($0)] & CharacterClass.target != 0 }) else {
            throw .invalidTarget
        }
        out.append(contentsOf: method)
        out.append(ASCII.sp)
        out.append(contentsOf: target)
        out.append(ASCII.sp)
        appendVersion(version, to: &out)
        appendCRLF(to: &out)
    }

    public static func appendRequestLine(
        method: String, target: String, version: HTTPVersion = .http11, to out: inout [UInt8]
    ) throws(HTTPSerializationError) {
        try appendRequestLine(method: method.utf8, target: target.utf8, version: version, to: &out)
    }

    /// `version SP status SP reason CRLF`.
    public static func appendStatusLine(
        status: Int, reason: some Collection<UInt8>, version: HTTPVersion = .http11, to out: inout [UInt8]
    ) throws(HTTPSerializationError) {
        guard status >= 100 && status <= 599 else { throw .invalidStatusCode }
        guard reason.allSatisfy(CharacterClass.isFieldValue) else { throw .invalidReasonPhrase }
        appendVersion(version, to: &out)
        out.append(ASCII.sp)
        out.append(UInt8(0x30 + status / 100))
        out.append(UInt8(0x30 + status / 10 % 10))
        out.append(UInt8(0x30 + status % 10))
        out.append(ASCII.sp)
        out.append(contentsOf: reason)
        appendCRLF(to: &out)
    }

    public static func appendStatusLine(
        status: Int, reason: String, version: HTTPVersion = .http11, to out: inout [UInt8]
    ) throws(HTTPSerializationError) {
        try appendStatusLine(status: status, reason: reason.utf8, version: version, to: &out)
    }

    /// `name: value CRLF`. Values are written as given; parsers trim surrounding SP/HTAB.
    public static func appendField(
        name: some Collection<UInt8>, value: some Collection<UInt8>, to out: inout [UInt8]
    ) throws(HTTPSerializationError) {
        guard !name.isEmpty, name.allSatisfy(CharacterClass.isToken) else { throw .invalidFieldName }
        guard value.allSatisfy(CharacterClass.isFieldValue) else { throw .invalidFieldValue }
        out.append(contentsOf: name)
        out.append(ASCII.colon)
        out.append(ASCII.sp)
        out.append(contentsOf: value)
        appendCRLF(to: &out)
    }

    public static func appendField(name: String, value: String, to out: inout [UInt8]) throws(HTTPSerializationError) {
        try appendField(name: name.utf8, value: value.utf8, to: &out)
    }

    /// `Content-Length: n CRLF`.
    public static func appendContentLength(_ length: UInt64, to out: inout [UInt8]) {
        out.append(contentsOf: "Content-Length: ".utf8)
        appendDecimal(length, to: &out)
        appendCRLF(to: &out)
    }

    /// `Transfer-Encoding: chunked CRLF`.
    public static func appendChunkedTransferEncoding(to out: inout [UInt8]) {
        out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
    }

    /// The empty line that ends a head or a trailer section.
    public static func appendEndOfHead(to out: inout [UInt8]) { appendCRLF(to: &out) }

    /// The size line before `size` bytes of chunk data (`1a CRLF`).
    public static func appendChunkHeader(size: Int, to out: inout [UInt8]) throws(HTTPSerializationError) {
        guard size > 0 else { throw .emptyChunk }
        var digits = 0
        var v = size
        while v > 0 { digits += 1; v >>= 4 }
        for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
            let nibble = UInt8((size >> shift) & 0xF)
            out.append(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10)
        }
        appendCRLF(to: &out)
    }

    /// The CRLF after a chunk's data.
    public static func appendChunkEnd(to out: inout [UInt8]) { appendCRLF(to: &out) }

    /// `0 CRLF`: the last chunk; follow with trailer fields (`appendField`) and `appendEndOfHead`.
    public static func appendLastChunk(to out: inout [UInt8]) {
        out.append(0x30)
        appendCRLF(to: &out)
    }

    /// A whole response head: status line, fields, the framing field and the empty line. All input is
    /// checked first; on error `out` is left unchanged.
    public static func appendResponseHead(
        status: Int, reason: String, version: HTTPVersion = .http11,
        fields: [(name: String, value: String)], framing: HTTPBodyFraming, to out: inout [UInt8]
    ) throws(HTTPSerializationError) {
        let mark = out.count
        do {
            try appendStatusLine(status: status, reason: reason, version: version, to: &out)
            for field in fields { try appendField(name: field.name, value: field.value, to: &out) }
        } catch {
            out.removeSubrange(mark...)
            throw error
        }
        switch framing {
        case .contentLength(let length): appendContentLength(length, to: &out)
        case .chunked: appendChunkedTransferEncoding(to: &out)
        case .none, .closeDelimited, .tunnel: break
        }
        appendCRLF(to: &out)
    }

    /// A whole request head, as `appendResponseHead`.
    public static func appendRequestHead(
        method: String, target: String, version: HTTPVersion = .http11,
        fields: [(name: String, value: String)], framing: HTTPBodyFraming, to out: inout [UInt8]
    ) throws(HTTPSerializationError) {
        let mark = out.count
        do {
            try appendRequestLine(method: method, target: target, version: version, to: &out)
            for field in fields { try appendField(name: field.name, value: field.value, to: &out) }
        } catch {
            out.removeSubrange(mark...)
            throw error
        }
        switch framing {
        case .contentLength(let length): appendContentLength(length, to: &out)
        case .chunked: appendChunkedTransferEncoding(to: &out)
        case .none, .closeDelimited, .tunnel: break
        }
        appendCRLF(to: &out)
    }

    static func appendVersion(_ version: HTTPVersion, to out: inout [UInt8]) {
        out.append(contentsOf: version == .http10 ? "HTTP/1.0".utf8 : "HTTP/1.1".utf8)
    }

    @inline(__always) static func appendCRLF(to out: inout [UInt8]) {
        out.append(ASCII.cr)
        out.append(ASCII.lf)
    }

    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        if value == 0 { out.append(0x30); return }
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            out.append(0x30 + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
}
