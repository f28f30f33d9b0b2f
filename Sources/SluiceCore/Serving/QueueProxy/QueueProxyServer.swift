// queue-proxy as a process: the serving port (QueueProxyHandler), the admin port with /wait-for-drain,
// the autoscaler's Stat port and the Prometheus port, the one-second stats tick, the readiness check of
// the user container and Knative's SIGTERM drain, all on one event loop. Serving layer; the executable
// builds a QueueProxyConfig and calls `QueueProxyServer.run`.
import CEpoll
import Logging
import Synchronization

/// The state every part of queue-proxy shares: breaker, statistics, metrics, readiness and drain.
///
/// queue-proxy runs on ONE event loop, so this is loop-bound and needs no locks. Why one loop: the
/// breaker must be exact across all requests (CC=1 means one request in flight, not one per loop), the
/// statistics must integrate every request, and a sidecar is usually given well under a core; one
/// loop proxies tens of thousands of requests per second (BENCHMARKS.md) while a cross-loop breaker
/// would need a lock or a hop per request. The benchmark compares it with the bare proxy on one loop.
final class QueueProxyState {
    let configuration: QueueProxyConfig
    let loop: EventLoop
    let logger: Logger
    let app: HTTPUpstream
    let breaker: Breaker?
    let requestTimeouts: HTTPRequestTimeouts
    let requestLog: (any RequestLogSink)?
    let startedAt: ServingInstant

    var statistics: RequestStatistics
    var statReporter: PodStatReporter
    /// The latest Stat as :9090/metrics answers it (rebuilt once per report).
    var statResponse: HTTPLocalResponse
    var requestMetrics = RequestMetricsTable()
    var appRequestMetrics = RequestMetricsTable()
    var drain: DrainStateMachine
    var prober: ReadinessProber
    let probeRunner: ReadinessProbeRunner

    /// Serving-port requests between `handleRequest` and `requestFinished` (upgraded ones included).
    var activeRequests = 0
    /// Upgraded (hijacked) connections open now.
    var upgradedConnections = 0
    private var readinessWaiters: [HTTPExchangeTicket] = []
    private var drainWaiters: [HTTPExchangeTicket] = []
    private var proberTimer: TimerID?
    private var proberTimerDeadline: ServingInstant?
    private var drainTimer: TimerID?
    private var drainTimerDeadline: ServingInstant?
    private var statsTicks: Int64 = 0

    var mainServer: HTTPServer?
    var otherServers: [HTTPServer] = []
    private var mainServerDrained = false
    private var finishReason: DrainStateMachine.FinishReason?
    /// Set once: the process exit status.
    let exitStatus: ExitStatus
    let group: EventLoopGroup

    static let drainReleased = HTTPLocalResponse(status: 200)

    init(configuration: QueueProxyConfig, group: EventLoopGroup, logger: Logger, requestLog: (any RequestLogSink)?,
         exitStatus: ExitStatus) throws(BreakerParameterError) {
        self.configuration = configuration
        self.group = group
        loop = group.loops[0]
        self.logger = logger
        self.requestLog = requestLog
        self.exitStatus = exitStatus
        var client = HTTPClientConfiguration()
        // Knative keeps CC idle connections to the app (1000 when unlimited).
        client.maxIdleConnections = configuration.containerConcurrency == 0 ? 1000 : configuration.containerConcurrency
        app = HTTPUpstream(address: .loopback(port: UInt16(configuration.userPort)), configuration: client)
        breaker = try Breaker.forContainerConcurrency(configuration.containerConcurrency)
        let limits = configuration.timeouts
        requestTimeouts = HTTPRequestTimeouts(
            total: limits.total, responseStart: limits.responseStart, idle: limits.idle,
            message: RequestTimeouts.queueProxyMessage)
        let now = ServingInstant(nanoseconds: Int64(truncatingIfNeeded: Syscall.monotonicNanoseconds()))
        startedAt = now
        statistics = RequestStatistics(startedAt: now)
        statReporter = PodStatReporter(podName: configuration.servingPod, startedAt: now)
        statResponse = Self.statResponse(statReporter.latestBytes)
        drain = DrainStateMachine(settings: configuration.drain)
        prober = ReadinessProber(probes: configuration.readinessProbes)
        probeRunner = ReadinessProbeRunner(loop: group.loops[0], logger: logger)
    }

