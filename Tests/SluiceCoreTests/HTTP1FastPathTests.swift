// HTTP1 head parser: edge cases of the straight-line request path's shortcuts (GET/POST from one
// load, a lone "/" target, Host name and host-byte value in one pass). Each case is also re-parsed at
// every split point, which goes through the resumable scanner, so both paths must agree exactly.
import Testing
@testable import SluiceCore

let fastPathAccepted: [Accept] = [
    Accept(message: "GET / HTTP/1.1\r\nHOST: Example.COM\r\n\r\n", method: "GET", target: "/",
           fields: [["HOST", "Example.COM"]], framing: .none, keepAlive: true, host: "Example.COM"),
    Accept(message: "GET / HTTP/1.1\r\nhOsT:\t [::1]:8080 \t\r\n\r\n",
           fields: [["hOsT", "[::1]:8080"]], framing: .none, keepAlive: true, host: "[::1]:8080"),
    Accept(message: "GET / HTTP/1.1\r\nHost:a\r\n\r\n", fields: [["Host", "a"]], framing: .none, keepAlive: true, host: "a"),
    Accept(message: "GET / HTTP/1.1\r\nHost: \r\n\r\n", fields: [["Host", ""]], framing: .none, keepAlive: true, host: ""),
    Accept(message: "GET / HTTP/1.1\r\nHost: a%2e-b_c~d!$&'()*+,;=:[]\r\n\r\n",
           framing: .none, keepAlive: true, host: "a%2e-b_c~d!$&'()*+,;=:[]"),
    // Names that start like Host are other fields.
    Accept(message: "GET / HTTP/1.1\r\nHostname: x y\r\nHosts: z\r\nHost: a\r\n\r\n",
           fields: [["Hostname", "x y"], ["Hosts", "z"], ["Host", "a"]], framing: .none, keepAlive: true, host: "a"),
    // Host after other fields, and fields after Host.
    Accept(message: "GET / HTTP/1.1\r\nX: 1\r\nHost: a\r\nY: 2\r\n\r\n",
           fields: [["X", "1"], ["Host", "a"], ["Y", "2"]], framing: .none, keepAlive: true, host: "a"),
    Accept(message: "POST / HTTP/1.1\r\nHost: a\r\n\r\n", method: "POST", target: "/", framing: .none, keepAlive: true, host: "a"),
    Accept(message: "POST /x?y=1 HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", method: "POST", target: "/x?y=1",
           version: .http10, framing: .contentLength(2), keepAlive: false),
    // Methods that start like GET or POST, or differ only in case, are other methods.
    Accept(message: "GETS / HTTP/1.1\r\nHost: a\r\n\r\n", method: "GETS", framing: .none, keepAlive: true, host: "a"),
    Accept(message: "POSTS / HTTP/1.1\r\nHost: a\r\n\r\n", method: "POSTS", framing: .none, keepAlive: true, host: "a"),
    Accept(message: "get / HTTP/1.1\r\nHost: a\r\n\r\n", method: "get", framing: .none, keepAlive: true, host: "a"),
    Accept(message: "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", method: "PUT", framing: .contentLength(1),
           keepAlive: true, host: "a"),
    // Targets that start with "/" but are longer than it.
    Accept(message: "GET // HTTP/1.1\r\nHost: a\r\n\r\n", target: "//", framing: .none, keepAlive: true, host: "a"),
    Accept(message: "GET /? HTTP/1.1\r\nHost: a\r\n\r\n", target: "/?", framing: .none, keepAlive: true, host: "a"),
    Accept(message: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", method: "OPTIONS", target: "*", framing: .none,
           keepAlive: true, host: "a"),
]

let fastPathRejected: [Reject] = [
    Reject("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", .invalidHost, at: "@"),
    Reject("GET / HTTP/1.1\r\nHOST: a b\r\n\r\n", .invalidHost, at: " b"),
    Reject("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", .invalidHost, at: "\tb"),
    Reject("GET / HTTP/1.1\r\nHost: caf\u{e9}\r\n\r\n", .invalidHost, at: "\u{e9}"),
    Reject("GET / HTTP/1.1\r\nHost: a\r\nHOST: a\r\n\r\n", .duplicateHost, at: "HOST"),
    Reject("GET / HTTP/1.1\r\nHost : a\r\n\r\n", .whitespaceBeforeColon, at: " :"),
    Reject("GET / HTTP/1.1\r\nHost: a\u{7F}\r\n\r\n", .controlCharacterInValue, at: "\u{7F}"),
    Reject("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n", .nulCharacter, at: "\0"),
    Reject("GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", .bareCarriageReturn, at: "\rX"),
    Reject("GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", .bareLineFeed, at: "\nX"),
    Reject("GET / HTTP/1.1\r\nHost: a \r\n \r\n\r\n", .obsFold, at: " \r\n\r\n"),
    Reject("POST /\r\nHost: a\r\n\r\n", .malformedRequestLine, at: "\r"),
    Reject("POST  / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: " /"),
    Reject("POST / HTTP/1.2\r\nHost: a\r\n\r\n", .unsupportedVersion, at: "HTTP"),
    Reject("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", .invalidTarget, at: "/"),
]

@Suite("HTTP/1.1 head parser shortcuts", .timeLimit(.minutes(1)))
struct HTTP1FastPathTests {
    @Test("a request the shortcuts accept parses as the resumable scanner parses it", arguments: fastPathAccepted)
    func acceptedRequestParses(_ c: Accept) {
        check(c)
    }

    @Test("a request the shortcuts decline fails with the resumable scanner's error and offset", arguments: fastPathRejected)
    func rejectedRequestFails(_ c: Reject) {
        checkRejected(c)
    }

    @Test("target form and recognised field names agree between the whole-head and resumable paths",
          arguments: fastPathAccepted.map(\.message))
    func classificationAgrees(_ message: String) {
        let bytes = message.bytes
        var whole = HTTPHead()
        var split = HTTPHead()
        guard case .complete = whole.parseRequest(bytes.span) else {
            Issue.record("expected a complete head")
            return
        }
        #expect(split.parseRequest(Array(bytes[0..<1]).span) == .incomplete)
        #expect(split.parseRequest(bytes.span) == .complete(whole.headLength))
        #expect(whole.targetForm == split.targetForm)
        #expect(whole.method == split.method)
        #expect(whole.fields.map(\.known) == split.fields.map(\.known))
        #expect(whole.fields.map(\.line) == split.fields.map(\.line))
    }

    @Test("a copied head keeps its fields when the original parses the next request")
    func copiedHeadKeepsItsFields() {
        var head = HTTPHead()
        let a = "GET /a HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n".bytes
        let b = "GET /b HTTP/1.1\r\nY: 22\r\nHost: bb\r\n\r\n".bytes
        #expect(head.parseRequest(a.span) == .complete(a.count))
        let copy = head
        #expect(head.parseRequest(b.span) == .complete(b.count))
        #expect(copy.fields.map { text(a, $0.name) } == ["Host", "X"])
        #expect(text(a, copy.field(at: 1).line) == "X: 1\r\n")
        #expect(head.fields.map { text(b, $0.name) } == ["Y", "Host"])
        var again = copy
        #expect(again.parseRequest(b.span) == .complete(b.count))
        #expect(copy.fields.map { text(a, $0.value) } == ["a", "1"])
        #expect(again.firstField(.host).map { text(b, $0.value) } == "bb")
    }
}
