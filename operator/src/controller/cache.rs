//! The operator's watch caches of what it owns: the objects of every
//! consumer and the consumer pods.
//!
//! The controller watches the owned objects anyway (a hand edit triggers a
//! reconciliation); the same watches fill these stores, so a reconciliation
//! reads the objects as they are from memory instead of the API server, and
//! [`super::apply`] writes only what differs. Every watch selects the
//! operator's own label (`app.kubernetes.io/managed-by=millpond-operator`),
//! so the caches hold only Millpond's objects. Secrets are not watched (the
//! operator never lists Secrets): see [`super::apply`] for the admin token.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::Controller;
use kube::{Client, Resource, ResourceExt};
use millpond_crds::MillpondConsumer;

use crate::desired::CONSUMER_LABEL;
use crate::scope::Scope;

/// The objects and pods of every consumer, as last seen by the watches.
#[derive(Clone)]
pub struct Cache {
    pub deployments: Store<Deployment>,
    pub config_maps: Store<ConfigMap>,
    pub services: Store<Service>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub network_policies: Store<NetworkPolicy>,
    pub pods: Store<Pod>,
}

impl Cache {
    /// Empty stores with their writers (unit tests fill them by hand).
    pub fn empty() -> (Cache, Writers) {
        let (deployments, deployments_w) = reflector::store();
        let (config_maps, config_maps_w) = reflector::store();
        let (services, services_w) = reflector::store();
        let (pdbs, pdbs_w) = reflector::store();
        let (network_policies, network_policies_w) = reflector::store();
        let (pods, pods_w) = reflector::store();
        let cache = Cache {
            deployments,
            config_maps,
            services,
            pdbs,
            network_policies,
            pods,
        };
        let writers = Writers {
            deployments: deployments_w,
            config_maps: config_maps_w,
            services: services_w,
            pdbs: pdbs_w,
            network_policies: network_policies_w,
            pods: pods_w,
        };
        (cache, writers)
    }

    /// The pods of `mpc`, by its consumer label.
    pub fn pods_of(&self, mpc: &MillpondConsumer) -> Vec<Pod> {
        let ns = mpc.namespace();
        let name = mpc.name_any();
        self.pods
            .state()
            .iter()
            .filter(|p| p.namespace() == ns && p.labels().get(CONSUMER_LABEL) == Some(&name))
            .map(|p| p.as_ref().clone())
            .collect()
    }
}

/// The object `name` of `mpc`'s namespace in `store`.
pub fn get<K>(store: &Store<K>, mpc: &MillpondConsumer, name: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let reference = ObjectRef::new(name).within(&mpc.namespace().unwrap_or_default());
    store.get(&reference).map(|o| o.as_ref().clone())
}

/// The writing halves of a [`Cache`].
pub struct Writers {
    pub deployments: reflector::store::Writer<Deployment>,
    pub config_maps: reflector::store::Writer<ConfigMap>,
    pub services: reflector::store::Writer<Service>,
    pub pdbs: reflector::store::Writer<PodDisruptionBudget>,
    pub network_policies: reflector::store::Writer<NetworkPolicy>,
    pub pods: reflector::store::Writer<Pod>,
}

/// Makes `controller` watch the owned objects of `scope`'s namespaces
/// through the cache's stores (each owned object change reconciles its
/// consumer) and starts the pods' watch, which only fills the cache.
pub fn watch_owned(
    controller: Controller<MillpondConsumer>,
    client: &Client,
    scope: &Scope,
) -> (Controller<MillpondConsumer>, Cache) {
    let (cache, w) = Cache::empty();
    let controller = controller
        .owns_stream(scope.reflected(client, w.deployments))
        .owns_stream(scope.reflected(client, w.config_maps))
        .owns_stream(scope.reflected(client, w.services))
        .owns_stream(scope.reflected(client, w.pdbs))
        .owns_stream(scope.reflected(client, w.network_policies));
    let pods = scope.reflected::<Pod>(client, w.pods);
    tokio::spawn(pods.for_each(|_| futures::future::ready(())));
    (controller, cache)
}
