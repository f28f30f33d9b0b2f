// sample-app: a Knative-style demo app on Sluice's HTTP server, used by the end-to-end tests, the
// autoscaling work and `sluice serve`. Listens on $PORT (default 8080), greets $TARGET (default World);
// `?sleep=ms`, `?prime=N` and `?bloat=MB` make a request slow, CPU-heavy or memory-heavy.
import Glibc
import Logging
import SluiceCore

let environment = SampleAppSettings.processEnvironment()
let settings: SampleAppSettings
do {
    settings = try SampleAppSettings(environment: environment)
} catch {
    LineOutput.standardError.write(Array("sample-app: \(error)\n".utf8))
    exit(1)
}
LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: .info) }
let logger = Logger(label: "sample-app")

do {
    // Before any thread exists, so every loop thread inherits the mask and signals reach the signalfd.
    try SignalSource.block([SIGTERM, SIGINT])
    let group = try EventLoopGroup(loopCount: settings.loops, logger: logger)
    let handlerSettings = settings
    let server: HTTPServer
    do {
        server = try HTTPServer.start(on: group, address: try SocketAddress(host: settings.host, port: settings.port),
                                      logger: logger) { loop in SampleAppHandler(settings: handlerSettings, loop: loop) }
    } catch {
        group.shutdown()
        logger.critical("cannot listen", metadata: ["address": "\(settings.host):\(settings.port)", "error": "\(error)"])
        exit(1)
    }
    logger.info("listening", metadata: [
        "port": .stringConvertible(Int(server.localAddress.port)), "target": "\(settings.target)",
        "loops": .stringConvertible(settings.loops), "version": "\(Sluice.version)",
    ])
    let signals = SampleAppSignals()
    SignalSource.install(on: group.loops[0], signals: [SIGTERM, SIGINT]) { signal in
        if signals.next() == 1 {
            logger.info("draining", metadata: ["signal": .stringConvertible(Int(signal))])
            server.drain(timeout: .seconds(30)) {
                logger.info("drained; exiting")
                group.requestShutdown()
            }
        } else {
            group.requestShutdown()
        }
    }
    group.wait()
} catch {
    logger.critical("cannot start", metadata: ["error": "\(error)"])
    exit(1)
}
