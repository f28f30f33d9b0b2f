// `sluice proxy`: a plain reverse proxy for operators and the benchmark — one upstream, keep-alive
// pools, drain on SIGTERM/SIGINT (a second signal stops at once). Configuration is parsed and
// validated here, then handed to SluiceCore's HTTPServer with a ReverseProxyHandler.
import ArgumentParser
import Glibc
import Logging
import SluiceCore

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Reverse-proxy HTTP/1.1 from --listen to --upstream.",
        discussion: """
            Logs one JSON line to stderr once listening (with the real port when port 0 was given).
            SIGTERM or SIGINT drains (stop accepting, finish in-flight requests, up to --drain-timeout)
            and exits 0; a second signal exits at once.
            """
    )

    @Option(name: .long, help: "Address to listen on, HOST:PORT (numeric host or localhost; port 0 picks one).")
    var listen: String

    @Option(name: .long, help: "Upstream to forward to, HOST:PORT.")
    var upstream: String

    @Option(name: .long, help: "Event loops (threads). Default: usable CPUs.")
    var loops: Int?

    @Option(name: .customLong("connect-timeout"), help: "Seconds per upstream connect attempt.")
    var connectTimeout: Double = 1

    @Option(name: .customLong("response-start-timeout"), help: "Seconds from request head to the first response byte before 504 (0: off).")
    var responseStartTimeout: Double = 300

    @Option(name: .customLong("head-timeout"), help: "Seconds to receive a whole request head (slowloris bound).")
    var headTimeout: Double = 60

    @Option(name: .customLong("idle-timeout"), help: "Seconds a kept-alive client connection may sit idle.")
    var idleTimeout: Double = 3600

    @Option(name: .customLong("upstream-idle-timeout"), help: "Seconds an idle pooled upstream connection is kept.")
    var upstreamIdleTimeout: Double = 1.5

    @Option(name: .customLong("drain-timeout"), help: "Seconds a drain may take before remaining connections are closed.")
    var drainTimeout: Double = 30

    @Option(name: .customLong("max-connections"), help: "Client connections across all loops. Default: (RLIMIT_NOFILE - 64) / 2.")
    var maxConnections: Int?

    @Option(name: .customLong("buffer-size"), help: "Bytes per read buffer (KiB-aligned, 4096-1048576); larger buffers mean fewer, larger reads and sends for big bodies.")
    var bufferSize: Int = 64 * 1024

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        _ = try ProxyConfiguration(self)
    }

    func run() throws {
        let configuration = try ProxyConfiguration(self)
        try runProxy(configuration)
    }
}

/// `sluice proxy`'s settings, validated once.
struct ProxyConfiguration {
    var listen: SocketAddress
    var upstream: SocketAddress
    var loops: Int
    var drainTimeout: Duration
    var logLevel: Logger.Level
    var bufferSize: Int
    var server: HTTPServerConfiguration
    var client: HTTPClientConfiguration
    var timeouts: HTTPRequestTimeouts

