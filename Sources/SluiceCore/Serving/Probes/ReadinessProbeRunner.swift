// The socket work behind queue-proxy's readiness check: each ReadinessAttempt the ReadinessProber asks
// for becomes a non-blocking TCP connect or an HTTP/1.1 GET on the event loop (Knative's TCPProbe and
// HTTPProbe), and its outcome is reported back. Serving layer, loop-bound; probes are rare (one per
// kubelet probe, or every 50 ms while an aggressive check polls), so allocating per attempt is fine.
import Logging

/// Runs readiness attempts on one loop and reports each outcome exactly once.
public final class ReadinessProbeRunner {
    /// `User-Agent` of HTTP probes: Knative's `kube-probe/<major>/<minor>` (apps commonly skip logging
    /// or auth for the `kube-probe/` prefix).
    public static let userAgent = "kube-probe/1/34"

    public let loop: EventLoop
    let logger: Logger
    /// Called on the loop with the attempt id and whether it passed.
    var onFinished: (UInt64, Bool) -> Void = { _, _ in }
    /// Probes not yet reported (they keep their connection alive until then).
    private var running: [UInt64: ProbeAttempt] = [:]
    private var warnedHTTPS = false

    public init(loop: EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    /// Starts `attempt`; its outcome arrives later through `onFinished`, never synchronously.
    func start(_ attempt: ReadinessAttempt) {
        let id = attempt.id
        let target: (host: String, port: Int, request: [UInt8]?)
        switch attempt.spec.action {
        case .tcpSocket(let host, let port):
            target = (host, port, nil)
        case .httpGet(let get):
            if get.scheme == .https {
                // No TLS client yet: an HTTPS probe is judged by whether the port accepts connections.
                if !warnedHTTPS {
                    warnedHTTPS = true
                    logger.warning("HTTPS readiness probes are checked with a TCP connect (no TLS client in this build)",
                                   metadata: ["probe": "\(attempt.spec.targetDescription)"])
                }
                target = (get.host, get.port, nil)
            } else {
                target = (get.host, get.port, Self.request(for: get))
            }
        case .grpc(let port, let service):
            startGRPC(id: id, port: port, service: service, timeout: attempt.timeout)
            return
        }
        guard let address = Self.address(host: target.host, port: target.port) else {
            logger.warning("readiness probe host is not a numeric address", metadata: ["probe": "\(attempt.spec.targetDescription)"])
            finishLater(id, false)
            return
        }
        let probe = ProbeAttempt(id: id, runner: self, request: target.request)
        running[id] = probe
        do {
            probe.connection = try Connector.connect(to: address, on: loop, timeout: attempt.timeout, delegate: probe)
            probe.connection?.setDeadline(after: attempt.timeout)
        } catch {
            running[id] = nil
            logger.warning("readiness probe could not open a socket", metadata: ["error": "\(error)"])
            finishLater(id, false)
        }
    }

    private func startGRPC(id: UInt64, port: Int, service: String?, timeout: Duration) {
        guard let address = Self.address(host: "127.0.0.1", port: port) else {
            finishLater(id, false)
            return
        }
        let probe = ProbeAttempt(id: id, runner: self, grpcService: service ?? "", authority: "127.0.0.1:\(port)")
        running[id] = probe
        do {
            probe.connection = try Connector.connect(to: address, on: loop, timeout: timeout, delegate: probe)
            probe.connection?.setDeadline(after: timeout)
        } catch {
            running[id] = nil
            logger.warning("readiness probe could not open a socket", metadata: ["error": "\(error)"])
            finishLater(id, false)
        }
    }

    /// Closes every probe in flight (shutdown).
    func cancelAll() {
        let all = running.values
        running.removeAll()
        for probe in all {
            probe.reported = true
            probe.connection?.close()
        }
    }

    fileprivate func finish(_ probe: ProbeAttempt, succeeded: Bool) {
        guard !probe.reported else { return }
        probe.reported = true
        running[probe.id] = nil
        onFinished(probe.id, succeeded)
    }

    /// Reports on a later loop turn, so a caller never sees its own attempt finish inside `start`.
    private func finishLater(_ id: UInt64, _ succeeded: Bool) {
        let box = LoopBound(self, on: loop)
        loop.execute { box.value.onFinished(id, succeeded) }
    }

    static func address(host: String, port: Int) -> SocketAddress? {
        guard let port = UInt16(exactly: port), port > 0 else { return nil }
        var name = host
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name == "localhost" { name = "127.0.0.1" }
        return try? SocketAddress(host: name, port: port)
    }

    /// The GET Knative's HTTPProbe sends: the probe's path, Host host:port, the kube-probe user agent,
    /// then the probe's own headers (a `Host` or `User-Agent` among them replaces ours, as the kubelet does).
    static func request(for get: ReadinessProbeSpec.HTTPGet) -> [UInt8] {
        let hostHeader = get.host.contains(":") ? "[\(get.host)]:\(get.port)" : "\(get.host):\(get.port)"
        var host = hostHeader
        var userAgent = userAgent
        var extra = ""
        for header in get.headers {
            switch header.name.lowercased() {
            case "host": host = header.value
            case "user-agent": userAgent = header.value
            default: extra += "\(header.name): \(header.value)\r\n"
            }
        }
        let text = "GET \(get.requestTarget) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: \(userAgent)\r\n"
            + "Accept: */*\r\nConnection: close\r\n" + extra + "\r\n"
        return Array(text.utf8)
    }
}

/// One probe connection: a bare connect (TCP), a GET whose response status decides (HTTP), or a gRPC
/// health check over h2c.
private final class ProbeAttempt: ConnectionDelegate {
    let id: UInt64
    unowned let runner: ReadinessProbeRunner
    let request: [UInt8]?
    let grpcService: String?
    var authority = ""
    var connection: Connection?
    var reported = false
    private var head = HTTPHead(limits: HTTPParserLimits(maxHeadBytes: 16 * 1024, maxStartLineBytes: 8 * 1024, maxFieldCount: 100))
    private var grpc: GRPCHealthExchange?

