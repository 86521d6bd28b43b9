//! `POST /v1/score`, in its parts: a request is admitted (read, validated, routed by the
//! rollout's weight, and its copy for the new stack prepared as the faults touching it
//! say), then served by legacy with a shadow call behind the user's answer, or by the new
//! stack with legacy's call in flight beside it as the fallback. The user's answer is the
//! user path's ([`UserAnswer`], the simulator's); the pairing happens off the user's path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cutover_migration::schema::{Record, Schema};
use cutover_sim::core::pairing::{self, route, UserAnswer};
use cutover_sim::faults::{Kind, Layer};

use super::{record_user, CallFailure, CallResult, RouterState, Routing, MAX_SHADOW_IN_FLIGHT, SERVED_BY_HEADER};
use crate::faults::{Face, Hit};
use crate::http::{self, ApiError};

/// The handler: admit, then serve by the route.
pub(super) async fn score(State(state): State<Arc<RouterState>>, body: Body) -> Result<Response, ApiError> {
    let began = Instant::now();
    let bytes = http::read_body(body).await?;
    let arrival = admit(&state, bytes)?;
    Ok(if arrival.routed_new { canary(state, arrival, began).await } else { legacy(state, arrival, began).await })
}

/// One scoring request as admitted.
struct Arrival {
    /// The request as the user sent it, parsed.
    request: Record,
    /// Its body as sent: legacy's.
    bytes: Bytes,
    /// Its body as the new stack gets it.
    new_body: Bytes,
    /// The shadow call lost the production context.
    context_lost: bool,
    /// The rollout has started (else it is held: no judging).
    started: bool,
    /// Routed to the new stack.
    routed_new: bool,
    /// Where and when it was routed.
    routed_at: Routing,
    /// The faults touching it.
    hits: Arc<[Hit]>,
}

/// Reads and routes a request: a body that is not one request of the schema is answered
/// with a 4xx and counted.
fn admit(state: &RouterState, bytes: Bytes) -> Result<Arrival, ApiError> {
    let m = &state.cfg.scenario.migration;
    let request = http::parse_request(m.schema(), &bytes).inspect_err(|_| {
        metrics::counter!("cutover_router_bad_requests_total").increment(1);
    })?;
    let started = state.started.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    let weight = f64::from_bits(state.weight_bits.load(Ordering::Acquire));
    let (bucket, below_weight) = route(request.entity, weight);
    let routed_new = started && below_weight && !state.rolled_back.load(Ordering::Acquire);
    let routed_at = Routing { at: state.now_us(), bucket, weight };
    // The faults touching this request: shadow calls may lose the production context (a
    // fault at the router); for a team's own service, the router acts out the rest it can.
    let hits: Arc<[Hit]> = state.cfg.faults.as_ref().map(|b| b.hitting(&request)).unwrap_or_default().into();
    let service = state.cfg.faults.as_ref().is_some_and(|b| b.face() == Face::Service);
    let (new_body, context_lost) = for_new_stack(&bytes, (m.schema(), m.shadow_context()), &hits, routed_new, service);
    Ok(Arrival { request, bytes, new_body, context_lost, started, routed_new, routed_at, hits })
}

/// The body the new stack gets: a shadow call under a `shadow_context` fault loses the
/// context fields; for a team's own service (`service`), the request-field faults rewrite
/// what it reads. Returns the body and whether the context was lost. Untouched, the bytes
/// are the user's, not re-encoded.
fn for_new_stack(
    bytes: &Bytes,
    (schema, context): (&Schema, &[usize]),
    hits: &[Hit],
    routed_new: bool,
    service: bool,
) -> (Bytes, bool) {
    let strip = !routed_new && hits.iter().any(|(_, k, _)| *k == Kind::ShadowContext);
    let rewrite = service && hits.iter().any(|(_, k, _)| k.def().layer == Layer::Request);
    if !(strip || rewrite) {
        return (bytes.clone(), false);
    }
    // The request was validated as one JSON object of the schema.
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) else { return (bytes.clone(), false) };
    if strip {
        pairing::strip_context_json(&mut v, schema, context);
    }
    if let (true, Some(o)) = (rewrite, v.as_object_mut()) {
        crate::faults::rewrite_request(hits, schema, o);
    }
    (serde_json::to_vec(&v).unwrap_or_default().into(), strip)
}

/// The user's answer from the stack that gave it (`by`), or a 502 when it failed.
fn respond(called: &CallResult, by: &'static str) -> Response {
    match &called.answer {
        Ok(scored) => {
            ([(axum::http::header::CONTENT_TYPE, "application/json"), (SERVED_BY_HEADER, by)], scored.body.clone())
                .into_response()
        }
        Err(_) => ApiError::new(StatusCode::BAD_GATEWAY, "the legacy stack failed to answer").into_response(),
    }
}

fn ms_since(began: Instant) -> f64 {
    began.elapsed().as_secs_f64() * 1000.0
}

