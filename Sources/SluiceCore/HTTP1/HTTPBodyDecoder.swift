// HTTP1 layer: a resumable decoder for message bodies (RFC 9112 §6 and §7.1). Fed any split of the
// bytes, it reports which of them belong to the body and which are payload, so a server reads the
// payload and a proxy forwards the raw framing unchanged (chunked in, chunked out, no re-framing).

/// What one `HTTPBodyDecoder.decode` call found.
public enum HTTPBodyStep: Hashable, Sendable {
    /// `input[range]` is payload. Every byte before `range.upperBound` belongs to the body (framing
    /// and payload); call again with the input from `range.upperBound`.
    case payload(Range<Int>)
    /// Every byte of the input belongs to the body and more is needed.
    case needMore
    /// The body ended after the first `consumed` bytes of the input; the rest is the next message.
    case complete(consumed: Int)
    /// The body breaks `ParseError` at `offset`, counted from the first byte of the body (not of the
    /// input). Close the connection: the position of the next message is unknown.
    case error(ParseError, offset: Int)
}

/// What one `HTTPBodyDecoder.frame` call found (payload positions left out).
public enum HTTPBodyFrameStep: Hashable, Sendable {
    /// All of the input belongs to the body; more is needed.
    case needMore
    /// The first `consumed` bytes of the input end the body.
    case complete(consumed: Int)
    case error(ParseError, offset: Int)
}

/// Decodes one message body. Create it from the head's `framing`; reuse it with `reset(framing:)`.
public struct HTTPBodyDecoder: Sendable {
    enum State: UInt8, Sendable {
        case fixedLength, closeDelimited, tunnel, done, failed
        case sizeStart, size, extensionWhitespace, extensionAfterSemicolon, extensionName, extensionAfterName
        case extensionAfterEquals, extensionToken, extensionQuoted, extensionEscape, extensionAfterQuoted
        case extensionTrailingWhitespace, sizeLF
        case data, dataCR, dataLF
        case trailerLineStart, trailerName, trailerNameCR, trailerValue, trailerLF, trailerEndLF
    }

    public let limits: HTTPParserLimits
    var state: State = .done
    var remaining: UInt64 = 0
    var lineBytes = 0
    var extensionBytes = 0
    var trailerBytes = 0
    var trailerFields = 0
    var failure: ParseError = .prematureEndOfBody
    var failureOffset = 0
    /// Body bytes consumed so far (framing and payload); error offsets count from here.
    public private(set) var bodyBytesConsumed: Int = 0

    public init(framing: HTTPBodyFraming, limits: HTTPParserLimits = .default) {
        self.limits = limits
        reset(framing: framing)
    }

    /// Start a new body with the same limits.
    public mutating func reset(framing: HTTPBodyFraming) {
        bodyBytesConsumed = 0
        lineBytes = 0
        extensionBytes = 0
        trailerBytes = 0
        trailerFields = 0
        remaining = 0
        switch framing {
        case .none: state = .done
        case .contentLength(let length):
            remaining = length
            state = length == 0 ? .done : .fixedLength
        case .chunked: state = .sizeStart
        case .closeDelimited: state = .closeDelimited
        case .tunnel: state = .done
        }
    }

    /// True once the body's last byte has been consumed.
    public var isComplete: Bool { state == .done }

    /// The connection ended: a close-delimited body is complete; anything unfinished is an error.
    public mutating func finish() -> HTTPBodyStep {
        switch state {
        case .done: return .complete(consumed: 0)
        case .closeDelimited:
            state = .done
            return .complete(consumed: 0)
        case .failed: return .error(failure, offset: failureOffset)
        default: return fail(.prematureEndOfBody, bodyBytesConsumed)
        }
    }

    /// Advances over the body bytes in `input` without reporting payload positions: what a proxy
    /// that forwards the raw bytes needs.
    public mutating func frame(_ input: Span<UInt8>) -> HTTPBodyFrameStep {
        var offset = 0
        while true {
            switch decode(input.extracting(offset...)) {
            case .payload(let range): offset += range.upperBound
            case .needMore: return .needMore
            case .complete(let consumed): return .complete(consumed: offset + consumed)
            case .error(let error, let at): return .error(error, offset: at)
            }
        }
    }

