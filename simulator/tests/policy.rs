//! The operator's policy on simulated workloads.

use millpond_simulator::{self as simulate, PolicyKind, Setup, Shape, Workload};

#[test]
fn oscillating_load_does_not_flap() {
    let setup = Setup::default();
    let mut changes = vec![];
    for period in [240, 600, 1_200, 2_400] {
        let w = Workload {
            name: "wave",
            title: "wave",
            duration: 7_200,
            shape: Shape::Sine {
                mean: 20_000.0,
                amplitude: 16_000.0,
                period,
            },
            stuck: None,
            hot: None,
            pods: Default::default(),
            start_replicas: 1,
        };
        for kind in [PolicyKind::Millpond, PolicyKind::MillpondFixedLimits] {
            let trace = simulate::run(&w, kind, &setup);
            let s = &trace.summary;
            // Direction changes of the replica count.
            let mut reversals = 0;
            let mut last = None;
            for pair in trace.samples.windows(2) {
                if pair[0].replicas != pair[1].replicas {
                    let up = pair[1].replicas > pair[0].replicas;
                    if last.is_some_and(|l| l != up) {
                        reversals += 1;
                    }
                    last = Some(up);
                }
            }
            let cycles = 7_200 / period;
            assert_eq!(s.flaps, 0, "period {period}s {}: {s:?}", kind.name());
            // At most one turn up and one turn down per cycle.
            assert!(
                reversals <= 2 * cycles,
                "period {period}s: {reversals} reversals"
            );
            changes.push((period, kind.name(), reversals));
        }
    }
    // A wave shorter than the scale-down window is ridden at its peak.
    assert!(
        changes.iter().filter(|c| c.0 == 240).all(|c| c.2 <= 1),
        "{changes:?}"
    );
}
