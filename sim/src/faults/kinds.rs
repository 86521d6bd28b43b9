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

use crate::param::Param;

/// The most latency a fault adds, ms (ten minutes: far past any stack's timeout).
pub const MAX_ADDED_MS: f64 = 600_000.0;

/// The layer of the new path a fault acts on, from the request in to the answer out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The model row the new feature path computed.
    Feature,
    /// The new path's online store.
    Store,
    /// The model the new stack scores with.
    Model,
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
            Layer::Feature => "feature",
            Layer::Store => "store",
            Layer::Model => "model",
            Layer::Stack => "stack",
            Layer::Shadow => "shadow",
            Layer::Controller => "controller",
        }
    }
}

/// What a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// The name of a model feature.
    Feature,
    /// A file: an artifact of the migration's registry or folder.
    Artifact,
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
}

const EVERYWHERE: Live = Live { in_process: Support::Acts, platform: Support::Acts };

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
            .map(|p| if p.required { format!("`{}`", p.name) } else { format!("`{}` ({})", p.name, p.default) })
            .collect();
        let params = if params.is_empty() { "none".to_string() } else { params.join(", ") };
        let faces: Vec<&str> = [("in-process", self.live.in_process), ("platform", self.live.platform)]
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

/// The fault kinds, without their parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    /// A feature scaled and shifted.
    FeatureSkew,
    /// Missing values filled.
    MissingValuePolicy,
    /// Category codes shifted.
    CategoricalEncoding,
    /// The store's materialization stalls.
    StaleFeatures,
    /// Latency added.
    Latency,
    /// Calls fail.
    Errors,
    /// Calls time out.
    Timeouts,
    /// Shadow calls lose the production context.
    ShadowContext,
    /// Another artifact served.
    ModelArtifact,
    /// Another runtime.
    RuntimeDrift,
    /// Legacy decommissioned.
    DecommissionLegacy,
    /// The new stack down.
    StackDown,
}

impl Tag {
    /// Every kind, in the docs' order.
    pub const ALL: [Tag; 12] = [
        Tag::FeatureSkew,
        Tag::MissingValuePolicy,
        Tag::CategoricalEncoding,
        Tag::StaleFeatures,
        Tag::Latency,
        Tag::Errors,
        Tag::Timeouts,
        Tag::ShadowContext,
        Tag::ModelArtifact,
        Tag::RuntimeDrift,
        Tag::DecommissionLegacy,
        Tag::StackDown,
    ];

