// Tests for applying KPA decisions: bounds, the scale-to-zero gate, SKS mode, activators, Active condition.
import Testing
@testable import SluiceCore

private func unixAt(_ s: Int64) -> UnixTime { UnixTime(seconds: s) }

@Suite("KPA reconciler rules")
struct AutoscalingReconcilerTests {
    static func settings(_ config: [String: String] = [:], _ annotations: [String: String] = [:],
                         reachability: Reachability = .reachable) -> ScaleSettings {
        ScaleSettings(config: (try? AutoscalerConfig.parse(config)) ?? AutoscalerConfig(),
                      annotations: RevisionAnnotations(annotations), reachability: reachability)
    }
    static func status(_ state: ActiveState, since: Int64, initialized: Bool = true) -> PodAutoscalerStatus {
        PodAutoscalerStatus(active: ActiveCondition(state: state, since: unixAt(since)), scaleTargetInitialized: initialized)
    }
    static let proxy = ServerlessServiceObservation(mode: .proxy, activatorEndpointsSince: unixAt(100))

    @Test("the last pod goes only after the grace period since the revision became inactive")
    func gracePeriod() {
        let s = Self.settings()
        let st = Self.status(.inactive, since: 100)
        var probes = 0
        let early = PodAutoscalerReconciler.scale(desired: 0, settings: s, status: st, serverlessService: Self.proxy,
                                                  now: unixAt(110)) { probes += 1; return true }
        #expect(early == ScaleOutcome(desired: 0, apply: false, requeueAfter: .seconds(20)))
        let late = PodAutoscalerReconciler.scale(desired: 0, settings: s, status: st, serverlessService: Self.proxy,
                                                 now: unixAt(130)) { probes += 1; return true }
        #expect(late == ScaleOutcome(desired: 0, apply: true))
        #expect(probes == 2)
    }

    @Test("an activator in the path for the grace period already allows scaling to zero")
    func activatorLongInPath() {
        let sks = ServerlessServiceObservation(mode: .proxy, activatorEndpointsSince: unixAt(50))
        let r = PodAutoscalerReconciler.scale(desired: 0, settings: Self.settings(), status: Self.status(.inactive, since: 100),
                                              serverlessService: sks, now: unixAt(110)) { true }
        #expect(r == ScaleOutcome(desired: 0, apply: true))
    }

