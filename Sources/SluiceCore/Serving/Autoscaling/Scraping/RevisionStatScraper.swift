// One revision's stat scraper (Serving layer, KPA): every second, sample n of the N ready pods, scrape
// them directly (old pods first, n parallel workers), fall back to the private service when a mesh
// blocks pod addresses, and extrapolate the sample to a revision total (kpa-spec §3).
//
// Why callbacks on an event loop and not async/await: the HTTP client is the loop's callback client,
// the pods' kept-alive connections are loop-bound objects, and the collector the result goes into is
// owned by the same loop. Keeping the whole scrape → record → decide path on one thread needs no lock
// and no hop; a scrape is a few small state machines, never a blocking call on the loop.
import Logging

/// Knative's network setting `mesh-compatibility-mode`: how the autoscaler reaches pods' stats.
public enum MeshCompatibilityMode: String, Sendable, Equatable, CaseIterable {
    /// Always scrape through the private service (a mesh is known to be present).
    case enabled
    /// Always scrape pods directly.
    case disabled
    /// Scrape pods directly; fall back to the service when every pod answers like a mesh (502/503),
    /// and stay on the service once that fallback worked.
    case auto
}

/// How a scrape reached the pods.
public enum ScrapeMethod: String, Sendable, Equatable {
    case pod
    case service
}

/// A successful revision scrape.
public struct ScrapeReport: Sendable, Equatable {
    /// The revision-total estimate (pod name "service-scraper"); nil when no pod is ready (N = 0),
    /// in which case nothing is recorded.
    public var stat: PodStat?
    /// N: ready pods.
    public var population: Int
    /// n: pods sampled.
    public var sampleSize: Int
    public var method: ScrapeMethod
}

/// Scrapes one revision. Loop-bound: create, call and complete on the client's loop.
public final class RevisionStatScraper {
    public let revision: RevisionKey
    public let client: StatScrapeClient
    public var meshMode: MeshCompatibilityMode
    /// host:port of the revision's private service stats port (Knative scrapes
    /// `<revision>-private.<namespace>:9090`); nil when there is none.
    public var serviceAddress: String?
    /// Per-request timeout (3 s in Knative).
    public var timeout: Duration
    /// False once a service-scrape fallback has succeeded: direct scraping is off for good.
    public private(set) var podsAddressable = true
    /// A scrape is in flight (the next tick is skipped, as Knative's ticker drops ticks while busy).
    public private(set) var isScraping = false
    private var generator: SplitMix64
    private let logger: Logger

    /// Tries per service-scrape worker before it gives up (Knative's scraper retry limit).
    public static let serviceScrapeMaxTries = 10
    public static let defaultTimeout: Duration = .seconds(3)

    public init(revision: RevisionKey, client: StatScrapeClient, meshMode: MeshCompatibilityMode = .auto,
                serviceAddress: String? = nil, timeout: Duration = RevisionStatScraper.defaultTimeout,
                seed: UInt64, logger: Logger = Logger(label: "sluice.autoscaler.scraper")) {
        self.revision = revision
        self.client = client
        self.meshMode = meshMode
        self.serviceAddress = serviceAddress
        self.timeout = timeout
        generator = SplitMix64(seed: seed)
        self.logger = logger
    }

    /// The method the next scrape starts with.
    public var method: ScrapeMethod {
        switch meshMode {
        case .enabled: .service
        case .disabled: .pod
        case .auto: podsAddressable ? .pod : .service
        }
    }

    /// Scrapes the revision once. `population` is N (ready pods), `pods` the ready pods with their
    /// start times (for the old/young split at `now`). `completion` runs once, on the loop.
    public func scrape(population: Int, pods: [ScrapeCandidate], stableWindow: GoDuration, now: UnixTime,
                       completion: @escaping (Result<ScrapeReport, ScrapeError>) -> Void) {
        let sampleSize = ScrapeSampling.sampleSize(population: population)
        guard population > 0, sampleSize > 0 else {
            completion(.success(ScrapeReport(stat: nil, population: max(population, 0), sampleSize: 0, method: method)))
            return
        }
        isScraping = true
        let done: (Result<ScrapeReport, ScrapeError>) -> Void = { [self] result in
            isScraping = false
            completion(result)
        }
        switch method {
        case .service:
            scrapeService(population: population, sampleSize: sampleSize, stableWindow: stableWindow, completion: done)
        case .pod:
            let order = ScrapeSampling.candidateOrder(pods, now: now, stableWindow: stableWindow,
                                                      sampleSize: sampleSize, using: &generator)
            scrapePods(order, population: population, sampleSize: sampleSize) { [self] result in
                guard case .failure(.directScrapingNotAvailable) = result, meshMode == .auto else {
                    done(result)
                    return
                }
                scrapeService(population: population, sampleSize: sampleSize, stableWindow: stableWindow) { [self] result in
                    if case .success = result, podsAddressable {
                        podsAddressable = false
                        logger.info("direct pod scraping off, service scraping on", metadata: ["knative.dev/key": "\(revision)"])
                    }
                    done(result)
                }
            }
        }
    }

    // MARK: direct pod scraping

    private final class PodRound {
        let candidates: [ScrapeCandidate]
        let population: Int
        let sampleSize: Int
        var next = 0
        var running: Int
        var results: [PodStat] = []
        var failures = 0
        var allMeshErrors = true
        var exhausted = false
        var lastError: ScrapeError?
        let completion: (Result<ScrapeReport, ScrapeError>) -> Void

