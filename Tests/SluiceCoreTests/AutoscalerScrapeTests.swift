// Tests for the KPA's stat scraper (Serving layer): real stat servers on 127.0.0.1 answering with
// protobuf Stats, other content types, 502/503 and silence; sampling, extrapolation, mesh fallback,
// kept-alive pod connections, and the estimate landing in the collector's per-second buckets.
import Foundation
import Glibc
import Synchronization
import SluiceTestSupport
import Testing
@testable import SluiceCore

/// A pod's stats port: answers every GET /metrics with the current script (kept-alive connections).
final class StatPod: Sendable {
    struct Answer: Sendable {
        var status = 200
        var contentType = "application/protobuf"
        var stat = Metrics_Stat()
        /// Pod names to rotate through (service scraping: a load balancer in front of several pods).
        var rotatePodNames: [String] = []
        /// Hold the request this long before answering (timeouts).
        var delay: Duration = .zero
    }

    let name: String
    private let answer: Locked<Answer>
    let backend: ScriptedBackend

    init(name: String, concurrency: Double = 0, rps: Double = 0, uptime: Double = 3600,
         configure: (inout Answer) -> Void = { _ in }) throws {
        self.name = name
        var initial = Answer()
        initial.stat.podName = name
        initial.stat.averageConcurrentRequests = concurrency
        initial.stat.requestCount = rps
        initial.stat.processUptime = uptime
        configure(&initial)
        let answer = Locked(initial)
        let served = Locked(0)
        self.answer = answer
        backend = try ScriptedBackend { connection in
            while try connection.readRequest() != nil {
                let now = answer.withLock { $0 }
                var stat = now.stat
                let index = served.withLock { n -> Int in defer { n += 1 }; return n }
                if !now.rotatePodNames.isEmpty { stat.podName = now.rotatePodNames[index % now.rotatePodNames.count] }
                if now.delay > .zero { usleep(UInt32(now.delay.components.seconds * 1_000_000 + now.delay.components.attoseconds / 1_000_000_000_000)) }
                try connection.respond(status: now.status, fields: ["Content-Type: \(now.contentType)"],
                                       body: try stat.serializedBytes())
            }
        }
    }

    var address: String { "127.0.0.1:\(backend.port)" }
    var requestCount: Int { backend.requests.count }
    func update(_ change: (inout Answer) -> Void) { answer.withLock { change(&$0) } }
    func candidate(startedAt: UnixTime = UnixTime(seconds: 0)) -> ScrapeCandidate {
        ScrapeCandidate(name: name, address: address, startedAt: startedAt)
    }
    func stop() { backend.stop() }
}

/// Runs one revision scrape on `loop` and waits for its result.
func scrapeOnce(_ scraper: RevisionStatScraper, on loop: EventLoop, population: Int, pods: [ScrapeCandidate],
                stableWindow: GoDuration = .seconds(60), now: UnixTime = UnixTime(seconds: 1_000_000)) throws -> Result<ScrapeReport, ScrapeError> {
    let result = Locked<Result<ScrapeReport, ScrapeError>?>(nil)
    let box = UncheckedBox(scraper)
    loop.execute {
        box.value.scrape(population: population, pods: pods, stableWindow: stableWindow, now: now) { outcome in
            result.withLock { $0 = outcome }
        }
    }
    guard eventually(timeout: .seconds(30), { result.value != nil }), let value = result.value else {
        throw TestFailure("the scrape did not complete")
    }
    return value
}

/// A scraper with its client, made on the loop.
func makeScraper(on loop: EventLoop, mesh: MeshCompatibilityMode = .auto, service: String? = nil,
                 timeout: Duration = .seconds(3), seed: UInt64 = 42) throws -> RevisionStatScraper {
    let made = try onLoop(loop) {
        UncheckedBox(RevisionStatScraper(revision: RevisionKey(namespace: "default", name: "hello-00001"),
                                         client: StatScrapeClient(loop: loop), meshMode: mesh,
                                         serviceAddress: service, timeout: timeout, seed: seed))
    }
    return made.value
}


