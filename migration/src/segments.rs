//! The segments parity, guardrails and faults are broken down by, as the migration folder
//! declares them: a category field's values (the rest `other`), or a number field's
//! buckets; a missing value is its own segment (`none`, or the declared label).
//!
//! ```toml
//! [[segment]]
//! field = "country"
//! values = ["DE", "US", "FR"]        # absent: the 12 most frequent in the traffic
//!
//! [[segment]]
//! name = "tenure"                     # the dimension's name (default: the field's)
//! field = "account_age_days"
//! buckets = [30.0]                    # edges: below 30, 30 and above
//! labels = ["new", "established"]     # one per bucket (default `<30`, `>=30`)
//! missing = "guest"                   # the segment of a missing value (default `none`)
//! ```
//!
//! Segment names are `dimension=value`; `all` holds every request and comes first.

use rustc_hash::FxHashMap;
use serde::Deserialize;
use toml::Spanned;

use crate::schema::{Field, Kind, Record, Schema, Value};

/// Values a dimension learns from the traffic when it lists none.
pub const LEARNED_VALUES: usize = 12;

/// One `[[segment]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentDef {
    /// The request field.
    pub field: Spanned<String>,
    /// The dimension's name (default: the field's).
    #[serde(default)]
    pub name: Option<String>,
    /// Category: the values that get a segment each.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// Category: whether values match case-sensitively.
    #[serde(default = "yes")]
    pub case_sensitive: bool,
    /// Numbers: increasing bucket edges.
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
    /// Numbers: one label per bucket.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// The label of a missing value.
    #[serde(default)]
    pub missing: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone)]
enum Split {
    /// Symbol to offset; unlisted values are `other` (offset `n`), missing is `n + 1`.
    Category { offsets: FxHashMap<u32, usize>, n: usize, case_sensitive: bool },
    /// Bucket by edges; missing is `edges.len() + 1`.
    Numeric { edges: Vec<f64> },
}

#[derive(Debug, Clone)]
struct Dim {
    name: String,
    field: usize,
    check: Field,
    first: usize,
    split: Split,
}

/// Compiled segments.
#[derive(Debug, Clone)]
pub struct Segments {
    names: Vec<String>,
    dims: Vec<Dim>,
}

impl Default for Segments {
    /// Only `all`.
    fn default() -> Self {
        Segments { names: vec!["all".into()], dims: Vec::new() }
    }
}

impl Segments {
    /// Compiles the declarations against the schema; category dimensions without values
    /// learn the most frequent ones from `sample`. `Err((k, field, message))`, `k` the
    /// declaration at fault.
    pub fn compile(
        defs: &[SegmentDef],
        schema: &Schema,
        sample: &[Record],
    ) -> Result<Segments, (usize, String, String)> {
        let mut names = vec!["all".to_string()];
        let mut dims: Vec<Dim> = Vec::new();
        for (k, d) in defs.iter().enumerate() {
            let bad = |field: &str, m: String| (k, format!("segment[{k}].{field}"), m);
            let fname = d.field.get_ref();
            let field = schema.index(fname).ok_or_else(|| bad("field", format!("`{fname}` is not a request field")))?;
            let f = schema.field(field);
            let name = d.name.clone().unwrap_or_else(|| fname.clone());
            if name.is_empty() || name.contains('=') || name == "all" || dims.iter().any(|x| x.name == name) {
                return Err(bad("name", format!("`{name}` is empty, contains `=`, or names another dimension")));
            }
            let first = names.len();
            let missing = d.missing.clone().unwrap_or_else(|| "none".into());
            let split = match f.kind {
                _ if f.key => {
                    return Err(bad("field", format!("`{fname}` is the id or entity: too many values to segment")))
                }
                Kind::Category => {
                    if d.buckets.is_some() || d.labels.is_some() {
                        return Err(bad("buckets", "a category is split by values, not buckets".into()));
                    }
                    let values = match &d.values {
                        Some(v) => v.clone(),
                        None => learn(schema, field, sample, d.case_sensitive),
                    };
                    let mut offsets = FxHashMap::default();
                    for (i, v) in values.iter().enumerate() {
                        let t = schema.interner().intern_kept(v).map_err(|e| bad("values", e))?;
                        if offsets.insert(t.symbol(d.case_sensitive), i).is_some() {
                            return Err(bad("values", format!("`{v}` is listed twice")));
                        }
                        names.push(format!("{name}={v}"));
                    }
                    names.push(format!("{name}=other"));
                    names.push(format!("{name}={missing}"));
                    Split::Category { n: values.len(), offsets, case_sensitive: d.case_sensitive }
                }
                Kind::Number | Kind::Integer | Kind::Boolean => {
                    let edges = match (&d.buckets, f.kind) {
                        (Some(e), _) => e.clone(),
                        (None, Kind::Boolean) => vec![0.5],
                        (None, _) => return Err(bad("buckets", format!("`{fname}` is a number: give bucket edges"))),
                    };
                    if d.values.is_some() {
                        return Err(bad("values", "a number is split by buckets, not values".into()));
                    }
                    if edges.is_empty()
                        || edges.iter().any(|e| !e.is_finite())
                        || edges.windows(2).any(|w| w[0] >= w[1])
                    {
                        return Err(bad("buckets", "edges must be finite and strictly increasing".into()));
                    }
                    let labels = match (&d.labels, f.kind) {
                        (Some(l), _) if l.len() == edges.len() + 1 => l.clone(),
                        (Some(l), _) => {
                            return Err(bad(
                                "labels",
                                format!("{} edges make {} buckets, not {}", edges.len(), edges.len() + 1, l.len()),
                            ))
                        }
                        (None, Kind::Boolean) => vec!["false".into(), "true".into()],
                        (None, _) => bucket_labels(&edges),
                    };
                    names.extend(labels.iter().map(|l| format!("{name}={l}")));
                    names.push(format!("{name}={missing}"));
                    Split::Numeric { edges }
                }
                Kind::Timestamp => {
                    return Err(bad("field", "a timestamp is not a segment (derive an hour feature instead)".into()))
                }
            };
            let labels = &names[first..];
            if labels.iter().enumerate().any(|(i, l)| labels[..i].contains(l)) {
                return Err(bad("missing", format!("the missing label `{missing}` is also a value")));
            }
            dims.push(Dim { name, field, check: f.clone(), first, split });
        }
        Ok(Segments { names, dims })
    }

