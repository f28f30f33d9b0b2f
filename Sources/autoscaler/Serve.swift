// `autoscaler serve`: reads the config-autoscaler ConfigMap and the revisions file, then runs the KPA
// (SluiceCore's AutoscalerServer) until SIGTERM/SIGINT; SIGHUP re-reads the revisions file.
import ArgumentParser
import Logging
import SluiceCore

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the autoscaler: scrape pods every 1 s, decide every 2 s, apply and report the scale.",
        discussion: """
            The revisions file lists each revision (namespace, name, annotations, containerConcurrency, \
            optional private-service stats address) and its pods (name, stats address host:port, ready, \
            startTime or uptime); see examples/autoscaler-revisions.yaml. Decisions are logged \
            ("scale changed") and served as JSON on the status port: GET /revisions, \
            GET /revisions/<namespace>/<name>. SIGHUP re-reads the revisions file; SIGTERM/SIGINT stop (exit 0).
            """)

    @Option(name: .long, help: "The revisions YAML file.")
    var revisions: String

    @Option(name: .long, help: "A config-autoscaler ConfigMap YAML file (defaults when absent).")
    var config: String?

    @Option(name: .long, help: "Status API port (0 = any free port, logged at start).")
    var statusPort: Int = 8090

    @Option(name: .long, help: "Status API bind address (numeric).")
    var statusHost: String = "127.0.0.1"

    @Option(name: .long, help: "Port of the activators' stat stream (WebSocket, protobuf WireStatMessages; Knative: 8080). 0 = off.")
    var statsPort: Int = 8080

    @Option(name: .long, help: "Stat stream bind address (numeric).")
    var statsHost: String = "0.0.0.0"

    @Option(name: .long, help: "Knative's mesh-compatibility-mode: auto, enabled (always scrape the service) or disabled (always the pods).")
    var meshCompatibilityMode: String = "auto"

    @Option(name: .long, help: "Seed of the scrape-order shuffles.")
    var seed: UInt64 = 0x5EED_5C4A_9E00_0001

    @Option(name: .long, help: "Log level: debug, info, warning, error.")
    var logLevel: String = "info"

    func run() throws {
        guard let level = Logger.Level(rawValue: logLevel == "warn" ? "warning" : logLevel) else {
            throw ValidationError("--log-level: unknown level '\(logLevel)' (debug, info, warning, error)")
        }
        guard let mesh = MeshCompatibilityMode(rawValue: meshCompatibilityMode) else {
            throw ValidationError("--mesh-compatibility-mode: expected auto, enabled or disabled, was '\(meshCompatibilityMode)'")
        }
        guard (0 ... 65535).contains(statusPort) else { throw ValidationError("--status-port: \(statusPort) is not a port") }
        guard (0 ... 65535).contains(statsPort) else { throw ValidationError("--stats-port: \(statsPort) is not a port") }
        var statsAddress: SocketAddress?
        if statsPort != 0 {
            do {
                statsAddress = try SocketAddress(host: statsHost, port: UInt16(statsPort))
            } catch {
                throw ValidationError("--stats-host: \(error)")
            }
        }
        let statusAddress: SocketAddress
        do {
            statusAddress = try SocketAddress(host: statusHost, port: UInt16(statusPort))
        } catch {
            throw ValidationError("--status-host: \(error)")
        }

        var autoscalerConfig = AutoscalerConfig()
        if let config {
            let text = String(decoding: try readInput(config), as: UTF8.self)
            do {
                autoscalerConfig = try AutoscalerConfig.load(yaml: text, file: config)
            } catch {
                for problem in error.problems { writeError(problem.description) }
                throw ExitCode(1)
            }
        }
        let document: RevisionsDocument
        do {
            document = try Self.loadRevisions(revisions, config: autoscalerConfig)
        } catch {
            writeError("\(error)")
            throw ExitCode(1)
        }

        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        let logger = Logger(label: "autoscaler")
        var settings = AutoscalerServeSettings()
        settings.meshMode = mesh
        settings.seed = seed
        let path = revisions
        let configForReload = autoscalerConfig
        do {
            let status = try AutoscalerServer.run(
                config: autoscalerConfig, revisions: document, settings: settings, statusAddress: statusAddress,
                statsAddress: statsAddress, logger: logger,
                reloadRevisions: {
                    do {
                        return try Self.loadRevisions(path, config: configForReload)
                    } catch {
                        // A bad edit keeps the revisions already running.
                        logger.error("revisions file not reloaded", metadata: ["error": "\(error)"])
                        return nil
                    }
                })
            if status != 0 { throw ExitCode(status) }
        } catch let error as AutoscalerStartError {
            logger.critical("autoscaler failed to start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }

    static func loadRevisions(_ path: String, config: AutoscalerConfig) throws -> RevisionsDocument {
        let text = String(decoding: try readInput(path), as: UTF8.self)
        let now = SystemWallClock().now()
        return try RevisionsDocument.parse(yaml: text, file: path, config: config, loadedAt: now)
    }
}
