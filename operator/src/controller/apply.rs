//! Step 5, apply: the desired objects by server-side apply (one field
//! manager), the limits pushed to the running pods, the status and the
//! Events.
//!
//! Nothing is written when nothing changed. An owned object is applied only
//! when the watch cache's copy differs from the desired one in a field the
//! operator sets ([`covers`]); a hand edit of such a field is therefore put
//! back, a field set by someone else is left alone. The cache lags the
//! operator's own writes: an apply is not repeated while the cache still
//! shows the version that apply replaced ([`Pending`], as Kubernetes'
//! controllers keep "expectations"). The admin Secret is not watched (the
//! operator never lists Secrets): it is applied when it differs from what
//! the operator last applied, or read when it took the token. The decision
//! record on the Deployment is rewritten only when the decision differs in
//! more than its times ([`LastDecision::timeless`]), so a steady consumer costs
//! no writes.

use std::collections::BTreeSet;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::Event;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use millpond_core::pod::{LimitsUpdate, ADMIN_LIMITS_PATH};
use millpond_crds::{CurrentLimits, MillpondConsumer, MillpondConsumerStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::cache;
use super::last_decision::{LastDecision, STATE_ANNOTATION};
use super::validate::Validated;
use super::{remembered_of, Context, Error, ADMIN_PORT, FIELD_MANAGER};
use crate::desired::{self, BuildContext};

/// Applies every owned object of `mpc` that differs from `replicas`,
/// `limits` and the `decided` record; returns the admin token.
pub async fn owned(
    ctx: &Context,
    valid: &Validated<'_>,
    replicas: u32,
    limits: &CurrentLimits,
    decided: &LastDecision,
) -> Result<String, Error> {
    let mpc = valid.mpc();
    let ns = mpc.namespace().unwrap_or_default();
    let token = admin_token(ctx, mpc).await?;
    let build = BuildContext {
        operator_pods: ctx.settings.operator_pods.clone(),
        ..BuildContext::new(ctx.settings.consumer_image.clone(), token.clone())
    };
    let mut want = desired::objects(valid, &build, replicas as i32, limits)?;
    let (record, secret_applied) = {
        let mut remembered = ctx.remembered.lock().await;
        let mem = remembered_of(&mut remembered, mpc);
        let record = match &mem.checkpoint {
            Some((kept, text)) if kept.timeless() == decided.timeless() => text.clone(),
            _ => serde_json::to_string(decided)?,
        };
        (record, mem.applied_secret.clone())
    };
    want.deployment
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(STATE_ANNOTATION.into(), record.clone());
    let client = &ctx.client;
    let secret = serde_json::to_value(&want.admin_secret)?;
    if !secret_applied.is_some_and(|known| covers(&known, &secret)) {
        apply(
            &Api::<Secret>::namespaced(client.clone(), &ns),
            &want.admin_secret,
        )
        .await?;
    }
    let c = &ctx.cache;
    apply_changed(ctx, &c.config_maps, mpc, &want.limits).await?;
    apply_changed(ctx, &c.services, mpc, &want.metrics_service).await?;
    apply_changed(ctx, &c.deployments, mpc, &want.deployment).await?;
    apply_changed(ctx, &c.pdbs, mpc, &want.pdb).await?;
    match &want.admin_network_policy {
        Some(policy) => apply_changed(ctx, &c.network_policies, mpc, policy).await?,
        None => remove_admin_network_policy(ctx, mpc).await?,
    }
    let mut remembered = ctx.remembered.lock().await;
    let mem = remembered_of(&mut remembered, mpc);
    mem.applied_secret = Some(secret);
    mem.checkpoint = Some((decided.clone(), record));
    Ok(token)
}

/// Deletes the consumer's NetworkPolicy if it has one (the operator was
/// told to make none any more).
async fn remove_admin_network_policy(ctx: &Context, mpc: &MillpondConsumer) -> Result<(), Error> {
    let name = desired::admin_network_policy_name(mpc);
    if cache::get(&ctx.cache.network_policies, mpc, &name).is_none() {
        return Ok(());
    }
    let ns = mpc.namespace().unwrap_or_default();
    let api = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ns);
    match api.delete(&name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The admin token the pods know: remembered, else read from the Secret,
/// else a new one.
async fn admin_token(ctx: &Context, mpc: &MillpondConsumer) -> Result<String, Error> {
    if let Some(token) = remembered_of(&mut *ctx.remembered.lock().await, mpc)
        .admin_token
        .clone()
    {
        return Ok(token);
    }
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &mpc.namespace().unwrap_or_default());
    let live = secrets.get_opt(&desired::admin_secret_name(mpc)).await?;
    let token = live
        .as_ref()
        .and_then(desired::admin_token_of)
        .unwrap_or_else(new_token);
    let mut remembered = ctx.remembered.lock().await;
    let mem = remembered_of(&mut remembered, mpc);
    mem.admin_token = Some(token.clone());
    mem.applied_secret = live
        .map(|mut s| {
            s.metadata.managed_fields = None;
            serde_json::to_value(&s)
        })
        .transpose()?;
    Ok(token)
}

/// Applies `want` unless `cached`'s copy already has every field it sets,
/// or the operator applied the same `want` and the cache has not caught up.
async fn apply_changed<K>(
    ctx: &Context,
    cached: &Store<K>,
    mpc: &MillpondConsumer,
    want: &K,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + 'static,
{
    let name = want.meta().name.clone().unwrap_or_default();
    let key = format!("{}/{name}", K::kind(&()));
    let want_json = serde_json::to_value(want)?;
    let live = match cache::get(cached, mpc, &name) {
        Some(live) => {
            let version = live.meta().resource_version.clone();
            Some((serde_json::to_value(&live)?, version))
        }
        None => None,
    };
    let now = Instant::now();
    let skip = {
        let mut remembered = ctx.remembered.lock().await;
        let pending = &mut remembered_of(&mut remembered, mpc).pending;
        let live = live
            .as_ref()
            .map(|(json, version)| (json, version.as_deref()));
        match needs_apply(live, &want_json, pending.get(&key), now) {
            Need::Nothing => {
                pending.remove(&key);
                true
            }
            Need::Wait => true,
            Need::Apply => false,
        }
    };
    if skip {
        return Ok(());
    }
    let ns = mpc.namespace().unwrap_or_default();
    apply(&Api::namespaced(ctx.client.clone(), &ns), want).await?;
    let applied = Pending {
        want: digest(&want_json),
        replaced: live.and_then(|(_, version)| version),
        expires: now + ctx.settings.interval,
    };
    remembered_of(&mut *ctx.remembered.lock().await, mpc)
        .pending
        .insert(key, applied);
    Ok(())
}

/// An apply the watch cache may not show yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Digest of the object applied.
    want: u64,
    /// The resourceVersion the cache showed before (`None`: no object).
    replaced: Option<String>,
    /// After this the cache is not waited for any more (an object deleted
    /// right after the operator created it looks like one the cache has
    /// not seen yet).
    expires: Instant,
}

/// What [`apply_changed`] does with one object.
#[derive(Debug, PartialEq)]
enum Need {
    /// The cached copy has every field: nothing (and nothing pending).
    Nothing,
    /// The cache still shows what the operator's last apply of the same
    /// object replaced: the write is in, the watch has not brought it.
    Wait,
    Apply,
}

/// Decides for an object whose cached copy is `live` (its JSON and
/// resourceVersion), given the last apply still `pending`.
fn needs_apply(
    live: Option<(&Value, Option<&str>)>,
    want: &Value,
    pending: Option<&Pending>,
    now: Instant,
) -> Need {
    if let Some((json, _)) = live {
        if covers(json, want) {
            return Need::Nothing;
        }
    }
    let version = live.and_then(|(_, v)| v);
    match pending {
        Some(p)
            if p.want == digest(want) && p.replaced.as_deref() == version && now < p.expires =>
        {
            Need::Wait
        }
        _ => Need::Apply,
    }
}

fn digest(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(), Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &pp, &Patch::Apply(obj)).await?;
    Ok(())
}

