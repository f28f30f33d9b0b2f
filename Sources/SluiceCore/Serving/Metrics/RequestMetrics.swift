// queue-proxy's user-facing request metrics (served on :9091 as Prometheus text): request counts and
// latency histograms by response code, for all requests and for those that reached the app, plus the
// breaker's queue depth — under the metric and label names Knative's queue-proxy has always exported.
// Serving layer; one table per event loop, fixed-size storage, recording allocates nothing.

/// Counts and latency histograms by response code. Merge the tables of all loops at scrape time.
public struct RequestMetricsTable: Sendable {
    /// Histogram bounds in milliseconds (Knative's request latency distribution).
    public static let latencyBucketsMilliseconds: [Int64] = [
        5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 2000, 5000,
        10000, 20000, 50000, 100000,
    ]
    private static let bucketNanoseconds = latencyBucketsMilliseconds.map { $0 * 1_000_000 }
    private static let bucketCount = latencyBucketsMilliseconds.count

    public let maxDistinctCodes: Int
    /// Status code (0…999) → slot + 1; 0 = no slot yet.
    private var slotOfCode: [UInt8]
    private var codes: [Int]
    private var counts: [UInt64]
    /// Per slot, per bucket: samples whose latency falls in that bucket (not cumulative).
    private var buckets: [UInt64]
    private var sumNanoseconds: [UInt64]
    /// Samples not recorded because more distinct codes were seen than there are slots.
    public private(set) var droppedSamples: UInt64 = 0

    public init(maxDistinctCodes: Int = 64) {
        self.maxDistinctCodes = min(max(maxDistinctCodes, 1), 255)
        slotOfCode = Array(repeating: 0, count: 1000)
        codes = []
        codes.reserveCapacity(self.maxDistinctCodes)
        counts = Array(repeating: 0, count: self.maxDistinctCodes)
        buckets = Array(repeating: 0, count: self.maxDistinctCodes * Self.bucketCount)
        sumNanoseconds = Array(repeating: 0, count: self.maxDistinctCodes)
    }

    /// Records one finished request.
    public mutating func record(status: Int, latency: Duration) {
        record(status: status, latencyNanoseconds: max(latency.servingNanoseconds, 0), count: 1)
    }

    private mutating func record(status: Int, latencyNanoseconds: Int64, count: UInt64) {
        guard let slot = slot(for: status) else {
            droppedSamples &+= count
            return
        }
        counts[slot] &+= count
        sumNanoseconds[slot] &+= UInt64(latencyNanoseconds) &* count
        var bucket = 0
        while bucket < Self.bucketCount, latencyNanoseconds > Self.bucketNanoseconds[bucket] { bucket += 1 }
        if bucket < Self.bucketCount {
            buckets[slot * Self.bucketCount + bucket] &+= count
        }
    }

    private mutating func slot(for status: Int) -> Int? {
        let code = (0...999).contains(status) ? status : 0
        let existing = Int(slotOfCode[code])
        if existing > 0 { return existing - 1 }
        guard codes.count < maxDistinctCodes else { return nil }
        codes.append(code)
        slotOfCode[code] = UInt8(codes.count)
        return codes.count - 1
    }

    /// Adds another loop's figures to these.
    public mutating func merge(_ other: RequestMetricsTable) {
        droppedSamples &+= other.droppedSamples
        for (otherSlot, code) in other.codes.enumerated() {
            guard let slot = slot(for: code) else {
                droppedSamples &+= other.counts[otherSlot]
                continue
            }
            counts[slot] &+= other.counts[otherSlot]
            sumNanoseconds[slot] &+= other.sumNanoseconds[otherSlot]
            for bucket in 0..<Self.bucketCount {
                buckets[slot * Self.bucketCount + bucket] &+= other.buckets[otherSlot * Self.bucketCount + bucket]
            }
        }
    }

    /// Requests recorded with `status`.
    public func count(status: Int) -> UInt64 {
        guard (0...999).contains(status), slotOfCode[status] > 0 else { return 0 }
        return counts[Int(slotOfCode[status]) - 1]
    }

    /// The codes seen, in ascending order.
    public var statusCodes: [Int] { codes.sorted() }

    func series(status: Int) -> (count: UInt64, sumNanoseconds: UInt64, buckets: ArraySlice<UInt64>)? {
        guard (0...999).contains(status), slotOfCode[status] > 0 else { return nil }
        let slot = Int(slotOfCode[status]) - 1
        return (counts[slot], sumNanoseconds[slot], buckets[(slot * Self.bucketCount)..<((slot + 1) * Self.bucketCount)])
    }
}

