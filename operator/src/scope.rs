//! Which namespaces the operator watches: the whole cluster (the default) or
//! a list of namespaces (`--watch-namespaces a,b`, `WATCH_NAMESPACES`), so
//! it can run with Roles in those namespaces instead of ClusterRoles.
//!
//! A kube-runtime reflector keeps one watch stream in one [`Store`]. With a
//! list, one watcher runs per namespace and [`Scope::watch`] merges their
//! events into one stream such a store can take. The events cannot simply
//! be interleaved: a watcher's (re)list (`Init`, `InitApply`..., `InitDone`)
//! replaces the *whole* store at `InitDone`, so the list of one namespace
//! would drop the objects of every other. [`Union`] turns each namespace's
//! list into a list of the union instead: the objects last seen in every
//! other namespace, with this namespace's new list. Changes (`Apply`,
//! `Delete`) pass as they come. A store fed this way holds every watched
//! object, becomes ready after the first namespace has been listed, and
//! loses an object deleted while a namespace's watch was down at that
//! namespace's next list, as a single watcher's store does. The union
//! keeps its own copy of the objects it merges; a scope of one namespace, or
//! the whole cluster, is one watcher and needs none.
//!
//! `controller::cache::watch_owned` watches the owned objects and pods
//! through [`Scope::reflected`], in the same namespaces.
//!
//! [`Store`]: kube::runtime::reflector::Store

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::reflector;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::desired::MANAGED_BY;

/// An object a watch stream can hand from task to task.
pub trait Shared: Clone + fmt::Debug + Send + Sync + 'static {}

impl<T: Clone + fmt::Debug + Send + Sync + 'static> Shared for T {}

/// The namespaces whose objects the operator watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (needs ClusterRoles).
    Cluster,
    /// Only these namespaces (at least one, each once, in the order given).
    Namespaces(Vec<String>),
}

impl FromStr for Scope {
    type Err = String;

    /// Reads a comma-separated list of namespace names; an empty list (or
    /// only spaces and commas) is the whole cluster.
    fn from_str(list: &str) -> Result<Scope, String> {
        let mut namespaces: Vec<String> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !millpond_crds::is_dns_label(name) {
                return Err(format!(
                    "`{name}` is not a namespace name (1 to 63 lower-case letters, digits or '-', \
                     starting and ending with a letter or digit)"
                ));
            }
            if !namespaces.iter().any(|n| n == name) {
                namespaces.push(name.to_string());
            }
        }
        Ok(if namespaces.is_empty() {
            Scope::Cluster
        } else {
            Scope::Namespaces(namespaces)
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Cluster => f.write_str("every namespace"),
            Scope::Namespaces(namespaces) => write!(f, "namespaces {}", namespaces.join(", ")),
        }
    }
}

impl Scope {
    /// One `Api` for each watched namespace, or one for the whole cluster.
    pub fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Scope::Cluster => vec![Api::all(client.clone())],
            Scope::Namespaces(namespaces) => namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect(),
        }
    }

    /// The watch events of `K` in the scope, for one reflector store (see
    /// the module's documentation). Each namespace's watcher retries with
    /// kube-runtime's default backoff on its own, so one failing namespace
    /// does not hold up the others; its errors are passed on.
    pub fn watch<K>(
        &self,
        client: &Client,
        config: watcher::Config,
    ) -> BoxStream<'static, Result<Event<K>, watcher::Error>>
    where
        K: Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Shared,
        K::DynamicType: Default,
    {
        let mut apis = self.apis::<K>(client);
        if apis.len() == 1 {
            // One watcher: its events are already what a store expects.
            let api = apis.pop().expect("one Api");
            return watcher::watcher(api, config)
                .default_backoff()
                .modify(trim)
                .boxed();
        }
        let namespaced = apis.into_iter().map(|api| {
            let ns = api.namespace().unwrap_or_default().to_string();
            watcher::watcher(api, config.clone())
                .default_backoff()
                .modify(trim)
                .map(move |event| (ns.clone(), event))
                .boxed()
        });
        stream::select_all(namespaced)
            .scan(Union::default(), |union, (ns, event)| {
                let out = match event {
                    Ok(event) => union.merge(&ns, event).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::future::ready(Some(stream::iter(out)))
            })
            .flatten()
            .boxed()
    }

    /// The watch of the operator's objects of kind `K` in the scope, kept
    /// in `writer`'s store; yields each object that changed.
    pub fn reflected<K>(
        &self,
        client: &Client,
        writer: Writer<K>,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + DeserializeOwned + Shared,
    {
        let managed = watcher::Config::default()
            .labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}"));
        reflector(writer, self.watch(client, managed)).touched_objects()
    }
}

