// `autoscaler serve` (Serving layer, KPA): the running autoscaler — the engine on one event loop, the
// HTTP status API, the stat ingestion entry point for the activator's stat stream, signal handling.
import Glibc
import Logging
import Synchronization

/// Why the autoscaler could not start.
public struct AutoscalerStartError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A running autoscaler. Sendable: every method may be called from any thread; work is handed to
/// the autoscaler's loop.
public final class AutoscalerServer: Sendable {
    /// The loop the engine runs on.
    public let loop: EventLoop
    /// Where the status API listens (nil when not started).
    public let statusAddress: SocketAddress?
    /// Where the activators' stat stream (WebSocket, `WireStatMessages`) is accepted (nil when off).
    public let statsAddress: SocketAddress?
    public let scaler: LocalScaler
    let engine: LoopBound<AutoscalerEngine>
    private let statusServer: HTTPServer?
    private let statServer: StatServer?
    private let clock: any WallClock

    /// Starts the autoscaler on `group.loops[0]` and, when `statusAddress` is given, the status API
    /// on `group`; when `statsAddress` is given, the activators' stat stream (Knative's WebSocket
    /// stat server, port 8080 in Knative) on `group`, feeding `record`. Returns once the revisions
    /// are loaded and the timers armed.
    public static func start(config: AutoscalerConfig, revisions: RevisionsDocument,
                             settings: AutoscalerServeSettings = AutoscalerServeSettings(),
                             statusAddress: SocketAddress?, statsAddress: SocketAddress? = nil,
                             clock: any WallClock = SystemWallClock(),
                             group: EventLoopGroup, logger: Logger) throws(AutoscalerStartError) -> AutoscalerServer {
        let loop = group.loops[0]
        let scaler = LocalScaler(clock: clock, logger: logger)
        let engine = LoopBound(AutoscalerEngine(loop: loop, config: config, settings: settings, clock: clock,
                                                scaler: scaler, logger: logger), on: loop)
        var server: HTTPServer?
        if let statusAddress {
            var configuration = HTTPServerConfiguration()
            configuration.maxConnections = 64
            configuration.forwardedHeaders.appendXForwardedFor = false
            configuration.forwardedHeaders.xForwardedProto = nil
            do {
                server = try HTTPServer.start(on: group, address: statusAddress, configuration: configuration,
                                              logger: logger) { _ in AutoscalerStatusHandler(engine: engine) }
            } catch {
                throw AutoscalerStartError("cannot listen on \(statusAddress) (status API): \(error)")
            }
        }
        var statServer: StatServer?
        if let statsAddress {
            do {
                statServer = try StatServer.start(on: group, configuration: StatServerConfiguration(address: statsAddress),
                                                  logger: logger) { _ in
                    { namespace, name, stat in
                        ingest(PodStat(stat), for: RevisionKey(namespace: namespace, name: name),
                               engine: engine, loop: loop, clock: clock)
                    }
                }
            } catch {
                server?.close()
                throw AutoscalerStartError("cannot listen on \(statsAddress) (stat server): \(error)")
            }
        }
        let started = Mutex(false)
        loop.execute {
            engine.value.load(revisions)
            engine.value.start()
            started.withLock { $0 = true }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !started.withLock({ $0 }) && ContinuousClock.now < deadline { usleep(1_000) }
        return AutoscalerServer(loop: loop, statusAddress: server?.localAddress, statsAddress: statServer?.localAddress,
                                scaler: scaler, engine: engine, statusServer: server, statServer: statServer, clock: clock)
    }

    private init(loop: EventLoop, statusAddress: SocketAddress?, statsAddress: SocketAddress?, scaler: LocalScaler,
                 engine: LoopBound<AutoscalerEngine>, statusServer: HTTPServer?, statServer: StatServer?, clock: any WallClock) {
        self.loop = loop
        self.statusAddress = statusAddress
        self.statsAddress = statsAddress
        self.scaler = scaler
        self.engine = engine
        self.statusServer = statusServer
        self.statServer = statServer
        self.clock = clock
    }

    /// Stat server statistics (connections, batches, stats, dropped); nil when it is off.
    public var statServerStatistics: StatServerStatistics? { statServer?.statistics }

    // MARK: stat ingestion

    /// Records a stat pushed by an activator for revision `namespace/name`: a stat without a
    /// timestamp is stamped with its arrival second (now), it is added to the revision's current
    /// buckets, and a revision at scale 0 is decided at once when the stat carries concurrency
    /// (Knative's poke for fast scale-from-zero). Callable from any thread, including another
    /// loop's (the work is queued to the autoscaler's loop; nothing blocks). Stats for unknown
    /// revisions are dropped, as Knative's collector does.
    public func record(namespace: String, name: String, stat: PodStat) {
        Self.ingest(stat, for: RevisionKey(namespace: namespace, name: name), engine: engine, loop: loop, clock: clock)
    }

    private static func ingest(_ stat: PodStat, for key: RevisionKey, engine: LoopBound<AutoscalerEngine>,
                               loop: EventLoop, clock: any WallClock) {
        let arrival = clock.now()
        if loop.inEventLoop {
            engine.value.ingest(stat, for: key, arrival: arrival)
        } else {
            loop.execute { engine.value.ingest(stat, for: key, arrival: arrival) }
        }
    }

    /// The same for a decoded protobuf `Stat` (one `WireStatMessage` of the activator's stream).
    public func record(namespace: String, name: String, stat: Metrics_Stat) {
        record(namespace: namespace, name: name, stat: PodStat(stat))
    }

    /// Every message of a decoded `WireStatMessages` batch; messages without a stat are skipped.
    public func record(_ batch: Metrics_WireStatMessages) {
        for message in batch.messages where message.hasStat {
            record(namespace: message.namespace, name: message.name, stat: message.stat)
        }
    }

    // MARK: control

    /// Replaces the revisions (SIGHUP): new ones start, changed ones are updated, missing ones stop.
    public func reload(_ revisions: RevisionsDocument) {
        let engine = self.engine
        loop.execute { engine.value.load(revisions) }
    }

    /// The status of every revision, read on the loop (nil if the loop did not answer in `timeout`).
    /// Not from the autoscaler's own loop.
    public func statuses(timeout: Duration = .seconds(5)) -> [AutoscalerRevisionStatus]? {
        let result = Mutex<[AutoscalerRevisionStatus]?>(nil)
        let engine = self.engine
        guard loop.execute({ let s = engine.value.statuses(); result.withLock { $0 = s } }) else { return nil }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = result.withLock({ $0 }) { return value }
            usleep(1_000)
        }
        return nil
    }

