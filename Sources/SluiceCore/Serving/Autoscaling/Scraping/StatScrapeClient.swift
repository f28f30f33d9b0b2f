// The autoscaler's HTTP side of scraping (Serving layer, KPA): GET /metrics on a pod's or a private
// service's stats port with `Accept: application/protobuf`, the Content-Type check and the protobuf
// `Stat` decoding (kpa-spec §2.2, §3). Runs on one event loop, callbacks only.
import SwiftProtobuf

/// Why one scrape request, or a whole revision scrape, failed.
public enum ScrapeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The address is not numeric host:port.
    case invalidAddress(String)
    /// Connect refused or failed, or the connection broke before a response.
    case transport(address: String, reason: String)
    /// No complete response within the scrape timeout (3 s in Knative).
    case timedOut(address: String)
    /// A response other than 200; 502 and 503 may come from a service mesh sidecar.
    case status(address: String, code: Int)
    /// The response was not `Content-Type: application/protobuf` (Knative's "unsupported metric type").
    case unsupportedMetricType(address: String, contentType: String)
    /// The body is not a protobuf Stat.
    case invalidStat(address: String, reason: String)
    /// Direct pod scraping ran out of candidates before `sampleSize` pods answered.
    case podsExhausted(sampleSize: Int, scraped: Int, last: String)
    /// No pod could be scraped and every failure looked like a mesh error (or no pod is addressable).
    case directScrapingNotAvailable(last: String)
    /// Service scraping could not find `sampleSize` distinct pods.
    case notEnoughPods(sampleSize: Int, seen: Int, last: String)
    /// Service scraping was needed but the revision has no private service address.
    case noServiceAddress
    /// The ready-pod lookup failed.
    case endpointsUnavailable

    public var description: String {
        switch self {
        case .invalidAddress(let a): "invalid stats address '\(a)': expected numeric-host:port"
        case .transport(let a, let r): "GET http://\(a)/metrics: \(r)"
        case .timedOut(let a): "GET http://\(a)/metrics: timed out"
        case .status(let a, let c): "GET http://\(a)/metrics returned error status: \(c)"
        case .unsupportedMetricType(let a, let t): "GET http://\(a)/metrics: unsupported metric type (Content-Type '\(t)')"
        case .invalidStat(let a, let r): "GET http://\(a)/metrics: cannot decode the Stat: \(r)"
        case .podsExhausted(let n, let got, let last):
            "pods exhausted: \(got) of \(n) sampled pods scraped (last error: \(last))"
        case .directScrapingNotAvailable(let last): "direct pod scraping not available (last error: \(last))"
        case .notEnoughPods(let n, let seen, let last):
            "service scraping saw \(seen) of \(n) distinct pods (last error: \(last))"
        case .noServiceAddress: "service scraping needed but the revision has no service address"
        case .endpointsUnavailable: "failed to get the revision's endpoints"
        }
    }

    /// Knative's "potential mesh error": the pod answered 502 or 503, as an Istio sidecar does when
    /// it rejects plain-text traffic addressed to the pod IP.
    public var isPotentialMeshError: Bool {
        if case .status(_, let code) = self { return code == 502 || code == 503 }
        return false
    }
}

/// Parses "host:port" / "[v6]:port" with a numeric host (no DNS in the data plane).
public enum StatsAddress {
    public static func parse(_ text: String) throws(ScrapeError) -> SocketAddress {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw .invalidAddress(text)
            }
            host = text[text.index(after: text.startIndex) ..< close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .invalidAddress(text) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        if host == "localhost" { host = "127.0.0.1" }
        guard let port = UInt16(portText), port != 0, !host.isEmpty else { throw .invalidAddress(text) }
        do {
            return try SocketAddress(host: String(host), port: port)
        } catch {
            throw .invalidAddress(text)
        }
    }
}

enum StatResponse {
    static let protobufType = Array("application/protobuf".utf8)

