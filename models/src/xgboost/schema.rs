//! From the parsed document to a [`Model`]: every field checked, every refusal named.

use super::value::{Num, Value};
use crate::error::ModelError;
use crate::forest::{Forest, RawNode, MAX_FEATURE};
use crate::model::{FeatureType, Importance, Model};
use crate::objective::Objective;

/// A field being read, with its dotted path for error messages.
#[derive(Clone, Copy)]
struct At<'a> {
    value: &'a Value,
    origin: &'a str,
    path: &'a str,
}

impl<'a> At<'a> {
    fn err(&self, message: impl Into<String>) -> ModelError {
        ModelError::field(self.origin, self.path, message)
    }

    fn with<R>(&self, key: &str, f: impl FnOnce(At<'_>) -> Result<R, ModelError>) -> Result<R, ModelError> {
        let path = if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) };
        let value = self.value.get(key).ok_or_else(|| ModelError::field(self.origin, &path, "missing"))?;
        f(At { value, origin: self.origin, path: &path })
    }

    fn with_opt<R>(&self, key: &str, f: impl FnOnce(At<'_>) -> Result<R, ModelError>) -> Result<Option<R>, ModelError> {
        match self.value.get(key) {
            None => Ok(None),
            Some(_) => self.with(key, f).map(Some),
        }
    }

    fn str(&self) -> Result<&'a str, ModelError> {
        match self.value {
            Value::Str(s) => Ok(s),
            v => Err(self.err(format!("expected a string, found {}", v.kind()))),
        }
    }

    /// XGBoost writes most parameters as strings holding numbers ("20", "5E-1").
    fn usize_param(&self) -> Result<usize, ModelError> {
        let s = self.str()?;
        s.trim().parse::<usize>().map_err(|_| self.err(format!("expected a non-negative integer, found \"{s}\"")))
    }

    fn numbers(&self) -> Result<&'a [Num], ModelError> {
        match self.value {
            Value::Numbers(n) => Ok(n),
            Value::Array(a) if a.is_empty() => Ok(&[]),
            v => Err(self.err(format!("expected an array of numbers, found {}", v.kind()))),
        }
    }

    fn f32s(&self) -> Result<Vec<f32>, ModelError> {
        Ok(self.numbers()?.iter().map(|n| n.f32).collect())
    }

    fn i64s(&self) -> Result<Vec<i64>, ModelError> {
        self.numbers()?
            .iter()
            .enumerate()
            .map(|(i, n)| n.as_i64().ok_or_else(|| self.err(format!("element {i} is not an integer ({})", n.f64))))
            .collect()
    }

    /// Flags stored as 0/1 numbers (JSON, UBJSON u8) or as booleans.
    fn bools(&self) -> Result<Vec<bool>, ModelError> {
        match self.value {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Bool(b) => Ok(*b),
                    _ => Err(self.err(format!("element {i} is not a flag"))),
                })
                .collect(),
            _ => Ok(self.i64s()?.into_iter().map(|x| x != 0).collect()),
        }
    }

    fn strings(&self) -> Result<Vec<String>, ModelError> {
        match self.value {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Str(s) => Ok(s.clone()),
                    v => Err(self.err(format!("element {i} is {}, expected a string", v.kind()))),
                })
                .collect(),
            v => Err(self.err(format!("expected an array of strings, found {}", v.kind()))),
        }
    }
}

pub(super) fn model_from_document(doc: &Value, origin: &str) -> Result<Model, ModelError> {
    let root = At { value: doc, origin, path: "" };
    if !matches!(doc, Value::Object(_)) {
        return Err(ModelError::field(origin, "(document)", format!("expected an object, found {}", doc.kind())));
    }
    let version = root.with_opt("version", read_version)?.unwrap_or((1, 0, 0));
    root.with("learner", |learner| read_learner(learner, version))
}

fn read_version(at: At<'_>) -> Result<(u32, u32, u32), ModelError> {
    let v = at.i64s()?;
    let part = |i: usize| {
        v.get(i).and_then(|&x| u32::try_from(x).ok()).ok_or_else(|| at.err("expected [major, minor, patch]"))
    };
    Ok((part(0)?, part(1)?, part(2)?))
}