    /// Revision scrapes completed so far (for the benchmark and tests).
    public func completedScrapes(timeout: Duration = .seconds(5)) -> Int? {
        let result = Mutex<Int?>(nil)
        let engine = self.engine
        guard loop.execute({ let n = engine.value.completedScrapes; result.withLock { $0 = n } }) else { return nil }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = result.withLock({ $0 }) { return value }
            usleep(1_000)
        }
        return nil
    }

    /// Stops scraping and deciding, closes the status API and the pod connections. The loops keep
    /// running (the caller owns the group).
    public func stop() {
        statusServer?.close()
        statServer?.stop(timeout: .seconds(5))
        let engine = self.engine
        loop.execute { engine.value.stop() }
    }

    // MARK: the process

    /// Runs the autoscaler until SIGTERM/SIGINT (then returns 0). SIGHUP calls `reloadRevisions`
    /// off the loop (it reads a file) and applies its answer. Blocks the calling thread.
    public static func run(config: AutoscalerConfig, revisions: RevisionsDocument, settings: AutoscalerServeSettings,
                           statusAddress: SocketAddress?, statsAddress: SocketAddress? = nil, logger: Logger,
                           reloadRevisions: @escaping @Sendable () -> RevisionsDocument?) throws(AutoscalerStartError) -> Int32 {
        do {
            try SignalSource.block([SIGTERM, SIGINT, SIGHUP])
        } catch {
            throw AutoscalerStartError("cannot block SIGTERM/SIGINT/SIGHUP: \(error)")
        }
        let group: EventLoopGroup
        do {
            group = try EventLoopGroup(loopCount: 1, logger: logger)
        } catch {
            throw AutoscalerStartError("cannot start the event loop: \(error)")
        }
        let server: AutoscalerServer
        do {
            server = try start(config: config, revisions: revisions, settings: settings, statusAddress: statusAddress,
                               statsAddress: statsAddress, group: group, logger: logger)
        } catch {
            group.shutdown()
            throw error
        }
        SignalSource.install(on: server.loop, signals: [SIGTERM, SIGINT, SIGHUP]) { signal in
            if signal == SIGHUP {
                // Reading the file is blocking I/O: done on the concurrency pool, never on the loop.
                Task.detached {
                    if let document = reloadRevisions() {
                        server.reload(document)
                        logger.info("revisions reloaded", metadata: ["revisions": .stringConvertible(document.revisions.count)])
                    }
                }
                return
            }
            logger.info("autoscaler stopping", metadata: ["signal": .stringConvertible(signal)])
            server.stop()
            group.requestShutdown()
        }
        var metadata: Logger.Metadata = [
            "revisions": .stringConvertible(revisions.revisions.count),
            "mesh_compatibility_mode": "\(settings.meshMode.rawValue)",
            "version": "\(Sluice.version)",
        ]
        if let address = server.statusAddress { metadata["status_port"] = .stringConvertible(Int(address.port)) }
        if let address = server.statsAddress { metadata["stats_port"] = .stringConvertible(Int(address.port)) }
        logger.info("autoscaler serving", metadata: metadata)
        group.wait()
        return 0
    }
}

