//! The bundled domain: card-payment fraud scoring, the classic XGBoost service.
//!
//! A [`Request`] is what the legacy service receives; [`Generator`] makes requests (and the
//! hidden truth of whether each is fraud) as a pure function of (seed, request index).
//! Categorical values are drawn from the tables below, which hold common, rare and
//! *unseen* values (ones the bundled vocabularies do not list), and raw strings arrive in
//! the mixed case real clients send (`iOS` from the app, `ios` from the web).

pub(crate) mod generator;
pub mod wire;

pub use generator::{Generator, GeneratorConfig, CUSTOMERS_DEFAULT};

use chrono_tz::Tz;

/// One card payment, as the scoring service receives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Unique per request.
    pub transaction_id: u64,
    /// The paying customer; customers recur, so per-customer aggregates mean something.
    pub customer_id: u64,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub event_time_ms: i64,
    /// Amount in the currency's major unit.
    pub amount: f64,
    /// ISO 4217 code.
    pub currency: &'static str,
    /// Merchant category code (ISO 18245), as a string.
    pub merchant_category: &'static str,
    /// Country of the merchant, ISO 3166 alpha-2.
    pub country: &'static str,
    /// `pos`, `web` or `app`.
    pub channel: &'static str,
    /// Operating system as the client reports it (mixed case); none at a point of sale.
    pub device_os: Option<&'static str>,
    /// Days since the account was opened; none for a guest checkout.
    pub account_age_days: Option<f64>,
    /// Whether the card was physically present.
    pub card_present: bool,
    /// Distance from the customer's home in km; sometimes unknown.
    pub distance_from_home_km: Option<f64>,
}

/// A raw value of a request field, as a feature pipeline reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    /// A number (booleans are 0 and 1).
    Number(f64),
    /// A categorical string.
    Text(&'static str),
    /// No value.
    Missing,
}

/// The fields of a [`Request`] a feature may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `amount`
    Amount,
    /// `currency`
    Currency,
    /// `event_time` (milliseconds since the epoch)
    EventTime,
    /// `merchant_category`
    MerchantCategory,
    /// `country`
    Country,
    /// `channel`
    Channel,
    /// `device_os`
    DeviceOs,
    /// `account_age_days`
    AccountAgeDays,
    /// `card_present`
    CardPresent,
    /// `distance_from_home_km`
    DistanceFromHomeKm,
}

impl Field {
    /// Every field, in declaration order.
    pub const ALL: [Field; 10] = [
        Field::Amount,
        Field::Currency,
        Field::EventTime,
        Field::MerchantCategory,
        Field::Country,
        Field::Channel,
        Field::DeviceOs,
        Field::AccountAgeDays,
        Field::CardPresent,
        Field::DistanceFromHomeKm,
    ];

    /// The field's name in specs and recorded files.
    pub fn name(self) -> &'static str {
        match self {
            Field::Amount => "amount",
            Field::Currency => "currency",
            Field::EventTime => "event_time",
            Field::MerchantCategory => "merchant_category",
            Field::Country => "country",
            Field::Channel => "channel",
            Field::DeviceOs => "device_os",
            Field::AccountAgeDays => "account_age_days",
            Field::CardPresent => "card_present",
            Field::DistanceFromHomeKm => "distance_from_home_km",
        }
    }

    /// Parses a field name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the field holds text (categorical) rather than a number.
    pub fn is_text(self) -> bool {
        matches!(self, Field::Currency | Field::MerchantCategory | Field::Country | Field::Channel | Field::DeviceOs)
    }
}

impl Request {
    /// The value of one field.
    pub fn field(&self, field: Field) -> FieldValue {
        let opt = |v: Option<f64>| v.map_or(FieldValue::Missing, FieldValue::Number);
        match field {
            Field::Amount => FieldValue::Number(self.amount),
            Field::Currency => FieldValue::Text(self.currency),
            Field::EventTime => FieldValue::Number(self.event_time_ms as f64),
            Field::MerchantCategory => FieldValue::Text(self.merchant_category),
            Field::Country => FieldValue::Text(self.country),
            Field::Channel => FieldValue::Text(self.channel),
            Field::DeviceOs => self.device_os.map_or(FieldValue::Missing, FieldValue::Text),
            Field::AccountAgeDays => opt(self.account_age_days),
            Field::CardPresent => FieldValue::Number(f64::from(u8::from(self.card_present))),
            Field::DistanceFromHomeKm => opt(self.distance_from_home_km),
        }
    }

    /// The customer's segment by tenure: `guest`, `new` (under 30 days) or `established`.
    pub fn tenure(&self) -> &'static str {
        match self.account_age_days {
            None => "guest",
            Some(d) if d < 30.0 => "new",
            Some(_) => "established",
        }
    }

    /// The time zone of the merchant's country (UTC for a country the domain does not know).
    pub fn local_zone(&self) -> Tz {
        country(self.country).map_or(Tz::UTC, |c| c.zone)
    }
}

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

/// Looks a country up by code.
pub fn country(code: &str) -> Option<&'static Country> {
    COUNTRIES.iter().find(|c| c.code == code)
}

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

/// The hour of day (0-23) of a UTC millisecond timestamp in a zone.
pub fn local_hour(time_ms: i64, zone: Tz) -> u32 {
    use chrono::{TimeZone, Timelike};
    zone.timestamp_millis_opt(time_ms).single().map_or(0, |t| t.hour())
}
