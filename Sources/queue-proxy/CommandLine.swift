// queue-proxy's flags: one for every environment variable it reads (Knative's and Sluice's), named
// after it (`--container-concurrency 10` sets CONTAINER_CONCURRENCY), for use outside Kubernetes.
// A flag overrides the variable of the same name; validation is QueueProxyConfig's, so both name the
// variable in their errors.
import Glibc
import SluiceCore

struct QueueProxyCommandLine {
    struct UsageError: Error, CustomStringConvertible {
        let description: String
    }

    private(set) var settings: [String: String] = [:]
    private(set) var wantsHelp = false
    private(set) var wantsVersion = false

    /// Flag name → variable name, for every variable QueueProxyConfig knows.
    static let flags: [String: String] = Dictionary(uniqueKeysWithValues: QueueProxyConfig.variables.map {
        (flagName(for: $0.name), $0.name)
    })

    static func flagName(for variable: String) -> String {
        "--" + String(variable.lowercased().map { $0 == "_" ? "-" : $0 })
    }

    init(arguments: [String]) throws(UsageError) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            switch argument {
            case "-h", "--help":
                wantsHelp = true
                continue
            case "--version":
                wantsVersion = true
                continue
            default:
                break
            }
            var name = argument
            var value: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                value = String(argument[argument.index(after: equals)...])
            }
            guard let variable = Self.flags[name] else {
                throw UsageError(description: "unknown option '\(name)'")
            }
            if value == nil {
                guard index < arguments.count else { throw UsageError(description: "option '\(name)' needs a value") }
                value = arguments[index]
                index += 1
            }
            settings[variable] = value
        }
    }

    /// The environment with the flags applied on top.
    func environment(overriding environment: [String: String]) -> [String: String] {
        environment.merging(settings) { _, flag in flag }
    }

    static var help: String {
        var text = """
            Usage: queue-proxy [--OPTION VALUE]...

            Knative's queue-proxy sidecar, built on Sluice. Every setting comes from the environment Knative's
            revision reconciler gives the queue-proxy container; each has a flag of the same name that
            overrides it. Required settings are marked with *.


            """
        for variable in QueueProxyConfig.variables {
            let flag = flagName(for: variable.name) + (variable.required ? " *" : "")
            text += "  " + flag.padding(toLength: 46) + variable.name + ": " + variable.help + "\n"
        }
        text += """

            Other options: --help, --version.
            Signals: SIGTERM or SIGINT drains (probes answer 503 at once, requests are served until a quiet
            period passes with none, in-flight requests finish) and exits 0; a second signal exits 1 at once.

            """
        return text
    }
}

extension String {
    fileprivate func padding(toLength length: Int) -> String {
        count >= length ? self + " " : self + String(repeating: " ", count: length - count)
    }
}

/// The process environment as a dictionary.
func environmentVariables() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}

func fileDescriptorLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
    return Int(min(limit.rlim_cur, 1 << 20))
}

/// Knative mounts system-internal TLS certificates here.
func certificatesMounted() -> Bool {
    access("/var/lib/knative/certs/tls.crt", F_OK) == 0 && access("/var/lib/knative/certs/tls.key", F_OK) == 0
}

func exitProcess(_ status: Int32) -> Never {
    exit(status)
}
