//! The fault kinds, one definition each: the name a scenario writes, the layer of the new
//! path it acts on, its parameters (which it needs, their defaults and what they accept),
//! what it does there, and where it acts live. The scenario parser, the live fault board,
//! the simulated world and the live stacks (through [`Touch`] and [`Kind::apply_to_row`]),
//! the platform adapter (through [`Definition::live`]), `init`'s library and the docs' table
//! (docs/simulator.md, checked by a test) are driven by it. Adding a kind is a variant of
//! [`Tag`] and of [`Kind`], its row in [`Tag::def`] and its arm in [`Tag::build`]: the
//! compiler names every match that has to learn it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use cutover_migration::answer::{Answer, AnswerKind};
use cutover_migration::schema::{Kind as FieldKind, Record, Schema, Value};

use crate::param::Param;

/// The most latency a fault adds, ms (ten minutes: far past any stack's timeout).
pub const MAX_ADDED_MS: f64 = 600_000.0;

/// The largest latency multiplier.
pub const MAX_FACTOR: f64 = 1000.0;

/// The most entries a fault's `map` holds.
pub const MAX_MAP: usize = 256;

/// The score transforms of `score_transform`.
pub const TRANSFORMS: &[&str] = &["linear", "margin", "complement"];

/// The layer of the new path a fault acts on, from the request in to the answer out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// A request field as the new path reads it: every feature derived from it follows.
    Request,
    /// The new path's feature spec: the definitions themselves.
    Spec,
    /// The model row the new feature path computed.
    Feature,
    /// The new path's online store.
    Store,
    /// The model the new stack scores with.
    Model,
    /// The new stack's answer: its decision threshold, its labels, its score.
    Answer,
    /// The new stack as a service: its latency, errors, timeouts, its being up.
    Stack,
    /// The shadow call the router sends.
    Shadow,
    /// The rollout controller.
    Controller,
}

impl Layer {
    /// Its name in the docs' table.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Request => "request field",
            Layer::Spec => "spec",
            Layer::Feature => "feature",
            Layer::Store => "store",
            Layer::Model => "model",
            Layer::Answer => "answer",
            Layer::Stack => "stack",
            Layer::Shadow => "shadow",
            Layer::Controller => "controller",
        }
    }
}

/// What a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// The name of a request field of the migration's schema.
    Field,
    /// The name of a model feature.
    Feature,
    /// A file: an artifact of the migration's registry or folder.
    Artifact,
    /// A feature spec: a registry entry (`name/version`) or a spec file.
    Spec,
    /// A table of values to values (`{ card = "wallet" }`, `{ "1" = 2 }`).
    Map,
    /// One of the words a parameter lists.
    Word(&'static [&'static str]),
    /// A latency multiplier, 1 to [`MAX_FACTOR`].
    Factor,
    /// Any finite number (or range).
    Number,
    /// A share, within [0, 1].
    Share,
    /// Milliseconds added, 0 to [`MAX_ADDED_MS`].
    AddedMs,
    /// A finite number of seconds, at least 0.
    Seconds,
}

/// One parameter of a kind.
#[derive(Debug, Clone, Copy)]
pub struct Parameter {
    /// Its key in the fault's table.
    pub name: &'static str,
    /// Whether the kind needs it.
    pub required: bool,
    /// What it accepts.
    pub accepts: Accepts,
    /// Its value when absent (numbers only).
    pub default: f64,
}

const fn needs(name: &'static str, accepts: Accepts) -> Parameter {
    Parameter { name, required: true, accepts, default: 0.0 }
}

const fn optional(name: &'static str, accepts: Accepts, default: f64) -> Parameter {
    Parameter { name, required: false, accepts, default }
}

/// Whether a face acts a kind out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// It does.
    Acts,
    /// It refuses the fault, saying why in one line.
    Refused(&'static str),
}

/// Where a kind acts in a live run (injected through `POST /admin/faults`).
#[derive(Debug, Clone, Copy)]
pub struct Live {
    /// On cutover's own in-process new stack.
    pub in_process: Support,
    /// On the composed Feast + Open Inference Protocol platform.
    pub platform: Support,
    /// On a team's own HTTP service, from the router: on the request it sends the service,
    /// on the answer it reads back, on the call itself.
    pub service: Support,
}

const EVERYWHERE: Live = Live { in_process: Support::Acts, platform: Support::Acts, service: Support::Acts };

/// Kinds that act inside the new stack: a team's own service is closed to the router.
const INSIDE: Live = Live {
    in_process: Support::Acts,
    platform: Support::Acts,
    service: Support::Refused(
        "it acts inside the new stack, and your service computes its features and holds its model where the router cannot reach: rehearse it in the simulator, or as a request-field fault on what the service reads",
    ),
};

/// A kind's definition.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    /// Its name in scenario files and the admin API.
    pub name: &'static str,
    /// The layer it acts on.
    pub layer: Layer,
    /// What it does there, for the docs' table.
    pub does: &'static str,
    /// Its parameters, in the order their ranges are drawn.
    pub params: &'static [Parameter],
    /// Whether it acts per request (so `fraction`, `segment` and `ramp_s` apply).
    pub per_request: bool,
    /// Where it acts live.
    pub live: Live,
}

impl Definition {
    /// One row of the docs' table: kind, layer, parameters and what it does.
    pub fn table_row(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match (p.required, p.accepts) {
                (true, _) => format!("`{}`", p.name),
                (false, Accepts::Word(words)) => format!("`{}` ({})", p.name, words[p.default as usize]),
                (false, _) => format!("`{}` ({})", p.name, p.default),
            })
            .collect();
        let params = if params.is_empty() { "none".to_string() } else { params.join(", ") };
        let faces: Vec<&str> = [
            ("in-process", self.live.in_process),
            ("platform", self.live.platform),
            ("your service", self.live.service),
        ]
        .into_iter()
        .filter(|(_, s)| *s == Support::Acts)
        .map(|(face, _)| face)
        .collect();
        let live = if faces.is_empty() { "no".to_string() } else { faces.join(", ") };
        format!("| `{}` | {} | {} | {} | {live} |", self.name, self.layer.name(), params, self.does)
    }
}

/// The docs' table of fault kinds (docs/simulator.md holds it as written here).
pub fn docs_table() -> String {
    let mut out = String::from(
        "| kind | layer | parameters (default) | what it does | `POST /admin/faults` on |\n| --- | --- | --- | --- | --- |\n",
    );
    for tag in Tag::ALL {
        out.push_str(&tag.def().table_row());
        out.push('\n');
    }
    out
}