/// The status API: `GET /revisions` (every revision), `GET /revisions/<namespace>/<name>`,
/// `GET /healthz`. JSON, read on the autoscaler's loop.
final class AutoscalerStatusHandler: HTTPHandler {
    let engine: LoopBound<AutoscalerEngine>

    init(engine: LoopBound<AutoscalerEngine>) {
        self.engine = engine
    }

    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        guard exchange.method == .get || exchange.method == .head else {
            return .respond(.text(405, "only GET is supported\n", fields: [("Allow", "GET, HEAD")]))
        }
        var path = String(decoding: exchange.target?.bytes ?? [], as: UTF8.self)
        if let query = path.firstIndex(of: "?") { path = String(path[..<query]) }
        if path == "/healthz" { return .respond(.text(200, "ok\n")) }
        guard path == "/revisions" || path == "/" || path.hasPrefix("/revisions/") else {
            return .respond(.text(404, "not found: try /revisions or /revisions/<namespace>/<name>\n"))
        }
        if exchange.loop === engine.loop {
            return .respond(Self.answer(path: path, engine: engine.value))
        }
        // Another loop of the group: read the engine on its own loop and resume here.
        Self.answerLater(exchange.ticket, path: path, engine: engine)
        return .suspend
    }

    static func answerLater(_ ticket: HTTPExchangeTicket, path: String, engine: LoopBound<AutoscalerEngine>) {
        engine.loop.execute {
            let response = AutoscalerStatusHandler.answer(path: path, engine: engine.value)
            ticket.resume(.respond(response))
        }
    }

    static func answer(path: String, engine: AutoscalerEngine) -> HTTPLocalResponse {
        let json: [(name: String, value: String)] = [("Content-Type", "application/json")]
        if path == "/revisions" || path == "/" {
            let body = "{\"revisions\":[" + engine.statuses().map(\.json).joined(separator: ",") + "]}\n"
            return HTTPLocalResponse(status: 200, fields: json, body: Array(body.utf8))
        }
        let parts = path.dropFirst("/revisions/".count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .text(404, "expected /revisions/<namespace>/<name>\n")
        }
        guard let status = engine.status(of: RevisionKey(namespace: String(parts[0]), name: String(parts[1]))) else {
            return .text(404, "revision \(parts[0])/\(parts[1]) is not autoscaled here\n")
        }
        return HTTPLocalResponse(status: 200, fields: json, body: Array((status.json + "\n").utf8))
    }
}
