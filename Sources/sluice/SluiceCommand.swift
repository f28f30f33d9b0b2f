// The `sluice` executable: the local runtime and CLI. A thin root command; each subcommand parses its
// configuration and calls into SluiceCore.
import ArgumentParser
import SluiceCore

@main
struct SluiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Sluice: the Knative Serving data plane on its own epoll stack.",
        version: Sluice.version,
        subcommands: [ProxyCommand.self]
    )
}
