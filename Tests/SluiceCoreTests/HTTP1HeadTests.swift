// HTTP1 head parser: RFC 9112/9110 examples and the smuggling rules of reliability.md §1d/§3a, each
// case asserting the exact parse or the exact error, and re-parsed at every split point.
import Testing
@testable import SluiceCore

/// An accepted message and what its parse must say.
struct Accept: CustomTestStringConvertible, Sendable {
    var message: String
    var response = false
    var requestMethod: HTTPMethod = .get
    var method: String? = nil
    var target: String? = nil
    var version: HTTPVersion = .http11
    var status: Int? = nil
    var reason: String? = nil
    var fields: [[String]]? = nil
    var framing: HTTPBodyFraming
    var keepAlive: Bool
    var expectsContinue = false
    var hasUpgrade = false
    var nominated: [String] = []
    var host: String? = nil
    var limits: HTTPParserLimits = .default
    var testDescription: String { String(message.prefix(60)).debugDescription }
}

/// A rejected message: the error and the offset of the first occurrence of `at` (plus `delta`).
struct Reject: CustomTestStringConvertible, Sendable {
    var message: String
    var error: ParseError
    var at: String
    var delta = 0
    var response = false
    var limits: HTTPParserLimits = .default
    init(_ message: String, _ error: ParseError, at: String, delta: Int = 0, response: Bool = false,
         limits: HTTPParserLimits = .default) {
        self.message = message; self.error = error; self.at = at; self.delta = delta
        self.response = response; self.limits = limits
    }
    var offset: Int {
        let b = message.bytes, needle = at.bytes
        for i in 0...(b.count - needle.count) where Array(b[i..<(i + needle.count)]) == needle { return i + delta }
        return -1
    }
    var testDescription: String { "\(error) in \(String(message.prefix(50)).debugDescription)" }
}

