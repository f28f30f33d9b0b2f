// The user container's readiness probe as Knative hands it to queue-proxy in SERVING_READINESS_PROBE: the
// JSON of a Kubernetes Probe (or a list of them with multi-container probing), decoded into checked value
// types. Serving layer, startup-time only.
/// One readiness probe queue-proxy runs against a container of its pod.
public struct ReadinessProbeSpec: Sendable, Equatable {
    public enum Scheme: String, Sendable, Equatable {
        case http = "HTTP"
        case https = "HTTPS"
    }

    public struct HTTPGet: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var path: String
        public var scheme: Scheme
        public var headers: [HTTPHeader]

        public init(host: String = "127.0.0.1", port: Int, path: String = "/", scheme: Scheme = .http, headers: [HTTPHeader] = []) {
            self.host = host
            self.port = port
            self.path = path
            self.scheme = scheme
            self.headers = headers
        }

        /// The request target Knative sends: the path with exactly one leading slash.
        public var requestTarget: String {
            var trimmed = Substring(path)
            if trimmed.first == "/" { trimmed = trimmed.dropFirst() }
            return "/" + trimmed
        }
    }

    public struct HTTPHeader: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public enum Action: Sendable, Equatable {
        /// GET the URL; 200–399 is ready.
        case httpGet(HTTPGet)
        /// A TCP connection can be opened.
        case tcpSocket(host: String, port: Int)
        /// The gRPC health service answers SERVING (on 127.0.0.1).
        case grpc(port: Int, service: String?)
    }

    public var action: Action
    public var initialDelaySeconds: Int
    /// 0 selects Knative's aggressive mode: retry every 50 ms until ready, up to 10 s per check.
    public var periodSeconds: Int
    public var timeoutSeconds: Int
    public var successThreshold: Int
    public var failureThreshold: Int

    public init(
        action: Action, initialDelaySeconds: Int = 0, periodSeconds: Int = 0, timeoutSeconds: Int = 0,
        successThreshold: Int = 1, failureThreshold: Int = 3
    ) {
        self.action = action
        self.initialDelaySeconds = initialDelaySeconds
        self.periodSeconds = periodSeconds
        self.timeoutSeconds = timeoutSeconds
        self.successThreshold = successThreshold
        self.failureThreshold = failureThreshold
    }

    /// Knative's aggressive probing (period 0).
    public var isAggressive: Bool { periodSeconds == 0 }

    /// Time one attempt may take: 100 ms when aggressive, else timeoutSeconds (at least 1 s, the
    /// Kubernetes default, which Knative's reconciler also enforces).
    public var attemptTimeout: Duration {
        isAggressive ? .milliseconds(100) : .seconds(max(timeoutSeconds, 1))
    }

    /// Consecutive successes needed (Kubernetes treats 0 as its default, 1).
    public var requiredSuccesses: Int { max(successThreshold, 1) }

    /// Consecutive failures that make a ready container unready (Kubernetes default 3).
    public var requiredFailures: Int { failureThreshold > 0 ? failureThreshold : 3 }

    /// The probe's target, for logs and error messages.
    public var targetDescription: String {
        switch action {
        case .httpGet(let get):
            "\(get.scheme == .https ? "https" : "http")://\(get.host.contains(":") ? "[\(get.host)]" : get.host):\(get.port)\(get.requestTarget)"
        case .tcpSocket(let host, let port):
            "tcp \(host):\(port)"
        case .grpc(let port, let service):
            "grpc 127.0.0.1:\(port)" + (service.map { " service \($0)" } ?? "")
        }
    }
}