    init(_ command: ProxyCommand) throws {
        listen = try Self.address(command.listen, option: "--listen")
        upstream = try Self.address(command.upstream, option: "--upstream")
        if let loops = command.loops, loops < 1 || loops > 256 {
            throw ValidationError("--loops: \(loops) is not between 1 and 256")
        }
        loops = command.loops ?? EventLoopGroup.defaultLoopCount
        guard let level = Logger.Level(rawValue: command.logLevel.lowercased()) else {
            throw ValidationError("--log-level: '\(command.logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        logLevel = level
        guard command.bufferSize >= 4096, command.bufferSize <= 1 << 20, command.bufferSize % 1024 == 0 else {
            throw ValidationError("--buffer-size: \(command.bufferSize) is not a multiple of 1024 between 4096 and 1048576")
        }
        bufferSize = command.bufferSize
        server = HTTPServerConfiguration()
        server.headTimeout = try Self.duration(command.headTimeout, option: "--head-timeout", allowZero: false)
        server.idleTimeout = try Self.duration(command.idleTimeout, option: "--idle-timeout", allowZero: false)
        drainTimeout = try Self.duration(command.drainTimeout, option: "--drain-timeout", allowZero: true)
        if let max = command.maxConnections {
            guard max >= 1 else { throw ValidationError("--max-connections: \(max) must be at least 1") }
            server.maxConnections = max
        } else {
            server.maxConnections = HTTPServerConfiguration.defaultMaxConnections(fileDescriptorLimit: Self.fileDescriptorLimit())
        }
        client = HTTPClientConfiguration()
        client.connectTimeout = try Self.duration(command.connectTimeout, option: "--connect-timeout", allowZero: false)
        client.idleTimeout = try Self.duration(command.upstreamIdleTimeout, option: "--upstream-idle-timeout", allowZero: false)
        let responseStart = try Self.duration(command.responseStartTimeout, option: "--response-start-timeout", allowZero: true)
        timeouts = HTTPRequestTimeouts(responseStart: responseStart == .zero ? nil : responseStart)
    }

    static func address(_ text: String, option: String) throws -> SocketAddress {
        guard let colon = text.lastIndex(of: ":") else {
            throw ValidationError("\(option): '\(text)' is not HOST:PORT")
        }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard let port = UInt16(portText) else {
            throw ValidationError("\(option): '\(portText)' in '\(text)' is not a port number (0-65535)")
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" { host = "127.0.0.1" }
        if host.isEmpty { host = "0.0.0.0" }
        do {
            return try SocketAddress(host: host, port: port)
        } catch {
            throw ValidationError("\(option): \(error) (give a numeric IPv4/IPv6 address or localhost)")
        }
    }

    static func duration(_ seconds: Double, option: String, allowZero: Bool) throws -> Duration {
        guard seconds.isFinite, seconds >= 0, allowZero || seconds > 0, seconds <= 1_000_000 else {
            throw ValidationError("\(option): \(seconds) is not a number of seconds \(allowZero ? "≥ 0" : "> 0")")
        }
        return .nanoseconds(Int64(seconds * 1_000_000_000))
    }

    static func fileDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(min(limit.rlim_cur, 1 << 20))
    }
}

/// Starts the proxy and blocks until it has drained (or was stopped by a second signal).
func runProxy(_ configuration: ProxyConfiguration) throws {
    let level = configuration.logLevel
    LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
    let logger = Logger(label: "sluice.proxy")
    // Before any thread exists, so every loop thread inherits the mask and signals reach the signalfd.
    try SignalSource.block([SIGTERM, SIGINT])
    var loopConfiguration = EventLoop.Configuration()
    loopConfiguration.bufferSize = configuration.bufferSize
    let group = try EventLoopGroup(loopCount: configuration.loops, configuration: loopConfiguration,
                                   logger: Logger(label: "sluice.eventloop"))
    let upstream = HTTPUpstream(address: configuration.upstream, configuration: configuration.client)
    let timeouts = configuration.timeouts
    let server: HTTPServer
    do {
        server = try HTTPServer.start(on: group, address: configuration.listen, configuration: configuration.server,
                                      logger: Logger(label: "sluice.http")) { _ in
            ReverseProxyHandler(upstream: upstream, timeouts: timeouts)
        }
    } catch {
        group.shutdown()
        throw ValidationError("--listen: cannot listen on \(configuration.listen): \(error)")
    }
    logger.info("listening", metadata: [
        "address": "\(server.localAddress)",
        "port": .stringConvertible(Int(server.localAddress.port)),
        "upstream": "\(configuration.upstream)",
        "loops": .stringConvertible(configuration.loops),
        "max_connections": .stringConvertible(configuration.server.maxConnections),
        "version": "\(Sluice.version)",
    ])
    let drainTimeout = configuration.drainTimeout
    let drainSeconds = Double(drainTimeout.components.seconds) + Double(drainTimeout.components.attoseconds) / 1e18
    let signals = SignalCounter()
    SignalSource.install(on: group.loops[0], signals: [SIGTERM, SIGINT]) { signal in
        if signals.next() == 1 {
            logger.info("draining", metadata: ["signal": .stringConvertible(Int(signal)), "timeout_seconds": .stringConvertible(drainSeconds)])
            server.drain(timeout: drainTimeout) {
                logger.info("drained; exiting")
                group.requestShutdown()
            }
        } else {
            logger.warning("second signal; stopping now", metadata: ["signal": .stringConvertible(Int(signal))])
            group.requestShutdown()
        }
    }
    group.wait()
}

/// Counts signals (touched only on the loop that handles them, but the closure must be Sendable).
final class SignalCounter: @unchecked Sendable {
    private var count = 0
    func next() -> Int {
        count += 1
        return count
    }
}
