// The `autoscaler` executable: a thin command line over SluiceCore's KPA — ConfigMap validation, the
// what-if simulator, and `serve`, the running autoscaler (scraping, deciding, status API).
import ArgumentParser
import Glibc
import Logging
import SluiceCore

@main
struct Autoscaler: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoscaler",
        abstract: "Sluice's Knative Pod Autoscaler (KPA).",
        version: Sluice.version,
        subcommands: [Serve.self, CheckConfig.self, Simulate.self])
}

/// Reads a whole file, or standard input for "-" (plain read(2): the binary links no Foundation).
func readInput(_ path: String) throws(ValidationError) -> [UInt8] {
    let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        throw ValidationError("\(path): cannot read the file (\(String(cString: strerror(errno))))")
    }
    defer { if fd != 0 { close(fd) } }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw ValidationError("\(path): cannot read the file (\(String(cString: strerror(errno))))")
        }
        if n == 0 { return bytes }
        bytes.append(contentsOf: chunk[0 ..< n])
        // A revisions or config file is small; refuse anything absurd rather than exhaust memory.
        if bytes.count > 64 * 1024 * 1024 { throw ValidationError("\(path): larger than 64 MiB") }
    }
}

func writeError(_ text: String) {
    LineOutput.standardError.write(Array((text + "\n").utf8))
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a config-autoscaler ConfigMap YAML file.",
        discussion: """
            Prints the effective configuration as JSON and exits 0, or prints every problem as \
            FILE:LINE: KEY: MESSAGE (Knative's wording) and exits 1.
            """)

    @Argument(help: "The ConfigMap YAML file ('-' for standard input).")
    var file: String

    func run() throws {
        let bytes = try readInput(file)
        let name = file == "-" ? "<stdin>" : file
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            let config = try AutoscalerConfig.load(yaml: text, file: name)
            print(config.effectiveJSON)
        } catch {
            for problem in error.problems { writeError(problem.description) }
            throw ExitCode(1)
        }
    }
}

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Replay a scenario through the KPA decider (what-if tool).",
        discussion: """
            Input: one JSON document {"decider": {...}, "initialReadyPods": N, "steps": [...]}; \
            "decider" mirrors Knative's DeciderSpec in camelCase, or give "config" (ConfigMap data), \
            "annotations" and "containerConcurrency" to resolve it as Knative does. Each step is \
            {"t", "readyPods", "stable", "panic"} (window averages, revision totals), \
            {"t", "readyPods", "concurrency", "rps"} (raw per-second samples), optionally \
            "error": "no data". Output: one JSON line per step {"t", "desiredPods", \
            "excessBurstCapacity", "valid", "panic"}, or CSV with --csv.
            """)

    @Argument(help: "Scenario JSON file, or '-' for standard input.")
    var file: String = "-"

    @Flag(help: "Write CSV (with a header line) instead of JSON lines.")
    var csv = false

    func run() throws {
        let bytes = try readInput(file)
        let name = file == "-" ? "<stdin>" : file
        let scenario: SimulationScenario
        do {
            scenario = try Simulation.parse(json: bytes)
        } catch {
            for message in error.messages { writeError("\(name): \(message)") }
            throw ExitCode(1)
        }
        var out = csv ? SimulationRow.csvHeader + "\n" : ""
        for row in Simulation.run(scenario) {
            out += (csv ? row.csvLine : row.jsonLine) + "\n"
        }
        LineOutput.standardOutput.write(Array(out.utf8))
    }
}
