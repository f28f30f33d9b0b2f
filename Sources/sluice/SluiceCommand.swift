// sluice: the local runtime and operator CLI. A thin root command; each subcommand lives in its own
// file and calls into SluiceCore.
import ArgumentParser
import SluiceCore

@main
struct SluiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Sluice: the Knative Serving data plane, and tools to run and debug it.",
        version: Sluice.version,
        subcommands: [HTTPParseCommand.self, ProxyCommand.self]
    )
}
