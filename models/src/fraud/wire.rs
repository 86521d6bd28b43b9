//! The wire format of a scoring request: the raw request as JSON, as the live services
//! receive it and recorded traffic stores it. Parsing validates every field and names the
//! one at fault; text values are interned so a parsed request is the same [`Request`] the
//! generator makes (its strings are `&'static`), with a bound on how many distinct values
//! the process will ever keep.

use std::sync::Mutex;

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use super::Request;

/// The JSON body of `POST /v1/score`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRequest {
    /// Unique per request.
    pub transaction_id: u64,
    /// The paying customer.
    pub customer_id: u64,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub event_time_ms: i64,
    /// Amount in the currency's major unit.
    pub amount: f64,
    /// ISO 4217 code.
    pub currency: String,
    /// Merchant category code.
    pub merchant_category: String,
    /// ISO 3166 alpha-2.
    pub country: String,
    /// `pos`, `web` or `app`.
    pub channel: String,
    /// Client operating system; absent or null when unknown.
    #[serde(default)]
    pub device_os: Option<String>,
    /// Days since the account was opened; absent or null for a guest.
    #[serde(default)]
    pub account_age_days: Option<f64>,
    /// Whether the card was present.
    pub card_present: bool,
    /// Distance from home in km; absent or null when unknown.
    #[serde(default)]
    pub distance_from_home_km: Option<f64>,
}

/// Why a body is not a request: the field (`body` when the JSON itself is broken) and why.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct WireError {
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The longest text value accepted.
pub const MAX_TEXT: usize = 64;
/// How many distinct text values a process keeps (each at most [`MAX_TEXT`] bytes).
pub const MAX_INTERNED: usize = 100_000;

static INTERNED: Mutex<Option<FxHashSet<&'static str>>> = Mutex::new(None);

fn intern(field: &str, value: &str) -> Result<&'static str, WireError> {
    let bad = |message: String| WireError { field: field.into(), message };
    if value.is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if value.len() > MAX_TEXT {
        return Err(bad(format!("longer than {MAX_TEXT} bytes")));
    }
    let mut guard = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(FxHashSet::default);
    if let Some(&s) = set.get(value) {
        return Ok(s);
    }
    if set.len() >= MAX_INTERNED {
        return Err(bad(format!(
            "a value never seen before, and this process already keeps {MAX_INTERNED} distinct ones"
        )));
    }
    let s: &'static str = Box::leak(value.to_owned().into_boxed_str());
    set.insert(s);
    Ok(s)
}

impl WireRequest {
    /// The wire form of a request.
    pub fn of(r: &Request) -> WireRequest {
        WireRequest {
            transaction_id: r.transaction_id,
            customer_id: r.customer_id,
            event_time_ms: r.event_time_ms,
            amount: r.amount,
            currency: r.currency.into(),
            merchant_category: r.merchant_category.into(),
            country: r.country.into(),
            channel: r.channel.into(),
            device_os: r.device_os.map(Into::into),
            account_age_days: r.account_age_days,
            card_present: r.card_present,
            distance_from_home_km: r.distance_from_home_km,
        }
    }

    /// Validates the values and makes the request.
    pub fn to_request(&self) -> Result<Request, WireError> {
        let bad = |field: &str, message: &str| WireError { field: field.into(), message: message.into() };
        if !self.amount.is_finite() {
            return Err(bad("amount", "must be a finite number"));
        }
        for (field, v) in
            [("account_age_days", self.account_age_days), ("distance_from_home_km", self.distance_from_home_km)]
        {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(bad(field, "must be a finite number, zero or more"));
            }
        }
        Ok(Request {
            transaction_id: self.transaction_id,
            customer_id: self.customer_id,
            event_time_ms: self.event_time_ms,
            amount: self.amount,
            currency: intern("currency", &self.currency)?,
            merchant_category: intern("merchant_category", &self.merchant_category)?,
            country: intern("country", &self.country)?,
            channel: intern("channel", &self.channel)?,
            device_os: self.device_os.as_deref().map(|v| intern("device_os", v)).transpose()?,
            account_age_days: self.account_age_days,
            card_present: self.card_present,
            distance_from_home_km: self.distance_from_home_km,
        })
    }
}

/// Parses a JSON body into a request, naming the field at fault.
pub fn parse(body: &[u8]) -> Result<Request, WireError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let wire: WireRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let broken = !matches!(inner.classify(), serde_json::error::Category::Data);
        let field = if broken {
            // Not JSON at all (or cut short): the body is at fault, not a field.
            "body".into()
        } else if path != "." && !path.is_empty() {
            path
        } else if let Some(name) = backticked(&message) {
            // `missing field `x`` and `unknown field `x`` name it in the message.
            name
        } else {
            "body".into()
        };
        WireError { field, message }
    })?;
    wire.to_request()
}

fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fraud::Generator;

    #[test]
    fn generated_requests_survive_the_wire() {
        let g = Generator::new(3);
        for i in 0..2000 {
            let r = g.request(i);
            let body = serde_json::to_vec(&WireRequest::of(&r)).unwrap();
            assert_eq!(parse(&body).unwrap(), r);
        }
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let g = Generator::new(3);
        let good = serde_json::to_value(WireRequest::of(&g.request(1))).unwrap();
        let with = |k: &str, v: serde_json::Value| {
            let mut x = good.clone();
            x[k] = v;
            serde_json::to_vec(&x).unwrap()
        };
        let without = |k: &str| {
            let mut x = good.clone();
            x.as_object_mut().unwrap().remove(k);
            serde_json::to_vec(&x).unwrap()
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (with("amount", "12".into()), "amount"),
            (with("card_present", 1.into()), "card_present"),
            (with("currency", "".into()), "currency"),
            (with("country", "x".repeat(65).into()), "country"),
            (with("account_age_days", (-3.0).into()), "account_age_days"),
            (with("colour", "red".into()), "colour"),
            (without("amount"), "amount"),
            (without("customer_id"), "customer_id"),
            (b"{\"amount\": ".to_vec(), "body"),
            (b"[]".to_vec(), "body"),
        ];
        for (body, field) in cases {
            let e = parse(&body).unwrap_err();
            assert_eq!(e.field, field, "{}: {e}", String::from_utf8_lossy(&body));
        }
        // Optional fields may be null or absent.
        assert!(parse(&with("device_os", serde_json::Value::Null)).unwrap().device_os.is_none());
        assert!(parse(&without("distance_from_home_km")).unwrap().distance_from_home_km.is_none());
    }
}
