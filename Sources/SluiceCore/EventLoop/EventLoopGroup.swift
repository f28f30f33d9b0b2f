// EventLoop layer: N loops, one thread each (default: one per usable core), and their orderly shutdown.
import CEpoll
import Logging
import Synchronization

/// A fixed set of event loops, each on its own thread.
///
/// `shutdown()` (or `requestShutdown()` + `wait()`) stops every loop; each loop closes every fd it
/// holds (connections, listeners, signalfd, its epoll and eventfd) before its thread ends.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let threads: Mutex<[pthread_t]>
    private let nextIndex = Atomic<Int>(0)

    /// Loops by default: the CPUs this process may run on (taskset and cpusets honoured).
    public static var defaultLoopCount: Int { Syscall.cpuCount() }

    /// Creates and starts `loopCount` loops. SIGPIPE is ignored process-wide from here on (splice
    /// cannot suppress it per call, and no server wants to die of a peer that went away).
    public init(
        loopCount: Int = EventLoopGroup.defaultLoopCount,
        configuration: EventLoop.Configuration = EventLoop.Configuration(),
        logger: Logger = Logger(label: "sluice.eventloop")
    ) throws(SyscallError) {
        precondition(loopCount > 0, "an EventLoopGroup needs at least one loop")
        Syscall.ignoreBrokenPipeSignal()
        var loops: [EventLoop] = []
        for _ in 0 ..< loopCount {
            loops.append(try EventLoop(configuration: configuration, logger: logger))
        }
        self.loops = loops
        var started: [pthread_t] = []
        for (index, loop) in loops.enumerated() {
            do {
                started.append(try Syscall.startThread(name: "\(configuration.name)-\(index)") { loop.run() })
            } catch {
                for loop in loops { loop.requestStop() }
                for thread in started { Syscall.joinThread(thread) }
                throw error
            }
        }
        threads = Mutex(started)
    }

    /// Loops in turn (for spreading outbound work).
    public func next() -> EventLoop {
        let i = nextIndex.add(1, ordering: .relaxed).oldValue
        return loops[i % loops.count]
    }

    /// The loop whose thread is calling, if any.
    public var currentLoop: EventLoop? { loops.first { $0.inEventLoop } }

    /// Asks every loop to stop; safe from any thread, including a loop's own (e.g. a signal handler).
    public func requestShutdown() {
        for loop in loops { loop.requestStop() }
    }

    /// Waits until every loop's thread has ended. Not from a loop thread.
    public func wait() {
        precondition(currentLoop == nil, "EventLoopGroup.wait() called on one of its own loops")
        let toJoin = threads.withLock { threads in
            let all = threads
            threads.removeAll()
            return all
        }
        for thread in toJoin { Syscall.joinThread(thread) }
    }

    /// Stops every loop and waits for their threads. Not from a loop thread.
    public func shutdown() {
        requestShutdown()
        wait()
    }
}
