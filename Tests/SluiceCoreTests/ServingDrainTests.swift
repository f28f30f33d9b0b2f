import Testing
@testable import SluiceCore

private func waitForDrain(_ drain: inout DrainStateMachine, _ now: ServingInstant) -> Bool {
    drain.waitForDrainRequested(at: now)
}

@Suite("Drain", .timeLimit(.minutes(1)))
struct ServingDrainTests {
    let settings = DrainSettings(quietPeriod: .seconds(30), upgradedConnectionGrace: .seconds(60), hardCap: .seconds(300))

    @Test("SIGTERM fails probes at once and starts a 30 s quiet period")
    func signalStartsQuietPeriod() {
        var drain = DrainStateMachine(settings: settings)
        #expect(!drain.isDraining)
        #expect(drain.signalReceived(at: at(1000)) == DrainStateMachine.Effects())
        #expect(drain.isDraining)
        #expect(drain.phase == .quietPeriod(deadline: at(31000)))
        #expect(drain.nextDeadline == at(31000))
    }

    @Test("each request restarts the quiet period; probes do not touch it")
    func requestsRearm() {
        var drain = DrainStateMachine(settings: settings)
        _ = drain.signalReceived(at: at(0))
        drain.requestArrived(at: at(20000))
        #expect(drain.phase == .quietPeriod(deadline: at(50000)))
        #expect(drain.advance(at: at(30000), inFlightRequests: 0, upgradedConnections: 0) == DrainStateMachine.Effects())
        drain.requestArrived(at: at(49000))
        #expect(drain.nextDeadline == at(79000))
    }

    @Test("after a quiet period: drain waiters released, listeners closed, in-flight finish, then exit")
    func fullSequence() {
        var drain = DrainStateMachine(settings: settings)
        _ = drain.signalReceived(at: at(0))
        var effects = drain.advance(at: at(30000), inFlightRequests: 2, upgradedConnections: 1)
        #expect(effects.releaseDrainWaiters)
        #expect(effects.stopAccepting)
        #expect(effects.finished == nil)
        #expect(drain.phase == .finishingRequests)
        drain.requestArrived(at: at(31000))
        #expect(drain.phase == .finishingRequests, "no re-arming once the quiet period passed")
        effects = drain.advance(at: at(40000), inFlightRequests: 0, upgradedConnections: 1)
        #expect(drain.phase == .finishingUpgradedConnections(deadline: at(100000)))
        #expect(effects.finished == nil)
        effects = drain.advance(at: at(50000), inFlightRequests: 0, upgradedConnections: 0)
        #expect(effects.finished == .completed)
        #expect(drain.phase == .finished(.completed))
        #expect(drain.nextDeadline == nil)
    }

    @Test("upgraded connections get at most 60 s after ordinary requests are done")
    func upgradedGrace() {
        var drain = DrainStateMachine(settings: settings)
        _ = drain.signalReceived(at: at(0))
        _ = drain.advance(at: at(30000), inFlightRequests: 0, upgradedConnections: 3)
        #expect(drain.nextDeadline == at(90000))
        #expect(drain.advance(at: at(89999), inFlightRequests: 0, upgradedConnections: 3).finished == nil)
        #expect(drain.advance(at: at(90000), inFlightRequests: 0, upgradedConnections: 3).finished == .upgradedConnectionsTimedOut)
    }

    @Test("the hard cap ends the shutdown wherever it stands")
    func hardCap() {
        var drain = DrainStateMachine(settings: DrainSettings(quietPeriod: .seconds(30), hardCap: .seconds(45)))
        _ = drain.signalReceived(at: at(0))
        drain.requestArrived(at: at(29000))
        #expect(drain.nextDeadline == at(45000))
        let effects = drain.advance(at: at(45000), inFlightRequests: 5, upgradedConnections: 0)
        #expect(effects.finished == .hardCapReached)
        #expect(effects.releaseDrainWaiters)
        #expect(effects.stopAccepting)
    }

    @Test("a second signal stops at once")
    func secondSignal() {
        var drain = DrainStateMachine(settings: settings)
        _ = drain.signalReceived(at: at(0))
        let effects = drain.signalReceived(at: at(1000))
        #expect(effects.finished == .secondSignal)
        #expect(effects.stopAccepting)
    }

    @Test("/wait-for-drain starts the drain and is answered when the quiet period passes")
    func waitForDrainWithSignal() {
        var drain = DrainStateMachine(settings: settings)
        #expect(!waitForDrain(&drain, at(0)))
        #expect(drain.isDraining)
        _ = drain.signalReceived(at: at(500))
        #expect(drain.advance(at: at(1000), inFlightRequests: 1, upgradedConnections: 0) == DrainStateMachine.Effects(), "signal arrived: the drain stays on")
        let effects = drain.advance(at: at(30000), inFlightRequests: 1, upgradedConnections: 0)
        #expect(effects.releaseDrainWaiters)
        #expect(effects.stopAccepting)
        #expect(waitForDrain(&drain, at(30001)), "late callers are answered at once")
    }

    @Test("/wait-for-drain without SIGTERM within 1 s was a liveness restart: the drain is called off")
    func waitForDrainWithoutSignal() {
        var drain = DrainStateMachine(settings: settings)
        #expect(!waitForDrain(&drain, at(0)))
        #expect(drain.nextDeadline == at(1000))
        let effects = drain.advance(at: at(1000), inFlightRequests: 0, upgradedConnections: 0)
        #expect(effects.drainCancelled)
        #expect(effects.releaseDrainWaiters)
        #expect(!effects.stopAccepting)
        #expect(!drain.isDraining)
        #expect(drain.phase == .serving)
    }

    @Test("a short quiet period that ends before the signal waits for it, then closes at once")
    func quietPeriodEndsBeforeSignal() {
        var drain = DrainStateMachine(settings: DrainSettings(quietPeriod: .milliseconds(200), hardCap: nil))
        #expect(!waitForDrain(&drain, at(0)))
        var effects = drain.advance(at: at(200), inFlightRequests: 0, upgradedConnections: 0)
        #expect(effects.releaseDrainWaiters)
        #expect(drain.phase == .quietPeriodEnded)
        effects = drain.signalReceived(at: at(500))
        #expect(effects.stopAccepting)
        #expect(drain.phase == .finishingRequests)
        #expect(drain.advance(at: at(501), inFlightRequests: 0, upgradedConnections: 0).finished == .completed)
    }
}
