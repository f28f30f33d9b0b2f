// Tests for the KPA what-if simulator (in process) and the `autoscaler` binary (as a child process).
import Foundation
import Testing
@testable import SluiceCore
import SluiceTestSupport

@Suite("KPA simulator")
struct AutoscalingSimulationTests {
    func run(_ json: String) throws -> [SimulationRow] {
        Simulation.run(try Simulation.parse(json: Array(json.utf8)))
    }

    @Test("window-average steps replay the spec's worked example")
    func workedExample() throws {
        let rows = try run("""
            {"decider": {"targetValue": 70, "totalValue": 100}, "initialReadyPods": 1, "steps": [
              {"t": 0, "readyPods": 3, "stable": 150, "panic": 450},
              {"t": 30, "readyPods": 7, "stable": 200, "panic": 210},
              {"t": 61, "stable": 200, "panic": 210},
              {"t": 62, "stable": 100, "panic": 100},
              {"t": 64, "error": "no data"}]}
            """)
        #expect(rows.map(\.desiredPods) == [7, 7, 3, 3, 3])
        #expect(rows.map(\.excessBurstCapacity) == [-361, 279, 279, 389, 389])
        #expect(rows.map(\.panic) == [true, true, false, false, false])
        #expect(rows.map(\.valid) == [true, true, true, true, false])
        #expect(rows[0].jsonLine == "{\"t\":0,\"desiredPods\":7,\"excessBurstCapacity\":-361,\"valid\":true,\"panic\":true}")
        #expect(rows[0].csvLine == "0,7,-361,true,true")
    }

    @Test("raw per-second samples are aggregated into window averages by the real buckets")
    func rawSamples() throws {
        let rows = try run("""
            {"decider": {"targetValue": 10, "targetBurstCapacity": 0, "stableWindowSeconds": 6},
             "initialReadyPods": 1, "steps": [
              {"t": 0, "readyPods": 1, "concurrency": 20},
              {"t": 1, "concurrency": 40},
              {"t": 2, "concurrency": 0},
              {"t": 20, "concurrency": 0}]}
            """)
        // Panic window is 1 s (10% of 6 s): 20 -> 2 pods; 40 -> panic (4 >= 2 x 1) -> 4; stable (20+40+0)/3 = 20 -> 2 but panic holds 4.
        #expect(rows.map(\.desiredPods) == [2, 4, 4, 0])
        #expect(rows[1].panic)
        #expect(!rows[3].panic)
    }

    @Test("raw samples after a silent stable window restart the averages; RPS targets resolve from the config form")
    func rawNoData() throws {
        let rows = try run("""
            {"decider": {"stableWindowSeconds": 6}, "steps": [{"t": 0, "readyPods": 0, "rps": 0}, {"t": 10, "rps": 0}]}
            """)
        #expect(rows.map(\.valid) == [true, true])
        let config = try run("""
            {"config": {"stable-window": "6s"}, "annotations": {"autoscaling.knative.dev/metric": "rps",
              "autoscaling.knative.dev/target": "10", "autoscaling.knative.dev/target-utilization-percentage": "100"},
             "steps": [{"t": 0, "readyPods": 1, "rps": 35}, {"t": 2, "rps": 35}]}
            """)
        #expect(config.map(\.desiredPods) == [4, 4])
    }

    @Test("config, annotations and containerConcurrency are resolved as Knative does")
    func resolvedForm() throws {
        let scenario = try Simulation.parse(json: Array("""
            {"config": {"container-concurrency-target-percentage": "100"}, "containerConcurrency": 12,
             "annotations": {"autoscaling.knative.dev/target-utilization-percentage": "75",
                             "autoscaling.knative.dev/window": "2m"},
             "steps": [{"t": 0, "stable": 18, "panic": 18}]}
            """.utf8))
        #expect(scenario.spec.targetValue == 9)
        #expect(scenario.spec.totalValue == 12)
        #expect(scenario.metricSpec.stableWindowSeconds == 120)
        #expect(Simulation.run(scenario).map(\.desiredPods) == [2])
    }

