// Fuzz entry for the HTTP1 codec (built by scripts/fuzz-http1 together with Sources/SluiceCore/HTTP1):
// the same bytes go through the request and the response parser, whole and in random splits
// derived from the input, and any difference between them, or a broken round trip, traps.

/// SplitMix64, seeded from the input, so a crasher replays with the same splits.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func events(_ bytes: [UInt8], response: Bool, cuts: [Int]) -> [HTTPStreamEvent] {
    var stream = HTTPMessageStream(parsesResponses: response)
    var out: [HTTPStreamEvent] = []
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        out += stream.feed(Array(bytes[start..<end]))
        start = end
    }
    return out + stream.finish()
}

/// serialize(parse(x)) must parse back to the same request.
func roundTrip(_ message: HTTPParsedMessage) {
    guard message.isRequest, message.framing != .tunnel else { return }
    var out: [UInt8] = []
    do {
        try HTTPSerializer.appendRequestLine(method: message.method, target: message.target, version: message.version, to: &out)
        for field in message.fields { try HTTPSerializer.appendField(name: field.name, value: field.value, to: &out) }
    } catch {
        fatalError("serializer refused parsed bytes: \(error)")
    }
    HTTPSerializer.appendEndOfHead(to: &out)
    var head = HTTPHead()
    guard case .complete(let n) = head.parseRequest(out.span), n == out.count else {
        fatalError("round trip did not parse: \(head.parseRequest(out.span))")
    }
    let fields = head.fields.map { HTTPFieldBytes(name: Array(out[$0.name]), value: Array(out[$0.value])) }
    if fields != message.fields || Array(out[head.target]) != message.target || head.version != message.version
        || head.keepAlive != message.keepAlive || head.framing != message.framing {
        fatalError("round trip changed the request")
    }
}

/// The serializer must refuse what it cannot write safely.
func serializerRefuses(_ bytes: [UInt8]) {
    var out: [UInt8] = []
    let name = Array(bytes.prefix(8))
    let value = Array(bytes.dropFirst(8).prefix(24))
    let nameOK = !name.isEmpty && name.allSatisfy { CharacterClass.isToken($0) }
    let valueOK = value.allSatisfy { CharacterClass.isFieldValue($0) }
    do {
        try HTTPSerializer.appendField(name: name, value: value, to: &out)
        if !(nameOK && valueOK) { fatalError("serializer wrote a bad field") }
        if out.contains(0) || out.dropLast(2).contains(0x0D) || out.dropLast(2).contains(0x0A) {
            fatalError("serializer emitted CR, LF or NUL")
        }
    } catch {
        if nameOK && valueOK { fatalError("serializer refused a good field") }
        if !out.isEmpty { fatalError("serializer wrote part of a refused field") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP1(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = unsafe Array(UnsafeBufferPointer(start: data, count: size))
    var seed: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { seed = (seed ^ UInt64(b)) &* 0x100_0000_01B3 }
    var random = SplitMix64(state: seed)
    for response in [false, true] {
        let whole = events(bytes, response: response, cuts: [])
        var plans: [[Int]] = []
        for _ in 0..<4 {
            let count = Int(random.next() % 6) + 1
            plans.append((0..<count).map { _ in size == 0 ? 0 : Int(random.next() % UInt64(size + 1)) }.sorted())
        }
        if size <= 512 { plans.append(Array(0..<size)) }
        for plan in plans {
            let split = events(bytes, response: response, cuts: plan)
            if split != whole {
                fatalError("split \(plan) gave \(split) instead of \(whole)")
            }
        }
        for case .message(let m) in whole { roundTrip(m) }
    }
    serializerRefuses(bytes)
    return 0
}