    /// The loop's clock as the Serving state machines read it.
    var now: ServingInstant { ServingInstant(nanoseconds: Int64(truncatingIfNeeded: loop.now)) }

    /// On the loop, once the servers are up: timers and callbacks.
    func start() {
        probeRunner.onFinished = { [unowned self] id, succeeded in
            apply(prober.attemptFinished(id: id, succeeded: succeeded, at: now))
        }
        scheduleStatsTick()
    }

    // MARK: statistics (Knative reports every second)

    private func scheduleStatsTick() {
        statsTicks += 1
        // Ticks are anchored to the start so they never drift.
        let due = startedAt + statReporter.reportingPeriod * Int(statsTicks)
        let delay = due - now
        loop.scheduleTimer(after: delay > .zero ? delay : .zero) { [unowned self] in
            let now = self.now
            let report = statistics.report(at: now)
            statReporter.record(report, at: now)
            statResponse = Self.statResponse(statReporter.latestBytes)
            scheduleStatsTick()
        }
    }

    static func statResponse(_ bytes: [UInt8]) -> HTTPLocalResponse {
        HTTPLocalResponse(status: 200, fields: [("Content-Type", KnativeHeader.protobufMediaType)], body: bytes)
    }

    /// The Prometheus exposition of the request metrics (:9091/metrics).
    func prometheusText() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(8192)
        PrometheusExposition.write(
            requests: requestMetrics, appRequests: appRequestMetrics, queueDepth: breaker?.pending,
            revision: configuration.revision, into: &out)
        return out
    }

    // MARK: readiness (Knative's health handler: run the user container's probe, answer 200 or 503)

    func readinessProbeArrived(_ exchange: HTTPExchange, context: QueueRequestContext) -> HTTPHandlerDecision {
        let effects = prober.check(at: now)
        if let decided = effects.decided, effects.startAttempts.isEmpty {
            // No probe configured (or a check finished at once): answer now; nobody else can be waiting.
            return .respond(decided ? QueueProxyHandler.ready : QueueProxyHandler.notReady)
        }
        context.awaitsReadiness = true
        readinessWaiters.append(exchange.ticket)
        apply(effects)
        return .suspend
    }

    func readinessWaiterGone(_ exchange: HTTPExchange) {
        readinessWaiters.removeAll { !$0.isLive }
    }

    private func apply(_ effects: ReadinessProber.Effects) {
        for attempt in effects.startAttempts { probeRunner.start(attempt) }
        if let decided = effects.decided {
            let waiters = readinessWaiters
            readinessWaiters.removeAll()
            let answer = decided ? QueueProxyHandler.ready : QueueProxyHandler.notReady
            for ticket in waiters { ticket.resume(.respond(answer)) }
            if !decided { logger.debug("user container is not ready", metadata: ["waiters": "\(waiters.count)"]) }
        }
        rescheduleProberTimer()
    }

    private func rescheduleProberTimer() {
        let next = prober.nextDeadline
        guard next != proberTimerDeadline else { return }
        if let proberTimer { loop.cancelTimer(proberTimer) }
        proberTimer = nil
        proberTimerDeadline = next
        guard let next else { return }
        let delay = next - now
        proberTimer = loop.scheduleTimer(after: delay > .zero ? delay : .zero) { [unowned self] in
            proberTimer = nil
            proberTimerDeadline = nil
            apply(prober.advance(at: now))
        }
    }

    // MARK: drain (Knative's drainer and SIGTERM handling)

    func signalReceived(_ signal: Int32) {
        let first = !drain.signalReceived
        if first {
            logger.info("received a termination signal; draining", metadata: [
                "signal": .stringConvertible(Int(signal)),
                "quiet_period_seconds": "\(configuration.drain.quietPeriod.servingSeconds)",
            ])
            drainSignalInstant = now
        } else {
            logger.warning("second termination signal; exiting now", metadata: ["signal": .stringConvertible(Int(signal))])
        }
        apply(drain.signalReceived(at: now))
    }

    /// `/wait-for-drain` on the admin port.
    func waitForDrain(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        logger.info("attached drain handler from user-container")
        if drain.waitForDrainRequested(at: now) {
            return .respond(Self.drainReleased)
        }
        drainWaiters.append(exchange.ticket)
        rescheduleDrainTimer()
        return .suspend
    }

    func drainWaiterGone() {
        drainWaiters.removeAll { !$0.isLive }
    }

    /// A serving-port request (or an upgraded connection) ended.
    func requestEnded() {
        activeRequests -= 1
        if drain.signalReceived { advanceDrain() }
    }

    private func advanceDrain() {
        // Upgraded connections are still requests until their tunnel closes; the machine counts them apart.
        apply(drain.advance(at: now, inFlightRequests: activeRequests - upgradedConnections, upgradedConnections: upgradedConnections))
    }

    private func apply(_ effects: DrainStateMachine.Effects) {
        if effects.releaseDrainWaiters {
            let waiters = drainWaiters
            drainWaiters.removeAll()
            for ticket in waiters { ticket.resume(.respond(Self.drainReleased)) }
        }
        if effects.drainCancelled {
            logger.info("drain called off: no termination signal followed /wait-for-drain (a container restart)")
        }
        if effects.stopAccepting {
            logger.info("quiet period over; closing the serving port and finishing in-flight requests",
                        metadata: ["in_flight": .stringConvertible(activeRequests), "upgraded": .stringConvertible(upgradedConnections)])
            let timeout: Duration
            if let cap = configuration.drain.hardCap, let signalAt = drainSignalInstant {
                let left = (signalAt + cap) - now
                timeout = left > .zero ? left : .zero
            } else {
                timeout = .seconds(24 * 3600)
            }
            let box = LoopBound(self, on: loop)
            mainServer?.drain(timeout: timeout) { [loop] in
                loop.execute { box.value.mainServerFinished() }
            }
            if mainServer == nil { mainServerDrained = true }
            // The machine moves on as requests end; check at once for the idle case.
            loop.execute { box.value.advanceDrain() }
        }
        if let reason = effects.finished {
            finishReason = reason
            finishIfDone()
        }
        rescheduleDrainTimer()
    }

    private var drainSignalInstant: ServingInstant?

    private func mainServerFinished() {
        mainServerDrained = true
        advanceDrain()
        finishIfDone()
    }

    private func finishIfDone() {
        guard let reason = finishReason else { return }
        let status: Int32
        switch reason {
        case .completed:
            // Wait for the serving port's connections to close after flushing their last responses.
            guard mainServerDrained else { return }
            logger.info("drained; exiting")
            status = 0
        case .upgradedConnectionsTimedOut:
            logger.warning("upgraded connections still open after their extra time; closing them and exiting",
                           metadata: ["upgraded": .stringConvertible(upgradedConnections)])
            status = 0
        case .hardCapReached:
            logger.warning("drain hard cap reached; closing what is left and exiting",
                           metadata: ["in_flight": .stringConvertible(activeRequests)])
            status = 0
        case .secondSignal:
            // Knative's signal handling: a second signal exits at once with status 1.
            status = 1
        }
        exit(status: status)
    }

    func exit(status: Int32) {
        guard exitStatus.set(status) else { return }
        probeRunner.cancelAll()
        group.requestShutdown()
    }

    private func rescheduleDrainTimer() {
        let next = drain.nextDeadline
        guard next != drainTimerDeadline else { return }
        if let drainTimer { loop.cancelTimer(drainTimer) }
        drainTimer = nil
        drainTimerDeadline = next
        guard let next else { return }
        let delay = next - now
        drainTimer = loop.scheduleTimer(after: delay > .zero ? delay : .zero) { [unowned self] in
            drainTimer = nil
            drainTimerDeadline = nil
            advanceDrain()
        }
    }
}

