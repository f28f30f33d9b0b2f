// The running KPA (Serving layer): per revision a scraper ticking every second, the MultiScaler's
// decider tick every 2 s, the PodAutoscaler reconciler applying bounds and the scale-to-zero gate,
// and decisions applied through a `Scaler`. Everything lives on one event loop (see
// RevisionStatScraper for why), so the collector, deciders and scrapers need no lock.
import Logging

/// Settings of `autoscaler serve` beyond the ConfigMap.
public struct AutoscalerServeSettings: Sendable {
    /// Knative's config-network `mesh-compatibility-mode`.
    public var meshMode: MeshCompatibilityMode = .auto
    /// Per-request scrape timeout (3 s in Knative).
    public var scrapeTimeout: Duration = RevisionStatScraper.defaultTimeout
    /// Scrape period (1 s in Knative, not configurable there).
    public var scrapeInterval: Duration = .seconds(1)
    /// Decider tick period (2 s in Knative, not configurable there).
    public var tickInterval: Duration = .seconds(2)
    /// Seed of the scrape-order shuffles (each revision derives its own stream).
    public var seed: UInt64 = 0x5EED_5C4A_9E00_0001

    public init() {}
}

/// What the autoscaler knows about one revision, as the status API shows it.
public struct AutoscalerRevisionStatus: Sendable, Equatable {
    public var key: RevisionKey
    public var metric: ScalingMetric
    /// The decider's desired scale (-1 until the first valid decision).
    public var desiredScale: Int32
    public var excessBurstCapacity: Int32
    public var panicking: Bool
    /// Window averages of the scaling metric at the last tick (nil: no data).
    public var averages: WindowAverages?
    public var readyPods: Int
    /// The reconciler's `want` at the last reconcile (nil before the first).
    public var want: Int32?
    /// Replica count of the scale target as the scaler reports it (nil = unset).
    public var replicas: Int32?
    public var active: ActiveState
    public var serverlessServiceMode: ServerlessServiceMode
    public var activators: Int32
    public var lastScrape: ScrapeReport?
    public var lastScrapeTime: UnixTime?
    public var lastScrapeError: String?
    public var scrapeMethod: ScrapeMethod?
    public var scrapes: Int
    public var scrapeFailures: Int

    /// One JSON object (the status API's element).
    public var json: String {
        func opt(_ x: Double?) -> String { x.map(JSONText.number) ?? "null" }
        var out = "{\"namespace\":\(JSONText.string(key.namespace)),\"name\":\(JSONText.string(key.name))"
        out += ",\"metric\":\"\(metric.rawValue)\",\"desiredScale\":\(desiredScale)"
        out += ",\"excessBurstCapacity\":\(excessBurstCapacity),\"panic\":\(panicking)"
        out += ",\"stableAverage\":\(opt(averages?.stable)),\"panicAverage\":\(opt(averages?.panic))"
        out += ",\"readyPods\":\(readyPods),\"want\":\(want.map { String($0) } ?? "null")"
        out += ",\"replicas\":\(replicas.map { String($0) } ?? "null")"
        out += ",\"active\":\"\(active == .active ? "Active" : active == .activating ? "Activating" : "Inactive")\""
        out += ",\"serverlessServiceMode\":\"\(serverlessServiceMode.rawValue)\",\"activators\":\(activators)"
        out += ",\"scrapeMethod\":\(scrapeMethod.map { "\"\($0.rawValue)\"" } ?? "null")"
        out += ",\"scrapes\":\(scrapes),\"scrapeFailures\":\(scrapeFailures)"
        if let report = lastScrape {
            out += ",\"lastScrape\":{\"time\":\(opt(lastScrapeTime?.secondsValue)),\"method\":\"\(report.method.rawValue)\""
            out += ",\"population\":\(report.population),\"sampleSize\":\(report.sampleSize)"
            out += ",\"concurrency\":\(opt(report.stat?.averageConcurrentRequests)),\"rps\":\(opt(report.stat?.requestCount))}"
        } else {
            out += ",\"lastScrape\":null"
        }
        out += ",\"lastScrapeError\":\(lastScrapeError.map(JSONText.string) ?? "null")}"
        return out
    }
}

/// One revision's state between ticks.
final class RevisionRuntime {
    var entry: RevisionEntry
    var deciderSpec: DeciderSpec
    var metricSpec: MetricSpec
    var settings: ScaleSettings
    var slot: RevisionSlot
    var scraper: RevisionStatScraper?
    var podAutoscaler: PodAutoscalerStatus
    var serverlessService: ServerlessServiceObservation
    var readyPods = 0
    var averages: WindowAverages?
    var outcome: ReconcileOutcome?
    var lastScrape: ScrapeReport?
    var lastScrapeTime: UnixTime?
    var lastScrapeError: String?
    var scrapes = 0
    var scrapeFailures = 0