let acceptedRequests: [Accept] = [
    // RFC 9112 §2.1 example.
    Accept(message: "GET /hello.txt HTTP/1.1\r\nUser-Agent: curl/7.64.1\r\nHost: www.example.com\r\nAccept-Language: en, mi\r\n\r\n",
           method: "GET", target: "/hello.txt",
           fields: [["User-Agent", "curl/7.64.1"], ["Host", "www.example.com"], ["Accept-Language", "en, mi"]],
           framing: .none, keepAlive: true, host: "www.example.com"),
    Accept(message: "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
           method: "POST", target: "/upload", framing: .contentLength(5), keepAlive: true, host: "a"),
    Accept(message: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
           framing: .chunked, keepAlive: true, host: "a"),
    Accept(message: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", framing: .chunked, keepAlive: true, host: "a"),
    Accept(message: "GET / HTTP/1.0\r\n\r\n", version: .http10, fields: [], framing: .none, keepAlive: false),
    Accept(message: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", version: .http10, framing: .none, keepAlive: true,
           nominated: []),
    Accept(message: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", framing: .none, keepAlive: false, host: "a"),
    Accept(message: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", framing: .none, keepAlive: false, host: "a"),
    // OWS around values is trimmed (CVE-2019-18802), inner spaces and HTAB kept.
    Accept(message: "GET / HTTP/1.1\r\nHost:   a  \r\nX:\t a \tb \t\r\nEmpty:\r\nBlank:   \r\n\r\n",
           fields: [["Host", "a"], ["X", "a \tb"], ["Empty", ""], ["Blank", ""]], framing: .none, keepAlive: true, host: "a"),
    // Identical repeated Content-Length values are one value (RFC 9110 §8.6).
    Accept(message: "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n", framing: .contentLength(3), keepAlive: true, host: "a"),
    Accept(message: "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3 ,3\r\n\r\n", framing: .contentLength(3), keepAlive: true, host: "a"),
    Accept(message: "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
           framing: .contentLength(9_223_372_036_854_775_807), keepAlive: true, host: "a"),
    Accept(message: "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", framing: .contentLength(0), keepAlive: true, host: "a"),
    Accept(message: "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n",
           framing: .contentLength(10), keepAlive: true, expectsContinue: true, host: "a"),
    Accept(message: "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n",
           version: .http10, framing: .contentLength(10), keepAlive: false, expectsContinue: false),
    Accept(message: "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
           framing: .none, keepAlive: true, hasUpgrade: true, nominated: ["Upgrade"], host: "a"),
    // Connection-nominated fields are marked for removal; framing and routing fields never are.
    Accept(message: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret, ,content-length, host\r\nx-secret: 1\r\nContent-Length: 0\r\nKeep-Alive: 5\r\n\r\n",
           framing: .contentLength(0), keepAlive: false, nominated: ["x-secret"], host: "a"),
    // RFC 9112 §3.2.3 authority-form.
    Accept(message: "CONNECT server.example.com:80 HTTP/1.1\r\nHost: server.example.com:80\r\n\r\ntunnel bytes",
           method: "CONNECT", target: "server.example.com:80", framing: .tunnel, keepAlive: false, host: "server.example.com:80"),
    // RFC 9112 §3.2.4 asterisk-form.
    Accept(message: "OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n", method: "OPTIONS", target: "*",
           framing: .none, keepAlive: true, host: "www.example.org:8001"),
    // RFC 9112 §3.2.2 absolute-form.
    Accept(message: "GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
           target: "http://www.example.org/pub/WWW/TheProject.html", framing: .none, keepAlive: true, host: "www.example.org"),
    Accept(message: "GET http://[::1]:8080/a?b HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
           target: "http://[::1]:8080/a?b", framing: .none, keepAlive: true, host: "[::1]:8080"),
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    Accept(message: "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET", target: "/", framing: .none, keepAlive: true, host: "a"),
    // obs-text in values, underscores and all tchars in names, empty Host.
    Accept(message: "GET /a/b;c?d=e&f=%20g:@!$'()*+,= HTTP/1.1\r\nHost:\r\nX_Under!#$%&'*+-.^`|~: caf\u{e9}\r\n\r\n",
           target: "/a/b;c?d=e&f=%20g:@!$'()*+,=", fields: [["Host", ""], ["X_Under!#$%&'*+-.^`|~", "caf\u{e9}"]],
           framing: .none, keepAlive: true, host: ""),
    Accept(message: "DELETE /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", framing: .chunked, keepAlive: true, host: "a",
           limits: HTTPParserLimits(rejectTransferCodingsOtherThanChunked: false)),
    Accept(message: "PROPFIND /dav/ HTTP/1.1\r\nHost: a\r\nDepth: 1\r\n\r\n", method: "PROPFIND", target: "/dav/", framing: .none, keepAlive: true, host: "a"),
]

let rejectedRequests: [Reject] = [
    // Framing (reliability.md §1d).
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .contentLengthWithTransferEncoding, at: "Transfer"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", .contentLengthWithTransferEncoding, at: "Transfer"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .conflictingContentLength, at: "6"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", .conflictingContentLength, at: "6"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", .invalidContentLength, at: "\r\n\r\n"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", .invalidContentLength, at: "+"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", .invalidContentLength, at: "-5"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", .invalidContentLength, at: "5\r\n", delta: 0),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", .invalidContentLength, at: "x5"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", .invalidContentLength, at: ",", delta: 1),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", .contentLengthOverflow, at: "9223"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", .contentLengthOverflow, at: "9999"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", .chunkedNotFinal, at: "Transfer"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .chunkedNotFinal, at: "Transfer"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", .chunkedNotFinal, at: "Transfer"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferCoding, at: "Transfer"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", .chunkedRepeated, at: "chunked\r\n"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .chunkedRepeated, at: "chunked\r\n\r\n"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", .invalidTransferEncoding, at: "\r\n\r\n"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", .invalidTransferEncoding, at: "chunked"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", .invalidTransferEncoding, at: ",chunked"),
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", .invalidTransferEncoding, at: "\"chunked"),
    Reject("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .transferEncodingInHTTP10, at: "Transfer"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 5\r\n\r\n", .upgradeWithBody, at: "Upgrade"),
    // Line syntax (reliability.md §1d, §3a).
    Reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", .whitespaceBeforeColon, at: " :"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n", .obsFold, at: "  b"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tTransfer-Encoding: chunked\r\n\r\n", .obsFold, at: "\t"),
    Reject("GET / HTTP/1.1\r\n Host: a\r\n\r\n", .whitespaceAfterStartLine, at: " Host"),
    Reject("GET / HTTP/1.1\nHost: a\n\n", .bareLineFeed, at: "\n"),
    Reject("GET / HTTP/1.1\r\nHost: a\n\r\n", .bareLineFeed, at: "\n\r"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\n\n", .bareLineFeed, at: "\n", delta: 25 - 15),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n", .bareCarriageReturn, at: "\rT"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n", .bareCarriageReturn, at: "\rX"),
    Reject("GET / HTTP/1.1\rHost: a\r\n\r\n", .bareCarriageReturn, at: "\rH"),
    Reject("\n GET / HTTP/1.1\r\n\r\n", .bareLineFeed, at: "\n"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n", .nulCharacter, at: "\u{0}"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX\u{0}: ab\r\n\r\n", .nulCharacter, at: "\u{0}"),
    Reject("GET /\u{0} HTTP/1.1\r\nHost: a\r\n\r\n", .nulCharacter, at: "\u{0}"),
    Reject("G\u{0}T / HTTP/1.1\r\nHost: a\r\n\r\n", .nulCharacter, at: "\u{0}"),
    Reject("GET / HTTP/1.1\u{0}\r\nHost: a\r\n\r\n", .nulCharacter, at: "\u{0}"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n", .controlCharacterInValue, at: "\u{1}"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{7f}b\r\n\r\n", .controlCharacterInValue, at: "\u{7f}"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdef\u{1b}b\r\n\r\n", .controlCharacterInValue, at: "\u{1b}"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", .emptyFieldName, at: ": x"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX@Y: 1\r\n\r\n", .invalidFieldName, at: "@"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nX\u{e9}: 1\r\n\r\n", .invalidFieldName, at: "\u{e9}"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", .missingColon, at: "\r\n\r\n"),
    // Request line.
    Reject("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", .fragmentInTarget, at: "#"),
    Reject("GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "<"),
    Reject("GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "\u{e9}"),
    Reject("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "\t"),
    Reject("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: " /"),
    Reject("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidVersion, at: "b "),
    Reject("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", .invalidVersion, at: " \r"),
    Reject("GET / http/1.1\r\nHost: a\r\n\r\n", .invalidVersion, at: "http"),
    Reject("GET / HTTP/2.0\r\nHost: a\r\n\r\n", .unsupportedVersion, at: "HTTP"),
    Reject("GET / HTTP/1.2\r\nHost: a\r\n\r\n", .unsupportedVersion, at: "HTTP"),
    Reject("GET / HTTP/1.\r\nHost: a\r\n\r\n", .malformedRequestLine, at: "\r"),
    Reject("GET /\r\nHost: a\r\n\r\n", .malformedRequestLine, at: "\r"),
    Reject("GET\r\n\r\n", .malformedRequestLine, at: "\r"),
    Reject(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod, at: " "),
    Reject("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidMethod, at: "("),
    Reject("GET * HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "*"),
    Reject("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "*"),
    Reject("OPTIONS *a HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "*"),
    Reject("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "/"),
    Reject("CONNECT a.b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "a.b"),
    Reject("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "a/b"),
    Reject("GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "1http"),
    // Host (reliability.md §1d).
    Reject("GET / HTTP/1.1\r\nX: a\r\n\r\n", .missingHost, at: "\r\n\r\n", delta: 2),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", .duplicateHost, at: "host"),
    Reject("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", .invalidHost, at: "/b"),
    Reject("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .invalidHost, at: " b"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, a b\r\n\r\n", .invalidConnectionHeader, at: " b"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nConnection: a\"\r\n\r\n", .invalidConnectionHeader, at: "\""),
]

@Suite("HTTP/1.1 head parser")
struct HTTP1HeadTests {
    @Test("an accepted request parses exactly as expected, whole and at every split", arguments: acceptedRequests)
    func acceptedRequestParses(_ c: Accept) {
        check(c)
    }

    @Test("a rejected request fails with its exact error and offset, whole and at every split", arguments: rejectedRequests)
    func rejectedRequestFails(_ c: Reject) {
        checkRejected(c)
    }

    @Test("a response parses with the framing of RFC 9112 section 6.3", arguments: acceptedResponses)
    func acceptedResponseParses(_ c: Accept) {
        check(c)
    }

    @Test("a rejected response fails with its exact error and offset", arguments: rejectedResponses)
    func rejectedResponseFails(_ c: Reject) {
        checkRejected(c)
    }

    @Test("a head of exactly 100 fields is accepted and the 101st field is refused with 431")
    func fieldCountLimit() {
        var message = "GET / HTTP/1.1\r\nHost: a\r\n"
        for i in 1..<100 { message += "X-\(i): v\r\n" }
        let ok = parseHead((message + "\r\n").bytes)
        #expect(ok.head?.fields.count == 100)
        let tooMany = message + "X-100: v\r\n\r\n"
        let outcome = parseHead(tooMany.bytes)
        #expect(outcome.result == .error(.tooManyFields, offset: message.utf8.count))
        #expect(ParseError.tooManyFields.httpStatus == 431)
        for plan in [Array(0..<tooMany.utf8.count), Array(stride(from: 7, to: tooMany.utf8.count, by: 7))] {
            #expect(parseHead(tooMany.bytes, prefixes: plan) == outcome)
        }
    }

    @Test("a 6 KB cookie is accepted and a head over 64 KiB is refused with 431 at the limit")
    func headSizeLimit() {
        let cookie = String(repeating: "c", count: 6000)
        let ok = parseHead("GET / HTTP/1.1\r\nHost: a\r\nCookie: \(cookie)\r\n\r\n".bytes)
        #expect(ok.head?.fields.last?[1].count == 6000)
        let big = "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + String(repeating: "c", count: 70_000) + "\r\n\r\n"
        let outcome = parseHead(big.bytes)
        #expect(outcome.result == .error(.headTooLarge, offset: 65536))
        #expect(parseHead(big.bytes, prefixes: Array(stride(from: 1000, to: big.utf8.count, by: 1000))) == outcome)
        // Exactly at the limit is fine; one more byte is not.
        let prefix = "GET / HTTP/1.1\r\nHost: a\r\nCookie: "
        let exact = prefix + String(repeating: "c", count: 65536 - prefix.utf8.count - 4) + "\r\n\r\n"
        #expect(exact.utf8.count == 65536)
        #expect(parseHead(exact.bytes).result == .complete(65536))
        let over = prefix + String(repeating: "c", count: 65536 - prefix.utf8.count - 3) + "\r\n\r\n"
        #expect(parseHead(over.bytes).result == .error(.headTooLarge, offset: 65536))
    }

    @Test("a request line over 16 KiB is refused with 414, one of exactly 16 KiB is accepted")
    func requestLineLimit() {
        let target = "/" + String(repeating: "a", count: 16384 - 15 - 1)
        let exact = "GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n"
        #expect(parseHead(exact.bytes).result == .complete(exact.utf8.count))
        let long = "GET \(target)a HTTP/1.1\r\nHost: a\r\n\r\n"
        let outcome = parseHead(long.bytes)
        #expect(outcome.result == .error(.startLineTooLong, offset: 16384))
        #expect(ParseError.startLineTooLong.httpStatus == 414)
        #expect(parseHead(long.bytes, prefixes: Array(stride(from: 100, to: long.utf8.count, by: 100))) == outcome)
    }

    @Test("limits are configurable per head")
    func configurableLimits() {
        let limits = HTTPParserLimits(maxHeadBytes: 64, maxStartLineBytes: 20, maxFieldCount: 1)
        #expect(parseHead("GET /0123456789 HTTP/1.1\r\n\r\n".bytes, limits: limits).result == .error(.startLineTooLong, offset: 20))
        #expect(parseHead("GET / HTTP/1.1\r\nHost: a\r\nB: c\r\n\r\n".bytes, limits: limits).result == .error(.tooManyFields, offset: 25))
        let long = "GET / HTTP/1.1\r\nHost: " + String(repeating: "a", count: 60) + "\r\n\r\n"
        #expect(parseHead(long.bytes, limits: limits).result == .error(.headTooLarge, offset: 64))
    }

    @Test("pipelined requests parse one after another from the bytes left over")
    func pipelining() {
        let bytes = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n".bytes
        var head = HTTPHead()
        guard case .complete(let first) = head.parseRequest(bytes.span) else { Issue.record("first"); return }
        #expect(text(bytes, head.target) == "/1")
        let rest = Array(bytes[first...])
        guard case .complete(let second) = head.parseRequest(rest.span) else { Issue.record("second"); return }
        #expect(text(rest, head.target) == "/2")
        #expect(text(rest, head.host ?? 0..<0) == "b")
        #expect(first + second == bytes.count)
    }

    @Test("case-insensitive lookup finds fields by name without rescanning the head")
    func lookup() {
        let bytes = "GET / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nX-A: 1\r\nx-a: 2\r\n\r\n".bytes
        var head = HTTPHead()
        #expect(head.parseRequest(bytes.span) == .complete(bytes.count))
        let contentType = HTTPFieldName("content-type")
        let field = head.firstField(named: contentType, in: bytes.span)
        #expect(field.map { text(bytes, $0.value) } == "text/plain")
        #expect(head.fields(named: HTTPFieldName("X-A"), in: bytes.span).map { text(bytes, $0.value) } == ["1", "2"])
        #expect(head.firstField(named: HTTPFieldName("missing"), in: bytes.span) == nil)
        #expect(head.firstField(.host).map { text(bytes, $0.value) } == "a")
        // Line ranges cover the whole line with its CRLF, so a proxy can writev around them.
        #expect(head.fields.map { text(bytes, $0.line) } == ["Host: a\r\n", "Content-Type: text/plain\r\n", "X-A: 1\r\n", "x-a: 2\r\n"])
        #expect(text(bytes, head.startLine) == "GET / HTTP/1.1\r\n")
    }

    @Test("hop-by-hop lines are flagged so a proxy can skip them")
    func hopByHop() {
        let bytes = "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-b\r\nKeep-Alive: 1\r\nX-B: 2\r\nTE: trailers\r\nX-C: 3\r\n\r\n".bytes
        var head = HTTPHead()
        #expect(head.parseRequest(bytes.span) == .complete(bytes.count))
        #expect(head.fields.filter { !$0.isHopByHop }.map { text(bytes, $0.name) } == ["Host", "X-C"])
    }

    @Test("a head value is reusable across messages without reallocating field storage")
    func reuse() {
        var head = HTTPHead()
        let a = "GET /a HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n".bytes
        let b = "GET /b HTTP/1.1\r\nHost: b\r\n\r\n".bytes
        #expect(head.parseRequest(a.span) == .complete(a.count))
        #expect(head.fieldCount == 3)
        #expect(head.parseRequest(b.span) == .complete(b.count))
        #expect(head.fieldCount == 1)
        #expect(text(b, head.target) == "/b")
        // An error resets too.
        #expect(head.parseRequest("GET /\u{0}".bytes.span) == .error(.nulCharacter, offset: 5))
        #expect(head.parseRequest(a.span) == .complete(a.count))
    }

    @Test("error kinds map to the statuses a server answers with")
    func statusMapping() {
        #expect(ParseError.headTooLarge.httpStatus == 431)
        #expect(ParseError.unsupportedTransferCoding.httpStatus == 501)
        #expect(ParseError.bareLineFeed.httpStatus == 400)
        #expect(ParseError.unsupportedVersion.httpStatus == 505)
        for error in ParseError.allCases {
            #expect(!error.reason.isEmpty)
            #expect(!error.kind.isEmpty && error.kind.first!.isLowercase)
        }
        #expect(Set(ParseError.allCases.map(\.kind)).count == ParseError.allCases.count)
    }
}

let acceptedResponses: [Accept] = [
    Accept(message: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", response: true, status: 200, reason: "OK",
           framing: .contentLength(5), keepAlive: true),
    Accept(message: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", response: true, status: 200, framing: .chunked, keepAlive: true),
    Accept(message: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", response: true, framing: .chunked, keepAlive: true),
    Accept(message: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", response: true, framing: .closeDelimited, keepAlive: false),
    Accept(message: "HTTP/1.1 200 OK\r\n\r\nbody until close", response: true, framing: .closeDelimited, keepAlive: false),
    Accept(message: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", response: true, version: .http10, framing: .contentLength(2), keepAlive: false),
    Accept(message: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", response: true, version: .http10,
           framing: .contentLength(2), keepAlive: true),
    Accept(message: "HTTP/1.1 204 No Content\r\n\r\n", response: true, status: 204, reason: "No Content", framing: .none, keepAlive: true),
    Accept(message: "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", response: true, status: 304, framing: .none, keepAlive: true),
    Accept(message: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", response: true, requestMethod: .head, framing: .none, keepAlive: true),
    Accept(message: "HTTP/1.1 100 Continue\r\n\r\n", response: true, status: 100, reason: "Continue", framing: .none, keepAlive: true),
    Accept(message: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes", response: true,
           status: 101, framing: .tunnel, keepAlive: false, hasUpgrade: true, nominated: ["Upgrade"]),
    Accept(message: "HTTP/1.1 200 Connection established\r\n\r\n", response: true, requestMethod: .connect, framing: .tunnel, keepAlive: false),
    Accept(message: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", response: true, status: 200, reason: "", framing: .contentLength(0), keepAlive: true),
    Accept(message: "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", response: true, status: 404, reason: "", framing: .contentLength(0), keepAlive: true),
    Accept(message: "HTTP/1.1 503 Service \tUnavailable \u{e9}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", response: true, status: 503,
           reason: "Service \tUnavailable \u{e9}", framing: .contentLength(0), keepAlive: false),
]

let rejectedResponses: [Reject] = [
    Reject("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .contentLengthWithTransferEncoding, at: "Transfer", response: true),
    Reject("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n", .conflictingContentLength, at: "7", response: true),
    Reject("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .transferEncodingInHTTP10, at: "Transfer", response: true),
    Reject("HTTP/1.1 99 OK\r\n\r\n", .invalidStatusCode, at: "99", response: true),
    Reject("HTTP/1.1 600 X\r\n\r\n", .invalidStatusCode, at: "600", response: true),
    Reject("HTTP/1.1 099 X\r\n\r\n", .invalidStatusCode, at: "099", response: true),
    Reject("HTTP/1.1  200 OK\r\n\r\n", .malformedStatusLine, at: " 200", response: true),
    Reject("HTTP/1.1 200OK\r\n\r\n", .malformedStatusLine, at: "OK", response: true),
    Reject("HTTP/1.1 200 O\u{1}K\r\n\r\n", .invalidReasonPhrase, at: "\u{1}", response: true),
    Reject("HTTP/1.1 200 OK\n\r\n", .bareLineFeed, at: "\n", response: true),
    Reject("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", .obsFold, at: " b", response: true),
    Reject("HTTP/2 200 OK\r\n\r\n", .invalidVersion, at: " 200", response: true),
    Reject("\r\nHTTP/1.1 200 OK\r\n\r\n", .malformedStatusLine, at: "\r", response: true),
    Reject("http/1.1 200 OK\r\n\r\n", .invalidVersion, at: "http", response: true),
]

func check(_ c: Accept) {
    let bytes = c.message.bytes
    let whole = parseHead(bytes, response: c.response, requestMethod: c.requestMethod, limits: c.limits)
    guard let head = whole.head, case .complete(let consumed) = whole.result else {
        Issue.record("expected a complete head, got \(whole.result)")
        return
    }
    #expect(consumed == head.headLength)
    if let method = c.method { #expect(head.method == method) }
    if let target = c.target { #expect(head.target == target) }
    #expect(head.version == c.version)
    if let status = c.status { #expect(head.status == status) }
    if let reason = c.reason { #expect(head.reason == reason) }
    if let fields = c.fields { #expect(head.fields == fields) }
    #expect(head.framing == c.framing)
    #expect(head.keepAlive == c.keepAlive)
    #expect(head.expectsContinue == c.expectsContinue)
    #expect(head.hasUpgrade == c.hasUpgrade)
    #expect(head.nominated == c.nominated)
    if !c.response { #expect(head.host == c.host) }
    // The head ends at the empty line, wherever the message goes on.
    #expect(text(bytes, 0..<consumed).hasSuffix("\r\n\r\n"))
    for plan in splitPlans(bytes.count) {
        let again = parseHead(bytes, response: c.response, requestMethod: c.requestMethod, prefixes: plan, limits: c.limits)
        #expect(again == whole, "split \(plan.prefix(3))")
    }
}

func checkRejected(_ c: Reject) {
    let bytes = c.message.bytes
    let whole = parseHead(bytes, response: c.response, limits: c.limits)
    #expect(whole.result == .error(c.error, offset: c.offset))
    for plan in splitPlans(bytes.count) {
        let again = parseHead(bytes, response: c.response, prefixes: plan, limits: c.limits)
        #expect(again == whole, "split \(plan.prefix(3))")
    }
}
