// HTTP1 layer: every way the codec rejects bytes, one case each, and the status a server answers with.
// The parser never repairs input: Sluice forwards the received bytes, so any leniency here that the
// application lacks would make the proxy the front half of a request-smuggling pair.

/// Why a head, a body or a trailer section was rejected. Each case is one rule; the offset of the
/// offending byte travels next to it in `HTTPParseResult.error` and `HTTPBodyStep.error`.
public enum ParseError: UInt8, Error, Hashable, Sendable, CaseIterable {
    // Limits.
    /// The head (start line, fields, final CRLF) is longer than `HTTPParserLimits.maxHeadBytes`.
    case headTooLarge
    /// The request line (or status line) is longer than `HTTPParserLimits.maxStartLineBytes`.
    case startLineTooLong
    /// More field lines than `HTTPParserLimits.maxFieldCount`.
    case tooManyFields
    /// A Connection header nominates more options than `HTTPParserLimits.maxConnectionOptions`.
    case tooManyConnectionOptions

    // Bytes that are never allowed where they appear.
    /// NUL anywhere in a head, chunk line or trailer.
    case nulCharacter
    /// CR not followed by LF.
    case bareCarriageReturn
    /// LF not preceded by CR.
    case bareLineFeed

    // Start line.
    /// Empty method or a non-token byte in it.
    case invalidMethod
    /// Empty target, a byte outside RFC 3986's set, or a form the method does not allow.
    case invalidTarget
    /// `#` in the request target (fragments are never sent; see CVE-2023-45539).
    case fragmentInTarget
    /// Not `HTTP/<digit>.<digit>` where the version belongs.
    case invalidVersion
    /// `HTTP/x.y` other than 1.0 and 1.1.
    case unsupportedVersion
    /// Missing version, extra spaces, or anything else that is not `method SP target SP version CRLF`.
    case malformedRequestLine
    /// Not `HTTP-version SP 3DIGIT [SP reason] CRLF`.
    case malformedStatusLine
    /// Status code outside 100...599.
    case invalidStatusCode
    /// A control character in the reason phrase.
    case invalidReasonPhrase

    // Field lines.
    /// Whitespace between the start line and the first field line (RFC 9112 §2.2).
    case whitespaceAfterStartLine
    /// A line that starts with SP or HTAB (obs-fold, RFC 9112 §5.2).
    case obsFold
    /// SP or HTAB between a field name and its colon (RFC 9112 §5.1).
    case whitespaceBeforeColon
    /// A field line that starts with a colon.
    case emptyFieldName
    /// A non-token byte in a field name.
    case invalidFieldName
    /// A field line without a colon.
    case missingColon
    /// A control character (other than HTAB) or DEL in a field value.
    case controlCharacterInValue

    // Field semantics.
    /// Content-Length empty, signed, with a non-digit or internal space.
    case invalidContentLength
    /// Content-Length larger than 2^63 - 1.
    case contentLengthOverflow
    /// Content-Length values that differ (across lines or inside a list).
    case conflictingContentLength
    /// Both Content-Length and Transfer-Encoding.
    case contentLengthWithTransferEncoding
    /// Transfer-Encoding empty or not a list of transfer codings.
    case invalidTransferEncoding
    /// A request whose transfer-coding list does not end in `chunked`.
    case chunkedNotFinal
    /// `chunked` more than once in the transfer-coding list.
    case chunkedRepeated
    /// A request with a transfer coding other than a lone `chunked` (we never decode codings).
    case unsupportedTransferCoding
    /// Transfer-Encoding in an HTTP/1.0 message.
    case transferEncodingInHTTP10
    /// A Connection value that is not a list of tokens.
    case invalidConnectionHeader
    /// An HTTP/1.1 request without Host.
    case missingHost
    /// More than one Host line.
    case duplicateHost
    /// A Host value with bytes that cannot appear in an authority.
    case invalidHost
    /// A request that asks for an Upgrade and also carries a body (CL > 0 or TE).
    case upgradeWithBody

    // Chunked body and trailers.
    /// A chunk-size line that does not start with a hex digit, or bytes after the size that are not
    /// a chunk extension.
    case invalidChunkSize
    /// A chunk size that does not fit in 63 bits.
    case chunkSizeOverflow
    /// A chunk extension that is not `;name[=token|quoted-string]`.
    case invalidChunkExtension
    /// A chunk-size line longer than `maxChunkLineBytes`, or extensions past the per-message budget.
    case chunkExtensionsTooLong
    /// Chunk data not followed by CRLF.
    case missingCRLFAfterChunkData
    /// The trailer section is longer than `maxHeadBytes`.
    case trailersTooLarge
    /// The connection ended before the body did.
    case prematureEndOfBody

    /// The status a server answers a request with when its bytes hit this error. A proxy reading an
    /// upstream response answers 502 for any of them instead.
    public var httpStatus: Int {
        switch self {
        case .headTooLarge, .tooManyFields: return 431
        case .startLineTooLong: return 414
        case .unsupportedTransferCoding: return 501
        case .unsupportedVersion: return 505
        case .trailersTooLarge: return 431
        default: return 400
        }
    }

