// TCP layer: a kernel pipe for splice(2), so upgraded connections (WebSocket, CONNECT) can be relayed
// socket → pipe → socket without copying bytes through user space.
import CEpoll

/// A non-blocking pipe used as splice's middle; bound to one loop's thread.
public final class SplicePipe {
    public let readFileDescriptor: Int32
    public let writeFileDescriptor: Int32
    /// Bytes spliced in and not yet spliced out.
    public private(set) var bufferedBytes = 0
    public private(set) var isClosed = false

    public init() throws(SyscallError) {
        let fds = try Syscall.pipe()
        readFileDescriptor = fds.read
        writeFileDescriptor = fds.write
    }

    deinit { close() }

    /// Moves up to `count` bytes from the socket `source` into the pipe. `.processed(0)` is end of stream.
    public func fill(from source: Int32, count: Int = 64 * 1024) throws(SyscallError) -> IOResult {
        let result = try Syscall.splice(from: source, to: writeFileDescriptor, count: count)
        if case .processed(let n) = result { bufferedBytes += n }
        return result
    }

    /// Moves up to everything buffered from the pipe into the socket `destination`.
    public func drain(to destination: Int32) throws(SyscallError) -> IOResult {
        guard bufferedBytes > 0 else { return .processed(0) }
        let result = try Syscall.splice(from: readFileDescriptor, to: destination, count: bufferedBytes)
        if case .processed(let n) = result { bufferedBytes -= n }
        return result
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Syscall.close(readFileDescriptor)
        Syscall.close(writeFileDescriptor)
    }
}