extension ReadinessProbeSpec {
    /// Decodes SERVING_READINESS_PROBE: one Probe object, or a JSON list of them (multi-container
    /// probing; `null` entries are skipped). Errors name the variable, the JSON path and the problem.
    public static func decodeList(_ json: String, variable: String = "SERVING_READINESS_PROBE") throws(ConfigurationError) -> [ReadinessProbeSpec] {
        let trimmed = json.drop { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        var raws: [(path: String, probe: RawProbe)] = []
        do throws(JSONDecodeError) {
            let root: JSONNode
            do { root = try JSONParser.parse(json) } catch { throw .syntax(error) }
            do throws(JSONFieldError) {
                if trimmed.first == "[" {
                    guard case .array(let list) = root else {
                        throw JSONFieldError(path: "", message: "expected a list, got \(root.typeName)")
                    }
                    for (index, element) in list.enumerated() where element != .null {
                        raws.append(("[\(index)]", try RawProbe(element, path: "[\(index)]")))
                    }
                } else {
                    raws.append(("", try RawProbe(root, path: "")))
                }
            } catch { throw .field(error) }
        } catch {
            throw ConfigurationError(invalid: [
                ConfigurationIssue(variable: variable, value: json, reason: "is not a Kubernetes Probe in JSON: \(error)")
            ])
        }
        var issues: [ConfigurationIssue] = []
        var specs: [ReadinessProbeSpec] = []
        for (path, raw) in raws {
            var problems: [String] = []
            if let spec = raw.validated(path: path, problems: &problems) {
                specs.append(spec)
            }
            issues += problems.map { ConfigurationIssue(variable: variable, value: json, reason: $0) }
        }
        if !issues.isEmpty { throw ConfigurationError(invalid: issues) }
        return specs
    }
}

/// Kubernetes' IntOrString for ports.
private enum RawPort {
    case number(Int)
    case name(String)

    init?(_ fields: JSONObjectReader, _ key: String) throws(JSONFieldError) {
        switch fields.node(key) {
        case nil: return nil
        case .string(let name)?: self = .name(name)
        case .number?: self = .number(try fields.int(key) ?? 0)
        case let other?:
            throw JSONFieldError(path: "\(fields.path).\(key)", message: "expected a number or a string, got \(other.typeName)")
        }
    }
}

/// The Probe fields queue-proxy reads; the others (terminationGracePeriodSeconds, …) are ignored.
private struct RawProbe {
    struct HTTPGet {
        var path: String?
        var port: RawPort?
        var host: String?
        var scheme: String?
        var httpHeaders: [Header]?
    }

    struct Header {
        var name: String
        var value: String
    }

    struct TCPSocket {
        var port: RawPort?
        var host: String?
    }

    struct GRPC {
        var port: Int?
        var service: String?
    }

    var httpGet: HTTPGet?
    var tcpSocket: TCPSocket?
    var grpc: GRPC?
    var exec: Bool = false
    var initialDelaySeconds: Int?
    var timeoutSeconds: Int?
    var periodSeconds: Int?
    var successThreshold: Int?
    var failureThreshold: Int?

    init(_ node: JSONNode, path: String) throws(JSONFieldError) {
        let probe = try JSONObjectReader(node, path: path)
        if let get = try probe.object("httpGet") {
            var headers: [Header]?
            if let list = try get.array("httpHeaders") {
                headers = []
                for (elementPath, element) in list {
                    let header = try JSONObjectReader(element, path: elementPath)
                    guard let name = try header.string("name") else {
                        throw JSONFieldError(path: "\(elementPath).name", message: "missing")
                    }
                    guard let value = try header.string("value") else {
                        throw JSONFieldError(path: "\(elementPath).value", message: "missing")
                    }
                    headers?.append(Header(name: name, value: value))
                }
            }
            httpGet = HTTPGet(path: try get.string("path"), port: try RawPort(get, "port"), host: try get.string("host"),
                              scheme: try get.string("scheme"), httpHeaders: headers)
        }
        if let socket = try probe.object("tcpSocket") {
            tcpSocket = TCPSocket(port: try RawPort(socket, "port"), host: try socket.string("host"))
        }
        if let grpcFields = try probe.object("grpc") {
            grpc = GRPC(port: try grpcFields.int("port"), service: try grpcFields.string("service"))
        }
        exec = try probe.object("exec") != nil
        initialDelaySeconds = try probe.int("initialDelaySeconds")
        timeoutSeconds = try probe.int("timeoutSeconds")
        periodSeconds = try probe.int("periodSeconds")
        successThreshold = try probe.int("successThreshold")
        failureThreshold = try probe.int("failureThreshold")
    }