    /// Short reason text for the error response body and logs (ASCII, no user bytes).
    public var reason: String {
        switch self {
        case .headTooLarge: return "request header fields too large"
        case .startLineTooLong: return "request line too long"
        case .tooManyFields: return "too many header fields"
        case .tooManyConnectionOptions: return "too many Connection options"
        case .nulCharacter: return "NUL byte in message"
        case .bareCarriageReturn: return "CR not followed by LF"
        case .bareLineFeed: return "LF without CR"
        case .invalidMethod: return "invalid method"
        case .invalidTarget: return "invalid request target"
        case .fragmentInTarget: return "fragment in request target"
        case .invalidVersion: return "invalid HTTP version"
        case .unsupportedVersion: return "HTTP version not supported"
        case .malformedRequestLine: return "malformed request line"
        case .malformedStatusLine: return "malformed status line"
        case .invalidStatusCode: return "invalid status code"
        case .invalidReasonPhrase: return "invalid reason phrase"
        case .whitespaceAfterStartLine: return "whitespace after start line"
        case .obsFold: return "obsolete line folding"
        case .whitespaceBeforeColon: return "whitespace before colon"
        case .emptyFieldName: return "empty header name"
        case .invalidFieldName: return "invalid header name"
        case .missingColon: return "header line without colon"
        case .controlCharacterInValue: return "control character in header value"
        case .invalidContentLength: return "invalid Content-Length"
        case .contentLengthOverflow: return "Content-Length too large"
        case .conflictingContentLength: return "conflicting Content-Length"
        case .contentLengthWithTransferEncoding: return "Content-Length with Transfer-Encoding"
        case .invalidTransferEncoding: return "invalid Transfer-Encoding"
        case .chunkedNotFinal: return "chunked is not the final transfer coding"
        case .chunkedRepeated: return "chunked applied more than once"
        case .unsupportedTransferCoding: return "transfer coding not implemented"
        case .transferEncodingInHTTP10: return "Transfer-Encoding in HTTP/1.0"
        case .invalidConnectionHeader: return "invalid Connection header"
        case .missingHost: return "missing Host"
        case .duplicateHost: return "duplicate Host"
        case .invalidHost: return "invalid Host"
        case .upgradeWithBody: return "Upgrade request with a body"
        case .invalidChunkSize: return "invalid chunk size"
        case .chunkSizeOverflow: return "chunk size too large"
        case .invalidChunkExtension: return "invalid chunk extension"
        case .chunkExtensionsTooLong: return "chunk extensions too long"
        case .missingCRLFAfterChunkData: return "chunk data not followed by CRLF"
        case .trailersTooLarge: return "trailer section too large"
        case .prematureEndOfBody: return "connection closed before the end of the body"
        }
    }

    /// The case name, as the `sluice http-parse` JSON and logs print it.
    public var kind: String {
        switch self {
        case .headTooLarge: return "headTooLarge"
        case .startLineTooLong: return "startLineTooLong"
        case .tooManyFields: return "tooManyFields"
        case .tooManyConnectionOptions: return "tooManyConnectionOptions"
        case .nulCharacter: return "nulCharacter"
        case .bareCarriageReturn: return "bareCarriageReturn"
        case .bareLineFeed: return "bareLineFeed"
        case .invalidMethod: return "invalidMethod"
        case .invalidTarget: return "invalidTarget"
        case .fragmentInTarget: return "fragmentInTarget"
        case .invalidVersion: return "invalidVersion"
        case .unsupportedVersion: return "unsupportedVersion"
        case .malformedRequestLine: return "malformedRequestLine"
        case .malformedStatusLine: return "malformedStatusLine"
        case .invalidStatusCode: return "invalidStatusCode"
        case .invalidReasonPhrase: return "invalidReasonPhrase"
        case .whitespaceAfterStartLine: return "whitespaceAfterStartLine"
        case .obsFold: return "obsFold"
        case .whitespaceBeforeColon: return "whitespaceBeforeColon"
        case .emptyFieldName: return "emptyFieldName"
        case .invalidFieldName: return "invalidFieldName"
        case .missingColon: return "missingColon"
        case .controlCharacterInValue: return "controlCharacterInValue"
        case .invalidContentLength: return "invalidContentLength"
        case .contentLengthOverflow: return "contentLengthOverflow"
        case .conflictingContentLength: return "conflictingContentLength"
        case .contentLengthWithTransferEncoding: return "contentLengthWithTransferEncoding"
        case .invalidTransferEncoding: return "invalidTransferEncoding"
        case .chunkedNotFinal: return "chunkedNotFinal"
        case .chunkedRepeated: return "chunkedRepeated"
        case .unsupportedTransferCoding: return "unsupportedTransferCoding"
        case .transferEncodingInHTTP10: return "transferEncodingInHTTP10"
        case .invalidConnectionHeader: return "invalidConnectionHeader"
        case .missingHost: return "missingHost"
        case .duplicateHost: return "duplicateHost"
        case .invalidHost: return "invalidHost"
        case .upgradeWithBody: return "upgradeWithBody"
        case .invalidChunkSize: return "invalidChunkSize"
        case .chunkSizeOverflow: return "chunkSizeOverflow"
        case .invalidChunkExtension: return "invalidChunkExtension"
        case .chunkExtensionsTooLong: return "chunkExtensionsTooLong"
        case .missingCRLFAfterChunkData: return "missingCRLFAfterChunkData"
        case .trailersTooLarge: return "trailersTooLarge"
        case .prematureEndOfBody: return "prematureEndOfBody"
        }
    }
}
