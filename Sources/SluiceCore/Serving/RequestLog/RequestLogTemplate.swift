// Knative's request-log template (Go text/template syntax) compiled once at startup into a small program.
// Supports what Knative's default template and common user templates use: fields of .Request, .Response,
// .Revision and .TraceID, `index`/`.Request.Header.Get`, js/html/urlquery/print/printf/println/len,
// comparisons and and/or/not, if/else/with/end, comments, trim markers, `$` for the root. Anything else is
// a compile error naming the construct and its position. Serving layer, startup-time code.

/// A template that did not compile: what is wrong and where (line:column in the template).
public struct RequestLogTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String {
        "template:\(line):\(column): \(message)"
    }
}

/// The compiled template. Immutable and shareable between event loops; rendering needs a per-loop
/// `RequestLogRenderer` (its scratch buffers make rendering allocation-free once warm).
public struct RequestLogTemplate: Sendable {
    let nodes: [TemplateNode]
    public let source: String

    /// Compiles `source`. Like Knative, a newline is added when the template does not end with one, so
    /// every request is one line.
    public init(compiling source: String) throws(RequestLogTemplateError) {
        self.source = source
        var text = Array(source.utf8)
        if text.last != UInt8(ascii: "\n") { text.append(UInt8(ascii: "\n")) }
        var parser = TemplateParser(text)
        nodes = try parser.parseAll()
    }
}

// MARK: - Program

enum RequestField: Sendable, Equatable {
    case method, requestURI, proto, protoMajor, protoMinor, host, remoteAddr, contentLength
    case userAgent, referer, header
    case url, urlPath, urlRawQuery, urlHost, urlScheme, urlFragment
}

enum ResponseField: Sendable, Equatable {
    case code, size, latency
}

enum RevisionField: Sendable, Equatable {
    case name, namespace, service, configuration, podName, podIP
}

enum TemplateField: Sendable, Equatable {
    case request(RequestField)
    case response(ResponseField)
    case revision(RevisionField)
    case traceID
}

enum TemplateFunction: String, Sendable, CaseIterable {
    case and, or, not, eq, ne, lt, le, gt, ge, len, index, js, html, urlquery, print, printf, println
}

indirect enum TemplateOperand: Sendable {
    case field(TemplateField)
    /// `.` inside `with`: the value the `with` bound.
    case dot
    case text([UInt8])
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case nilValue
    case pipeline(TemplatePipeline)
}

enum TemplateCommand: Sendable {
    case operand(TemplateOperand)
    case call(TemplateFunction, [TemplateOperand])
    /// `.Request.Header.Get "Name"`.
    case headerGet([TemplateOperand])
}

struct TemplatePipeline: Sendable {
    var commands: [TemplateCommand]
}

enum TemplateNode: Sendable {
    case text([UInt8])
    case output(TemplatePipeline)
    /// if/with chains: each branch's pipeline is tested in order; `binds` branches set dot for their body.
    case branches([(pipeline: TemplatePipeline, binds: Bool, body: [TemplateNode])], otherwise: [TemplateNode])
}

// MARK: - Parser

private enum Token: Equatable {
    case field([String])        // .A.B (empty list: ".")
    case rootField([String])    // $ or $.A.B
    case identifier(String)
    case string([UInt8])
    case integer(Int64)
    case float(Double)
    case pipe
    case leftParen
    case rightParen
    case end
}

struct TemplateParser {
    private let text: [UInt8]
    private var position = 0
    /// Nesting of `with` bodies: inside one, `.` is the bound value and `.Field` is not allowed.
    private var withDepth = 0

    init(_ text: [UInt8]) {
        self.text = text
    }

    private enum Stop {
        case end
        case elseBranch(kind: String?, pipeline: TemplatePipeline?)
        case eof
    }

    mutating func parseAll() throws(RequestLogTemplateError) -> [TemplateNode] {
        let (nodes, stop, where_) = try parseList()
        switch stop {
        case .eof: return nodes
        case .end: throw error(at: where_, "unexpected {{end}}")
        case .elseBranch: throw error(at: where_, "unexpected {{else}}")
        }
    }