    private mutating func fail(_ error: ParseError, _ offset: Int) -> HTTPBodyStep {
        state = .failed
        failure = error
        failureOffset = offset
        return .error(error, offset: offset)
    }

    /// Decodes from the start of `input` up to the first payload run, the end of the body, or the
    /// end of the input, whichever comes first.
    public mutating func decode(_ input: Span<UInt8>) -> HTTPBodyStep {
        let n = input.count
        var i = 0
        defer { bodyBytesConsumed += i }
        while true {
            switch state {
            case .done:
                return .complete(consumed: i)
            case .failed:
                return .error(failure, offset: failureOffset)
            case .tunnel:
                return .complete(consumed: i)
            case .closeDelimited:
                if i >= n { return .needMore }
                let start = i
                i = n
                return .payload(start..<n)
            case .fixedLength, .data:
                if i >= n { return .needMore }
                let take = Int(min(remaining, UInt64(n - i)))
                let start = i
                i += take
                remaining -= UInt64(take)
                if remaining == 0 { state = state == .data ? .dataCR : .done }
                return .payload(start..<i)
            default:
                break
            }
            if i >= n { return .needMore }
            let b = input[i]
            let here = bodyBytesConsumed + i
            switch state {
            case .sizeStart:
                guard CharacterClass.isHex(b) else { return fail(unexpected(b, .invalidChunkSize), here) }
                remaining = CharacterClass.hexValue(b)
                lineBytes = 0
                state = .size
            case .size:
                if CharacterClass.isHex(b) {
                    let digit = CharacterClass.hexValue(b)
                    // Unsigned and checked: a size never wraps or turns negative (CVE-2013-2028).
                    if remaining > (UInt64(Int64.max) - digit) >> 4 { return fail(.chunkSizeOverflow, here) }
                    remaining = remaining << 4 | digit
                } else if b == ASCII.cr {
                    state = .sizeLF
                } else if b == ASCII.semicolon {
                    state = .extensionAfterSemicolon
                } else if ASCII.isWhitespace(b) {
                    state = .extensionWhitespace
                } else {
                    return fail(unexpected(b, .invalidChunkSize), here)
                }
            case .extensionWhitespace:
                // BWS before ";" (RFC 9112 §7.1.1); nothing else may follow it.
                if b == ASCII.semicolon { state = .extensionAfterSemicolon }
                else if !ASCII.isWhitespace(b) { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .extensionAfterSemicolon:
                if CharacterClass.isToken(b) { state = .extensionName }
                else if !ASCII.isWhitespace(b) { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .extensionName:
                if CharacterClass.isToken(b) { break }
                if b == ASCII.cr { state = .sizeLF }
                else if b == ASCII.semicolon { state = .extensionAfterSemicolon }
                else if b == ASCII.equals { state = .extensionAfterEquals }
                else if ASCII.isWhitespace(b) { state = .extensionAfterName }
                else { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .extensionAfterName:
                if b == ASCII.semicolon { state = .extensionAfterSemicolon }
                else if b == ASCII.equals { state = .extensionAfterEquals }
                else if !ASCII.isWhitespace(b) { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .extensionAfterEquals:
                if CharacterClass.isToken(b) { state = .extensionToken }
                else if b == ASCII.quote { state = .extensionQuoted }
                else if !ASCII.isWhitespace(b) { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .extensionToken:
                if CharacterClass.isToken(b) { break }
                if b == ASCII.cr { state = .sizeLF }
                else if b == ASCII.semicolon { state = .extensionAfterSemicolon }
                else if ASCII.isWhitespace(b) { state = .extensionTrailingWhitespace }
                else { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .extensionQuoted:
                if b == ASCII.quote { state = .extensionAfterQuoted }
                else if b == ASCII.backslash { state = .extensionEscape }
                else if !CharacterClass.isQuotedText(b) { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .extensionEscape:
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                guard CharacterClass.isFieldValue(b) else { return fail(unexpected(b, .invalidChunkExtension), here) }
                state = .extensionQuoted
            case .extensionAfterQuoted:
                if b == ASCII.cr { state = .sizeLF }
                else if b == ASCII.semicolon { state = .extensionAfterSemicolon }
                else if ASCII.isWhitespace(b) { state = .extensionTrailingWhitespace }
                else { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .extensionTrailingWhitespace:
                if b == ASCII.semicolon { state = .extensionAfterSemicolon }
                else if !ASCII.isWhitespace(b) { return fail(unexpected(b, .invalidChunkExtension), here) }
            case .sizeLF:
                guard b == ASCII.lf else { return fail(.bareCarriageReturn, here - 1) }
                lineBytes = 0
                state = remaining == 0 ? .trailerLineStart : .data
                i += 1
                continue
            case .dataCR:
                if b == ASCII.lf { return fail(.bareLineFeed, here) }
                guard b == ASCII.cr else { return fail(.missingCRLFAfterChunkData, here) }
                state = .dataLF
            case .dataLF:
                guard b == ASCII.lf else { return fail(.bareCarriageReturn, here - 1) }
                state = .sizeStart
            case .trailerLineStart:
                if b == ASCII.cr { state = .trailerEndLF }
                else if ASCII.isWhitespace(b) { return fail(.obsFold, here) }
                else if b == ASCII.colon { return fail(.emptyFieldName, here) }
                else if CharacterClass.isToken(b) {
                    if trailerFields >= limits.maxFieldCount { return fail(.tooManyFields, here) }
                    state = .trailerName
                } else { return fail(unexpected(b, .invalidFieldName), here) }
            case .trailerName:
                if CharacterClass.isToken(b) { break }
                if b == ASCII.colon { state = .trailerValue }
                else if ASCII.isWhitespace(b) { return fail(.whitespaceBeforeColon, here) }
                else if b == ASCII.cr { state = .trailerNameCR }
                else { return fail(unexpected(b, .invalidFieldName), here) }
            case .trailerNameCR:
                return fail(b == ASCII.lf ? .missingColon : .bareCarriageReturn, here - 1)
            case .trailerValue:
                if CharacterClass.isFieldValue(b) { break }
                if b == ASCII.cr { state = .trailerLF }
                else { return fail(unexpected(b, .controlCharacterInValue), here) }
            case .trailerLF:
                guard b == ASCII.lf else { return fail(.bareCarriageReturn, here - 1) }
                trailerFields += 1
                state = .trailerLineStart
            case .trailerEndLF:
                guard b == ASCII.lf else { return fail(.bareCarriageReturn, here - 1) }
                i += 1
                state = .done
                return .complete(consumed: i)
            default:
                break
            }
            // Limits on the chunk-size line and the trailer section, counted per byte consumed.
            switch state {
            case .size, .sizeLF:
                lineBytes += state == .size ? 1 : 0
                if lineBytes > limits.maxChunkLineBytes { return fail(.chunkExtensionsTooLong, here) }
            case .extensionWhitespace, .extensionAfterSemicolon, .extensionName, .extensionAfterName,
                 .extensionAfterEquals, .extensionToken, .extensionQuoted, .extensionEscape,
                 .extensionAfterQuoted, .extensionTrailingWhitespace:
                lineBytes += 1
                extensionBytes += 1
                if lineBytes > limits.maxChunkLineBytes || extensionBytes > limits.maxChunkExtensionBytesPerMessage {
                    return fail(.chunkExtensionsTooLong, here)
                }
            case .trailerLineStart, .trailerName, .trailerNameCR, .trailerValue, .trailerLF, .trailerEndLF:
                trailerBytes += 1
                if trailerBytes > limits.maxHeadBytes { return fail(.trailersTooLarge, here) }
            default:
                break
            }
            i += 1
        }
    }

    /// NUL, a lone LF and a CR where none may stand get their own errors; anything else `other`.
    private func unexpected(_ b: UInt8, _ other: ParseError) -> ParseError {
        if b == 0 { return .nulCharacter }
        if b == ASCII.lf { return .bareLineFeed }
        return other
    }
}
