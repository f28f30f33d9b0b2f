// Test support for the HTTP1 suites: a comparable snapshot of a parsed head, and parsing of the
// same bytes whole, at every split point and in fixed-size pieces.
@testable import SluiceCore

/// Everything a parse exposes, in comparable form.
struct HeadSnapshot: Equatable, CustomStringConvertible {
    var method = ""
    var knownMethod: HTTPMethod = .other
    var target = ""
    var version: HTTPVersion = .http11
    var status = 0
    var reason = ""
    var fields: [[String]] = []
    var lines: [String] = []
    var framing: HTTPBodyFraming = .none
    var keepAlive = false
    var expectsContinue = false
    var hasUpgrade = false
    var connectionUpgrade = false
    var host: String? = nil
    var nominated: [String] = []
    var headLength = 0

    var description: String {
        "\(method)\(status) \(target)\(reason) \(version) \(fields) framing=\(framing) keepAlive=\(keepAlive)"
    }
}

/// The outcome of parsing one head: the result and, when complete, the snapshot.
struct HeadOutcome: Equatable, CustomStringConvertible {
    var result: HTTPParseResult
    var head: HeadSnapshot?
    var description: String { "\(result) \(head.map(\.description) ?? "")" }
}

func text(_ bytes: [UInt8], _ range: Range<Int>) -> String {
    String(decoding: bytes[range], as: UTF8.self)
}

func snapshot(_ head: HTTPHead, _ bytes: [UInt8]) -> HeadSnapshot {
    var s = HeadSnapshot()
    s.method = text(bytes, head.methodRange)
    s.knownMethod = head.method
    s.target = text(bytes, head.target)
    s.version = head.version
    s.status = head.status
    s.reason = text(bytes, head.reason)
    s.fields = head.fields.map { [text(bytes, $0.name), text(bytes, $0.value)] }
    s.lines = head.fields.map { text(bytes, $0.line) }
    s.framing = head.framing
    s.keepAlive = head.keepAlive
    s.expectsContinue = head.expectsContinue
    s.hasUpgrade = head.hasUpgrade
    s.connectionUpgrade = head.connectionUpgrade
    s.host = head.host.map { text(bytes, $0) }
    s.nominated = head.fields.filter(\.isNominatedByConnection).map { text(bytes, $0.name) }
    s.headLength = head.headLength
    return s
}

/// Parses `bytes` feeding prefixes of the given lengths (the last one is the whole input).
func parseHead(
    _ bytes: [UInt8], response: Bool = false, requestMethod: HTTPMethod = .get,
    prefixes: [Int]? = nil, limits: HTTPParserLimits = .default
) -> HeadOutcome {
    var head = HTTPHead(limits: limits)
    var result: HTTPParseResult = .incomplete
    for length in (prefixes ?? []) + [bytes.count] {
        let slice = Array(bytes[0..<length])
        result = response
            ? head.parseResponse(slice.span, requestMethod: requestMethod)
            : head.parseRequest(slice.span)
        if result != .incomplete { break }
    }
    if case .complete = result { return HeadOutcome(result: result, head: snapshot(head, bytes)) }
    return HeadOutcome(result: result, head: nil)
}

/// Every way of feeding `bytes` that the split-invariance rule covers: each single split point,
/// one byte at a time, seven bytes at a time.
func splitPlans(_ count: Int) -> [[Int]] {
    var plans: [[Int]] = []
    for k in 0..<count { plans.append([k]) }
    plans.append(Array(0..<count))
    plans.append(Array(stride(from: 7, to: count, by: 7)))
    return plans
}

extension String {
    /// The bytes of a test message; `\r\n` etc. are written out in the literals.
    var bytes: [UInt8] { Array(utf8) }
}
