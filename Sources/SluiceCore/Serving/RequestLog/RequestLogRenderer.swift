// Renders one request-log line from a compiled RequestLogTemplate, with Go's text/template and fmt
// printing rules, into a caller-owned byte buffer. Control characters in everything a request supplies are
// escaped (\u00XX) so a header or URL cannot forge log lines (CVE-2024-45808). Serving layer; one
// renderer per event loop, whose scratch buffers make rendering allocation-free once warm.

/// The request side of a log line: views of the request as the server parsed it.
public struct RequestLogRequest<Headers: RequestHeaderView> {
    public var method: Headers.Bytes
    /// The request target as received (Go's RequestURI).
    public var target: Headers.Bytes
    public var protocolMajor: Int
    public var protocolMinor: Int
    public var headers: Headers
    /// Declared body length; -1 when unknown (chunked), 0 without a body.
    public var contentLength: Int64
    /// The peer as Go prints it: `ip:port`, `[ipv6]:port`.
    public var remoteAddress: [UInt8]

    public init(
        method: Headers.Bytes, target: Headers.Bytes, protocolMajor: Int = 1, protocolMinor: Int = 1,
        headers: Headers, contentLength: Int64, remoteAddress: [UInt8]
    ) {
        self.method = method
        self.target = target
        self.protocolMajor = protocolMajor
        self.protocolMinor = protocolMinor
        self.headers = headers
        self.contentLength = contentLength
        self.remoteAddress = remoteAddress
    }
}

/// The response side of a log line.
public struct RequestLogResponse: Sendable, Equatable {
    public var code: Int
    /// Body bytes sent.
    public var size: Int
    /// Arrival to completion.
    public var latency: Duration

    public init(code: Int, size: Int, latency: Duration) {
        self.code = code
        self.size = size
        self.latency = latency
    }

    /// Seconds as Go's Duration.Seconds() computes them.
    var latencySeconds: Double {
        let nanoseconds = latency.servingNanoseconds
        return Double(nanoseconds / 1_000_000_000) + Double(nanoseconds % 1_000_000_000) / 1e9
    }
}

enum RenderValue {
    case text(Int, Int)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    /// Items `start..<end` of the renderer's item list.
    case list(Int, Int)
    case headerMap
    case none
}

struct RenderFailure: Error {
    var message: String
}

public struct RequestLogRenderer {
    public let template: RequestLogTemplate
    public let revision: RevisionIdentity
    private var arena: [UInt8] = []
    private var items: [(Int, Int)] = []
    private var stack: [RenderValue] = []
    private var dots: [RenderValue] = []

    public init(template: RequestLogTemplate, revision: RevisionIdentity) {
        self.template = template
        self.revision = revision
        arena.reserveCapacity(1024)
        items.reserveCapacity(16)
        stack.reserveCapacity(16)
        dots.reserveCapacity(4)
    }

    /// Appends the line for one request to `output`. A template that fails while running (an index out of
    /// range, an impossible comparison) gives Knative's fallback line instead, so no request goes unlogged.
    public mutating func render<Headers: RequestHeaderView>(
        request: RequestLogRequest<Headers>, response: RequestLogResponse, into output: inout [UInt8]
    ) {
        arena.removeAll(keepingCapacity: true)
        items.removeAll(keepingCapacity: true)
        stack.removeAll(keepingCapacity: true)
        dots.removeAll(keepingCapacity: true)
        let start = output.count
        var context = Context(request: request, response: response)
        do {
            try run(template.nodes, &context, into: &output)
        } catch {
            output.removeSubrange(start...)
            ASCII.append("Invalid request log template: method: ", to: &output)
            GoFormat.appendEscapingControls(request.method, to: &output)
            ASCII.append(", response code: ", to: &output)
            ASCII.appendDecimal(Int64(response.code), to: &output)
            ASCII.append(", latency: ", to: &output)
            GoFormat.appendFloat(response.latencySeconds, to: &output)
            ASCII.append(", url: ", to: &output)
            GoFormat.appendEscapingControls(request.target, to: &output)
            output.append(UInt8(ascii: "\n"))
        }
    }