    @Test("the pod-retention period keeps the last pod longer, except for unreachable revisions")
    func retention() {
        let s = Self.settings([:], ["autoscaling.knative.dev/scale-to-zero-pod-retention-period": "1m"])
        let st = Self.status(.inactive, since: 100)
        let sks = ServerlessServiceObservation(mode: .proxy, activatorEndpointsSince: unixAt(0))
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: s, status: st, serverlessService: sks, now: unixAt(110)) { true }
                == ScaleOutcome(desired: 0, apply: false, requeueAfter: .seconds(50)))
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: s, status: st, serverlessService: sks, now: unixAt(160)) { true }
                == ScaleOutcome(desired: 0, apply: true))
        let unreachable = Self.settings(["scale-to-zero-pod-retention-period": "1m"], reachability: .unreachable)
        #expect(unreachable.podRetention == .zero)
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: unreachable, status: st, serverlessService: sks, now: unixAt(110)) { true }
                == ScaleOutcome(desired: 0, apply: true))
    }

    @Test("without the activator verified in the path nothing is removed; with TBC -1 no probe is needed")
    func activatorProbe() {
        let st = Self.status(.inactive, since: 0)
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: Self.settings(), status: st, serverlessService: Self.proxy,
                                              now: unixAt(500)) { false }
                == ScaleOutcome(desired: 0, apply: false, startActivatorProbe: true))
        var probed = false
        let r = PodAutoscalerReconciler.scale(desired: 0, settings: Self.settings(["target-burst-capacity": "-1"]), status: st,
                                              serverlessService: Self.proxy, now: unixAt(500)) { probed = true; return false }
        #expect(r == ScaleOutcome(desired: 0, apply: true))
        #expect(!probed)
    }

    @Test("an active revision keeps one pod until it has been active for a stable window")
    func activeKeepsOnePod() {
        let st = Self.status(.active, since: 100)
        let serve = ServerlessServiceObservation(mode: .serve)
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: Self.settings(), status: st, serverlessService: serve, now: unixAt(130)) { true }
                == ScaleOutcome(desired: 1, apply: true, requeueAfter: .seconds(30)))
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: Self.settings(), status: st, serverlessService: serve, now: unixAt(160)) { true }
                == ScaleOutcome(desired: 0, apply: false))
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: Self.settings(), status: st, serverlessService: Self.proxy, now: unixAt(160)) { true }
                == ScaleOutcome(desired: 0, apply: false, requeueAfter: .seconds(3)))
    }

    @Test("activation gives up after the progress deadline plus 30 s")
    func activationTimeout() {
        let s = Self.settings([:], ["serving.knative.dev/progress-deadline": "60s"])
        #expect(s.activationTimeout == .seconds(90))
        let st = Self.status(.activating, since: 0)
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: s, status: st, serverlessService: Self.proxy, now: unixAt(90)) { true }
                == ScaleOutcome(desired: -1, apply: false, requeueAfter: .seconds(90)))
        #expect(PodAutoscalerReconciler.scale(desired: 0, settings: s, status: st, serverlessService: Self.proxy, now: unixAt(91)) { true }
                == ScaleOutcome(desired: 0, apply: true))
    }

    @Test("scale to zero disabled keeps one pod")
    func scaleToZeroDisabled() {
        let r = PodAutoscalerReconciler.scale(desired: 0, settings: Self.settings(["enable-scale-to-zero": "false"]),
                                              status: Self.status(.inactive, since: 0), serverlessService: Self.proxy, now: unixAt(900)) { true }
        #expect(r == ScaleOutcome(desired: 1, apply: true))
    }

    @Test("bounds: min and max clamp, initial scale raises min until initialized, unreachable ignores min", arguments: [
        (Int32(5), [String: String](), ["autoscaling.knative.dev/max-scale": "3"], Reachability.reachable, true, Int32(3)),
        (0, [:], ["autoscaling.knative.dev/min-scale": "2"], .reachable, true, 2),
        (1, [:], ["autoscaling.knative.dev/initial-scale": "3"], .reachable, false, 3),
        (1, [:], ["autoscaling.knative.dev/initial-scale": "3"], .reachable, true, 1),
        (1, ["min-scale": "4"], [:], .reachable, true, 4),
        (1, ["min-scale": "4"], [:], .unreachable, true, 1),
        (-1, [:], ["autoscaling.knative.dev/initial-scale": "2"], .reachable, false, 2),
    ])
    func bounds(desired: Int32, config: [String: String], annotations: [String: String], reachability: Reachability,
                initialized: Bool, expected: Int32) {
        let state: ActiveState = desired < 0 ? .activating : .active
        let r = PodAutoscalerReconciler.scale(desired: desired, settings: Self.settings(config, annotations, reachability: reachability),
                                              status: Self.status(state, since: 0, initialized: initialized),
                                              serverlessService: ServerlessServiceObservation(mode: .serve), now: unixAt(10)) { true }
        #expect(r.desired == expected)
        #expect(r.apply)
    }

    @Test("an unknown desire (-1) is left alone unless the revision is activating")
    func unknownDesire() {
        let r = PodAutoscalerReconciler.scale(desired: -1, settings: Self.settings(), status: Self.status(.active, since: 0),
                                              serverlessService: Self.proxy, now: unixAt(10)) { true }
        #expect(r == ScaleOutcome(desired: -1, apply: false))
    }

    @Test("activators cover ready capacity plus burst capacity, at least two", arguments: [
        (0, 200.0, Int32(2)), (1, 200, 3), (15, 200, 17), (5, -1, 5), (50, 0, 2),
    ])
    func activators(ready: Int, tbc: Double, expected: Int32) {
        let spec = DeciderSpec(totalValue: 100, targetBurstCapacity: tbc, activatorCapacity: 100)
        #expect(PodAutoscalerReconciler.activatorCount(readyPods: ready, spec: spec) == expected)
    }

    @Test("the activator leaves the path only when pods are wanted and burst capacity is not negative")
    func serverlessServiceMode() {
        #expect(PodAutoscalerReconciler.serverlessServiceMode(want: 3, excessBurstCapacity: 0) == .serve)
        #expect(PodAutoscalerReconciler.serverlessServiceMode(want: 3, excessBurstCapacity: -1) == .proxy)
        #expect(PodAutoscalerReconciler.serverlessServiceMode(want: 0, excessBurstCapacity: 100) == .proxy)
    }

    @Test("the Active condition follows Knative's table", arguments: [
        (Int32(0), 0, ActiveState.activating, ActiveState.inactive, "TimedOut"),
        (0, 1, .active, .inactive, "NoTraffic"),
        (3, 0, .inactive, .activating, "Queued"),
        (-1, 0, .inactive, .inactive, "NoTraffic"),
        (-1, 0, .active, .activating, "Queued"),
        (3, 1, .inactive, .active, ""),
        (-1, 1, .inactive, .inactive, "old"),
        (-1, 1, .activating, .active, ""),
    ])
    func activeCondition(want: Int32, ready: Int, previous: ActiveState, expected: ActiveState, reason: String) {
        var st = PodAutoscalerStatus(active: ActiveCondition(state: previous, since: unixAt(0), reason: "old"),
                                     scaleTargetInitialized: true, desiredScale: 2)
        PodAutoscalerReconciler.computeStatus(&st, want: want, readyPods: ready, settings: Self.settings(), now: unixAt(50))
        #expect(st.active.state == expected)
        #expect(st.active.reason == reason)
        #expect(st.active.since == (previous == expected ? unixAt(0) : unixAt(50)))
        #expect(st.actualScale == Int32(ready))
        #expect(st.desiredScale == (want == -1 ? 2 : want))
    }

    @Test("a full reconcile patches replicas only when they differ and reports the SKS mode")
    func reconcile() {
        let spec = DeciderSpec(totalValue: 100, targetBurstCapacity: 200)
        let st = Self.status(.active, since: 0)
        let out = PodAutoscalerReconciler.reconcile(
            decider: DeciderStatus(desiredScale: 4, excessBurstCapacity: 10), spec: spec, settings: Self.settings(), status: st,
            serverlessService: ServerlessServiceObservation(mode: .serve), readyPods: 2, currentReplicas: 2, now: unixAt(10)) { true }
        #expect(out.want == 4)
        #expect(out.patchReplicas == 4)
        #expect(out.serverlessServiceMode == .serve)
        #expect(out.activatorCount == 4)
        #expect(out.status.active.state == .active)
        let same = PodAutoscalerReconciler.reconcile(
            decider: DeciderStatus(desiredScale: 1, excessBurstCapacity: -5), spec: spec, settings: Self.settings(), status: st,
            serverlessService: ServerlessServiceObservation(mode: .serve), readyPods: 1, currentReplicas: nil, now: unixAt(10)) { true }
        #expect(same.patchReplicas == nil)
        #expect(same.serverlessServiceMode == .proxy)
    }
}

