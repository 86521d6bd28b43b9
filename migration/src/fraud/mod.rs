//! The bundled example's own generator: card-payment fraud scoring, the classic XGBoost
//! service. This is the one module that knows the fraud migration's field names; the
//! harness reaches it only as the traffic source named `card-fraud`, which writes requests
//! into whatever records the migration folder's schema declares (and refuses a schema that
//! lacks its fields).
//!
//! Requests are a pure function of (seed, request index), with a hidden truth of whether
//! each is fraud. Categorical values come from the tables below, which hold common, rare
//! and *unseen* values (ones the bundled vocabularies do not list), and raw strings arrive
//! in the mixed case real clients send (`iOS` from the app, `ios` from the web).

mod generator;

pub use generator::{FraudSource, GeneratorConfig};

use chrono_tz::Tz;

/// A country of the domain: how often merchants are there, its zone and currency.
#[derive(Debug, Clone, Copy)]
pub struct Country {
    /// ISO 3166 alpha-2.
    pub code: &'static str,
    /// Relative share of customers living there.
    pub weight: f64,
    /// Its time zone.
    pub zone: Tz,
    /// Its currency.
    pub currency: &'static str,
}

/// Countries, most common first. `MT` and `IS` are rare; `XK` and `LI` are unseen (the
/// bundled vocabularies do not list them).
pub const COUNTRIES: [Country; 16] = [
    Country { code: "DE", weight: 0.22, zone: Tz::Europe__Berlin, currency: "EUR" },
    Country { code: "US", weight: 0.18, zone: Tz::America__New_York, currency: "USD" },
    Country { code: "FR", weight: 0.12, zone: Tz::Europe__Paris, currency: "EUR" },
    Country { code: "GB", weight: 0.12, zone: Tz::Europe__London, currency: "GBP" },
    Country { code: "ES", weight: 0.06, zone: Tz::Europe__Madrid, currency: "EUR" },
    Country { code: "IT", weight: 0.06, zone: Tz::Europe__Rome, currency: "EUR" },
    Country { code: "NL", weight: 0.05, zone: Tz::Europe__Amsterdam, currency: "EUR" },
    Country { code: "BR", weight: 0.05, zone: Tz::America__Sao_Paulo, currency: "BRL" },
    Country { code: "PL", weight: 0.04, zone: Tz::Europe__Warsaw, currency: "PLN" },
    Country { code: "IN", weight: 0.04, zone: Tz::Asia__Kolkata, currency: "INR" },
    Country { code: "JP", weight: 0.03, zone: Tz::Asia__Tokyo, currency: "JPY" },
    Country { code: "AU", weight: 0.02, zone: Tz::Australia__Sydney, currency: "AUD" },
    Country { code: "MT", weight: 0.004, zone: Tz::Europe__Malta, currency: "EUR" },
    Country { code: "IS", weight: 0.003, zone: Tz::Atlantic__Reykjavik, currency: "ISK" },
    Country { code: "XK", weight: 0.002, zone: Tz::Europe__Belgrade, currency: "EUR" },
    Country { code: "LI", weight: 0.001, zone: Tz::Europe__Vaduz, currency: "CHF" },
];

/// Merchant categories with their share of legitimate and of fraudulent traffic. The last
/// two are unseen; `7273` is rare.
pub const MERCHANT_CATEGORIES: [(&str, f64, f64); 18] = [
    ("5411", 0.25, 0.03),  // grocery
    ("5812", 0.15, 0.02),  // restaurants
    ("5541", 0.10, 0.03),  // fuel
    ("5691", 0.06, 0.06),  // clothing
    ("5311", 0.08, 0.05),  // department stores
    ("5999", 0.08, 0.08),  // miscellaneous retail
    ("4111", 0.07, 0.02),  // transport
    ("4814", 0.04, 0.05),  // telecom
    ("5964", 0.03, 0.08),  // direct marketing
    ("5732", 0.05, 0.20),  // electronics
    ("7011", 0.04, 0.04),  // hotels
    ("4511", 0.03, 0.07),  // airlines
    ("5944", 0.02, 0.10),  // jewellery
    ("7995", 0.015, 0.08), // gambling
    ("6051", 0.01, 0.12),  // quasi-cash, crypto
    ("7273", 0.003, 0.02), // dating (rare)
    ("5967", 0.002, 0.01), // inbound telemarketing (unseen)
    ("6540", 0.002, 0.01), // stored-value load (unseen)
];

/// Operating systems as app clients report them.
pub const APP_OS: [(&str, f64); 3] = [("iOS", 0.52), ("Android", 0.47), ("HarmonyOS", 0.01)];
/// Operating systems as web clients report them (lower case), `kaios` unseen.
pub const WEB_OS: [(&str, f64); 6] =
    [("windows", 0.45), ("macos", 0.2), ("ios", 0.17), ("android", 0.15), ("linux", 0.025), ("kaios", 0.005)];

/// The channels, in the generator's order.
pub const CHANNELS: [&str; 3] = ["pos", "web", "app"];

/// The hour of day (0-23) of a UTC millisecond timestamp in a zone.
pub fn local_hour(time_ms: i64, zone: Tz) -> u32 {
    use chrono::{TimeZone, Timelike};
    zone.timestamp_millis_opt(time_ms).single().map_or(0, |t| t.hour())
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