    func validated(path: String, problems: inout [String]) -> ReadinessProbeSpec? {
        let handlers = [httpGet != nil, tcpSocket != nil, grpc != nil, exec].filter { $0 }.count
        if handlers == 0 {
            problems.append("\(path.isEmpty ? "probe" : path): no handler: expected one of httpGet, tcpSocket or grpc")
            return nil
        }
        if handlers > 1 {
            problems.append("\(path.isEmpty ? "probe" : path): more than one handler; a probe has exactly one of httpGet, tcpSocket or grpc")
            return nil
        }
        func nonNegative(_ value: Int?, _ field: String, default defaultValue: Int) -> Int {
            guard let value else { return defaultValue }
            if value < 0 { problems.append("\(path).\(field): must be 0 or more, got \(value)") }
            return max(value, 0)
        }
        let initialDelay = nonNegative(initialDelaySeconds, "initialDelaySeconds", default: 0)
        let period = nonNegative(periodSeconds, "periodSeconds", default: 0)
        let timeout = nonNegative(timeoutSeconds, "timeoutSeconds", default: 0)
        let successes = nonNegative(successThreshold, "successThreshold", default: 1)
        let failures = nonNegative(failureThreshold, "failureThreshold", default: 3)

        func port(_ raw: RawPort?, _ field: String) -> Int? {
            switch raw {
            case nil:
                problems.append("\(path).\(field): missing; the port must be given as a number")
                return nil
            case .number(let number):
                guard (1...65535).contains(number) else {
                    problems.append("\(path).\(field): must be between 1 and 65535, got \(number)")
                    return nil
                }
                return number
            case .name(let name):
                if let number = Int(name), (1...65535).contains(number) { return number }
                problems.append("\(path).\(field): named port \"\(name)\" cannot be resolved by queue-proxy; give the number")
                return nil
            }
        }

        let action: ReadinessProbeSpec.Action
        if let httpGet {
            guard let portNumber = port(httpGet.port, "httpGet.port") else { return nil }
            let scheme: ReadinessProbeSpec.Scheme
            switch (httpGet.scheme ?? "").uppercased() {
            case "", "HTTP": scheme = .http
            case "HTTPS": scheme = .https
            default:
                problems.append("\(path).httpGet.scheme: must be HTTP or HTTPS, got \"\(httpGet.scheme ?? "")\"")
                return nil
            }
            var headers: [ReadinessProbeSpec.HTTPHeader] = []
            for header in httpGet.httpHeaders ?? [] {
                guard !header.name.isEmpty, header.name.utf8.allSatisfy(Self.isTokenByte),
                    !header.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 })
                else {
                    problems.append("\(path).httpGet.httpHeaders: invalid header \"\(header.name)\"")
                    return nil
                }
                headers.append(.init(name: header.name, value: header.value))
            }
            let host = (httpGet.host ?? "").isEmpty ? "127.0.0.1" : httpGet.host ?? "127.0.0.1"
            let requestPath = httpGet.path ?? ""
            if requestPath.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
                problems.append("\(path).httpGet.path: must not contain spaces or control characters")
                return nil
            }
            action = .httpGet(.init(host: host, port: portNumber, path: requestPath.isEmpty ? "/" : requestPath, scheme: scheme, headers: headers))
        } else if let tcpSocket {
            guard let portNumber = port(tcpSocket.port, "tcpSocket.port") else { return nil }
            let host = (tcpSocket.host ?? "").isEmpty ? "127.0.0.1" : tcpSocket.host ?? "127.0.0.1"
            action = .tcpSocket(host: host, port: portNumber)
        } else if let grpc {
            guard let portNumber = grpc.port, (1...65535).contains(portNumber) else {
                problems.append("\(path).grpc.port: must be between 1 and 65535, got \(grpc.port.map(String.init) ?? "nothing")")
                return nil
            }
            action = .grpc(port: portNumber, service: grpc.service)
        } else {
            problems.append("\(path.isEmpty ? "probe" : path).exec: exec probes are not run by queue-proxy (Knative turns them into tcpSocket probes)")
            return nil
        }
        return ReadinessProbeSpec(
            action: action, initialDelaySeconds: initialDelay, periodSeconds: period, timeoutSeconds: timeout,
            successThreshold: successes, failureThreshold: failures)
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
