//! One HTTP/1 service on a listener, with the limits a service in a production request
//! path needs: a cap on open connections (one more is closed at accept and counted),
//! a deadline for a request's headers (also the time an idle keep-alive connection is
//! kept), and a graceful stop that finishes the requests in flight within a drain
//! deadline and then drops whatever is left, so no client can hold the process open.
//! Bodies get their own deadline where they are read ([`crate::http::read_body`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What a service holds open, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Time to receive a request's headers (and how long an idle connection stays open).
    pub header_timeout: Duration,
    /// Time the requests in flight get to finish once a stop is asked for.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_connections: 1024, header_timeout: Duration::from_secs(10), drain: Duration::from_secs(10) }
    }
}

/// How a service's serving ended.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stopped {
    /// Connections still open when the drain deadline passed (closed then).
    pub cut: usize,
    /// How long the drain took.
    pub drained: Duration,
}

/// Connections open now, over every service of the process (for tests and figures).
pub static OPEN_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

struct Open;

impl Open {
    fn new() -> Open {
        OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a stopping service keeps idle keep-alive connections open for one last
/// request (answered with `Connection: close`) before closing them.
pub const LAME_DUCK: Duration = Duration::from_secs(1);

async fn closing(
    axum::extract::State(draining): axum::extract::State<Arc<AtomicBool>>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    if draining.load(Ordering::Acquire) {
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

/// Serves `app` on `listener` until `stop` completes, then drains: it stops accepting,
/// answers every request still arriving on an open connection with `Connection: close`
/// (so no client sends on a connection the service is closing), gives idle connections
/// [`LAME_DUCK`] to bring one last request, then closes them while the requests in flight
/// finish; at `limits.drain` after the stop, whatever is left is closed.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> Stopped {
    let draining = Arc::new(AtomicBool::new(false));
    let app = app.layer(axum::middleware::map_response_with_state(draining.clone(), closing));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(stop);
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("cutover_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        conns.spawn(async move {
            let _open = Open::new();
            if let Err(e) = conn.await {
                if e.is_timeout() {
                    metrics::counter!("cutover_connections_timed_out_total").increment(1);
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    draining.store(true, Ordering::Release);
    let began = std::time::Instant::now();
    let lame = LAME_DUCK.min(limits.drain);
    let _ = tokio::time::timeout(lame, async { while conns.join_next().await.is_some() {} }).await;
    let left = limits.drain.saturating_sub(began.elapsed());
    let drained = tokio::time::timeout(left, graceful.shutdown()).await.is_ok();
    while conns.try_join_next().is_some() {}
    let cut = if drained { 0 } else { conns.len() };
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    Stopped { cut, drained: began.elapsed() }
}
