// Knative's OBSERVABILITY_CONFIG (the revision's observability settings as JSON: request log template and
// switches, tracing, metrics exporters) and SERVING_LOGGING_CONFIG/LEVEL (a zap logger config), decoded and
// checked. Serving layer, startup-time only.
import Logging

public struct ObservabilityConfig: Sendable {
    /// Knative's default request-log template (a JSON line per request, Google Cloud's httpRequest shape).
    public static let defaultRequestLogTemplate =
        #"{"httpRequest": {"requestMethod": "{{.Request.Method}}", "requestUrl": "{{js .Request.RequestURI}}", "requestSize": "{{.Request.ContentLength}}", "status": {{.Response.Code}}, "responseSize": "{{.Response.Size}}", "userAgent": "{{js .Request.UserAgent}}", "remoteIp": "{{js .Request.RemoteAddr}}", "serverIp": "{{.Revision.PodIP}}", "referer": "{{js .Request.Referer}}", "latency": "{{.Response.Latency}}s", "protocol": "{{.Request.Proto}}"}, "traceId": "{{.TraceID}}"}"#

    public struct Exporter: Sendable, Equatable {
        public var protocolName: String
        public var endpoint: String
        /// Export interval (metrics) or nil when unset.
        public var exportInterval: Duration?

        public init(protocolName: String = "none", endpoint: String = "", exportInterval: Duration? = nil) {
            self.protocolName = protocolName
            self.endpoint = endpoint
            self.exportInterval = exportInterval
        }
    }

    public struct Tracing: Sendable, Equatable {
        /// grpc, http/protobuf, stdout or none.
        public var protocolName: String = "none"
        public var endpoint: String = ""
        /// 0 … 1.
        public var samplingRate: Double = 0

        public init() {}
    }

    /// Whether each request is logged.
    public var enableRequestLog = false
    /// The Go template each log line is rendered from.
    public var requestLogTemplate = ObservabilityConfig.defaultRequestLogTemplate
    /// Whether probe requests are logged too.
    public var enableProbeRequestLog = false
    /// The compiled template when request logging is on (nil otherwise).
    public var requestLog: RequestLogTemplate?
    public var tracing = Tracing()
    public var metrics = Exporter()
    public var requestMetrics = Exporter()
    /// `enabled` turns on the profiling server.
    public var profiling = "disabled"

    public init() {}

    /// Decodes OBSERVABILITY_CONFIG over Knative's defaults (absent fields keep them) and checks it; the
    /// request-log template is compiled here so a bad one stops startup with its error.
    public static func decode(_ json: String, variable: String = "OBSERVABILITY_CONFIG") throws(ConfigurationError) -> ObservabilityConfig {
        var config = ObservabilityConfig()
        var issues: [ConfigurationIssue] = []
        func issue(_ reason: String) {
            issues.append(ConfigurationIssue(variable: variable, value: json, reason: reason))
        }
        if !json.isEmpty {
            let raw: RawObservability
            do {
                raw = try RawObservability(json)
            } catch {
                throw ConfigurationError(invalid: [
                    ConfigurationIssue(variable: variable, value: json, reason: "is not valid observability JSON: \(error)")
                ])
            }
            if let value = raw.enableRequestLog { config.enableRequestLog = value }
            if let value = raw.requestLogTemplate { config.requestLogTemplate = value }
            if let value = raw.enableProbeRequestLog { config.enableProbeRequestLog = value }
            if let tracing = raw.tracing {
                config.tracing.protocolName = tracing.protocol ?? "none"
                config.tracing.endpoint = tracing.endpoint ?? ""
                config.tracing.samplingRate = tracing.samplingRate ?? 0
            }
            if let metrics = raw.metrics { config.metrics = metrics.exporter }
            if let metrics = raw.requestMetrics { config.requestMetrics = metrics.exporter }
            if let profiling = raw.profiling { config.profiling = profiling }
        }

        switch config.tracing.protocolName {
        case "grpc", "http/protobuf":
            if config.tracing.endpoint.isEmpty { issue("tracing.endpoint must be set for protocol \"\(config.tracing.protocolName)\"") }
        case "none", "stdout":
            if !config.tracing.endpoint.isEmpty { issue("tracing.endpoint must not be set for protocol \"\(config.tracing.protocolName)\"") }
        default:
            issue("tracing.protocol \"\(config.tracing.protocolName)\" is not one of grpc, http/protobuf, stdout, none")
        }
        if !(0...1).contains(config.tracing.samplingRate) {
            issue("tracing.samplingRate must be between 0 and 1, got \(config.tracing.samplingRate)")
        }
        for (name, exporter) in [("metrics", config.metrics), ("requestMetrics", config.requestMetrics)] {
            switch exporter.protocolName {
            case "grpc", "http/protobuf":
                if exporter.endpoint.isEmpty { issue("\(name).endpoint must be set for protocol \"\(exporter.protocolName)\"") }
            case "none":
                if !exporter.endpoint.isEmpty { issue("\(name).endpoint must not be set for protocol \"none\"") }
            case "prometheus":
                break
            default:
                issue("\(name).protocol \"\(exporter.protocolName)\" is not one of grpc, http/protobuf, prometheus, none")
            }
            if let interval = exporter.exportInterval, interval < .zero {
                issue("\(name).exportInterval must not be negative")
            }
        }
        if config.profiling != "enabled" && config.profiling != "disabled" {
            issue("runtime.profiling must be \"enabled\" or \"disabled\", got \"\(config.profiling)\"")
        }
        if config.enableRequestLog && !config.requestLogTemplate.isEmpty {
            do {
                config.requestLog = try RequestLogTemplate(compiling: config.requestLogTemplate)
            } catch {
                issue("requestLogTemplate: \(error)")
            }
        }
        if !issues.isEmpty { throw ConfigurationError(invalid: issues) }
        return config
    }
}

