// HTTP1 layer, scanning core (continued): once a head is complete, one pass over the recognised
// fields decides framing (RFC 9112 §6), keep-alive (§9.3), Host, Expect, Upgrade and Connection
// nominations. Reads only bytes of the complete head, whose ranges the scanner recorded.

extension HTTPHead {
    @unsafe
    mutating func finishHead(_ p: UnsafePointer<UInt8>, knownMask: UInt32, requestMethod: HTTPMethod) -> HTTPParseResult {
        framing = .none
        expectsContinue = false
        hasUnsupportedExpectation = false
        hasUpgrade = false
        connectionUpgrade = false
        connectionClose = false
        hasTransferCodingsBeforeChunked = false
        hasRepeatedContentLength = false
        host = nil

        var facts = HeadFacts()
        if knownMask & ~UInt32(1) != 0 {
            if let (error, offset) = unsafe collectFacts(p, &facts) {
                scan.phase = .done
                return .error(error, offset: offset)
            }
        }
        if let (error, offset) = isRequest ? requestFraming(facts) : responseFraming(facts, requestMethod) {
            scan.phase = .done
            return .error(error, offset: offset)
        }
        let persistent = !connectionClose && (version == .http11 || facts.connectionKeepAlive)
        switch framing {
        case .closeDelimited, .tunnel: keepAlive = false
        default: keepAlive = persistent
        }
        scan.phase = .done
        return .complete(headLength)
    }

    private mutating func requestFraming(_ facts: HeadFacts) -> (ParseError, Int)? {
        if facts.hasTransferEncoding {
            if facts.contentLength != nil { return (.contentLengthWithTransferEncoding, facts.transferEncodingOffset) }
            if version == .http10 { return (.transferEncodingInHTTP10, facts.transferEncodingOffset) }
            if !facts.lastCodingIsChunked { return (.chunkedNotFinal, facts.transferEncodingOffset) }
            if facts.otherCodings && limits.rejectTransferCodingsOtherThanChunked {
                return (.unsupportedTransferCoding, facts.transferEncodingOffset)
            }
        }
        if version == .http11 && facts.hostCount == 0 { return (.missingHost, headLength - 2) }
        if hasUpgrade && (facts.hasTransferEncoding || (facts.contentLength ?? 0) > 0) {
            return (.upgradeWithBody, facts.upgradeOffset)
        }
        if method == .connect {
            framing = .tunnel
        } else if facts.hasTransferEncoding {
            framing = .chunked
        } else if let length = facts.contentLength {
            framing = .contentLength(length)
        }
        return nil
    }

    private mutating func responseFraming(_ facts: HeadFacts, _ requestMethod: HTTPMethod) -> (ParseError, Int)? {
        if facts.hasTransferEncoding {
            if facts.contentLength != nil { return (.contentLengthWithTransferEncoding, facts.transferEncodingOffset) }
            if version == .http10 { return (.transferEncodingInHTTP10, facts.transferEncodingOffset) }
        }
        if status == 101 || (requestMethod == .connect && status >= 200 && status < 300) {
            framing = .tunnel
        } else if status < 200 || status == 204 || status == 304 || requestMethod == .head {
            framing = .none
        } else if facts.hasTransferEncoding {
            // RFC 9112 §6.3 (4): a response whose final coding is not chunked runs to the close.
            framing = facts.lastCodingIsChunked ? .chunked : .closeDelimited
        } else if let length = facts.contentLength {
            framing = .contentLength(length)
        } else {
            framing = .closeDelimited
        }
        return nil
    }