/// The annotation `kubectl apply` (client-side) keeps a copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what the operator never reads from a watched object before a store
/// keeps it: `metadata.managedFields` (every object the operator applies
/// carries a record of each field's manager, often larger than the fields
/// themselves) and `kubectl apply`'s copy of the whole object. With a
/// thousand consumers this is most of what the watch caches would hold.
fn trim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The objects of several namespaces' watchers, merged into the events of
/// one watcher of all of them.
#[derive(Debug)]
pub struct Union<K> {
    /// Each namespace's objects by name, as last listed and changed.
    objects: BTreeMap<String, BTreeMap<String, K>>,
    /// The namespaces being listed, with what their list returned so far.
    listing: BTreeMap<String, BTreeMap<String, K>>,
}

impl<K> Default for Union<K> {
    fn default() -> Self {
        Union {
            objects: BTreeMap::new(),
            listing: BTreeMap::new(),
        }
    }
}

impl<K: Resource + Clone> Union<K> {
    /// Takes one event of the watcher of namespace `ns` and returns the
    /// events for the store: changes as they are; nothing while `ns` is
    /// being listed; at the end of its list, a list of every namespace.
    pub fn merge(&mut self, ns: &str, event: Event<K>) -> Vec<Event<K>> {
        match event {
            Event::Apply(obj) => {
                self.objects
                    .entry(ns.to_string())
                    .or_default()
                    .insert(obj.name_any(), obj.clone());
                vec![Event::Apply(obj)]
            }
            Event::Delete(obj) => {
                if let Some(objects) = self.objects.get_mut(ns) {
                    objects.remove(&obj.name_any());
                }
                vec![Event::Delete(obj)]
            }
            Event::Init => {
                self.listing.insert(ns.to_string(), BTreeMap::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                self.listing
                    .entry(ns.to_string())
                    .or_default()
                    .insert(obj.name_any(), obj);
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.listing.remove(ns).unwrap_or_default();
                self.objects.insert(ns.to_string(), listed);
                let every = self.objects.values().flat_map(|objects| objects.values());
                std::iter::once(Event::Init)
                    .chain(every.cloned().map(Event::InitApply))
                    .chain(std::iter::once(Event::InitDone))
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    #[test]
    fn a_cached_object_keeps_its_fields_but_not_their_managers() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("orders-limits".into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                annotations: Some(BTreeMap::from([
                    (LAST_APPLIED.to_string(), "{}".to_string()),
                    ("millpond.io/keep".to_string(), "1".to_string()),
                ])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("A".to_string(), "1".to_string())])),
            ..ConfigMap::default()
        };
        trim(&mut cm);
        assert_eq!(cm.metadata.managed_fields, None);
        assert_eq!(
            cm.metadata.annotations,
            Some(BTreeMap::from([(
                "millpond.io/keep".to_string(),
                "1".to_string()
            )]))
        );
        assert_eq!(cm.data.unwrap()["A"], "1");
    }

    #[test]
    fn a_list_of_namespaces_is_read_and_an_empty_one_is_the_cluster() {
        assert_eq!("".parse(), Ok(Scope::Cluster));
        assert_eq!(" , ".parse(), Ok(Scope::Cluster));
        assert_eq!(
            "team-a, team-b,team-a".parse(),
            Ok(Scope::Namespaces(vec!["team-a".into(), "team-b".into()]))
        );
        let err = "team-a,Team_B".parse::<Scope>().unwrap_err();
        assert!(err.starts_with("`Team_B` is not a namespace name"), "{err}");
        assert_eq!(
            Scope::Namespaces(vec!["a".into(), "b".into()]).to_string(),
            "namespaces a, b"
        );
    }

    fn cm(ns: &str, name: &str, version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Feeds the events of each (namespace, event) through a [`Union`] into
    /// a real reflector store, and returns the store's objects as
    /// `ns/name@version`, sorted.
    struct Fed {
        union: Union<ConfigMap>,
        writer: Writer<ConfigMap>,
    }

    impl Fed {
        fn new() -> Fed {
            Fed {
                union: Union::default(),
                writer: Writer::default(),
            }
        }

        fn feed(&mut self, ns: &str, events: Vec<Event<ConfigMap>>) -> &mut Fed {
            for event in events {
                for out in self.union.merge(ns, event) {
                    self.writer.apply_watcher_event(&out);
                }
            }
            self
        }

        fn list(&mut self, ns: &str, objects: &[(&str, &str)]) -> &mut Fed {
            let mut events = vec![Event::Init];
            events.extend(
                objects
                    .iter()
                    .map(|(name, v)| Event::InitApply(cm(ns, name, v))),
            );
            events.push(Event::InitDone);
            self.feed(ns, events)
        }

        fn held(&self) -> Vec<String> {
            let mut held: Vec<String> = self
                .writer
                .as_reader()
                .state()
                .iter()
                .map(|o| {
                    format!(
                        "{}/{}@{}",
                        o.namespace().unwrap(),
                        o.name_any(),
                        o.resource_version().unwrap()
                    )
                })
                .collect();
            held.sort();
            held
        }
    }

    #[test]
    fn the_store_holds_the_objects_of_every_namespace_after_each_list() {
        let mut fed = Fed::new();
        fed.list("a", &[("x", "1"), ("y", "1")]);
        assert_eq!(fed.held(), ["a/x@1", "a/y@1"]);
        fed.list("b", &[("x", "2")]);
        assert_eq!(fed.held(), ["a/x@1", "a/y@1", "b/x@2"]);

        // The same events straight into a store: b's list replaced a's.
        let mut plain = Writer::<ConfigMap>::default();
        for (ns, name) in [("a", "x"), ("b", "x")] {
            for event in [
                Event::Init,
                Event::InitApply(cm(ns, name, "1")),
                Event::InitDone,
            ] {
                plain.apply_watcher_event(&event);
            }
        }
        let held = plain.as_reader().state();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].namespace().as_deref(), Some("b"));
    }