/// The status the process exits with, decided once on the loop and read by `run` after the loop ended.
final class ExitStatus: Sendable {
    private let status = Mutex<Int32?>(nil)

    /// Records `value` unless a status was already decided; true when this call decided it.
    func set(_ value: Int32) -> Bool {
        status.withLock { current in
            guard current == nil else { return false }
            current = value
            return true
        }
    }

    var value: Int32? { status.withLock { $0 } }
}

/// The admin port (Knative's 8022): `/wait-for-drain` only.
final class QueueAdminHandler: HTTPHandler {
    let state: QueueProxyState
    static let path = Array("/wait-for-drain".utf8)

    init(state: QueueProxyState) {
        self.state = state
    }

    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        guard QueueProxyPaths.targetPath(exchange, equals: Self.path) else { return .respond(QueueProxyPaths.notFound) }
        return state.waitForDrain(exchange)
    }

    func requestCancelled(_ exchange: HTTPExchange, reason: HTTPCancellationReason) {
        state.drainWaiterGone()
    }
}

/// The autoscaler's Stat port (Knative's 9090): the latest Stat as protobuf on `/metrics` only.
final class QueueStatHandler: HTTPHandler {
    let state: QueueProxyState

    init(state: QueueProxyState) {
        self.state = state
    }

    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        guard QueueProxyPaths.targetPath(exchange, equals: QueueProxyPaths.metrics) else { return .respond(QueueProxyPaths.notFound) }
        return .respond(state.statResponse)
    }
}

