// Syscall wrappers for the EventLoop and TCP layers: errno becomes a typed `SyscallError`, EINTR is
// retried here and nowhere else. This file (with IOBuffer's storage) is where SluiceCore's `unsafe` lives.
import CEpoll

/// A failed system call: which call and the errno it returned.
public struct SyscallError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The call that failed, e.g. "accept4".
    public let call: StaticString
    /// The errno value (EAGAIN, ECONNREFUSED, ...).
    public let errno: Int32

    public init(_ call: StaticString, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public static func == (a: SyscallError, b: SyscallError) -> Bool {
        a.errno == b.errno && a.call.description == b.call.description
    }

    public var description: String { "\(call) failed: \(Self.message(for: errno)) (errno \(errno))" }

    /// strerror(3) text for an errno value.
    public static func message(for errno: Int32) -> String {
        // strerror returns a pointer to a static or thread-local NUL-terminated string that stays
        // valid until the next strerror call on this thread; it is copied into a String at once.
        unsafe String(cString: strerror(errno))
    }
}

/// Outcome of a non-blocking read or write that did not fail.
@frozen
public enum IOResult: Equatable, Sendable {
    /// This many bytes moved (0 from a read means end of stream).
    case processed(Int)
    /// EAGAIN: nothing can move until the next readiness edge.
    case wouldBlock
}

/// The errno values the loop treats specially.
public enum Errno {
    public static let again = EAGAIN
    public static let interrupted = EINTR
    public static let inProgress = EINPROGRESS
    public static let tooManyOpenFiles = EMFILE
    public static let fileTableFull = ENFILE
    public static let noBuffers = ENOBUFS
    public static let noMemory = ENOMEM
    public static let connectionAborted = ECONNABORTED
    public static let connectionRefused = ECONNREFUSED
    public static let connectionReset = ECONNRESET
    public static let brokenPipe = EPIPE
    public static let timedOut = ETIMEDOUT
    public static let addressInUse = EADDRINUSE
    public static let invalidArgument = EINVAL
}

/// Thin wrappers over the CEpoll shim. Each returns a value or throws `SyscallError`; EINTR is retried.
enum Syscall {
    @inline(__always)
    static func check(_ result: Int, _ call: StaticString) throws(SyscallError) -> Int {
        if result < 0 { throw SyscallError(call, errno: Int32(-result)) }
        return result
    }

    // MARK: epoll and eventfd

    static func epollCreate() throws(SyscallError) -> Int32 {
        Int32(try check(Int(sluice_epoll_create()), "epoll_create1"))
    }

    static func epollControl(_ epfd: Int32, _ op: Int32, _ fd: Int32, events: UInt32, token: UInt64) throws(SyscallError) {
        _ = try check(Int(sluice_epoll_ctl(epfd, op, fd, events, token)), "epoll_ctl")
    }

    static func eventFD() throws(SyscallError) -> Int32 {
        Int32(try check(Int(sluice_eventfd()), "eventfd"))
    }

    /// Adds one to the eventfd counter; EAGAIN (counter saturated) still leaves it readable, so it is not an error.
    static func eventFDSignal(_ fd: Int32) {
        while true {
            let r = sluice_eventfd_signal(fd)
            if r == -EINTR { continue }
            return
        }
    }

    static func close(_ fd: Int32) {
        // Never retried: on Linux the fd is released even when close reports EINTR.
        _ = sluice_close(fd)
    }

    static func monotonicNanoseconds() -> UInt64 { sluice_monotonic_ns() }

    /// CLOCK_REALTIME, nanoseconds since the Unix epoch.
    static func realtimeNanoseconds() -> Int64 { sluice_realtime_ns() }

