// EventLoop layer: SIGTERM/SIGINT (or any signals) delivered as loop events through a signalfd, so
// every binary's graceful shutdown runs on a loop like any other callback.
import CEpoll

/// Delivers signals to a handler on one loop.
///
/// Signals must be blocked in every thread first, or the kernel may run their default action on a
/// thread that did not block them: call `SignalSource.block` at the top of `main`, before creating
/// the EventLoopGroup (threads inherit the mask).
public final class SignalSource: EventLoopHandler {
    public let loop: EventLoop
    public let signals: [Int32]
    private let fd: Int32
    private var token = HandlerToken.invalid
    private var handler: ((Int32) -> Void)?

    /// Blocks `signals` for the calling thread and the threads it creates later.
    public static func block(_ signals: [Int32]) throws(SyscallError) {
        try Syscall.blockSignals(signals)
    }

    /// On `loop`'s thread: `handler` runs there for each arriving signal in `signals` (which must be blocked).
    public init(on loop: EventLoop, signals: [Int32], handler: @escaping (Int32) -> Void) throws(SyscallError) {
        self.loop = loop
        self.signals = signals
        self.handler = handler
        fd = try Syscall.signalFD(signals)
        do {
            token = try loop.register(fileDescriptor: fd, events: .readInterest, handler: self)
        } catch {
            Syscall.close(fd)
            throw error
        }
    }

    /// From any thread: installs a SignalSource on `loop`; `handler` runs on that loop.
    public static func install(on loop: EventLoop, signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        loop.execute {
            do {
                let source = try SignalSource(on: loop, signals: signals, handler: handler)
                _ = source // the loop's slot table keeps it alive until shutdown
            } catch {
                loop.logger.critical("cannot install signal handling", metadata: ["error": "\(error)"])
            }
        }
    }

    public func handleEvents(_ events: IOEvents) {
        // Edge-triggered: drain every pending signal.
        while handler != nil {
            let signal: Int32?
            do {
                signal = try Syscall.readSignal(fd)
            } catch {
                loop.logger.error("reading signalfd failed", metadata: ["error": "\(error)"])
                return
            }
            guard let signal else { return }
            handler?(signal)
        }
    }

    public func closeForShutdown() { close() }

    /// Stops delivery and closes the signalfd (the signals stay blocked).
    public func close() {
        guard handler != nil else { return }
        handler = nil
        loop.removeHandler(token)
        Syscall.close(fd)
        loop.fileDescriptorReleased()
    }
}