/// Legacy answers the user; the shadow call starts only once the answer is on its way, so
/// it never competes with the user's request. Shadow calls are bounded: past the cap (a new
/// stack slower than the traffic) the shadow is skipped and counted, as a mirroring proxy
/// drops mirrored requests. After a rollback the new stack is out of the path: no shadow.
async fn legacy(state: Arc<RouterState>, a: Arrival, began: Instant) -> Response {
    let legacy = state.call(&state.cfg.legacy, &a.bytes, state.cfg.limits.timeout).await;
    let user = UserAnswer::of(false, false, legacy.answer.is_ok(), ms_since(began), state.user_budget_ms);
    let response = respond(&legacy, "legacy");
    record_user("legacy", began, user.failed);
    if a.started && state.rolled_back.load(Ordering::Acquire) {
        state.unpaired(user.ms, user.failed, false);
        return response;
    }
    let shadow = state.background.load(Ordering::Acquire) < MAX_SHADOW_IN_FLIGHT;
    if !shadow {
        metrics::counter!("cutover_router_shadow_dropped_total").increment(1);
    }
    let (s, guard) = (state.clone(), state.background());
    tokio::spawn(async move {
        let _guard = guard;
        if a.started && shadow {
            let new = s.call_new(&a.new_body, &a.hits, a.request.id).await;
            s.pair(&a.request, false, a.routed_at, (&legacy, &new), a.context_lost, user);
        } else if a.started {
            s.unpaired(user.ms, user.failed, true);
        } else {
            let shadowed = shadow && s.shadow_held.load(Ordering::Relaxed);
            if shadowed {
                s.call_new(&a.new_body, &a.hits, a.request.id).await;
            }
            s.held(user.ms, Some(user.ms - legacy.ms), user.failed, shadowed);
        }
    });
    response
}

/// The new stack answers the user; legacy's call runs beside it, for the pairing and as
/// the fallback already in flight when the new stack fails.
async fn canary(state: Arc<RouterState>, a: Arrival, began: Instant) -> Response {
    let legacy_task = {
        let (s, b) = (state.clone(), a.bytes.clone());
        tokio::spawn(async move { s.call(&s.cfg.legacy, &b, s.cfg.limits.timeout).await })
    };
    let joined = |r: Result<CallResult, tokio::task::JoinError>| {
        r.unwrap_or(CallResult { ms: 0.0, answer: Err(CallFailure::Error) })
    };
    let new = state.call_new(&a.new_body, &a.hits, a.request.id).await;
    if new.answer.is_ok() {
        let user = UserAnswer::of(true, true, false, ms_since(began), state.user_budget_ms);
        let response = respond(&new, "new");
        record_user("new", began, user.failed);
        let (s, guard) = (state.clone(), state.background());
        tokio::spawn(async move {
            let _guard = guard;
            let legacy = joined(legacy_task.await);
            s.pair(&a.request, true, a.routed_at, (&legacy, &new), false, user);
        });
        return response;
    }
    let legacy = joined(legacy_task.await);
    let user = UserAnswer::of(true, false, legacy.answer.is_ok(), ms_since(began), state.user_budget_ms);
    metrics::counter!("cutover_router_fallbacks_total").increment(1);
    record_user("legacy", began, user.failed);
    state.pair(&a.request, true, a.routed_at, (&legacy, &new), a.context_lost, user);
    respond(&legacy, "legacy")
}

#[cfg(test)]
mod tests {
    use cutover_migration::Migration;

    use super::*;

    fn fraud() -> Migration {
        Migration::bundled_fraud().unwrap()
    }

    fn body(m: &Migration) -> Bytes {
        let s = m.schema();
        let mut o = serde_json::Map::new();
        for i in 0..s.len() {
            let name = &s.field(i).name;
            let v = if name == "amount" { serde_json::json!(12.5) } else { serde_json::json!("x") };
            o.insert(name.clone(), v);
        }
        serde_json::to_vec(&o).unwrap().into()
    }

    fn hit(kind: Kind) -> Hit {
        (1, kind, None)
    }

    fn read(b: &Bytes) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn untouched_the_new_stack_gets_the_users_bytes() {
        let m = fraud();
        let sent = body(&m);
        let (got, lost) = for_new_stack(&sent, (m.schema(), m.shadow_context()), &[], false, true);
        assert!(!lost);
        assert_eq!(got.as_ptr(), sent.as_ptr(), "not re-encoded");
    }

    #[test]
    fn a_shadow_call_loses_the_context_and_a_canary_call_keeps_it() {
        let m = fraud();
        let sent = body(&m);
        let hits = [hit(Kind::ShadowContext)];
        let at = (m.schema().as_ref(), m.shadow_context());
        let (shadow, lost) = for_new_stack(&sent, at, &hits, false, false);
        assert!(lost);
        let (shadow, user) = (read(&shadow), read(&sent));
        for &i in m.shadow_context() {
            let name = &m.schema().field(i).name;
            assert!(!shadow.contains_key(name) && user.contains_key(name), "{name}");
        }
        assert_eq!(shadow.len() + m.shadow_context().len(), user.len(), "nothing else goes");
        let (canary, lost) = for_new_stack(&sent, at, &hits, true, false);
        assert!(!lost);
        assert_eq!(read(&canary), user);
    }

    #[test]
    fn request_faults_are_the_routers_to_act_only_in_front_of_a_teams_service() {
        let m = fraud();
        let sent = body(&m);
        let amount = m.schema().index("amount").unwrap();
        let hits = [hit(Kind::FieldSkew { field: amount, scale: 100.0, offset: 0.0 })];
        let at = (m.schema().as_ref(), m.shadow_context());
        let (service, lost) = for_new_stack(&sent, at, &hits, true, true);
        assert!(!lost);
        assert_eq!(read(&service)["amount"], serde_json::json!(1250.0));
        // cutover's own stacks read the request through their fault board themselves.
        let (own, _) = for_new_stack(&sent, at, &hits, true, false);
        assert_eq!(read(&own)["amount"], serde_json::json!(12.5));
    }
}