@Suite("Static pod list scaler")
struct StaticPodListTests {
    @Test("flags and YAML files describe pods; applied scales are recorded; unknown revisions are errors")
    func staticPods() throws {
        let list = try StaticPodList.parse(flags: ["default/hello-1=a@127.0.0.1:9091", "default/hello-1=b@127.0.0.1:9092"])
        let key = RevisionKey(namespace: "default", name: "hello-1")
        #expect(list.readyPodCount(of: key) == .ready(2))
        #expect(list.readyPodCount(of: RevisionKey(namespace: "x", name: "y")) == .notFound)
        #expect(try list.currentReplicas(of: key) == 2)
        try list.applyScale(5, to: key)
        #expect(try list.currentReplicas(of: key) == 5)
        #expect(throws: ScalerError.unknownRevision(RevisionKey(namespace: "x", name: "y"))) {
            try list.applyScale(1, to: RevisionKey(namespace: "x", name: "y"))
        }
        #expect(throws: StaticPodListError.self) { try StaticPodList.parse(flags: ["hello=a@h:1"]) }
        #expect(throws: StaticPodListError.self) { try StaticPodList.parse(flags: ["ns/hello=a"]) }

        let yaml = """
            revisions:
              - namespace: prod
                name: api-00002
                pods:
                  - {name: api-a, address: "127.0.0.1:9191"}
            """
        let fromFile = try StaticPodList.parse(yaml: yaml, file: "pods.yaml")
        #expect(fromFile.readyPods(of: RevisionKey(namespace: "prod", name: "api-00002")).map(\.address) == ["127.0.0.1:9191"])
        #expect(throws: StaticPodListError.self) {
            try StaticPodList.parse(yaml: "revisions:\n  - name: x\n    pods:\n      - {name: p}\n", file: "pods.yaml")
        }
    }
}