    /// `value` with `precision` decimals as C's "%.*f" (exactly rounded), without Foundation.
    static func formatFixed(_ value: Double, precision: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        // snprintf writes at most buffer.count bytes, NUL included, into the array's storage, which
        // lives for the whole closure; a longer result (huge magnitudes) is retried with the size it needs.
        let needed = unsafe buffer.withUnsafeMutableBufferPointer { raw in
            unsafe Int(sluice_format_fixed(raw.baseAddress!, raw.count, value, precision))
        }
        if needed >= buffer.count {
            buffer = [CChar](repeating: 0, count: needed + 1)
            _ = unsafe buffer.withUnsafeMutableBufferPointer { raw in
                unsafe sluice_format_fixed(raw.baseAddress!, raw.count, value, precision)
            }
        }
        let length = min(max(needed, 0), buffer.count - 1)
        return String(decoding: buffer[0 ..< length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func cpuCount() -> Int { Int(sluice_cpu_count()) }

    // MARK: sockets

    static func socket(family: Int32) throws(SyscallError) -> Int32 {
        Int32(try check(Int(sluice_socket(family)), "socket"))
    }

    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32, _ call: StaticString = "setsockopt") throws(SyscallError) {
        _ = try check(Int(sluice_set_int_option(fd, level, name, value)), call)
    }

    static func getOption(_ fd: Int32, level: Int32, name: Int32) throws(SyscallError) -> Int32 {
        Int32(try check(Int(sluice_get_int_option(fd, level, name)), "getsockopt"))
    }

    /// The pending SO_ERROR of `fd` (0 when none).
    static func socketError(_ fd: Int32) throws(SyscallError) -> Int32 {
        Int32(try check(Int(sluice_socket_error(fd)), "getsockopt(SO_ERROR)"))
    }

    static func bind(_ fd: Int32, _ address: SocketAddress) throws(SyscallError) {
        var storage = address.storage
        // `storage` is a local sockaddr_storage; `length` never exceeds its size (set by the shim).
        _ = try check(Int(unsafe sluice_bind(fd, &storage, address.length)), "bind")
    }

    static func listen(_ fd: Int32, backlog: Int32) throws(SyscallError) {
        _ = try check(Int(sluice_listen(fd, backlog)), "listen")
    }

    /// Starts a non-blocking connect: true when connected at once, false when in progress.
    static func connect(_ fd: Int32, _ address: SocketAddress) throws(SyscallError) -> Bool {
        var storage = address.storage
        // As in bind: a local sockaddr_storage with its own length.
        let r = unsafe sluice_connect(fd, &storage, address.length)
        // EINTR on a non-blocking connect means it goes on asynchronously, like EINPROGRESS.
        if r == -EINPROGRESS || r == -EINTR { return false }
        _ = try check(Int(r), "connect")
        return true
    }

    static func localAddress(_ fd: Int32) throws(SyscallError) -> SocketAddress {
        var address = SocketAddress.emptyStorage()
        var length = socklen_t(0)
        // The shim passes sizeof(sockaddr_storage) as the capacity of the local `address`.
        _ = try check(Int(unsafe sluice_local_address(fd, &address, &length)), "getsockname")
        return SocketAddress(storage: address, length: length)
    }

    static func peerAddress(_ fd: Int32) throws(SyscallError) -> SocketAddress {
        var address = SocketAddress.emptyStorage()
        var length = socklen_t(0)
        // The shim passes sizeof(sockaddr_storage) as the capacity of the local `address`.
        _ = try check(Int(unsafe sluice_peer_address(fd, &address, &length)), "getpeername")
        return SocketAddress(storage: address, length: length)
    }

    /// accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC; nil when the queue is empty (EAGAIN).
    static func accept(_ fd: Int32) throws(SyscallError) -> Int32? {
        while true {
            let r = sluice_accept(fd)
            if r >= 0 { return r }
            if r == -EINTR { continue }
            if r == -EAGAIN { return nil }
            throw SyscallError("accept4", errno: -r)
        }
    }

    static func shutdown(_ fd: Int32, how: Int32) throws(SyscallError) {
        _ = try check(Int(sluice_shutdown(fd, how)), "shutdown")
    }

    // MARK: I/O on IOBuffer storage

    /// Reads into `buffer[offset ..< offset + count]`.
    static func read(_ fd: Int32, into buffer: IOBuffer, at offset: Int, count: Int) throws(SyscallError) -> IOResult {
        precondition(offset >= 0 && count >= 0 && offset + count <= buffer.capacity)
        while true {
            // The range was checked against the buffer's capacity above, and `buffer` (and so its
            // storage) stays alive for the duration of the call.
            let r = unsafe sluice_read(fd, buffer.base + offset, count)
            if r >= 0 { return .processed(r) }
            if r == -Int(EINTR) { continue }
            if r == -Int(EAGAIN) { return .wouldBlock }
            throw SyscallError("read", errno: Int32(-r))
        }
    }

    /// Writes all of `bytes` to a blocking descriptor (stdout, stderr, a file): short writes are
    /// continued and EINTR retried. For log lines, not for sockets on a loop.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SyscallError) {
        var offset = 0
        while offset < bytes.count {
            // `offset < bytes.count`, so the pointer and length stay inside the array's storage, which
            // lives for the whole closure.
            let r = unsafe bytes.withUnsafeBytes { raw in
                unsafe sluice_write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if r == -Int(EINTR) { continue }
            if r < 0 { throw SyscallError("write", errno: Int32(-r)) }
            if r == 0 { throw SyscallError("write", errno: EIO) }
            offset += r
        }
    }

    /// Sends one slice (send with MSG_NOSIGNAL).
    static func send(_ fd: Int32, _ slice: IOSlice) throws(SyscallError) -> IOResult {
        while true {
            // IOSlice's range is checked against its buffer at creation; the slice holds the buffer alive.
            let r = unsafe sluice_send(fd, slice.buffer.base + slice.range.lowerBound, slice.range.count)
            if r >= 0 { return .processed(r) }
            if r == -Int(EINTR) { continue }
            if r == -Int(EAGAIN) { return .wouldBlock }
            throw SyscallError("send", errno: Int32(-r))
        }
    }

    /// Sends the first `count` prepared vectors in one sendmsg (writev with MSG_NOSIGNAL).
    static func send(_ fd: Int32, vectors: IOVectors, count: Int) throws(SyscallError) -> IOResult {
        precondition(count > 0 && count <= IOVectors.capacity)
        while true {
            // The first `count` vectors were set from slices the caller keeps alive during the call.
            let r = unsafe sluice_sendv(fd, vectors.storage, Int32(count))
            if r >= 0 { return .processed(r) }
            if r == -Int(EINTR) { continue }
            if r == -Int(EAGAIN) { return .wouldBlock }
            throw SyscallError("sendmsg", errno: Int32(-r))
        }
    }

    // MARK: pipes and splice

    static func pipe() throws(SyscallError) -> (read: Int32, write: Int32) {
        var fds: (Int32, Int32) = (-1, -1)
        // A (Int32, Int32) tuple has the layout of int[2]; pipe2 writes exactly two ints.
        let r = unsafe withUnsafeMutablePointer(to: &fds) { tuple in
            unsafe tuple.withMemoryRebound(to: Int32.self, capacity: 2) { unsafe sluice_pipe($0) }
        }
        _ = try check(Int(r), "pipe2")
        return (fds.0, fds.1)
    }

    /// Moves up to `count` bytes between two fds (one must be a pipe) without copying through user space.
    static func splice(from source: Int32, to destination: Int32, count: Int) throws(SyscallError) -> IOResult {
        while true {
            let r = sluice_splice(source, destination, count)
            if r >= 0 { return .processed(r) }
            if r == -Int(EINTR) { continue }
            if r == -Int(EAGAIN) { return .wouldBlock }
            throw SyscallError("splice", errno: Int32(-r))
        }
    }

    // MARK: signals

    static func blockSignals(_ signals: [Int32]) throws(SyscallError) {
        let r = unsafe signals.withUnsafeBufferPointer { unsafe sluice_block_signals($0.baseAddress, Int32($0.count)) }
        _ = try check(Int(r), "pthread_sigmask")
    }

    static func signalFD(_ signals: [Int32]) throws(SyscallError) -> Int32 {
        let r = unsafe signals.withUnsafeBufferPointer { unsafe sluice_signalfd($0.baseAddress, Int32($0.count)) }
        return Int32(try check(Int(r), "signalfd"))
    }

    /// The next pending signal number, or nil when none is pending.
    static func readSignal(_ fd: Int32) throws(SyscallError) -> Int32? {
        let r = try check(Int(sluice_signalfd_read(fd)), "read(signalfd)")
        return r == 0 ? nil : Int32(r)
    }

    static func ignoreBrokenPipeSignal() { sluice_ignore_sigpipe() }

    static func setFileDescriptorLimit(_ soft: Int) throws(SyscallError) {
        _ = try check(Int(sluice_set_nofile_limit(UInt64(soft))), "setrlimit(RLIMIT_NOFILE)")
    }

    // MARK: threads

    /// Identifies the calling thread (pthread_self).
    static func currentThreadID() -> UInt64 { sluice_thread_id() }

    /// Starts a joinable thread that runs `body` once.
    static func startThread(name: String, _ body: @escaping @Sendable () -> Void) throws(SyscallError) -> pthread_t {
        let box = ThreadBody(name: name, body: body)
        // The retained box is released exactly once, by the new thread (or below when creation fails).
        let context = unsafe Unmanaged.passRetained(box).toOpaque()
        var thread = pthread_t()
        let rc = unsafe sluice_thread_start(&thread, { raw in
            // `raw` is the context passed below: an Unmanaged ThreadBody retained once for this thread.
            guard let raw = unsafe raw else { return nil }
            let box = unsafe Unmanaged<ThreadBody>.fromOpaque(raw).takeRetainedValue()
            // withCString's pointer is NUL-terminated and valid for the call.
            _ = unsafe box.name.withCString { unsafe sluice_set_thread_name($0) }
            box.body()
            return nil
        }, context)
        if rc != 0 {
            unsafe Unmanaged<ThreadBody>.fromOpaque(context).release()
            throw SyscallError("pthread_create", errno: rc)
        }
        return thread
    }

    static func joinThread(_ thread: pthread_t) { _ = sluice_thread_join(thread) }
}

private final class ThreadBody: Sendable {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) {
        // Linux thread names are at most 15 bytes.
        self.name = String(name.utf8.prefix(15)) ?? "sluice-loop"
        self.body = body
    }
}

/// A reusable iovec array for vectored sends; one per loop, only touched on that loop's thread.
/// @safe: the pointer is allocated once, never escapes, and every store is index-checked.
@safe final class IOVectors {
    static let capacity = 64
    let storage: UnsafeMutablePointer<iovec>