    struct Context<Headers: RequestHeaderView> {
        var request: RequestLogRequest<Headers>
        var response: RequestLogResponse
    }

    private mutating func run<H>(_ nodes: [TemplateNode], _ context: inout Context<H>, into output: inout [UInt8]) throws(RenderFailure) {
        for node in nodes {
            switch node {
            case .text(let bytes):
                output.append(contentsOf: bytes)
            case .output(let pipeline):
                let mark = arena.count
                let value = try evaluate(pipeline, &context)
                try write(value, escaping: true, into: &output)
                arena.removeSubrange(mark...)
            case .branches(let branches, let otherwise):
                var taken = false
                for branch in branches {
                    let value = try evaluate(branch.pipeline, &context)
                    if truth(value) {
                        if branch.binds { dots.append(value) }
                        try run(branch.body, &context, into: &output)
                        if branch.binds { dots.removeLast() }
                        taken = true
                        break
                    }
                }
                if !taken { try run(otherwise, &context, into: &output) }
            }
        }
    }

    // MARK: Evaluation

    private mutating func evaluate<H>(_ pipeline: TemplatePipeline, _ context: inout Context<H>) throws(RenderFailure) -> RenderValue {
        var previous: RenderValue?
        for command in pipeline.commands {
            previous = try evaluate(command, piped: previous, &context)
        }
        return previous ?? .none
    }

    private mutating func evaluate<H>(_ command: TemplateCommand, piped: RenderValue?, _ context: inout Context<H>) throws(RenderFailure) -> RenderValue {
        switch command {
        case .operand(let operand):
            return try evaluate(operand, &context)
        case .headerGet(let arguments):
            let base = stack.count
            defer { stack.removeSubrange(base...) }
            for argument in arguments { stack.append(try evaluate(argument, &context)) }
            if let piped { stack.append(piped) }
            guard stack.count - base == 1, case .text(let start, let end) = stack[base] else {
                throw RenderFailure(message: ".Request.Header.Get takes one string")
            }
            if let found = context.request.headers.firstValue(named: String(decoding: arena[start..<end], as: UTF8.self)) {
                return appendText(found)
            }
            return appendText(EmptyCollection<UInt8>())
        case .call(let function, let arguments):
            let base = stack.count
            defer { stack.removeSubrange(base...) }
            for argument in arguments { stack.append(try evaluate(argument, &context)) }
            if let piped { stack.append(piped) }
            return try call(function, from: base, &context)
        }
    }

    private mutating func evaluate<H>(_ operand: TemplateOperand, _ context: inout Context<H>) throws(RenderFailure) -> RenderValue {
        switch operand {
        case .field(let field): return value(of: field, &context)
        case .dot: return dots.last ?? .none
        case .text(let bytes): return appendText(bytes)
        case .integer(let value): return .integer(value)
        case .float(let value): return .float(value)
        case .boolean(let value): return .boolean(value)
        case .nilValue: return .none
        case .pipeline(let pipeline): return try evaluate(pipeline, &context)
        }
    }

    private mutating func appendHeader<Headers: RequestHeaderView>(_ name: String, _ headers: Headers) -> RenderValue {
        if let value = headers.firstValue(named: name) { return appendText(value) }
        return appendText(EmptyCollection<UInt8>())
    }

    private mutating func appendText<Bytes: Collection>(_ bytes: Bytes) -> RenderValue where Bytes.Element == UInt8 {
        let start = arena.count
        arena.append(contentsOf: bytes)
        return .text(start, arena.count)
    }

