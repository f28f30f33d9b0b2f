// Reliability test P5 (reliability.md §2a): differential parsing against llhttp in strict mode (the
// parser inside Node.js, run as a child process). Generated and mutated requests go through both;
// Sluice must never accept a message llhttp strict refuses, and where both accept they must agree on
// message boundaries. Where Sluice is stricter, the cases are counted by error kind, not failed.
import Foundation
import Glibc
import Testing
@testable import SluiceCore
import SluiceTestSupport

/// Node's llhttp behind `_http_common.HTTPParser`: reads length-prefixed inputs from a file and prints
/// one JSON line per input: the completed messages (target, body length) and how parsing ended.
private let llhttpScript = #"""
const fs = require('fs');
const { HTTPParser } = require('_http_common');
const data = fs.readFileSync(process.argv[2]);
let offset = 0;
const out = [];
while (offset < data.length) {
  const length = data.readUInt32BE(offset);
  const input = data.subarray(offset + 4, offset + 4 + length);
  offset += 4 + length;
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {});
  const messages = [];
  let current = null;
  let upgrade = false;
  parser[HTTPParser.kOnHeadersComplete] = (major, minor, headers, method, url, code, message, isUpgrade) => {
    current = { url: url, body: 0 };
    if (isUpgrade) upgrade = true;
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk) => { if (current) current.body += chunk.length; };
  parser[HTTPParser.kOnMessageComplete] = () => { if (current) messages.push(current); current = null; };
  let end = 'clean';
  const result = parser.execute(input);
  if (result instanceof Error) {
    end = 'error:' + result.code;
  } else if (upgrade || result < input.length) {
    end = 'stopped';
  } else {
    const finished = parser.finish();
    if (finished instanceof Error) end = 'incomplete';
    else if (current) end = 'incomplete';
  }
  out.push(JSON.stringify({ messages, end }));
}
process.stdout.write(out.join('\n') + '\n');
"""#


private let baseRequests: [String] = [
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /path?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n",
    "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer-A: b\r\n\r\n",
    "PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "DELETE /d HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:   v   \r\n\r\n",
    "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
    "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
    "POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok",
    "GET / HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\nMax-Forwards: 3\r\n\r\n",
    "GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "PATCH /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    "HEAD / HTTP/1.1\r\nHost: a\r\nCookie: a=b; c=d\r\nCache-Control: no-cache\r\n\r\n",
]

/// Byte-level edits that tend to hit framing decisions (line ends, separators, digits, controls).
private let interestingBytes: [UInt8] = [0x0D, 0x0A, 0x20, 0x09, 0x3A, 0x00, 0x7F, 0x2C, 0x3B, 0x30, 0x61, 0x80, 0x2D, 0x2B, 0x22]

private let headerVariants: [String] = [
    "Content-Length: 3\r\nTransfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked", "Transfer-Encoding: chunked, gzip",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "Transfer-Encoding:  chunked ", "Transfer-Encoding: xchunked",
    "Content-Length: 3\r\nContent-Length: 4", "Content-Length: +3", "Content-Length: 0x3", "Content-Length: 3 3", "Content-Length:",
    "Content-Length : 3", " Content-Length: 3", "X: y\r\n Transfer-Encoding: chunked", "Transfer-Encoding\t: chunked",
    "Host: a\r\nHost: b", "X\u{0}: y", "X: a\u{0}b", "X: a\rb", "Content-Length: 99999999999999999999999",
]

private func mutate(_ input: [UInt8], using random: inout SplitMix64) -> [UInt8] {
    var bytes = input
    for _ in 0 ..< Int.random(in: 1 ... 3, using: &random) where !bytes.isEmpty {
        let position = Int.random(in: 0 ..< bytes.count, using: &random)
        let byte = interestingBytes.randomElement(using: &random) ?? 0x20
        switch Int.random(in: 0 ..< 4, using: &random) {
        case 0: bytes.insert(byte, at: position)
        case 1: bytes[position] = byte
        case 2: bytes.remove(at: position)
        default:
            // Duplicate a line.
            if let lineEnd = bytes[position...].firstIndex(of: 0x0A), let lineStart = bytes[..<position].lastIndex(of: 0x0A) {
                bytes.insert(contentsOf: bytes[(lineStart + 1) ... lineEnd], at: lineEnd + 1)
            }
        }
    }
    return bytes
}

/// The corpus: base requests, each with smuggling-prone header variants spliced in, and mutations.
private func corpus(count: Int, seed: UInt64) -> [[UInt8]] {
    var random = SplitMix64(seed: seed)
    var inputs = baseRequests.map { Array($0.utf8) }
    for base in baseRequests where base.contains("\r\nHost: a\r\n") {
        for variant in headerVariants {
            inputs.append(Array(base.replacingOccurrences(of: "\r\nHost: a\r\n", with: "\r\nHost: a\r\n\(variant)\r\n").utf8))
        }
    }
    while inputs.count < count {
        let base = inputs[Int.random(in: 0 ..< inputs.count, using: &random)]
        inputs.append(mutate(base, using: &random))
    }
    return inputs
}

private struct Outcome {
    var messages: [(target: String, body: Int)] = []
    /// Each message's Content-Length values (every line, lists split), trimmed.
    var contentLengths: [[String]] = []
    /// "clean", "incomplete", "stopped" (tunnel/upgrade) or "error:<kind>".
    var end = "clean"
}

private func sluiceOutcome(_ input: [UInt8]) -> Outcome {
    var stream = HTTPMessageStream()
    var outcome = Outcome()
    for event in stream.feed(input) + stream.finish() {
        switch event {
        case .message(let message):
            if message.framing == .tunnel || outcome.end != "clean" {
                outcome.end = "stopped"
            } else {
                outcome.messages.append((String(decoding: message.target, as: UTF8.self), message.body.count))
                outcome.contentLengths.append(message.fields
                    .filter { String(decoding: $0.name, as: UTF8.self).lowercased() == "content-length" }
                    .flatMap { String(decoding: $0.value, as: UTF8.self).split(separator: ",", omittingEmptySubsequences: false) }
                    .map { $0.trimmingCharacters(in: .whitespaces) })
            }
        case .error(let error, _):
            if outcome.end == "clean" { outcome.end = "error:\(error)" }
        case .incomplete:
            if outcome.end == "clean" { outcome.end = "incomplete" }
        }
    }
    return outcome
}

/// `node` on PATH, if installed.
private let nodeExecutable: String? = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
    .split(separator: ":").map { "\($0)/node" }.first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite("Reliability: differential parsing against llhttp", .timeLimit(.minutes(1)),
       .enabled(if: nodeExecutable != nil, "needs Node.js (its llhttp) on PATH"))
struct ReliabilityDifferentialTests {
    @Test("P5: Sluice never completes a request llhttp strict refuses, and where both accept they find the same messages")
    func neverMoreLenientThanLLHTTP() throws {
        let inputs = corpus(count: 20000, seed: 0x5EED_2026)
        let directory = NSTemporaryDirectory() + "sluice-p5-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var file: [UInt8] = []
        for input in inputs {
            let length = UInt32(input.count)
            file += [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
            file += input
        }
        try Data(file).write(to: URL(fileURLWithPath: directory + "/inputs"))
        try Data(llhttpScript.utf8).write(to: URL(fileURLWithPath: directory + "/llhttp.js"))
        let node = try #require(nodeExecutable)
        let run = try ChildProcess.run(node, [directory + "/llhttp.js", directory + "/inputs"], environment: [:], deadline: .seconds(40))
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.lines
        try #require(lines.count == inputs.count, "node printed \(lines.count) results for \(inputs.count) inputs: \(run.stderr.prefix(500))")

        var moreLenient: [String] = []
        // Deliberate differences (reliability.md §1d), counted: extension methods (RFC 9110 §9.1: any
        // token; llhttp knows a fixed list) and identical repeated Content-Length values (RFC 9110
        // §8.6 allows one value; Sluice forwards a single line).
        var extensionMethods = 0
        var identicalContentLengths = 0
        var boundaryMismatches: [String] = []
        var stricter: [String: Int] = [:]
        var agreed = 0
        for (index, line) in lines.enumerated() {
            guard let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let nodeMessages = json["messages"] as? [[String: Any]], let nodeEnd = json["end"] as? String else {
                Issue.record("unreadable node result: \(line)")
                continue
            }
            let llhttp = nodeMessages.map { ($0["url"] as? String ?? "", $0["body"] as? Int ?? -1) }
            let sluice = sluiceOutcome(inputs[index])
            let shown = String(decoding: inputs[index].prefix(160), as: UTF8.self).debugDescription
            // Messages both completed must be the same messages.
            for (ours, theirs) in zip(sluice.messages, llhttp) where ours.target != theirs.0 || ours.body != theirs.1 {
                boundaryMismatches.append("\(shown): sluice \(ours) llhttp \(theirs)")
            }
            if sluice.messages.count > llhttp.count && nodeEnd == "error:HPE_INVALID_METHOD" {
                extensionMethods += 1
            } else if sluice.messages.count > llhttp.count && nodeEnd.hasSuffix("CONTENT_LENGTH"),
                      case let values = sluice.contentLengths[llhttp.count], values.count > 1, Set(values).count == 1 {
                identicalContentLengths += 1
            } else if sluice.messages.count > llhttp.count && nodeEnd != "stopped" {
                // A message Sluice would forward that llhttp strict refuses (or never saw end): the
                // lenient half of a desync pair.
                moreLenient.append("\(shown): sluice \(sluice.messages.count) messages (\(sluice.end)), llhttp \(llhttp.count) (\(nodeEnd))")
            } else if sluice.messages.count < llhttp.count {
                stricter[sluice.end, default: 0] += 1
            } else {
                agreed += 1
            }
        }
        #expect(moreLenient.isEmpty, "\(moreLenient.count) inputs: \(moreLenient.prefix(8))")
        #expect(boundaryMismatches.isEmpty, "\(boundaryMismatches.count): \(boundaryMismatches.prefix(8))")
        // Informational: where Sluice refuses what llhttp accepts (by Sluice's error).
        print("P5: \(inputs.count) inputs, \(agreed) agree; deliberately accepted: \(extensionMethods) extension methods, "
            + "\(identicalContentLengths) identical repeated Content-Length; Sluice stricter on \(stricter.values.reduce(0, +)): \(stricter.sorted { $0.value > $1.value })")
    }
}