    /// Knative's scrape client checks: 200, then the exact protobuf media type, then the decoding.
    static func decode(address: String, status: Int, contentType: [UInt8]?, body: [UInt8]) -> Result<PodStat, ScrapeError> {
        guard status == 200 else { return .failure(.status(address: address, code: status)) }
        guard contentType == protobufType else {
            return .failure(.unsupportedMetricType(address: address, contentType: String(decoding: contentType ?? [], as: UTF8.self)))
        }
        do {
            let stat = try Metrics_Stat(serializedBytes: body)
            return .success(PodStat(stat))
        } catch {
            return .failure(.invalidStat(address: address, reason: "\(error)"))
        }
    }
}

extension PodStat {
    /// The plain value of a protobuf Stat.
    public init(_ stat: Metrics_Stat) {
        self.init(podName: stat.podName,
                  averageConcurrentRequests: stat.averageConcurrentRequests,
                  averageProxiedConcurrentRequests: stat.averageProxiedConcurrentRequests,
                  requestCount: stat.requestCount,
                  proxiedRequestCount: stat.proxiedRequestCount,
                  processUptime: stat.processUptime,
                  timestamp: stat.timestamp)
    }
}

/// Counters of the scrape client (for tests and the benchmark).
public struct StatScrapeClientStatistics: Sendable, Equatable {
    /// Connections opened to pods.
    public var podConnects = 0
    /// Pod requests sent on an already open connection.
    public var podReuses = 0
    /// Requests sent to service addresses (one connection each).
    public var serviceRequests = 0
    /// Completed scrape requests (success or failure).
    public var requests = 0
}

/// Scrape requests on one loop. Direct pod scrapes keep one connection per pod open between
/// scrapes (a pod is asked at most once per revision scrape, so one connection suffices); service
/// scrapes use a new connection each time with `Connection: close`, so the load balancer can pick
/// another pod for the next try (Knative turns keep-alive off for the same reason). The proxy's
/// `HTTPUpstream` pool is not reused here: its connections report to a `ServerConnection` exchange,
/// and a scrape has no client side; one connection per pod needs no pool either.
public final class StatScrapeClient {
    public let loop: EventLoop
    private var connections: [String: PodStatConnection] = [:]
    var statistics = StatScrapeClientStatistics()

    public init(loop: EventLoop) {
        self.loop = loop
    }

    public var currentStatistics: StatScrapeClientStatistics { statistics }
    public var openPodConnections: Int { connections.values.filter { $0.isOpen }.count }

    /// Scrapes a pod on its kept-alive connection (opened on first use). Completion runs on the loop,
    /// exactly once, possibly before this call returns (bad address).
    public func scrapePod(address: String, timeout: Duration, completion: @escaping (Result<PodStat, ScrapeError>) -> Void) {
        let connection: PodStatConnection
        if let existing = connections[address] {
            connection = existing
        } else {
            let socketAddress: SocketAddress
            do {
                socketAddress = try StatsAddress.parse(address)
            } catch {
                completion(.failure(error))
                return
            }
            connection = PodStatConnection(client: self, address: socketAddress, text: address)
            connections[address] = connection
        }
        guard !connection.isBusy else {
            // Two revisions listing the same stats address in one second: do not interleave requests.
            completion(.failure(.transport(address: address, reason: "a scrape of this address is already in flight")))
            return
        }
        connection.scrape(timeout: timeout) { [self] result in
            statistics.requests += 1
            completion(result)
        }
    }

