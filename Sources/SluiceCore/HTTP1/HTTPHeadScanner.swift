// HTTP1 layer, scanning core: the only unsafe code of the codec. It walks the caller's bytes once,
// left to right, with table-driven classification and word-at-a-time search for the end of values,
// and resumes where the previous call stopped so a head fed one byte at a time costs O(n).
// Every pointer read is guarded by an index below `count` (or `end <= count`), stated per block.

/// Where a partial parse stopped; positions are offsets into the caller's bytes.
struct HeadScanState: Sendable {
    enum Phase: UInt8, Sendable {
        case begin, method, target, version, statusVersion, statusCode, reason, lineStart, name, value, done
    }
    var phase: Phase = .begin
    var position = 0
    var lineStart = 0
    var mark = 0
    var mark2 = 0
    var knownMask: UInt32 = 0
}

extension HTTPHead {
    /// Parse a request head from `bytes`, which start at the message's first byte. After
    /// `.incomplete`, call again with the same bytes and more appended; the parse resumes.
    public mutating func parseRequest(_ bytes: Span<UInt8>) -> HTTPParseResult {
        // Invariant: the buffer pointer is valid for `bytes.count` bytes for the closure's duration,
        // and the scanner never reads at or past that count.
        unsafe bytes.withUnsafeBufferPointer { buffer in
            unsafe self.scanHead(buffer, isRequest: true, requestMethod: .get)
        }
    }

    /// Parse a response head. `requestMethod` is the method of the request it answers: HEAD makes
    /// the response bodiless, CONNECT turns a 2xx into a tunnel.
    public mutating func parseResponse(_ bytes: Span<UInt8>, requestMethod: HTTPMethod = .get) -> HTTPParseResult {
        // Invariant: as in parseRequest.
        unsafe bytes.withUnsafeBufferPointer { buffer in
            unsafe self.scanHead(buffer, isRequest: false, requestMethod: requestMethod)
        }
    }

    @inline(__always)
    private mutating func fail(_ error: ParseError, _ offset: Int) -> HTTPParseResult {
        scan.phase = .done
        return .error(error, offset: offset)
    }

    /// The scanner needs the byte at `need`, which is not in the window it may read: either the
    /// bytes ended (incomplete) or a limit cut the window (error at the limit).
    @inline(__always)
    private mutating func suspend(
        _ phase: HeadScanState.Phase, _ position: Int, _ lineStart: Int, _ mark: Int, _ mark2: Int,
        need: Int, lineLimit: Int, knownMask: UInt32
    ) -> HTTPParseResult {
        if need >= lineLimit { return fail(.startLineTooLong, lineLimit) }
        if need >= limits.maxHeadBytes { return fail(.headTooLarge, limits.maxHeadBytes) }
        scan = HeadScanState(
            phase: phase, position: position, lineStart: lineStart, mark: mark, mark2: mark2, knownMask: knownMask)
        return .incomplete
    }

    @unsafe
    mutating func scanHead(_ buffer: UnsafeBufferPointer<UInt8>, isRequest: Bool, requestMethod: HTTPMethod) -> HTTPParseResult {
        if scan.phase == .done || buffer.count < scan.position { reset() }
        if scan.phase == .begin {
            self.isRequest = isRequest
            fieldCount = 0
            host = nil
        }
        let n = buffer.count
        guard let p = buffer.baseAddress, n > 0 else { return .incomplete }
        // Invariant for every `p[i]` below: i < end <= n or i < window <= end (checked just before).
        // Invariant: the table has 256 entries, so any UInt8 index is in bounds.
        let table = unsafe characterTable.pointer
        // Copy-on-write: a copy of this head may still share the field records; write only our own.
        if !isKnownUniquelyReferenced(&storage) { storage = HTTPFieldStorage(copying: storage) }
        // Invariant: `storage` is held by `self` for this whole call and never replaced below, so the
        // pointer stays valid; it addresses limits.maxFieldCount records, and the scanner writes
        // index fieldCount only after checking fieldCount < maxFieldCount.
        let fieldPointer = unsafe storage.base
        // A whole request head on the first call takes the straight-line path; anything it does
        // not accept (errors, partial input, leading CRLFs) is decided by scanLines.
        if isRequest && scan.phase == .begin {
            switch unsafe scanWholeRequest(p, n: n, table: table, fields: fieldPointer) {
            case .finished: return .complete(headLength)
            case .scanned: return unsafe finishHead(p, table: table, fields: fieldPointer, requestMethod: requestMethod)
            case .declined: break
            }
        }
        let scanned = unsafe scanLines(p, n: n, table: table, fields: fieldPointer, isRequest: isRequest)
        guard case .complete = scanned else { return scanned }
        return unsafe finishHead(p, table: table, fields: fieldPointer, requestMethod: requestMethod)
    }

    /// Straight-line scan of a complete, valid request head. Returns `.declined`, having changed
    /// nothing that scanLines relies on, at the first byte it does not accept, so that scanLines
    /// decides; every check here is one scanLines makes, so both accept exactly the same heads.
    /// `.finished` means the head is fully decided; `.scanned` leaves the field semantics to finishHead.
    enum WholeScan { case declined, scanned, finished }