    init(id: UInt64, runner: ReadinessProbeRunner, request: [UInt8]?) {
        self.id = id
        self.runner = runner
        self.request = request
        grpcService = nil
    }

    init(id: UInt64, runner: ReadinessProbeRunner, grpcService: String, authority: String) {
        self.id = id
        self.runner = runner
        request = nil
        self.grpcService = grpcService
        self.authority = authority
        grpc = GRPCHealthExchange(service: grpcService)
    }

    func connectionDidConnect(_ connection: Connection) {
        if let request {
            connection.write(IOBuffer(bytes: request).written)
        } else if let grpc {
            connection.write(IOBuffer(bytes: grpc.openingBytes(authority: authority)).written)
        } else {
            // Knative's TCPProbe: the connection opened, which is all it checks.
            done(true)
        }
    }

    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        if grpc != nil { return receiveGRPC(connection, buffer: buffer, range: range) }
        guard request != nil else { return range.count }
        let result = buffer.withSpan(range) { head.parseResponse($0, requestMethod: .get) }
        switch result {
        case .incomplete:
            return 0
        case .complete:
            if head.status >= 100 && head.status < 200 {
                // An interim response: the final one follows.
                head.reset()
                return 0
            }
            // Knative's isHTTPProbeReady: 200-399.
            done(head.status >= 200 && head.status < 400)
            return range.count
        case .error:
            done(false)
            return range.count
        }
    }

    private func receiveGRPC(_ connection: Connection, buffer: IOBuffer, range: Range<Int>) -> Int {
        guard var exchange = grpc else { return range.count }
        let bytes = buffer.bytes(range)
        let outcome = exchange.receive(bytes)
        grpc = exchange
        if !outcome.reply.isEmpty { connection.write(IOBuffer(bytes: outcome.reply).written) }
        if let serving = outcome.serving { done(serving) }
        return range.count
    }

    func connectionDidReadEOF(_ connection: Connection) {
        done(false)
    }

    func connectionDeadlineExpired(_ connection: Connection) {
        done(false)
    }

    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        // Refused, reset or timed out before an answer: not ready.
        runner.finish(self, succeeded: false)
        self.connection = nil
    }

    private func done(_ succeeded: Bool) {
        runner.finish(self, succeeded: succeeded)
        connection?.close()
    }
}
