//! One streaming pass over a recorded file: per column, what its values look like.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use rustc_hash::FxHashSet;

use crate::error::FieldError;
use crate::recorded::Format;
use crate::schema::key_of_text;

/// Distinct values kept per column; beyond them a column is "many-valued".
pub const DISTINCT_CAP: usize = 2000;
/// The smallest and largest distinct values kept per numeric column.
const EXTREMES: usize = 4;

/// One cell, classified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw<'a> {
    /// Empty, `NA`, `null`, or absent.
    Missing,
    /// `true`/`false` (any case), or a JSON boolean.
    Bool(bool),
    /// A whole number written without a point or an exponent.
    Integer(i64),
    /// Any other finite number.
    Number(f64),
    /// RFC 3339 text, as epoch milliseconds.
    Time(i64),
    /// Anything else.
    Text(&'a str),
}

impl<'a> Raw<'a> {
    /// Classifies a text cell (CSV, or a JSON string).
    pub fn of_text(s: &'a str) -> Raw<'a> {
        let t = s.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("na") || t.eq_ignore_ascii_case("null") {
            return Raw::Missing;
        }
        if t.eq_ignore_ascii_case("true") {
            return Raw::Bool(true);
        }
        if t.eq_ignore_ascii_case("false") {
            return Raw::Bool(false);
        }
        if !t.contains(['.', 'e', 'E']) {
            if let Ok(i) = t.parse::<i64>() {
                return Raw::Integer(i);
            }
        }
        if t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
            if let Ok(x) = t.parse::<f64>() {
                if x.is_finite() {
                    return Raw::Number(x);
                }
            }
        }
        if t.len() >= 20 && t.as_bytes()[4] == b'-' {
            if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
                return Raw::Time(d.timestamp_millis());
            }
        }
        Raw::Text(t)
    }

    fn of_json(v: Option<&'a serde_json::Value>) -> Raw<'a> {
        match v {
            None | Some(serde_json::Value::Null) => Raw::Missing,
            Some(serde_json::Value::Bool(b)) => Raw::Bool(*b),
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(i) => Raw::Integer(i),
                None => n.as_f64().filter(|x| x.is_finite()).map_or(Raw::Text("(a number out of range)"), Raw::Number),
            },
            Some(serde_json::Value::String(s)) => Raw::of_text(s),
            Some(_) => Raw::Text("(a JSON array or object)"),
        }
    }
}

/// What one column holds.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name (CSV header, JSON key).
    pub name: String,
    /// Its position (1-based CSV column; order of first appearance in JSON lines).
    pub position: usize,
    /// Rows with a value.
    pub present: u64,
    /// Rows without one.
    pub missing: u64,
    /// Values that were booleans.
    pub bools: u64,
    /// Values that were whole numbers.
    pub integers: u64,
    /// Of those, the 0s and 1s.
    pub zero_ones: u64,
    /// Values that were other numbers.
    pub numbers: u64,
    /// Values that were RFC 3339 times.
    pub times: u64,
    /// Values that were other text.
    pub texts: u64,
    /// The first text value and its line, for messages.
    pub first_text: Option<(String, u64)>,
    /// The longest value, in bytes.
    pub max_len: usize,
    /// Distinct values (as written, trimmed) and their counts, up to [`DISTINCT_CAP`].
    pub distinct: HashMap<String, u64>,
    /// Whether more distinct values than that were seen.
    pub many_valued: bool,
    /// Whether every present value so far was distinct.
    pub unique: bool,
    seen: FxHashSet<u64>,
    /// The smallest distinct numeric values, with their counts.
    pub low: Vec<(f64, u64)>,
    /// The largest distinct numeric values, with their counts.
    pub high: Vec<(f64, u64)>,
    /// Times (RFC 3339, or numbers read as epoch times): the earliest and latest, in ms.
    pub time_range: Option<(i64, i64)>,
    /// Requests per hour of the day (UTC), when the values are times.
    pub hours: [u64; 24],
}

impl Column {
    fn new(name: String, position: usize) -> Column {
        Column {
            name,
            position,
            present: 0,
            missing: 0,
            bools: 0,
            integers: 0,
            zero_ones: 0,
            numbers: 0,
            times: 0,
            texts: 0,
            first_text: None,
            max_len: 0,
            distinct: HashMap::new(),
            many_valued: false,
            unique: true,
            seen: FxHashSet::default(),
            low: Vec::new(),
            high: Vec::new(),
            time_range: None,
            hours: [0; 24],
        }
    }

    /// Whether every present value is `true`/`false`, with `1`/`0` among them.
    pub fn boolean(&self) -> bool {
        self.bools > 0 && self.bools + self.zero_ones == self.present
    }

