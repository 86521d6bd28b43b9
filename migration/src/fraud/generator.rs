//! Card payments as a pure function of (seed, request index), with a hidden truth.
//!
//! Each request draws from its own ChaCha8 stream (the index selects the stream), and each
//! customer's lasting traits from another (the customer id selects it), so request `i`
//! is the same whatever else was generated, in whatever order, on any machine.

use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{eur_rate, local_hour, APP_OS, CHANNELS, COUNTRIES, MERCHANT_CATEGORIES, WEB_OS};
use crate::schema::{Kind, Record, Schema, Text, Value};
use crate::traffic::Source;

/// Customers in the default population.
pub const CUSTOMERS_DEFAULT: u64 = 20_000;

/// Salts that keep the request and customer streams apart for one seed.
const REQUEST_SALT: u64 = 0x7265_7175_6573_7473; // "requests"
const CUSTOMER_SALT: u64 = 0x6375_7374_6f6d_6572; // "customer"

/// How the generator shapes traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Customers in the population; a few are frequent, most are occasional.
    pub customers: u64,
    /// Event time of request 0, milliseconds since the epoch.
    pub start_ms: i64,
    /// Share of fraudulent transactions before risk factors.
    pub fraud_base_rate: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            customers: CUSTOMERS_DEFAULT,
            start_ms: 1_772_323_200_000, // 2026-03-01T00:00:00Z
            fraud_base_rate: 0.006,
        }
    }
}

/// The lasting traits of one customer.
#[derive(Debug, Clone, Copy)]
struct Customer {
    home: usize,
    account_age_at_start_days: Option<f64>,
    typical_amount_eur: f64,
    channel_weights: [f64; 3],
    app_os: usize,
    web_os: usize,
}

/// One payment as drawn, values as table indices.
#[derive(Debug, Clone, Copy)]
struct Payment {
    customer_id: u64,
    amount: f64,
    country: usize,
    merchant: usize,
    channel: usize,
    /// (app?, index) of the operating system.
    device_os: Option<(bool, usize)>,
    account_age_days: Option<f64>,
    card_present: bool,
    distance_from_home_km: Option<f64>,
}

/// Where each field goes in the migration's records, and the interned table values.
#[derive(Debug, Clone)]
struct Layout {
    fields: [usize; 12],
    countries: Vec<Text>,
    currencies: Vec<Text>,
    merchants: Vec<Text>,
    channels: Vec<Text>,
    app_os: Vec<Text>,
    web_os: Vec<Text>,
}

/// The fields the generator writes: (name, kind, optional).
const FIELDS: [(&str, Kind, bool); 12] = [
    ("transaction_id", Kind::Integer, false),
    ("customer_id", Kind::Integer, false),
    ("event_time_ms", Kind::Timestamp, false),
    ("amount", Kind::Number, false),
    ("currency", Kind::Category, false),
    ("merchant_category", Kind::Category, false),
    ("country", Kind::Category, false),
    ("channel", Kind::Category, false),
    ("device_os", Kind::Category, true),
    ("account_age_days", Kind::Number, true),
    ("card_present", Kind::Boolean, false),
    ("distance_from_home_km", Kind::Number, true),
];

/// The card-fraud traffic source.
#[derive(Debug, Clone)]
pub struct FraudSource {
    seed: u64,
    config: GeneratorConfig,
    schema: Arc<Schema>,
    layout: Arc<Layout>,
    /// Every customer's traits, drawn once (they are a pure function of seed and id).
    customers: Arc<Vec<Customer>>,
}

/// Populations up to this size keep their customers' traits in memory.
const CACHED_CUSTOMERS: u64 = 1_000_000;