    init(entry: RevisionEntry, deciderSpec: DeciderSpec, metricSpec: MetricSpec, settings: ScaleSettings,
         slot: RevisionSlot, now: UnixTime) {
        self.entry = entry
        self.deciderSpec = deciderSpec
        self.metricSpec = metricSpec
        self.settings = settings
        self.slot = slot
        // A new PodAutoscaler starts activating; with initial scale 0 it starts inactive (§10.1).
        let state: ActiveState = settings.initialScale == 0 ? .inactive : .activating
        podAutoscaler = PodAutoscalerStatus(active: ActiveCondition(state: state, since: now))
        // The ServerlessService is created in Proxy mode (activator in the path).
        serverlessService = ServerlessServiceObservation(mode: .proxy, activatorEndpointsSince: now)
    }
}

/// The autoscaler's loop-bound core. Every member is used on `loop` only.
final class AutoscalerEngine {
    let loop: EventLoop
    let clock: any WallClock
    let logger: Logger
    let settings: AutoscalerServeSettings
    let config: AutoscalerConfig
    let scaler: LocalScaler
    let client: StatScrapeClient
    private(set) var endpoints: StaticPodList
    private(set) var multi = MultiScaler()
    private(set) var revisions: [RevisionKey: RevisionRuntime] = [:]
    private var order: [RevisionKey] = []
    private var changed: [RevisionSlot] = []
    private var scrapeTimer: TimerID?
    private var tickTimer: TimerID?
    private var nextScrape: UInt64 = 0
    private var nextTick: UInt64 = 0
    private(set) var running = false
    /// Revision scrapes completed (success or failure), for the benchmark.
    private(set) var completedScrapes = 0

    init(loop: EventLoop, config: AutoscalerConfig, settings: AutoscalerServeSettings, clock: any WallClock,
         scaler: LocalScaler, logger: Logger) {
        self.loop = loop
        self.config = config
        self.settings = settings
        self.clock = clock
        self.scaler = scaler
        self.logger = logger
        client = StatScrapeClient(loop: loop)
        endpoints = StaticPodList(pods: [:])
    }

    // MARK: revisions

    /// Creates, updates and deletes revisions to match `document` (start-up and SIGHUP reload).
    func load(_ document: RevisionsDocument) {
        let now = clock.now()
        endpoints = document.podList(startedAt: now)
        var wanted = Set<RevisionKey>()
        for entry in document.revisions {
            wanted.insert(entry.key)
            let deciderSpec = SpecResolution.deciderSpec(config: config, annotations: entry.annotations,
                                                         containerConcurrency: entry.containerConcurrency)
            let metricSpec = SpecResolution.metricSpec(config: config, annotations: entry.annotations)
            let scaleSettings = ScaleSettings(config: config, annotations: entry.annotations)
            let slot = multi.createOrUpdate(entry.key, decider: deciderSpec, metric: metricSpec,
                                            readyPods: endpoints.readyPodCount(of: entry.key), now: now)
            let runtime: RevisionRuntime
            if let existing = revisions[entry.key] {
                runtime = existing
                runtime.entry = entry
                runtime.deciderSpec = deciderSpec
                runtime.metricSpec = metricSpec
                runtime.settings = scaleSettings
                runtime.slot = slot
            } else {
                runtime = RevisionRuntime(entry: entry, deciderSpec: deciderSpec, metricSpec: metricSpec,
                                          settings: scaleSettings, slot: slot, now: now)
                revisions[entry.key] = runtime
                // The Deployment is created with the initial scale (§10.1); listed pods are what runs.
                scaler.register(entry.key, replicas: Int32(clamping: entry.pods.count))
                logger.info("revision added", metadata: [
                    "knative.dev/key": "\(entry.key)", "pods": .stringConvertible(entry.pods.count),
                    "target": .stringConvertible(deciderSpec.targetValue),
                    "stable_window_seconds": .stringConvertible(metricSpec.stableWindowSeconds),
                ])
            }
            // No scraper when TBC = -1: the activator is always in the path and its stats suffice.
            if metricSpec.hasScrapeTarget {
                if let scraper = runtime.scraper {
                    scraper.serviceAddress = entry.serviceAddress
                } else {
                    runtime.scraper = RevisionStatScraper(
                        revision: entry.key, client: client, meshMode: settings.meshMode,
                        serviceAddress: entry.serviceAddress, timeout: settings.scrapeTimeout,
                        seed: settings.seed ^ Self.stableHash(entry.key), logger: logger)
                }
            } else {
                runtime.scraper = nil
            }
        }
        for key in revisions.keys where !wanted.contains(key) {
            revisions[key] = nil
            multi.delete(key)
            scaler.forget(key)
            logger.info("revision removed", metadata: ["knative.dev/key": "\(key)"])
        }
        order = revisions.keys.sorted()
        client.closeConnections(keeping: Set(document.revisions.flatMap { $0.pods.map(\.address) }))
    }

