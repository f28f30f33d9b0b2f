// HTTP1 body framing: Content-Length, chunked with extensions and trailers, close-delimited; each
// case whole and at every split, asserting the payload, the bytes consumed or the exact error.
import Testing
@testable import SluiceCore

struct BodyOutcome: Equatable, CustomStringConvertible {
    var payload: [UInt8] = []
    /// Bytes of the input that belonged to the body, when it completed.
    var consumed: Int? = nil
    var error: HTTPBodyStep? = nil
    var description: String { "payload=\(String(decoding: payload, as: UTF8.self).debugDescription) consumed=\(String(describing: consumed)) error=\(String(describing: error))" }
}

/// Feeds `bytes` to a decoder in pieces ending at `cuts` (then the rest); `eof` calls finish().
func decodeBody(_ framing: HTTPBodyFraming, _ bytes: [UInt8], cuts: [Int] = [], eof: Bool = false,
                limits: HTTPParserLimits = .default) -> BodyOutcome {
    var decoder = HTTPBodyDecoder(framing: framing, limits: limits)
    var outcome = BodyOutcome()
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        let piece = Array(bytes[start..<end])
        var offset = 0
        pieceLoop: while true {
            let step = decoder.decode(piece.span.extracting(offset...))
            switch step {
            case .payload(let range):
                outcome.payload += piece[(offset + range.lowerBound)..<(offset + range.upperBound)]
                offset += range.upperBound
            case .needMore:
                break pieceLoop
            case .complete(let consumed):
                outcome.consumed = start + offset + consumed
                return outcome
            case .error:
                outcome.error = step
                return outcome
            }
        }
        start = end
    }
    if eof {
        switch decoder.finish() {
        case .complete: outcome.consumed = bytes.count
        case let step: outcome.error = step
        }
    }
    return outcome
}

struct BodyCase: CustomTestStringConvertible, Sendable {
    var framing: HTTPBodyFraming
    var input: String
    var payload: String
    var consumed: Int?
    var error: ParseError? = nil
    var errorAt: Int? = nil
    var eof = false
    var testDescription: String { "\(framing) \(String(input.prefix(40)).debugDescription)" }
}

let bodyCases: [BodyCase] = [
    BodyCase(framing: .contentLength(5), input: "helloGET / HTTP/1.1", payload: "hello", consumed: 5),
    BodyCase(framing: .contentLength(0), input: "GET", payload: "", consumed: 0),
    BodyCase(framing: .none, input: "GET", payload: "", consumed: 0),
    BodyCase(framing: .contentLength(10), input: "short", payload: "short", consumed: nil, error: .prematureEndOfBody, errorAt: 5, eof: true),
    BodyCase(framing: .closeDelimited, input: "all of it", payload: "all of it", consumed: 9, eof: true),
    // RFC 9112 §7.1 example shape, with extensions and a trailer.
    BodyCase(framing: .chunked, input: "4\r\nWiki\r\n5;ext=1;q=\"a \\\"b\\\"\"\r\npedia\r\nE ; flag\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\nNEXT",
             payload: "Wikipedia in\r\n\r\nchunks.", consumed: 108),
    BodyCase(framing: .chunked, input: "0\r\n\r\n", payload: "", consumed: 5),
    BodyCase(framing: .chunked, input: "000A\r\n0123456789\r\n00\r\n\r\n", payload: "0123456789", consumed: 24),
    BodyCase(framing: .chunked, input: "7fffffffffffffff\r\nab", payload: "ab", consumed: nil),
    // Errors (reliability.md §1d chunk rules, CVE-2013-2028, CVE-2025-22871).
    BodyCase(framing: .chunked, input: "8000000000000000\r\n", payload: "", consumed: nil, error: .chunkSizeOverflow, errorAt: 15),
    BodyCase(framing: .chunked, input: "g\r\n", payload: "", consumed: nil, error: .invalidChunkSize, errorAt: 0),
    BodyCase(framing: .chunked, input: "\r\n", payload: "", consumed: nil, error: .invalidChunkSize, errorAt: 0),
    BodyCase(framing: .chunked, input: "-1\r\n", payload: "", consumed: nil, error: .invalidChunkSize, errorAt: 0),
    BodyCase(framing: .chunked, input: "5\nhello\r\n", payload: "", consumed: nil, error: .bareLineFeed, errorAt: 1),
    BodyCase(framing: .chunked, input: "5\rhello\r\n", payload: "", consumed: nil, error: .bareCarriageReturn, errorAt: 1),
    BodyCase(framing: .chunked, input: "5;a\nhello\r\n", payload: "", consumed: nil, error: .bareLineFeed, errorAt: 3),
    BodyCase(framing: .chunked, input: "5\r\nhelloX\r\n", payload: "hello", consumed: nil, error: .missingCRLFAfterChunkData, errorAt: 8),
    BodyCase(framing: .chunked, input: "5\r\nhello\n0\r\n\r\n", payload: "hello", consumed: nil, error: .bareLineFeed, errorAt: 8),
    BodyCase(framing: .chunked, input: "5\r\nhello\r0\r\n\r\n", payload: "hello", consumed: nil, error: .bareCarriageReturn, errorAt: 8),
    BodyCase(framing: .chunked, input: "5 \r\nhello\r\n", payload: "", consumed: nil, error: .invalidChunkExtension, errorAt: 2),
    BodyCase(framing: .chunked, input: "5;\r\nhello\r\n", payload: "", consumed: nil, error: .invalidChunkExtension, errorAt: 2),
    BodyCase(framing: .chunked, input: "5;a=\r\n", payload: "", consumed: nil, error: .invalidChunkExtension, errorAt: 4),
    BodyCase(framing: .chunked, input: "5;a=\"x\r\n", payload: "", consumed: nil, error: .invalidChunkExtension, errorAt: 6),
    BodyCase(framing: .chunked, input: "5;a\u{0}\r\n", payload: "", consumed: nil, error: .nulCharacter, errorAt: 3),
    BodyCase(framing: .chunked, input: "5;a=b \r\n", payload: "", consumed: nil, error: .invalidChunkExtension, errorAt: 6),
    BodyCase(framing: .chunked, input: "0\r\nX : y\r\n\r\n", payload: "", consumed: nil, error: .whitespaceBeforeColon, errorAt: 4),
    BodyCase(framing: .chunked, input: "0\r\nX: y\r\n z\r\n\r\n", payload: "", consumed: nil, error: .obsFold, errorAt: 9),
    BodyCase(framing: .chunked, input: "0\r\nX: y\n\r\n", payload: "", consumed: nil, error: .bareLineFeed, errorAt: 7),
    BodyCase(framing: .chunked, input: "0\r\nX: a\u{1}\r\n\r\n", payload: "", consumed: nil, error: .controlCharacterInValue, errorAt: 7),
    BodyCase(framing: .chunked, input: "0\r\nNoColon\r\n\r\n", payload: "", consumed: nil, error: .missingColon, errorAt: 10),
    BodyCase(framing: .chunked, input: "0\r\n: v\r\n\r\n", payload: "", consumed: nil, error: .emptyFieldName, errorAt: 3),
    BodyCase(framing: .chunked, input: "0\r\n\rX", payload: "", consumed: nil, error: .bareCarriageReturn, errorAt: 3),
    BodyCase(framing: .chunked, input: "5\r\nhel", payload: "hel", consumed: nil, error: .prematureEndOfBody, errorAt: 6, eof: true),
]

