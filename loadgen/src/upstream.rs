//! Calls to the stacks: the one HTTP client the router and the composed platform use to
//! reach a service, and the limits on what comes back. A misbehaving new stack may answer
//! slowly, endlessly or enormously, or send the call elsewhere; none of it may cost the
//! users legacy serves. So an answer is read only up to [`AnswerLimits::max_bytes`] (a
//! `content-length` beyond it is refused before a byte of the body is read), never
//! unpacked (the client asks for no encoding and decodes none, whichever reqwest features
//! other crates of the build turn on), given [`AnswerLimits::timeout`] as a whole
//! (connection, headers and body), and a redirect is an answer like any other, never
//! followed. The client ignores proxy variables: a call to a loopback service stays on
//! this machine.

use std::time::Duration;

use axum::body::Bytes;

/// The most bytes of one answer read unless set. A scoring answer is a few hundred bytes
/// (a few KiB with a model row); at the router's connection cap (1 024, two calls each) and
/// its shadow cap (512), the answers in memory at once stay within 160 MiB.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The time a whole answer has unless set (the new stack's own timeout, when shorter,
/// applies to its calls).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits on a stack's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerLimits {
    /// The most bytes of one answer read, as sent (nothing is unpacked).
    pub max_bytes: usize,
    /// The time the whole answer has, from the start of the call.
    pub timeout: Duration,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        AnswerLimits { max_bytes: DEFAULT_MAX_ANSWER_BYTES, timeout: DEFAULT_ANSWER_TIMEOUT }
    }
}

/// Why a call to a stack failed: the reason label of its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The connection was refused or reset: the stack never answered.
    Connect,
    /// No whole answer within the time it had.
    Timeout,
    /// A status other than 2xx (a redirect included: none is followed).
    Status,
    /// A 2xx answer the router could not read.
    Answer,
    /// An answer longer than the limit (by its `content-length`, or as it arrived).
    TooLarge,
}

impl UpstreamFailure {
    /// Every reason, for counters registered at zero.
    pub const ALL: [UpstreamFailure; 5] = [
        UpstreamFailure::Connect,
        UpstreamFailure::Timeout,
        UpstreamFailure::Status,
        UpstreamFailure::Answer,
        UpstreamFailure::TooLarge,
    ];

    /// Its label.
    pub fn reason(self) -> &'static str {
        match self {
            UpstreamFailure::Connect => "connect",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Status => "status",
            UpstreamFailure::Answer => "answer",
            UpstreamFailure::TooLarge => "too_large",
        }
    }

    /// Counts it against `stack`: in the router's failures and in the stack's own error
    /// counter, both by reason. The router counts every failed call there, since only the
    /// caller sees a refused connection, a cut answer or one it cannot read.
    pub fn count(self, stack: &'static str) {
        metrics::counter!("cutover_router_upstream_failures_total", "stack" => stack, "reason" => self.reason())
            .increment(1);
        metrics::counter!("cutover_stack_errors_total", "stack" => stack, "reason" => self.reason()).increment(1);
    }

    /// In words, for a failure's message.
    pub fn describe(self, limits: AnswerLimits) -> String {
        match self {
            UpstreamFailure::Connect => "the connection was refused, reset or cut short".into(),
            UpstreamFailure::Timeout => format!("no whole answer within {} ms", limits.timeout.as_millis()),
            UpstreamFailure::Status => "answered a status other than 2xx".into(),
            UpstreamFailure::Answer => "answered something it could not read".into(),
            UpstreamFailure::TooLarge => format!("answered more than {} bytes", limits.max_bytes),
        }
    }

    /// What reqwest's error on sending (or reading) means.
    pub fn of(e: &reqwest::Error) -> UpstreamFailure {
        if e.is_timeout() {
            UpstreamFailure::Timeout
        } else {
            // Refused, reset or cut short: no answer the stack could stand behind.
            UpstreamFailure::Connect
        }
    }
}

/// The client for calls to stacks, keeping up to `idle_per_host` connections.
pub fn client(idle_per_host: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(idle_per_host)
        // Shorter than a stack's idle deadline (its header deadline, 10 s), so the router
        // never sends on a connection the stack is closing.
        .pool_idle_timeout(Duration::from_secs(4))
        .tcp_nodelay(true)
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("http client: {e}"))
}

/// Reads an answer's body, at most `max_bytes` of it: a longer one is
/// [`UpstreamFailure::TooLarge`] as soon as it is known to be (its `content-length`, or
/// the first chunk past the limit), and the connection is dropped with it.
pub async fn read(mut resp: reqwest::Response, max_bytes: usize) -> Result<Bytes, UpstreamFailure> {
    if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
        return Err(UpstreamFailure::TooLarge);
    }
    let mut body = Vec::with_capacity(resp.content_length().map_or(1024, |n| n as usize));
    while let Some(chunk) = resp.chunk().await.map_err(|e| UpstreamFailure::of(&e))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(UpstreamFailure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// Sends a call that has `timeout` for its whole answer (the body read with [`read`]
/// included): the answer's head, or why none came.
pub async fn send(req: reqwest::RequestBuilder, timeout: Duration) -> Result<reqwest::Response, UpstreamFailure> {
    req.timeout(timeout).send().await.map_err(|e| UpstreamFailure::of(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_label() {
        let labels: std::collections::BTreeSet<_> = UpstreamFailure::ALL.iter().map(|f| f.reason()).collect();
        assert_eq!(labels.len(), UpstreamFailure::ALL.len());
        assert!(labels.contains("too_large"));
    }
}