    /// Segment names: `all`, then each dimension's.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Dimensions declared.
    pub fn dims(&self) -> usize {
        self.dims.len()
    }

    /// The segments of dimension `d`, as indices into [`Segments::names`].
    pub fn range(&self, d: usize) -> std::ops::Range<usize> {
        let first = self.dims[d].first;
        first..self.dims.get(d + 1).map_or(self.names.len(), |n| n.first)
    }

    /// The segments of a request, `all` first then one per dimension, into `out`
    /// (`dims() + 1` long).
    pub fn of(&self, r: &Record, out: &mut [usize]) {
        out[0] = 0;
        for (o, d) in out[1..].iter_mut().zip(&self.dims) {
            let v = r.values[d.field];
            let offset = match &d.split {
                Split::Category { n, .. } if d.check.is_missing(v) => n + 1,
                Split::Category { offsets, n, case_sensitive } => match v {
                    Value::Text(t) => offsets.get(&t.symbol(*case_sensitive)).copied().unwrap_or(*n),
                    _ => *n,
                },
                Split::Numeric { edges } if d.check.is_missing(v) => edges.len() + 1,
                Split::Numeric { edges } => {
                    let x = v.number();
                    if x.is_nan() {
                        edges.len() + 1
                    } else {
                        edges.partition_point(|e| *e <= x)
                    }
                }
            };
            *o = d.first + offset;
        }
    }

    /// A `dimension=value` segment: (dimension, segment index).
    pub fn resolve(&self, segment: &str) -> Result<(usize, usize), String> {
        let known = || {
            let dims: Vec<&str> = self.dims.iter().map(|d| d.name.as_str()).collect();
            if dims.is_empty() {
                "the migration declares no segments".to_string()
            } else {
                format!("dimensions: {}", dims.join(", "))
            }
        };
        let Some((dim, _)) = segment.split_once('=') else {
            return Err(format!("segment \"{segment}\" must be dimension=value ({})", known()));
        };
        let d = self
            .dims
            .iter()
            .position(|d| d.name == dim)
            .ok_or_else(|| format!("no segment dimension `{dim}` ({})", known()))?;
        let std::ops::Range { start: first, end } = self.range(d);
        let case_sensitive = !matches!(self.dims[d].split, Split::Category { case_sensitive: false, .. });
        let same = |a: &str| if case_sensitive { a == segment } else { a.eq_ignore_ascii_case(segment) };
        match (first..end).find(|&i| same(&self.names[i])) {
            Some(i) => Ok((d, i)),
            None => {
                let values: Vec<&str> =
                    self.names[first..end].iter().filter_map(|n| n.split_once('=').map(|p| p.1)).collect();
                Err(format!("`{segment}` is not a segment (values of {dim}: {})", values.join(", ")))
            }
        }
    }
}

