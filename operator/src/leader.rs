//! Leader election on a `coordination.k8s.io/v1` Lease: of the operator's
//! replicas only the holder of the lease acts; the others watch and take over
//! when the holder stops renewing, or at once when it gives the lease up on
//! shutdown.
//!
//! [`next_step`] is the pure decision; [`LeaderElector`] does the API calls,
//! using the lease's `resourceVersion` so two candidates never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// What a candidate should do with the lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nobody holds a valid lease: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a valid lease.
    Follow,
}

/// Decides from the lease's holder and last renewal.
pub fn next_step(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Step {
    let Some(spec) = spec else {
        return Step::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Step::Renew;
    }
    let duration = spec.lease_duration_seconds.unwrap_or(15).max(1) as i64;
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    match renewed {
        Some(t) if !holder.is_empty() && now.as_second() - t.as_second() < duration => Step::Follow,
        _ => Step::Acquire,
    }
}

/// Runs the election loop for one candidate.
pub struct LeaderElector {
    pub api: Api<Lease>,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub retry: Duration,
}

impl LeaderElector {
    /// Loops forever, publishing whether this candidate leads.
    pub async fn run(&self, leading: watch::Sender<bool>) {
        loop {
            let is_leader = match self.try_once().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.lease_name, "leader election request failed");
                    // Without a confirmed renewal we cannot be sure we still lead.
                    false
                }
            };
            if *leading.borrow() != is_leader {
                tracing::info!(identity = %self.identity, leading = is_leader, "leadership changed");
            }
            leading.send_replace(is_leader);
            tokio::time::sleep(self.retry).await;
        }
    }

    /// Gives the lease up if this candidate holds it, so that another takes
    /// over within its retry period instead of after the lease expires. Call
    /// once the election loop and every reconciliation have stopped.
    pub async fn release(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.lease_name).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Someone else changed it meanwhile: it is not ours any more.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn try_once(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.lease_name).await?;
        let step = next_step(
            existing.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        if step == Step::Follow {
            return Ok(false);
        }
        let previous = existing
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let transitions =
            previous.lease_transitions.unwrap_or(0) + i32::from(step == Step::Acquire);
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
            acquire_time: if step == Step::Acquire {
                Some(MicroTime(now))
            } else {
                previous.acquire_time
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        let result = match existing {
            Some(mut lease) => {
                // `replace` carries the resourceVersion we read: a concurrent winner makes it fail.
                lease.spec = Some(spec);
                self.api
                    .replace(&self.lease_name, &PostParams::default(), &lease)
                    .await
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.lease_name.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64) -> LeaseSpec {
        let now = Timestamp::now();
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::from_second(now.as_second() - renewed_secs_ago).unwrap(),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_or_expired_lease_is_taken() {
        let now = Timestamp::now();
        assert_eq!(next_step(None, "a", now), Step::Acquire);
        assert_eq!(next_step(Some(&lease("b", 16)), "a", now), Step::Acquire);
    }

    #[test]
    fn a_live_lease_of_another_is_followed_and_our_own_renewed() {
        let now = Timestamp::now();
        assert_eq!(next_step(Some(&lease("b", 3)), "a", now), Step::Follow);
        assert_eq!(next_step(Some(&lease("a", 3)), "a", now), Step::Renew);
        assert_eq!(next_step(Some(&lease("a", 60)), "a", now), Step::Renew);
    }
}