    private mutating func parseList() throws(RequestLogTemplateError) -> ([TemplateNode], Stop, Int) {
        var nodes: [TemplateNode] = []
        while position < text.count {
            guard let open = find("{{", from: position) else {
                nodes.append(.text(Array(text[position...])))
                position = text.count
                break
            }
            var literalEnd = open
            var actionStart = open + 2
            if actionStart + 1 < text.count, text[actionStart] == UInt8(ascii: "-"), isSpace(text[actionStart + 1]) {
                actionStart += 1
                while literalEnd > position, isSpace(text[literalEnd - 1]) { literalEnd -= 1 }
            }
            if literalEnd > position { nodes.append(.text(Array(text[position..<literalEnd]))) }
            position = actionStart
            let actionOffset = open
            skipSpaces()
            // Comment: {{/* ... */}}
            if hasPrefix("/*") {
                guard let close = find("*/", from: position + 2) else { throw error(at: actionOffset, "unclosed comment") }
                position = close + 2
                try closeAction(at: actionOffset)
                continue
            }
            if case .identifier(let word) = try peekToken() {
                switch word {
                case "end":
                    _ = try nextToken()
                    try closeAction(at: actionOffset)
                    return (nodes, .end, actionOffset)
                case "else":
                    _ = try nextToken()
                    if case .identifier(let kind) = try peekToken(), kind == "if" || kind == "with" {
                        _ = try nextToken()
                        if kind == "with" { withDepth += 1 }
                        let pipeline = try parsePipeline(at: actionOffset)
                        if kind == "with" { withDepth -= 1 }
                        try closeAction(at: actionOffset)
                        return (nodes, .elseBranch(kind: kind, pipeline: pipeline), actionOffset)
                    }
                    try closeAction(at: actionOffset)
                    return (nodes, .elseBranch(kind: nil, pipeline: nil), actionOffset)
                case "if", "with":
                    _ = try nextToken()
                    nodes.append(try parseBranches(first: word, at: actionOffset))
                    continue
                case "range", "define", "template", "block", "break", "continue":
                    throw error(at: actionOffset, "{{\(word)}} is not supported in request log templates")
                default:
                    break
                }
            }
            let pipeline = try parsePipeline(at: actionOffset)
            try closeAction(at: actionOffset)
            try checkPrintable(pipeline, at: actionOffset)
            nodes.append(.output(pipeline))
        }
        return (nodes, .eof, position)
    }

    private mutating func parseBranches(first kind: String, at offset: Int) throws(RequestLogTemplateError) -> TemplateNode {
        var branches: [(pipeline: TemplatePipeline, binds: Bool, body: [TemplateNode])] = []
        var binds = kind == "with"
        if binds { withDepth += 1 }
        var pipeline = try parsePipeline(at: offset)
        try closeAction(at: offset)
        while true {
            let (body, stop, stopOffset) = try parseList()
            if binds { withDepth -= 1 }
            branches.append((pipeline, binds, body))
            switch stop {
            case .eof:
                throw error(at: offset, "{{\(kind)}} without {{end}}")
            case .end:
                return .branches(branches, otherwise: [])
            case .elseBranch(let nextKind, let nextPipeline):
                if let nextKind, let nextPipeline {
                    binds = nextKind == "with"
                    if binds { withDepth += 1 }
                    pipeline = nextPipeline
                    continue
                }
                let (otherwise, finalStop, finalOffset) = try parseList()
                switch finalStop {
                case .end: return .branches(branches, otherwise: otherwise)
                case .eof: throw error(at: stopOffset, "{{else}} without {{end}}")
                case .elseBranch: throw error(at: finalOffset, "a second {{else}} in one {{\(kind)}}")
                }
            }
        }
    }

    private mutating func closeAction(at offset: Int) throws(RequestLogTemplateError) {
        skipSpaces()
        if hasPrefix("-}}"), position > 0, isSpace(text[position - 1]) {
            position += 3
            while position < text.count, isSpace(text[position]) { position += 1 }
            return
        }
        guard hasPrefix("}}") else {
            if position >= text.count || find("}}", from: position) == nil { throw error(at: offset, "unclosed action") }
            throw error(at: position, position >= text.count ? "unclosed action" : "unexpected \"\(String(decoding: text[position..<min(position + 1, text.count)], as: UTF8.self))\" in action")
        }
        position += 2
    }

    // MARK: Pipelines