    @Test("bad input is rejected with messages naming each field", arguments: [
        ("{\"steps\": [{\"t\": 0, \"stable\": 1}]}", "steps[0].panic: missing (stable was given)"),
        ("{\"decider\": {\"targetValu\": 5}, \"steps\": []}", "decider.targetValu: unknown field"),
        ("{\"decider\": {\"metric\": \"cpu\"}, \"steps\": []}", "decider.metric: expected \"concurrency\" or \"rps\", got \"cpu\""),
        ("{\"steps\": [{\"t\": 5, \"stable\": 1, \"panic\": 1}, {\"t\": 1, \"stable\": 1, \"panic\": 1}]}",
         "steps[1].t: must not go back in time (previous step was at 5)"),
        ("{\"steps\": [{\"t\": 0, \"readyPods\": 1.5, \"stable\": 1, \"panic\": 1}]}", "steps[0].readyPods: expected an integer >= 0, got 1.5"),
        ("{\"steps\": [{\"t\": 0, \"error\": \"timeout\"}]}", "steps[0].error: the only error a step can simulate is \"no data\", got \"timeout\""),
        ("{\"config\": {\"stable-window\": \"5s\"}, \"steps\": []}", "config.stable-window: stable-window = 5s, must be in [6s; 1h0m0s] range"),
        ("{\"config\": {\"min-scale\": 2}, \"steps\": []}", "config.min-scale: expected a string, got a number"),
        ("{\"annotations\": {\"autoscaling.knative.dev/window\": \"5s\"}, \"steps\": []}",
         "annotations: expected 6s <= 5s <= 1h0m0s: autoscaling.knative.dev/window"),
        ("{\"decider\": {}, \"config\": {}, \"steps\": []}",
         "decider: give either \"decider\" or \"config\"/\"annotations\"/\"containerConcurrency\", not both"),
        ("{\"decider\": {}}", "steps: missing (a list of {\"t\", \"readyPods\", \"stable\", \"panic\"} or {\"t\", \"readyPods\", \"concurrency\", \"rps\"})"),
        ("[1]", "(document): expected a JSON object"),
        ("{\"steps\": [{\"t\": 0, \"stable\": 1, \"panic\": 1, \"rps\": 2}]}",
         "steps[0]: give window averages (stable, panic) or raw samples (concurrency, rps), not both"),
    ])
    func badInput(json: String, message: String) {
        do {
            _ = try Simulation.parse(json: Array(json.utf8))
            Issue.record("accepted: \(json)")
        } catch {
            #expect(error.messages.contains(message), "\(error.messages)")
        }
    }

    @Test("malformed JSON is reported as such")
    func malformed() {
        #expect(throws: SimulationInputError.self) { try Simulation.parse(json: Array("{\"steps\": [".utf8)) }
    }
}

/// Runs the built `autoscaler` binary to completion; killed by PID if it outlives its deadline.
private func autoscaler(_ arguments: [String], stdin: String? = nil) throws -> CompletedProcess {
    try ChildProcess.run("autoscaler", arguments, stdin: stdin.map { Array($0.utf8) })
}

@Suite("autoscaler binary", .timeLimit(.minutes(1)))
struct AutoscalerBinaryTests {
    /// A directory for this test's input files, removed when the test ends.
    let directory: TemporaryDirectory
    init() throws { directory = try TemporaryDirectory(prefix: "sluice-kpa") }

    @Test("check-config prints the effective configuration and exits 0 for a valid ConfigMap")
    func checkConfigValid() throws {
        let file = try directory.file("ok.yaml", "kind: ConfigMap\nmetadata:\n  name: config-autoscaler\ndata:\n  stable-window: \"2m\"\n")
        let r = try autoscaler(["check-config", file])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\"stable-window\": \"2m0s\""))
        let parsed = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(parsed?["max-scale-up-rate"] as? Double == 1000)
    }

    @Test("check-config prints every error with file, line and key and exits 1")
    func checkConfigInvalid() throws {
        let file = try directory.file("bad.yaml", """
            kind: ConfigMap
            metadata:
              name: config-autoscaler
            data:
              max-scale-down-rate: "1"
              stable-window: "5s"
            """)
        let r = try autoscaler(["check-config", file])
        #expect(r.status == 1)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == "\(file):5: max-scale-down-rate: max-scale-down-rate = 1, must be greater than 1.0\n"
                + "\(file):6: stable-window: stable-window = 5s, must be in [6s; 1h0m0s] range\n")
        let missing = try autoscaler(["check-config", file + ".absent"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains(".absent"))
    }

    @Test("simulate reads a file or standard input and writes JSON lines or CSV")
    func simulate() throws {
        let scenario = """
            {"decider": {"targetValue": 70, "totalValue": 100}, "initialReadyPods": 1,
             "steps": [{"t": 0, "readyPods": 3, "stable": 150, "panic": 450}, {"t": 2, "error": "no data"}]}
            """
        let file = try directory.file("scenario.json", scenario)
        let r = try autoscaler(["simulate", file])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
            {"t":0,"desiredPods":7,"excessBurstCapacity":-361,"valid":true,"panic":true}
            {"t":2,"desiredPods":7,"excessBurstCapacity":-361,"valid":false,"panic":true}

            """)
        let csv = try autoscaler(["simulate", "-", "--csv"], stdin: scenario)
        #expect(csv.status == 0)
        #expect(csv.stdout == "t,desiredPods,excessBurstCapacity,valid,panic\n0,7,-361,true,true\n2,7,-361,false,true\n")
        let bad = try autoscaler(["simulate"], stdin: "{\"steps\": [{\"t\": -1, \"stable\": 1, \"panic\": 1}]}")
        #expect(bad.status == 1)
        #expect(bad.stderr == "<stdin>: steps[0].t: must be >= 0, got -1\n")
    }

    @Test("the shipped examples pass check-config and simulate")
    func examples() throws {
        let root = packageRoot
        let config = try autoscaler(["check-config", root.appendingPathComponent("examples/config-autoscaler.yaml").path])
        #expect(config.status == 0, "\(config.stderr)")
        for name in ["kpa-burst.json", "kpa-raw-samples.json"] {
            let r = try autoscaler(["simulate", root.appendingPathComponent("examples/\(name)").path])
            #expect(r.status == 0, "\(name): \(r.stderr)")
            #expect(r.stdout.split(separator: "\n").count >= 7)
        }
    }
}