    /// Its definition.
    pub fn def(self) -> &'static Definition {
        use Accepts::*;
        match self {
            Tag::FeatureSkew => {
                const D: Definition = Definition {
                    name: "feature_skew",
                    layer: Layer::Feature,
                    does: "the feature times `scale` plus `offset` on the new path (units, scaling)",
                    params: &[
                        needs("feature", Feature),
                        optional("scale", Number, 1.0),
                        optional("offset", Number, 0.0),
                    ],
                    per_request: true,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::MissingValuePolicy => {
                const D: Definition = Definition {
                    name: "missing_value_policy",
                    layer: Layer::Feature,
                    does: "a missing value of the feature becomes `fill` on the new path",
                    params: &[needs("feature", Feature), optional("fill", Number, 0.0)],
                    per_request: true,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::CategoricalEncoding => {
                const D: Definition = Definition {
                    name: "categorical_encoding",
                    layer: Layer::Feature,
                    does: "the feature's category codes shift by `shift` (a reordered vocabulary)",
                    params: &[needs("feature", Feature), optional("shift", Number, 1.0)],
                    per_request: true,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::StaleFeatures => {
                const D: Definition = Definition {
                    name: "stale_features",
                    layer: Layer::Store,
                    does: "the new store's materialization job stalls for `stall_s`",
                    params: &[needs("stall_s", Seconds)],
                    per_request: false,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::Latency => {
                const D: Definition = Definition {
                    name: "latency",
                    layer: Layer::Stack,
                    does: "`add_ms` added to every call, and `tail_ms` more to `tail_fraction` of them",
                    params: &[
                        optional("add_ms", AddedMs, 0.0),
                        optional("tail_ms", AddedMs, 0.0),
                        optional("tail_fraction", Share, 0.01),
                    ],
                    per_request: true,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::Errors => {
                const D: Definition = Definition {
                    name: "errors",
                    layer: Layer::Stack,
                    does: "`rate` of the calls fail",
                    params: &[needs("rate", Accepts::Share)],
                    per_request: true,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::Timeouts => {
                const D: Definition = Definition {
                    name: "timeouts",
                    layer: Layer::Stack,
                    does: "`rate` of the calls hang past the caller's timeout",
                    params: &[needs("rate", Accepts::Share)],
                    per_request: true,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::ShadowContext => {
                const D: Definition = Definition {
                    name: "shadow_context",
                    layer: Layer::Shadow,
                    does: "the shadow call loses the fields the migration's `[shadow] context` names",
                    params: &[],
                    per_request: true,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::ModelArtifact => {
                const D: Definition = Definition {
                    name: "model_artifact",
                    layer: Layer::Model,
                    does: "the new stack serves another artifact (live on the platform: the model server loads it)",
                    params: &[needs("artifact", Artifact)],
                    per_request: true,
                    live: EVERYWHERE,
                };
                &D
            }
            Tag::RuntimeDrift => {
                const D: Definition = Definition {
                name: "runtime_drift",
                layer: Layer::Model,
                does: "the new stack scores through the gbdt crate without mapping missing values",
                params: &[],
                per_request: true,
                live: Live {
                    in_process: Support::Acts,
                    platform: Support::Refused(
                        "the platform's model server is the runtime: rehearse another runtime with a `model_artifact` it serves",
                    ),
                },
            };
                &D
            }
            Tag::DecommissionLegacy => {
                const D: Definition = Definition {
                name: "decommission_legacy",
                layer: Layer::Controller,
                does: "an attempt to retire legacy, refused until the plan allows it (live: `POST /admin/decommission`, which `loadtest` calls at the fault's start)",
                params: &[],
                per_request: false,
                live: Live {
                    in_process: Support::Refused("decommission is an admin call of its own: POST /admin/decommission"),
                    platform: Support::Refused("decommission is an admin call of its own: POST /admin/decommission"),
                },
            };
                &D
            }
            Tag::StackDown => {
                const D: Definition = Definition {
                name: "stack_down",
                layer: Layer::Stack,
                does: "the new stack is down: every call fails at once (live: its listener closes until the fault clears)",
                params: &[],
                per_request: true,
                live: EVERYWHERE,
            };
                &D
            }
        }
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
    /// parameter's value for this run (drawn in the definition's order), `feature` the
    /// model feature's index, `artifact` the artifact's file.
    fn build(
        self,
        number: &mut dyn FnMut(&str) -> f64,
        feature: &dyn Fn() -> Result<usize, (String, String)>,
        artifact: &dyn Fn() -> Result<PathBuf, (String, String)>,
    ) -> Result<Kind, (String, String)> {
        Ok(match self {
            Tag::FeatureSkew => {
                let feature = feature()?;
                Kind::FeatureSkew { feature, scale: number("scale"), offset: number("offset") }
            }
            Tag::MissingValuePolicy => Kind::MissingValuePolicy { feature: feature()?, fill: number("fill") },
            Tag::CategoricalEncoding => Kind::CategoricalEncoding { feature: feature()?, shift: number("shift") },
            Tag::StaleFeatures => Kind::StaleFeatures { stall_us: seconds_to_us(number("stall_s")) },
            Tag::Latency => Kind::Latency {
                add_ms: number("add_ms"),
                tail_ms: number("tail_ms"),
                tail_fraction: number("tail_fraction"),
            },
            Tag::Errors => Kind::Errors { rate: number("rate") },
            Tag::Timeouts => Kind::Timeouts { rate: number("rate") },
            Tag::ShadowContext => Kind::ShadowContext,
            Tag::ModelArtifact => Kind::ModelArtifact { artifact: artifact()? },
            Tag::RuntimeDrift => Kind::RuntimeDrift,
            Tag::DecommissionLegacy => Kind::DecommissionLegacy,
            Tag::StackDown => Kind::StackDown,
        })
    }
}

fn seconds_to_us(s: f64) -> u64 {
    (s * crate::core::SECOND as f64) as u64
}

/// What a fault does, with its parameters resolved for one run.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
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
    /// Category codes shifted on the new path (a reordered vocabulary).
    CategoricalEncoding {
        /// Model feature index.
        feature: usize,
        /// Shift.
        shift: f64,
    },
    /// The online store's materialization stalls.
    StaleFeatures {
        /// For how long.
        stall_us: u64,
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
    /// Shadow calls lack the production context (the migration's `[shadow] context`).
    ShadowContext,
    /// The new stack serves another artifact.
    ModelArtifact {
        /// Its file.
        artifact: PathBuf,
    },
    /// The new stack scores through the gbdt crate without the missing-value mapping.
    RuntimeDrift,
    /// An attempt to decommission legacy.
    DecommissionLegacy,
    /// The new stack is down (killed, or its host gone): every call fails at once.
    StackDown,
}

impl Kind {
    /// Which kind it is.
    pub fn tag(&self) -> Tag {
        match self {
            Kind::FeatureSkew { .. } => Tag::FeatureSkew,
            Kind::MissingValuePolicy { .. } => Tag::MissingValuePolicy,
            Kind::CategoricalEncoding { .. } => Tag::CategoricalEncoding,
            Kind::StaleFeatures { .. } => Tag::StaleFeatures,
            Kind::Latency { .. } => Tag::Latency,
            Kind::Errors { .. } => Tag::Errors,
            Kind::Timeouts { .. } => Tag::Timeouts,
            Kind::ShadowContext => Tag::ShadowContext,
            Kind::ModelArtifact { .. } => Tag::ModelArtifact,
            Kind::RuntimeDrift => Tag::RuntimeDrift,
            Kind::DecommissionLegacy => Tag::DecommissionLegacy,
            Kind::StackDown => Tag::StackDown,
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

    /// Changes a new-path model row as the fault does (the feature layer); whether it acts
    /// there.
    pub fn apply_to_row(&self, row: &mut [f32]) -> bool {
        match *self {
            Kind::FeatureSkew { feature, scale, offset } => {
                row[feature] = (f64::from(row[feature]) * scale + offset) as f32;
            }
            Kind::MissingValuePolicy { feature, fill } => {
                if row[feature].is_nan() {
                    row[feature] = fill as f32;
                }
            }
            Kind::CategoricalEncoding { feature, shift } => {
                if !row[feature].is_nan() {
                    row[feature] = (f64::from(row[feature]) + shift) as f32;
                }
            }
            _ => return false,
        }
        true
    }
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
            Kind::FeatureSkew { .. } | Kind::MissingValuePolicy { .. } | Kind::CategoricalEncoding { .. } => {
                self.feature_faults = true
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
    /// feature_skew, missing_value_policy, categorical_encoding: the model feature.
    #[serde(default)]
    pub feature: Option<String>,
    /// feature_skew: multiplier.
    #[serde(default)]
    pub scale: Option<Param>,
    /// feature_skew: added after scaling.
    #[serde(default)]
    pub offset: Option<Param>,
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
    pub fn given(&self) -> [(&'static str, Option<Given<'_>>); 11] {
        let n = |p: Option<Param>| p.map(Given::Number);
        [
            ("feature", self.feature.as_deref().map(Given::Text)),
            ("scale", n(self.scale)),
            ("offset", n(self.offset)),
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
    /// definition's order, the feature named by index into `features`, the artifact's file
    /// through `path` (which must exist). Checked first ([`FaultSpec::check`]).
    pub fn build(
        &self,
        features: &[String],
        params: &mut rand_chacha::ChaCha8Rng,
        path: &dyn Fn(&str) -> PathBuf,
    ) -> Result<Kind, (String, String)> {
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
        let feature = || {
            let name = self.feature.as_deref().unwrap_or_default();
            features.iter().position(|n| n == name).ok_or_else(|| {
                ("feature".to_string(), format!("`{name}` is not a model feature (features: {})", features.join(", ")))
            })
        };
        let artifact = || {
            let file = path(self.artifact.as_deref().unwrap_or_default());
            if file.exists() {
                Ok(file)
            } else {
                Err(("artifact".to_string(), format!("{}: no such file", file.display())))
            }
        };
        tag.build(&mut number, &feature, &artifact)
    }
}

fn check_value(p: &Parameter, value: Given<'_>) -> Result<(), String> {
    let range = |v: Param| (v.min(), v.max());
    match (p.accepts, value) {
        (Accepts::Feature | Accepts::Artifact, Given::Text(_)) => Ok(()),
        (Accepts::Feature | Accepts::Artifact, Given::Number(_)) => Err("must be text".into()),
        (_, Given::Text(_)) => Err("must be a number or a range \"lo..hi\"".into()),
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
        for tag in Tag::ALL {
            assert_eq!(Tag::from_name(tag.name()), Some(tag));
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

    #[test]
    fn every_kind_builds_from_its_definition() {
        use rand::SeedableRng;
        let features = vec!["a".to_string(), "b".to_string()];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let here = |_: &str| PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        for tag in Tag::ALL {
            let mut text = format!("kind = \"{}\"\nstart_s = 0\n", tag.name());
            for p in tag.def().params.iter().filter(|p| p.required) {
                let value = match p.accepts {
                    Accepts::Feature => "\"b\"",
                    Accepts::Artifact => "\"Cargo.toml\"",
                    _ => "0.5",
                };
                text.push_str(&format!("{} = {value}\n", p.name));
            }
            let spec: FaultSpec = toml::from_str(&text).unwrap();
            assert_eq!(spec.check(), Ok(tag), "{text}");
            let kind = spec.build(&features, &mut rng, &here).unwrap();
            assert_eq!(kind.tag(), tag);
        }
        // Defaults come from the definition.
        let spec: FaultSpec = toml::from_str("kind = \"latency\"\nstart_s = 0").unwrap();
        assert_eq!(
            spec.build(&features, &mut rng, &here).unwrap(),
            Kind::Latency { add_ms: 0.0, tail_ms: 0.0, tail_fraction: 0.01 }
        );
    }
}
