// HTTP1 serializer: round trips through the parser, and refusal of every byte it must never emit.
import Testing
@testable import SluiceCore

@Suite("HTTP/1.1 serializer")
struct HTTP1SerializerTests {
    @Test("serialize(parse(x)) parses back to the same request", arguments: acceptedRequests.filter { $0.limits == .default })
    func requestRoundTrip(_ c: Accept) throws {
        let bytes = c.message.bytes
        var head = HTTPHead()
        guard case .complete = head.parseRequest(bytes.span) else { Issue.record("did not parse"); return }
        var out: [UInt8] = []
        try HTTPSerializer.appendRequestLine(
            method: bytes[head.methodRange], target: bytes[head.target], version: head.version, to: &out)
        for field in head.fields {
            try HTTPSerializer.appendField(name: bytes[field.name], value: bytes[field.value], to: &out)
        }
        HTTPSerializer.appendEndOfHead(to: &out)
        let original = snapshot(head, bytes)
        var again = HTTPHead()
        #expect(again.parseRequest(out.span) == .complete(out.count))
        var reparsed = snapshot(again, out)
        reparsed.lines = original.lines
        reparsed.headLength = original.headLength
        #expect(reparsed == original)
    }

    @Test("serialize(parse(x)) parses back to the same response", arguments: acceptedResponses)
    func responseRoundTrip(_ c: Accept) throws {
        let bytes = c.message.bytes
        var head = HTTPHead()
        guard case .complete = head.parseResponse(bytes.span, requestMethod: c.requestMethod) else { Issue.record("did not parse"); return }
        var out: [UInt8] = []
        try HTTPSerializer.appendStatusLine(status: head.status, reason: bytes[head.reason], version: head.version, to: &out)
        for field in head.fields {
            try HTTPSerializer.appendField(name: bytes[field.name], value: bytes[field.value], to: &out)
        }
        HTTPSerializer.appendEndOfHead(to: &out)
        var again = HTTPHead()
        #expect(again.parseResponse(out.span, requestMethod: c.requestMethod) == .complete(out.count))
        var reparsed = snapshot(again, out)
        let original = snapshot(head, bytes)
        reparsed.lines = original.lines
        reparsed.headLength = original.headLength
        #expect(reparsed == original)
    }

    @Test("a whole response head with Content-Length and a chunked body decode back exactly")
    func responseHeadAndChunks() throws {
        var out: [UInt8] = []
        try HTTPSerializer.appendResponseHead(
            status: 200, reason: "OK", fields: [("Content-Type", "text/plain"), ("X-Trace", "a b")],
            framing: .chunked, to: &out)
        let headLength = out.count
        for piece in ["hello ", String(repeating: "x", count: 300)] {
            try HTTPSerializer.appendChunkHeader(size: piece.utf8.count, to: &out)
            out += piece.utf8
            HTTPSerializer.appendChunkEnd(to: &out)
        }
        HTTPSerializer.appendLastChunk(to: &out)
        try HTTPSerializer.appendField(name: "Checksum", value: "abc", to: &out)
        HTTPSerializer.appendEndOfHead(to: &out)
        #expect(String(decoding: out[0..<headLength], as: UTF8.self)
            == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Trace: a b\r\nTransfer-Encoding: chunked\r\n\r\n")
        var stream = HTTPMessageStream(parsesResponses: true)
        let events = stream.feed(out) + stream.finish()
        guard case .message(let message)? = events.first, events.count == 1 else { Issue.record("\(events)"); return }
        #expect(message.body == Array(("hello " + String(repeating: "x", count: 300)).utf8))
        #expect(message.framing == .chunked)
        #expect(String(decoding: out[headLength..<(headLength + 3)], as: UTF8.self) == "6\r\n")
        #expect(out.contains(subsequence: Array("12c\r\n".utf8)))

        var request: [UInt8] = []
        try HTTPSerializer.appendRequestHead(method: "PUT", target: "/k?v=1", fields: [("Host", "svc")],
                                             framing: .contentLength(3), to: &request)
        #expect(String(decoding: request, as: UTF8.self) == "PUT /k?v=1 HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\r\n")
    }

