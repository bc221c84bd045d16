//! The consumer's PodDisruptionBudget.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use millpond_crds::MillpondConsumer;

use super::{object_meta, pdb_name, selector_labels, BuildContext, Result};

/// At most one consumer pod is evicted at a time, so a node drain moves
/// partitions one pod's worth at a time. Pods that are not ready may always
/// be evicted (`AlwaysAllow`): a pod without partitions (more pods than
/// partitions for a moment) must not block a drain.
pub fn pod_disruption_budget(
    mpc: &MillpondConsumer,
    _ctx: &BuildContext,
) -> Result<PodDisruptionBudget> {
    Ok(PodDisruptionBudget {
        metadata: object_meta(mpc, pdb_name(mpc))?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(mpc)),
                match_expressions: None,
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_string()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn one_pod_at_a_time_may_be_disrupted() {
        let m = mpc(MINIMAL);
        let pdb = pod_disruption_budget(&m, &ctx()).unwrap();
        assert_eq!(pdb.metadata.name.as_deref(), Some("orders"));
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
        assert_eq!(
            spec.selector.unwrap().match_labels,
            Some(selector_labels(&m))
        );
    }
}