/// Writes queue-proxy's request metrics in the Prometheus text format (version 0.0.4).
public enum PrometheusExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Appends all metrics to `output`. `queueDepth` is nil when there is no breaker (CC = 0), and then
    /// the gauge is left out, as Knative does.
    public static func write(
        requests: RequestMetricsTable, appRequests: RequestMetricsTable, queueDepth: Int?,
        revision: RevisionIdentity, into output: inout [UInt8]
    ) {
        writeFamily(
            name: "revision_request", help: "requests that reached queue-proxy", table: requests,
            revision: revision, into: &output)
        writeFamily(
            name: "revision_app_request", help: "requests that queue-proxy passed to the user container", table: appRequests,
            revision: revision, into: &output)
        if let queueDepth {
            ASCII.append("# HELP revision_queue_depth Requests in flight or waiting in queue-proxy's breaker.\n", to: &output)
            ASCII.append("# TYPE revision_queue_depth gauge\n", to: &output)
            ASCII.append("revision_queue_depth", to: &output)
            writeLabels(revision, code: nil, le: nil, into: &output)
            output.append(UInt8(ascii: " "))
            ASCII.appendDecimal(Int64(queueDepth), to: &output)
            output.append(UInt8(ascii: "\n"))
        }
    }

    private static func writeFamily(
        name: String, help: String, table: RequestMetricsTable, revision: RevisionIdentity, into output: inout [UInt8]
    ) {
        let codes = table.statusCodes
        ASCII.append("# HELP \(name)_count The number of \(help).\n", to: &output)
        ASCII.append("# TYPE \(name)_count counter\n", to: &output)
        for code in codes {
            guard let series = table.series(status: code) else { continue }
            ASCII.append(name, to: &output)
            ASCII.append("_count", to: &output)
            writeLabels(revision, code: code, le: nil, into: &output)
            output.append(UInt8(ascii: " "))
            ASCII.appendDecimal(series.count, to: &output)
            output.append(UInt8(ascii: "\n"))
        }
        ASCII.append("# HELP \(name)_latencies The response time of \(help), in milliseconds.\n", to: &output)
        ASCII.append("# TYPE \(name)_latencies histogram\n", to: &output)
        for code in codes {
            guard let series = table.series(status: code) else { continue }
            var cumulative: UInt64 = 0
            for (index, bound) in RequestMetricsTable.latencyBucketsMilliseconds.enumerated() {
                cumulative &+= series.buckets[series.buckets.startIndex + index]
                ASCII.append(name, to: &output)
                ASCII.append("_latencies_bucket", to: &output)
                writeLabels(revision, code: code, le: bound, into: &output)
                output.append(UInt8(ascii: " "))
                ASCII.appendDecimal(cumulative, to: &output)
                output.append(UInt8(ascii: "\n"))
            }
            ASCII.append(name, to: &output)
            ASCII.append("_latencies_bucket", to: &output)
            writeLabels(revision, code: code, le: -1, into: &output)
            output.append(UInt8(ascii: " "))
            ASCII.appendDecimal(series.count, to: &output)
            output.append(UInt8(ascii: "\n"))

            ASCII.append(name, to: &output)
            ASCII.append("_latencies_sum", to: &output)
            writeLabels(revision, code: code, le: nil, into: &output)
            output.append(UInt8(ascii: " "))
            appendMilliseconds(series.sumNanoseconds, to: &output)
            output.append(UInt8(ascii: "\n"))

            ASCII.append(name, to: &output)
            ASCII.append("_latencies_count", to: &output)
            writeLabels(revision, code: code, le: nil, into: &output)
            output.append(UInt8(ascii: " "))
            ASCII.appendDecimal(series.count, to: &output)
            output.append(UInt8(ascii: "\n"))
        }
    }

    /// Labels in Knative's (alphabetical) order; `le` -1 means +Inf.
    private static func writeLabels(_ revision: RevisionIdentity, code: Int?, le: Int64?, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "{"))
        writeLabel("configuration_name", revision.configuration, first: true, into: &output)
        writeLabel("container_name", "queue-proxy", into: &output)
        if let le {
            ASCII.append(",le=\"", to: &output)
            if le < 0 { ASCII.append("+Inf", to: &output) } else { ASCII.appendDecimal(le, to: &output) }
            output.append(UInt8(ascii: "\""))
        }
        writeLabel("namespace_name", revision.namespace, into: &output)
        writeLabel("pod_name", revision.podName, into: &output)
        if let code {
            ASCII.append(",response_code=\"", to: &output)
            ASCII.appendDecimal(Int64(code), to: &output)
            ASCII.append("\",response_code_class=\"", to: &output)
            ASCII.appendDecimal(Int64(code / 100), to: &output)
            ASCII.append("xx\"", to: &output)
        }
        writeLabel("revision_name", revision.name, into: &output)
        writeLabel("service_name", revision.service, into: &output)
        output.append(UInt8(ascii: "}"))
    }

    private static func writeLabel(_ name: String, _ value: String, first: Bool = false, into output: inout [UInt8]) {
        if !first { output.append(UInt8(ascii: ",")) }
        ASCII.append(name, to: &output)
        ASCII.append("=\"", to: &output)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): ASCII.append("\\\\", to: &output)
            case UInt8(ascii: "\""): ASCII.append("\\\"", to: &output)
            case UInt8(ascii: "\n"): ASCII.append("\\n", to: &output)
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    /// Nanoseconds as decimal milliseconds with up to six fraction digits (trailing zeros dropped).
    static func appendMilliseconds(_ nanoseconds: UInt64, to output: inout [UInt8]) {
        ASCII.appendDecimal(nanoseconds / 1_000_000, to: &output)
        var fraction = nanoseconds % 1_000_000
        guard fraction > 0 else { return }
        output.append(UInt8(ascii: "."))
        var divisor: UInt64 = 100_000
        while fraction > 0 {
            output.append(UInt8(truncatingIfNeeded: fraction / divisor) + 0x30)
            fraction %= divisor
            divisor /= 10
        }
    }
}
