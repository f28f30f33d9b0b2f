// HTTPProxy layer: Max-Forwards on OPTIONS (RFC 9110 §7.6.2). A proxy that receives 0 answers as the
// final recipient; otherwise it forwards the value decremented. TRACE never gets here (405).

extension ServerConnection {
    static let maxForwardsName = HTTPFieldName("max-forwards")
    /// What this server forwards; CONNECT and TRACE are refused with 405.
    static let allowedMethods = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"

    enum MaxForwards {
        /// No Max-Forwards field: forward as is.
        case absent
        case value(UInt64)
        case invalid
    }

    /// The request's Max-Forwards: one field of 1*DIGIT (a huge value saturates, never overflows).
    func maxForwards() -> MaxForwards {
        let head = exchange.head
        return exchange.withHeadBytes { span -> MaxForwards in
            var found: MaxForwards = .absent
            for field in head.fields where field.known == .none && HTTPHead.nameEquals(field, Self.maxForwardsName.lowercased, span) {
                if case .absent = found {} else { return .invalid } // a second line: which one counts is unclear
                let range = field.value
                guard !range.isEmpty, range.upperBound <= span.count else { return .invalid }
                var value: UInt64 = 0
                for i in range {
                    let digit = span[i] &- 0x30
                    guard digit < 10 else { return .invalid }
                    value = value > (UInt64.max - 9) / 10 ? UInt64.max : value * 10 + UInt64(digit)
                }
                found = .value(value)
            }
            return found
        }
    }

    /// For an OPTIONS request: answers it here (Max-Forwards 0, or an invalid value) and returns the
    /// bytes consumed, or edits the forwarded head (value − 1) and returns nil to go on.
    func applyMaxForwards(available: Range<Int>) -> Int? {
        switch maxForwards() {
        case .absent:
            return nil
        case .invalid:
            return respondWithoutHandler(status: 400, message: "invalid Max-Forwards", available: available)
        case .value(0):
            handlerInvolved = false
            let response = HTTPLocalResponse(status: 200, fields: [("Allow", Self.allowedMethods)])
            return respondLocally(response, available: available, buffer: nil)
        case .value(let value):
            exchange.removeFields(named: Self.maxForwardsName)
            // Digits only: the serializer's checks cannot fail.
            try? exchange.addField(name: "Max-Forwards", value: String(value - 1))
            return nil
        }
    }
}
