import Testing
@testable import SluiceCore

/// The environment Knative's revision reconciler gives a queue-proxy container.
let knativePodEnvironment: [String: String] = [
    "SERVING_NAMESPACE": "default",
    "SERVING_SERVICE": "hello",
    "SERVING_CONFIGURATION": "hello",
    "SERVING_REVISION": "hello-00001",
    "QUEUE_SERVING_PORT": "8012",
    "QUEUE_SERVING_TLS_PORT": "8112",
    "CONTAINER_CONCURRENCY": "10",
    "REVISION_TIMEOUT_SECONDS": "300",
    "REVISION_RESPONSE_START_TIMEOUT_SECONDS": "0",
    "REVISION_IDLE_TIMEOUT_SECONDS": "0",
    "SERVING_POD": "hello-00001-deployment-7d9c-x2x",
    "SERVING_POD_IP": "10.0.0.7",
    "SERVING_LOGGING_CONFIG": #"{"level": "info", "development": false, "outputPaths": ["stdout"], "encoding": "json"}"#,
    "SERVING_LOGGING_LEVEL": "",
    "USER_PORT": "8080",
    "SYSTEM_NAMESPACE": "knative-serving",
    "SERVING_READINESS_PROBE": #"{"tcpSocket":{"port":8080,"host":"127.0.0.1"},"successThreshold":1}"#,
    "HOST_IP": "192.168.1.5",
    "ENABLE_HTTP2_AUTO_DETECTION": "false",
    "ENABLE_HTTP_FULL_DUPLEX": "false",
    "ROOT_CA": "",
    "QUEUE_PROXY_TLS_MIN_VERSION": "",
    "QUEUE_PROXY_TLS_MAX_VERSION": "",
    "QUEUE_PROXY_TLS_CIPHER_SUITES": "",
    "QUEUE_PROXY_TLS_CURVE_PREFERENCES": "",
    "ENABLE_MULTI_CONTAINER_PROBES": "false",
    "OBSERVABILITY_CONFIG": #"{"tracing":{},"metrics":{},"runtime":{},"requestMetrics":{}}"#,
]

func environment(_ changes: [String: String?]) -> [String: String] {
    var result = knativePodEnvironment
    for (key, value) in changes { result[key] = value }
    return result
}