    /// FNV-1a of the key: a per-revision shuffle stream that does not depend on load order.
    static func stableHash(_ key: RevisionKey) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(key.namespace)/\(key.name)".utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return hash
    }

    // MARK: timers

    func start() {
        guard !running else { return }
        running = true
        nextScrape = loop.now
        nextTick = loop.now &+ EventLoop.nanoseconds(settings.tickInterval)
        scrapeTimerFired()
        tickTimer = loop.scheduleTimer(after: settings.tickInterval) { [weak self] in self?.tickTimerFired() }
    }

    func stop() {
        running = false
        if let scrapeTimer { loop.cancelTimer(scrapeTimer) }
        if let tickTimer { loop.cancelTimer(tickTimer) }
        scrapeTimer = nil
        tickTimer = nil
        client.closeAll()
    }

    /// The next deadline of a fixed-rate timer: `previous + interval`, or now when the loop fell
    /// more than a period behind (ticks are dropped, not bunched, as Go's ticker does).
    private func advance(_ deadline: inout UInt64, by interval: Duration) -> Duration {
        let step = EventLoop.nanoseconds(interval)
        deadline &+= step
        if deadline &+ step < loop.now { deadline = loop.now }
        return .nanoseconds(Int64(deadline > loop.now ? deadline - loop.now : 0))
    }

    private func scrapeTimerFired() {
        guard running else { return }
        scrapeAll()
        let delay = advance(&nextScrape, by: settings.scrapeInterval)
        scrapeTimer = loop.scheduleTimer(after: delay) { [weak self] in self?.scrapeTimerFired() }
    }

    private func tickTimerFired() {
        guard running else { return }
        tickAll()
        let delay = advance(&nextTick, by: settings.tickInterval)
        tickTimer = loop.scheduleTimer(after: delay) { [weak self] in self?.tickTimerFired() }
    }

    // MARK: scraping

    func scrapeAll() {
        for key in order {
            guard let runtime = revisions[key] else { continue }
            scrape(runtime)
        }
    }

    func scrape(_ runtime: RevisionRuntime, completion: (() -> Void)? = nil) {
        guard let scraper = runtime.scraper, !scraper.isScraping else {
            completion?()
            return
        }
        let key = runtime.entry.key
        let population: Int
        switch endpoints.readyPodCount(of: key) {
        case .ready(let n): population = n
        case .notFound: population = 0
        case .failed:
            runtime.lastScrapeError = "\(ScrapeError.endpointsUnavailable)"
            completion?()
            return
        }
        scraper.scrape(population: population, pods: endpoints.readyPods(of: key),
                       stableWindow: runtime.deciderSpec.stableWindow, now: clock.now()) { [weak self, weak runtime] result in
            guard let self, let runtime else { return }
            self.completedScrapes += 1
            runtime.scrapes += 1
            switch result {
            case .success(let report):
                runtime.lastScrape = report
                runtime.lastScrapeError = nil
                // Recorded at the time the scrape finished, as Knative's collector does.
                let now = self.clock.now()
                runtime.lastScrapeTime = now
                if let stat = report.stat, self.revisions[key] === runtime {
                    self.multi.recordScraped(stat, slot: runtime.slot, now: now)
                }
            case .failure(let error):
                runtime.scrapeFailures += 1
                runtime.lastScrapeError = "\(error)"
                self.logger.warning("failed to scrape the revision", metadata: [
                    "knative.dev/key": "\(key)", "error": "\(error)",
                ])
            }
            completion?()
        }
    }

    // MARK: deciding and reconciling

    func tickAll() {
        let now = clock.now()
        for key in order {
            guard let runtime = revisions[key] else { continue }
            decide(runtime, now: now)
        }
    }

    /// One decider tick of `runtime` followed by a reconcile.
    func decide(_ runtime: RevisionRuntime, now: UnixTime) {
        let ready = endpoints.readyPodCount(of: runtime.entry.key)
        if case .ready(let n) = ready { runtime.readyPods = n } else { runtime.readyPods = 0 }
        let before = multi.decider(for: runtime.entry.key)?.status
        let result = multi.tick(slot: runtime.slot, readyPods: ready, now: now)
        runtime.averages = try? multi.collector.averages(runtime.deciderSpec.scalingMetric, slot: runtime.slot, now: now).get()
        if result.statusChanged, let after = multi.decider(for: runtime.entry.key)?.status {
            logger.info("desired scale changed", metadata: [
                "knative.dev/key": "\(runtime.entry.key)",
                "from": .stringConvertible(before?.desiredScale ?? -1),
                "to": .stringConvertible(after.desiredScale),
                "excess_burst_capacity": .stringConvertible(after.excessBurstCapacity),
                "stable": .stringConvertible(runtime.averages?.stable ?? 0),
                "panic": .stringConvertible(runtime.averages?.panic ?? 0),
            ])
        }
        reconcile(runtime, now: now)
    }

    /// The PodAutoscaler reconcile (§9): bounds, scale-to-zero gate, apply, SKS mode and status.
    /// The local model has no networking layer to program: the SKS mode is what the last reconcile
    /// decided, and the activator counts as in the path from the moment the mode is Proxy.
    func reconcile(_ runtime: RevisionRuntime, now: UnixTime) {
        guard let decider = multi.decider(for: runtime.entry.key) else { return }
        let key = runtime.entry.key
        let current = try? scaler.currentReplicas(of: key)
        let sks = runtime.serverlessService
        let outcome = PodAutoscalerReconciler.reconcile(
            decider: decider.status, spec: runtime.deciderSpec, settings: runtime.settings,
            status: runtime.podAutoscaler, serverlessService: sks, readyPods: runtime.readyPods,
            currentReplicas: current ?? nil, now: now, probeActivator: { sks.mode == .proxy })
        if let replicas = outcome.patchReplicas {
            do {
                try scaler.applyScale(replicas, to: key)
            } catch {
                logger.error("failed to apply the scale", metadata: ["knative.dev/key": "\(key)", "error": "\(error)"])
            }
        }
        if outcome.status.active.state != runtime.podAutoscaler.active.state {
            logger.info("PodAutoscaler active condition changed", metadata: [
                "knative.dev/key": "\(key)", "state": "\(outcome.status.active.state)",
                "reason": "\(outcome.status.active.reason)",
            ])
        }
        runtime.podAutoscaler = outcome.status
        if outcome.serverlessServiceMode != sks.mode {
            runtime.serverlessService = ServerlessServiceObservation(
                mode: outcome.serverlessServiceMode,
                activatorEndpointsSince: outcome.serverlessServiceMode == .proxy ? now : nil)
        }
        runtime.outcome = outcome
    }

    // MARK: activator stats

    /// Records a pushed stat (arrival already stamped) and pokes the decider when the revision is at
    /// scale 0 and the stat carries concurrency (§2.3, §8.1). Unknown revisions are ignored.
    func ingest(_ stat: PodStat, for key: RevisionKey, arrival: UnixTime) {
        guard let runtime = revisions[key] else { return }
        if multi.recordActivatorStat(stat, for: key, arrival: arrival) {
            decide(runtime, now: clock.now())
        }
    }

    // MARK: status

    func status(of runtime: RevisionRuntime) -> AutoscalerRevisionStatus {
        let decider = multi.decider(for: runtime.entry.key)
        return AutoscalerRevisionStatus(
            key: runtime.entry.key, metric: runtime.deciderSpec.scalingMetric,
            desiredScale: decider?.status.desiredScale ?? -1,
            excessBurstCapacity: decider?.status.excessBurstCapacity ?? 0,
            panicking: decider?.isPanicking ?? false, averages: runtime.averages,
            readyPods: readyCount(of: runtime.entry.key), want: runtime.outcome?.want,
            replicas: (try? scaler.currentReplicas(of: runtime.entry.key)) ?? nil,
            active: runtime.podAutoscaler.active.state,
            serverlessServiceMode: runtime.serverlessService.mode,
            activators: runtime.outcome?.activatorCount ?? PodAutoscalerReconciler.minimumActivators,
            lastScrape: runtime.lastScrape, lastScrapeTime: runtime.lastScrapeTime,
            lastScrapeError: runtime.lastScrapeError, scrapeMethod: runtime.scraper?.method,
            scrapes: runtime.scrapes, scrapeFailures: runtime.scrapeFailures)
    }

    private func readyCount(of key: RevisionKey) -> Int {
        if case .ready(let n) = endpoints.readyPodCount(of: key) { return n }
        return 0
    }

    func statuses() -> [AutoscalerRevisionStatus] {
        order.compactMap { revisions[$0].map(status(of:)) }
    }

    func status(of key: RevisionKey) -> AutoscalerRevisionStatus? {
        revisions[key].map(status(of:))
    }
}