    #[test]
    fn changes_pass_through_and_are_kept_for_the_next_list() {
        let mut fed = Fed::new();
        fed.list("a", &[("x", "1")]).list("b", &[]);
        fed.feed("b", vec![Event::Apply(cm("b", "new", "3"))]);
        fed.feed(
            "a",
            vec![
                Event::Apply(cm("a", "x", "4")),
                Event::Delete(cm("a", "x", "4")),
            ],
        );
        assert_eq!(fed.held(), ["b/new@3"]);
        // a lists again (its watch expired): b's change survives it.
        fed.list("a", &[("z", "5")]);
        assert_eq!(fed.held(), ["a/z@5", "b/new@3"]);
    }

    #[test]
    fn a_relist_drops_only_that_namespaces_objects_deleted_meanwhile() {
        let mut fed = Fed::new();
        fed.list("a", &[("gone", "1"), ("kept", "1")])
            .list("b", &[("gone", "1")]);
        fed.list("a", &[("kept", "2")]);
        assert_eq!(fed.held(), ["a/kept@2", "b/gone@1"]);
    }

    #[test]
    fn changes_of_other_namespaces_during_a_list_are_not_lost() {
        let mut fed = Fed::new();
        fed.list("a", &[("x", "1")]).list("b", &[("y", "1")]);
        fed.feed("a", vec![Event::Init, Event::InitApply(cm("a", "x", "2"))]);
        fed.feed("b", vec![Event::Apply(cm("b", "y", "3"))]);
        // Until a's list is done the store keeps a's old objects.
        assert_eq!(fed.held(), ["a/x@1", "b/y@3"]);
        fed.feed("a", vec![Event::InitDone]);
        assert_eq!(fed.held(), ["a/x@2", "b/y@3"]);
    }

    #[test]
    fn the_store_is_ready_once_a_namespace_is_listed() {
        let mut fed = Fed::new();
        let reader = fed.writer.as_reader();
        fed.feed("a", vec![Event::Init]);
        assert!(fed.writer.as_reader().state().is_empty());
        fed.feed("a", vec![Event::InitDone]);
        let ready = futures::FutureExt::now_or_never(reader.wait_until_ready());
        assert!(matches!(ready, Some(Ok(()))), "{ready:?}");
    }
}
