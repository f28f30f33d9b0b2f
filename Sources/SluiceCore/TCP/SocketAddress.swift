// TCP layer: numeric IPv4/IPv6 socket addresses (no DNS here; resolution belongs to callers at the edge).
import CEpoll

/// Why a host/port pair is not a socket address.
public enum SocketAddressError: Error, Equatable, Sendable, CustomStringConvertible {
    case notNumericHost(String)

    public var description: String {
        switch self {
        case .notNumericHost(let host): "'\(host)' is not a numeric IPv4 or IPv6 address"
        }
    }
}

/// An IPv4 or IPv6 address and port, as the kernel takes it.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    var storage: sockaddr_storage
    var length: socklen_t

    /// `host` must be a numeric address such as "127.0.0.1" or "::1".
    public init(host: String, port: UInt16) throws(SocketAddressError) {
        var storage = Self.emptyStorage()
        var length = socklen_t(0)
        // `host` is a NUL-terminated temporary; `storage`/`length` are locals the shim fills in bounds.
        guard unsafe sluice_make_address(host, port, &storage, &length) == 0 else { throw .notNumericHost(host) }
        self.storage = storage
        self.length = length
    }

    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    static func emptyStorage() -> sockaddr_storage { sockaddr_storage() }

    /// 127.0.0.1:port.
    public static func loopback(port: UInt16) -> SocketAddress {
        var storage = emptyStorage()
        var length = socklen_t(0)
        // As above: a literal host and local out-parameters.
        _ = unsafe sluice_make_address("127.0.0.1", port, &storage, &length)
        return SocketAddress(storage: storage, length: length)
    }

    /// AF_INET or AF_INET6.
    public var family: Int32 { Int32(storage.ss_family) }

    /// The numeric host and the port.
    public var hostAndPort: (host: String, port: UInt16) {
        var text = [CChar](repeating: 0, count: 64)
        var storage = storage
        // `text` has 64 bytes (≥ INET6_ADDRSTRLEN) and its real size is passed.
        let port = unsafe sluice_format_address(&storage, &text, text.count)
        guard port >= 0 else { return ("?", 0) }
        let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return (String(decoding: bytes, as: UTF8.self), UInt16(port))
    }

    public var host: String { hostAndPort.host }
    public var port: UInt16 { hostAndPort.port }

    public var description: String {
        let (host, port) = hostAndPort
        return family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        a.family == b.family && a.hostAndPort == b.hostAndPort
    }

    public func hash(into hasher: inout Hasher) {
        let (host, port) = hostAndPort
        hasher.combine(host)
        hasher.combine(port)
    }
}