/// The request metrics port (9091): Prometheus text on `/metrics` only.
final class QueuePrometheusHandler: HTTPHandler {
    let state: QueueProxyState

    init(state: QueueProxyState) {
        self.state = state
    }

    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        guard QueueProxyPaths.targetPath(exchange, equals: QueueProxyPaths.metrics) else { return .respond(QueueProxyPaths.notFound) }
        return .respond(HTTPLocalResponse(
            status: 200, fields: [("Content-Type", PrometheusExposition.contentType)], body: state.prometheusText()))
    }
}

enum QueueProxyPaths {
    static let metrics = Array("/metrics".utf8)
    /// Go's ServeMux answer for an unknown path.
    static let notFound = HTTPLocalResponse(LocalResponse.goError(status: 404, message: "404 page not found"))

    /// Whether the request target's path (before any query) is exactly `path`.
    static func targetPath(_ exchange: HTTPExchange, equals path: [UInt8]) -> Bool {
        let target = exchange.head.target
        return exchange.withHeadBytes { span in
            guard target.upperBound <= span.count else { return false }
            var start = target.lowerBound
            // Absolute form: skip scheme://authority.
            if target.count > 0 && span[start] != UInt8(ascii: "/") {
                var slashes = 0
                while start < target.upperBound {
                    if span[start] == UInt8(ascii: "/") {
                        slashes += 1
                        if slashes == 3 { break }
                    }
                    start += 1
                }
            }
            var end = start
            while end < target.upperBound && span[end] != UInt8(ascii: "?") { end += 1 }
            guard end - start == path.count else { return false }
            for i in 0 ..< path.count where span[start + i] != path[i] { return false }
            return true
        }
    }
}