    @unsafe
    private mutating func scanWholeRequest(
        _ p: UnsafePointer<UInt8>, n: Int, table: UnsafePointer<UInt8>, fields: UnsafeMutablePointer<HTTPField>
    ) -> WholeScan {
        // Invariant: every read is at an index below `end` or `lineEnd` (<= end <= n), checked first.
        // Positions stay below n, so wrapping arithmetic never wraps.
        let end = min(n, limits.maxHeadBytes)
        let lineEnd = min(end, limits.maxStartLineBytes)
        var pos = 0
        // The two commonest methods are recognised from one 4- or 8-byte load: "GET " and "POST "
        // are token bytes followed by SP, exactly what the byte loop below would accept.
        let parsedMethod: HTTPMethod
        let methodEnd: Int
        if lineEnd >= 8 {
            let word = unsafe UnsafeRawPointer(p).loadUnaligned(as: UInt64.self)
            if UInt32(truncatingIfNeeded: word) == 0x2054_4547 {
                parsedMethod = .get; methodEnd = 3
            } else if word & 0xFF_FFFF_FFFF == 0x20_5453_4F50 {
                parsedMethod = .post; methodEnd = 4
            } else {
                while pos < lineEnd, unsafe table[Int(p[pos])] & CharacterClass.token != 0 { pos &+= 1 }
                guard pos > 0, pos < lineEnd, unsafe p[pos] == ASCII.sp else { return .declined }
                parsedMethod = unsafe HTTPHead.knownMethod(p, pos)
                methodEnd = pos
            }
        } else {
            return .declined
        }
        pos = methodEnd &+ 1
        let targetStart = pos
        // "/" alone is the commonest target; otherwise four bytes per round, then one at a time.
        if pos &+ 1 < lineEnd, unsafe p[pos] == ASCII.slash && p[pos &+ 1] == ASCII.sp {
            pos &+= 1
        } else {
            while pos &+ 4 <= lineEnd {
                let ok = unsafe table[Int(p[pos])] & table[Int(p[pos &+ 1])] & table[Int(p[pos &+ 2])] & table[Int(p[pos &+ 3])]
                if ok & CharacterClass.target == 0 { break }
                pos &+= 4
            }
            while pos < lineEnd, unsafe table[Int(p[pos])] & CharacterClass.target != 0 { pos &+= 1 }
        }
        guard pos > targetStart, pos &+ 11 <= lineEnd, unsafe p[pos] == ASCII.sp else { return .declined }
        let targetEnd = pos
        let word = unsafe UnsafeRawPointer(p + (pos &+ 1)).loadUnaligned(as: UInt64.self)
        let parsedVersion: HTTPVersion
        if word == 0x312e_312f_5054_5448 { parsedVersion = .http11 }
        else if word == 0x302e_312f_5054_5448 { parsedVersion = .http10 }
        else { return .declined }
        guard unsafe p[pos &+ 9] == ASCII.cr && p[pos &+ 10] == ASCII.lf else { return .declined }
        pos &+= 11
        method = parsedMethod
        version = parsedVersion
        methodRange = 0..<methodEnd
        target = targetStart..<targetEnd
        startLine = 0..<pos
        // classifyTarget's answer for a target starting with "/" under any method but CONNECT.
        if parsedMethod != .connect, unsafe p[targetStart] == ASCII.slash {
            targetForm = .origin
        } else {
            guard unsafe classifyTarget(p, table) == nil else { return .declined }
        }

        let maxFields = limits.maxFieldCount
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var count = 0
        var mask: UInt32 = 0
        var hostCount = 0
        var hostRange = 0..<0
        while true {
            guard pos &+ 1 < end else { return .declined }
            if unsafe p[pos] == ASCII.cr {
                guard unsafe p[pos &+ 1] == ASCII.lf else { return .declined }
                headLength = pos &+ 2
                fieldCount = count
                scan.knownMask = mask
                // Nothing but one valid Host among the fields that matter (the common case): decide
                // here what finishHead would, without a second pass over the fields.
                let hostBit = UInt32(1) << UInt32(HTTPKnownField.host.rawValue)
                guard mask & ~(hostBit | 1) == 0 else { return .scanned }
                if hostCount > 1 || (hostCount == 0 && version == .http11) { return .scanned }
                host = hostCount == 0 ? nil : hostRange
                framing = method == .connect ? .tunnel : .none
                flagBits = method != .connect && version == .http11 ? HTTPHead.keepAliveBit : 0
                scan.phase = .done
                return .finished
            }
            guard count < maxFields else { return .declined }
            let lineStart = pos
            // Host, in any case, then its value checked as host bytes in the same pass that finds
            // the CR; whatever that pass does not accept goes through the generic value scan below.
            if pos &+ 5 < end,
               unsafe UnsafeRawPointer(p + pos).loadUnaligned(as: UInt32.self) | 0x2020_2020 == 0x7473_6F68,
               unsafe p[pos &+ 4] == ASCII.colon {
                let colon = pos &+ 4
                var vs = colon &+ 1
                while vs < end, unsafe p[vs] == ASCII.sp || p[vs] == ASCII.htab { vs &+= 1 }
                var ve = vs
                var stopped = false
                while ve &+ 4 <= end {
                    let c0 = unsafe table[Int(p[ve])] & CharacterClass.host
                    let c1 = unsafe table[Int(p[ve &+ 1])] & CharacterClass.host
                    let c2 = unsafe table[Int(p[ve &+ 2])] & CharacterClass.host
                    let c3 = unsafe table[Int(p[ve &+ 3])] & CharacterClass.host
                    if c0 & c1 & c2 & c3 == 0 {
                        // The first of the four that is not a host byte ends the value.
                        ve &+= c0 == 0 ? 0 : c1 == 0 ? 1 : c2 == 0 ? 2 : 3
                        stopped = true
                        break
                    }
                    ve &+= 4
                }
                if !stopped {
                    while ve < end, unsafe table[Int(p[ve])] & CharacterClass.host != 0 { ve &+= 1 }
                }
                var q = ve
                while q < end, unsafe p[q] == ASCII.sp || p[q] == ASCII.htab { q &+= 1 }
                if q &+ 1 < end, unsafe p[q] == ASCII.cr && p[q &+ 1] == ASCII.lf {
                    mask |= 1 << UInt32(HTTPKnownField.host.rawValue)
                    hostCount &+= 1
                    hostRange = vs..<ve
                    unsafe fields[count] = HTTPField(
                        lineStart: UInt32(truncatingIfNeeded: lineStart),
                        nameLength: 4,
                        valueStart: UInt32(truncatingIfNeeded: vs),
                        valueLength: UInt32(truncatingIfNeeded: ve &- vs),
                        lineLength: UInt32(truncatingIfNeeded: q &+ 2 &- lineStart),
                        knownRaw: HTTPKnownField.host.rawValue, flags: 0)
                    count &+= 1
                    pos = q &+ 2
                    continue
                }
            }
            while pos &+ 4 <= end {
                let ok = unsafe table[Int(p[pos])] & table[Int(p[pos &+ 1])] & table[Int(p[pos &+ 2])] & table[Int(p[pos &+ 3])]
                if ok & CharacterClass.token == 0 { break }
                pos &+= 4
            }
            while pos < end, unsafe table[Int(p[pos])] & CharacterClass.token != 0 { pos &+= 1 }
            guard pos > lineStart, pos < end, unsafe p[pos] == ASCII.colon else { return .declined }
            let colon = pos
            var q = pos &+ 1
            // Find the CR that ends the value, as in scanLines' .value phase.
            while true {
                while q &+ 16 <= end {
                    let w1 = unsafe UnsafeRawPointer(p + q).loadUnaligned(as: UInt64.self)
                    let w2 = unsafe UnsafeRawPointer(p + (q &+ 8)).loadUnaligned(as: UInt64.self)
                    let x1 = w1 ^ (ones &* 0x7F)
                    let x2 = w2 ^ (ones &* 0x7F)
                    let flagged = ((w1 &- ones &* 0x20) & ~w1) | ((x1 &- ones) & ~x1)
                        | ((w2 &- ones &* 0x20) & ~w2) | ((x2 &- ones) & ~x2)
                    if flagged & highs != 0 { break }
                    q &+= 16
                }
                var located = false
                while q &+ 8 <= end {
                    let w = unsafe UnsafeRawPointer(p + q).loadUnaligned(as: UInt64.self)
                    let x = w ^ (ones &* 0x7F)
                    let m = (((w &- ones &* 0x20) & ~w) | ((x &- ones) & ~x)) & highs
                    if m != 0 {
                        q &+= m.littleEndian.trailingZeroBitCount >> 3
                        located = true
                        break
                    }
                    q &+= 8
                }
                if !located {
                    while q < end {
                        let c = unsafe p[q]
                        if c < 0x20 || c == 0x7F { break }
                        q &+= 1
                    }
                }
                guard q < end else { return .declined }
                if unsafe p[q] == ASCII.htab { q &+= 1; continue }
                break
            }
            guard unsafe p[q] == ASCII.cr, q &+ 1 < end, unsafe p[q &+ 1] == ASCII.lf else { return .declined }
            var vs = colon &+ 1
            if vs < q, unsafe p[vs] == ASCII.sp { vs &+= 1 }
            while vs < q, unsafe p[vs] == ASCII.sp || p[vs] == ASCII.htab { vs &+= 1 }
            var ve = q
            while ve > vs, unsafe p[ve &- 1] == ASCII.sp || p[ve &- 1] == ASCII.htab { ve -= 1 }
            let known = unsafe HTTPHead.classifyName(p + lineStart, colon &- lineStart)
            mask |= 1 << UInt32(known)
            if known == HTTPKnownField.host.rawValue {
                // Duplicate or invalid Host: let finishHead report it.
                hostCount &+= 1
                var j = vs
                while j < ve {
                    if unsafe table[Int(p[j])] & CharacterClass.host == 0 { hostCount = 2; break }
                    j &+= 1
                }
                hostRange = vs..<ve
            }
            unsafe fields[count] = HTTPField(
                lineStart: UInt32(truncatingIfNeeded: lineStart),
                nameLength: UInt32(truncatingIfNeeded: colon &- lineStart),
                valueStart: UInt32(truncatingIfNeeded: vs),
                valueLength: UInt32(truncatingIfNeeded: ve &- vs),
                lineLength: UInt32(truncatingIfNeeded: q &+ 2 &- lineStart),
                knownRaw: known, flags: 0)
            count &+= 1
            pos = q &+ 2
        }
    }

