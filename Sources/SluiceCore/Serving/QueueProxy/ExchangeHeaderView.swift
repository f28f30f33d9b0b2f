// The Serving layer's RequestHeaderView over a request the HTTP server parsed: names and values are
// views of the connection's receive buffer (no copy), so the Knative rules (probe classification,
// forwarded shim, host rewrite, request log) run on the hot path without allocating. Serving layer.

/// Bytes of a parsed head inside the receive buffer: a random-access view, never a copy.
public struct HeadBytes: RandomAccessCollection, Equatable {
    public let buffer: IOBuffer
    public let startIndex: Int
    public let endIndex: Int

    init(buffer: IOBuffer, range: Range<Int>) {
        self.buffer = buffer
        startIndex = range.lowerBound
        endIndex = range.upperBound
    }

    public subscript(position: Int) -> UInt8 { buffer[position] }

    public static func == (lhs: HeadBytes, rhs: HeadBytes) -> Bool {
        lhs.elementsEqual(rhs)
    }
}

/// A request's header fields as the Serving rules read them. Valid while the request is being handled
/// (the exchange keeps its head buffer until the request finished).
public struct ExchangeHeaderView: RequestHeaderView {
    public typealias Bytes = HeadBytes

    private let buffer: IOBuffer?
    private let base: Int
    private let fields: HTTPFieldList

    public init(_ exchange: HTTPExchange) {
        // Read through the exchange rather than copying its HTTPHead (a large value) per request.
        fields = exchange.head.fields
        if let whole = exchange.slice(0 ..< exchange.head.headLength) {
            buffer = whole.buffer
            base = whole.range.lowerBound
        } else {
            buffer = nil
            base = 0
        }
    }

    public func firstValue(named name: String) -> HeadBytes? {
        guard let buffer else { return nil }
        let wanted = name.utf8
        let length = wanted.count
        for field in fields {
            let nameRange = field.name
            guard nameRange.count == length else { continue }
            var index = base + nameRange.lowerBound
            var equal = true
            for byte in wanted {
                if ASCII.lowercased(buffer[index]) != ASCII.lowercased(byte) {
                    equal = false
                    break
                }
                index += 1
            }
            if equal {
                let value = field.value
                return HeadBytes(buffer: buffer, range: base + value.lowerBound ..< base + value.upperBound)
            }
        }
        return nil
    }

    public func forEachField(_ body: (HeadBytes, HeadBytes) -> Bool) {
        guard let buffer else { return }
        for field in fields {
            let name = field.name
            let value = field.value
            let keepGoing = body(
                HeadBytes(buffer: buffer, range: base + name.lowerBound ..< base + name.upperBound),
                HeadBytes(buffer: buffer, range: base + value.lowerBound ..< base + value.upperBound))
            if !keepGoing { return }
        }
    }
}