    private mutating func parsePipeline(at offset: Int) throws(RequestLogTemplateError) -> TemplatePipeline {
        var commands: [TemplateCommand] = []
        while true {
            skipSpaces()
            let commandStart = position
            let command = try parseCommand(at: offset)
            if !commands.isEmpty, case .operand = command {
                throw error(at: commandStart, "non executable command in pipeline stage \(commands.count + 1)")
            }
            commands.append(command)
            if try peekToken() == .pipe {
                _ = try nextToken()
                continue
            }
            break
        }
        if commands.isEmpty { throw error(at: offset, "missing value in action") }
        return TemplatePipeline(commands: commands)
    }

    private mutating func parseCommand(at offset: Int) throws(RequestLogTemplateError) -> TemplateCommand {
        let start = position
        let first = try nextToken()
        switch first {
        case .identifier(let name):
            switch name {
            case "true": return .operand(.boolean(true))
            case "false": return .operand(.boolean(false))
            case "nil": return .operand(.nilValue)
            default: break
            }
            guard let function = TemplateFunction(rawValue: name) else {
                throw error(at: start, "function \"\(name)\" not defined")
            }
            return .call(function, try parseArguments(at: offset))
        case .field(let path):
            if path == ["Request", "Header", "Get"] {
                let arguments = try parseArguments(at: offset)
                return .headerGet(arguments)
            }
            let operand = try resolveField(path, rooted: false, at: start)
            if try startsOperand() {
                throw error(at: position, "can't give argument to non-function \(render(path))")
            }
            return .operand(operand)
        case .rootField(let path):
            if path == ["Request", "Header", "Get"] {
                return .headerGet(try parseArguments(at: offset))
            }
            let operand = try resolveField(path, rooted: true, at: start)
            if try startsOperand() {
                throw error(at: position, "can't give argument to non-function $.\(path.joined(separator: "."))")
            }
            return .operand(operand)
        default:
            position = start
            let operand = try parseOperand()
            if try startsOperand() {
                throw error(at: position, "can't give argument to a non-function value")
            }
            return .operand(operand)
        }
    }

    private mutating func startsOperand() throws(RequestLogTemplateError) -> Bool {
        switch try peekToken() {
        case .pipe, .rightParen, .end: return false
        default: return true
        }
    }

    private mutating func parseArguments(at offset: Int) throws(RequestLogTemplateError) -> [TemplateOperand] {
        var arguments: [TemplateOperand] = []
        while try startsOperand() {
            arguments.append(try parseOperand())
        }
        return arguments
    }

    private mutating func parseOperand() throws(RequestLogTemplateError) -> TemplateOperand {
        let start = position
        switch try nextToken() {
        case .field(let path):
            return try resolveField(path, rooted: false, at: start)
        case .rootField(let path):
            return try resolveField(path, rooted: true, at: start)
        case .string(let bytes):
            return .text(bytes)
        case .integer(let value):
            return .integer(value)
        case .float(let value):
            return .float(value)
        case .identifier("true"):
            return .boolean(true)
        case .identifier("false"):
            return .boolean(false)
        case .identifier("nil"):
            return .nilValue
        case .identifier(let name):
            if TemplateFunction(rawValue: name) != nil {
                throw error(at: start, "function \"\(name)\" used as an argument; wrap the call in parentheses")
            }
            throw error(at: start, "function \"\(name)\" not defined")
        case .leftParen:
            let inner = try parsePipeline(at: start)
            guard try nextToken() == .rightParen else { throw error(at: position, "unclosed left paren") }
            return .pipeline(inner)
        case .rightParen:
            throw error(at: start, "unexpected right paren")
        case .pipe:
            throw error(at: start, "unexpected \"|\"")
        case .end:
            throw error(at: start, "missing value")
        }
    }

    private func render(_ path: [String]) -> String {
        "." + path.joined(separator: ".")
    }