impl FraudSource {
    /// A generator for `seed` writing `schema`'s records; refuses a schema without the
    /// fields it writes (or with required fields it does not).
    pub fn new(seed: u64, config: GeneratorConfig, schema: &Arc<Schema>) -> Result<FraudSource, String> {
        let mut fields = [0usize; 12];
        for (k, (name, kind, optional)) in FIELDS.iter().enumerate() {
            let i = schema
                .index(name)
                .ok_or_else(|| format!("the card-fraud generator writes `{name}`; the schema has no such field"))?;
            let f = schema.field(i);
            if f.kind != *kind || (f.optional != *optional && !*optional) {
                return Err(format!(
                    "the card-fraud generator writes `{name}` as a {}{}; the schema declares a {}{}",
                    kind.name(),
                    if *optional { " that may be missing" } else { "" },
                    f.kind.name(),
                    if f.optional { " that may be missing" } else { "" }
                ));
            }
            fields[k] = i;
        }
        if schema.id_field() != fields[0] || schema.entity_field() != fields[1] || schema.time_field() != fields[2] {
            return Err(
                "the card-fraud generator needs id = transaction_id, entity = customer_id, time = event_time_ms".into(),
            );
        }
        if let Some(f) = schema.fields().iter().find(|f| !f.optional && !FIELDS.iter().any(|(n, _, _)| *n == f.name)) {
            return Err(format!("the schema requires `{}`, which the card-fraud generator does not write", f.name));
        }
        let intern = |v: &str| schema.interner().intern(v);
        let layout = Layout {
            fields,
            countries: COUNTRIES.iter().map(|c| intern(c.code)).collect(),
            currencies: COUNTRIES.iter().map(|c| intern(c.currency)).collect(),
            merchants: MERCHANT_CATEGORIES.iter().map(|m| intern(m.0)).collect(),
            channels: CHANNELS.iter().map(|c| intern(c)).collect(),
            app_os: APP_OS.iter().map(|o| intern(o.0)).collect(),
            web_os: WEB_OS.iter().map(|o| intern(o.0)).collect(),
        };
        let mut g = FraudSource {
            seed,
            config,
            schema: schema.clone(),
            layout: Arc::new(layout),
            customers: Default::default(),
        };
        if g.config.customers <= CACHED_CUSTOMERS {
            g.customers = Arc::new((0..g.config.customers).map(|id| g.draw_customer(id)).collect());
        }
        Ok(g)
    }

