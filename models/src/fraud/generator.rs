//! Requests as a pure function of (seed, request index), with a hidden truth.
//!
//! Each request draws from its own ChaCha8 stream (the index selects the stream), and each
//! customer's lasting traits from another (the customer id selects it), so request `i`
//! is the same whatever else was generated, in whatever order, on any machine.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Request, APP_OS, COUNTRIES, MERCHANT_CATEGORIES, WEB_OS};

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
    /// Mean request rate, used to space event times when none is given.
    pub rate_rps: f64,
    /// Share of fraudulent transactions before risk factors (about 1.5 %).
    pub fraud_base_rate: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            customers: CUSTOMERS_DEFAULT,
            start_ms: 1_772_323_200_000, // 2026-03-01T00:00:00Z
            rate_rps: 200.0,
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
    app_os: &'static str,
    web_os: &'static str,
}

/// Card-payment requests and their hidden fraud labels.
#[derive(Debug, Clone)]
pub struct Generator {
    seed: u64,
    config: GeneratorConfig,
    /// Every customer's traits, drawn once (they are a pure function of seed and id).
    customers: std::sync::Arc<Vec<Customer>>,
}

/// Populations up to this size keep their customers' traits in memory.
const CACHED_CUSTOMERS: u64 = 1_000_000;

impl Generator {
    /// A generator for `seed` with the default traffic shape.
    pub fn new(seed: u64) -> Self {
        Generator::with_config(seed, GeneratorConfig::default())
    }

    /// A generator for `seed` with the given traffic shape.
    pub fn with_config(seed: u64, config: GeneratorConfig) -> Self {
        let mut g = Generator { seed, config, customers: Default::default() };
        if g.config.customers <= CACHED_CUSTOMERS {
            g.customers = std::sync::Arc::new((0..g.config.customers).map(|id| g.draw_customer(id)).collect());
        }
        g
    }

    /// The traffic shape.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Request `index`, at an event time spaced by the configured rate.
    pub fn request(&self, index: u64) -> Request {
        self.labeled(index).0
    }

    /// Request `index` and whether it is fraud (the truth the model is trained to find).
    pub fn labeled(&self, index: u64) -> (Request, bool) {
        let spacing_ms = 1000.0 / self.config.rate_rps;
        let mut rng = self.request_rng(index);
        // Jitter inside the slot keeps times increasing with the index.
        let jitter: f64 = rng.random();
        let time = self.config.start_ms + ((index as f64 + jitter) * spacing_ms) as i64;
        self.draw(index, time, &mut rng)
    }

    /// Request `index` at a given event time (the simulator's arrival clock).
    pub fn labeled_at(&self, index: u64, event_time_ms: i64) -> (Request, bool) {
        let mut rng = self.request_rng(index);
        let _jitter: f64 = rng.random(); // keep the stream aligned with `labeled`
        self.draw(index, event_time_ms, &mut rng)
    }

    fn request_rng(&self, index: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ REQUEST_SALT);
        rng.set_stream(index);
        rng
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
            app_os: APP_OS[pick(&mut rng, APP_OS.iter().map(|o| o.1))].0,
            web_os: WEB_OS[pick(&mut rng, WEB_OS.iter().map(|o| o.1))].0,
        }
    }

    fn draw(&self, index: u64, time: i64, rng: &mut ChaCha8Rng) -> (Request, bool) {
        // A skewed population: low ids are frequent customers.
        let u: f64 = rng.random();
        let customer_id = ((u * u * u) * self.config.customers as f64) as u64;
        let c = self.customer(customer_id);
        let elapsed_days = (time - self.config.start_ms) as f64 / 86_400_000.0;
        let account_age_days = c.account_age_at_start_days.map(|a| a + elapsed_days.max(0.0));

        let abroad = rng.random_bool(0.04);
        let home = &COUNTRIES[c.home];
        let local_hour = super::local_hour(time, home.zone);
        let night = !(6..23).contains(&local_hour);

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
        let channel = ["pos", "web", "app"][pick(rng, channel_weights.into_iter())];
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

        let device_os = match channel {
            "app" => Some(if fraud && rng.random_bool(0.3) { "Android" } else { c.app_os }),
            "web" => Some(if fraud && rng.random_bool(0.1) { "kaios" } else { c.web_os }),
            _ => None,
        };
        let card_present = channel == "pos" && !rng.random_bool(0.03);
        let known_location = channel == "pos" || rng.random_bool(0.6);
        let far = country_index != c.home || (fraud && rng.random_bool(0.5));
        let distance = if far { rng.random_range(300.0..9000.0) } else { lognormal(rng, 1.5, 1.0) };
        let distance_from_home_km = known_location.then_some((distance * 10.0).round() / 10.0);

        let request = Request {
            transaction_id: index,
            customer_id,
            event_time_ms: time,
            amount,
            currency: country.currency,
            merchant_category: MERCHANT_CATEGORIES[merchant].0,
            country: country.code,
            channel,
            device_os,
            account_age_days: account_age_days.map(|d| (d * 100.0).round() / 100.0),
            card_present,
            distance_from_home_km,
        };
        (request, fraud)
    }
}

/// Euros per unit of each currency the domain uses (the generator's truth; the feature
/// specs carry their own table, which a fault can make disagree).
pub fn eur_rate(currency: &str) -> f64 {
    match currency {
        "EUR" => 1.0,
        "USD" => 0.92,
        "GBP" => 1.17,
        "BRL" => 0.18,
        "PLN" => 0.23,
        "INR" => 0.011,
        "JPY" => 0.0062,
        "AUD" => 0.60,
        "ISK" => 0.0066,
        "CHF" => 1.04,
        _ => 1.0,
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

    #[test]
    fn a_request_is_a_pure_function_of_seed_and_index() {
        let g = Generator::new(7);
        let forward: Vec<_> = (0..500).map(|i| g.labeled(i)).collect();
        let backward: Vec<_> = (0..500).rev().map(|i| Generator::new(7).labeled(i)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        assert_ne!(Generator::new(8).request(3), g.request(3));
        // Event times increase with the index.
        assert!(forward.windows(2).all(|w| w[0].0.event_time_ms <= w[1].0.event_time_ms));
    }

    #[test]
    fn the_traffic_looks_like_card_payments() {
        let g = Generator::new(1);
        let n = 50_000;
        let (mut fraud, mut guests, mut no_distance, mut unseen_country) = (0, 0, 0, 0);
        let mut per_customer: BTreeMap<u64, u32> = BTreeMap::new();
        let mut channels: BTreeMap<&str, u32> = BTreeMap::new();
        for i in 0..n {
            let (r, is_fraud) = g.labeled(i);
            fraud += usize::from(is_fraud);
            guests += usize::from(r.account_age_days.is_none());
            no_distance += usize::from(r.distance_from_home_km.is_none());
            unseen_country += usize::from(r.country == "XK" || r.country == "LI");
            *per_customer.entry(r.customer_id).or_default() += 1;
            *channels.entry(r.channel).or_default() += 1;
            assert!(r.amount > 0.0);
            assert_eq!(r.device_os.is_none(), r.channel == "pos");
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
    fn a_customer_keeps_their_home_and_devices() {
        let g = Generator::new(3);
        let mut seen: BTreeMap<u64, (Option<&str>, bool)> = BTreeMap::new();
        for i in 0..20_000 {
            let r = g.request(i);
            if r.channel == "app" {
                let entry = seen.entry(r.customer_id).or_insert((r.device_os, r.account_age_days.is_none()));
                assert_eq!(entry.1, r.account_age_days.is_none(), "guest status changed");
            }
        }
    }
}