fn read_learner(learner: At<'_>, version: (u32, u32, u32)) -> Result<Model, ModelError> {
    let origin = learner.origin;
    let booster = learner.with("gradient_booster", |gb| gb.with("name", |n| n.str().map(str::to_string)))?;
    if booster != "gbtree" {
        let why = match booster.as_str() {
            "gblinear" => "linear models have no trees",
            "dart" => "dart scales trees by dropout weights at prediction time",
            _ => "unknown booster",
        };
        return Err(ModelError::unsupported(
            origin,
            format!("booster \"{booster}\" ({why}; only gbtree is supported)"),
        ));
    }
    let param = |key: &str| learner.with("learner_model_param", |p| p.with(key, |v| v.usize_param()));
    let num_class = param("num_class")?;
    let num_features = param("num_feature")?;
    let num_target =
        learner.with("learner_model_param", |p| p.with_opt("num_target", |v| v.usize_param()))?.unwrap_or(1);
    if num_target > 1 {
        return Err(ModelError::unsupported(origin, format!("multi-target model (num_target = {num_target})")));
    }
    if num_features > MAX_FEATURE {
        return Err(ModelError::field(
            origin,
            "learner.learner_model_param.num_feature",
            format!("{num_features} features is more than the {MAX_FEATURE} supported"),
        ));
    }
    let objective_name = learner.with("objective", |o| o.with("name", |n| n.str().map(str::to_string)))?;
    let objective = Objective::from_name(&objective_name, num_class).ok_or_else(|| {
        ModelError::unsupported(
            origin,
            format!("objective \"{objective_name}\" (supported: binary:logistic, binary:logitraw, reg:logistic, reg:squarederror, multi:softprob, multi:softmax)"),
        )
    })?;
    if matches!(objective, Objective::MultiSoftprob(k) | Objective::MultiSoftmax(k) if k < 2) {
        return Err(ModelError::field(
            origin,
            "learner.learner_model_param.num_class",
            format!("{objective_name} needs num_class >= 2, found {num_class}"),
        ));
    }
    let num_groups = objective.num_groups();
    let base_scores =
        learner.with("learner_model_param", |p| p.with("base_score", |b| parse_base_score(b, num_groups)))?;
    let base_margins = base_scores.iter().map(|&s| objective.base_margin(s)).collect();

    let feature_names = match learner.with_opt("feature_names", |f| f.strings())? {
        Some(names) if !names.is_empty() => names,
        _ => (0..num_features).map(|i| format!("f{i}")).collect(),
    };
    if feature_names.len() != num_features {
        return Err(
            learner.err(format!("feature_names has {} names for num_feature {num_features}", feature_names.len()))
        );
    }
    let feature_types = match learner.with_opt("feature_types", |f| f.strings())? {
        Some(types) if !types.is_empty() => {
            if types.len() != num_features {
                return Err(
                    learner.err(format!("feature_types has {} types for num_feature {num_features}", types.len()))
                );
            }
            types
                .iter()
                .map(|t| FeatureType::from_code(t).ok_or_else(|| learner.err(format!("unknown feature type \"{t}\""))))
                .collect::<Result<_, _>>()?
        }
        _ => vec![FeatureType::Quantitative; num_features],
    };

    let mut importance = vec![Importance::default(); num_features];
    let trees = learner.with("gradient_booster", |gb| {
        gb.with("model", |m| read_trees(m, num_groups, num_features, &mut importance))
    })?;
    let forest = Forest::new(&trees, num_groups, num_features);
    let categories = learner
        .value
        .get("gradient_booster")
        .and_then(|gb| gb.get("model"))
        .and_then(|m| m.get("cats"))
        .and_then(|c| read_category_names(c, num_features))
        .unwrap_or_else(|| vec![None; num_features]);
    Ok(Model { forest, objective, base_margins, feature_names, feature_types, version, importance, categories })
}

/// The category names xgboost 3 keeps per feature (`cats.enc`: each feature's names as
/// UTF-8 bytes cut at `offsets`), in code order. Metadata only: a shape this reader does
/// not know gives none rather than refusing the model.
fn read_category_names(cats: &Value, num_features: usize) -> Option<Vec<Option<Vec<String>>>> {
    let Value::Array(enc) = cats.get("enc")? else { return None };
    if enc.len() != num_features {
        return None;
    }
    let ints = |v: Option<&Value>| -> Option<Vec<i64>> {
        match v? {
            Value::Numbers(n) => n.iter().map(|x| x.as_i64()).collect(),
            Value::Array(a) if a.is_empty() => Some(Vec::new()),
            _ => None,
        }
    };
    enc.iter()
        .map(|feature| {
            let offsets = ints(feature.get("offsets"))?;
            let bytes = ints(feature.get("values"))?;
            if offsets.len() < 2 {
                return Some(None);
            }
            let bytes: Vec<u8> = bytes.iter().map(|&b| u8::try_from(b).ok()).collect::<Option<_>>()?;
            let names = offsets
                .windows(2)
                .map(|w| {
                    let (a, b) = (usize::try_from(w[0]).ok()?, usize::try_from(w[1]).ok()?);
                    String::from_utf8(bytes.get(a..b)?.to_vec()).ok()
                })
                .collect::<Option<Vec<String>>>()?;
            Some(Some(names))
        })
        .collect()
}

