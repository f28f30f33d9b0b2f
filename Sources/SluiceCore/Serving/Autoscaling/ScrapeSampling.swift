// The scraper's sampling maths (Serving layer, KPA): how many pods to scrape per revision each
// second, in which order, and how the sample is extrapolated to a revision total (kpa-spec §3).
// Pure functions; the network loop that calls them lives with the HTTP client.

/// A ready pod the scraper may ask for its stat.
public struct ScrapeCandidate: Sendable, Equatable {
    public var name: String
    public var address: String
    /// When the pod started running (to tell old pods from young ones).
    public var startedAt: UnixTime

    public init(name: String, address: String, startedAt: UnixTime) {
        self.name = name
        self.address = address
        self.startedAt = startedAt
    }
}

/// A deterministic generator for the shuffles (SplitMix64), so a seed reproduces a scrape order.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

public enum ScrapeSampling {
    /// 1.96² × 100 / 5²: 95 % confidence, margin of error 5, assumed variance 100.
    public static let sampleConstant = 1.96 * 1.96 * 100.0 / (5.0 * 5.0)

    /// Pods to scrape out of `population` ready pods: all of them up to 3, then
    /// `ceil(N·X / (N + X − 1))` (5 → 4, 10 → 7, 100 → 14, 1000 → 16).
    public static func sampleSize(population: Int) -> Int {
        if population <= 3 { return max(population, 0) }
        let n = Double(population)
        return Int((n * sampleConstant / (n + sampleConstant - 1)).rounded(.up))
    }

    /// Scrape order for direct pod scraping: pods running for at least one stable window come
    /// first. The group that will supply the sample is shuffled: the young pods when there are
    /// fewer old pods than `sampleSize`, otherwise the old ones.
    public static func candidateOrder<G: RandomNumberGenerator>(
        _ pods: [ScrapeCandidate], now: UnixTime, stableWindow: GoDuration, sampleSize: Int,
        using generator: inout G
    ) -> [ScrapeCandidate] {
        var old: [ScrapeCandidate] = []
        var young: [ScrapeCandidate] = []
        for pod in pods {
            if now - pod.startedAt >= stableWindow { old.append(pod) } else { young.append(pod) }
        }
        if old.count < sampleSize {
            young.shuffle(using: &generator)
        } else {
            old.shuffle(using: &generator)
        }
        return old + young
    }

    /// The revision-total estimate from `sample` (one stat per distinct pod) out of `population`
    /// ready pods: every field summed and scaled by `population / sample.count`. Nil for an empty
    /// sample. Uptime and timestamp are not extrapolated (they are per pod).
    public static func extrapolate(_ sample: [PodStat], population: Int) -> PodStat? {
        guard !sample.isEmpty else { return nil }
        var sum = PodStat(podName: "service-scraper")
        for stat in sample {
            sum.averageConcurrentRequests += stat.averageConcurrentRequests
            sum.averageProxiedConcurrentRequests += stat.averageProxiedConcurrentRequests
            sum.requestCount += stat.requestCount
            sum.proxiedRequestCount += stat.proxiedRequestCount
        }
        let n = Double(sample.count)
        let total = Double(population)
        sum.averageConcurrentRequests = sum.averageConcurrentRequests / n * total
        sum.averageProxiedConcurrentRequests = sum.averageProxiedConcurrentRequests / n * total
        sum.requestCount = sum.requestCount / n * total
        sum.proxiedRequestCount = sum.proxiedRequestCount / n * total
        return sum
    }

    /// Service scraping keeps stats from pods old enough (uptime >= stable window) first and
    /// fills the rest of the sample with young pods' stats; nil when fewer than `sampleSize`
    /// distinct pods were seen (the scrape fails).
    public static func selectServiceScrapeSample(
        _ stats: [PodStat], sampleSize: Int, stableWindow: GoDuration
    ) -> [PodStat]? {
        var seen = Set<String>()
        var old: [PodStat] = []
        var young: [PodStat] = []
        for stat in stats where seen.insert(stat.podName).inserted {
            if stat.processUptime >= stableWindow.secondsValue { old.append(stat) } else { young.append(stat) }
        }
        guard old.count + young.count >= sampleSize else { return nil }
        return Array((old + young).prefix(sampleSize))
    }
}