/// The OBSERVABILITY_CONFIG fields Sluice reads (others are ignored, as Knative's decoder does).
private struct RawObservability {
    struct Tracing {
        var `protocol`: String?
        var endpoint: String?
        var samplingRate: Double?
    }

    struct Metrics {
        var `protocol`: String?
        var endpoint: String?
        /// Go's time.Duration: nanoseconds.
        var exportInterval: Int64?

        init(_ fields: JSONObjectReader) throws(JSONFieldError) {
            self.protocol = try fields.string("protocol")
            endpoint = try fields.string("endpoint")
            exportInterval = try fields.int64("exportInterval")
        }

        var exporter: ObservabilityConfig.Exporter {
            .init(protocolName: self.protocol ?? "none", endpoint: endpoint ?? "", exportInterval: exportInterval.map { .nanoseconds($0) })
        }
    }

    var tracing: Tracing?
    var metrics: Metrics?
    var requestMetrics: Metrics?
    var profiling: String?
    var enableRequestLog: Bool?
    var requestLogTemplate: String?
    var enableProbeRequestLog: Bool?

    init(_ json: String) throws(JSONDecodeError) {
        let root: JSONNode
        do { root = try JSONParser.parse(json) } catch { throw .syntax(error) }
        do throws(JSONFieldError) {
            let fields = try JSONObjectReader(root, path: "")
            if let tracingFields = try fields.object("tracing") {
                tracing = Tracing(protocol: try tracingFields.string("protocol"), endpoint: try tracingFields.string("endpoint"),
                                  samplingRate: try tracingFields.double("samplingRate"))
            }
            metrics = try fields.object("metrics").map { fields throws(JSONFieldError) in try Metrics(fields) }
            requestMetrics = try fields.object("requestMetrics").map { fields throws(JSONFieldError) in try Metrics(fields) }
            profiling = try fields.object("runtime")?.string("profiling")
            enableRequestLog = try fields.bool("enableRequestLog")
            requestLogTemplate = try fields.string("requestLogTemplate")
            enableProbeRequestLog = try fields.bool("enableProbeRequestLog")
        } catch { throw .field(error) }
    }
}

/// The log level queue-proxy runs at, from Knative's zap logging config and its per-component override.
public enum ServingLogLevel {
    /// zap's level names mapped onto swift-log.
    public static func parse(_ name: String) -> Logger.Level? {
        switch name.lowercased() {
        case "debug": .debug
        case "info", "": .info
        case "warn", "warning": .warning
        case "error": .error
        case "dpanic", "panic", "fatal": .critical
        default: nil
        }
    }

    /// SERVING_LOGGING_LEVEL wins when set; otherwise the `level` of the zap JSON in SERVING_LOGGING_CONFIG;
    /// otherwise info.
    static func resolve(config: String, level: String, reader: inout EnvironmentReader) -> Logger.Level {
        var resolved = Logger.Level.info
        if !config.isEmpty {
            do throws(JSONDecodeError) {
                let root: JSONNode
                do { root = try JSONParser.parse(config) } catch { throw .syntax(error) }
                let level: String?
                do { level = try JSONObjectReader(root, path: "").string("level") } catch { throw .field(error) }
                if let name = level {
                    if let parsed = parse(name) {
                        resolved = parsed
                    } else {
                        reader.report("SERVING_LOGGING_CONFIG", config, "level \"\(name)\" is not one of debug, info, warn, error, dpanic, panic, fatal")
                    }
                }
            } catch {
                reader.report("SERVING_LOGGING_CONFIG", config, "is not a zap logging config in JSON: \(error)")
            }
        }
        if !level.isEmpty {
            if let parsed = parse(level) {
                resolved = parsed
            } else {
                reader.report("SERVING_LOGGING_LEVEL", level, "must be one of debug, info, warn, error, dpanic, panic, fatal")
            }
        }
        return resolved
    }
}
