//! How the router reaches each stack, decided once from what the migration folder declares
//! (`[stacks.legacy]`, `[stacks.new]`) and what the command line gives (`--legacy-url`,
//! `--new-url` and the answer's fields): cutover's own in-process stack, a service over
//! HTTP with its own API (a team's service, or any URL given), or the composed platform
//! behind cutover's adapter. `serve`, the load tests and both replays start and read stacks
//! through this one value; nothing else matches on the declaration.

use cutover_migration::stacks::{check_url, HttpStack, PlatformStack, StackDecl};
use cutover_migration::Migration;
use cutover_sim::core::pairing::AnswerFields;

use crate::faults::Face;
use crate::router::Upstream;

/// How a URL given on the command line answers, when the folder does not declare the
/// service's API: cutover's own (`/v1/score`) with its answer at these fields.
#[derive(Debug, Clone)]
pub struct GivenApi {
    /// The answer's score field (a key, or a JSON pointer such as `/result/score`).
    pub score_field: String,
    /// The answer's decision field (a key or a JSON pointer).
    pub decision_field: String,
    /// Ask for the model row (`x-cutover-features: 1`), for feature parity.
    pub ask_features: bool,
}

/// One stack as the router reaches it.
#[derive(Debug, Clone)]
pub enum StackClient {
    /// cutover's own stack serving the registry entry, started in this process.
    InProcess,
    /// A service called over HTTP with its API mapping: a team's declared service (its URL
    /// replaced by one given), or a URL given for a service speaking cutover's API.
    Service(Upstream),
    /// The composed feature server and model server, behind cutover's adapter started in
    /// this process.
    Platform(PlatformStack),
}

impl StackClient {
    /// The client for stack `name` (`legacy` or `new`) as `m` declares it, or at `given` when the
    /// command line names a URL (a base URL: scheme, host and port). A legacy stack cannot
    /// be a platform. Whether a URL may leave this machine is decided before, for every
    /// URL at once (`serve::check_reach`).
    pub fn resolve(
        name: &'static str,
        m: &Migration,
        given: Option<&str>,
        api: &GivenApi,
    ) -> Result<StackClient, String> {
        let decl = if name == "legacy" { &m.stacks().legacy } else { &m.stacks().new };
        if let Some(url) = given {
            let url = check_url(url).map_err(|e| format!("--{name}-url: {e}"))?;
            return Ok(StackClient::Service(match decl {
                StackDecl::Http(h) => Upstream::declared(name, &HttpStack { url, ..h.clone() }),
                _ => Upstream {
                    fields: AnswerFields {
                        score: pointer(&api.score_field),
                        decision: Some(pointer(&api.decision_field)),
                        probabilities: Some("/probabilities".into()),
                    },
                    features: api.ask_features.then(|| "/features".into()),
                    ask_features: api.ask_features,
                    ..Upstream::own(name, url)
                },
            }));
        }
        Ok(match decl {
            StackDecl::InProcess => StackClient::InProcess,
            StackDecl::Http(h) => StackClient::Service(Upstream::declared(name, h)),
            StackDecl::Platform(_) if name == "legacy" => {
                return Err(format!(
                    "{}: field `stacks.legacy.kind`: the legacy stack cannot be a platform",
                    m.file.display()
                ))
            }
            StackDecl::Platform(p) => StackClient::Platform(p.clone()),
        })
    }

    /// The face a new stack's faults are acted on: inside cutover's stack, inside the
    /// platform's adapter, or from the router in front of a service.
    pub fn face(&self) -> Face {
        match self {
            StackClient::InProcess => Face::InProcess,
            StackClient::Service(_) => Face::Service,
            StackClient::Platform(_) => Face::Platform,
        }
    }

    /// Whether cutover starts this stack (and so knows its registry entry and lineage).
    pub fn started_here(&self) -> bool {
        !matches!(self, StackClient::Service(_))
    }

