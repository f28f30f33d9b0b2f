// Test support, sockets: blocking IPv4 sockets on 127.0.0.1 (connect, listen, free ports) and the one
// send loop that test clients and scripted backends share. Below every other support file.
import Glibc

/// A failure of the test machinery itself (a socket call, a child process, a deadline), with the detail.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

func setSocketOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
    var value = value
    setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
}

/// Bounds every blocking send and receive on `fd`, so a test never hangs on a silent peer.
func setSocketTimeouts(_ fd: Int32, _ timeout: Duration) {
    let (seconds, attoseconds) = timeout.components
    var interval = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &interval, socklen_t(MemoryLayout<timeval>.size))
}

/// Closing `fd` after this sends RST instead of FIN: an abort as the peer sees it.
func setLingerZero(_ fd: Int32) {
    var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
}

private func loopback(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

/// Opens a blocking TCP connection to 127.0.0.1:`port` with TCP_NODELAY and send/receive timeouts;
/// the buffer sizes, when given, are set before connecting (so the window is small from the start).
public func connectLoopback(port: UInt16, timeout: Duration = .seconds(20),
                            receiveBuffer: Int32? = nil, sendBuffer: Int32? = nil) throws -> Int32 {
    let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    if let receiveBuffer { setSocketOption(fd, SOL_SOCKET, SO_RCVBUF, receiveBuffer) }
    if let sendBuffer { setSocketOption(fd, SOL_SOCKET, SO_SNDBUF, sendBuffer) }
    setSocketTimeouts(fd, timeout)
    setSocketOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    var address = loopback(port: port)
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        let error = errno
        Glibc.close(fd)
        throw TestFailure("connect to 127.0.0.1:\(port): errno \(error)")
    }
    return fd
}

/// A socket bound to 127.0.0.1:`port` (0: any free port), listening when `backlog` is given; returns
/// the fd and the bound port.
func bindLoopback(port: UInt16 = 0, backlog: Int32? = nil) throws -> (fd: Int32, port: UInt16) {
    let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    if backlog != nil { setSocketOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) }
    var address = loopback(port: port)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard bound == 0, named == 0, backlog.map({ Glibc.listen(fd, $0) == 0 }) ?? true else {
        let error = errno
        Glibc.close(fd)
        throw TestFailure("bind/listen on 127.0.0.1:\(port): errno \(error)")
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A port nobody listens on right now: bound on 127.0.0.1:0 without listening, then released.
public func freePort() throws -> UInt16 {
    let (fd, port) = try bindLoopback()
    Glibc.close(fd)
    return port
}

/// Writes all of `bytes` to a blocking socket (no SIGPIPE: a closed peer is an error, not a crash).
func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 {
            if errno == EINTR { continue }
            throw TestFailure("send: errno \(errno) after \(offset) of \(bytes.count) bytes")
        }
        offset += n
    }
}
