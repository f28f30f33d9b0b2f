// Benchmark server for the EventLoop/TCP foundation: answers every HTTP/1.1 request with a fixed
// 200 reply on N loops. There is no HTTP parser yet: a request is counted per "\r\n\r\n" in the byte
// stream (no bodies, which is what wrk sends), and the same reply bytes are written for each.
// Usage: FixedReplyServer [--port 8080] [--host 127.0.0.1] [--loops 1] [--strategy reuseport|acceptor] [--close yes|no]
// (--port 0 picks a free port; the chosen address is printed on stderr.)
import Glibc
import SluiceCore

/// The reply, rebuilt once a second so its Date header is current (as nginx's is).
final class Reply {
    private(set) var slice: IOSlice

    init() { slice = Reply.build() }

    func refresh() { slice = Reply.build() }

    static let body = "Hello, world!"

    static func build() -> IOSlice {
        let text = "HTTP/1.1 200 OK\r\nServer: sluice\r\nDate: \(httpDate())\r\nContent-Type: text/plain\r\n" +
            "Content-Length: \(body.utf8.count)\r\nConnection: keep-alive\r\n\r\n\(body)"
        return IOBuffer(text).written
    }

    static func httpDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var text = [CChar](repeating: 0, count: 64)
        let n = strftime(&text, text.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: text[0 ..< n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

final class FixedReplyConnection: ConnectionDelegate {
    let reply: Reply
    let closeAfterReply: Bool
    init(reply: Reply, closeAfterReply: Bool) {
        self.reply = reply
        self.closeAfterReply = closeAfterReply
    }

    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        // Count complete request heads; leave a partial one unconsumed for the next read.
        var requests = 0
        var consumed = 0
        buffer.withSpan(range) { span in
            var i = 3
            while i < span.count {
                if span[i] == 10 && span[i - 1] == 13 && span[i - 2] == 10 && span[i - 3] == 13 {
                    requests += 1
                    consumed = i + 1
                    i += 4
                } else {
                    i += 1
                }
            }
        }
        if requests == 1 {
            connection.write(reply.slice)
        } else if requests > 1 {
            connection.write(contentsOf: repeatElement(reply.slice, count: requests))
        }
        // --close: one request per connection, to measure the accept path (listener strategies).
        if requests > 0 && closeAfterReply { connection.closeAfterFlush() }
        return consumed
    }

    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {}
}

final class Acceptor: ListenerDelegate {
    let reply = Reply()
    let closeAfterReply: Bool

    init(loop: EventLoop, closeAfterReply: Bool) {
        self.closeAfterReply = closeAfterReply
        scheduleRefresh(loop)
    }

    private func scheduleRefresh(_ loop: EventLoop) {
        loop.scheduleTimer(after: .seconds(1)) { [weak self] in
            guard let self else { return }
            reply.refresh()
            scheduleRefresh(loop)
        }
    }

    func didAccept(_ connection: Connection) {
        connection.delegate = FixedReplyConnection(reply: reply, closeAfterReply: closeAfterReply)
    }
}

func writeError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

func usage(_ message: String) -> Never {
    let text = "FixedReplyServer: \(message)\nusage: FixedReplyServer [--port 8080] [--host 127.0.0.1] [--loops 1] [--strategy reuseport|acceptor] [--close yes|no]\n"
    writeError(text)
    exit(2)
}

var port: UInt16 = 8080
var host = "127.0.0.1"
var loops = 1
var strategy = TCPServer.Strategy.reusePortPerLoop
var closeAfterReply = false
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else { usage("\(flag) needs a value") }
    switch flag {
    case "--port": guard let p = UInt16(value) else { usage("--port: '\(value)' is not a port") }; port = p
    case "--host": host = value
    case "--loops": guard let n = Int(value), n > 0 else { usage("--loops: '\(value)' is not a positive count") }; loops = n
    case "--strategy":
        switch value {
        case "reuseport": strategy = .reusePortPerLoop
        case "acceptor": strategy = .singleAcceptor
        default: usage("--strategy: '\(value)' is not reuseport or acceptor")
        }
    case "--close":
        switch value {
        case "yes": closeAfterReply = true
        case "no": closeAfterReply = false
        default: usage("--close: '\(value)' is not yes or no")
        }
    default: usage("unknown flag \(flag)")
    }
}

do {
    try SignalSource.block([SIGTERM, SIGINT])
    let group = try EventLoopGroup(loopCount: loops)
    let address = try SocketAddress(host: host, port: port)
    let server = try TCPServer.start(on: group, address: address, strategy: strategy) { [closeAfterReply] loop in Acceptor(loop: loop, closeAfterReply: closeAfterReply) }
    SignalSource.install(on: group.loops[0], signals: [SIGTERM, SIGINT]) { _ in
        server.close()
        group.requestShutdown()
    }
    let line = "FixedReplyServer listening on \(server.localAddress) with \(loops) loop(s)\n"
    writeError(line)
    group.wait()
} catch {
    usage("\(error)")
}