/// `live` holds every field `want` sets, with the same value: objects
/// key by key, lists element by element (same length), other values equal.
/// An empty object or list, or a null, in `want` is held by an absent one
/// (the API server drops them).
pub fn covers(live: &Value, want: &Value) -> bool {
    match (live, want) {
        (_, Value::Null) => true,
        (Value::Object(l), Value::Object(w)) => w.iter().all(|(k, wv)| match l.get(k) {
            Some(lv) => covers(lv, wv),
            None => is_empty(wv),
        }),
        (Value::Array(l), Value::Array(w)) => {
            l.len() == w.len() && l.iter().zip(w).all(|(lv, wv)| covers(lv, wv))
        }
        (l, w) => l == w,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Writes `status` unless it is `old`.
pub async fn status(
    ctx: &Context,
    mpc: &MillpondConsumer,
    old: &MillpondConsumerStatus,
    status: &MillpondConsumerStatus,
) -> Result<(), Error> {
    if status == old {
        return Ok(());
    }
    let api: Api<MillpondConsumer> =
        Api::namespaced(ctx.client.clone(), &mpc.namespace().unwrap_or_default());
    let body = json!({
        "apiVersion": MillpondConsumer::api_version(&()),
        "kind": MillpondConsumer::kind(&()),
        "status": status,
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&mpc.name_any(), &pp, &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// Publishes Events on the MillpondConsumer; a failure is only logged.
pub async fn publish(ctx: &Context, mpc: &MillpondConsumer, events: Vec<Event>) {
    let reference = mpc.object_ref(&());
    for event in events {
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason = %event.reason, "event not published");
        }
    }
}

/// What the pods answered to a limits push.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pushed {
    /// Pods that took the limits.
    pub accepted: BTreeSet<String>,
    /// Pods that refused them, with their answer.
    pub refused: Vec<(String, String)>,
}

/// Sends `limits` to the admin endpoint of each `(pod, address)`, all at
/// once. A pod that cannot be reached is in neither list: it gets them at
/// the next interval (it stays behind), or at its next start from the
/// ConfigMap.
pub async fn push_limits(
    ctx: &Context,
    targets: &[(String, String)],
    token: &str,
    limits: &CurrentLimits,
) -> Pushed {
    let update = LimitsUpdate {
        generation: limits.generation.max(0) as u64,
        // Zero: the pod keeps the flush size it derived from its budget.
        flush_bytes: (limits.flush_bytes > 0).then_some(limits.flush_bytes as u64),
        flush_interval_ms: Some(limits.flush_interval_ms.max(0) as u64),
        max_in_flight: Some(limits.max_in_flight.max(0) as u32),
        consume_batch_size: Some(limits.consume_batch_size.max(0) as usize),
    };
    let body = serde_json::to_string(&update).expect("a LimitsUpdate serializes");
    let pushes = targets.iter().map(|(pod, ip)| {
        let url = format!("http://{ip}:{ADMIN_PORT}{ADMIN_LIMITS_PATH}");
        let request = ctx
            .http
            .put(&url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .timeout(ctx.settings.scrape_timeout)
            .send();
        async move { (pod.clone(), answer(&url, request.await).await) }
    });
    let mut pushed = Pushed::default();
    for (pod, answer) in futures::future::join_all(pushes).await {
        match answer {
            Ok(()) => {
                pushed.accepted.insert(pod);
            }
            Err(Some(refusal)) => pushed.refused.push((pod, refusal)),
            Err(None) => {}
        }
    }
    pushed
}

/// A pod's answer: taken, refused (with its words), or no answer.
async fn answer(
    url: &str,
    response: reqwest::Result<reqwest::Response>,
) -> Result<(), Option<String>> {
    match response {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            tracing::warn!(%url, %status, answer = %text.trim(), "pod refused the limits");
            Err(Some(format!("{status}: {}", text.trim())))
        }
        Err(e) => {
            tracing::debug!(%url, error = %e, "limits not pushed");
            Err(None)
        }
    }
}

fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_object_with_every_desired_field_needs_no_apply() {
        let want = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "env": []}]}}}});
        let live = json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10,
            "template": {"spec": {"containers": [{"name": "c", "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"readyReplicas": 3}});
        assert!(covers(&live, &want), "defaults and status are not ours");
    }

    fn pending(want: &Value, replaced: Option<&str>, expires: Instant) -> Pending {
        Pending {
            want: digest(want),
            replaced: replaced.map(String::from),
            expires,
        }
    }

    #[test]
    fn an_apply_is_not_repeated_until_the_cache_shows_it() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(15);
        let old = json!({"metadata": {"annotations": {"state": "1"}}});
        let want = json!({"metadata": {"annotations": {"state": "2"}}});
        let applied = pending(&want, Some("41"), later);
        assert_eq!(
            needs_apply(Some((&old, Some("41"))), &want, Some(&applied), now),
            Need::Wait,
            "the cache still shows the version the apply replaced"
        );
        assert_eq!(
            needs_apply(Some((&want, Some("42"))), &want, Some(&applied), now),
            Need::Nothing
        );
        assert_eq!(
            needs_apply(Some((&old, Some("43"))), &want, Some(&applied), now),
            Need::Apply,
            "changed again after the apply (a hand edit)"
        );
        let other = json!({"metadata": {"annotations": {"state": "3"}}});
        assert_eq!(
            needs_apply(Some((&old, Some("41"))), &other, Some(&applied), now),
            Need::Apply,
            "a new decision"
        );
        assert_eq!(
            needs_apply(None, &want, Some(&applied), now),
            Need::Apply,
            "deleted"
        );
        assert_eq!(
            needs_apply(Some((&old, Some("41"))), &want, Some(&applied), later),
            Need::Apply,
            "waited an interval: the cache is not waited for any more"
        );
        assert_eq!(
            needs_apply(Some((&old, Some("41"))), &want, None, now),
            Need::Apply
        );
    }

    #[test]
    fn a_created_object_is_waited_for_until_it_expires() {
        let now = Instant::now();
        let want = json!({"spec": {"replicas": 0}});
        let created = pending(&want, None, now + std::time::Duration::from_secs(15));
        assert_eq!(needs_apply(None, &want, Some(&created), now), Need::Wait);
        assert_eq!(
            needs_apply(
                None,
                &want,
                Some(&created),
                now + std::time::Duration::from_secs(15)
            ),
            Need::Apply
        );
    }

    #[test]
    fn a_hand_edit_of_a_desired_field_needs_an_apply() {
        let want = json!({"spec": {"replicas": 3, "containers": [{"name": "c"}]}});
        assert!(!covers(
            &json!({"spec": {"replicas": 5, "containers": [{"name": "c"}]}}),
            &want
        ));
        assert!(
            !covers(&json!({"spec": {"containers": [{"name": "c"}]}}), &want),
            "removed"
        );
        assert!(
            !covers(
                &json!({"spec": {"replicas": 3, "containers": [{"name": "c"}, {"name": "d"}]}}),
                &want
            ),
            "a container added to a list the operator sets"
        );
        assert!(!covers(
            &json!({"metadata": {}}),
            &json!({"metadata": {"annotations": {"a": "1"}}})
        ));
    }
}
