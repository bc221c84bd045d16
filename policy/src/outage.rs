//! A sink that takes no writes. The pods retry their writes without end
//! and report it (`millpond_sink_up` 0, with how long and the sink's last
//! error); more pods or larger limits cannot help, and what the pods do
//! meanwhile (no records delivered, every write failing or slow) says
//! nothing of what they or the sink can do once it is back.

use crate::model::Observation;

/// The pods whose sink is down, for how long, and its last error.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkOutage {
    /// Pods reporting their sink down, by name.
    pub pods: Vec<String>,
    /// Seconds since the first failed write, on the pod down longest.
    pub seconds: f64,
    /// The sink's last error, as that pod reported it (another pod's when
    /// it reported none).
    pub error: String,
}

/// The outage `obs` shows; `None` while every pod's sink takes writes.
pub fn of(obs: &Observation) -> Option<SinkOutage> {
    let down: Vec<_> = obs
        .pods
        .iter()
        .filter_map(|p| p.sink_down.as_ref().map(|d| (p.pod.as_str(), d)))
        .collect();
    let longest = down
        .iter()
        .map(|(_, d)| d)
        .max_by(|a, b| seconds(a.seconds).total_cmp(&seconds(b.seconds)))?;
    let error = if longest.error.is_empty() {
        down.iter()
            .map(|(_, d)| d.error.as_str())
            .find(|e| !e.is_empty())
    } else {
        Some(longest.error.as_str())
    };
    Some(SinkOutage {
        pods: down.iter().map(|(pod, _)| pod.to_string()).collect(),
        seconds: seconds(longest.seconds),
        error: error.unwrap_or_default().to_string(),
    })
}

/// Seconds as reported, with nonsense (negative, NaN, infinite) read as 0.
fn seconds(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

impl std::fmt::Display for SinkOutage {
    /// `pods [orders-a, orders-b] failing for 95 s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let noun = if self.pods.len() == 1 { "pod" } else { "pods" };
        write!(
            f,
            "{noun} [{}] failing for {:.0} s",
            self.pods.join(", "),
            self.seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PodSample, SinkDown};

    fn pod(name: &str, down: Option<(f64, &str)>) -> PodSample {
        PodSample {
            pod: name.into(),
            sink_down: down.map(|(seconds, error)| SinkDown {
                seconds,
                error: error.into(),
            }),
            ..PodSample::default()
        }
    }

    #[test]
    fn an_outage_names_the_pods_the_longest_wait_and_the_last_error() {
        let obs = Observation {
            pods: vec![
                pod("orders-a", Some((30.0, "HTTP 503"))),
                pod("orders-b", None),
                pod("orders-c", Some((95.4, "HTTP 502 Bad Gateway"))),
            ],
            ..Observation::default()
        };
        let outage = of(&obs).expect("two pods down");
        assert_eq!(outage.pods, ["orders-a", "orders-c"]);
        assert_eq!(outage.error, "HTTP 502 Bad Gateway");
        assert_eq!(
            outage.to_string(),
            "pods [orders-a, orders-c] failing for 95 s"
        );
        // The longest-down pod said nothing: another pod's error.
        let obs = Observation {
            pods: vec![
                pod("a", Some((10.0, "refused"))),
                pod("b", Some((20.0, ""))),
            ],
            ..Observation::default()
        };
        assert_eq!(of(&obs).unwrap().error, "refused");
    }

    #[test]
    fn no_pod_down_is_no_outage() {
        let obs = Observation {
            pods: vec![pod("a", None)],
            ..Observation::default()
        };
        assert_eq!(of(&obs), None);
        assert_eq!(of(&Observation::default()), None);
    }
}
