//! The `<name>-metrics` Service: the consumer pods' metrics endpoints.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use millpond_crds::MillpondConsumer;

use super::ports::{METRICS_PORT, METRICS_PORT_NAME};
use super::{metrics_service_name, object_meta, selector_labels, BuildContext, Result};

/// A headless Service over the consumer pods' metrics port. Headless because
/// every pod is scraped on its own (the operator, a Prometheus
/// ServiceMonitor); no virtual IP is needed. Pods that are not ready (no
/// partition assigned yet) are listed too: their metrics still count.
pub fn metrics_service(mpc: &MillpondConsumer, _ctx: &BuildContext) -> Result<Service> {
    Ok(Service {
        metadata: object_meta(mpc, metrics_service_name(mpc))?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            selector: Some(selector_labels(mpc)),
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some(METRICS_PORT_NAME.to_string()),
                port: METRICS_PORT,
                target_port: Some(IntOrString::String(METRICS_PORT_NAME.to_string())),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn the_metrics_service_is_headless_on_port_9090_with_the_pod_selector() {
        let m = mpc(MINIMAL);
        let svc = metrics_service(&m, &ctx()).unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("orders-metrics"));
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.selector, Some(selector_labels(&m)));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let port = &spec.ports.unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("metrics"), 9090));
        assert_eq!(
            port.target_port,
            Some(IntOrString::String("metrics".into()))
        );
    }
}
