// The sample app's settings (from the environment, as Knative hands them to a user container) and its
// one handler: parse the query, do the asked-for work, answer.
import Glibc
import SluiceCore

struct SampleAppSettings: Sendable {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    var port: UInt16 = 8080
    var host = "0.0.0.0"
    var target = "World"
    var loops = EventLoopGroup.defaultLoopCount

    init(environment: [String: String]) throws(Invalid) {
        if let text = environment["PORT"], !text.isEmpty {
            guard let port = UInt16(text) else { throw Invalid(description: "PORT=\"\(text)\": must be a port number (0-65535)") }
            self.port = port
        }
        if let text = environment["SAMPLE_APP_HOST"], !text.isEmpty {
            guard (try? SocketAddress(host: text, port: 0)) != nil else {
                throw Invalid(description: "SAMPLE_APP_HOST=\"\(text)\": must be a numeric IPv4 or IPv6 address")
            }
            host = text
        }
        if let text = environment["TARGET"], !text.isEmpty { target = text }
        if let text = environment["SAMPLE_APP_LOOPS"], !text.isEmpty {
            guard let loops = Int(text), (1...256).contains(loops) else {
                throw Invalid(description: "SAMPLE_APP_LOOPS=\"\(text)\": must be a whole number from 1 to 256")
            }
            self.loops = loops
        }
    }

    static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}

/// What one request asks for.
struct SampleAppRequest: Equatable {
    static let maxSleepMilliseconds = 3_600_000
    static let maxPrime = 1_000_000_000_000
    static let maxBloatMegabytes = 4096

    var sleepMilliseconds = 0
    var prime: Int?
    var bloatMegabytes = 0

    /// Parses `sleep`, `prime` and `bloat` from the query; other parameters are ignored. A bad value is
    /// an error message naming the parameter, its value and what is expected.
    init(target: String) throws(SampleAppSettings.Invalid) {
        guard let question = target.firstIndex(of: "?") else { return }
        for pair in target[target.index(after: question)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = parts.count > 1 ? String(parts[1]) : ""
            switch name {
            case "sleep":
                sleepMilliseconds = try Self.number(name, value, 0...Self.maxSleepMilliseconds, unit: "milliseconds")
            case "prime":
                prime = try Self.number(name, value, 1...Self.maxPrime, unit: "(the upper bound)")
            case "bloat":
                bloatMegabytes = try Self.number(name, value, 0...Self.maxBloatMegabytes, unit: "MiB")
            default:
                continue
            }
        }
    }

    private static func number(_ name: String, _ value: String, _ range: ClosedRange<Int>, unit: String) throws(SampleAppSettings.Invalid) -> Int {
        guard let number = Int(value), range.contains(number) else {
            let shown = value.count > 40 ? String(value.prefix(40)) + "…" : value
            throw SampleAppSettings.Invalid(
                description: "invalid value for '\(name)': '\(shown)' (expected a whole number from \(range.lowerBound) to \(range.upperBound) \(unit))")
        }
        return number
    }

    /// The largest prime ≤ `limit` (nil below 2), by trial division: deliberately CPU-bound.
    static func largestPrime(atMost limit: Int) -> Int? {
        var candidate = limit
        while candidate >= 2 {
            if isPrime(candidate) { return candidate }
            candidate -= 1
        }
        return nil
    }

    static func isPrime(_ n: Int) -> Bool {
        if n < 4 { return n >= 2 }
        if n % 2 == 0 || n % 3 == 0 { return false }
        var divisor = 5
        while divisor <= n / divisor {
            if n % divisor == 0 || n % (divisor + 2) == 0 { return false }
            divisor += 6
        }
        return true
    }
}

/// Answers every path: hello, plus a line per piece of work done.
final class SampleAppHandler: HTTPHandler {
    let settings: SampleAppSettings
    let loop: EventLoop
    private let hello: String

    init(settings: SampleAppSettings, loop: EventLoop) {
        self.settings = settings
        self.loop = loop
        hello = "Hello \(settings.target)!\n"
    }

    func handleRequest(_ exchange: HTTPExchange) -> HTTPHandlerDecision {
        let target = exchange.target.map { String(decoding: $0.bytes, as: UTF8.self) } ?? "/"
        let request: SampleAppRequest
        do {
            request = try SampleAppRequest(target: target)
        } catch {
            return .respond(.text(400, error.description + "\n"))
        }
        var body = hello
        // Memory: allocate and touch every page, held until the response is written.
        var memory: [UInt8] = []
        if request.bloatMegabytes > 0 {
            let bytes = request.bloatMegabytes << 20
            memory = [UInt8](repeating: 0, count: bytes)
            var page = 0
            while page < bytes {
                memory[page] = 1
                page += 4096
            }
            body += "Allocated \(request.bloatMegabytes) MiB.\n"
        }
        if let limit = request.prime {
            if let prime = SampleAppRequest.largestPrime(atMost: limit) {
                body += "The largest prime <= \(limit) is \(prime).\n"
            } else {
                body += "There is no prime <= \(limit).\n"
            }
        }
        guard request.sleepMilliseconds > 0 else {
            withExtendedLifetime(memory) {}
            return .respond(.text(200, body))
        }
        body += "Slept for \(request.sleepMilliseconds) ms.\n"
        let ticket = exchange.ticket
        let response = HTTPLocalResponse.text(200, body)
        // A timer, not a blocking sleep: the loop keeps serving other requests meanwhile.
        loop.scheduleTimer(after: .milliseconds(request.sleepMilliseconds)) {
            withExtendedLifetime(memory) {}
            ticket.resume(.respond(response))
        }
        return .suspend
    }
}

/// Counts termination signals (touched only on the loop that handles them).
final class SampleAppSignals: @unchecked Sendable {
    private var count = 0
    func next() -> Int {
        count += 1
        return count
    }
}