/// Runs queue-proxy until it has drained (or was stopped by a second signal).
public enum QueueProxyServer {
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts every port on one event loop and blocks until the process should exit; returns the exit
    /// status. `SIGTERM`/`SIGINT` must not have been handled elsewhere: they are blocked here, before
    /// any thread starts, and delivered to the loop.
    /// `maxConnections` bounds the serving port (the edge derives it from RLIMIT_NOFILE).
    public static func run(configuration: QueueProxyConfig, logger: Logger, requestLog: (any RequestLogSink)?,
                           maxConnections: Int) throws(StartError) -> Int32 {
        do {
            try SignalSource.block([SIGTERM, SIGINT])
        } catch {
            throw StartError(description: "cannot block SIGTERM/SIGINT: \(error)")
        }
        let group: EventLoopGroup
        do {
            group = try EventLoopGroup(loopCount: 1, logger: logger)
        } catch {
            throw StartError(description: "cannot start the event loop: \(error)")
        }
        let exitStatus = ExitStatus()
        let state: QueueProxyState
        do {
            state = try QueueProxyState(configuration: configuration, group: group, logger: logger, requestLog: requestLog, exitStatus: exitStatus)
        } catch {
            group.shutdown()
            throw StartError(description: "CONTAINER_CONCURRENCY: \(error)")
        }
        let loop = group.loops[0]
        let box = LoopBound(state, on: loop)
        let host = configuration.bindAddress

        func listen(_ port: Int, _ name: String, _ server: HTTPServerConfiguration,
                    _ makeHandler: @escaping @Sendable (EventLoop) -> any HTTPHandler) throws(StartError) -> HTTPServer {
            do {
                let address = try SocketAddress(host: host, port: UInt16(port))
                return try HTTPServer.start(on: group, address: address, configuration: server,
                                            logger: Logger(label: "sluice.queue.\(name)"), makeHandler: makeHandler)
            } catch {
                throw StartError(description: "cannot listen on \(host):\(port) (\(name) port): \(error)")
            }
        }

        var mainConfiguration = HTTPServerConfiguration()
        mainConfiguration.maxConnections = max(1, maxConnections)
        // Go's ReverseProxy appends the peer to X-Forwarded-For and adds nothing else.
        mainConfiguration.forwardedHeaders.appendXForwardedFor = true
        mainConfiguration.forwardedHeaders.xForwardedProto = nil
        mainConfiguration.forwardedHeaders.addForwarded = false
        var sideConfiguration = HTTPServerConfiguration()
        // reliability.md §1c: admin and metrics listeners have their own small connection cap.
        sideConfiguration.maxConnections = 64
        sideConfiguration.forwardedHeaders.appendXForwardedFor = false
        sideConfiguration.forwardedHeaders.xForwardedProto = nil

        var servers: [HTTPServer] = []
        do throws(StartError) {
            let main = try listen(configuration.servingPort, "serving", mainConfiguration) { _ in QueueProxyHandler(state: box.value) }
            servers.append(main)
            servers.append(try listen(configuration.adminPort, "admin", sideConfiguration) { _ in QueueAdminHandler(state: box.value) })
            servers.append(try listen(configuration.metricsPort, "metrics", sideConfiguration) { _ in QueueStatHandler(state: box.value) })
            servers.append(try listen(configuration.userMetricsPort, "user-metrics", sideConfiguration) { _ in QueuePrometheusHandler(state: box.value) })
        } catch {
            group.shutdown()
            throw error
        }
        let attached = servers
        loop.execute {
            let state = box.value
            state.mainServer = attached[0]
            state.otherServers = Array(attached.dropFirst())
            state.start()
        }
        SignalSource.install(on: loop, signals: [SIGTERM, SIGINT]) { signal in box.value.signalReceived(signal) }

        var metadata: Logger.Metadata = [
            "serving_port": .stringConvertible(Int(attached[0].localAddress.port)),
            "admin_port": .stringConvertible(Int(attached[1].localAddress.port)),
            "metrics_port": .stringConvertible(Int(attached[2].localAddress.port)),
            "user_metrics_port": .stringConvertible(Int(attached[3].localAddress.port)),
            "user_port": .stringConvertible(configuration.userPort),
            "container_concurrency": .stringConvertible(configuration.containerConcurrency),
            "version": "\(Sluice.version)",
        ]
        if let breaker = state.breaker {
            metadata["breaker_capacity"] = .stringConvertible(breaker.capacity)
            metadata["breaker_queue_depth"] = .stringConvertible(breaker.queueDepth)
        }
        logger.info("queue-proxy listening", metadata: metadata)
        group.wait()
        return exitStatus.value ?? 0
    }
}