    /// Scrapes a service address on a fresh connection (keep-alive off).
    public func scrapeService(address: String, timeout: Duration, completion: @escaping (Result<PodStat, ScrapeError>) -> Void) {
        let socketAddress: SocketAddress
        do {
            socketAddress = try StatsAddress.parse(address)
        } catch {
            completion(.failure(error))
            return
        }
        statistics.serviceRequests += 1
        HTTPClient.send(target: "/metrics", to: socketAddress, host: address,
                        fields: [("Accept", "application/protobuf")], timeout: timeout, on: loop) { [self] result in
            statistics.requests += 1
            switch result {
            case .success(let response):
                let type = response.field("Content-Type").map { Array($0.utf8) }
                completion(StatResponse.decode(address: address, status: response.status, contentType: type, body: response.body))
            case .failure(.timedOut):
                completion(.failure(.timedOut(address: address)))
            case .failure(let error):
                completion(.failure(.transport(address: address, reason: "\(error)")))
            }
        }
    }

    /// Closes the connections of pods not in `keep` (pods gone after a reload).
    public func closeConnections(keeping keep: Set<String>) {
        for (address, connection) in connections where !keep.contains(address) && !connection.isBusy {
            connection.close()
            connections[address] = nil
        }
    }

    public func closeAll() {
        for connection in connections.values { connection.close() }
        connections.removeAll()
    }
}

/// One pod's kept-alive stats connection: request bytes built once, the response head parsed from
/// the receive buffer, the body gathered into a reused array.
final class PodStatConnection: ConnectionDelegate {
    unowned let client: StatScrapeClient
    let address: SocketAddress
    let text: String
    private let request: IOBuffer
    private var connection: Connection?
    private var completion: ((Result<PodStat, ScrapeError>) -> Void)?
    private var head = HTTPHead()
    private var decoder = HTTPBodyDecoder(framing: .none)
    private var haveHead = false
    private var status = 0
    private var contentType: [UInt8]?
    private var keepAlive = false
    private var body: [UInt8] = []
    private var deadline: UInt64 = 0
    /// The request went out on a connection that had already served one: if it breaks before any
    /// response byte, the pod most likely closed it while idle, so one retry on a new one is safe.
    private var onReusedConnection = false
    private var receivedBytes = false
    private static let contentTypeName = HTTPFieldName("content-type")

    init(client: StatScrapeClient, address: SocketAddress, text: String) {
        self.client = client
        self.address = address
        self.text = text
        request = IOBuffer(bytes: Array("GET /metrics HTTP/1.1\r\nHost: \(text)\r\nAccept: application/protobuf\r\nUser-Agent: Sluice-Autoscaler\r\n\r\n".utf8))
        body.reserveCapacity(256)
    }

    var isBusy: Bool { completion != nil }
    var isOpen: Bool { connection?.isOpen ?? false }

    func scrape(timeout: Duration, completion: @escaping (Result<PodStat, ScrapeError>) -> Void) {
        self.completion = completion
        deadline = client.loop.now &+ EventLoop.nanoseconds(timeout)
        if let open = connection, open.isOpen, !open.isInputClosed {
            client.statistics.podReuses += 1
            onReusedConnection = true
            send(on: open)
        } else {
            detach()
            onReusedConnection = false
            connect()
        }
    }

    private func connect() {
        client.statistics.podConnects += 1
        do {
            let remaining = deadline > client.loop.now ? deadline - client.loop.now : 1
            let fresh = try Connector.connect(to: address, on: client.loop, timeout: .nanoseconds(Int64(remaining)), delegate: self)
            connection = fresh
            send(on: fresh)
        } catch {
            finish(.failure(.transport(address: text, reason: "\(error)")), keep: false)
        }
    }

    private func send(on connection: Connection) {
        head.reset()
        haveHead = false
        status = 0
        contentType = nil
        body.removeAll(keepingCapacity: true)
        receivedBytes = false
        if connection.isOpen { connection.setDeadline(at: deadline) }
        connection.write(request.written)
    }

    func connectionDidConnect(_ connection: Connection) {
        guard connection === self.connection else { return }
        connection.setDeadline(at: deadline)
    }