    fn request_rng(&self, index: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ REQUEST_SALT);
        rng.set_stream(index);
        rng
    }

    /// Request `index` at `time_ms` and whether it is fraud.
    fn payment(&self, index: u64, time_ms: i64) -> (Payment, bool) {
        let mut rng = self.request_rng(index);
        let _jitter: f64 = rng.random(); // keep the stream aligned with `time_at_rate`
        self.draw(time_ms, &mut rng)
    }

    fn customer(&self, id: u64) -> Customer {
        match self.customers.get(id as usize) {
            Some(c) => *c,
            None => self.draw_customer(id),
        }
    }

    fn draw_customer(&self, id: u64) -> Customer {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ CUSTOMER_SALT);
        rng.set_stream(id);
        let home = pick(&mut rng, COUNTRIES.iter().map(|c| c.weight));
        let guest = rng.random_bool(0.12);
        let new = rng.random_bool(0.08);
        let age = if new { rng.random_range(0.0..30.0) } else { 30.0 + exponential(&mut rng, 900.0).min(7000.0) };
        let pos: f64 = rng.random_range(0.2..0.8);
        let app: f64 = rng.random_range(0.0..(1.0 - pos));
        Customer {
            home,
            account_age_at_start_days: (!guest).then_some(age),
            typical_amount_eur: lognormal(&mut rng, 3.4, 0.7),
            channel_weights: [pos, 1.0 - pos - app, app],
            app_os: pick(&mut rng, APP_OS.iter().map(|o| o.1)),
            web_os: pick(&mut rng, WEB_OS.iter().map(|o| o.1)),
        }
    }

    fn draw(&self, time: i64, rng: &mut ChaCha8Rng) -> (Payment, bool) {
        // A skewed population: low ids are frequent customers.
        let u: f64 = rng.random();
        let customer_id = ((u * u * u) * self.config.customers as f64) as u64;
        let c = self.customer(customer_id);
        let elapsed_days = (time - self.config.start_ms) as f64 / 86_400_000.0;
        let account_age_days = c.account_age_at_start_days.map(|a| a + elapsed_days.max(0.0));

        let abroad = rng.random_bool(0.04);
        let home = &COUNTRIES[c.home];
        let hour = local_hour(time, home.zone);
        let night = !(6..23).contains(&hour);

        // The hidden truth: fraud is likelier at night, for guests and new accounts.
        let mut p = self.config.fraud_base_rate;
        if night {
            p *= 3.0;
        }
        match account_age_days {
            None => p *= 3.0,
            Some(d) if d < 30.0 => p *= 2.5,
            _ => {}
        }
        if abroad {
            p *= 3.0;
        }
        let fraud = rng.random_bool(p.min(0.9));

        let channel_weights = if fraud { [0.1, 0.55, 0.35] } else { c.channel_weights };
        let channel = pick(rng, channel_weights.into_iter());
        let country_index = if abroad || (fraud && rng.random_bool(0.3)) {
            pick(rng, COUNTRIES.iter().map(|c| c.weight.sqrt()))
        } else {
            c.home
        };
        let country = &COUNTRIES[country_index];
        let merchant = pick(rng, MERCHANT_CATEGORIES.iter().map(|m| if fraud { m.2 } else { m.1 }));
        let scale = if fraud { lognormal(rng, 1.1, 0.9) } else { lognormal(rng, 0.0, 0.6) };
        let amount_eur = (c.typical_amount_eur * scale).clamp(0.5, 25_000.0);
        let rate = eur_rate(country.currency);
        let minor = if country.currency == "JPY" || country.currency == "ISK" { 1.0 } else { 100.0 };
        let amount = ((amount_eur / rate) * minor).round() / minor;

        let device_os = match CHANNELS[channel] {
            "app" => Some((true, if fraud && rng.random_bool(0.3) { 1 } else { c.app_os })),
            "web" => Some((false, if fraud && rng.random_bool(0.1) { 5 } else { c.web_os })),
            _ => None,
        };
        let pos = CHANNELS[channel] == "pos";
        let card_present = pos && !rng.random_bool(0.03);
        let known_location = pos || rng.random_bool(0.6);
        let far = country_index != c.home || (fraud && rng.random_bool(0.5));
        let distance = if far { rng.random_range(300.0..9000.0) } else { lognormal(rng, 1.5, 1.0) };
        let distance_from_home_km = known_location.then_some((distance * 10.0).round() / 10.0);

        let payment = Payment {
            customer_id,
            amount,
            country: country_index,
            merchant,
            channel,
            device_os,
            account_age_days: account_age_days.map(|d| (d * 100.0).round() / 100.0),
            card_present,
            distance_from_home_km,
        };
        (payment, fraud)
    }

    fn write(&self, index: u64, time_ms: i64, p: &Payment, r: &mut Record) {
        let l = &*self.layout;
        let f = &l.fields;
        let opt = |v: Option<f64>| v.map_or(Value::Missing, Value::Number);
        r.values[f[0]] = Value::Key(index);
        r.values[f[1]] = Value::Key(p.customer_id);
        r.values[f[2]] = Value::Number(time_ms as f64);
        r.values[f[3]] = Value::Number(p.amount);
        r.values[f[4]] = Value::Text(l.currencies[p.country]);
        r.values[f[5]] = Value::Text(l.merchants[p.merchant]);
        r.values[f[6]] = Value::Text(l.countries[p.country]);
        r.values[f[7]] = Value::Text(l.channels[p.channel]);
        r.values[f[8]] = match p.device_os {
            Some((true, i)) => Value::Text(l.app_os[i]),
            Some((false, i)) => Value::Text(l.web_os[i]),
            None => Value::Missing,
        };
        r.values[f[9]] = opt(p.account_age_days);
        r.values[f[10]] = Value::Number(f64::from(u8::from(p.card_present)));
        r.values[f[11]] = opt(p.distance_from_home_km);
        r.id = index;
        r.entity = p.customer_id;
        r.time_ms = time_ms;
    }
}

impl Source for FraudSource {
    fn name(&self) -> String {
        "generator card-fraud".into()
    }

    fn start_ms(&self) -> i64 {
        self.config.start_ms
    }

    fn time_at_rate(&self, index: u64, rate_rps: f64) -> i64 {
        let spacing_ms = 1000.0 / rate_rps;
        let mut rng = self.request_rng(index);
        // Jitter inside the slot keeps times increasing with the index.
        let jitter: f64 = rng.random();
        self.config.start_ms + ((index as f64 + jitter) * spacing_ms) as i64
    }

    fn fill(&self, index: u64, time_ms: i64, record: &mut Record) {
        let (p, _) = self.payment(index, time_ms);
        self.write(index, time_ms, &p, record);
    }

    fn label(&self, index: u64, time_ms: i64) -> Option<f64> {
        Some(f64::from(u8::from(self.payment(index, time_ms).1)))
    }

    fn render(&self, _index: u64, record: &Record) -> serde_json::Value {
        self.schema.to_json(record, &|_, _| None)
    }

