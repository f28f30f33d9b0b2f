import Testing
@testable import SluiceCore

@Suite("Serving clock", .timeLimit(.minutes(1)))
struct ServingClockTests {
    @Test("instants add durations and subtract to durations, saturating instead of overflowing")
    func arithmetic() {
        #expect(at(1) + .milliseconds(2) == at(3))
        #expect(at(5) - at(2) == .milliseconds(3))
        #expect(ServingInstant(nanoseconds: .max - 1) + .seconds(10) == ServingInstant(nanoseconds: .max))
        #expect(Duration.seconds(1.5).servingNanoseconds == 1_500_000_000)
        #expect(Duration.milliseconds(250).servingSeconds == 0.25)
    }

    @Test("the system clock never goes backwards; a manual clock moves only when told")
    func clocks() {
        let system = SystemServingClock()
        let first = system.now()
        #expect(system.now() >= first)
        let manual = ManualServingClock(at(10))
        #expect(manual.now() == at(10))
        manual.advance(.milliseconds(5))
        #expect(manual.now() == at(15))
    }
}