@Suite("Autoscaler stat scraping", .timeLimit(.minutes(1)))
struct AutoscalerScrapeTests {
    @Test("three pods reporting concurrency 3, 5 and 3 are extrapolated to a revision total of 11")
    func extrapolatesThreePods() throws {
        let pods = try [StatPod(name: "a", concurrency: 3, rps: 1), StatPod(name: "b", concurrency: 5, rps: 2),
                        StatPod(name: "c", concurrency: 3, rps: 3)]
        defer { pods.forEach { $0.stop() } }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0])
        let report = try scrapeOnce(scraper, on: group.loops[0], population: 3, pods: pods.map { $0.candidate() }).get()
        #expect(report.method == .pod)
        #expect(report.sampleSize == 3 && report.population == 3)
        #expect(report.stat?.podName == "service-scraper")
        #expect(report.stat?.averageConcurrentRequests == 11)
        #expect(report.stat?.requestCount == 6)
        for pod in pods {
            #expect(pod.requestCount == 1)
            #expect(pod.backend.requests.first?.field("accept") == "application/protobuf")
            #expect(pod.backend.requests.first?.target == "/metrics")
        }
    }

    @Test("no ready pod means an empty scrape: nothing is asked and nothing is recorded")
    func emptyPopulation() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0])
        let report = try scrapeOnce(scraper, on: group.loops[0], population: 0, pods: []).get()
        #expect(report.stat == nil)
        #expect(report.sampleSize == 0)
    }

    @Test("pod connections are kept alive between scrapes")
    func keepsConnectionsAlive() throws {
        let pod = try StatPod(name: "a", concurrency: 2)
        defer { pod.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let scraper = try makeScraper(on: loop)
        for _ in 0 ..< 3 {
            let report = try scrapeOnce(scraper, on: loop, population: 1, pods: [pod.candidate()]).get()
            #expect(report.stat?.averageConcurrentRequests == 2)
        }
        #expect(pod.backend.accepted == 1)
        #expect(pod.requestCount == 3)
        let box = UncheckedBox(scraper)
        let statistics = try onLoop(loop) { box.value.client.currentStatistics }
        #expect(statistics.podConnects == 1)
        #expect(statistics.podReuses == 2)
    }

    @Test("a pod that closed its idle kept-alive connection is scraped again on a new one")
    func reconnectsAfterIdleClose() throws {
        // One request per connection, then the pod closes it.
        let backend = try ScriptedBackend { connection in
            guard try connection.readRequest() != nil else { return }
            var stat = Metrics_Stat()
            stat.podName = "a"
            stat.averageConcurrentRequests = 4
            try connection.respond(fields: ["Content-Type: application/protobuf"], body: try stat.serializedBytes())
        }
        defer { backend.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0])
        let pod = ScrapeCandidate(name: "a", address: "127.0.0.1:\(backend.port)", startedAt: UnixTime(seconds: 0))
        for _ in 0 ..< 3 {
            usleep(50_000) // let the close arrive, or not: both paths must work
            let report = try scrapeOnce(scraper, on: group.loops[0], population: 1, pods: [pod]).get()
            #expect(report.stat?.averageConcurrentRequests == 4)
        }
        #expect(backend.accepted == 3)
    }

    @Test("a pod answering another content type is an unsupported metric type; the next candidate takes its place")
    func unsupportedContentType() throws {
        // N = 5 → n = 4: one text/plain pod leaves exactly four good ones.
        var pods = try (0 ..< 4).map { try StatPod(name: "good-\($0)", concurrency: 2) }
        pods.append(try StatPod(name: "text", concurrency: 100) { $0.contentType = "text/plain; version=0.0.4" })
        defer { pods.forEach { $0.stop() } }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0])
        let report = try scrapeOnce(scraper, on: group.loops[0], population: 5, pods: pods.map { $0.candidate() }).get()
        #expect(report.sampleSize == 4)
        #expect(report.stat?.averageConcurrentRequests == 10) // 4 × 2 / 4 × 5

        let only = try StatPod(name: "text-only", concurrency: 1) { $0.contentType = "text/plain" }
        defer { only.stop() }
        let failed = try scrapeOnce(scraper, on: group.loops[0], population: 1, pods: [only.candidate()])
        guard case .failure(.podsExhausted(1, 0, let last)) = failed else {
            Issue.record("expected pods exhausted, got \(failed)")
            return
        }
        #expect(last.contains("unsupported metric type"), "\(last)")
    }

    @Test("a Stat sent chunked, or delimited by the connection's close, is decoded; the chunked connection is kept")
    func bodyFramings() throws {
        var stat = Metrics_Stat()
        stat.podName = "a"
        stat.averageConcurrentRequests = 6
        let body: [UInt8] = try stat.serializedBytes()
        let chunked = try ScriptedBackend { connection in
            while try connection.readRequest() != nil {
                try connection.send("HTTP/1.1 200 OK\r\nContent-Type: application/protobuf\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    + String(body.count, radix: 16) + "\r\n")
                try connection.send(body)
                try connection.send("\r\n0\r\n\r\n")
            }
        }
        let closing = try ScriptedBackend { connection in
            guard try connection.readRequest() != nil else { return }
            try connection.send("HTTP/1.1 200 OK\r\nContent-Type: application/protobuf\r\nConnection: close\r\n\r\n")
            try connection.send(body)
        }
        defer { chunked.stop(); closing.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0])
        for backend in [chunked, closing, chunked, closing] {
            let pod = ScrapeCandidate(name: "a", address: "127.0.0.1:\(backend.port)", startedAt: UnixTime(seconds: 0))
            let report = try scrapeOnce(scraper, on: group.loops[0], population: 1, pods: [pod]).get()
            #expect(report.stat?.averageConcurrentRequests == 6)
        }
        #expect(chunked.accepted == 1)
        #expect(closing.accepted == 2)
    }

    @Test("a stat that is not protobuf fails the pod with a decoding error")
    func invalidProtobuf() throws {
        let backend = try ScriptedBackend { connection in
            while try connection.readRequest() != nil {
                try connection.respond(fields: ["Content-Type: application/protobuf"], body: [0xFF, 0xFF, 0xFF])
            }
        }
        defer { backend.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0])
        let pod = ScrapeCandidate(name: "a", address: "127.0.0.1:\(backend.port)", startedAt: UnixTime(seconds: 0))
        let result = try scrapeOnce(scraper, on: group.loops[0], population: 1, pods: [pod])
        guard case .failure(.podsExhausted(_, _, let last)) = result else {
            Issue.record("expected a failure, got \(result)")
            return
        }
        #expect(last.contains("cannot decode the Stat"), "\(last)")
    }

    @Test("with many pods only the sample size is scraped, each pod at most once, and the sum is scaled to N")
    func sampleOfManyPods() throws {
        let pods = try (0 ..< 20).map { try StatPod(name: "p\($0)", concurrency: 2, rps: 3) }
        defer { pods.forEach { $0.stop() } }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0])
        let report = try scrapeOnce(scraper, on: group.loops[0], population: 20, pods: pods.map { $0.candidate() }).get()
        #expect(ScrapeSampling.sampleSize(population: 20) == 9)
        #expect(report.sampleSize == 9)
        #expect(pods.map(\.requestCount).reduce(0, +) == 9)
        #expect(pods.allSatisfy { $0.requestCount <= 1 })
        #expect(abs((report.stat?.averageConcurrentRequests ?? 0) - 40) < 1e-9)
        #expect(abs((report.stat?.requestCount ?? 0) - 60) < 1e-9)
    }

    @Test("old pods are scraped before young ones when there are enough of them")
    func oldPodsFirst() throws {
        let now = UnixTime(seconds: 1_000_000)
        let old = try (0 ..< 4).map { try StatPod(name: "old\($0)", concurrency: 1) }
        let young = try (0 ..< 4).map { try StatPod(name: "young\($0)", concurrency: 50) }
        defer { (old + young).forEach { $0.stop() } }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0])
        // N = 8 → n = 6: all 4 old pods, then 2 young ones.
        let candidates = young.map { $0.candidate(startedAt: now) } + old.map { $0.candidate(startedAt: UnixTime(seconds: 0)) }
        let report = try scrapeOnce(scraper, on: group.loops[0], population: 8, pods: candidates, now: now).get()
        #expect(report.sampleSize == 6)
        #expect(old.allSatisfy { $0.requestCount == 1 })
        #expect(young.map(\.requestCount).reduce(0, +) == 2)
        #expect(abs((report.stat?.averageConcurrentRequests ?? 0) - (4 + 100) / 6.0 * 8) < 1e-9)
    }

    @Test("when every pod answers 503 the scraper falls back to the service, then stays on it")
    func meshFallback() throws {
        let pods = try [StatPod(name: "a") { $0.status = 503 }, StatPod(name: "b") { $0.status = 502 }]
        let service = try StatPod(name: "svc", concurrency: 4) { $0.rotatePodNames = ["a", "b"] }
        defer { (pods + [service]).forEach { $0.stop() } }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0], service: service.address)
        let report = try scrapeOnce(scraper, on: group.loops[0], population: 2, pods: pods.map { $0.candidate() }).get()
        #expect(report.method == .service)
        #expect(report.stat?.averageConcurrentRequests == 8)
        #expect(!scraper.podsAddressable)
        // Keep-alive off for the service: one connection per request.
        #expect(service.backend.accepted == service.requestCount)
        #expect(service.backend.requests.allSatisfy { $0.field("connection") == "close" })

        let podRequests = pods.map(\.requestCount)
        let second = try scrapeOnce(scraper, on: group.loops[0], population: 2, pods: pods.map { $0.candidate() }).get()
        #expect(second.method == .service)
        #expect(pods.map(\.requestCount) == podRequests)
    }

    @Test("a refused pod among 503s is not a mesh case: no fallback, the scrape fails")
    func mixedFailuresDoNotFallBack() throws {
        let meshPod = try StatPod(name: "a") { $0.status = 503 }
        let service = try StatPod(name: "svc", concurrency: 4) { $0.rotatePodNames = ["a", "b"] }
        defer { meshPod.stop(); service.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0], service: service.address)
        let refused = ScrapeCandidate(name: "b", address: "127.0.0.1:\(try freePort())", startedAt: UnixTime(seconds: 0))
        let result = try scrapeOnce(scraper, on: group.loops[0], population: 2, pods: [meshPod.candidate(), refused])
        guard case .failure(.podsExhausted) = result else {
            Issue.record("expected pods exhausted, got \(result)")
            return
        }
        #expect(service.requestCount == 0)
        #expect(scraper.podsAddressable)
    }

    @Test("mesh mode disabled never uses the service; enabled never asks the pods")
    func meshModes() throws {
        let pod = try StatPod(name: "a", concurrency: 1) { $0.status = 503 }
        let service = try StatPod(name: "svc", concurrency: 7) { $0.rotatePodNames = ["a"] }
        defer { pod.stop(); service.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let disabled = try makeScraper(on: group.loops[0], mesh: .disabled, service: service.address)
        let result = try scrapeOnce(disabled, on: group.loops[0], population: 1, pods: [pod.candidate()])
        guard case .failure(.directScrapingNotAvailable) = result else {
            Issue.record("expected direct scraping not available, got \(result)")
            return
        }
        #expect(service.requestCount == 0)

        let enabled = try makeScraper(on: group.loops[0], mesh: .enabled, service: service.address)
        let before = pod.requestCount
        let report = try scrapeOnce(enabled, on: group.loops[0], population: 1, pods: [pod.candidate()]).get()
        #expect(report.method == .service)
        #expect(report.stat?.averageConcurrentRequests == 7)
        #expect(pod.requestCount == before)
    }

    @Test("service scraping fails when fewer distinct pods than the sample answer within the tries")
    func serviceNeedsDistinctPods() throws {
        let service = try StatPod(name: "only-one", concurrency: 3)
        defer { service.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0], mesh: .enabled, service: service.address)
        let result = try scrapeOnce(scraper, on: group.loops[0], population: 2, pods: [])
        guard case .failure(.notEnoughPods(2, 1, _)) = result else {
            Issue.record("expected not enough pods, got \(result)")
            return
        }
        // One worker succeeded at once; the other tried 10 times.
        #expect(service.requestCount == 1 + RevisionStatScraper.serviceScrapeMaxTries)
    }

    @Test("a pod that does not answer within the timeout fails the scrape")
    func timeout() throws {
        let slow = try StatPod(name: "slow", concurrency: 1) { $0.delay = .milliseconds(1500) }
        defer { slow.stop() }
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let scraper = try makeScraper(on: group.loops[0], timeout: .milliseconds(300))
        let start = ContinuousClock.now
        let result = try scrapeOnce(scraper, on: group.loops[0], population: 1, pods: [slow.candidate()])
        let elapsed = ContinuousClock.now - start
        guard case .failure(.podsExhausted(_, 0, let last)) = result else {
            Issue.record("expected a failed scrape, got \(result)")
            return
        }
        #expect(last.contains("timed out"), "\(last)")
        #expect(elapsed < .seconds(1.4))
        #expect(!scraper.isScraping)
    }

    @Test("stats addresses must be numeric host:port")
    func addresses() throws {
        #expect(try StatsAddress.parse("127.0.0.1:9090").port == 9090)
        #expect(try StatsAddress.parse("[::1]:9090").port == 9090)
        #expect(try StatsAddress.parse("localhost:80").host == "127.0.0.1")
        for bad in ["127.0.0.1", "pod.local:9090", "127.0.0.1:0", "127.0.0.1:70000", ":9090"] {
            #expect(throws: ScrapeError.invalidAddress(bad)) { try StatsAddress.parse(bad) }
        }
    }
}

