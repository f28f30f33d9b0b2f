// Benchmark for the EventLoop/TCP foundation: heap allocations per request/response round trip over
// loopback in steady state (target: 0 — pooled buffers, slot-table dispatch, no closures per event).
// Peer: none (an absolute target); run with `swift package --package-path Benchmarks benchmark`.
import Benchmark
import Glibc
import SluiceCore

/// Echoes each read back as a slice of the receive buffer (the zero-copy path).
final class Echo: ConnectionDelegate {
    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        connection.write(buffer.slice(range))
        return range.count
    }
    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {}
}

final class EchoAcceptor: ListenerDelegate {
    func didAccept(_ connection: Connection) { connection.delegate = Echo() }
}

/// A blocking loopback client: one send and one receive per round trip, no allocation of its own.
final class Client: @unchecked Sendable {
    let fd: Int32
    var request = [UInt8](repeating: 0x61, count: 64)
    var reply = [UInt8](repeating: 0, count: 64)

    init(port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    func roundTrip() {
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var got = 0
        while got < reply.count {
            let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, $0.count - got, 0) }
            if n <= 0 { return }
            got += n
        }
    }

    deinit { close(fd) }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark(
        "Loopback echo, 10,000 round trips of 64 B",
        configuration: .init(
            metrics: [.mallocCountTotal, .wallClock, .throughput],
            warmupIterations: 0,
            scalingFactor: .one,
            maxDuration: .seconds(10),
            maxIterations: 20
        )
    ) { benchmark in
        let group = try EventLoopGroup(loopCount: 1)
        let server = try TCPServer.start(on: group, address: .loopback(port: 0)) { _ in EchoAcceptor() }
        let client = Client(port: server.localAddress.port)
        // Warm the pools and the connection's queue before measuring.
        for _ in 0 ..< 1_000 { client.roundTrip() }
        // One iteration = 10,000 round trips, so a per-request allocation would show as ≥ 10,000.
        benchmark.startMeasurement()
        for _ in 0 ..< 10_000 { client.roundTrip() }
        benchmark.stopMeasurement()
        server.close()
        group.shutdown()
    }
}