    /// The scanning state machine proper; `.complete` here means the empty line was found and the
    /// semantic checks are still to run.
    @unsafe
    private mutating func scanLines(
        _ p: UnsafePointer<UInt8>, n: Int, table: UnsafePointer<UInt8>, fields: UnsafeMutablePointer<HTTPField>?,
        isRequest: Bool
    ) -> HTTPParseResult {
        let end = min(n, limits.maxHeadBytes)
        let maxFields = limits.maxFieldCount
        var phase = scan.phase
        var pos = scan.position
        var lineStart = scan.lineStart
        var mark = scan.mark
        var mark2 = scan.mark2
        var knownMask = scan.knownMask
        var lineLimit = Int.max

        // Classifies an unexpected byte at `i` (< window). CR needs the next byte to tell a bare CR
        // from a CRLF in the wrong place; when it is not readable yet the caller suspends.
        @inline(__always) func unexpected(_ i: Int, window: Int, crlf: ParseError, other: ParseError) -> ParseError? {
            let b = unsafe p[i]
            if b == 0 { return .nulCharacter }
            if b == ASCII.lf { return .bareLineFeed }
            if b == ASCII.cr {
                if i + 1 >= window { return nil }
                return unsafe p[i + 1] == ASCII.lf ? crlf : .bareCarriageReturn
            }
            return other
        }

        while true {
            switch phase {
            case .begin:
                // RFC 9112 §2.2: a server SHOULD ignore empty lines before the request line
                // (clients sometimes add CRLF after a POST body). CRLF only; responses get none.
                if isRequest {
                    while pos < end {
                        let b = unsafe p[pos]
                        if b != ASCII.cr {
                            if b == ASCII.lf { return fail(.bareLineFeed, pos) }
                            break
                        }
                        if pos + 1 >= end {
                            return suspend(.begin, pos, 0, 0, 0, need: pos + 1, lineLimit: .max, knownMask: 0)
                        }
                        if unsafe p[pos + 1] != ASCII.lf { return fail(.bareCarriageReturn, pos) }
                        pos += 2
                    }
                }
                if pos >= end { return suspend(.begin, pos, 0, 0, 0, need: pos, lineLimit: .max, knownMask: 0) }
                lineStart = pos
                phase = isRequest ? .method : .statusVersion

            case .method:
                lineLimit = lineStart + limits.maxStartLineBytes
                let window = min(end, lineLimit)
                while pos < window, unsafe table[Int(p[pos])] & CharacterClass.token != 0 { pos += 1 }
                if pos >= window {
                    return suspend(.method, pos, lineStart, 0, 0, need: pos, lineLimit: lineLimit, knownMask: 0)
                }
                if unsafe p[pos] != ASCII.sp || pos == lineStart {
                    if unsafe p[pos] == ASCII.sp { return fail(.invalidMethod, pos) }
                    guard let e = unexpected(pos, window: window, crlf: .malformedRequestLine, other: .invalidMethod) else {
                        return suspend(.method, pos, lineStart, 0, 0, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                    }
                    return fail(e, pos)
                }
                mark = pos
                method = unsafe HTTPHead.knownMethod(p + lineStart, pos - lineStart)
                pos += 1
                phase = .target

            case .target:
                lineLimit = lineStart + limits.maxStartLineBytes
                let window = min(end, lineLimit)
                // Unrolled by four: targets are the longest part of most request lines.
                while pos + 4 <= window {
                    let ok = unsafe table[Int(p[pos])] & table[Int(p[pos + 1])]
                        & table[Int(p[pos + 2])] & table[Int(p[pos + 3])] & CharacterClass.target
                    if ok == 0 { break }
                    pos += 4
                }
                while pos < window, unsafe table[Int(p[pos])] & CharacterClass.target != 0 { pos += 1 }
                if pos >= window {
                    return suspend(.target, pos, lineStart, mark, 0, need: pos, lineLimit: lineLimit, knownMask: 0)
                }
                let b = unsafe p[pos]
                if b == ASCII.sp {
                    if pos == mark + 1 { return fail(.invalidTarget, pos) }
                    mark2 = pos
                    pos += 1
                    phase = .version
                    continue
                }
                if b == ASCII.hash { return fail(.fragmentInTarget, pos) }
                guard let e = unexpected(pos, window: window, crlf: .malformedRequestLine, other: .invalidTarget) else {
                    return suspend(.target, pos, lineStart, mark, 0, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                }
                return fail(e, pos)

            case .version, .statusVersion:
                // "HTTP/" DIGIT "." DIGIT, then CRLF (request) or SP (status line).
                lineLimit = lineStart + limits.maxStartLineBytes
                let window = min(end, lineLimit)
                let versionStart = phase == .version ? mark2 + 1 : lineStart
                let isRequestLine = phase == .version
                // Fast path: the whole "HTTP/1.x" CRLF (or SP) is readable; one load decides.
                if pos == versionStart && pos + 10 <= window {
                    // Invariant: pos + 10 <= window <= n.
                    let word = unsafe UnsafeRawPointer(p + pos).loadUnaligned(as: UInt64.self)
                    let known: HTTPVersion? = word == 0x312e_312f_5054_5448 ? .http11 : word == 0x302e_312f_5054_5448 ? .http10 : nil
                    if let known {
                        if isRequestLine, unsafe p[pos + 8] == ASCII.cr && p[pos + 9] == ASCII.lf {
                            version = known
                            pos += 10
                            startLine = lineStart..<pos
                            methodRange = lineStart..<mark
                            target = (mark + 1)..<mark2
                            if let e = unsafe classifyTarget(p, table) { return fail(e, mark + 1) }
                            phase = .lineStart
                            continue
                        }
                        if !isRequestLine, unsafe p[pos + 8] == ASCII.sp {
                            version = known
                            pos += 9
                            mark = pos
                            phase = .statusCode
                            continue
                        }
                    }
                }
                while pos < window {
                    let i = pos - versionStart
                    let b = unsafe p[pos]
                    var good: Bool
                    switch i {
                    case 0: good = b == 0x48  // H
                    case 1, 2: good = b == 0x54  // T
                    case 3: good = b == 0x50  // P
                    case 4: good = b == ASCII.slash
                    case 5, 7: good = ASCII.isDigit(b)
                    case 6: good = b == 0x2E  // .
                    default:
                        good = true
                    }
                    if !good {
                        let malformed: ParseError = isRequestLine ? .malformedRequestLine : .malformedStatusLine
                        guard let e = unexpected(pos, window: window, crlf: malformed, other: .invalidVersion) else {
                            return suspend(phase, pos, lineStart, mark, mark2, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                        }
                        return fail(e, pos)
                    }
                    if i == 7 {
                        let major = unsafe p[versionStart + 5]
                        if major != 0x31 || b > 0x31 { return fail(.unsupportedVersion, versionStart) }
                        version = b == 0x30 ? .http10 : .http11
                    }
                    if i < 8 { pos += 1; continue }
                    if !isRequestLine {
                        if b != ASCII.sp {
                            guard let e = unexpected(pos, window: window, crlf: .malformedStatusLine, other: .malformedStatusLine) else {
                                return suspend(phase, pos, lineStart, mark, mark2, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                            }
                            return fail(e, pos)
                        }
                        pos += 1
                        mark = pos
                        phase = .statusCode
                        break
                    }
                    if i == 8 {
                        if b != ASCII.cr {
                            guard let e = unexpected(pos, window: window, crlf: .invalidVersion, other: .invalidVersion) else {
                                return suspend(phase, pos, lineStart, mark, mark2, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                            }
                            return fail(e, pos)
                        }
                        pos += 1
                        continue
                    }
                    // i == 9: the LF of the request line's CRLF.
                    if b != ASCII.lf { return fail(.bareCarriageReturn, pos - 1) }
                    pos += 1
                    startLine = lineStart..<pos
                    methodRange = lineStart..<mark
                    target = (mark + 1)..<mark2
                    if let e = unsafe classifyTarget(p, table) { return fail(e, mark + 1) }
                    phase = .lineStart
                    break
                }
                if phase == .version || phase == .statusVersion {
                    return suspend(phase, pos, lineStart, mark, mark2, need: pos, lineLimit: lineLimit, knownMask: 0)
                }

            case .statusCode:
                // 3DIGIT, then SP or (leniency shared by every major client) CRLF with no reason.
                lineLimit = lineStart + limits.maxStartLineBytes
                let window = min(end, lineLimit)
                while pos < window {
                    let i = pos - mark
                    let b = unsafe p[pos]
                    if i < 3 {
                        if !ASCII.isDigit(b) || (i == 0 && (b < 0x31 || b > 0x35)) {
                            if ASCII.isDigit(b) { return fail(.invalidStatusCode, mark) }
                            guard let e = unexpected(pos, window: window, crlf: .malformedStatusLine, other: .malformedStatusLine) else {
                                return suspend(.statusCode, pos, lineStart, mark, 0, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                            }
                            return fail(e, pos)
                        }
                        pos += 1
                        continue
                    }
                    if b == ASCII.sp {
                        pos += 1
                    } else if b != ASCII.cr {
                        guard let e = unexpected(pos, window: window, crlf: .malformedStatusLine, other: .malformedStatusLine) else {
                            return suspend(.statusCode, pos, lineStart, mark, 0, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                        }
                        return fail(e, pos)
                    }
                    status = unsafe Int(p[mark] &- 0x30) * 100 + Int(p[mark + 1] &- 0x30) * 10 + Int(p[mark + 2] &- 0x30)
                    mark2 = pos
                    phase = .reason
                    break
                }
                if phase == .statusCode {
                    return suspend(.statusCode, pos, lineStart, mark, 0, need: pos, lineLimit: lineLimit, knownMask: 0)
                }

            case .reason:
                lineLimit = lineStart + limits.maxStartLineBytes
                let window = min(end, lineLimit)
                while pos < window, unsafe table[Int(p[pos])] & CharacterClass.fieldValue != 0 { pos += 1 }
                if pos >= window {
                    return suspend(.reason, pos, lineStart, mark, mark2, need: pos, lineLimit: lineLimit, knownMask: 0)
                }
                if unsafe p[pos] != ASCII.cr {
                    guard let e = unexpected(pos, window: window, crlf: .invalidReasonPhrase, other: .invalidReasonPhrase) else {
                        return suspend(.reason, pos, lineStart, mark, mark2, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                    }
                    return fail(e, pos)
                }
                if pos + 1 >= window {
                    return suspend(.reason, pos, lineStart, mark, mark2, need: pos + 1, lineLimit: lineLimit, knownMask: 0)
                }
                if unsafe p[pos + 1] != ASCII.lf { return fail(.bareCarriageReturn, pos) }
                reason = mark2..<pos
                pos += 2
                startLine = lineStart..<pos
                methodRange = 0..<0
                target = 0..<0
                method = .other
                phase = .lineStart

            case .lineStart:
                if pos >= end {
                    return suspend(.lineStart, pos, pos, 0, 0, need: pos, lineLimit: .max, knownMask: knownMask)
                }
                let b = unsafe p[pos]
                if b == ASCII.cr {
                    if pos + 1 >= end {
                        return suspend(.lineStart, pos, pos, 0, 0, need: pos + 1, lineLimit: .max, knownMask: knownMask)
                    }
                    if unsafe p[pos + 1] != ASCII.lf { return fail(.bareCarriageReturn, pos) }
                    headLength = pos + 2
                    scan.phase = .done
                    scan.knownMask = knownMask
                    return .complete(headLength)
                }
                if b == ASCII.lf { return fail(.bareLineFeed, pos) }
                if b == ASCII.sp || b == ASCII.htab {
                    return fail(fieldCount == 0 ? .whitespaceAfterStartLine : .obsFold, pos)
                }
                if fieldCount >= maxFields { return fail(.tooManyFields, pos) }
                lineStart = pos
                phase = .name

            case .name:
                while pos + 4 <= end {
                    let ok = unsafe table[Int(p[pos])] & table[Int(p[pos + 1])]
                        & table[Int(p[pos + 2])] & table[Int(p[pos + 3])] & CharacterClass.token
                    if ok == 0 { break }
                    pos += 4
                }
                while pos < end, unsafe table[Int(p[pos])] & CharacterClass.token != 0 { pos += 1 }
                if pos >= end {
                    return suspend(.name, pos, lineStart, 0, 0, need: pos, lineLimit: .max, knownMask: knownMask)
                }
                let b = unsafe p[pos]
                if b == ASCII.colon {
                    if pos == lineStart { return fail(.emptyFieldName, pos) }
                    mark = pos
                    pos += 1
                    phase = .value
                    continue
                }
                if b == ASCII.sp || b == ASCII.htab { return fail(.whitespaceBeforeColon, pos) }
                guard let e = unexpected(pos, window: end, crlf: .missingColon, other: .invalidFieldName) else {
                    return suspend(.name, pos, lineStart, 0, 0, need: pos + 1, lineLimit: .max, knownMask: knownMask)
                }
                return fail(e, pos)

            case .value:
                // Find the first byte below 0x20 or equal to 0x7F, eight at a time. Subtracting
                // 0x20 from each byte borrows only out of a byte that is below 0x20, so the lowest
                // flagged byte is exact (higher flags may be borrow artefacts; they are ignored).
                let ones: UInt64 = 0x0101_0101_0101_0101
                let highs: UInt64 = 0x8080_8080_8080_8080
                var q = pos
                var found = false
                // Sixteen bytes per round while no byte needs a closer look.
                while q + 16 <= end {
                    // Invariant: q + 16 <= end <= n.
                    let w1 = unsafe UnsafeRawPointer(p + q).loadUnaligned(as: UInt64.self)
                    let w2 = unsafe UnsafeRawPointer(p + q + 8).loadUnaligned(as: UInt64.self)
                    let x1 = w1 ^ (ones &* 0x7F)
                    let x2 = w2 ^ (ones &* 0x7F)
                    let flagged = ((w1 &- ones &* 0x20) & ~w1) | ((x1 &- ones) & ~x1)
                        | ((w2 &- ones &* 0x20) & ~w2) | ((x2 &- ones) & ~x2)
                    if flagged & highs != 0 { break }
                    q += 16
                }
                while q + 8 <= end {
                    // Invariant: q + 8 <= end <= n, so the eight bytes are inside the buffer.
                    let w = unsafe UnsafeRawPointer(p + q).loadUnaligned(as: UInt64.self)
                    let below = (w &- ones &* 0x20) & ~w & highs
                    let x = w ^ (ones &* 0x7F)
                    let del = (x &- ones) & ~x & highs
                    let m = below | del
                    if m != 0 {
                        q += m.littleEndian.trailingZeroBitCount >> 3
                        found = true
                        break
                    }
                    q += 8
                }
                if !found {
                    while q < end {
                        let c = unsafe p[q]
                        if c < 0x20 || c == 0x7F { found = true; break }
                        q += 1
                    }
                }
                if !found {
                    return suspend(.value, q, lineStart, mark, 0, need: q, lineLimit: .max, knownMask: knownMask)
                }
                let c = unsafe p[q]
                if c == ASCII.htab { pos = q + 1; continue }
                if c != ASCII.cr {
                    // Not CR, so `unexpected` never needs the next byte here.
                    return fail(unexpected(q, window: end, crlf: .controlCharacterInValue, other: .controlCharacterInValue) ?? .controlCharacterInValue, q)
                }
                if q + 1 >= end {
                    return suspend(.value, q, lineStart, mark, 0, need: q + 1, lineLimit: .max, knownMask: knownMask)
                }
                if unsafe p[q + 1] != ASCII.lf { return fail(.bareCarriageReturn, q) }
                // Trim OWS on both sides of the value.
                var vs = mark + 1
                while vs < q, unsafe p[vs] == ASCII.sp || p[vs] == ASCII.htab { vs += 1 }
                var ve = q
                while ve > vs, unsafe p[ve - 1] == ASCII.sp || p[ve - 1] == ASCII.htab { ve -= 1 }
                let known = unsafe HTTPHead.classifyName(p + lineStart, mark - lineStart)
                knownMask |= 1 << UInt32(known)
                // Invariant: fieldCount < maxFields == storage.count (checked at .lineStart).
                unsafe fields.unsafelyUnwrapped[fieldCount] = HTTPField(
                        lineStart: UInt32(truncatingIfNeeded: lineStart),
                        nameLength: UInt32(truncatingIfNeeded: mark - lineStart),
                        valueStart: UInt32(truncatingIfNeeded: vs),
                        valueLength: UInt32(truncatingIfNeeded: ve - vs),
                        lineLength: UInt32(truncatingIfNeeded: q + 2 - lineStart),
                        knownRaw: known, flags: 0)
                fieldCount += 1
                pos = q + 2
                phase = .lineStart

            case .done:
                return .incomplete
            }
        }
    }

    /// Recognises the methods the server and proxy treat specially (methods are case-sensitive).
    @unsafe @inline(__always)
    static func knownMethod(_ m: UnsafePointer<UInt8>, _ length: Int) -> HTTPMethod {
        // Invariant: the caller passes the method's start and its length inside the buffer.
        switch length {
        case 3:
            if unsafe m[0] == 0x47 && m[1] == 0x45 && m[2] == 0x54 { return .get }
            if unsafe m[0] == 0x50 && m[1] == 0x55 && m[2] == 0x54 { return .put }
        case 4:
            if unsafe equalsExactly(m, "POST") { return .post }
            if unsafe equalsExactly(m, "HEAD") { return .head }
        case 5:
            if unsafe equalsExactly(m, "PATCH") { return .patch }
            if unsafe equalsExactly(m, "TRACE") { return .trace }
        case 6:
            if unsafe equalsExactly(m, "DELETE") { return .delete }
        case 7:
            if unsafe equalsExactly(m, "OPTIONS") { return .options }
            if unsafe equalsExactly(m, "CONNECT") { return .connect }
        default:
            break
        }
        return .other
    }

    @unsafe @inline(__always)
    static func equalsExactly(_ p: UnsafePointer<UInt8>, _ s: StaticString) -> Bool {
        // Invariant: the caller checked that p has at least s.utf8CodeUnitCount readable bytes.
        let c = unsafe s.utf8Start
        for i in 0..<s.utf8CodeUnitCount where unsafe p[i] != c[i] { return false }
        return true
    }

    @unsafe @inline(__always)
    static func equalsLowercase(_ p: UnsafePointer<UInt8>, _ s: StaticString) -> Bool {
        // Invariant: as equalsExactly; `s` is lower-case.
        let c = unsafe s.utf8Start
        for i in 0..<s.utf8CodeUnitCount where unsafe ASCII.lower(p[i]) != c[i] { return false }
        return true
    }

    /// Maps a field name to the `HTTPKnownField` raw value: by length first, then whole words
    /// OR-ed with 0x20. For token bytes that fold is exact against these constants: only 'A'-'Z'
    /// fold onto letters, and only CR (never in a name) folds onto '-'.
    @unsafe @inline(__always)
    static func classifyName(_ name: UnsafePointer<UInt8>, _ length: Int) -> UInt8 {
        // Invariant: `length` bytes at `name` are inside the buffer; every load below lies within
        // them (offsets chosen per length, overlapping where the length is not a multiple).
        @inline(__always) func w16(_ o: Int) -> UInt16 { unsafe UnsafeRawPointer(name + o).loadUnaligned(as: UInt16.self) | 0x2020 }
        @inline(__always) func w32(_ o: Int) -> UInt32 { unsafe UnsafeRawPointer(name + o).loadUnaligned(as: UInt32.self) | 0x2020_2020 }
        @inline(__always) func w64(_ o: Int) -> UInt64 {
            unsafe UnsafeRawPointer(name + o).loadUnaligned(as: UInt64.self) | 0x2020_2020_2020_2020
        }
        let k: HTTPKnownField
        switch length {
        case 2: k = w16(0) == 0x6574 ? .te : .none
        case 4: k = w32(0) == 0x7473_6f68 ? .host : .none
        case 6: k = w32(0) == 0x6570_7865 && w32(2) == 0x7463_6570 ? .expect : .none
        case 7:
            let head = w32(0), tail = w32(3)
            if head == 0x7267_7075 && tail == 0x6564_6172 { k = .upgrade }
            else if head == 0x6961_7274 && tail == 0x7265_6c69 { k = .trailer }
            else { k = .none }
        case 10:
            let head = w64(0), tail = w64(2)
            if head == 0x6974_6365_6e6e_6f63 && tail == 0x6e6f_6974_6365_6e6e { k = .connection }
            else if head == 0x696c_612d_7065_656b && tail == 0x6576_696c_612d_7065 { k = .keepAlive }
            else { k = .none }
        case 14: k = w64(0) == 0x2d74_6e65_746e_6f63 && w64(6) == 0x6874_676e_656c_2d74 ? .contentLength : .none
        case 16: k = w64(0) == 0x6f63_2d79_786f_7270 && w64(8) == 0x6e6f_6974_6365_6e6e ? .proxyConnection : .none
        case 17:
            k = w64(0) == 0x7265_6673_6e61_7274 && w64(8) == 0x6e69_646f_636e_652d && w64(9) == 0x676e_6964_6f63_6e65
                ? .transferEncoding : .none
        case 18:
            k = w64(0) == 0x7561_2d79_786f_7270 && w64(8) == 0x6163_6974_6e65_6874 && w64(10) == 0x6574_6163_6974_6e65
                ? .proxyAuthenticate : .none
        case 19:
            k = w64(0) == 0x7561_2d79_786f_7270 && w64(8) == 0x7461_7a69_726f_6874 && w64(11) == 0x6e6f_6974_617a_6972
                ? .proxyAuthorization : .none
        default: k = .none
        }
        return k.rawValue
    }

    /// Checks the request target's form against the method (RFC 9112 §3.2) and records it.
    @unsafe
    mutating func classifyTarget(_ p: UnsafePointer<UInt8>, _ table: UnsafePointer<UInt8>) -> ParseError? {
        // Invariant: `target` is a non-empty range of a complete request line inside the buffer.
        let start = target.lowerBound
        let end = target.upperBound
        let first = unsafe p[start]
        if method == .connect {
            // authority-form = uri-host ":" port
            var i = end
            while i > start, unsafe ASCII.isDigit(p[i - 1]) { i -= 1 }
            guard i < end, i - 1 > start, unsafe p[i - 1] == ASCII.colon else { return .invalidTarget }
            for j in start..<(i - 1) where unsafe table[Int(p[j])] & CharacterClass.host == 0 {
                return .invalidTarget
            }
            targetForm = .authority
            return nil
        }
        if first == ASCII.slash {
            targetForm = .origin
            return nil
        }
        if first == ASCII.star {
            guard end - start == 1, method == .options else { return .invalidTarget }
            targetForm = .asterisk
            return nil
        }
        // absolute-form starts with scheme ":" where scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        guard (first | 0x20) &- 0x61 < 26 else { return .invalidTarget }
        var i = start + 1
        while i < end {
            let b = unsafe p[i]
            if (b | 0x20) &- 0x61 < 26 || ASCII.isDigit(b) || b == 0x2B || b == 0x2D || b == 0x2E { i += 1; continue }
            break
        }
        guard i < end, unsafe p[i] == ASCII.colon else { return .invalidTarget }
        targetForm = .absolute
        return nil
    }
}

/// The field records of a head: a fixed-capacity buffer allocated once per `HTTPHead`, so the scanner
/// writes records through a plain pointer with no per-parse array uniqueness dance. Copies of a head
/// share it until one parses again: `HTTPHead.scanHead` replaces a shared storage with a copy first.
@usableFromInline
@safe final class HTTPFieldStorage: @unchecked Sendable {
    // @unchecked: the records are written only by the scanner of the HTTPHead that holds the sole
    // reference (checked with isKnownUniquelyReferenced before every parse); shared copies only read.
    @usableFromInline let capacity: Int
    let base: UnsafeMutablePointer<HTTPField>

    init(capacity: Int) {
        self.capacity = capacity
        unsafe base = UnsafeMutablePointer<HTTPField>.allocate(capacity: capacity)
        // Invariant: `base` was just allocated for `capacity` records.
        unsafe base.initialize(repeating: HTTPField(), count: capacity)
    }

    init(copying other: HTTPFieldStorage) {
        capacity = other.capacity
        unsafe base = UnsafeMutablePointer<HTTPField>.allocate(capacity: capacity)
        // Invariant: both buffers hold `capacity` initialised records (HTTPField is trivial).
        unsafe base.initialize(from: other.base, count: capacity)
    }

    deinit {
        // Invariant: allocated in init and never handed out beyond a scan call that holds `self`.
        unsafe base.deallocate()
    }

    /// A record; traps outside the capacity, like the array it replaces.
    @usableFromInline subscript(index: Int) -> HTTPField {
        precondition(index >= 0 && index < capacity, "HTTPField index out of range")
        // Invariant: 0 <= index < capacity, checked above.
        return unsafe base[index]
    }
}