@Suite("queue-proxy configuration", .timeLimit(.minutes(1)))
struct ServingConfigTests {
    @Test("a Knative pod's environment gives Knative's settings and Sluice's default ports")
    func knativeEnvironment() throws {
        let config = try QueueProxyConfig(environment: knativePodEnvironment)
        #expect(config.servingNamespace == "default")
        #expect(config.servingRevision == "hello-00001")
        #expect(config.servingPod == "hello-00001-deployment-7d9c-x2x")
        #expect(config.servingPort == 8012)
        #expect(config.servingTLSPort == 8112)
        #expect(config.userPort == 8080)
        #expect(config.adminPort == 8022)
        #expect(config.metricsPort == 9090)
        #expect(config.userMetricsPort == 9091)
        #expect(config.containerConcurrency == 10)
        #expect(config.timeouts == RevisionTimeouts(total: .seconds(300)))
        #expect(config.timeouts.responseStart == nil)
        #expect(config.drain.quietPeriod == .seconds(30))
        #expect(config.drain.hardCap == .seconds(300))
        #expect(config.readinessProbes == [ReadinessProbeSpec(action: .tcpSocket(host: "127.0.0.1", port: 8080))])
        #expect(config.logLevel == .info)
        #expect(config.tls.minimumVersion == "1.3")
        #expect(config.observability.enableRequestLog == false)
        #expect(config.observability.requestLog == nil)
        #expect(config.revision == RevisionIdentity(
            name: "hello-00001", namespace: "default", service: "hello", configuration: "hello",
            podName: "hello-00001-deployment-7d9c-x2x", podIP: "10.0.0.7"))
    }

    @Test("every missing required variable is named in one error")
    func missingRequired() {
        var env = knativePodEnvironment
        for name in ["SERVING_NAMESPACE", "USER_PORT", "CONTAINER_CONCURRENCY", "SERVING_POD_IP", "SERVING_LOGGING_LEVEL"] {
            env[name] = nil
        }
        #expect(throws: ConfigurationError(missing: ["SERVING_NAMESPACE", "SERVING_POD_IP", "USER_PORT", "CONTAINER_CONCURRENCY", "SERVING_LOGGING_LEVEL"])) {
            try QueueProxyConfig(environment: env)
        }
        do {
            _ = try QueueProxyConfig(environment: ["SERVING_SERVICE": "x"])
            Issue.record("an empty environment must fail")
        } catch {
            #expect(error.missing == QueueProxyConfig.variables.filter(\.required).map(\.name).sorted(by: { a, b in
                requiredOrder.firstIndex(of: a)! < requiredOrder.firstIndex(of: b)!
            }))
            #expect(error.description.hasPrefix("missing required environment variables: SERVING_NAMESPACE, SERVING_CONFIGURATION, SERVING_REVISION, SERVING_POD, SERVING_POD_IP, QUEUE_SERVING_PORT"))
        }
    }

    private let requiredOrder = [
        "SERVING_NAMESPACE", "SERVING_CONFIGURATION", "SERVING_REVISION", "SERVING_POD", "SERVING_POD_IP",
        "QUEUE_SERVING_PORT", "QUEUE_SERVING_TLS_PORT", "USER_PORT", "CONTAINER_CONCURRENCY", "REVISION_TIMEOUT_SECONDS",
        "SERVING_LOGGING_CONFIG", "SERVING_LOGGING_LEVEL",
    ]

    @Test("empty strings count as set for required text variables, as with Knative's envconfig")
    func emptyRequiredStrings() throws {
        let config = try QueueProxyConfig(environment: environment(["SERVING_CONFIGURATION": "", "SERVING_LOGGING_CONFIG": ""]))
        #expect(config.servingConfiguration == "")
        #expect(config.logLevel == .info)
    }

    @Test(
        "an invalid value is reported with the variable, the value and what was expected",
        arguments: [
            ("CONTAINER_CONCURRENCY", "-1", "must be a whole number from 0 (unlimited) to 214748364"),
            ("CONTAINER_CONCURRENCY", "ten", "must be a whole number from 0 (unlimited) to 214748364"),
            ("USER_PORT", "0", "must be a port number between 1 and 65535"),
            ("QUEUE_SERVING_PORT", "70000", "must be a port number between 1 and 65535"),
            ("REVISION_TIMEOUT_SECONDS", "", "must be a whole number of seconds, 0 or more"),
            ("REVISION_IDLE_TIMEOUT_SECONDS", "-5", "must be a whole number of seconds, 0 or more"),
            ("ENABLE_HTTP_FULL_DUPLEX", "yes", "must be true or false"),
            ("SERVING_LOGGING_LEVEL", "verbose", "must be one of debug, info, warn, error, dpanic, panic, fatal"),
            ("QUEUE_PROXY_TLS_MIN_VERSION", "1.1", "unsupported TLS version: must be \"1.2\" or \"1.3\""),
            ("QUEUE_PROXY_TLS_CURVE_PREFERENCES", "X25519,P999", "unknown curve \"P999\""),
            ("QUEUE_PROXY_TLS_CIPHER_SUITES", "TLS_RSA_WITH_RC4_128_SHA", "unknown cipher suite \"TLS_RSA_WITH_RC4_128_SHA\""),
            ("SLUICE_ADMIN_PORT", "http", "must be a port number between 1 and 65535"),
            ("SLUICE_DRAIN_QUIET_PERIOD_SECONDS", "-1", "must be a number of seconds, 0 or more"),
        ])
    func invalidValues(variable: String, value: String, reason: String) {
        #expect(throws: ConfigurationError(invalid: [ConfigurationIssue(variable: variable, value: value, reason: reason)])) {
            try QueueProxyConfig(environment: environment([variable: value]))
        }
    }

    @Test("the error text names each problem on its own line")
    func errorDescription() {
        let error = ConfigurationError(missing: ["USER_PORT"], invalid: [ConfigurationIssue(variable: "CONTAINER_CONCURRENCY", value: "x", reason: "must be a number")])
        #expect(error.description == "missing required environment variable: USER_PORT\ninvalid CONTAINER_CONCURRENCY=\"x\": must be a number")
    }

    @Test("Sluice's port and drain overrides move the fixed Knative ports")
    func sluiceOverrides() throws {
        let config = try QueueProxyConfig(environment: environment([
            "SLUICE_ADMIN_PORT": "18022", "SLUICE_METRICS_PORT": "19090", "SLUICE_USER_METRICS_PORT": "19091",
            "SLUICE_DRAIN_QUIET_PERIOD_SECONDS": "0.5", "SLUICE_DRAIN_HARD_CAP_SECONDS": "90",
        ]))
        #expect(config.adminPort == 18022)
        #expect(config.metricsPort == 19090)
        #expect(config.userMetricsPort == 19091)
        #expect(config.drain.quietPeriod == .milliseconds(500))
        #expect(config.drain.hardCap == .seconds(90))
    }

    @Test("a port override that collides with the serving or user port is refused")
    func portCollision() {
        #expect(throws: ConfigurationError(invalid: [ConfigurationIssue(variable: "SLUICE_METRICS_PORT", value: "8080", reason: "collides with QUEUE_SERVING_PORT or USER_PORT")])) {
            try QueueProxyConfig(environment: environment(["SLUICE_METRICS_PORT": "8080"]))
        }
    }

    @Test("the three revision timeouts are read; 0 turns one off")
    func timeouts() throws {
        let config = try QueueProxyConfig(environment: environment([
            "REVISION_TIMEOUT_SECONDS": "0", "REVISION_RESPONSE_START_TIMEOUT_SECONDS": "20", "REVISION_IDLE_TIMEOUT_SECONDS": "5",
        ]))
        #expect(config.timeouts.total == nil)
        #expect(config.timeouts.responseStart == .seconds(20))
        #expect(config.timeouts.idle == .seconds(5))
        #expect(config.drain.hardCap == nil)
    }

    @Test("the level override wins over the zap config's level", arguments: [
        ("debug", Logger.Level.debug), ("warn", .warning), ("error", .error), ("fatal", .critical), ("", .error),
    ])
    func logLevels(override: String, expected: Logger.Level) throws {
        let config = try QueueProxyConfig(environment: environment([
            "SERVING_LOGGING_CONFIG": #"{"level":"error"}"#, "SERVING_LOGGING_LEVEL": override,
        ]))
        #expect(config.logLevel == expected)
    }

    @Test("OBSERVABILITY_CONFIG turns on request logs with Knative's default template and compiles it")
    func observabilityRequestLog() throws {
        let config = try QueueProxyConfig(environment: environment([
            "OBSERVABILITY_CONFIG": #"{"tracing":{"protocol":"grpc","endpoint":"otel:4317","samplingRate":0.1},"metrics":{"protocol":"prometheus"},"runtime":{"profiling":"enabled","exportInterval":15000000000},"requestMetrics":{"protocol":"none"},"enableRequestLog":true,"enableProbeRequestLog":true}"#,
        ]))
        #expect(config.observability.enableRequestLog)
        #expect(config.observability.enableProbeRequestLog)
        #expect(config.observability.requestLogTemplate == ObservabilityConfig.defaultRequestLogTemplate)
        #expect(config.observability.requestLog != nil)
        #expect(config.observability.tracing.protocolName == "grpc")
        #expect(config.observability.tracing.samplingRate == 0.1)
        #expect(config.observability.profiling == "enabled")
    }

    @Test("a request-log template that does not compile stops startup with its position and reason")
    func badTemplate() {
        do {
            _ = try QueueProxyConfig(environment: environment([
                "OBSERVABILITY_CONFIG": #"{"enableRequestLog":true,"requestLogTemplate":"{{.Request.Nope}}"}"#,
            ]))
            Issue.record("expected an error")
        } catch {
            #expect(error.invalid.map(\.variable) == ["OBSERVABILITY_CONFIG"])
            #expect(error.invalid.first?.reason == "requestLogTemplate: template:1:3: can't evaluate field .Request.Nope: not a request field Sluice provides")
        }
    }

    @Test("bad observability settings are named", arguments: [
        (#"{"tracing":{"protocol":"zipkin"}}"#, "tracing.protocol \"zipkin\" is not one of grpc, http/protobuf, stdout, none"),
        (#"{"tracing":{"protocol":"grpc"}}"#, "tracing.endpoint must be set for protocol \"grpc\""),
        (#"{"tracing":{"samplingRate":2}}"#, "tracing.samplingRate must be between 0 and 1, got 2.0"),
        (#"{"metrics":{"protocol":"none","endpoint":"x"}}"#, "metrics.endpoint must not be set for protocol \"none\""),
    ])
    func badObservability(json: String, reason: String) {
        #expect(throws: ConfigurationError(invalid: [ConfigurationIssue(variable: "OBSERVABILITY_CONFIG", value: json, reason: reason)])) {
            try QueueProxyConfig(environment: environment(["OBSERVABILITY_CONFIG": json]))
        }
    }

    @Test("OBSERVABILITY_CONFIG that is not JSON is refused")
    func observabilityNotJSON() {
        do {
            _ = try QueueProxyConfig(environment: environment(["OBSERVABILITY_CONFIG": "{nope"]))
            Issue.record("expected an error")
        } catch {
            #expect(error.invalid.first?.variable == "OBSERVABILITY_CONFIG")
            #expect(error.invalid.first?.reason.hasPrefix("is not valid observability JSON") == true)
        }
    }

    @Test("the variable list covers everything Knative's reconciler sets")
    func variableListComplete() {
        let listed = Set(QueueProxyConfig.variables.map(\.name))
        #expect(Set(knativePodEnvironment.keys).isSubset(of: listed))
        #expect(listed.contains("SLUICE_ADMIN_PORT"))
    }
}

import Logging
