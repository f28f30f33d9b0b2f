// `sluice http-parse`: an operator's debugging tool that runs raw HTTP/1.1 bytes from stdin through
// the exact parser the proxy uses and prints one JSON line per message (or the error and its offset).
import ArgumentParser
import Foundation
import SluiceCore

struct HTTPParseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-parse",
        abstract: "Parse HTTP/1.1 messages from stdin and print one JSON line per message.",
        discussion: """
            Requests print {"method","target","version","headers","body_base64","keep_alive"}, responses \
            {"status","reason","version","headers","body_base64","keep_alive"}; a CONNECT request or a 101 \
            response adds "tunnel_base64" with the bytes after the head. A parse error prints \
            {"error":"<kind>","offset":N} and exits 1; input that ends mid-message prints \
            {"error":"incomplete"} and exits 1. Bytes >= 0x80 print as \\u0080-\\u00ff (Latin-1).
            """
    )

    @Flag(name: .long, help: "Parse responses instead of requests (a body without framing runs to EOF).")
    var response = false

    @Option(name: .long, help: "Feed the parser this many bytes at a time (default: all at once).")
    var chunkSize: Int?

    func validate() throws {
        if let chunkSize, chunkSize < 1 {
            throw ValidationError("--chunk-size must be at least 1, got \(chunkSize)")
        }
    }

    func run() throws {
        let input = readStandardInput()
        var stream = HTTPMessageStream(parsesResponses: response)
        let step = chunkSize ?? max(input.count, 1)
        var start = 0
        while start < input.count {
            let end = min(start + step, input.count)
            if try !emit(stream.feed(Array(input[start..<end]))) { throw ExitCode(1) }
            start = end
        }
        if try !emit(stream.finish()) { throw ExitCode(1) }
    }

    /// Prints the events; false after an error.
    private func emit(_ events: [HTTPStreamEvent]) throws -> Bool {
        for event in events {
            switch event {
            case .message(let message):
                printLine(JSONLine.message(message))
            case .error(let error, let offset):
                printLine("{\"error\":\"\(error.kind)\",\"offset\":\(offset)}")
                return false
            case .incomplete:
                printLine("{\"error\":\"incomplete\"}")
                return false
            }
        }
        return true
    }

    private func printLine(_ line: String) {
        print(line)
    }

    private func readStandardInput() -> [UInt8] {
        [UInt8](FileHandle.standardInput.readDataToEndOfFile())
    }
}

/// The JSON the command prints, written by hand (a CLI path, so allocation is fine).
enum JSONLine {
    static func message(_ m: HTTPParsedMessage) -> String {
        var s = "{"
        if m.isRequest {
            s += "\"method\":" + string(m.method) + ",\"target\":" + string(m.target)
        } else {
            s += "\"status\":\(m.status),\"reason\":" + string(m.reason)
        }
        s += ",\"version\":\"" + m.version.text + "\",\"headers\":["
        s += m.fields.map { "[" + string($0.name) + "," + string($0.value) + "]" }.joined(separator: ",")
        s += "],\"body_base64\":\"" + base64(m.body) + "\",\"keep_alive\":" + (m.keepAlive ? "true" : "false")
        if let tunnel = m.tunnel { s += ",\"tunnel_base64\":\"" + base64(tunnel) + "\"" }
        return s + "}"
    }

    /// A JSON string; bytes >= 0x80 are taken as Latin-1 so any byte sequence prints losslessly.
    static func string(_ bytes: [UInt8]) -> String {
        var s = "\""
        let hex = Array("0123456789abcdef".utf8)
        for b in bytes {
            switch b {
            case 0x22: s += "\\\""
            case 0x5C: s += "\\\\"
            case 0x0A: s += "\\n"
            case 0x0D: s += "\\r"
            case 0x09: s += "\\t"
            case 0x20..<0x7F: s.unicodeScalars.append(Unicode.Scalar(b))
            default:
                s += "\\u00"
                s.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                s.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 0xF)]))
            }
        }
        return s + "\""
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], alphabet[Int(v & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)], 0x3D, 0x3D]
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(v >> 18 & 63)], alphabet[Int(v >> 12 & 63)], alphabet[Int(v >> 6 & 63)], 0x3D]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
