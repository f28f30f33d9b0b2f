// queue-proxy: Sluice's drop-in for Knative's queue-proxy sidecar. A thin main: build the configuration
// from the environment (and flags), set up logging, run QueueProxyServer until it has drained.
import Logging
import SluiceCore

let command: QueueProxyCommandLine
do {
    command = try QueueProxyCommandLine(arguments: Array(CommandLine.arguments.dropFirst()))
} catch {
    LineOutput.standardError.write(Array("queue-proxy: \(error)\nRun 'queue-proxy --help' for the settings.\n".utf8))
    exitProcess(2)
}
if command.wantsHelp {
    LineOutput.standardOutput.write(Array(QueueProxyCommandLine.help.utf8))
    exitProcess(0)
}
if command.wantsVersion {
    LineOutput.standardOutput.write(Array("queue-proxy \(Sluice.version)\n".utf8))
    exitProcess(0)
}

let configuration: QueueProxyConfig
do {
    configuration = try QueueProxyConfig(environment: command.environment(overriding: environmentVariables()))
} catch {
    // Every missing and invalid variable in one message, as the reconciler's user needs to see it.
    LineOutput.standardError.write(Array("queue-proxy: invalid configuration:\n\(error)\n".utf8))
    exitProcess(1)
}

let level = configuration.logLevel
LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
var logger = Logger(label: "queueproxy")
logger[metadataKey: "knative.dev/key"] = "\(configuration.servingNamespace)/\(configuration.servingRevision)"
logger[metadataKey: "knative.dev/pod"] = "\(configuration.servingPod)"

if certificatesMounted() {
    logger.warning("certificates are mounted but this build serves no TLS; the TLS port stays closed",
                   metadata: ["tls_port": .stringConvertible(configuration.servingTLSPort)])
}
let requestLog: (any RequestLogSink)? = configuration.observability.enableRequestLog ? LineOutput.standardOutput : nil
do {
    let status = try QueueProxyServer.run(
        configuration: configuration, logger: logger, requestLog: requestLog,
        maxConnections: HTTPServerConfiguration.defaultMaxConnections(fileDescriptorLimit: fileDescriptorLimit()))
    exitProcess(status)
} catch {
    logger.critical("queue-proxy failed to start", metadata: ["error": "\(error)"])
    exitProcess(1)
}
