// `sluice http-parse` end to end: runs the built binary as a child process (found next to the test
// bundle in the build products directory), feeds stdin, checks the JSON lines and the exit status.
import Foundation
import Testing
import SluiceTestSupport

@Suite("sluice http-parse", .timeLimit(.minutes(1)))
struct HTTP1CLITests {
    @Test("pipelined requests print one JSON line each and exit 0, fed whole or one byte at a time")
    func pipelinedRequests() throws {
        let input = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            + "POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
            + "GET / HTTP/1.0\r\nUser-Agent: \"q\"\\\r\n\r\n"
        let expected = [
            #"{"method":"GET","target":"/a?b=1","version":"HTTP/1.1","headers":[["Host","x"],["Content-Length","3"]],"body_base64":"YWJj","keep_alive":true}"#,
            #"{"method":"POST","target":"/u","version":"HTTP/1.1","headers":[["Host","x"],["Transfer-Encoding","chunked"]],"body_base64":"aGk=","keep_alive":true}"#,
            #"{"method":"GET","target":"/","version":"HTTP/1.0","headers":[["User-Agent","\"q\"\\"]],"body_base64":"","keep_alive":false}"#,
        ]
        for arguments in [["http-parse"], ["http-parse", "--chunk-size", "1"], ["http-parse", "--chunk-size", "7"]] {
            let run = try ChildProcess.run("sluice", arguments, stdin: Array(input.utf8))
            #expect(run.status == 0)
            #expect(run.lines == expected)
        }
    }

    @Test("a smuggling attempt prints the error kind and its offset and exits 1")
    func errorExitsOne() throws {
        let input = "GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        let run = try ChildProcess.run("sluice", ["http-parse", "--chunk-size", "5"], stdin: Array(input.utf8))
        #expect(run.status == 1)
        #expect(run.lines.count == 2)
        #expect(run.lines.last == #"{"error":"contentLengthWithTransferEncoding","offset":72}"#)
    }

    @Test("input that ends mid-message prints incomplete and exits 1")
    func incompleteExitsOne() throws {
        let run = try ChildProcess.run("sluice", ["http-parse"], stdin: Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc".utf8))
        #expect(run.status == 1)
        #expect(run.lines == [#"{"error":"incomplete"}"#])
    }

    @Test("responses print status and reason, and a body without framing runs to EOF")
    func responses() throws {
        let input = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.0 200 Fine\r\n\r\nrest\u{e9}"
        let run = try ChildProcess.run("sluice", ["http-parse", "--response", "--chunk-size", "3"], stdin: Array(input.utf8))
        #expect(run.status == 0)
        #expect(run.lines == [
            #"{"status":100,"reason":"Continue","version":"HTTP/1.1","headers":[],"body_base64":"","keep_alive":true}"#,
            #"{"status":200,"reason":"OK","version":"HTTP/1.1","headers":[["Content-Length","2"]],"body_base64":"b2s=","keep_alive":true}"#,
            #"{"status":200,"reason":"Fine","version":"HTTP/1.0","headers":[],"body_base64":"cmVzdMOp","keep_alive":false}"#,
        ])
    }
}
