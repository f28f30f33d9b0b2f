// queue-proxy's whole configuration as one value, built once at startup from exactly the environment
// Knative's revision reconciler gives the queue-proxy container, plus the ports and drain timing Sluice
// lets the local runtime move. Serving layer; the executable maps its flags onto the same variable names.
import Logging

public struct QueueProxyConfig: Sendable {
    // Revision identity.
    public var servingNamespace: String
    public var servingService: String
    public var servingConfiguration: String
    public var servingRevision: String
    public var servingPod: String
    public var servingPodIP: String

    // Ports.
    /// Main serving port (8012, or 8013 for h2c revisions).
    public var servingPort: Int
    /// Serving port with TLS (8112), used when certificates are mounted.
    public var servingTLSPort: Int
    /// The app's port on 127.0.0.1.
    public var userPort: Int
    /// Admin port with `/wait-for-drain` (Knative fixes 8022).
    public var adminPort: Int
    /// Autoscaler Stat port (Knative fixes 9090).
    public var metricsPort: Int
    /// Prometheus request metrics port (Knative's 9091).
    public var userMetricsPort: Int
    /// Address every port listens on (Knative listens on all interfaces: the kubelet probes and calls
    /// the preStop hook on the pod IP). The local runtime can keep a revision on 127.0.0.1.
    public var bindAddress: String

    // Traffic.
    /// CONTAINER_CONCURRENCY: in-flight limit of the breaker; 0 = unlimited (no breaker).
    public var containerConcurrency: Int
    public var timeouts: RevisionTimeouts
    public var drain: DrainSettings

    // Probing.
    /// The user container's (and, with multi-container probing, sidecars') readiness probes; empty when
    /// none was given (then the app counts as ready).
    public var readinessProbes: [ReadinessProbeSpec]
    public var enableHTTP2AutoDetection: Bool
    public var enableMultiContainerProbes: Bool
    public var enableHTTPFullDuplex: Bool

    // Logging, observability, TLS.
    public var logLevel: Logger.Level
    /// SERVING_LOGGING_CONFIG as given (zap JSON), for reference in logs.
    public var loggingConfig: String
    public var observability: ObservabilityConfig
    public var hostIP: String
    public var rootCA: String
    public var systemNamespace: String
    public var tls: TLSSettings

    public struct TLSSettings: Sendable, Equatable {
        /// "1.2" or "1.3" (Knative's default minimum is 1.3).
        public var minimumVersion: String
        /// nil: the library's maximum.
        public var maximumVersion: String?
        public var cipherSuites: [String]
        public var curvePreferences: [String]
    }

    /// A variable queue-proxy reads: its name, whether Knative's reconciler always sets it, and what it means.
    public struct Variable: Sendable {
        public var name: String
        public var required: Bool
        public var help: String
    }

    /// Every variable, in the order Knative's reconciler lists them, then Sluice's additions.
    public static let variables: [Variable] = [
        .init(name: "SERVING_NAMESPACE", required: true, help: "namespace of the revision"),
        .init(name: "SERVING_SERVICE", required: false, help: "service owning the revision (may be empty)"),
        .init(name: "SERVING_CONFIGURATION", required: true, help: "configuration owning the revision (may be empty)"),
        .init(name: "SERVING_REVISION", required: true, help: "revision name"),
        .init(name: "QUEUE_SERVING_PORT", required: true, help: "serving port (8012, 8013 for h2c)"),
        .init(name: "QUEUE_SERVING_TLS_PORT", required: true, help: "TLS serving port (8112)"),
        .init(name: "CONTAINER_CONCURRENCY", required: true, help: "in-flight request limit, 0 = unlimited"),
        .init(name: "REVISION_TIMEOUT_SECONDS", required: true, help: "whole-request timeout in seconds (0 = none)"),
        .init(name: "REVISION_RESPONSE_START_TIMEOUT_SECONDS", required: false, help: "time to first response byte (0 = none)"),
        .init(name: "REVISION_IDLE_TIMEOUT_SECONDS", required: false, help: "time between response bytes (0 = none)"),
        .init(name: "SERVING_POD", required: true, help: "pod name (reported in every Stat)"),
        .init(name: "SERVING_POD_IP", required: true, help: "pod IP (request logs)"),
        .init(name: "SERVING_LOGGING_CONFIG", required: true, help: "zap logging config JSON (may be empty)"),
        .init(name: "SERVING_LOGGING_LEVEL", required: true, help: "log level override (may be empty)"),
        .init(name: "USER_PORT", required: true, help: "the app's port on 127.0.0.1"),
        .init(name: "SYSTEM_NAMESPACE", required: false, help: "Knative's system namespace"),
        .init(name: "SERVING_READINESS_PROBE", required: false, help: "the app's readiness probe (Kubernetes Probe JSON)"),
        .init(name: "HOST_IP", required: false, help: "node IP"),
        .init(name: "ENABLE_HTTP2_AUTO_DETECTION", required: false, help: "probe the app for h2c"),
        .init(name: "ENABLE_HTTP_FULL_DUPLEX", required: false, help: "allow full-duplex HTTP/1 streaming"),
        .init(name: "ROOT_CA", required: false, help: "extra root CA (PEM)"),
        .init(name: "QUEUE_PROXY_TLS_MIN_VERSION", required: false, help: "1.2 or 1.3"),
        .init(name: "QUEUE_PROXY_TLS_MAX_VERSION", required: false, help: "1.2 or 1.3"),
        .init(name: "QUEUE_PROXY_TLS_CIPHER_SUITES", required: false, help: "comma-separated cipher suite names"),
        .init(name: "QUEUE_PROXY_TLS_CURVE_PREFERENCES", required: false, help: "comma-separated curve names"),
        .init(name: "ENABLE_MULTI_CONTAINER_PROBES", required: false, help: "SERVING_READINESS_PROBE is a list"),
        .init(name: "OBSERVABILITY_CONFIG", required: false, help: "request log, tracing and metrics settings (JSON)"),
        .init(name: "SLUICE_ADMIN_PORT", required: false, help: "admin port (default 8022)"),
        .init(name: "SLUICE_METRICS_PORT", required: false, help: "autoscaler Stat port (default 9090)"),
        .init(name: "SLUICE_USER_METRICS_PORT", required: false, help: "Prometheus request metrics port (default 9091)"),
        .init(name: "SLUICE_BIND_ADDRESS", required: false, help: "numeric address all ports listen on (default 0.0.0.0)"),
        .init(name: "SLUICE_DRAIN_QUIET_PERIOD_SECONDS", required: false, help: "quiet period before shutdown (default 30)"),
        .init(name: "SLUICE_DRAIN_HARD_CAP_SECONDS", required: false, help: "longest shutdown (default: the revision timeout)"),
    ]