    private func resolveField(_ path: [String], rooted: Bool, at offset: Int) throws(RequestLogTemplateError) -> TemplateOperand {
        if path.isEmpty {
            if rooted { throw error(at: offset, "printing the whole input ($) is not supported; name a field") }
            if withDepth == 0 { throw error(at: offset, "printing the whole input (.) is not supported; name a field") }
            return .dot
        }
        if withDepth > 0 && !rooted {
            throw error(at: offset, "\(render(path)) inside {{with}}: use $\(render(path)) to reach the request log input")
        }
        let field: TemplateField
        switch path.first {
        case "Request":
            switch Array(path.dropFirst()) {
            case ["Method"]: field = .request(.method)
            case ["RequestURI"]: field = .request(.requestURI)
            case ["Proto"]: field = .request(.proto)
            case ["ProtoMajor"]: field = .request(.protoMajor)
            case ["ProtoMinor"]: field = .request(.protoMinor)
            case ["Host"]: field = .request(.host)
            case ["RemoteAddr"]: field = .request(.remoteAddr)
            case ["ContentLength"]: field = .request(.contentLength)
            case ["UserAgent"]: field = .request(.userAgent)
            case ["Referer"]: field = .request(.referer)
            case ["Header"]: field = .request(.header)
            case ["URL"]: field = .request(.url)
            case ["URL", "Path"]: field = .request(.urlPath)
            case ["URL", "RawQuery"]: field = .request(.urlRawQuery)
            case ["URL", "Host"]: field = .request(.urlHost)
            case ["URL", "Scheme"]: field = .request(.urlScheme)
            case ["URL", "Fragment"]: field = .request(.urlFragment)
            default: throw error(at: offset, "can't evaluate field \(render(path)): not a request field Sluice provides")
            }
        case "Response":
            switch Array(path.dropFirst()) {
            case ["Code"]: field = .response(.code)
            case ["Size"]: field = .response(.size)
            case ["Latency"]: field = .response(.latency)
            default: throw error(at: offset, "can't evaluate field \(render(path)): .Response has Code, Size and Latency")
            }
        case "Revision":
            switch Array(path.dropFirst()) {
            case ["Name"]: field = .revision(.name)
            case ["Namespace"]: field = .revision(.namespace)
            case ["Service"]: field = .revision(.service)
            case ["Configuration"]: field = .revision(.configuration)
            case ["PodName"]: field = .revision(.podName)
            case ["PodIP"]: field = .revision(.podIP)
            default:
                throw error(at: offset, "can't evaluate field \(render(path)): .Revision has Name, Namespace, Service, Configuration, PodName and PodIP")
            }
        case "TraceID" where path.count == 1:
            field = .traceID
        default:
            throw error(at: offset, "can't evaluate field \(render(path)): the input has Request, Response, Revision and TraceID")
        }
        return .field(field)
    }

    /// The whole header map cannot be printed (Go would print its internal form).
    private func checkPrintable(_ pipeline: TemplatePipeline, at offset: Int) throws(RequestLogTemplateError) {
        if case .operand(.field(.request(.header))) = pipeline.commands.last {
            throw error(at: offset, "printing .Request.Header as a whole is not supported; use index .Request.Header \"Name\" or .Request.Header.Get \"Name\"")
        }
    }

    // MARK: Lexer

    private mutating func peekToken() throws(RequestLogTemplateError) -> Token {
        let saved = position
        let token = try nextToken()
        position = saved
        return token
    }

    private mutating func nextToken() throws(RequestLogTemplateError) -> Token {
        skipSpaces()
        guard position < text.count else { return .end }
        if hasPrefix("}}") || (hasPrefix("-}}") && position > 0 && isSpace(text[position - 1])) { return .end }
        let start = position
        let byte = text[position]
        switch byte {
        case UInt8(ascii: "|"):
            position += 1
            return .pipe
        case UInt8(ascii: "("):
            position += 1
            return .leftParen
        case UInt8(ascii: ")"):
            position += 1
            return .rightParen
        case UInt8(ascii: "."):
            if position + 1 < text.count, isDigit(text[position + 1]) { return try number(start) }
            return .field(try fieldPath())
        case UInt8(ascii: "$"):
            position += 1
            if position < text.count, isIdentifierByte(text[position]) {
                throw error(at: start, "template variables ($name) are not supported")
            }
            if position < text.count, text[position] == UInt8(ascii: ".") {
                return .rootField(try fieldPath())
            }
            return .rootField([])
        case UInt8(ascii: "\""):
            return .string(try quotedString(start))
        case UInt8(ascii: "`"):
            guard let close = text[(position + 1)...].firstIndex(of: UInt8(ascii: "`")) else {
                throw error(at: start, "unterminated raw quoted string")
            }
            position = close + 1
            return .string(Array(text[(start + 1)..<close]))
        case UInt8(ascii: "'"):
            throw error(at: start, "character constants are not supported; use a string")
        case UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try number(start)
        case UInt8(ascii: ":"), UInt8(ascii: "="):
            throw error(at: start, "variable declarations are not supported")
        default:
            guard isIdentifierByte(byte) else {
                throw error(at: start, "unexpected \"\(String(decoding: [byte], as: UTF8.self))\" in action")
            }
            while position < text.count, isIdentifierByte(text[position]) || isDigit(text[position]) { position += 1 }
            return .identifier(String(decoding: text[start..<position], as: UTF8.self))
        }
    }