        init(candidates: [ScrapeCandidate], population: Int, sampleSize: Int,
             completion: @escaping (Result<ScrapeReport, ScrapeError>) -> Void) {
            self.candidates = candidates
            self.population = population
            self.sampleSize = sampleSize
            running = sampleSize
            self.completion = completion
        }
    }

    private func scrapePods(_ candidates: [ScrapeCandidate], population: Int, sampleSize: Int,
                            completion: @escaping (Result<ScrapeReport, ScrapeError>) -> Void) {
        guard !candidates.isEmpty else {
            completion(.failure(.directScrapingNotAvailable(last: "no pod addresses")))
            return
        }
        let round = PodRound(candidates: candidates, population: population, sampleSize: sampleSize, completion: completion)
        for _ in 0 ..< sampleSize { podWorkerStep(round) }
    }

    /// One worker: take the next candidate until one answers or none is left.
    private func podWorkerStep(_ round: PodRound) {
        guard round.next < round.candidates.count else {
            round.exhausted = true
            podWorkerFinished(round)
            return
        }
        let pod = round.candidates[round.next]
        round.next += 1
        client.scrapePod(address: pod.address, timeout: timeout) { [self] result in
            switch result {
            case .success(let stat):
                round.results.append(stat)
                podWorkerFinished(round)
            case .failure(let error):
                round.failures += 1
                round.lastError = error
                if !error.isPotentialMeshError { round.allMeshErrors = false }
                logger.info("failed scraping pod", metadata: [
                    "knative.dev/key": "\(revision)", "pod": "\(pod.name)", "error": "\(error)",
                ])
                podWorkerStep(round)
            }
        }
    }

    private func podWorkerFinished(_ round: PodRound) {
        round.running -= 1
        guard round.running == 0 else { return }
        let last = round.lastError.map { "\($0)" } ?? "none"
        if !round.exhausted, let stat = ScrapeSampling.extrapolate(round.results, population: round.population) {
            round.completion(.success(ScrapeReport(stat: stat, population: round.population,
                                                   sampleSize: round.sampleSize, method: .pod)))
        } else if !round.results.isEmpty {
            round.completion(.failure(.podsExhausted(sampleSize: round.sampleSize, scraped: round.results.count, last: last)))
        } else if round.allMeshErrors && round.failures > 0 {
            round.completion(.failure(.directScrapingNotAvailable(last: last)))
        } else {
            round.completion(.failure(.podsExhausted(sampleSize: round.sampleSize, scraped: 0, last: last)))
        }
    }

    // MARK: service scraping

    private final class ServiceRound {
        let address: String
        let population: Int
        let sampleSize: Int
        let stableWindow: GoDuration
        var running: Int
        var seen = Set<String>()
        var stats: [PodStat] = []
        var failedWorkers = 0
        var lastError: ScrapeError?
        let completion: (Result<ScrapeReport, ScrapeError>) -> Void

        init(address: String, population: Int, sampleSize: Int, stableWindow: GoDuration,
             completion: @escaping (Result<ScrapeReport, ScrapeError>) -> Void) {
            self.address = address
            self.population = population
            self.sampleSize = sampleSize
            self.stableWindow = stableWindow
            running = sampleSize
            self.completion = completion
        }
    }

    private func scrapeService(population: Int, sampleSize: Int, stableWindow: GoDuration,
                               completion: @escaping (Result<ScrapeReport, ScrapeError>) -> Void) {
        guard let serviceAddress else {
            completion(.failure(.noServiceAddress))
            return
        }
        let round = ServiceRound(address: serviceAddress, population: population, sampleSize: sampleSize,
                                 stableWindow: stableWindow, completion: completion)
        for _ in 0 ..< sampleSize { serviceWorkerStep(round, tries: 0) }
    }

    /// One worker: ask the service until it answers from a pod not seen in this scrape.
    private func serviceWorkerStep(_ round: ServiceRound, tries: Int) {
        client.scrapeService(address: round.address, timeout: timeout) { [self] result in
            let attempt = tries + 1
            switch result {
            case .success(let stat):
                if round.seen.insert(stat.podName).inserted {
                    round.stats.append(stat)
                    serviceWorkerFinished(round, failed: false)
                    return
                }
            case .failure(let error):
                round.lastError = error
            }
            if attempt >= Self.serviceScrapeMaxTries {
                serviceWorkerFinished(round, failed: true)
            } else {
                serviceWorkerStep(round, tries: attempt)
            }
        }
    }

    private func serviceWorkerFinished(_ round: ServiceRound, failed: Bool) {
        if failed { round.failedWorkers += 1 }
        round.running -= 1
        guard round.running == 0 else { return }
        let last = round.lastError.map { "\($0)" } ?? "the same pods answered every try"
        guard round.failedWorkers == 0,
              let sample = ScrapeSampling.selectServiceScrapeSample(round.stats, sampleSize: round.sampleSize,
                                                                    stableWindow: round.stableWindow),
              let stat = ScrapeSampling.extrapolate(sample, population: round.population) else {
            round.completion(.failure(.notEnoughPods(sampleSize: round.sampleSize, seen: round.stats.count, last: last)))
            return
        }
        round.completion(.success(ScrapeReport(stat: stat, population: round.population,
                                               sampleSize: round.sampleSize, method: .service)))
    }
}