    /// Cipher suite names Go's crypto/tls offers (what Knative accepts in QUEUE_PROXY_TLS_CIPHER_SUITES).
    public static let knownCipherSuites: Set<String> = [
        "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ]

    /// Curve names Knative accepts in QUEUE_PROXY_TLS_CURVE_PREFERENCES.
    public static let knownCurves: Set<String> = ["CurveP256", "CurveP384", "CurveP521", "X25519", "X25519MLKEM768"]

    /// Builds and checks the configuration. Every missing required variable and every invalid value is
    /// reported in one error.
    public init(environment: [String: String]) throws(ConfigurationError) {
        var reader = EnvironmentReader(environment)

        servingNamespace = reader.requiredString("SERVING_NAMESPACE")
        servingService = reader.optionalString("SERVING_SERVICE") ?? ""
        servingConfiguration = reader.requiredString("SERVING_CONFIGURATION")
        servingRevision = reader.requiredString("SERVING_REVISION")
        servingPod = reader.requiredString("SERVING_POD")
        servingPodIP = reader.requiredString("SERVING_POD_IP")

        servingPort = reader.requiredPort("QUEUE_SERVING_PORT")
        servingTLSPort = reader.requiredPort("QUEUE_SERVING_TLS_PORT")
        userPort = reader.requiredPort("USER_PORT")
        adminPort = reader.optionalPort("SLUICE_ADMIN_PORT", default: 8022)
        metricsPort = reader.optionalPort("SLUICE_METRICS_PORT", default: 9090)
        userMetricsPort = reader.optionalPort("SLUICE_USER_METRICS_PORT", default: 9091)
        bindAddress = reader.optionalString("SLUICE_BIND_ADDRESS").flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
        if (try? SocketAddress(host: bindAddress, port: 0)) == nil {
            reader.report("SLUICE_BIND_ADDRESS", bindAddress, "must be a numeric IPv4 or IPv6 address")
        }

        containerConcurrency = reader.requiredInt(
            "CONTAINER_CONCURRENCY", range: 0...Breaker.maximumCapacity / 10,
            expectation: "a whole number from 0 (unlimited) to \(Breaker.maximumCapacity / 10)")
        let secondsLimit = 1...Int(Int32.max)
        let total = reader.requiredInt(
            "REVISION_TIMEOUT_SECONDS", range: 0...secondsLimit.upperBound, expectation: "a whole number of seconds, 0 or more")
        let responseStart = reader.optionalInt(
            "REVISION_RESPONSE_START_TIMEOUT_SECONDS", default: 0, range: 0...secondsLimit.upperBound,
            expectation: "a whole number of seconds, 0 or more")
        let idle = reader.optionalInt(
            "REVISION_IDLE_TIMEOUT_SECONDS", default: 0, range: 0...secondsLimit.upperBound,
            expectation: "a whole number of seconds, 0 or more")
        timeouts = RevisionTimeouts(total: .seconds(total), responseStart: .seconds(responseStart), idle: .seconds(idle))

        let quiet = reader.optionalSeconds("SLUICE_DRAIN_QUIET_PERIOD_SECONDS", default: .seconds(30))
        let defaultCap: Duration? = total > 0 ? .seconds(total) : nil
        let hardCapSeconds = reader.optionalSeconds("SLUICE_DRAIN_HARD_CAP_SECONDS", default: defaultCap ?? .zero)
        drain = DrainSettings(quietPeriod: quiet, hardCap: hardCapSeconds > .zero ? hardCapSeconds : nil)

        enableHTTP2AutoDetection = reader.optionalBool("ENABLE_HTTP2_AUTO_DETECTION")
        enableMultiContainerProbes = reader.optionalBool("ENABLE_MULTI_CONTAINER_PROBES")
        enableHTTPFullDuplex = reader.optionalBool("ENABLE_HTTP_FULL_DUPLEX")

        readinessProbes = []
        if let probeJSON = reader.optionalString("SERVING_READINESS_PROBE"), !probeJSON.isEmpty {
            do {
                readinessProbes = try ReadinessProbeSpec.decodeList(probeJSON)
            } catch {
                reader.invalid += error.invalid
            }
        }

        loggingConfig = reader.requiredString("SERVING_LOGGING_CONFIG")
        let levelOverride = reader.requiredString("SERVING_LOGGING_LEVEL")
        logLevel = ServingLogLevel.resolve(config: loggingConfig, level: levelOverride, reader: &reader)

        observability = ObservabilityConfig()
        if let json = reader.optionalString("OBSERVABILITY_CONFIG") {
            do {
                observability = try ObservabilityConfig.decode(json)
            } catch {
                reader.invalid += error.invalid
            }
        }

        hostIP = reader.optionalString("HOST_IP") ?? ""
        rootCA = reader.optionalString("ROOT_CA") ?? ""
        systemNamespace = reader.optionalString("SYSTEM_NAMESPACE") ?? ""
        tls = Self.readTLS(&reader)

        for (name, port) in [("SLUICE_ADMIN_PORT", adminPort), ("SLUICE_METRICS_PORT", metricsPort), ("SLUICE_USER_METRICS_PORT", userMetricsPort)]
        where environment[name] != nil && (port == servingPort || port == userPort) {
            reader.report(name, String(port), "collides with QUEUE_SERVING_PORT or USER_PORT")
        }
        if let error = reader.error() { throw error }
    }

    private static func readTLS(_ reader: inout EnvironmentReader) -> TLSSettings {
        func version(_ name: String) -> String? {
            guard let raw = reader.optionalString(name), !raw.isEmpty else { return nil }
            guard raw == "1.2" || raw == "1.3" else {
                reader.report(name, raw, "unsupported TLS version: must be \"1.2\" or \"1.3\"")
                return nil
            }
            return raw
        }
        func list(_ name: String, known: Set<String>, noun: String) -> [String] {
            guard let raw = reader.optionalString(name), !raw.isEmpty else { return [] }
            var names: [String] = []
            for part in raw.split(separator: ",") {
                let trimmed = String(part.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
                if trimmed.isEmpty { continue }
                if !known.contains(trimmed) {
                    reader.report(name, raw, "unknown \(noun) \"\(trimmed)\"")
                    continue
                }
                names.append(trimmed)
            }
            return names
        }
        let minimum = version("QUEUE_PROXY_TLS_MIN_VERSION") ?? "1.3"
        let maximum = version("QUEUE_PROXY_TLS_MAX_VERSION")
        if let maximum, maximum < minimum {
            reader.report("QUEUE_PROXY_TLS_MAX_VERSION", maximum, "is below the minimum version \(minimum)")
        }
        return TLSSettings(
            minimumVersion: minimum, maximumVersion: maximum,
            cipherSuites: list("QUEUE_PROXY_TLS_CIPHER_SUITES", known: knownCipherSuites, noun: "cipher suite"),
            curvePreferences: list("QUEUE_PROXY_TLS_CURVE_PREFERENCES", known: knownCurves, noun: "curve"))
    }

    /// Revision identity for request logs and metric labels.
    public var revision: RevisionIdentity {
        RevisionIdentity(
            name: servingRevision, namespace: servingNamespace, service: servingService,
            configuration: servingConfiguration, podName: servingPod, podIP: servingPodIP)
    }
}

/// Who is serving: the revision and pod, as request logs and metrics label them.
public struct RevisionIdentity: Sendable, Equatable {
    public var name: String
    public var namespace: String
    public var service: String
    public var configuration: String
    public var podName: String
    public var podIP: String

    public init(name: String, namespace: String, service: String, configuration: String, podName: String, podIP: String) {
        self.name = name
        self.namespace = namespace
        self.service = service
        self.configuration = configuration
        self.podName = podName
        self.podIP = podIP
    }
}