    private mutating func value<H>(of field: TemplateField, _ context: inout Context<H>) -> RenderValue {
        let request = context.request
        switch field {
        case .response(.code): return .integer(Int64(context.response.code))
        case .response(.size): return .integer(Int64(context.response.size))
        case .response(.latency): return .float(context.response.latencySeconds)
        case .revision(.name): return appendText(revision.name.utf8)
        case .revision(.namespace): return appendText(revision.namespace.utf8)
        case .revision(.service): return appendText(revision.service.utf8)
        case .revision(.configuration): return appendText(revision.configuration.utf8)
        case .revision(.podName): return appendText(revision.podName.utf8)
        case .revision(.podIP): return appendText(revision.podIP.utf8)
        case .traceID:
            return TraceContextHeader.withTraceID(in: request.headers) { id in
                id.map { appendText($0) } ?? appendText(EmptyCollection<UInt8>())
            }
        case .request(let requestField):
            switch requestField {
            case .method: return appendText(request.method)
            case .requestURI, .url: return appendText(request.target)
            case .proto:
                let start = arena.count
                ASCII.append("HTTP/", to: &arena)
                ASCII.appendDecimal(Int64(request.protocolMajor), to: &arena)
                arena.append(UInt8(ascii: "."))
                ASCII.appendDecimal(Int64(request.protocolMinor), to: &arena)
                return .text(start, arena.count)
            case .protoMajor: return .integer(Int64(request.protocolMajor))
            case .protoMinor: return .integer(Int64(request.protocolMinor))
            case .contentLength: return .integer(request.contentLength)
            case .remoteAddr: return appendText(request.remoteAddress)
            case .userAgent: return appendHeader("User-Agent", request.headers)
            case .referer: return appendHeader("Referer", request.headers)
            case .header: return .headerMap
            case .host:
                let parts = TargetParts(request.target)
                if !parts.host.isEmpty { return appendText(request.target[offsets: parts.host]) }
                return appendHeader("Host", request.headers)
            case .urlHost:
                let parts = TargetParts(request.target)
                return appendText(request.target[offsets: parts.host])
            case .urlScheme:
                let parts = TargetParts(request.target)
                return appendText(request.target[offsets: parts.scheme])
            case .urlRawQuery:
                let parts = TargetParts(request.target)
                return appendText(request.target[offsets: parts.query])
            case .urlFragment:
                return appendText(EmptyCollection<UInt8>())
            case .urlPath:
                let parts = TargetParts(request.target)
                let start = arena.count
                GoFormat.appendPercentDecoded(request.target[offsets: parts.path], to: &arena)
                return .text(start, arena.count)
            }
        }
    }

    // MARK: Functions