@Suite("HTTP/1.1 body framing")
struct HTTP1BodyTests {
    @Test("a body decodes to its exact payload or error, whole and at every split", arguments: bodyCases)
    func bodyDecodes(_ c: BodyCase) {
        let bytes = c.input.bytes
        let whole = decodeBody(c.framing, bytes, eof: c.eof)
        #expect(String(decoding: whole.payload, as: UTF8.self) == c.payload)
        #expect(whole.consumed == c.consumed)
        if let error = c.error {
            #expect(whole.error == .error(error, offset: c.errorAt ?? -1))
        } else {
            #expect(whole.error == nil)
        }
        for plan in splitPlans(bytes.count) {
            #expect(decodeBody(c.framing, bytes, cuts: plan, eof: c.eof) == whole, "split \(plan.prefix(3))")
        }
    }

    @Test("frame() consumes exactly the body bytes a verbatim proxy forwards")
    func framingOnly() {
        let body = "3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n".bytes
        let input = body + "NEXT".bytes
        var decoder = HTTPBodyDecoder(framing: .chunked)
        #expect(decoder.frame(input.span) == .complete(consumed: body.count))
        #expect(decoder.isComplete)
        // Split in two: the first half is all body, the second completes it.
        decoder.reset(framing: .chunked)
        #expect(decoder.frame(Array(input[0..<10]).span) == .needMore)
        #expect(decoder.frame(Array(input[10...]).span) == .complete(consumed: body.count - 10))
    }

    @Test("a chunk-size line longer than 4 KiB of extensions is refused")
    func chunkExtensionLimit() {
        let long = "1;" + String(repeating: "a", count: 5000) + "\r\nx\r\n0\r\n\r\n"
        let outcome = decodeBody(.chunked, long.bytes)
        #expect(outcome.error == .error(.chunkExtensionsTooLong, offset: 4096))
        #expect(decodeBody(.chunked, long.bytes, cuts: Array(stride(from: 7, to: long.utf8.count, by: 7))) == outcome)
        // The per-message budget catches many small chunks with extensions.
        let limits = HTTPParserLimits(maxChunkExtensionBytesPerMessage: 100)
        let many = String(repeating: "1;abcdefghi\r\nx\r\n", count: 20) + "0\r\n\r\n"
        #expect(decodeBody(.chunked, many.bytes, limits: limits).error == .error(.chunkExtensionsTooLong, offset: 16 * 10 + 1))
        let zeros = String(repeating: "0", count: 5000) + "1\r\nx\r\n"
        #expect(decodeBody(.chunked, zeros.bytes).error == .error(.chunkExtensionsTooLong, offset: 4096))
    }

    @Test("trailers beyond the field limit are refused")
    func trailerLimits() {
        let limits = HTTPParserLimits(maxFieldCount: 2)
        let body = "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        #expect(decodeBody(.chunked, body.bytes, limits: limits).error == .error(.tooManyFields, offset: 15))
        let big = "0\r\nA: " + String(repeating: "v", count: 70_000) + "\r\n\r\n"
        #expect(decodeBody(.chunked, big.bytes).error == .error(.trailersTooLarge, offset: 65539))
    }
}
