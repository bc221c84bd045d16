//! The consumer pods' NetworkPolicy: only the operator reaches the admin
//! endpoint, `/metrics` stays open to every scraper.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use millpond_crds::MillpondConsumer;

use super::ports::{ADMIN_PORT_NAME, METRICS_PORT_NAME};
use super::{admin_network_policy_name, object_meta, selector_labels, BuildContext, Result};

/// Label every namespace carries with its own name (set by the API server).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where the operator's own pods run, so a policy can admit them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPods {
    /// The operator's namespace.
    pub namespace: String,
    /// Labels that select the operator's pods there.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Ingress to the consumer pods: the admin port from the operator's pods
/// only, the metrics port from anywhere, nothing else (the pods listen on
/// nothing else). `None` when the operator does not know where its own pods
/// run (it runs outside the cluster, or the chart's
/// `consumerNetworkPolicy.enabled` is false).
pub fn admin_network_policy(
    mpc: &MillpondConsumer,
    ctx: &BuildContext,
) -> Result<Option<NetworkPolicy>> {
    let Some(operator) = &ctx.operator_pods else {
        return Ok(None);
    };
    let port = |name: &str| NetworkPolicyPort {
        port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..NetworkPolicyPort::default()
    };
    let operator_pods = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(
                [(NAMESPACE_NAME_LABEL.to_string(), operator.namespace.clone())].into(),
            ),
            match_expressions: None,
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(operator.labels.clone()),
            match_expressions: None,
        }),
        ip_block: None,
    };
    Ok(Some(NetworkPolicy {
        metadata: object_meta(mpc, admin_network_policy_name(mpc))?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(mpc)),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some(vec![operator_pods]),
                    ports: Some(vec![port(ADMIN_PORT_NAME)]),
                },
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![port(METRICS_PORT_NAME)]),
                },
            ]),
            egress: None,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn operator() -> OperatorPods {
        OperatorPods {
            namespace: "millpond-system".to_string(),
            labels: [
                (
                    "app.kubernetes.io/name".to_string(),
                    "millpond-operator".to_string(),
                ),
                ("app.kubernetes.io/instance".to_string(), "mp".to_string()),
            ]
            .into(),
        }
    }

    #[test]
    fn only_the_operators_pods_reach_the_admin_port_and_metrics_stay_open() {
        let m = mpc(MINIMAL);
        let mut c = ctx();
        c.operator_pods = Some(operator());
        let np = admin_network_policy(&m, &c).unwrap().unwrap();
        assert_eq!(np.metadata.name.as_deref(), Some("orders-admin"));
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.pod_selector.unwrap().match_labels,
            Some(selector_labels(&m))
        );
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        let rules = spec.ingress.unwrap();
        assert_eq!(rules.len(), 2);
        let ports = |r: &NetworkPolicyIngressRule| -> Vec<String> {
            r.ports
                .iter()
                .flatten()
                .map(|p| match &p.port {
                    Some(IntOrString::String(s)) => s.clone(),
                    other => panic!("port by name, got {other:?}"),
                })
                .collect()
        };
        assert_eq!(ports(&rules[0]), ["admin"]);
        let from = rules[0].from.as_ref().unwrap();
        assert_eq!(from.len(), 1, "one peer: namespace AND pods");
        let peer = &from[0];
        assert_eq!(
            peer.namespace_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["kubernetes.io/metadata.name"],
            "millpond-system"
        );
        assert_eq!(
            peer.pod_selector.as_ref().unwrap().match_labels,
            Some(operator().labels)
        );
        assert_eq!(ports(&rules[1]), ["metrics"]);
        assert_eq!(rules[1].from, None, "metrics from anywhere");
    }

    #[test]
    fn without_the_operators_whereabouts_there_is_no_policy() {
        assert_eq!(admin_network_policy(&mpc(MINIMAL), &ctx()).unwrap(), None);
    }
}