    /// Where this stack's answers hold the score, decision and class probabilities: what a
    /// user of the router reads while this stack serves.
    pub fn answer_fields(&self) -> AnswerFields {
        match self {
            StackClient::Service(up) => up.fields.clone(),
            // cutover's own stacks and its platform adapter answer on cutover's API.
            StackClient::InProcess | StackClient::Platform(_) => AnswerFields::default(),
        }
    }
}

/// A field name as a JSON pointer: `score` is `/score`; a pointer stays as it is.
fn pointer(field: &str) -> String {
    cutover_migration::stacks::pointer(field).unwrap_or_else(|_| field.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> GivenApi {
        GivenApi { score_field: "/result/p".into(), decision_field: "label".into(), ask_features: false }
    }

    fn domain() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/fraud")
    }

    /// A bundled fraud folder's file, with `edit` applied to its text.
    fn fraud(file: &str, edit: impl Fn(String) -> String) -> Migration {
        let text = edit(std::fs::read_to_string(domain().join(file)).unwrap());
        Migration::parse(&text, file, &domain()).unwrap()
    }

    /// The fraud migration with its legacy stack declared as a team's service.
    fn with_http_legacy() -> Migration {
        fraud("migration.toml", |t| {
            t + "\n[stacks.legacy]\nkind = \"http\"\nurl = \"http://127.0.0.1:9000\"\npath = \"/predict\"\nscore = \"/out/score\"\n"
        })
    }

    #[test]
    fn a_declared_service_keeps_its_api_when_its_url_is_given() {
        let m = with_http_legacy();
        let c = StackClient::resolve("legacy", &m, Some("http://127.0.0.1:9100"), &api()).unwrap();
        let StackClient::Service(up) = &c else { panic!("{c:?}") };
        assert_eq!((up.url.as_str(), up.path.as_str()), ("http://127.0.0.1:9100", "/predict"));
        assert_eq!(c.answer_fields().score, "/out/score");
        assert_eq!(c.face(), Face::Service);
        assert!(!c.started_here());
        let declared = StackClient::resolve("legacy", &m, None, &api()).unwrap();
        let StackClient::Service(up) = &declared else { panic!("{declared:?}") };
        assert_eq!(up.url, "http://127.0.0.1:9000");
    }

    #[test]
    fn a_given_url_for_an_own_stack_speaks_cutovers_api_with_the_given_fields() {
        let m = fraud("migration.toml", |t| t);
        let c = StackClient::resolve("new", &m, Some("http://127.0.0.1:9200"), &api()).unwrap();
        let StackClient::Service(up) = &c else { panic!("{c:?}") };
        assert_eq!(up.path, "/v1/score");
        assert_eq!(c.answer_fields().score, "/result/p");
        assert_eq!(c.answer_fields().decision.as_deref(), Some("/label"));
        assert!(!up.ask_features && up.features.is_none());
        let own = StackClient::resolve("new", &m, None, &api()).unwrap();
        assert!(matches!(own, StackClient::InProcess) && own.started_here());
        assert_eq!((own.face(), own.answer_fields().score.as_str()), (Face::InProcess, "/score"));
    }

    #[test]
    fn the_platform_is_the_new_stacks_alone() {
        let m = fraud("platform.toml", |t| t);
        let platform = StackClient::resolve("new", &m, None, &api()).unwrap();
        assert!(matches!(platform, StackClient::Platform(_)) && platform.started_here());
        assert_eq!(platform.face(), Face::Platform);
        let wrong = fraud("platform.toml", |t| t.replace("[stacks.new", "[stacks.legacy"));
        let e = StackClient::resolve("legacy", &wrong, None, &api()).unwrap_err();
        assert!(e.ends_with("field `stacks.legacy.kind`: the legacy stack cannot be a platform"), "{e}");
    }

    #[test]
    fn a_malformed_url_is_refused_in_one_line_naming_its_flag() {
        let m = fraud("migration.toml", |t| t);
        let e = StackClient::resolve("new", &m, Some("ftp://127.0.0.1:80"), &api()).unwrap_err();
        assert!(e.starts_with("--new-url: ") && !e.contains('\n'), "{e}");
    }
}
