//! HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, and `/admin/limits`
//! (on a port of its own when `ADMIN_ADDR` is set).
//!
//! Live limits arrive through `PUT /admin/limits` with a bearer token (the
//! operator holds it in a Secret). An endpoint was chosen over a watched file:
//! the operator already talks to every pod to scrape its metrics, a change takes
//! effect at once instead of after a volume sync, the answer tells the caller
//! whether the change was accepted (and why not), and it needs no volume.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use millpond_core::pod::ADMIN_LIMITS_PATH;

use crate::limits::LimitsUpdate;
use crate::source::Shared;

#[derive(Clone)]
struct AppState {
    shared: Shared,
    admin_token: Option<Arc<str>>,
}

/// The router with every endpoint.
pub fn router(shared: Shared, admin_token: Option<String>) -> Router {
    probes(shared.clone()).merge(admin(shared, admin_token))
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn probes(shared: Shared) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            shared,
            admin_token: None,
        })
}

/// `/admin/limits`.
pub fn admin(shared: Shared, admin_token: Option<String>) -> Router {
    Router::new()
        .route(ADMIN_LIMITS_PATH, get(get_limits).put(put_limits))
        .with_state(AppState {
            shared,
            admin_token: admin_token.map(Into::into),
        })
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.shared.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    let h = &s.shared.health;
    let stalled = h.stalled_for();
    if stalled > h.stall_limit {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("consume loop has not turned for {}s\n", stalled.as_secs()),
        )
            .into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    let h = &s.shared.health;
    if !h.broker_up.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "kafka brokers unreachable\n",
        )
            .into_response();
    }
    if h.assigned.load(Ordering::Relaxed) == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "no partitions assigned\n").into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

async fn get_limits(State(s): State<AppState>) -> Response {
    Json(s.shared.limits.current()).into_response()
}

fn authorized(expected: &str, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant-time comparison: the answer's timing says nothing about the token.
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn put_limits(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = &s.admin_token else {
        return (
            StatusCode::NOT_FOUND,
            "admin endpoint disabled: start the consumer with ADMIN_TOKEN or ADMIN_TOKEN_FILE\n",
        )
            .into_response();
    };
    if !authorized(token, &headers) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    }
    let update: LimitsUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("invalid limits: {e}\n")).into_response();
        }
    };
    match s.shared.limits.update(&update) {
        Ok(limits) => {
            tracing::info!(?limits, "limits update accepted");
            Json(limits).into_response()
        }
        Err(e) => {
            s.shared.metrics.error("limits");
            tracing::warn!(error = %e, "limits update refused");
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let mut h = HeaderMap::new();
        assert!(!authorized("s3cret", &h));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized("s3cret", &h));
        h.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!authorized("s3cret", &h));
        h.insert(header::AUTHORIZATION, "s3cret".parse().unwrap());
        assert!(!authorized("s3cret", &h));
    }
}
