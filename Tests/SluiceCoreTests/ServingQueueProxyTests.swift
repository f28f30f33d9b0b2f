import Testing
@testable import SluiceCore

private func forwarded(_ fields: [(String, String)]) -> String? {
    var value: [UInt8] = []
    return ForwardedHeaderShim.synthesize(from: ListedHeaders(fields), into: &value) ? text(value) : nil
}

@Suite("Forwarded shim and upstream headers", .timeLimit(.minutes(1)))
struct ServingForwardedTests {
    @Test("Forwarded is built from X-Forwarded-* as Knative does", arguments: [
        ([("X-Forwarded-For", "1.1.1.1")], "for=1.1.1.1"),
        ([("X-Forwarded-For", "1.1.1.1, 2.2.2.2 ,3.3.3.3")], "for=1.1.1.1, for=2.2.2.2, for=3.3.3.3"),
        ([("X-Forwarded-For", "2001:db8::1")], "for=\"[2001:db8::1]\""),
        ([("X-Forwarded-For", "1.1.1.1, 2001:db8::2")], "for=1.1.1.1, for=\"[2001:db8::2]\""),
        ([("X-Forwarded-Proto", "https")], "proto=https"),
        ([("X-Forwarded-Host", "example.com")], "host=example.com"),
        ([("X-Forwarded-Host", "example.com"), ("X-Forwarded-Proto", "https")], "host=example.com;proto=https"),
        ([("X-Forwarded-For", "1.1.1.1, 2.2.2.2"), ("X-Forwarded-Host", "h"), ("X-Forwarded-Proto", "http")], "for=1.1.1.1;host=h;proto=http, for=2.2.2.2"),
    ])
    func synthesized(fields: [(String, String)], expected: String) {
        #expect(forwarded(fields) == expected)
    }

    @Test("nothing is added when Forwarded exists or no X-Forwarded-* is present")
    func notSynthesized() {
        #expect(forwarded([("Forwarded", "for=9.9.9.9"), ("X-Forwarded-For", "1.1.1.1")]) == nil)
        #expect(forwarded([("User-Agent", "curl")]) == nil)
        #expect(forwarded([("X-Forwarded-For", "")]) == nil)
    }