/// `"5E-1"` (up to 3.0) or `"[4.414E-1]"`, one value per output group (3.1 on).
fn parse_base_score(at: At<'_>, num_groups: usize) -> Result<Vec<f32>, ModelError> {
    let s = at.str()?.trim();
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
    let parts: Vec<&str> = match inner {
        Some(list) => list.split(',').map(str::trim).collect(),
        None => vec![s],
    };
    let values = parts
        .iter()
        .map(|p| p.parse::<f32>().map_err(|_| at.err(format!("expected a number or a list of numbers, found \"{s}\""))))
        .collect::<Result<Vec<_>, _>>()?;
    match values.len() {
        1 => Ok(vec![values[0]; num_groups]),
        n if n == num_groups => Ok(values),
        n => Err(at.err(format!("{n} values for {num_groups} output groups"))),
    }
}

fn read_trees(
    model: At<'_>,
    num_groups: usize,
    num_features: usize,
    importance: &mut [Importance],
) -> Result<Vec<(Vec<RawNode>, u32)>, ModelError> {
    let trees = match model.value.get("trees") {
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ModelError::field(
                model.origin,
                format!("{}.trees", model.path),
                format!("expected an array of trees, found {}", v.kind()),
            ))
        }
        None => return Err(ModelError::field(model.origin, format!("{}.trees", model.path), "missing")),
    };
    let tree_info = model.with("tree_info", |t| t.i64s())?;
    if tree_info.len() != trees.len() {
        return Err(model.err(format!("tree_info has {} entries for {} trees", tree_info.len(), trees.len())));
    }
    let mut out = Vec::with_capacity(trees.len());
    for (i, tree) in trees.iter().enumerate() {
        let path = format!("{}.trees[{i}]", model.path);
        let at = At { value: tree, origin: model.origin, path: &path };
        let group = tree_info[i];
        if group < 0 || group as usize >= num_groups {
            return Err(model.err(format!("tree_info[{i}] = {group} is not an output group (0..{num_groups})")));
        }
        out.push((read_tree(at, num_features, importance)?, group as u32));
    }
    Ok(out)
}