    private mutating func call<H>(_ function: TemplateFunction, from base: Int, _ context: inout Context<H>) throws(RenderFailure) -> RenderValue {
        let count = stack.count - base
        func argument(_ index: Int) -> RenderValue { stack[base + index] }
        switch function {
        case .not:
            guard count == 1 else { throw RenderFailure(message: "wrong number of args for not") }
            return .boolean(!truth(argument(0)))
        case .and, .or:
            guard count >= 1 else { throw RenderFailure(message: "wrong number of args for \(function.rawValue)") }
            for index in 0..<count {
                let value = argument(index)
                if truth(value) != (function == .and) || index == count - 1 { return value }
            }
            return argument(count - 1)
        case .eq:
            guard count >= 2 else { throw RenderFailure(message: "missing argument for comparison") }
            for index in 1..<count where try compare(argument(0), argument(index)) == 0 {
                return .boolean(true)
            }
            return .boolean(false)
        case .ne, .lt, .le, .gt, .ge:
            guard count == 2 else { throw RenderFailure(message: "wrong number of args for \(function.rawValue)") }
            let order = try compare(argument(0), argument(1), ordered: function != .ne)
            switch function {
            case .ne: return .boolean(order != 0)
            case .lt: return .boolean(order < 0)
            case .le: return .boolean(order <= 0)
            case .gt: return .boolean(order > 0)
            default: return .boolean(order >= 0)
            }
        case .len:
            guard count == 1 else { throw RenderFailure(message: "wrong number of args for len") }
            switch argument(0) {
            case .text(let start, let end): return .integer(Int64(end - start))
            case .list(let start, let end): return .integer(Int64(end - start))
            default: throw RenderFailure(message: "len of a value without length")
            }
        case .index:
            guard count >= 1 else { throw RenderFailure(message: "wrong number of args for index") }
            var current = argument(0)
            for index in 1..<max(count, 1) {
                current = try self.index(current, by: argument(index), &context)
            }
            return current
        case .js, .html, .urlquery:
            let (start, end) = try textOfArguments(from: base)
            let outputStart = arena.count
            switch function {
            case .js: GoFormat.appendJSEscaped(from: start..<end, in: &arena)
            case .html: GoFormat.appendHTMLEscaped(from: start..<end, in: &arena)
            default: GoFormat.appendQueryEscaped(from: start..<end, in: &arena)
            }
            return .text(outputStart, arena.count)
        case .print, .println:
            let start = arena.count
            for index in 0..<count {
                let value = argument(index)
                if index > 0 {
                    let previousIsText: Bool
                    if case .text = argument(index - 1) { previousIsText = true } else { previousIsText = false }
                    let currentIsText: Bool
                    if case .text = value { currentIsText = true } else { currentIsText = false }
                    if function == .println || (!previousIsText && !currentIsText) { arena.append(UInt8(ascii: " ")) }
                }
                try appendToArena(value)
            }
            if function == .println { arena.append(UInt8(ascii: "\n")) }
            return .text(start, arena.count)
        case .printf:
            guard count >= 1, case .text(let formatStart, let formatEnd) = argument(0) else {
                throw RenderFailure(message: "printf needs a format string")
            }
            let start = arena.count
            try printf(format: formatStart..<formatEnd, arguments: (base + 1)..<stack.count)
            return .text(start, arena.count)
        }
    }

    private mutating func textOfArguments(from base: Int) throws(RenderFailure) -> (Int, Int) {
        if stack.count - base == 1, case .text(let start, let end) = stack[base] { return (start, end) }
        let start = arena.count
        for index in base..<stack.count {
            if index > base {
                let previous = stack[index - 1]
                let current = stack[index]
                if !isText(previous) && !isText(current) { arena.append(UInt8(ascii: " ")) }
            }
            try appendToArena(stack[index])
        }
        return (start, arena.count)
    }

    private func isText(_ value: RenderValue) -> Bool {
        if case .text = value { return true }
        return false
    }

    private mutating func index<H>(_ container: RenderValue, by key: RenderValue, _ context: inout Context<H>) throws(RenderFailure) -> RenderValue {
        switch (container, key) {
        case (.headerMap, .text(let keyStart, let keyEnd)):
            // A Go map lookup: the key must be the canonical header name exactly.
            let start = items.count
            let keyRange = keyStart..<keyEnd
            context.request.headers.forEachField { name, value in
                if GoFormat.canonicalNameEquals(name, arena[keyRange]) {
                    let valueStart = arena.count
                    arena.append(contentsOf: value)
                    items.append((valueStart, arena.count))
                }
                return true
            }
            return .list(start, items.count)
        case (.list(let start, let end), .integer(let position)):
            guard position >= 0, position < Int64(end - start) else {
                throw RenderFailure(message: "index out of range: \(position)")
            }
            let item = items[start + Int(position)]
            return .text(item.0, item.1)
        case (.text(let start, let end), .integer(let position)):
            guard position >= 0, position < Int64(end - start) else {
                throw RenderFailure(message: "index out of range: \(position)")
            }
            return .integer(Int64(arena[start + Int(position)]))
        case (.none, _):
            throw RenderFailure(message: "index of untyped nil")
        default:
            throw RenderFailure(message: "cannot index this value with that key")
        }
    }