    @Test("the serializer refuses CR, LF, NUL, control bytes and non-token names, writing nothing")
    func refusesBadBytes() {
        var out: [UInt8] = Array("kept".utf8)
        #expect(throws: HTTPSerializationError.invalidFieldValue) { try HTTPSerializer.appendField(name: "X", value: "a\r\nInjected: 1", to: &out) }
        #expect(throws: HTTPSerializationError.invalidFieldValue) { try HTTPSerializer.appendField(name: "X", value: "a\nb", to: &out) }
        #expect(throws: HTTPSerializationError.invalidFieldValue) { try HTTPSerializer.appendField(name: "X", value: "a\u{0}b", to: &out) }
        #expect(throws: HTTPSerializationError.invalidFieldValue) { try HTTPSerializer.appendField(name: "X", value: "a\u{7f}", to: &out) }
        #expect(throws: HTTPSerializationError.invalidFieldName) { try HTTPSerializer.appendField(name: "X Y", value: "1", to: &out) }
        #expect(throws: HTTPSerializationError.invalidFieldName) { try HTTPSerializer.appendField(name: "X:", value: "1", to: &out) }
        #expect(throws: HTTPSerializationError.invalidFieldName) { try HTTPSerializer.appendField(name: "", value: "1", to: &out) }
        #expect(throws: HTTPSerializationError.invalidTarget) { try HTTPSerializer.appendRequestLine(method: "GET", target: "/a\r\nX: 1", to: &out) }
        #expect(throws: HTTPSerializationError.invalidTarget) { try HTTPSerializer.appendRequestLine(method: "GET", target: "/a b", to: &out) }
        #expect(throws: HTTPSerializationError.invalidTarget) { try HTTPSerializer.appendRequestLine(method: "GET", target: "/a#f", to: &out) }
        #expect(throws: HTTPSerializationError.invalidMethod) { try HTTPSerializer.appendRequestLine(method: "G T", target: "/", to: &out) }
        #expect(throws: HTTPSerializationError.invalidReasonPhrase) { try HTTPSerializer.appendStatusLine(status: 200, reason: "O\r\nK", to: &out) }
        #expect(throws: HTTPSerializationError.invalidStatusCode) { try HTTPSerializer.appendStatusLine(status: 1000, reason: "x", to: &out) }
        #expect(throws: HTTPSerializationError.emptyChunk) { try HTTPSerializer.appendChunkHeader(size: 0, to: &out) }
        #expect(throws: HTTPSerializationError.invalidFieldValue) {
            try HTTPSerializer.appendResponseHead(status: 200, reason: "OK", fields: [("A", "1"), ("B", "\r\n")], framing: .none, to: &out)
        }
        #expect(out == Array("kept".utf8))
    }

    @Test("random names and values are written only when every byte is allowed")
    func randomFields() {
        var generator = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            let name = (0..<Int.random(in: 0...6, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let value = (0..<Int.random(in: 0...10, using: &generator)).map { _ in
                Bool.random(using: &generator) ? UInt8.random(in: 0x20...0x7E, using: &generator) : UInt8.random(in: 0...255, using: &generator)
            }
            var out: [UInt8] = []
            let allowed = !name.isEmpty && name.allSatisfy(CharacterClass.isToken) && value.allSatisfy(CharacterClass.isFieldValue)
            do {
                try HTTPSerializer.appendField(name: name, value: value, to: &out)
                #expect(allowed)
                let body = out.dropLast(2)
                #expect(!body.contains(0x0D) && !body.contains(0x0A) && !body.contains(0))
            } catch {
                #expect(!allowed)
                #expect(out.isEmpty)
            }
        }
    }
}


extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        for i in 0...(count - subsequence.count) where Array(self[i..<(i + subsequence.count)]) == subsequence { return true }
        return false
    }
}