fn read_tree(at: At<'_>, num_features: usize, importance: &mut [Importance]) -> Result<Vec<RawNode>, ModelError> {
    let leaf_vector =
        at.with_opt("tree_param", |p| p.with_opt("size_leaf_vector", |v| v.usize_param()))?.flatten().unwrap_or(1);
    if leaf_vector > 1 {
        return Err(ModelError::unsupported(
            at.origin,
            format!(
                "vector-leaf trees ({}: size_leaf_vector = {leaf_vector}, from multi_strategy=multi_output_tree)",
                at.path
            ),
        ));
    }
    let left = at.with("left_children", |v| v.i64s())?;
    let right = at.with("right_children", |v| v.i64s())?;
    let feature = at.with("split_indices", |v| v.i64s())?;
    let condition = at.with("split_conditions", |v| v.f32s())?;
    let default_left = at.with("default_left", |v| v.bools())?;
    let n = left.len();
    let split_type = at.with_opt("split_type", |v| v.i64s())?.unwrap_or_else(|| vec![0; n]);
    for (name, len) in [
        ("right_children", right.len()),
        ("split_indices", feature.len()),
        ("split_conditions", condition.len()),
        ("default_left", default_left.len()),
        ("split_type", split_type.len()),
    ] {
        if len != n {
            return Err(ModelError::field(
                at.origin,
                format!("{}.{name}", at.path),
                format!("has {len} entries, left_children has {n}"),
            ));
        }
    }
    if n == 0 {
        return Err(ModelError::field(
            at.origin,
            format!("{}.left_children", at.path),
            "a tree needs at least one node",
        ));
    }
    let categories = read_categories(at, n)?;
    // Gain and cover, as xgboost's `get_score` totals them (absent from hand-made models).
    let gain = at.with_opt("loss_changes", |v| v.f32s())?.filter(|g| g.len() == n);
    let cover = at.with_opt("sum_hessian", |v| v.f32s())?.filter(|c| c.len() == n);
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let node_err =
            |field: &str, msg: String| ModelError::field(at.origin, format!("{}.{field}[{i}]", at.path), msg);
        if left[i] == -1 {
            nodes.push(RawNode::Leaf(condition[i]));
            continue;
        }
        let (l, r) = (left[i], right[i]);
        for (name, c) in [("left_children", l), ("right_children", r)] {
            if c <= 0 || c as usize >= n {
                return Err(node_err(name, format!("child {c} is not a node of this tree (1..{n})")));
            }
        }
        let f = feature[i];
        if f < 0 || f as usize >= num_features {
            return Err(node_err("split_indices", format!("feature {f} is outside 0..{num_features}")));
        }
        let (feature, left, right, default_left) = (f as u32, l as u32, r as u32, default_left[i]);
        let used = &mut importance[f as usize];
        used.splits += 1;
        used.gain += gain.as_ref().map_or(0.0, |g| f64::from(g[i]));
        used.cover += cover.as_ref().map_or(0.0, |c| f64::from(c[i]));
        nodes.push(match split_type[i] {
            0 => RawNode::Numeric { feature, threshold: condition[i], default_left, left, right },
            1 => {
                let cats = categories[i].clone().ok_or_else(|| {
                    node_err("split_type", "categorical split without an entry in categories_nodes".into())
                })?;
                RawNode::Categorical { feature, categories: cats, default_left, left, right }
            }
            t => return Err(node_err("split_type", format!("unknown split type {t}"))),
        });
    }
    check_is_tree(&nodes)
        .map_err(|(i, msg)| ModelError::field(at.origin, format!("{}.left_children[{i}]", at.path), msg))?;
    Ok(nodes)
}

/// Category sets per node, from `categories_nodes`, `_segments`, `_sizes` and `categories`.
fn read_categories(at: At<'_>, n: usize) -> Result<Vec<Option<Vec<u32>>>, ModelError> {
    let mut out = vec![None; n];
    let Some(nodes) = at.with_opt("categories_nodes", |v| v.i64s())? else {
        return Ok(out);
    };
    let segments = at.with("categories_segments", |v| v.i64s())?;
    let sizes = at.with("categories_sizes", |v| v.i64s())?;
    let cats = at.with("categories", |v| v.i64s())?;
    if segments.len() != nodes.len() || sizes.len() != nodes.len() {
        return Err(at.err("categories_nodes, categories_segments and categories_sizes differ in length"));
    }
    for (k, &node) in nodes.iter().enumerate() {
        let field = |name: &str| format!("{}.{name}[{k}]", at.path);
        if node < 0 || node as usize >= n {
            return Err(ModelError::field(
                at.origin,
                field("categories_nodes"),
                format!("node {node} is outside 0..{n}"),
            ));
        }
        let (start, size) = (segments[k], sizes[k]);
        let end = start.checked_add(size).filter(|&e| start >= 0 && size >= 0 && e as usize <= cats.len());
        let Some(end) = end else {
            return Err(ModelError::field(
                at.origin,
                field("categories_segments"),
                format!("segment {start}+{size} is outside the {} categories", cats.len()),
            ));
        };
        let set = cats[start as usize..end as usize]
            .iter()
            .map(|&c| u32::try_from(c).ok().filter(|&c| c < 1 << 24))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| ModelError::field(at.origin, field("categories"), "category codes must be in 0..2^24"))?;
        out[node as usize] = Some(set);
    }
    Ok(out)
}