    /// Reads every recognised field once; returns the first rule broken.
    @unsafe
    private mutating func collectFacts(_ p: UnsafePointer<UInt8>, _ facts: inout HeadFacts) -> (ParseError, Int)? {
        let count = fieldCount
        let maxOptions = limits.maxConnectionOptions
        let request = isRequest
        let httpVersion = version
        var hostRange: Range<Int>? = nil
        var sawUpgrade = false
        var sawClose = false
        var sawUpgradeOption = false
        var sawExpectContinue = false
        var sawOtherExpectation = false
        var sawRepeatedLength = false
        // Invariant: every stored field's ranges lie inside the complete head, inside the buffer;
        // indices j < count <= fields.count.
        let failure: (ParseError, Int)? = unsafe storage.withUnsafeMutableBufferPointer { fields -> (ParseError, Int)? in
            for i in 0..<count {
                let f = unsafe fields[i]
                guard f.knownRaw != 0 else { continue }
                let vs = Int(f.valueStart)
                let ve = vs + Int(f.valueLength)
                switch HTTPKnownField(rawValue: f.knownRaw) ?? .none {
                case .contentLength:
                    if let e = unsafe HTTPHead.parseContentLength(p, vs, ve, &facts) { return e }
                    if facts.contentLengthValues > 1 { sawRepeatedLength = true }
                case .transferEncoding:
                    if !facts.hasTransferEncoding { facts.transferEncodingOffset = Int(f.lineStart) }
                    facts.hasTransferEncoding = true
                    if let e = unsafe HTTPHead.parseTransferEncoding(p, vs, ve, &facts) { return e }
                case .host where request:
                    facts.hostCount += 1
                    if facts.hostCount > 1 { return (.duplicateHost, Int(f.lineStart)) }
                    for j in vs..<ve where unsafe CharacterClass.table[Int(p[j])] & CharacterClass.host == 0 {
                        return (.invalidHost, j)
                    }
                    hostRange = vs..<ve
                case .upgrade:
                    if !sawUpgrade { facts.upgradeOffset = Int(f.lineStart) }
                    sawUpgrade = true
                case .expect where request:
                    if unsafe ve - vs == 12 && HTTPHead.equalsLowercase(p + vs, "100-continue") {
                        // RFC 9110 §10.1.1: a server ignores 100-continue from an HTTP/1.0 client.
                        if httpVersion == .http11 { sawExpectContinue = true }
                    } else if ve > vs {
                        sawOtherExpectation = true
                    }
                case .connection:
                    var optionStart = vs
                    while optionStart <= ve {
                        var optionEnd = optionStart
                        while optionEnd < ve, unsafe p[optionEnd] != ASCII.comma { optionEnd += 1 }
                        var a = optionStart
                        var b = optionEnd
                        while a < b, unsafe ASCII.isWhitespace(p[a]) { a += 1 }
                        while b > a, unsafe ASCII.isWhitespace(p[b - 1]) { b -= 1 }
                        optionStart = optionEnd + 1
                        // RFC 9110 §5.6.1: empty list elements are ignored.
                        if a == b { continue }
                        for j in a..<b where unsafe !CharacterClass.isToken(p[j]) { return (.invalidConnectionHeader, j) }
                        facts.connectionOptions += 1
                        if facts.connectionOptions > maxOptions { return (.tooManyConnectionOptions, a) }
                        let length = b - a
                        if unsafe length == 5 && HTTPHead.equalsLowercase(p + a, "close") { sawClose = true }
                        if unsafe length == 10 && HTTPHead.equalsLowercase(p + a, "keep-alive") { facts.connectionKeepAlive = true }
                        if unsafe length == 7 && HTTPHead.equalsLowercase(p + a, "upgrade") { sawUpgradeOption = true }
                        // Mark the nominated lines so a proxy drops them; never the ones that frame
                        // or route the message, which a forwarder must keep.
                        for j in 0..<count {
                            let g = unsafe fields[j]
                            guard Int(g.nameLength) == length else { continue }
                            switch HTTPKnownField(rawValue: g.knownRaw) ?? .none {
                            case .contentLength, .transferEncoding, .host: continue
                            default: break
                            }
                            let gs = Int(g.lineStart)
                            var same = true
                            for k in 0..<length where unsafe ASCII.lower(p[gs + k]) != ASCII.lower(p[a + k]) {
                                same = false
                                break
                            }
                            if same { unsafe fields[j].flags |= HTTPField.nominatedFlag }
                        }
                    }
                default:
                    break
                }
            }
            return nil
        }
        if let failure { return failure }
        host = hostRange
        hasUpgrade = sawUpgrade
        connectionClose = sawClose
        connectionUpgrade = sawUpgradeOption
        expectsContinue = sawExpectContinue
        hasUnsupportedExpectation = sawOtherExpectation
        hasRepeatedContentLength = sawRepeatedLength
        hasTransferCodingsBeforeChunked = facts.otherCodings
        return nil
    }