    init() {
        unsafe storage = UnsafeMutablePointer<iovec>.allocate(capacity: Self.capacity)
    }

    deinit { unsafe storage.deallocate() }

    /// Points vector `index` at `slice`.
    func set(_ index: Int, _ slice: IOSlice) {
        precondition(index >= 0 && index < Self.capacity)
        // index is in bounds; the base pointer is within the slice's live buffer (checked at slice creation).
        unsafe sluice_iovec_set(storage, Int32(index), slice.buffer.base + slice.range.lowerBound, slice.range.count)
    }
}

/// The epoll_wait result array of one loop.
/// @safe: the allocation never escapes; reads go through index-checked accessors.
@safe final class EpollEventBuffer {
    let capacity: Int
    private let raw: UnsafeMutableRawPointer
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        unsafe raw = UnsafeMutableRawPointer.allocate(byteCount: capacity * sluice_epoll_event_size(), alignment: 8)
    }

    deinit { unsafe raw.deallocate() }

    private var events: UnsafeMutablePointer<epoll_event> {
        // The allocation holds `capacity` epoll_event values; the kernel fills it, Swift only reads via the shim.
        unsafe raw.assumingMemoryBound(to: epoll_event.self)
    }

    /// epoll_wait; EINTR returns 0 events.
    func wait(_ epfd: Int32, timeoutMilliseconds: Int32) throws(SyscallError) -> Int {
        let r = unsafe sluice_epoll_wait(epfd, events, Int32(capacity), timeoutMilliseconds)
        if r == -EINTR { count = 0; return 0 }
        count = try Syscall.check(Int(r), "epoll_wait")
        return count
    }

    func mask(at index: Int) -> UInt32 {
        precondition(index < count)
        // index < count ≤ capacity: within what epoll_wait filled.
        return unsafe sluice_event_mask(events, Int32(index))
    }

    func token(at index: Int) -> UInt64 {
        precondition(index < count)
        // index < count ≤ capacity: within what epoll_wait filled.
        return unsafe sluice_event_token(events, Int32(index))
    }
}