/// Every node reachable from the root is reached exactly once (no cycles, no sharing).
fn check_is_tree(nodes: &[RawNode]) -> Result<(), (usize, String)> {
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![0u32];
    seen[0] = true;
    while let Some(i) = stack.pop() {
        let (l, r) = match &nodes[i as usize] {
            RawNode::Leaf(_) => continue,
            RawNode::Numeric { left, right, .. } | RawNode::Categorical { left, right, .. } => (*left, *right),
        };
        for c in [l, r] {
            if std::mem::replace(&mut seen[c as usize], true) {
                return Err((i as usize, format!("node {c} is reached twice (the nodes do not form a tree)")));
            }
            stack.push(c);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::xgboost::load_bytes;

    /// A two-tree stump model as xgboost 2.x writes it, with `{...}` placeholders.
    const MODEL: &str = r#"{"learner":{"attributes":{},"feature_names":[],"feature_types":[],
"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"2"},
"tree_info":[0,0],"trees":[
{"base_weights":[0,0,0],"default_left":[1,0,0],"id":0,"left_children":[1,-1,-1],"right_children":[2,-1,-1],
 "split_conditions":[{T0},-0.5,0.5],"split_indices":[{F0},0,0],"split_type":[0,0,0],
 "tree_param":{"num_feature":"2","num_nodes":"3","size_leaf_vector":"{LV}"}},
{"base_weights":[0,0,0],"default_left":[0,0,0],"id":1,"left_children":[{L1},-1,-1],"right_children":[2,-1,-1],
 "split_conditions":[1.0,-0.25,Infinity],"split_indices":[1,0,0],"split_type":[0,0,0],
 "tree_param":{"num_feature":"2","num_nodes":"3","size_leaf_vector":"1"}}]},"name":"{BOOSTER}"},
"learner_model_param":{"base_score":"{BASE}","boost_from_average":"1","num_class":"0","num_feature":"{NF}","num_target":"1"},
"objective":{"name":"{OBJ}"}},"version":[2,1,4]}"#;

    fn model(edits: &[(&str, &str)]) -> String {
        let mut s = MODEL.to_string();
        let defaults = [
            ("{T0}", "0.0"),
            ("{F0}", "0"),
            ("{LV}", "1"),
            ("{L1}", "1"),
            ("{BOOSTER}", "gbtree"),
            ("{BASE}", "5E-1"),
            ("{NF}", "2"),
            ("{OBJ}", "reg:squarederror"),
        ];
        for (key, default) in defaults {
            let value = edits.iter().find(|(k, _)| *k == key).map_or(default, |(_, v)| v);
            s = s.replace(key, value);
        }
        s
    }

    fn err(edits: &[(&str, &str)]) -> String {
        load_bytes(model(edits).as_bytes(), "m.json").expect_err("must be refused").to_string()
    }

    #[test]
    fn a_valid_stump_scores_and_reads_infinity() {
        let m = load_bytes(model(&[]).as_bytes(), "m.json").unwrap();
        assert_eq!(m.feature_names(), ["f0", "f1"]);
        // base 0.5 + tree 0 (x0 < 0 -> -0.5) + tree 1 (x1 >= 1 -> Infinity leaf)
        assert_eq!(m.predict_one(&[-1.0, 0.0]), 0.5 - 0.5 - 0.25);
        assert_eq!(m.predict_one(&[1.0, 2.0]), f32::INFINITY);
        let vector_base = load_bytes(model(&[("{BASE}", "[2.5E-1]")]).as_bytes(), "m.json").unwrap();
        assert_eq!(vector_base.base_margins(), [0.25]);
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(
            err(&[("{F0}", "7")]),
            "m.json: field `learner.gradient_booster.model.trees[0].split_indices[0]`: feature 7 is outside 0..2"
        );
        assert_eq!(err(&[("{L1}", "9")]), "m.json: field `learner.gradient_booster.model.trees[1].left_children[0]`: child 9 is not a node of this tree (1..3)");
        assert!(err(&[("{L1}", "2")]).contains("reached twice"));
        assert!(err(&[("{LV}", "3")]).contains("unsupported vector-leaf trees"));
        assert!(err(&[("{BOOSTER}", "dart")]).contains("unsupported booster \"dart\""));
        assert!(err(&[("{OBJ}", "rank:ndcg")]).contains("unsupported objective \"rank:ndcg\""));
        assert!(err(&[("{NF}", "4000000000")])
            .contains("field `learner.learner_model_param.num_feature`: 4000000000 features"));
        assert!(err(&[("{NF}", "two")]).contains("expected a non-negative integer, found \"two\""));
        assert!(err(&[("{BASE}", "[0.1,0.2]")]).contains("2 values for 1 output groups"));
        assert!(err(&[("{T0}", "\"x\"")]).contains("split_conditions`: expected an array of numbers, found an array"));
        assert_eq!(
            err(&[("{OBJ}", "multi:softprob")]),
            "m.json: field `learner.learner_model_param.num_class`: multi:softprob needs num_class >= 2, found 0"
        );
    }
}
