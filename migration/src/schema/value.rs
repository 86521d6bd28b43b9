//! A request as cutover holds it: one [`Value`] per schema field, in the schema's order.
//!
//! Values are small and `Copy`: numbers (integers, booleans as 0 and 1, timestamps as
//! epoch milliseconds), category text as interned symbols, and the keys of the id and
//! entity fields. A [`Record`] is filled in place, so the simulator reuses one buffer for
//! every request it generates.

/// Symbol of a text value that was not interned (never seen, or the table was full): it
/// matches no vocabulary, table or segment, so it is scored as the spec's `unknown` rule says.
pub const UNSEEN: u32 = u32::MAX;

/// An interned category value: its symbol, and the symbol of its ASCII-lowercased form
/// (what case-insensitive vocabularies, tables and segments match on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text {
    /// The value as sent.
    pub id: u32,
    /// The value lowercased.
    pub folded: u32,
}

impl Text {
    /// A value the interner does not hold.
    pub const UNSEEN: Text = Text { id: UNSEEN, folded: UNSEEN };

    /// The symbol to match on.
    pub fn symbol(self, case_sensitive: bool) -> u32 {
        if case_sensitive {
            self.id
        } else {
            self.folded
        }
    }
}

/// One field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Absent or null.
    Missing,
    /// A number: numbers, integers, booleans (0 and 1), timestamps (epoch milliseconds).
    Number(f64),
    /// A category.
    Text(Text),
    /// The key of the id or entity field: the integer itself, or a stable hash of the text.
    Key(u64),
}

impl Value {
    /// The value as a number, NaN when it is none.
    pub fn number(self) -> f64 {
        match self {
            Value::Number(x) => x,
            Value::Key(k) => k as f64,
            Value::Missing | Value::Text(_) => f64::NAN,
        }
    }

    /// Whether the value is absent.
    pub fn is_missing(self) -> bool {
        self == Value::Missing
    }
}

/// One request: a value per schema field, and the three the harness reads on every
/// request (the id and entity keys, the event time) kept apart for speed.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The id field's key.
    pub id: u64,
    /// The entity field's key: sticky routing and per-entity aggregates.
    pub entity: u64,
    /// Event time, epoch milliseconds.
    pub time_ms: i64,
    /// Every field's value, in the schema's order.
    pub values: Vec<Value>,
}

impl Record {
    /// An empty record for a schema of `fields` fields.
    pub fn new(fields: usize) -> Record {
        Record { id: 0, entity: 0, time_ms: 0, values: vec![Value::Missing; fields] }
    }

    /// The value of field `i`.
    pub fn get(&self, i: usize) -> Value {
        self.values[i]
    }

    /// Copies another record into this one without allocating.
    pub fn copy_from(&mut self, other: &Record) {
        self.id = other.id;
        self.entity = other.entity;
        self.time_ms = other.time_ms;
        self.values.copy_from_slice(&other.values);
    }
}

/// SplitMix64: a fixed, portable mixing of one word (canary buckets, seeded choices).
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform in [0, 1) that depends only on its inputs: choices that must not depend on
/// the order of any draws.
pub fn unit(seed: u64, a: u64, b: u64) -> f64 {
    (mix(seed ^ mix(a ^ mix(b))) >> 11) as f64 / (1u64 << 53) as f64
}

/// FNV-1a, 64 bits: a stable hash of a text key, the same on every machine and run.
pub fn key_of_text(text: &str) -> u64 {
    let mut h = KeyHasher::new();
    h.write(text.as_bytes());
    h.finish()
}

/// FNV-1a over several pieces, so a derived key needs no allocation.
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher(u64);

impl KeyHasher {
    /// A fresh hasher.
    pub fn new() -> KeyHasher {
        KeyHasher(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_small_and_a_text_key_is_stable() {
        assert_eq!(std::mem::size_of::<Value>(), 16);
        // FNV-1a's published test vectors.
        assert_eq!(key_of_text(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_of_text("a"), 0xaf63_dc4c_8601_ec8c);
        let mut h = KeyHasher::new();
        h.write(b"fo");
        h.write(b"obar");
        assert_eq!(h.finish(), key_of_text("foobar"));
    }
}
