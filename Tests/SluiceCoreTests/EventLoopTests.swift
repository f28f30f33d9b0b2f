// Tests for the EventLoop layer: execute from other threads, timers, deadlines, group shutdown.
import Foundation
import Glibc
import Synchronization
import Testing
@testable import SluiceCore

@Suite("EventLoop", .timeLimit(.minutes(1)))
struct EventLoopTests {
    @Test("execute runs a task handed over from another thread on the loop's own thread")
    func executeRunsOnTheLoopThread() throws {
        let group = try EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        #expect(!loop.inEventLoop)
        let ranOnLoop = try onLoop(loop) { loop.inEventLoop }
        #expect(ranOnLoop)
    }
}