    fn reference(&self, n: usize) -> Vec<Record> {
        let reference = FraudSource { seed: self.seed ^ 0x5EED, customers: Arc::new(Vec::new()), ..self.clone() };
        (0..n as u64)
            .map(|i| {
                let mut r = self.schema.record();
                reference.fill(i, reference.time_at_rate(i, 200.0), &mut r);
                r
            })
            .collect()
    }
}

/// Index drawn with the given relative weights.
fn pick(rng: &mut ChaCha8Rng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut u = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if u < w {
            return i;
        }
        u -= w;
        last = i;
    }
    last
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller: two uniforms, one normal (the other is dropped to keep draws fixed per call).
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn lognormal(rng: &mut ChaCha8Rng, mu: f64, sigma: f64) -> f64 {
    (mu + sigma * normal(rng)).exp()
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::folder::Migration;

    fn source(seed: u64) -> FraudSource {
        let m = Migration::bundled_fraud().unwrap();
        FraudSource::new(seed, GeneratorConfig::default(), m.schema()).unwrap()
    }

    fn at(g: &FraudSource, i: u64) -> (Record, bool) {
        let t = g.time_at_rate(i, 200.0);
        let mut r = g.schema.record();
        g.fill(i, t, &mut r);
        (r, g.label(i, t) == Some(1.0))
    }

    #[test]
    fn a_request_is_a_pure_function_of_seed_and_index() {
        let g = source(7);
        let forward: Vec<_> = (0..500).map(|i| at(&g, i)).collect();
        let backward: Vec<_> = (0..500).rev().map(|i| at(&source(7), i)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        assert_ne!(at(&source(8), 3).0, at(&g, 3).0);
        // Event times increase with the index.
        assert!(forward.windows(2).all(|w| w[0].0.time_ms <= w[1].0.time_ms));
    }

    #[test]
    fn the_traffic_looks_like_card_payments() {
        let g = source(1);
        let s = g.schema.clone();
        let (age, distance, country, channel, device) = (
            s.index("account_age_days").unwrap(),
            s.index("distance_from_home_km").unwrap(),
            s.index("country").unwrap(),
            s.index("channel").unwrap(),
            s.index("device_os").unwrap(),
        );
        let text = |v: Value| match v {
            Value::Text(t) => s.interner().resolve(t.id).unwrap(),
            _ => String::new(),
        };
        let n = 50_000;
        let (mut fraud, mut guests, mut no_distance, mut unseen_country) = (0, 0, 0, 0);
        let mut per_customer: BTreeMap<u64, u32> = BTreeMap::new();
        let mut channels: BTreeMap<String, u32> = BTreeMap::new();
        for i in 0..n {
            let (r, is_fraud) = at(&g, i);
            fraud += usize::from(is_fraud);
            guests += usize::from(r.values[age].is_missing());
            no_distance += usize::from(r.values[distance].is_missing());
            let c = text(r.values[country]);
            unseen_country += usize::from(c == "XK" || c == "LI");
            *per_customer.entry(r.entity).or_default() += 1;
            let ch = text(r.values[channel]);
            assert_eq!(r.values[device].is_missing(), ch == "pos");
            *channels.entry(ch).or_default() += 1;
        }
        let rate = |k: usize| k as f64 / n as f64;
        assert!((0.005..0.05).contains(&rate(fraud)), "fraud rate {}", rate(fraud));
        assert!((0.05..0.25).contains(&rate(guests)), "guest rate {}", rate(guests));
        assert!((0.05..0.4).contains(&rate(no_distance)), "missing distance {}", rate(no_distance));
        assert!(unseen_country > 0, "no unseen country in {n} requests");
        assert_eq!(channels.len(), 3);
        // Customers recur: the busiest see many requests, and most requests are repeats.
        let busiest = per_customer.values().max().copied().unwrap_or(0);
        assert!(busiest > 50, "busiest customer has {busiest} requests");
        assert!(per_customer.len() < n as usize / 3);
    }

    #[test]
    fn a_schema_without_the_generators_fields_is_refused() {
        let loan = crate::schema::tests::schema(crate::schema::tests::LOAN).unwrap();
        let e = FraudSource::new(1, GeneratorConfig::default(), &Arc::new(loan)).unwrap_err();
        assert!(e.contains("transaction_id"), "{e}");
    }
}