    private mutating func fieldPath() throws(RequestLogTemplateError) -> [String] {
        var path: [String] = []
        while position < text.count, text[position] == UInt8(ascii: ".") {
            position += 1
            let start = position
            while position < text.count, isIdentifierByte(text[position]) || isDigit(text[position]) { position += 1 }
            if start == position {
                if path.isEmpty { return [] }
                throw error(at: start, "bad field name after \".\"")
            }
            path.append(String(decoding: text[start..<position], as: UTF8.self))
        }
        return path
    }

    private mutating func number(_ start: Int) throws(RequestLogTemplateError) -> Token {
        while position < text.count,
            isDigit(text[position]) || isIdentifierByte(text[position])
                || [UInt8(ascii: "."), UInt8(ascii: "+"), UInt8(ascii: "-")].contains(text[position])
        {
            if position > start, text[position] == UInt8(ascii: "-") || text[position] == UInt8(ascii: "+"),
                !(text[position - 1] == UInt8(ascii: "e") || text[position - 1] == UInt8(ascii: "E"))
            {
                break
            }
            position += 1
        }
        let literal = String(decoding: text[start..<position], as: UTF8.self)
        if let value = Int64(literal) { return .integer(value) }
        if literal.hasPrefix("0x") || literal.hasPrefix("0X"), let value = Int64(literal.dropFirst(2), radix: 16) { return .integer(value) }
        if let value = Double(literal), value.isFinite { return .float(value) }
        throw error(at: start, "bad number syntax: \"\(literal)\"")
    }

    private mutating func quotedString(_ start: Int) throws(RequestLogTemplateError) -> [UInt8] {
        var bytes: [UInt8] = []
        position += 1
        while position < text.count {
            let byte = text[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return bytes
            case UInt8(ascii: "\n"):
                throw error(at: start, "unterminated quoted string")
            case UInt8(ascii: "\\"):
                guard position < text.count else { break }
                let escaped = text[position]
                position += 1
                switch escaped {
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "'"): bytes.append(escaped)
                case UInt8(ascii: "a"): bytes.append(0x07)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0C)
                case UInt8(ascii: "v"): bytes.append(0x0B)
                case UInt8(ascii: "x"):
                    guard position + 2 <= text.count,
                        let value = UInt8(String(decoding: text[position..<(position + 2)], as: UTF8.self), radix: 16)
                    else { throw error(at: position, "bad \\x escape in string") }
                    bytes.append(value)
                    position += 2
                case UInt8(ascii: "u"):
                    guard position + 4 <= text.count,
                        let value = UInt32(String(decoding: text[position..<(position + 4)], as: UTF8.self), radix: 16),
                        let scalar = Unicode.Scalar(value)
                    else { throw error(at: position, "bad \\u escape in string") }
                    bytes.append(contentsOf: String(Character(scalar)).utf8)
                    position += 4
                default:
                    throw error(at: position - 1, "unknown escape sequence in string")
                }
            default:
                bytes.append(byte)
            }
        }
        throw error(at: start, "unterminated quoted string")
    }

    // MARK: Helpers

    private func find(_ needle: String, from start: Int) -> Int? {
        let pattern = Array(needle.utf8)
        guard pattern.count <= text.count else { return nil }
        var index = start
        while index + pattern.count <= text.count {
            if text[index] == pattern[0] && text[index..<(index + pattern.count)].elementsEqual(pattern) { return index }
            index += 1
        }
        return nil
    }

    private func hasPrefix(_ prefix: String) -> Bool {
        position < text.count && text[position...].starts(with: prefix.utf8)
    }

    private mutating func skipSpaces() {
        while position < text.count, isSpace(text[position]) { position += 1 }
    }

    private func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private func isIdentifierByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || byte == UInt8(ascii: "_") || byte >= 0x80
    }

    private func error(at offset: Int, _ message: String) -> RequestLogTemplateError {
        var line = 1
        var column = 1
        for byte in text[..<min(offset, text.count)] {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return RequestLogTemplateError(line: line, column: column, message: message)
    }
}