    @Test("X-Forwarded-For gets the peer appended after every incoming value")
    func xForwardedFor() {
        var value: [UInt8] = []
        ForwardedHeaderShim.appendingPeer(to: ListedHeaders([("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]), peerAddress: Array("10.0.0.1".utf8), into: &value)
        #expect(text(value) == "1.1.1.1, 2.2.2.2, 10.0.0.1")
        ForwardedHeaderShim.appendingPeer(to: ListedHeaders(), peerAddress: Array("::1".utf8), into: &value)
        #expect(text(value) == "::1")
    }

    @Test("revision routing headers are removed; K-Original-Host replaces Host")
    func upstreamRules() {
        let headers = ListedHeaders([("Host", "activator"), ("K-Original-Host", "hello.default.example.com"), ("Knative-Serving-Revision", "r"), ("X-Keep", "1")])
        let plan = UpstreamHeaderPlan.forRequest(headers, traits: QueueRequestTraits(isKubeletProbe: false, isProbe: false, isProxiedByActivator: true))
        #expect(plan.hostOverride.map(text) == "hello.default.example.com")
        #expect(!plan.forwards(fieldNamed: "host".utf8))
        #expect(!plan.forwards(fieldNamed: "K-Original-Host".utf8))
        #expect(!plan.forwards(fieldNamed: "knative-serving-revision".utf8))
        #expect(!plan.forwards(fieldNamed: "Knative-Serving-Namespace".utf8))
        #expect(plan.forwards(fieldNamed: "X-Keep".utf8))
        #expect(plan.forwards(fieldNamed: "traceparent".utf8))
        #expect(plan.forwards(fieldNamed: "K-Proxy-Request".utf8))
    }

    @Test("without K-Original-Host, or for a kubelet probe, Host is kept")
    func hostKept() {
        let none = UpstreamHeaderPlan.forRequest(ListedHeaders([("Host", "a")]), traits: QueueRequestTraits(isKubeletProbe: false, isProbe: false, isProxiedByActivator: false))
        #expect(none.hostOverride == nil)
        #expect(none.forwards(fieldNamed: "Host".utf8))
        let probe = UpstreamHeaderPlan.forRequest(ListedHeaders([("K-Original-Host", "b")]), traits: QueueRequestTraits(isKubeletProbe: true, isProbe: true, isProxiedByActivator: false))
        #expect(probe.hostOverride == nil)
    }

    @Test("route tags follow Knative's rules")
    func routeTags() {
        #expect(RouteTag.of(ListedHeaders()) == .disabled)
        #expect(RouteTag.of(ListedHeaders([("Knative-Serving-Default-Route", "true")])) == .defaultRoute)
        #expect(RouteTag.of(ListedHeaders([("Knative-Serving-Tag", "blue"), ("Knative-Serving-Default-Route", "true")])) == .undefined)
        #expect(RouteTag.of(ListedHeaders([("Knative-Serving-Tag", "blue"), ("Knative-Serving-Default-Route", "false")])).label == "blue")
        #expect(RouteTag<[UInt8]>.disabled.label == "kn:disabled")
        #expect(RouteTag<[UInt8]>.defaultRoute.label == "kn:default")
        #expect(RouteTag<[UInt8]>.undefined.label == "kn:undefined")
    }

    @Test("the trace id comes from traceparent, else X-B3-TraceId")
    func traceID() {
        func id(_ fields: [(String, String)]) -> String? {
            TraceContextHeader.withTraceID(in: ListedHeaders(fields)) { $0.map { text(Array($0)) } }
        }
        #expect(id([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]) == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(id([("X-B3-TraceId", "80f198ee56343ba8")]) == "80f198ee56343ba8")
        #expect(id([("traceparent", "garbage"), ("X-B3-TraceId", "b3")]) == "b3")
        #expect(id([]) == nil)
        #expect(TraceContextHeader.all.contains("traceparent"))
        #expect(TraceContextHeader.all.contains("b3"))
    }
}

@Suite("Request timeouts", .timeLimit(.minutes(1)))
struct ServingTimeoutTests {
    @Test("the revision timeout answers 504 when nothing was sent")
    func totalBeforeStart() {
        var timeouts = RequestTimeouts(limits: RevisionTimeouts(total: .seconds(10)), startedAt: at(0))
        #expect(timeouts.nextDeadline == at(10000))
        #expect(timeouts.check(at: at(9999)) == nil)
        #expect(timeouts.check(at: at(10000)) == .respondGatewayTimeout(.total))
        #expect(timeouts.check(at: at(10001)) == nil, "fires once")
        #expect(timeouts.nextDeadline == nil)
    }

    @Test("after streaming started the revision timeout appends the message and ends the response")
    func totalAfterStart() {
        var timeouts = RequestTimeouts(limits: RevisionTimeouts(total: .seconds(10)), startedAt: at(0))
        timeouts.noteWrite(at: at(100))
        #expect(timeouts.check(at: at(10000)) == .abortStartedResponse(.total))
        #expect(RequestTimeouts.queueProxyMessage == "request timeout")
        #expect(RequestTimeouts.activatorMessage == "activator request timeout")
    }

    @Test("the response-start timeout only applies before the first byte")
    func responseStart() {
        var before = RequestTimeouts(limits: RevisionTimeouts(total: .seconds(300), responseStart: .seconds(5)), startedAt: at(0))
        #expect(before.nextDeadline == at(5000))
        #expect(before.check(at: at(5000)) == .respondGatewayTimeout(.responseStart))

        var after = RequestTimeouts(limits: RevisionTimeouts(total: .seconds(300), responseStart: .seconds(5)), startedAt: at(0))
        after.noteWrite(at: at(4000))
        #expect(after.nextDeadline == at(300000))
        #expect(after.check(at: at(5000)) == nil)
    }

    @Test("the idle timeout runs from the start before the first byte, then from each write")
    func idle() {
        var timeouts = RequestTimeouts(limits: RevisionTimeouts(total: .seconds(300), idle: .seconds(2)), startedAt: at(0))
        #expect(timeouts.nextDeadline == at(2000))
        timeouts.noteWrite(at: at(1500))
        #expect(timeouts.nextDeadline == at(3500))
        #expect(timeouts.check(at: at(3000)) == nil)
        timeouts.noteWrite(at: at(3000))
        #expect(timeouts.check(at: at(4999)) == nil)
        #expect(timeouts.check(at: at(5000)) == .abortStartedResponse(.idle))

        var silent = RequestTimeouts(limits: RevisionTimeouts(total: .seconds(300), idle: .seconds(2)), startedAt: at(0))
        #expect(silent.check(at: at(2000)) == .respondGatewayTimeout(.idle))
    }

    @Test("zero or missing limits are off")
    func off() {
        let limits = RevisionTimeouts(total: .zero, responseStart: .zero, idle: nil)
        #expect(limits.total == nil)
        var timeouts = RequestTimeouts(limits: limits, startedAt: at(0))
        #expect(timeouts.nextDeadline == nil)
        #expect(timeouts.check(at: at(1_000_000)) == nil)
    }
}
