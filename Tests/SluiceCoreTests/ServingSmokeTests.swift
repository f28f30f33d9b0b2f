import Testing
@testable import SluiceCore

@Test func servingInstantsAddDurations() {
    #expect(ServingInstant(nanoseconds: 5) + .milliseconds(1) == ServingInstant(nanoseconds: 1_000_005))
}
