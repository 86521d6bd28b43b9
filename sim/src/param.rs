//! Scenario parameters that may be a range: `scale = 100.0` or `scale = "50..400"`. A range
//! is drawn once per run from the seed's parameter stream, so one scenario file sweeps
//! magnitudes across seeds.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A number, or a range `lo..hi` to draw from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param {
    /// A fixed value.
    Fixed(f64),
    /// Drawn uniformly from `[lo, hi)`.
    Range(f64, f64),
}

impl Param {
    /// The value for this run.
    pub fn resolve(self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Param::Fixed(x) => x,
            Param::Range(lo, hi) => lo + (hi - lo) * rng.random::<f64>(),
        }
    }

    /// The smallest value it can take.
    pub fn min(self) -> f64 {
        match self {
            Param::Fixed(x) | Param::Range(x, _) => x,
        }
    }

    /// The largest value it can take.
    pub fn max(self) -> f64 {
        match self {
            Param::Fixed(x) | Param::Range(_, x) => x,
        }
    }
}

/// Written as it is read: a number, or `"lo..hi"`.
impl Serialize for Param {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Param::Fixed(x) => s.serialize_f64(x),
            Param::Range(lo, hi) => s.serialize_str(&format!("{lo}..{hi}")),
        }
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Param, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Param;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a range string like \"50..400\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Param, E> {
                finite(v).map(Param::Fixed)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Param, E> {
                Ok(Param::Fixed(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Param, E> {
                Ok(Param::Fixed(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Param, E> {
                let bad = || E::custom(format!("invalid range \"{v}\" (expected \"lo..hi\" with lo <= hi)"));
                let (lo, hi) = v.split_once("..").ok_or_else(bad)?;
                let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
                let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(bad());
                }
                Ok(Param::Range(lo, hi))
            }
        }
        d.deserialize_any(V)
    }
}

fn finite<E: de::Error>(v: f64) -> Result<f64, E> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(E::custom(format!("{v} is not a finite number")))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[derive(Deserialize)]
    struct T {
        a: Param,
    }

    #[test]
    fn written_as_read() {
        for p in [Param::Fixed(3.5), Param::Range(50.0, 400.25)] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Param>(&json).unwrap(), p, "{json}");
        }
    }

    #[test]
    fn numbers_and_ranges() {
        let t: T = toml::from_str("a = 3").unwrap();
        assert_eq!(t.a, Param::Fixed(3.0));
        let t: T = toml::from_str("a = \"50..400\"").unwrap();
        assert_eq!(t.a, Param::Range(50.0, 400.0));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = t.a.resolve(&mut rng);
        assert!((50.0..400.0).contains(&x));
        assert!(toml::from_str::<T>("a = \"9..1\"").is_err());
        assert!(toml::from_str::<T>("a = \"x\"").is_err());
    }
}