    /// Go's comparison rules for eq/ne/lt/le/gt/ge on basic kinds: -1, 0, 1.
    private func compare(_ a: RenderValue, _ b: RenderValue, ordered: Bool = false) throws(RenderFailure) -> Int {
        switch (a, b) {
        case (.integer(let x), .integer(let y)): return x < y ? -1 : (x == y ? 0 : 1)
        case (.float(let x), .float(let y)): return x < y ? -1 : (x == y ? 0 : 1)
        case (.text(let s1, let e1), .text(let s2, let e2)):
            let left = arena[s1..<e1]
            let right = arena[s2..<e2]
            if left.elementsEqual(right) { return 0 }
            return left.lexicographicallyPrecedes(right) ? -1 : 1
        case (.boolean(let x), .boolean(let y)):
            if ordered && x != y { throw RenderFailure(message: "invalid type for comparison") }
            return x == y ? 0 : 1
        default:
            throw RenderFailure(message: "incompatible types for comparison")
        }
    }

    private func truth(_ value: RenderValue) -> Bool {
        switch value {
        case .text(let start, let end): return end > start
        case .integer(let value): return value != 0
        case .float(let value): return value != 0
        case .boolean(let value): return value
        case .list(let start, let end): return end > start
        case .headerMap: return true
        case .none: return false
        }
    }

    // MARK: Printing

    /// Appends a value to the arena as Go's fmt `%v` prints it (print, printf and friends build there).
    private mutating func appendToArena(_ value: RenderValue) throws(RenderFailure) {
        switch value {
        case .text(let start, let end):
            for index in start..<end { arena.append(arena[index]) }
        case .integer(let value): ASCII.appendDecimal(value, to: &arena)
        case .float(let value): GoFormat.appendFloat(value, to: &arena)
        case .boolean(let value): ASCII.append(value ? "true" : "false", to: &arena)
        case .list(let start, let end):
            arena.append(UInt8(ascii: "["))
            for index in start..<end {
                if index > start { arena.append(UInt8(ascii: " ")) }
                let item = items[index]
                for byte in item.0..<item.1 { arena.append(arena[byte]) }
            }
            arena.append(UInt8(ascii: "]"))
        case .headerMap: throw RenderFailure(message: "cannot print the header map")
        case .none: ASCII.append("<nil>", to: &arena)
        }
    }