    /// Content-Length = 1*DIGIT, or a list of identical values (RFC 9110 §8.6); 63-bit at most.
    @unsafe
    static func parseContentLength(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ facts: inout HeadFacts) -> (ParseError, Int)? {
        // Invariant: start...end is a stored value range inside the buffer.
        if start == end { return (.invalidContentLength, start) }
        var i = start
        while true {
            while i < end, unsafe ASCII.isWhitespace(p[i]) { i += 1 }
            let elementStart = i
            var value: UInt64 = 0
            while i < end, unsafe ASCII.isDigit(p[i]) {
                let digit = unsafe UInt64(p[i] &- 0x30)
                if value > (UInt64(Int64.max) - digit) / 10 { return (.contentLengthOverflow, elementStart) }
                value = value * 10 + digit
                i += 1
            }
            if i == elementStart { return (.invalidContentLength, i) }
            while i < end, unsafe ASCII.isWhitespace(p[i]) { i += 1 }
            if let previous = facts.contentLength, previous != value { return (.conflictingContentLength, elementStart) }
            facts.contentLength = value
            facts.contentLengthValues += 1
            if i == end { return nil }
            if unsafe p[i] != ASCII.comma { return (.invalidContentLength, i) }
            i += 1
        }
    }

    /// Transfer-Encoding = #transfer-coding; codings may carry token parameters, chunked none.
    @unsafe
    static func parseTransferEncoding(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ facts: inout HeadFacts) -> (ParseError, Int)? {
        // Invariant: start...end is a stored value range inside the buffer.
        if start == end { return (.invalidTransferEncoding, start) }
        var i = start
        while true {
            while i < end, unsafe ASCII.isWhitespace(p[i]) { i += 1 }
            let nameStart = i
            while i < end, unsafe CharacterClass.isToken(p[i]) { i += 1 }
            if i == nameStart { return (.invalidTransferEncoding, i) }
            let isChunked = unsafe i - nameStart == 7 && equalsLowercase(p + nameStart, "chunked")
            while i < end, unsafe ASCII.isWhitespace(p[i]) { i += 1 }
            var hasParameters = false
            while i < end, unsafe p[i] == ASCII.semicolon {
                hasParameters = true
                i += 1
                while i < end, unsafe ASCII.isWhitespace(p[i]) { i += 1 }
                let parameterStart = i
                while i < end, unsafe CharacterClass.isToken(p[i]) { i += 1 }
                if i == parameterStart { return (.invalidTransferEncoding, i) }
                while i < end, unsafe ASCII.isWhitespace(p[i]) { i += 1 }
                guard i < end, unsafe p[i] == ASCII.equals else { return (.invalidTransferEncoding, i) }
                i += 1
                while i < end, unsafe ASCII.isWhitespace(p[i]) { i += 1 }
                let valueStart = i
                while i < end, unsafe CharacterClass.isToken(p[i]) { i += 1 }
                if i == valueStart { return (.invalidTransferEncoding, i) }
                while i < end, unsafe ASCII.isWhitespace(p[i]) { i += 1 }
            }
            if isChunked {
                if hasParameters { return (.invalidTransferEncoding, nameStart) }
                facts.chunkedCount += 1
                if facts.chunkedCount > 1 { return (.chunkedRepeated, nameStart) }
            } else {
                facts.otherCodings = true
            }
            facts.lastCodingIsChunked = isChunked
            if i == end { return nil }
            if unsafe p[i] != ASCII.comma { return (.invalidTransferEncoding, i) }
            i += 1
        }
    }
}

/// What the recognised fields of one head said, gathered before framing is decided.
struct HeadFacts {
    var contentLength: UInt64? = nil
    var contentLengthValues = 0
    var hasTransferEncoding = false
    var transferEncodingOffset = 0
    var lastCodingIsChunked = false
    var chunkedCount = 0
    var otherCodings = false
    var hostCount = 0
    var upgradeOffset = 0
    var connectionKeepAlive = false
    var connectionOptions = 0
}