    func connection(_ connection: Connection, didReceive buffer: IOBuffer, range: Range<Int>) -> Int {
        guard connection === self.connection, completion != nil else {
            // Bytes on an idle connection: the pod broke framing or is closing; never reuse it.
            if connection === self.connection { detach() } else { connection.close() }
            return range.count
        }
        receivedBytes = true
        var offset = range.lowerBound
        let end = range.upperBound
        while !haveHead {
            switch buffer.withSpan(offset ..< end, { head.parseResponse($0, requestMethod: .get) }) {
            case .incomplete:
                return offset - range.lowerBound
            case .error(let error, _):
                finish(.failure(.transport(address: text, reason: "invalid response: \(error.reason)")), keep: false)
                return range.count
            case .complete(let length):
                if head.status < 200 { // interim response: the final one follows
                    offset += length
                    continue
                }
                let base = offset
                status = head.status
                if let field = buffer.withSpan(base ..< end, { head.firstField(named: Self.contentTypeName, in: $0) }) {
                    contentType = buffer.bytes(base + field.value.lowerBound ..< base + field.value.upperBound)
                }
                keepAlive = head.keepAlive && head.framing != .closeDelimited
                decoder.reset(framing: head.framing == .tunnel ? .none : head.framing)
                haveHead = true
                offset += length
            }
        }
        while offset < end || decoder.isComplete {
            if decoder.isComplete {
                // Anything after the response is a framing error: answer with what we have, drop the connection.
                complete(keep: keepAlive && offset == end)
                return range.count
            }
            switch buffer.withSpan(offset ..< end, { decoder.decode($0) }) {
            case .payload(let r):
                body.append(contentsOf: buffer.bytes(offset + r.lowerBound ..< offset + r.upperBound))
                offset += r.upperBound
                if body.count > 64 * 1024 {
                    finish(.failure(.invalidStat(address: text, reason: "body larger than 64 KiB")), keep: false)
                    return range.count
                }
            case .needMore:
                offset = end
            case .complete(let consumed):
                offset += consumed
                complete(keep: keepAlive && offset == end)
                return range.count
            case .error(let error, _):
                finish(.failure(.transport(address: text, reason: "invalid body: \(error.reason)")), keep: false)
                return range.count
            }
        }
        return offset - range.lowerBound
    }

    func connectionDidReadEOF(_ connection: Connection) {
        guard connection === self.connection else { return }
        if completion != nil, haveHead, case .complete = decoder.finish() {
            complete(keep: false)
        } else {
            connectionFailed("connection closed before the response was complete")
        }
    }

    func connectionDeadlineExpired(_ connection: Connection) {
        guard connection === self.connection else { return }
        finish(.failure(.timedOut(address: text)), keep: false)
    }

    func connectionDidClose(_ connection: Connection, error: ConnectionError?) {
        guard connection === self.connection else { return }
        self.connection = nil
        if case .connectTimedOut? = error {
            finish(.failure(.timedOut(address: text)), keep: false)
        } else {
            connectionFailed(error.map { "\($0)" } ?? "closed")
        }
    }

    private func connectionFailed(_ reason: String) {
        guard completion != nil else {
            detach() // idle connection closed by the pod: reconnect on the next scrape
            return
        }
        if onReusedConnection && !receivedBytes && client.loop.now < deadline {
            onReusedConnection = false
            detach()
            connect()
            return
        }
        finish(.failure(.transport(address: text, reason: reason)), keep: false)
    }

    private func complete(keep: Bool) {
        let result = StatResponse.decode(address: text, status: status, contentType: contentType, body: body)
        finish(result, keep: keep)
    }

    private func finish(_ result: Result<PodStat, ScrapeError>, keep: Bool) {
        if keep {
            connection?.setDeadline(at: 0)
        } else {
            detach()
        }
        guard let completion else { return }
        self.completion = nil
        completion(result)
    }

    /// Forgets the current connection and closes it (its late callbacks are ignored).
    private func detach() {
        guard let old = connection else { return }
        connection = nil
        old.close()
    }

    func close() {
        detach()
        finish(.failure(.transport(address: text, reason: "scraper stopped")), keep: false)
    }
}