    /// Whether every present value is numeric (integers included).
    pub fn numeric(&self) -> bool {
        self.present > 0 && self.integers + self.numbers == self.present
    }

    /// Whether every present value is a whole number.
    pub fn integral(&self) -> bool {
        self.present > 0 && self.integers == self.present
    }

    /// The smallest value, for numeric columns.
    pub fn min(&self) -> Option<f64> {
        self.low.first().map(|v| v.0)
    }

    /// The largest value, for numeric columns.
    pub fn max(&self) -> Option<f64> {
        self.high.first().map(|v| v.0)
    }

    /// Whether the values look like epoch times: whole numbers within 2001 and 2286 in
    /// milliseconds (`Some(false)`) or in seconds (`Some(true)`).
    pub fn epoch_seconds(&self) -> Option<bool> {
        let (lo, hi) = (self.min()?, self.max()?);
        if !self.integral() {
            return None;
        }
        if lo >= 1e12 && hi < 1e13 {
            Some(false)
        } else if lo >= 1e9 && hi < 1e10 {
            Some(true)
        } else {
            None
        }
    }

    fn observe(&mut self, raw: Raw<'_>, text: &str, line: u64) {
        if raw == Raw::Missing {
            self.missing += 1;
            return;
        }
        self.present += 1;
        let text = text.trim();
        self.max_len = self.max_len.max(text.len());
        match raw {
            Raw::Missing => {}
            Raw::Bool(_) => self.bools += 1,
            Raw::Integer(i) => {
                self.integers += 1;
                self.zero_ones += u64::from(i == 0 || i == 1);
                self.number(i as f64);
                // Perhaps an epoch time: kept until the whole column says otherwise.
                if (1_000_000_000_000..10_000_000_000_000).contains(&i) {
                    self.time(i);
                } else if (1_000_000_000..10_000_000_000).contains(&i) {
                    self.time(i * 1000);
                }
            }
            Raw::Number(x) => {
                self.numbers += 1;
                self.number(x);
            }
            Raw::Time(ms) => {
                self.times += 1;
                self.time(ms);
            }
            Raw::Text(t) => {
                self.texts += 1;
                if self.first_text.is_none() {
                    self.first_text = Some((t.chars().take(40).collect(), line));
                }
            }
        }
        if self.unique && !self.seen.insert(key_of_text(text)) {
            self.unique = false;
            self.seen = FxHashSet::default();
        }
        if let Some(n) = self.distinct.get_mut(text) {
            *n += 1;
        } else if self.distinct.len() < DISTINCT_CAP {
            self.distinct.insert(text.to_string(), 1);
        } else {
            self.many_valued = true;
        }
    }

    fn number(&mut self, x: f64) {
        keep_extreme(&mut self.low, x, |a, b| a < b);
        keep_extreme(&mut self.high, x, |a, b| a > b);
    }

    fn time(&mut self, ms: i64) {
        self.time_range = Some(self.time_range.map_or((ms, ms), |(a, b)| (a.min(ms), b.max(ms))));
        self.hours[ms.div_euclid(3_600_000).rem_euclid(24) as usize] += 1;
    }
}

/// Keeps the `EXTREMES` most extreme distinct values (by `before`) with their counts.
fn keep_extreme(list: &mut Vec<(f64, u64)>, x: f64, before: fn(f64, f64) -> bool) {
    if let Some(e) = list.iter_mut().find(|e| e.0 == x) {
        e.1 += 1;
        return;
    }
    if list.len() == EXTREMES && !before(x, list[EXTREMES - 1].0) {
        return;
    }
    let at = list.iter().position(|e| before(x, e.0)).unwrap_or(list.len());
    list.insert(at, (x, 1));
    list.truncate(EXTREMES);
}

/// A recorded file, profiled.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The file, as messages name it.
    pub file: String,
    /// Its format.
    pub format: Format,
    /// Rows read.
    pub rows: u64,
    /// Whether the file had more rows than were read.
    pub truncated: bool,
    /// The columns, in order.
    pub columns: Vec<Column>,
}