fn bucket_labels(edges: &[f64]) -> Vec<String> {
    let mut out = vec![format!("<{}", edges[0])];
    for w in edges.windows(2) {
        out.push(format!("{}-{}", w[0], w[1]));
    }
    out.push(format!(">={}", edges[edges.len() - 1]));
    out
}

/// The most frequent present values of a category field in a sample (ties by text).
fn learn(schema: &Schema, field: usize, sample: &[Record], case_sensitive: bool) -> Vec<String> {
    let mut counts: FxHashMap<u32, u64> = FxHashMap::default();
    let f = schema.field(field);
    for r in sample {
        if let Value::Text(t) = r.values[field] {
            if !f.is_missing(r.values[field]) && t.id != crate::schema::UNSEEN {
                *counts.entry(t.symbol(case_sensitive)).or_default() += 1;
            }
        }
    }
    let mut v: Vec<(u64, String)> =
        counts.into_iter().filter_map(|(s, c)| Some((c, schema.interner().resolve(s)?))).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v.into_iter().take(LEARNED_VALUES).map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Cell;

    fn defs(text: &str) -> Vec<SegmentDef> {
        #[derive(Deserialize)]
        struct F {
            segment: Vec<SegmentDef>,
        }
        toml::from_str::<F>(text).unwrap().segment
    }

    #[test]
    fn requests_fall_in_one_segment_per_dimension() {
        let s = crate::schema::tests::schema(crate::schema::tests::LOAN).unwrap();
        let segs = Segments::compile(
            &defs(
                "[[segment]]\nfield = \"region\"\nvalues = [\"North\", \"south\"]\ncase_sensitive = false\n\
                 [[segment]]\nname = \"income_band\"\nfield = \"income\"\nbuckets = [30000, 90000]\nmissing = \"undeclared\"\n\
                 [[segment]]\nfield = \"homeowner\"\n",
            ),
            &s,
            &[],
        )
        .unwrap();
        assert_eq!(
            segs.names(),
            [
                "all",
                "region=North",
                "region=south",
                "region=other",
                "region=none",
                "income_band=<30000",
                "income_band=30000-90000",
                "income_band=>=90000",
                "income_band=undeclared",
                "homeowner=false",
                "homeowner=true",
                "homeowner=none"
            ]
        );
        let mut r = s.record();
        for (i, t) in ["1", "a", "0", "", "2", "true", "NORTH"].iter().enumerate() {
            r.values[i] = s.value(i, Cell::of_csv(Some(t)), true).unwrap();
        }
        let mut out = [0; 4];
        segs.of(&r, &mut out);
        assert_eq!(out, [0, 1, 8, 10]);
        r.values[6] = s.value(6, Cell::CsvText("unknown"), true).unwrap();
        r.values[3] = Value::Number(90000.0);
        segs.of(&r, &mut out);
        assert_eq!(out, [0, 4, 7, 10], "a sentinel is missing; an edge opens the bucket above");
        assert_eq!(segs.resolve("region=NORTH"), Ok((0, 1)));
        assert!(segs.resolve("region=west").unwrap_err().contains("North, south, other, none"));
        assert!(segs.resolve("country=DE").unwrap_err().contains("dimensions: region, income_band, homeowner"));
    }

    #[test]
    fn undeclared_values_are_learned_from_the_traffic() {
        let s = crate::schema::tests::schema(crate::schema::tests::LOAN).unwrap();
        let mut sample = Vec::new();
        for (k, region) in ["b", "a", "b", "c", "b", "a"].iter().enumerate() {
            let mut r = s.record();
            r.values[6] = s.value(6, Cell::CsvText(region), true).unwrap();
            r.values[0] = Value::Key(k as u64);
            sample.push(r);
        }
        let segs = Segments::compile(&defs("[[segment]]\nfield = \"region\"\n"), &s, &sample).unwrap();
        assert_eq!(segs.names()[1..4], ["region=b", "region=a", "region=c"]);
        let e = Segments::compile(&defs("[[segment]]\nfield = \"income\"\n"), &s, &sample).unwrap_err();
        assert_eq!(e.1, "segment[0].buckets");
        let e = Segments::compile(&defs("[[segment]]\nfield = \"applicant\"\n"), &s, &sample).unwrap_err();
        assert_eq!(e.1, "segment[0].field");
    }
}