    /// Writes an action's result to the log line, escaping control characters.
    private func write(_ value: RenderValue, escaping: Bool, into output: inout [UInt8]) throws(RenderFailure) {
        switch value {
        case .text(let start, let end):
            GoFormat.appendEscapingControls(arena[start..<end], to: &output)
        case .list(let start, let end):
            output.append(UInt8(ascii: "["))
            for index in start..<end {
                if index > start { output.append(UInt8(ascii: " ")) }
                let item = items[index]
                GoFormat.appendEscapingControls(arena[item.0..<item.1], to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .none:
            ASCII.append("<no value>", to: &output)
        case .integer(let number):
            ASCII.appendDecimal(number, to: &output)
        case .float(let number):
            GoFormat.appendFloat(number, to: &output)
        case .boolean(let flag):
            ASCII.append(flag ? "true" : "false", to: &output)
        case .headerMap:
            throw RenderFailure(message: "cannot print the header map")
        }
    }

    /// A subset of Go's Printf: verbs v s d q f t x X %, flags - + 0 and space, width and precision.
    private mutating func printf(format: Range<Int>, arguments: Range<Int>) throws(RenderFailure) {
        var index = format.lowerBound
        var next = arguments.lowerBound
        while index < format.upperBound {
            let byte = arena[index]
            index += 1
            guard byte == UInt8(ascii: "%") else {
                arena.append(byte)
                continue
            }
            var leftAlign = false
            var zeroPad = false
            var plus = false
            flags: while index < format.upperBound {
                switch arena[index] {
                case UInt8(ascii: "-"): leftAlign = true
                case UInt8(ascii: "0"): zeroPad = true
                case UInt8(ascii: "+"): plus = true
                case UInt8(ascii: " "), UInt8(ascii: "#"): break
                default: break flags
                }
                index += 1
            }
            var width = 0
            while index < format.upperBound, arena[index] >= 0x30, arena[index] <= 0x39 {
                width = min(width * 10 + Int(arena[index] - 0x30), 1000)
                index += 1
            }
            var precision: Int?
            if index < format.upperBound, arena[index] == UInt8(ascii: ".") {
                index += 1
                var value = 0
                while index < format.upperBound, arena[index] >= 0x30, arena[index] <= 0x39 {
                    value = min(value * 10 + Int(arena[index] - 0x30), 1000)
                    index += 1
                }
                precision = value
            }
            guard index < format.upperBound else {
                ASCII.append("%!(NOVERB)", to: &arena)
                break
            }
            let verb = arena[index]
            index += 1
            if verb == UInt8(ascii: "%") {
                arena.append(verb)
                continue
            }
            guard next < arguments.upperBound else {
                ASCII.append("%!", to: &arena)
                arena.append(verb)
                ASCII.append("(MISSING)", to: &arena)
                continue
            }
            let value = stack[next]
            next += 1
            let fieldStart = arena.count
            try formatValue(value, verb: verb, precision: precision, plus: plus)
            let written = arena.count - fieldStart
            if width > written {
                let padding = width - written
                if leftAlign {
                    arena.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
                } else {
                    let pad = zeroPad && !isText(value) ? UInt8(ascii: "0") : UInt8(ascii: " ")
                    var insertAt = fieldStart
                    if pad == UInt8(ascii: "0"), fieldStart < arena.count, arena[fieldStart] == UInt8(ascii: "-") || arena[fieldStart] == UInt8(ascii: "+") {
                        insertAt += 1
                    }
                    arena.insert(contentsOf: repeatElement(pad, count: padding), at: insertAt)
                }
            }
        }
        if next < arguments.upperBound {
            ASCII.append("%!(EXTRA ", to: &arena)
            for position in next..<arguments.upperBound {
                if position > next { ASCII.append(", ", to: &arena) }
                ASCII.append(typeName(stack[position]), to: &arena)
                arena.append(UInt8(ascii: "="))
                try appendToArena(stack[position])
            }
            arena.append(UInt8(ascii: ")"))
        }
    }

    private mutating func formatValue(_ value: RenderValue, verb: UInt8, precision: Int?, plus: Bool) throws(RenderFailure) {
        switch (verb, value) {
        case (UInt8(ascii: "v"), .text), (UInt8(ascii: "s"), .text):
            guard case .text(let start, var end) = value else { return }
            if let precision { end = min(end, start + precision) }
            for index in start..<end { arena.append(arena[index]) }
        case (UInt8(ascii: "q"), .text(let start, let end)):
            GoFormat.appendQuoted(from: start..<end, in: &arena)
        case (UInt8(ascii: "x"), .text(let start, let end)), (UInt8(ascii: "X"), .text(let start, let end)):
            let digits = verb == UInt8(ascii: "x") ? "0123456789abcdef" : "0123456789ABCDEF"
            let table = Array(digits.utf8)
            for index in start..<end {
                let byte = arena[index]
                arena.append(table[Int(byte >> 4)])
                arena.append(table[Int(byte & 0x0F)])
            }
        case (UInt8(ascii: "v"), .integer(let number)), (UInt8(ascii: "d"), .integer(let number)):
            if plus && number >= 0 { arena.append(UInt8(ascii: "+")) }
            ASCII.appendDecimal(number, to: &arena)
        case (UInt8(ascii: "x"), .integer(let number)), (UInt8(ascii: "X"), .integer(let number)):
            if number < 0 { arena.append(UInt8(ascii: "-")) }
            let text = String(number.magnitude, radix: 16, uppercase: verb == UInt8(ascii: "X"))
            ASCII.append(text, to: &arena)
        case (UInt8(ascii: "v"), .float(let number)):
            if plus && number >= 0 { arena.append(UInt8(ascii: "+")) }
            GoFormat.appendFloat(number, to: &arena)
        case (UInt8(ascii: "f"), .float(let number)), (UInt8(ascii: "F"), .float(let number)):
            if plus && number >= 0 { arena.append(UInt8(ascii: "+")) }
            GoFormat.appendFixed(number, fractionDigits: precision ?? 6, to: &arena)
        case (UInt8(ascii: "v"), .boolean(let flag)), (UInt8(ascii: "t"), .boolean(let flag)):
            ASCII.append(flag ? "true" : "false", to: &arena)
        case (UInt8(ascii: "v"), .list), (UInt8(ascii: "s"), .list):
            try appendToArena(value)
        case (UInt8(ascii: "v"), .none), (UInt8(ascii: "s"), .none):
            ASCII.append("%!", to: &arena)
            arena.append(verb)
            ASCII.append("(<nil>)", to: &arena)
        default:
            ASCII.append("%!", to: &arena)
            arena.append(verb)
            arena.append(UInt8(ascii: "("))
            ASCII.append(typeName(value), to: &arena)
            arena.append(UInt8(ascii: "="))
            try appendToArena(value)
            arena.append(UInt8(ascii: ")"))
        }
    }

    private func typeName(_ value: RenderValue) -> String {
        switch value {
        case .text: "string"
        case .integer: "int"
        case .float: "float64"
        case .boolean: "bool"
        case .list: "[]string"
        case .headerMap: "http.Header"
        case .none: "<nil>"
        }
    }
}

/// Where the parts of a request target are (origin form, absolute form, `*`, authority form).
struct TargetParts {
    var scheme: Range<Int>
    var host: Range<Int>
    var path: Range<Int>
    var query: Range<Int>

    init<Bytes: Collection>(_ target: Bytes) where Bytes.Element == UInt8 {
        let bytes = target
        let count = bytes.count
        func at(_ offset: Int) -> UInt8 { bytes[bytes.index(bytes.startIndex, offsetBy: offset)] }
        var offset = 0
        scheme = 0..<0
        host = 0..<0
        // Absolute form: scheme "://" authority path.
        var schemeEnd = -1
        var probe = 0
        for byte in bytes {
            if byte == UInt8(ascii: ":") { schemeEnd = probe; break }
            if byte == UInt8(ascii: "/") || byte == UInt8(ascii: "?") { break }
            probe += 1
        }
        if schemeEnd > 0, schemeEnd + 2 < count, at(schemeEnd + 1) == UInt8(ascii: "/"), at(schemeEnd + 2) == UInt8(ascii: "/") {
            scheme = 0..<schemeEnd
            offset = schemeEnd + 3
            var hostEnd = offset
            while hostEnd < count, at(hostEnd) != UInt8(ascii: "/"), at(hostEnd) != UInt8(ascii: "?") { hostEnd += 1 }
            host = offset..<hostEnd
            offset = hostEnd
        } else if count > 0, at(0) != UInt8(ascii: "/"), at(0) != UInt8(ascii: "*") {
            // Authority form (CONNECT): the whole target is the host.
            host = 0..<count
            path = count..<count
            query = count..<count
            return
        }
        var queryStart = offset
        while queryStart < count, at(queryStart) != UInt8(ascii: "?") { queryStart += 1 }
        path = offset..<queryStart
        query = queryStart < count ? (queryStart + 1)..<count : count..<count
    }
}

extension Collection where Element == UInt8 {
    /// The elements at integer offsets from the start.
    subscript(offsets offsets: Range<Int>) -> SubSequence {
        let lower = index(startIndex, offsetBy: offsets.lowerBound)
        let upper = index(lower, offsetBy: offsets.count)
        return self[lower..<upper]
    }
}