impl Profile {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Reads up to `max_rows` rows of `path`.
    pub fn read(path: &Path, format: Format, max_rows: u64) -> Result<Profile, FieldError> {
        let file = path.display().to_string();
        let fail = |line: usize, column: usize, field: &str, message: String| FieldError {
            file: file.clone(),
            line,
            column,
            field: field.into(),
            message,
        };
        let f = File::open(path).map_err(|e| fail(0, 0, "", format!("cannot read: {e}")))?;
        let mut profile = Profile { file: file.clone(), format, rows: 0, truncated: false, columns: Vec::new() };
        match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(f);
                let headers = reader.headers().map_err(|e| fail(1, 0, "header", e.to_string()))?.clone();
                if headers.is_empty() || headers.iter().all(|h| h.trim().is_empty()) {
                    return Err(fail(1, 0, "header", "the file is empty: no header row".into()));
                }
                let mut names = FxHashSet::default();
                for (i, h) in headers.iter().enumerate() {
                    let h = h.trim();
                    if h.is_empty() {
                        return Err(fail(1, i + 1, "header", format!("column {} has no name", i + 1)));
                    }
                    if !names.insert(h.to_string()) {
                        return Err(fail(1, i + 1, "header", format!("column `{h}` appears twice")));
                    }
                    profile.columns.push(Column::new(h.to_string(), i + 1));
                }
                let mut record = csv::StringRecord::new();
                loop {
                    match reader.read_record(&mut record) {
                        Ok(false) => break,
                        Ok(true) => {}
                        Err(e) => {
                            let line = e.position().map_or(0, |p| p.line()) as usize;
                            return Err(fail(line, 0, "line", e.to_string()));
                        }
                    }
                    if profile.rows == max_rows {
                        profile.truncated = true;
                        break;
                    }
                    profile.rows += 1;
                    let line = record.position().map_or(0, |p| p.line());
                    for (c, col) in profile.columns.iter_mut().enumerate() {
                        let text = record.get(c).unwrap_or("");
                        col.observe(Raw::of_text(text), text, line);
                    }
                }
            }
            Format::JsonLines => {
                let mut index: HashMap<String, usize> = HashMap::new();
                let mut buf = String::new();
                let mut lines = BufReader::with_capacity(1 << 16, f);
                let mut line = 0u64;
                loop {
                    buf.clear();
                    line += 1;
                    let n = lines.read_line(&mut buf).map_err(|e| fail(line as usize, 0, "line", e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    if buf.trim().is_empty() {
                        continue;
                    }
                    if profile.rows == max_rows {
                        profile.truncated = true;
                        break;
                    }
                    let value: serde_json::Value = serde_json::from_str(&buf)
                        .map_err(|e| fail(line as usize, e.column(), "line", format!("not JSON: {e}")))?;
                    let Some(object) = value.as_object() else {
                        return Err(fail(line as usize, 1, "line", "not a JSON object".into()));
                    };
                    for key in object.keys() {
                        if !index.contains_key(key) {
                            if index.len() == 10_000 {
                                return Err(fail(line as usize, 0, key, "more than 10000 distinct keys".into()));
                            }
                            index.insert(key.clone(), profile.columns.len());
                            let mut col = Column::new(key.clone(), profile.columns.len() + 1);
                            // Rows before its first appearance lacked it.
                            col.missing = profile.rows;
                            profile.columns.push(col);
                        }
                    }
                    profile.rows += 1;
                    for col in profile.columns.iter_mut() {
                        let v = object.get(&col.name);
                        let text = match v {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(serde_json::Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        };
                        col.observe(Raw::of_json(v), &text, line);
                    }
                }
            }
        }
        if profile.rows == 0 {
            return Err(fail(0, 0, "", "the file has no rows".into()));
        }
        // Numbers count as times only when every value of the column reads as one.
        for col in &mut profile.columns {
            if col.times == 0 && col.epoch_seconds().is_none() {
                col.time_range = None;
                col.hours = [0; 24];
            }
        }
        Ok(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_classified_by_what_they_hold() {
        assert_eq!(Raw::of_text(" 12 "), Raw::Integer(12));
        assert_eq!(Raw::of_text("12.0"), Raw::Number(12.0));
        assert_eq!(Raw::of_text("1e3"), Raw::Number(1000.0));
        assert_eq!(Raw::of_text("TRUE"), Raw::Bool(true));
        assert_eq!(Raw::of_text("NA"), Raw::Missing);
        assert_eq!(Raw::of_text(""), Raw::Missing);
        assert_eq!(Raw::of_text("inf"), Raw::Text("inf"));
        assert_eq!(Raw::of_text("2026-05-04T00:00:10.588Z"), Raw::Time(1_777_852_810_588));
        assert_eq!(Raw::of_text("c-0042"), Raw::Text("c-0042"));
    }

    #[test]
    fn the_extremes_keep_the_few_smallest_and_largest_values_with_counts() {
        let mut c = Column::new("x".into(), 1);
        for x in [5.0, -1.0, 3.0, -1.0, 9.0, 7.0, 1.0, 8.0, 2.0] {
            c.number(x);
        }
        assert_eq!(c.low, vec![(-1.0, 2), (1.0, 1), (2.0, 1), (3.0, 1)]);
        assert_eq!(c.high, vec![(9.0, 1), (8.0, 1), (7.0, 1), (5.0, 1)]);
    }
}