/// Every kind's definition, in [`Tag::ALL`]'s order (a kind's index is its tag's).
const DEFINITIONS: [Definition; 23] = [
    // Tag::FieldSkew
    Definition {
        name: "field_skew",
        layer: Layer::Request,
        does: "the new path reads the numeric `field` times `scale` plus `offset` (a unit: miles for km, cents for euros); every feature derived from it follows",
        params: &[needs("field", Accepts::Field), optional("scale", Accepts::Number, 1.0), optional("offset", Accepts::Number, 0.0)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::FieldMap
    Definition {
        name: "field_map",
        layer: Layer::Request,
        does: "the new path reads the `field`'s values through `map` (a category renamed, a code remapped); values the map does not name are read as sent",
        params: &[needs("field", Accepts::Field), needs("map", Accepts::Map)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::FieldInverted
    Definition {
        name: "field_inverted",
        layer: Layer::Request,
        does: "the new path reads the boolean `field` inverted (`Y` taken for false)",
        params: &[needs("field", Accepts::Field)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::FieldMissing
    Definition {
        name: "field_missing",
        layer: Layer::Request,
        does: "the new path reads the `field` as missing (a column not joined, a key renamed)",
        params: &[needs("field", Accepts::Field)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::FieldTimeShift
    Definition {
        name: "field_time_shift",
        layer: Layer::Request,
        does: "the new path reads the timestamp `field` shifted by `shift_h` hours (local time for UTC); the hour of day wraps at midnight and the day follows",
        params: &[needs("field", Accepts::Field), needs("shift_h", Accepts::Number)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::SpecSwitch
    Definition {
        name: "spec_switch",
        layer: Layer::Spec,
        does: "the new path computes its features with another spec (a registry entry `name/version` or a spec file) from the fault's start to its end; the spec diff names what changed, checked before traffic",
        params: &[needs("spec", Accepts::Spec)],
        per_request: true,
        live: INSIDE,
    },
    // Tag::FeatureSkew
    Definition {
        name: "feature_skew",
        layer: Layer::Feature,
        does: "the model feature times `scale` plus `offset` on the new path (units, scaling)",
        params: &[needs("feature", Accepts::Feature), optional("scale", Accepts::Number, 1.0), optional("offset", Accepts::Number, 0.0)],
        per_request: true,
        live: INSIDE,
    },
    // Tag::MissingValuePolicy
    Definition {
        name: "missing_value_policy",
        layer: Layer::Feature,
        does: "a missing value of the feature becomes `fill` on the new path",
        params: &[needs("feature", Accepts::Feature), optional("fill", Accepts::Number, 0.0)],
        per_request: true,
        live: INSIDE,
    },
    // Tag::CategoricalEncoding
    Definition {
        name: "categorical_encoding",
        layer: Layer::Feature,
        does: "the feature's category codes shift by `shift` (a vocabulary rotated)",
        params: &[needs("feature", Accepts::Feature), optional("shift", Accepts::Number, 1.0)],
        per_request: true,
        live: INSIDE,
    },
    // Tag::FeatureMap
    Definition {
        name: "feature_map",
        layer: Layer::Feature,
        does: "the feature's values (category codes) go through `map`, `{ \"0\" = 2, \"2\" = 0 }`: a vocabulary in another order",
        params: &[needs("feature", Accepts::Feature), needs("map", Accepts::Map)],
        per_request: true,
        live: INSIDE,
    },
    // Tag::StaleFeatures
    Definition {
        name: "stale_features",
        layer: Layer::Store,
        does: "the new store's materialization job stalls for `stall_s`",
        params: &[needs("stall_s", Accepts::Seconds)],
        per_request: false,
        live: INSIDE,
    },
    // Tag::ModelArtifact
    Definition {
        name: "model_artifact",
        layer: Layer::Model,
        does: "the new stack serves another artifact (live on the platform: the model server loads it)",
        params: &[needs("artifact", Accepts::Artifact)],
        per_request: true,
        live: INSIDE,
    },
    // Tag::RuntimeDrift
    Definition {
        name: "runtime_drift",
        layer: Layer::Model,
        does: "the new stack scores through the gbdt crate without mapping missing values",
        params: &[],
        per_request: true,
        live: Live { in_process: Support::Acts, platform: Support::Refused( "the platform's model server is the runtime: rehearse another runtime with a `model_artifact` it serves", ), service: INSIDE.service, },
    },
    // Tag::DecisionThreshold
    Definition {
        name: "decision_threshold",
        layer: Layer::Answer,
        does: "the new stack decides at `threshold` instead of the migration's (binary answers)",
        params: &[needs("threshold", Accepts::Number)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::DecisionLabels
    Definition {
        name: "decision_labels",
        layer: Layer::Answer,
        does: "the new stack states its decisions through `map` of label to label (`{ approve = \"decline\", decline = \"approve\" }`: labels in another order)",
        params: &[needs("map", Accepts::Map)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::ScoreTransform
    Definition {
        name: "score_transform",
        layer: Layer::Answer,
        does: "the new stack answers `scale` x score + `offset` (`transform = \"linear\"`), the margin instead of the probability (`\"margin\"`) or the other class's probability (`\"complement\"`); its decision follows from what it answers",
        params: &[optional("transform", Accepts::Word(TRANSFORMS), 0.0), optional("scale", Accepts::Number, 1.0), optional("offset", Accepts::Number, 0.0)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::Latency
    Definition {
        name: "latency",
        layer: Layer::Stack,
        does: "`add_ms` added to every call, and `tail_ms` more to `tail_fraction` of them",
        params: &[optional("add_ms", Accepts::AddedMs, 0.0), optional("tail_ms", Accepts::AddedMs, 0.0), optional("tail_fraction", Accepts::Share, 0.01)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::LatencyScale
    Definition {
        name: "latency_scale",
        layer: Layer::Stack,
        does: "each call's own service time multiplied: by `p50` at or below the stack's median, by `p99` at or above its 99th percentile, log-linearly between (so p50 and p99 move by those factors)",
        params: &[optional("p50", Accepts::Factor, 1.0), optional("p99", Accepts::Factor, 1.0)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::Errors
    Definition {
        name: "errors",
        layer: Layer::Stack,
        does: "`rate` of the calls fail",
        params: &[needs("rate", Accepts::Share)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::Timeouts
    Definition {
        name: "timeouts",
        layer: Layer::Stack,
        does: "`rate` of the calls hang past the caller's timeout",
        params: &[needs("rate", Accepts::Share)],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::StackDown
    Definition {
        name: "stack_down",
        layer: Layer::Stack,
        does: "the new stack is down: every call fails at once (live: its listener closes until the fault clears)",
        params: &[],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::ShadowContext
    Definition {
        name: "shadow_context",
        layer: Layer::Shadow,
        does: "the shadow call loses the fields the migration's `[shadow] context` names",
        params: &[],
        per_request: true,
        live: EVERYWHERE,
    },
    // Tag::DecommissionLegacy
    Definition {
        name: "decommission_legacy",
        layer: Layer::Controller,
        does: "an attempt to retire legacy, refused until the plan allows it (live: `POST /admin/decommission`, which `loadtest` calls at the fault's start)",
        params: &[],
        per_request: false,
        live: Live { in_process: Support::Refused("decommission is an admin call of its own: POST /admin/decommission"), platform: Support::Refused("decommission is an admin call of its own: POST /admin/decommission"), service: Support::Refused("decommission is an admin call of its own: POST /admin/decommission"), },
    },
];

/// The fault kinds, without their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    /// A numeric request field scaled and shifted.
    FieldSkew,
    /// A request field's values mapped to others.
    FieldMap,
    /// A boolean request field read inverted.
    FieldInverted,
    /// A request field read as missing.
    FieldMissing,
    /// A timestamp field shifted by hours.
    FieldTimeShift,
    /// The new path switches to another feature spec.
    SpecSwitch,
    /// A feature scaled and shifted.
    FeatureSkew,
    /// Missing values filled.
    MissingValuePolicy,
    /// Category codes shifted.
    CategoricalEncoding,
    /// A feature's values (category codes) permuted.
    FeatureMap,
    /// The store's materialization stalls.
    StaleFeatures,
    /// Another artifact served.
    ModelArtifact,
    /// Another runtime.
    RuntimeDrift,
    /// Another decision threshold.
    DecisionThreshold,
    /// Decisions stated under other labels.
    DecisionLabels,
    /// The score transformed.
    ScoreTransform,
    /// Latency added.
    Latency,
    /// Latency multiplied.
    LatencyScale,
    /// Calls fail.
    Errors,
    /// Calls time out.
    Timeouts,
    /// The new stack down.
    StackDown,
    /// Shadow calls lose the production context.
    ShadowContext,
    /// Legacy decommissioned.
    DecommissionLegacy,
}

impl Tag {
    /// Every kind, from the request in to the answer out, then the shadow call and the
    /// controller (the docs' order).
    pub const ALL: [Tag; 23] = [
        Tag::FieldSkew,
        Tag::FieldMap,
        Tag::FieldInverted,
        Tag::FieldMissing,
        Tag::FieldTimeShift,
        Tag::SpecSwitch,
        Tag::FeatureSkew,
        Tag::MissingValuePolicy,
        Tag::CategoricalEncoding,
        Tag::FeatureMap,
        Tag::StaleFeatures,
        Tag::ModelArtifact,
        Tag::RuntimeDrift,
        Tag::DecisionThreshold,
        Tag::DecisionLabels,
        Tag::ScoreTransform,
        Tag::Latency,
        Tag::LatencyScale,
        Tag::Errors,
        Tag::Timeouts,
        Tag::StackDown,
        Tag::ShadowContext,
        Tag::DecommissionLegacy,
    ];

    /// Its definition.
    pub fn def(self) -> &'static Definition {
        &DEFINITIONS[self as usize]
    }

    /// Its name in scenario files.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The kind a scenario names.
    pub fn from_name(name: &str) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Builds the kind from its parameters' values: `number(name)` gives a numeric
    /// parameter's value for this run (drawn in the definition's order); the rest is
    /// checked against the migration and the model (`ctx`).
    fn build(
        self,
        spec: &FaultSpec,
        ctx: &Context<'_>,
        number: &mut dyn FnMut(&str) -> f64,
    ) -> Result<Kind, (String, String)> {
        use FieldKind::{Boolean, Category, Integer, Number, Timestamp};
        let b = Builder { tag: self, spec, ctx };
        Ok(match self {
            Tag::FieldSkew => {
                let field = b.field(&[Number, Integer])?;
                Kind::FieldSkew { field, scale: number("scale"), offset: number("offset") }
            }
            Tag::FieldMap => b.field_map()?,
            Tag::FieldInverted => Kind::FieldInverted { field: b.field(&[Boolean])? },
            Tag::FieldMissing => {
                Kind::FieldMissing { field: b.field(&[Number, Integer, Boolean, Category, Timestamp])? }
            }
            Tag::FieldTimeShift => {
                let field = b.field(&[Timestamp])?;
                Kind::FieldTimeShift { field, shift_ms: number("shift_h") * 3_600_000.0 }
            }
            Tag::SpecSwitch => Kind::SpecSwitch { spec: b.file("spec", Accepts::Spec, spec.spec.as_deref())? },
            Tag::FeatureSkew => {
                let feature = b.feature()?;
                Kind::FeatureSkew { feature, scale: number("scale"), offset: number("offset") }
            }
            Tag::MissingValuePolicy => Kind::MissingValuePolicy { feature: b.feature()?, fill: number("fill") },
            Tag::CategoricalEncoding => Kind::CategoricalEncoding { feature: b.feature()?, shift: number("shift") },
            Tag::FeatureMap => b.feature_map()?,
            Tag::StaleFeatures => Kind::StaleFeatures { stall_us: seconds_to_us(number("stall_s")) },
            Tag::ModelArtifact => {
                Kind::ModelArtifact { artifact: b.file("artifact", Accepts::Artifact, spec.artifact.as_deref())? }
            }
            Tag::RuntimeDrift => Kind::RuntimeDrift,
            Tag::DecisionThreshold => {
                b.binary("a decision threshold")?;
                Kind::DecisionThreshold { threshold: number("threshold") as f32 }
            }
            Tag::DecisionLabels => b.decision_labels()?,
            Tag::ScoreTransform => {
                let transform = b.transform()?;
                Kind::ScoreTransform { transform, scale: number("scale"), offset: number("offset") }
            }
            Tag::Latency => Kind::Latency {
                add_ms: number("add_ms"),
                tail_ms: number("tail_ms"),
                tail_fraction: number("tail_fraction"),
            },
            Tag::LatencyScale => {
                let (p50, p99) = (number("p50"), number("p99"));
                if p50 == 1.0 && p99 == 1.0 {
                    return Err(b.err("p99", "multiplies nothing: give `p50`, `p99` or both, above 1".into()));
                }
                Kind::LatencyScale { p50, p99 }
            }
            Tag::Errors => Kind::Errors { rate: number("rate") },
            Tag::Timeouts => Kind::Timeouts { rate: number("rate") },
            Tag::StackDown => Kind::StackDown,
            Tag::ShadowContext => Kind::ShadowContext,
            Tag::DecommissionLegacy => Kind::DecommissionLegacy,
        })
    }
}

/// What builds one kind: its table and what it is checked against.
struct Builder<'s> {
    tag: Tag,
    spec: &'s FaultSpec,
    ctx: &'s Context<'s>,
}

impl Builder<'_> {
    fn err(&self, field: &str, message: String) -> (String, String) {
        (field.to_string(), message)
    }

    /// The model feature the table names, by index.
    fn feature(&self) -> Result<usize, (String, String)> {
        let name = self.spec.feature.as_deref().unwrap_or_default();
        self.ctx.features.iter().position(|n| n == name).ok_or_else(|| {
            self.err("feature", format!("`{name}` is not a model feature (features: {})", self.ctx.features.join(", ")))
        })
    }

    /// The request field the table names, by index: of a kind this fault reads, never the
    /// id or the entity.
    fn field(&self, takes: &[FieldKind]) -> Result<usize, (String, String)> {
        let schema = self.ctx.schema;
        let name = self.spec.field.as_deref().unwrap_or_default();
        let i = schema.index(name).ok_or_else(|| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
            self.err("field", format!("`{name}` is not a request field (fields: {})", names.join(", ")))
        })?;
        let f = schema.field(i);
        if f.key {
            let message = format!("`{name}` is the request's id or entity: the router reads it, not the new path");
            return Err(self.err("field", message));
        }
        if !takes.contains(&f.kind) {
            let kinds: Vec<&str> = takes.iter().map(|k| k.name()).collect();
            let message = format!(
                "`{name}` is a {} field: {} reads {} fields",
                f.kind.name(),
                self.tag.name(),
                kinds.join(" or ")
            );
            return Err(self.err("field", message));
        }
        Ok(i)
    }

    fn file(&self, name: &str, accepts: Accepts, given: Option<&str>) -> Result<PathBuf, (String, String)> {
        (self.ctx.file)(accepts, given.unwrap_or_default()).map_err(|m| self.err(name, m))
    }

    fn map(&self) -> Vec<(&String, &MapValue)> {
        self.spec.map.as_ref().map(|m| m.iter().collect()).unwrap_or_default()
    }

    fn binary(&self, what: &str) -> Result<(), (String, String)> {
        let kind = self.ctx.answer.kind;
        if kind == AnswerKind::Binary {
            Ok(())
        } else {
            Err(self.err("kind", format!("{what} applies to binary answers (this migration's is {kind:?})")))
        }
    }

    /// A number a map names (a numeric field's value, a feature's code).
    fn number_in_map(&self, v: &str, what: String) -> Result<f64, (String, String)> {
        v.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| self.err("map", what))
    }

    fn field_map(&self) -> Result<Kind, (String, String)> {
        use FieldKind::{Boolean, Category, Integer, Number};
        let schema = self.ctx.schema;
        let i = self.field(&[Number, Integer, Boolean, Category])?;
        let f = schema.field(i);
        let value = |v: &str| -> Result<Value, (String, String)> {
            if f.kind == Category {
                return schema.interner().intern_kept(v).map(Value::Text).map_err(|m| self.err("map", m));
            }
            let what = format!("`{v}` is not a number, and `{}` holds numbers", f.name);
            self.number_in_map(v, what).map(Value::Number)
        };
        let mut map = Vec::new();
        for (from, to) in self.map() {
            map.push((value(from)?, value(&to.text())?));
        }
        Ok(Kind::FieldMap { field: i, map })
    }

    fn feature_map(&self) -> Result<Kind, (String, String)> {
        let feature = self.feature()?;
        let code = |v: &str| {
            let what = format!("`{v}` is not a number: a feature's values are numbers (category codes)");
            self.number_in_map(v, what)
        };
        let mut map = Vec::new();
        for (from, to) in self.map() {
            map.push((code(from)?, code(&to.text())?));
        }
        Ok(Kind::FeatureMap { feature, map })
    }

    fn decision_labels(&self) -> Result<Kind, (String, String)> {
        let answer = self.ctx.answer;
        if !answer.has_decision() {
            return Err(self.err("kind", "decision_labels applies to answers with a decision".into()));
        }
        let labels = &answer.labels;
        let index = |l: &str| {
            labels.iter().position(|x| x.eq_ignore_ascii_case(l.trim())).ok_or_else(|| {
                self.err("map", format!("`{l}` is not one of the answer's labels ({})", labels.join(", ")))
            })
        };
        let mut stated: Vec<u32> = (0..labels.len() as u32).collect();
        for (from, to) in self.map() {
            stated[index(from)?] = index(&to.text())? as u32;
        }
        Ok(Kind::DecisionLabels { stated })
    }

    fn transform(&self) -> Result<Transform, (String, String)> {
        let transform = match self.spec.transform.as_deref().unwrap_or("linear") {
            "margin" => Transform::Margin,
            "complement" => Transform::Complement,
            _ => Transform::Linear,
        };
        if transform != Transform::Linear {
            self.binary("transform = \"margin\" or \"complement\"")?;
            if self.spec.scale.is_some() || self.spec.offset.is_some() {
                return Err(self.err("scale", "`scale` and `offset` go with transform = \"linear\"".into()));
            }
        }
        Ok(transform)
    }
}

fn seconds_to_us(s: f64) -> u64 {
    (s * crate::core::SECOND as f64) as u64
}

/// What a fault is built against: the model's features, the migration's request schema
/// and answer, and the files its parameters name.
pub struct Context<'a> {
    /// The model's features, in order.
    pub features: &'a [String],
    /// The request schema.
    pub schema: &'a Schema,
    /// The answer the migration declares.
    pub answer: &'a Answer,
    /// The file an `artifact` or `spec` value names, or why it cannot be read.
    pub file: &'a dyn Fn(Accepts, &str) -> Result<PathBuf, String>,
}

/// How `score_transform` changes the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// `scale` x score + `offset`.
    Linear,
    /// The log-odds instead of the probability.
    Margin,
    /// One minus the probability: the other class's.
    Complement,
}

/// What a fault does, with its parameters resolved for one run.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A numeric request field times `scale` plus `offset`, as the new path reads it.
    FieldSkew {
        /// Schema field index.
        field: usize,
        /// Multiplier.
        scale: f64,
        /// Added after.
        offset: f64,
    },
    /// A request field's values mapped (matched ignoring ASCII case for text).
    FieldMap {
        /// Schema field index.
        field: usize,
        /// Value to value.
        map: Vec<(Value, Value)>,
    },
    /// A boolean request field inverted.
    FieldInverted {
        /// Schema field index.
        field: usize,
    },
    /// A request field read as missing.
    FieldMissing {
        /// Schema field index.
        field: usize,
    },
    /// A timestamp field shifted.
    FieldTimeShift {
        /// Schema field index.
        field: usize,
        /// By this many milliseconds.
        shift_ms: f64,
    },
    /// The new path computes with another spec.
    SpecSwitch {
        /// Its file.
        spec: PathBuf,
    },
    /// Feature value times `scale` plus `offset` on the new path (units, scaling).
    FeatureSkew {
        /// Model feature index.
        feature: usize,
        /// Multiplier.
        scale: f64,
        /// Added after.
        offset: f64,
    },
    /// Missing values of a feature filled with a constant on the new path.
    MissingValuePolicy {
        /// Model feature index.
        feature: usize,
        /// The fill.
        fill: f64,
    },
    /// Category codes shifted on the new path (a rotated vocabulary).
    CategoricalEncoding {
        /// Model feature index.
        feature: usize,
        /// Shift.
        shift: f64,
    },
    /// A feature's values mapped (a vocabulary in another order).
    FeatureMap {
        /// Model feature index.
        feature: usize,
        /// Value to value.
        map: Vec<(f64, f64)>,
    },
    /// The online store's materialization stalls.
    StaleFeatures {
        /// For how long.
        stall_us: u64,
    },
    /// The new stack serves another artifact.
    ModelArtifact {
        /// Its file.
        artifact: PathBuf,
    },
    /// The new stack scores through the gbdt crate without the missing-value mapping.
    RuntimeDrift,
    /// The new stack decides at another threshold (binary answers).
    DecisionThreshold {
        /// At or above it: the second label.
        threshold: f32,
    },
    /// The new stack states class `i` as class `stated[i]`.
    DecisionLabels {
        /// Per class, the class it is stated as.
        stated: Vec<u32>,
    },
    /// The new stack's score transformed; its decision follows.
    ScoreTransform {
        /// How.
        transform: Transform,
        /// Linear: multiplier.
        scale: f64,
        /// Linear: added after.
        offset: f64,
    },
    /// Extra new-stack latency.
    Latency {
        /// Added to every call.
        add_ms: f64,
        /// Added to a share of calls.
        tail_ms: f64,
        /// That share.
        tail_fraction: f64,
    },
    /// New-stack service times multiplied, by `p50` at the median and `p99` at the 99th
    /// percentile ([`latency_factor`]).
    LatencyScale {
        /// Factor at or below the median.
        p50: f64,
        /// Factor at or above the 99th percentile.
        p99: f64,
    },
    /// New-stack calls fail.
    Errors {
        /// Share of calls.
        rate: f64,
    },
    /// New-stack calls time out.
    Timeouts {
        /// Share of calls.
        rate: f64,
    },
    /// The new stack is down (killed, or its host gone): every call fails at once.
    StackDown,
    /// Shadow calls lack the production context (the migration's `[shadow] context`).
    ShadowContext,
    /// An attempt to decommission legacy.
    DecommissionLegacy,
}

impl Kind {
    /// Which kind it is.
    pub fn tag(&self) -> Tag {
        match self {
            Kind::FieldSkew { .. } => Tag::FieldSkew,
            Kind::FieldMap { .. } => Tag::FieldMap,
            Kind::FieldInverted { .. } => Tag::FieldInverted,
            Kind::FieldMissing { .. } => Tag::FieldMissing,
            Kind::FieldTimeShift { .. } => Tag::FieldTimeShift,
            Kind::SpecSwitch { .. } => Tag::SpecSwitch,
            Kind::FeatureSkew { .. } => Tag::FeatureSkew,
            Kind::MissingValuePolicy { .. } => Tag::MissingValuePolicy,
            Kind::CategoricalEncoding { .. } => Tag::CategoricalEncoding,
            Kind::FeatureMap { .. } => Tag::FeatureMap,
            Kind::StaleFeatures { .. } => Tag::StaleFeatures,
            Kind::ModelArtifact { .. } => Tag::ModelArtifact,
            Kind::RuntimeDrift => Tag::RuntimeDrift,
            Kind::DecisionThreshold { .. } => Tag::DecisionThreshold,
            Kind::DecisionLabels { .. } => Tag::DecisionLabels,
            Kind::ScoreTransform { .. } => Tag::ScoreTransform,
            Kind::Latency { .. } => Tag::Latency,
            Kind::LatencyScale { .. } => Tag::LatencyScale,
            Kind::Errors { .. } => Tag::Errors,
            Kind::Timeouts { .. } => Tag::Timeouts,
            Kind::StackDown => Tag::StackDown,
            Kind::ShadowContext => Tag::ShadowContext,
            Kind::DecommissionLegacy => Tag::DecommissionLegacy,
        }
    }

    /// The kind's name in scenario files.
    pub fn name(&self) -> &'static str {
        self.tag().name()
    }

    /// Its definition.
    pub fn def(&self) -> &'static Definition {
        self.tag().def()
    }

    /// Changes the request as the new path reads it (the request-field layer); whether it
    /// acts there. The features derived from the field follow when the path computes.
    pub fn apply_to_request(&self, record: &mut Record) -> bool {
        let (field, read) = match self {
            Kind::FieldSkew { field, .. }
            | Kind::FieldMap { field, .. }
            | Kind::FieldInverted { field }
            | Kind::FieldMissing { field }
            | Kind::FieldTimeShift { field, .. } => (*field, record.values[*field]),
            _ => return false,
        };
        let value = match (self, read) {
            (Kind::FieldMissing { .. }, _) => Value::Missing,
            (Kind::FieldSkew { scale, offset, .. }, Value::Number(x)) => Value::Number(x * scale + offset),
            (Kind::FieldInverted { .. }, Value::Number(x)) => Value::Number(1.0 - x),
            (Kind::FieldTimeShift { shift_ms, .. }, Value::Number(ms)) => Value::Number(ms + shift_ms),
            (Kind::FieldMap { map, .. }, v) => {
                let same = |from: &Value| match (from, v) {
                    (Value::Text(a), Value::Text(b)) => a.folded == b.folded,
                    (a, b) => *a == b,
                };
                map.iter().find(|(from, _)| same(from)).map_or(v, |(_, to)| *to)
            }
            (_, v) => v,
        };
        record.values[field] = value;
        true
    }

    /// Changes a new-path model row as the fault does (the feature layer); whether it acts
    /// there.
    pub fn apply_to_row(&self, row: &mut [f32]) -> bool {
        match self {
            Kind::FeatureSkew { feature, scale, offset } => {
                row[*feature] = (f64::from(row[*feature]) * scale + offset) as f32;
            }
            Kind::MissingValuePolicy { feature, fill } => {
                if row[*feature].is_nan() {
                    row[*feature] = *fill as f32;
                }
            }
            Kind::CategoricalEncoding { feature, shift } => {
                if !row[*feature].is_nan() {
                    row[*feature] = (f64::from(row[*feature]) + shift) as f32;
                }
            }
            Kind::FeatureMap { feature, map } => {
                let x = f64::from(row[*feature]);
                if let Some((_, to)) = map.iter().find(|(from, _)| *from == x) {
                    row[*feature] = *to as f32;
                }
            }
            _ => return false,
        }
        true
    }
}

/// The answer a new-stack call gives when the answer-layer faults among `kinds` touch it:
/// its scores in `out` are transformed in place, and the decision it states is returned
/// (decided at the fault's threshold, stated under the fault's labels). Without such faults,
/// the answer's own decision of `out`.
pub fn served_answer<'k>(answer: &Answer, kinds: impl Iterator<Item = &'k Kind>, out: &mut [f32]) -> Option<u32> {
    let mut threshold = None;
    let mut stated: Option<&[u32]> = None;
    for kind in kinds {
        match kind {
            Kind::ScoreTransform { transform, scale, offset } => {
                for x in out.iter_mut() {
                    let p = f64::from(*x);
                    *x = match transform {
                        Transform::Linear => p * scale + offset,
                        Transform::Margin => (p / (1.0 - p)).ln(),
                        Transform::Complement => 1.0 - p,
                    } as f32;
                }
            }
            Kind::DecisionThreshold { threshold: t } => threshold = Some(*t),
            Kind::DecisionLabels { stated: s } => stated = Some(s),
            _ => {}
        }
    }
    let decision = match (answer.kind, threshold) {
        (AnswerKind::Binary, Some(t)) => Some(u32::from(out[0] >= t)),
        _ => answer.decision(out),
    };
    match (decision, stated) {
        (Some(d), Some(s)) => s.get(d as usize).copied().or(Some(d)),
        (d, _) => d,
    }
}

/// The multiplier of a `latency_scale` fault for a call at `position` between the stack's
/// own median (0) and 99th percentile (1) on a log scale: `p50` at or below the median,
/// `p99` at or above the 99th percentile, log-linear between.
pub fn latency_factor(p50: f64, p99: f64, position: f64) -> f64 {
    let w = position.clamp(0.0, 1.0);
    (p50.ln() * (1.0 - w) + p99.ln() * w).exp()
}

/// A call's position between a stack's median and 99th percentile on a log scale, as
/// [`latency_factor`] reads it: `ln(ms / p50) / ln(p99 / p50)`, from a service time and
/// the stack's own quantiles (0 when they do not spread).
pub fn latency_position(ms: f64, p50: f64, p99: f64) -> f64 {
    if !(ms > 0.0 && p50 > 0.0 && p99 > p50) {
        return 0.0;
    }
    (ms / p50).ln() / (p99 / p50).ln()
}

/// The model a touched new-stack call scores with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelTouch {
    /// The stack's own.
    Same,
    /// The artifact of the `model_artifact` fault at this position in the scenario.
    Artifact(usize),
    /// The stack's own through the gbdt runtime (`runtime_drift`).
    Drift,
}

/// What the faults touching one new-stack call do to it, gathered by [`Touch::add`] the same
/// way in the simulator and live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Touch {
    /// The model it scores with (the last model fault wins).
    pub model: ModelTouch,
    /// Latency added, ms.
    pub add_ms: f64,
    /// The chance it fails (summed over faults).
    pub error_rate: f64,
    /// The chance it times out (summed over faults).
    pub timeout_rate: f64,
    /// Whether the shadow call lost its context.
    pub context_lost: bool,
    /// Whether a feature fault touches its row (see [`Kind::apply_to_row`]).
    pub feature_faults: bool,
    /// Whether a request-field fault touches the request (see [`Kind::apply_to_request`]).
    pub request_faults: bool,
    /// The `spec_switch` fault whose spec the new path computes with (its position in the
    /// scenario, or its id on a live board; the last one wins).
    pub spec: Option<usize>,
    /// Whether an answer fault touches the answer (see [`served_answer`]).
    pub answer_faults: bool,
    /// The `latency_scale` factors at the median and the 99th percentile (multiplied over
    /// faults; 1 and 1 when none).
    pub latency_scale: (f64, f64),
}

impl Touch {
    /// The service time `ms` of a call at `position` between the stack's own median and
    /// 99th percentile ([`latency_position`]), as the `latency_scale` faults make it.
    pub fn scaled_ms(&self, ms: f64, position: f64) -> f64 {
        let (p50, p99) = self.latency_scale;
        if p50 == 1.0 && p99 == 1.0 {
            ms
        } else {
            ms * latency_factor(p50, p99, position)
        }
    }
}

impl Default for Touch {
    fn default() -> Self {
        Touch {
            model: ModelTouch::Same,
            add_ms: 0.0,
            error_rate: 0.0,
            timeout_rate: 0.0,
            context_lost: false,
            feature_faults: false,
            request_faults: false,
            spec: None,
            answer_faults: false,
            latency_scale: (1.0, 1.0),
        }
    }
}

impl Touch {
    /// Adds what fault `kind` (at `position` in the scenario, or its id on a live board) does
    /// to call `request` of the seeded run; `shadow` when the call is a shadow call.
    pub fn add(&mut self, kind: &Kind, position: u64, seed: u64, request: u64, shadow: bool) {
        match kind {
            Kind::ShadowContext => self.context_lost |= shadow,
            Kind::ModelArtifact { .. } => self.model = ModelTouch::Artifact(position as usize),
            Kind::RuntimeDrift => self.model = ModelTouch::Drift,
            Kind::Latency { add_ms, tail_ms, tail_fraction } => {
                self.add_ms += add_ms;
                if crate::streams::unit(seed, request, 0x7A11 + position) < *tail_fraction {
                    self.add_ms += tail_ms;
                }
            }
            Kind::Errors { rate } => self.error_rate += rate,
            // Connection refused: an error, at once.
            Kind::StackDown => self.error_rate += 1.0,
            Kind::Timeouts { rate } => self.timeout_rate += rate,
            Kind::LatencyScale { p50, p99 } => {
                self.latency_scale.0 *= p50;
                self.latency_scale.1 *= p99;
            }
            Kind::FieldSkew { .. }
            | Kind::FieldMap { .. }
            | Kind::FieldInverted { .. }
            | Kind::FieldMissing { .. }
            | Kind::FieldTimeShift { .. } => self.request_faults = true,
            Kind::SpecSwitch { .. } => self.spec = Some(position as usize),
            Kind::FeatureSkew { .. }
            | Kind::MissingValuePolicy { .. }
            | Kind::CategoricalEncoding { .. }
            | Kind::FeatureMap { .. } => self.feature_faults = true,
            Kind::DecisionThreshold { .. } | Kind::DecisionLabels { .. } | Kind::ScoreTransform { .. } => {
                self.answer_faults = true
            }
            Kind::StaleFeatures { .. } | Kind::DecommissionLegacy => {}
        }
    }
}

/// A moment of the rollout a fault can start or end at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Moment {
    /// The shadow period's start.
    Shadow,
    /// Entering the canary stage of this weight, percent.
    Stage(f64),
    /// The promotion (after the last stage's bake).
    Promoted,
}

impl Moment {
    /// Whether the rollout is at this moment: in `phase`, with the plan's `stages` (percent).
    pub fn is_now(self, phase: crate::core::Phase, stages: &[f64]) -> bool {
        use crate::core::Phase;
        match (self, phase) {
            (Moment::Shadow, Phase::Shadow) => true,
            (Moment::Stage(p), Phase::Canary(i)) => stages.get(i) == Some(&p),
            (Moment::Promoted, Phase::Promoted) => true,
            _ => false,
        }
    }

    /// Reads `shadow`, `canary:P` (P a stage weight in percent, `%` allowed) or `promoted`.
    pub fn parse(text: &str) -> Result<Moment, String> {
        let t = text.trim();
        match t {
            "shadow" => return Ok(Moment::Shadow),
            "promoted" => return Ok(Moment::Promoted),
            _ => {}
        }
        let bad =
            || format!("`{text}` is not a moment of the rollout (shadow, canary:P with P a stage's weight, promoted)");
        let p = t.strip_prefix("canary:").ok_or_else(bad)?.trim().trim_end_matches('%').trim();
        let p: f64 = p.parse().map_err(|_| bad())?;
        if p.is_finite() && p > 0.0 && p <= 100.0 {
            Ok(Moment::Stage(p))
        } else {
            Err(bad())
        }
    }
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Moment::Shadow => f.write_str("shadow"),
            Moment::Stage(p) => write!(f, "canary:{p}"),
            Moment::Promoted => f.write_str("promoted"),
        }
    }
}

/// A parameter's value as written.
#[derive(Debug, Clone, Copy)]
pub enum Given<'a> {
    /// A number or a range.
    Number(Param),
    /// Text.
    Text(&'a str),
    /// A table of values to values.
    Map(&'a std::collections::BTreeMap<String, MapValue>),
}

/// A value of a fault's `map`: a number or a text.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MapValue {
    /// A number.
    Number(f64),
    /// A text.
    Text(String),
}

impl MapValue {
    /// As text (a number as Rust prints it, which parses back to the same number).
    pub fn text(&self) -> String {
        match self {
            MapValue::Number(x) => x.to_string(),
            MapValue::Text(t) => t.clone(),
        }
    }
}

/// One fault as written: common fields plus the parameters of its kind.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The fault kind.
    pub kind: String,
    /// When it starts: seconds into the run, or after `start_at` when that is given.
    #[serde(default)]
    pub start_s: Option<Param>,
    /// A moment of the rollout it starts at (`shadow`, `canary:P`, `promoted`), `start_s`
    /// after it.
    #[serde(default)]
    pub start_at: Option<String>,
    /// When it ends (never, if absent): seconds into the run; after `end_at` when that is
    /// given, else after `start_at` when that is.
    #[serde(default)]
    pub end_s: Option<Param>,
    /// A moment of the rollout it ends at, `end_s` after it.
    #[serde(default)]
    pub end_at: Option<String>,
    /// `dimension=value`; all traffic if absent.
    #[serde(default)]
    pub segment: Option<String>,
    /// Share of matching requests affected.
    #[serde(default)]
    pub fraction: Option<Param>,
    /// A slow drift: the share grows linearly from 0 at `start_s` to `fraction` (1 if
    /// absent) `ramp_s` seconds later.
    #[serde(default)]
    pub ramp_s: Option<Param>,
    /// The request field a request-field fault changes, as the new path reads it.
    #[serde(default)]
    pub field: Option<String>,
    /// The model feature a feature fault changes.
    #[serde(default)]
    pub feature: Option<String>,
    /// field_skew, feature_skew, score_transform: multiplier.
    #[serde(default)]
    pub scale: Option<Param>,
    /// field_skew, feature_skew, score_transform: added after scaling.
    #[serde(default)]
    pub offset: Option<Param>,
    /// field_map, feature_map, decision_labels: value to value.
    #[serde(default)]
    pub map: Option<std::collections::BTreeMap<String, MapValue>>,
    /// field_time_shift: hours added to the timestamp.
    #[serde(default)]
    pub shift_h: Option<Param>,
    /// spec_switch: the spec the new path switches to.
    #[serde(default)]
    pub spec: Option<String>,
    /// decision_threshold: the new stack's threshold.
    #[serde(default)]
    pub threshold: Option<Param>,
    /// score_transform: linear, margin or complement.
    #[serde(default)]
    pub transform: Option<String>,
    /// latency_scale: the factor at the median.
    #[serde(default)]
    pub p50: Option<Param>,
    /// latency_scale: the factor at the 99th percentile.
    #[serde(default)]
    pub p99: Option<Param>,
    /// missing_value_policy: what a missing value becomes.
    #[serde(default)]
    pub fill: Option<Param>,
    /// categorical_encoding: codes shift by this (a reordered vocabulary).
    #[serde(default)]
    pub shift: Option<Param>,
    /// stale_features: how long the store's materialization stalls.
    #[serde(default)]
    pub stall_s: Option<Param>,
    /// latency: added to every call.
    #[serde(default)]
    pub add_ms: Option<Param>,
    /// latency: a heavy tail added to `tail_fraction` of calls.
    #[serde(default)]
    pub tail_ms: Option<Param>,
    /// latency: share of calls in the tail.
    #[serde(default)]
    pub tail_fraction: Option<Param>,
    /// errors, timeouts: share of calls.
    #[serde(default)]
    pub rate: Option<Param>,
    /// model_artifact: the artifact the new stack serves instead.
    #[serde(default)]
    pub artifact: Option<String>,
}

impl FaultSpec {
    /// The parameters of any kind, each with its value if written.
    pub fn given(&self) -> [(&'static str, Option<Given<'_>>); 19] {
        let n = |p: Option<Param>| p.map(Given::Number);
        [
            ("field", self.field.as_deref().map(Given::Text)),
            ("feature", self.feature.as_deref().map(Given::Text)),
            ("scale", n(self.scale)),
            ("offset", n(self.offset)),
            ("map", self.map.as_ref().map(Given::Map)),
            ("shift_h", n(self.shift_h)),
            ("spec", self.spec.as_deref().map(Given::Text)),
            ("threshold", n(self.threshold)),
            ("transform", self.transform.as_deref().map(Given::Text)),
            ("p50", n(self.p50)),
            ("p99", n(self.p99)),
            ("fill", n(self.fill)),
            ("shift", n(self.shift)),
            ("stall_s", n(self.stall_s)),
            ("add_ms", n(self.add_ms)),
            ("tail_ms", n(self.tail_ms)),
            ("tail_fraction", n(self.tail_fraction)),
            ("rate", n(self.rate)),
            ("artifact", self.artifact.as_deref().map(Given::Text)),
        ]
    }

    fn get(&self, name: &str) -> Option<Given<'_>> {
        self.given().into_iter().find(|(n, _)| *n == name).and_then(|(_, v)| v)
    }

    /// Checks the table against its kind's definition: `Err((field, message))`.
    pub fn check(&self) -> Result<Tag, (String, String)> {
        let e = |field: &str, message: String| (field.to_string(), message);
        let Some(tag) = Tag::from_name(&self.kind) else {
            let kinds: Vec<_> = Tag::ALL.iter().map(|t| t.name()).collect();
            return Err(e("kind", format!("unknown fault kind \"{}\" (kinds: {})", self.kind, kinds.join(", "))));
        };
        let def = tag.def();
        for (name, value) in self.given() {
            let Some(value) = value else { continue };
            let Some(p) = def.params.iter().find(|p| p.name == name) else {
                return Err(e(name, format!("does not apply to kind \"{}\"", self.kind)));
            };
            check_value(p, value).map_err(|m| e(name, m))?;
        }
        for p in def.params.iter().filter(|p| p.required) {
            if self.get(p.name).is_none() {
                return Err(e(p.name, format!("kind \"{}\" needs `{}`", self.kind, p.name)));
            }
        }
        let start_at = match &self.start_at {
            Some(m) => Some(Moment::parse(m).map_err(|m| e("start_at", m))?),
            None => None,
        };
        let end_at = match &self.end_at {
            Some(m) => Some(Moment::parse(m).map_err(|m| e("end_at", m))?),
            None => None,
        };
        let Some(start_s) = self.start_s.or(start_at.map(|_| Param::Fixed(0.0))) else {
            return Err(e(
                "start_s",
                "a fault needs a start: `start_s` (seconds into the run) or `start_at` (shadow, canary:P or promoted)"
                    .into(),
            ));
        };
        if start_s.min() < 0.0 {
            return Err(e("start_s", "must not be negative".into()));
        }
        if let Some(end) = self.end_s {
            if end.min() < 0.0 {
                return Err(e("end_s", "must not be negative".into()));
            }
            // Both counted from the same origin: the run's start, or the start moment.
            if end_at.is_none() && end.min() < start_s.max() {
                return Err(e("end_s", "must not come before start_s".into()));
            }
        }
        if end_at.is_some() && self.end_s.is_none() {
            return Err(e("end_s", "`end_at` needs `end_s`, the seconds after that moment (0 for at once)".into()));
        }
        if end_at.is_some() && start_at.is_none() {
            return Err(e("end_at", "a fault that starts at a time ends at a time: use `end_s`".into()));
        }
        if let Some(ramp) = self.ramp_s {
            if !(ramp.min() >= 0.0 && ramp.max().is_finite()) {
                return Err(e("ramp_s", "must be a finite number of seconds, at least 0".into()));
            }
            if !def.per_request {
                return Err(e(
                    "ramp_s",
                    format!("does not apply to kind \"{}\" (it does not act per request)", self.kind),
                ));
            }
        }
        if let Some(frac) = self.fraction {
            if frac.min() < 0.0 || frac.max() > 1.0 {
                return Err(e("fraction", "must be within [0, 1]".into()));
            }
        }
        if self.segment.as_deref().is_some_and(|s| !s.contains('=')) {
            return Err(e("segment", "must be dimension=value, like country=DE".into()));
        }
        Ok(tag)
    }

    /// The kind with its parameters resolved for one run: ranges drawn from `params` in the
    /// definition's order, fields and features named by index, files through `ctx`. Checked
    /// first ([`FaultSpec::check`]).
    pub fn build(&self, ctx: &Context<'_>, params: &mut rand_chacha::ChaCha8Rng) -> Result<Kind, (String, String)> {
        let tag = Tag::from_name(&self.kind)
            .ok_or_else(|| ("kind".to_string(), format!("unknown fault kind \"{}\"", self.kind)))?;
        let def = tag.def();
        let mut number = |name: &str| {
            let default = def.params.iter().find(|p| p.name == name).map_or(0.0, |p| p.default);
            match self.get(name) {
                Some(Given::Number(p)) => p.resolve(params),
                _ => default,
            }
        };
        tag.build(self, ctx, &mut number)
    }
}

fn check_value(p: &Parameter, value: Given<'_>) -> Result<(), String> {
    let range = |v: Param| (v.min(), v.max());
    match (p.accepts, value) {
        (Accepts::Field | Accepts::Feature | Accepts::Artifact | Accepts::Spec, Given::Text(t)) => {
            if t.trim().is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(())
            }
        }
        (Accepts::Word(words), Given::Text(t)) => {
            if words.contains(&t) {
                Ok(())
            } else {
                Err(format!("`{}` is not one of {}", cutover_models::shown(t), words.join(", ")))
            }
        }
        (Accepts::Map, Given::Map(m)) => {
            if m.is_empty() {
                Err("must map at least one value".into())
            } else if m.len() > MAX_MAP {
                Err(format!("maps {} values: at most {MAX_MAP}", m.len()))
            } else {
                Ok(())
            }
        }
        (Accepts::Map, _) => Err("must be a table of values to values, like { card = \"wallet\" }".into()),
        (_, Given::Map(_)) => Err("must not be a table".into()),
        (
            Accepts::Field | Accepts::Feature | Accepts::Artifact | Accepts::Spec | Accepts::Word(_),
            Given::Number(_),
        ) => Err("must be text".into()),
        (_, Given::Text(_)) => Err("must be a number or a range \"lo..hi\"".into()),
        (Accepts::Factor, Given::Number(v)) => {
            let (lo, hi) = range(v);
            if lo >= 1.0 && hi <= MAX_FACTOR {
                Ok(())
            } else {
                Err(format!("must be 1 to {MAX_FACTOR} (latency is multiplied up, never down)"))
            }
        }
        (Accepts::Number, Given::Number(v)) => {
            let (lo, hi) = range(v);
            if lo.is_finite() && hi.is_finite() {
                Ok(())
            } else {
                Err("must be a finite number".into())
            }
        }
        (Accepts::Share, Given::Number(v)) => {
            let (lo, hi) = range(v);
            if lo >= 0.0 && hi <= 1.0 {
                Ok(())
            } else {
                Err("must be within [0, 1]".into())
            }
        }
        (Accepts::AddedMs, Given::Number(v)) => {
            let (lo, hi) = range(v);
            if lo >= 0.0 && hi <= MAX_ADDED_MS {
                Ok(())
            } else {
                Err(format!("must be 0 to {MAX_ADDED_MS} ms (latency is added, never taken away)"))
            }
        }
        (Accepts::Seconds, Given::Number(v)) => {
            let (lo, hi) = range(v);
            if lo >= 0.0 && hi.is_finite() {
                Ok(())
            } else {
                Err("must be a finite number of seconds, at least 0".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_its_name_and_every_parameter_is_a_field() {
        for (k, tag) in Tag::ALL.into_iter().enumerate() {
            assert_eq!(tag as usize, k, "Tag::ALL is in the enum's order");
            assert_eq!(Tag::from_name(tag.name()), Some(tag));
            // Each tag reads its own row of the table: its name is the variant's, in snake case.
            let snake: String = format!("{tag:?}")
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                    sep.into_iter().chain(std::iter::once(c.to_ascii_lowercase()))
                })
                .collect();
            assert_eq!(tag.name(), snake);
        }
        let spec: FaultSpec = toml::from_str("kind = \"errors\"\nstart_s = 0").unwrap();
        let fields: Vec<&str> = spec.given().iter().map(|(n, _)| *n).collect();
        for tag in Tag::ALL {
            for p in tag.def().params {
                assert!(fields.contains(&p.name), "{}: `{}` is not a field of a fault table", tag.name(), p.name);
            }
        }
        // And every field belongs to some kind.
        for f in fields {
            assert!(Tag::ALL.iter().any(|t| t.def().params.iter().any(|p| p.name == f)), "{f} belongs to no kind");
        }
    }

    fn parse(text: &str) -> Result<Tag, (String, String)> {
        toml::from_str::<FaultSpec>(text).unwrap().check()
    }

    #[test]
    fn the_definition_checks_parameters() {
        assert_eq!(parse("kind = \"latency\"\nstart_s = 1\ntail_ms = 40"), Ok(Tag::Latency));
        let (field, message) = parse("kind = \"latency\"\nstart_s = 1\nadd_ms = -1").unwrap_err();
        assert_eq!(field, "add_ms");
        assert!(message.contains("never taken away"), "{message}");
        assert_eq!(parse("kind = \"errors\"\nstart_s = 1").unwrap_err().0, "rate");
        assert_eq!(parse("kind = \"errors\"\nstart_s = 1\nrate = 2").unwrap_err().0, "rate");
        let (field, message) = parse("kind = \"errors\"\nstart_s = 1\nrate = 0.1\nscale = 2").unwrap_err();
        assert_eq!((field.as_str(), message.as_str()), ("scale", "does not apply to kind \"errors\""));
        assert_eq!(parse("kind = \"stale_features\"\nstart_s = 1\nstall_s = 5\nramp_s = 9").unwrap_err().0, "ramp_s");
        assert!(parse("kind = \"nope\"\nstart_s = 1").unwrap_err().1.contains("stack_down"));
    }

    const REQUEST: &str = r#"
id = "id"
entity = "customer"
time = "at"
fields = [
  { name = "id", kind = "integer" },
  { name = "customer", kind = "category" },
  { name = "at", kind = "timestamp" },
  { name = "amount", kind = "number" },
  { name = "express", kind = "boolean" },
  { name = "channel", kind = "category" },
]
"#;

    fn schema() -> Schema {
        let def: cutover_migration::schema::RequestDef = toml::from_str(REQUEST).unwrap();
        Schema::compile(&def, REQUEST, "request.toml").unwrap()
    }

    fn built(text: &str) -> Result<Kind, (String, String)> {
        built_with(&schema(), text)
    }

    fn built_with(schema: &Schema, text: &str) -> Result<Kind, (String, String)> {
        use rand::SeedableRng;
        let answer = Answer::binary(0.5, "allow", "block");
        let features = vec!["a".to_string(), "b".to_string()];
        let file = |_: Accepts, given: &str| Ok(PathBuf::from(given));
        let ctx = Context { features: &features, schema, answer: &answer, file: &file };
        let spec: FaultSpec = toml::from_str(text).unwrap();
        spec.check()?;
        spec.build(&ctx, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))
    }

    #[test]
    fn every_kind_builds_from_its_definition() {
        for tag in Tag::ALL {
            let mut text = format!("kind = \"{}\"\nstart_s = 0\n", tag.name());
            for p in tag.def().params.iter().filter(|p| p.required) {
                let value = match (p.accepts, tag) {
                    (Accepts::Feature, _) => "\"b\"",
                    (Accepts::Field, Tag::FieldInverted) => "\"express\"",
                    (Accepts::Field, Tag::FieldTimeShift) => "\"at\"",
                    (Accepts::Field, _) => "\"amount\"",
                    (Accepts::Artifact | Accepts::Spec, _) => "\"Cargo.toml\"",
                    (Accepts::Map, Tag::DecisionLabels) => "{ allow = \"block\" }",
                    (Accepts::Map, _) => "{ \"1\" = 2 }",
                    _ => "0.5",
                };
                text.push_str(&format!("{} = {value}\n", p.name));
            }
            if tag == Tag::LatencyScale {
                text.push_str("p99 = 3\n");
            }
            assert_eq!(built(&text).map(|k| k.tag()), Ok(tag), "{text}");
        }
        // Defaults come from the definition.
        assert_eq!(
            built("kind = \"latency\"\nstart_s = 0"),
            Ok(Kind::Latency { add_ms: 0.0, tail_ms: 0.0, tail_fraction: 0.01 })
        );
    }

    #[test]
    fn a_request_field_fault_names_a_field_of_the_kind_it_reads() {
        let refused = |text: &str| built(text).unwrap_err();
        let (field, message) = refused("kind = \"field_skew\"\nstart_s = 0\nfield = \"channel\"\nscale = 2");
        assert_eq!(field, "field");
        assert!(
            message.contains("`channel` is a category field: field_skew reads number or integer fields"),
            "{message}"
        );
        let (_, message) = refused("kind = \"field_missing\"\nstart_s = 0\nfield = \"customer\"");
        assert!(message.contains("id or entity"), "{message}");
        let (_, message) = refused("kind = \"field_inverted\"\nstart_s = 0\nfield = \"nope\"");
        assert!(
            message.contains("not a request field (fields: id, customer, at, amount, express, channel)"),
            "{message}"
        );
        let (field, _) = refused("kind = \"field_map\"\nstart_s = 0\nfield = \"amount\"\nmap = { card = 1 }");
        assert_eq!(field, "map", "a number field maps numbers");
        let (field, message) = refused("kind = \"decision_labels\"\nstart_s = 0\nmap = { allow = \"maybe\" }");
        assert_eq!((field.as_str(), message.contains("allow, block")), ("map", true), "{message}");
        let (field, _) = refused("kind = \"score_transform\"\nstart_s = 0\ntransform = \"softmax\"");
        assert_eq!(field, "transform");
        let (field, _) = refused("kind = \"score_transform\"\nstart_s = 0\ntransform = \"margin\"\nscale = 2");
        assert_eq!(field, "scale");
        let (field, _) = refused("kind = \"latency_scale\"\nstart_s = 0\np99 = 0.5");
        assert_eq!(field, "p99", "latency is multiplied up");
        let (field, _) = refused("kind = \"latency_scale\"\nstart_s = 0");
        assert_eq!(field, "p99", "a multiplier of one does nothing");
    }

    #[test]
    fn request_field_faults_change_the_request_as_the_new_path_reads_it() {
        let schema = schema();
        let mut r = schema.record();
        let card = schema.interner().intern("card");
        r.values[2] = Value::Number(1_700_000_000_000.0);
        r.values[3] = Value::Number(10.0);
        r.values[4] = Value::Number(1.0);
        r.values[5] = Value::Text(schema.interner().intern("Card"));
        let apply = |text: &str, r: &Record| {
            let mut r = r.clone();
            assert!(built_with(&schema, text).unwrap().apply_to_request(&mut r));
            r
        };
        let base = "start_s = 0\n";
        let skew = apply(&format!("kind = \"field_skew\"\n{base}field = \"amount\"\nscale = 1.60934"), &r);
        assert_eq!(skew.values[3], Value::Number(16.0934));
        assert_eq!(
            apply(&format!("kind = \"field_inverted\"\n{base}field = \"express\""), &r).values[4],
            Value::Number(0.0)
        );
        assert_eq!(apply(&format!("kind = \"field_missing\"\n{base}field = \"amount\""), &r).values[3], Value::Missing);
        let shifted = apply(&format!("kind = \"field_time_shift\"\n{base}field = \"at\"\nshift_h = -5"), &r);
        assert_eq!(shifted.values[2], Value::Number(1_700_000_000_000.0 - 5.0 * 3_600_000.0));
        assert_eq!(shifted.time_ms, r.time_ms, "the store's clock is the request's, not the field as read");
        // Text is matched ignoring case, as the schema's missing values are.
        let mapped =
            apply(&format!("kind = \"field_map\"\n{base}field = \"channel\"\nmap = {{ card = \"wallet\" }}"), &r);
        let wallet = schema.interner().lookup("wallet");
        assert_eq!(mapped.values[5], Value::Text(wallet));
        assert_ne!(card, wallet);
        // A value the map does not name is read as sent.
        let other =
            apply(&format!("kind = \"field_map\"\n{base}field = \"channel\"\nmap = {{ cash = \"wallet\" }}"), &r);
        assert_eq!(other.values[5], r.values[5]);
    }

    #[test]
    fn answer_faults_change_what_the_new_stack_answers() {
        let answer = Answer::binary(0.35, "allow", "block");
        let kinds = |texts: &[&str]| -> Vec<Kind> {
            texts.iter().map(|t| built(&format!("start_s = 0\n{t}")).unwrap()).collect()
        };
        let served = |ks: &[Kind], p: f32| {
            let mut out = [p];
            let d = served_answer(&answer, ks.iter(), &mut out);
            (out[0], d)
        };
        assert_eq!(served(&[], 0.4), (0.4, Some(1)));
        let threshold = kinds(&["kind = \"decision_threshold\"\nthreshold = 0.5"]);
        assert_eq!(served(&threshold, 0.4), (0.4, Some(0)), "0.35 to 0.5: a 0.4 is allowed now");
        assert_eq!(served(&threshold, 0.6), (0.6, Some(1)));
        let labels = kinds(&["kind = \"decision_labels\"\nmap = { allow = \"block\", block = \"allow\" }"]);
        assert_eq!(served(&labels, 0.4), (0.4, Some(0)));
        let complement = kinds(&["kind = \"score_transform\"\ntransform = \"complement\""]);
        let (p, d) = served(&complement, 0.25);
        assert_eq!((p, d), (0.75, Some(1)), "the other class's probability, and the decision that follows");
        let margin = kinds(&["kind = \"score_transform\"\ntransform = \"margin\""]);
        let (m, _) = served(&margin, 0.5);
        assert_eq!(m, 0.0);
    }

    #[test]
    fn a_latency_multiplier_moves_the_median_and_the_99th_percentile_by_its_factors() {
        assert_eq!(latency_factor(2.0, 5.0, -1.0), 2.0);
        assert_eq!(latency_factor(2.0, 5.0, 0.0), 2.0);
        assert!((latency_factor(2.0, 5.0, 1.0) - 5.0).abs() < 1e-12);
        assert!((latency_factor(2.0, 5.0, 7.0) - 5.0).abs() < 1e-12);
        let mid = latency_factor(2.0, 8.0, 0.5);
        assert!((mid - 4.0).abs() < 1e-12, "log-linear between: {mid}");
        // A call at the stack's own median stays at position 0, at its p99 at 1.
        assert_eq!(latency_position(20.0, 20.0, 60.0), 0.0);
        assert!((latency_position(60.0, 20.0, 60.0) - 1.0).abs() < 1e-12);
        assert_eq!(latency_position(5.0, 20.0, 20.0), 0.0, "no spread, no place");
    }
}
