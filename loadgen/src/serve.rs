//! Starting the services: the legacy and new stacks (unless external URLs are given) and
//! the router, each on its own loopback port, with graceful shutdown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use cutover_migration::paths::SharedLog;
use cutover_migration::stack::ScoringStack;
use cutover_migration::stacks::{check_url, is_loopback, remote_refused};
use cutover_sim::core::trace::{parity_stats, Lineage};
use cutover_sim::scenario::{LoadedScenario, Policy};
use rand::RngExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clients::{GivenApi, StackClient};
use crate::faults::{Face, FaultBoard};
use crate::platform::{EntityKeys, PlatformService};
use crate::router::{self, RouterConfig, RouterState, Upstream};
use crate::serving::{self, Limits, Stopped};
use crate::stack::StackService;
use crate::upstream::AnswerLimits;

/// What to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The scenario whose stacks, plan and guardrails apply.
    pub scenario: LoadedScenario,
    /// The judge (the scenario's when none).
    pub policy: Option<Policy>,
    /// Address to bind (loopback unless asked otherwise).
    pub bind: IpAddr,
    /// Router port (0: any free one).
    pub router_port: u16,
    /// Legacy stack port (0: any).
    pub legacy_port: u16,
    /// New stack port (0: any).
    pub new_port: u16,
    /// The admin token (generated when none).
    pub token: Option<String>,
    /// An external legacy stack instead of the in-process one.
    pub legacy_url: Option<String>,
    /// An external new stack instead of the in-process one.
    pub new_url: Option<String>,
    /// External answers' score field (a key, or a JSON pointer such as `/result/score`).
    pub score_field: String,
    /// External answers' decision field (a key or a JSON pointer).
    pub decision_field: String,
    /// Ask external stacks for their model rows (`x-cutover-features: 1`), for feature parity.
    pub ask_features: bool,
    /// Scenario seconds per wall second.
    pub time_scale: f64,
    /// Hold the rollout until `POST /admin/start`.
    pub hold: bool,
    /// The router's connection cap, header deadline and drain deadline.
    pub router_limits: Limits,
    /// The in-process stacks' (their clients are the router and a load test).
    pub stack_limits: Limits,
    /// What a stack's answer may be (size, time), for the router's calls and the platform's.
    pub answer_limits: AnswerLimits,
    /// Call services beyond this machine (loopback only otherwise).
    pub allow_remote: bool,
    /// Keep the rollout in this folder and resume from it (see [`crate::state`]).
    pub state: Option<std::path::PathBuf>,
}

impl ServeConfig {
    /// Defaults for a scenario: loopback, any ports, cutover's own stacks, real time.
    pub fn new(scenario: LoadedScenario) -> ServeConfig {
        ServeConfig {
            scenario,
            policy: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            router_port: 0,
            legacy_port: 0,
            new_port: 0,
            token: None,
            legacy_url: None,
            new_url: None,
            score_field: "score".into(),
            decision_field: "decision".into(),
            ask_features: false,
            time_scale: 1.0,
            hold: false,
            router_limits: Limits::default(),
            stack_limits: Limits { max_connections: 4096, ..Limits::default() },
            answer_limits: AnswerLimits::default(),
            allow_remote: false,
            state: None,
        }
    }
}

impl ServeConfig {
    /// How the router reaches each stack (legacy first), from the folder's declaration and
    /// the URLs and answer fields given.
    pub fn clients(&self) -> anyhow::Result<[StackClient; 2]> {
        let api = GivenApi {
            score_field: self.score_field.clone(),
            decision_field: self.decision_field.clone(),
            ask_features: self.ask_features,
        };
        let m = &self.scenario.migration;
        let one = |name, url: &Option<String>| {
            StackClient::resolve(name, m, url.as_deref(), &api).map_err(|e| anyhow::anyhow!(e))
        };
        Ok([one("legacy", &self.legacy_url)?, one("new", &self.new_url)?])
    }
}

/// The running services.
pub struct Running {
    /// The router's address.
    pub router: SocketAddr,
    /// How the router reaches each stack, legacy first.
    pub clients: [StackClient; 2],
    /// The in-process legacy stack's address.
    pub legacy: Option<SocketAddr>,
    /// The in-process new stack's address.
    pub new: Option<SocketAddr>,
    /// The admin token.
    pub token: String,
    /// The router's state (rollout view, history).
    pub state: Arc<RouterState>,
    /// The composed platform, when the new stack is one (its stages' latency, its counts).
    pub platform: Option<Arc<PlatformService>>,
    jobs: Vec<JoinHandle<()>>,
    router_stop: watch::Sender<bool>,
    stacks_stop: watch::Sender<bool>,
    router_task: JoinHandle<Stopped>,
    controller: JoinHandle<()>,
    stacks: Vec<JoinHandle<Stopped>>,
    drain: std::time::Duration,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shutdown {
    /// The router's drain: connections cut at its deadline, and how long it took.
    pub router: Stopped,
    /// Comparisons still running when the drain deadline passed (their stacks stopped anyway).
    pub comparisons_cut: usize,
}

impl Running {
    /// The router's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.router)
    }

    /// Stops in order, so that no request in flight loses a stack it is waiting on: the
    /// router stops accepting and finishes its requests in flight (against stacks still
    /// up), then the shadow comparisons still running finish, then the controller and
    /// the stacks stop. Each wait is bounded by the router's drain deadline.
    pub async fn shutdown(self) -> Shutdown {
        let _ = self.router_stop.send(true);
        let router = self.router_task.await.unwrap_or_default();
        let comparisons_cut = self.state.wait_for_background(self.drain).await;
        self.state.stop();
        let _ = self.controller.await;
        self.state.close_state();
        let _ = self.stacks_stop.send(true);
        for t in self.stacks {
            let _ = t.await;
        }
        for j in self.jobs {
            let _ = j.await;
        }
        Shutdown { router, comparisons_cut }
    }
}

/// A fresh admin token: 32 hex digits from the operating system's entropy.
pub fn new_token() -> String {
    let mut rng = rand::rng();
    (0..16).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
}

async fn listen(bind: IpAddr, port: u16) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {bind}:{port}: {e}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

fn spawn(listener: TcpListener, app: axum::Router, limits: Limits, stop: watch::Receiver<bool>) -> JoinHandle<Stopped> {
    tokio::spawn(serving::serve(listener, app, limits, stopped(stop)))
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves the new stack, taking it down while a `stack_down` fault is active (its
/// listener closes, idle connections close, requests in flight finish: callers get
/// connection refused) and back up on the same address when the fault is cleared.
async fn supervise(
    mut listener: TcpListener,
    addr: SocketAddr,
    app: axum::Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    down: watch::Receiver<bool>,
) -> Stopped {
    loop {
        let (mut st, mut dn) = (stop.clone(), down.clone());
        let signal = async move {
            tokio::select! {
                _ = st.wait_for(|s| *s) => {}
                _ = dn.wait_for(|d| *d) => {}
            }
        };
        let stopped = serving::serve(listener, app.clone(), limits, signal).await;
        let (mut st, mut dn) = (stop.clone(), down.clone());
        tokio::select! {
            _ = st.wait_for(|s| *s) => return stopped,
            _ = dn.wait_for(|d| !*d) => {}
        }
        listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) if !*stop.borrow() => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                Err(_) => return stopped,
            }
        };
    }
}

/// Refuses every service beyond this machine unless remote ones are allowed: the URLs
/// given as flags and those the migration declares (but one a flag replaces). Decided from
/// the URLs' text before anything is started or any connection is made; a message quotes
/// a URL as written, never what its variables held.
pub fn check_reach(cfg: &ServeConfig) -> anyhow::Result<()> {
    if cfg.allow_remote {
        return Ok(());
    }
    for (flag, url) in [("--legacy-url", &cfg.legacy_url), ("--new-url", &cfg.new_url)] {
        if let Some(written) = url {
            let url = check_url(written).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
            if !is_loopback(&url) {
                anyhow::bail!("{flag}: {}", remote_refused(written));
            }
        }
    }
    let m = &cfg.scenario.migration;
    for site in m.stacks().urls.iter().filter(|u| !u.loopback) {
        let replaced = (site.field.starts_with("stacks.legacy.") && cfg.legacy_url.is_some())
            || (site.field.starts_with("stacks.new.") && cfg.new_url.is_some());
        if !replaced {
            anyhow::bail!(
                "{}:{}:{}: field `{}`: {}",
                m.file.display(),
                site.line,
                site.column,
                site.field,
                remote_refused(&site.written)
            );
        }
    }
    Ok(())
}

/// What starting the stacks shares: the configuration, the folder, both stacks as the
/// registry pins them, the event log and the entities legacy served, and what was spawned.
struct Launch<'a> {
    cfg: &'a ServeConfig,
    m: &'a cutover_migration::Migration,
    legacy: &'a ScoringStack,
    new: &'a ScoringStack,
    segments: cutover_migration::segments::Segments,
    log: SharedLog,
    keys: Arc<EntityKeys>,
    /// How the router reaches each stack, legacy first.
    clients: [StackClient; 2],
    stop: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<Stopped>>,
    jobs: Vec<JoinHandle<()>>,
}

/// The new stack as started: how the router calls it, its address when it is cutover's,
/// its fault board and, for the composed platform, the platform's service.
struct NewStack {
    up: Upstream,
    addr: Option<SocketAddr>,
    board: Arc<FaultBoard>,
    platform: Option<Arc<PlatformService>>,
}

impl Launch<'_> {
    /// cutover's own stack `name` serving `stack`, with the fault board of a new one.
    fn own(&self, name: &'static str, stack: &ScoringStack, board: Option<Arc<FaultBoard>>) -> Arc<StackService> {
        let m = self.m;
        let svc = StackService::new(
            name,
            stack,
            m.schema().clone(),
            m.answer().clone(),
            m.schedule(),
            board,
            self.cfg.scenario.scenario.seed,
            self.log.clone(),
        );
        // The platform's materialization job writes the entities legacy served.
        let platform = matches!(self.clients[1], StackClient::Platform(_));
        Arc::new(if name == "legacy" && platform { svc.with_keys(self.keys.clone()) } else { svc })
    }

    /// The legacy stack, as its client says: how the router calls it, and its address when
    /// it is cutover's own.
    async fn start_legacy(&mut self) -> anyhow::Result<(Upstream, Option<SocketAddr>)> {
        let cfg = self.cfg;
        Ok(match &self.clients[0] {
            StackClient::Service(up) => (up.clone(), None),
            StackClient::InProcess => {
                let svc = self.own("legacy", self.legacy, None);
                self.jobs.push(svc.spawn_store_job(self.stop.clone()));
                let (listener, addr) = listen(cfg.bind, cfg.legacy_port).await?;
                self.tasks.push(spawn(listener, svc.router(), cfg.stack_limits, self.stop.clone()));
                (Upstream::own("legacy", format!("http://{addr}")), Some(addr))
            }
            StackClient::Platform(_) => unreachable!("StackClient::resolve refuses a legacy platform"),
        })
    }

    /// The new stack's fault board, for the face it is.
    fn board(&self, face: Face) -> Arc<FaultBoard> {
        Arc::new(FaultBoard::new(face, self.cfg.scenario.scenario.seed, self.m, self.segments.clone(), self.new))
    }

    /// The new stack, as its client says, with its fault board: a team's own service (or a
    /// stack in another process), whose faults the router acts out from outside; the
    /// composed platform; or cutover's own.
    async fn start_new(&mut self, legacy_addr: Option<SocketAddr>) -> anyhow::Result<NewStack> {
        let cfg = self.cfg;
        let board = self.board(self.clients[1].face());
        let (up, addr, platform) = match self.clients[1].clone() {
            StackClient::Service(up) => (up, None, None),
            StackClient::Platform(p) => {
                let (up, addr, svc) = self.start_platform(&p, legacy_addr, board.clone()).await?;
                (up, Some(addr), Some(svc))
            }
            StackClient::InProcess => {
                let down = board.down();
                let svc = self.own("new", self.new, Some(board.clone()));
                self.jobs.push(svc.spawn_store_job(self.stop.clone()));
                let (listener, addr) = listen(cfg.bind, cfg.new_port).await?;
                let stop = self.stop.clone();
                self.tasks.push(tokio::spawn(supervise(listener, addr, svc.router(), cfg.stack_limits, stop, down)));
                (Upstream::own("new", format!("http://{addr}")), Some(addr), None)
            }
        };
        Ok(NewStack { up, addr, board, platform })
    }

    /// The composed platform as the new stack: its adapter, materialization job and model
    /// faults.
    async fn start_platform(
        &mut self,
        p: &cutover_migration::stacks::PlatformStack,
        legacy_addr: Option<SocketAddr>,
        b: Arc<FaultBoard>,
    ) -> anyhow::Result<(Upstream, SocketAddr, Arc<PlatformService>)> {
        let (cfg, m) = (self.cfg, self.m);
        if p.feature_server.push_source.is_some() && legacy_addr.is_none() {
            anyhow::bail!(
                "{}: field `stacks.new.feature_server.push_source`: cutover's materialization job folds the \
                 event log its in-process legacy stack writes; with an external legacy stack, leave it out",
                m.file.display()
            );
        }
        let down = b.down();
        let seed = cfg.scenario.scenario.seed;
        let svc = PlatformService::new(
            p.clone(),
            m.schema().clone(),
            m.answer().clone(),
            self.new.pipeline().clone(),
            b.clone(),
            seed,
            self.keys.clone(),
        )
        .map_err(|e| anyhow::anyhow!("{}: field `stacks.new.feature_server`: {e}", m.file.display()))?;
        let svc = Arc::new(svc.with_limits(cfg.answer_limits));
        if let Some(job) = svc.spawn_materializer(self.log.clone(), m.schedule(), self.stop.clone()) {
            self.jobs.push(job);
        }
        self.jobs.push(svc.spawn_model_faults(self.stop.clone()));
        let (listener, addr) = listen(cfg.bind, cfg.new_port).await?;
        let stop = self.stop.clone();
        let app = svc.clone().router();
        self.tasks.push(tokio::spawn(supervise(listener, addr, app, cfg.stack_limits, stop, down)));
        let up =
            Upstream { model_version: Some("/model_version".into()), ..Upstream::own("new", format!("http://{addr}")) };
        Ok((up, addr, svc))
    }
}

/// Starts the services.
pub async fn start(cfg: ServeConfig) -> anyhow::Result<Running> {
    check_reach(&cfg)?;
    let policy = cfg.policy.unwrap_or(cfg.scenario.scenario.controller.policy);
    // The recorder goes in before the first request so no count is lost.
    crate::http::register_counters(&["legacy", "new"]);
    let s = &cfg.scenario.scenario;
    let m = cfg.scenario.migration.clone();
    let file = cfg.scenario.path.display().to_string();
    let (legacy, new) = m.start_stacks().map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let segments = m.segments().map_err(|e| anyhow::anyhow!("{e}"))?.clone();
    let features = legacy.pipeline().output_names().to_vec();
    let kinds = legacy.pipeline().output_kinds();
    let plan_sha256 = crate::state::plan_sha256(&cfg.scenario, policy.name(), &features);
    let state = match &cfg.state {
        Some(dir) => Some(crate::state::StateDir::open(dir, &plan_sha256).map_err(|e| anyhow::anyhow!(e))?),
        None => None,
    };
    let clients = cfg.clients()?;
    let (stacks_stop, stop) = watch::channel(false);
    let mut launch = Launch {
        cfg: &cfg,
        m: &m,
        legacy: &legacy,
        new: &new,
        segments: segments.clone(),
        log: cutover_migration::paths::shared_log(&[legacy.pipeline(), new.pipeline()]),
        keys: Arc::new(EntityKeys::default()),
        clients: clients.clone(),
        stop,
        tasks: Vec::new(),
        jobs: Vec::new(),
    };
    let (legacy_up, legacy_addr) = launch.start_legacy().await?;
    let NewStack { up: new_up, addr: new_addr, board, platform } = launch.start_new(legacy_addr).await?;
    let (tasks, jobs) = (launch.tasks, launch.jobs);
    let token = cfg.token.clone().unwrap_or_else(new_token);
    // Lineage comes only from cutover's own stacks; feature rows from stacks that return them.
    let own_stacks = clients.iter().all(|c| matches!(c, StackClient::InProcess));
    let lineage = own_stacks.then(|| Lineage::of(&legacy, &new, Vec::new()));
    let rows = legacy_up.features.is_some() && new_up.features.is_some();
    let parity = if rows {
        let reference = m.source(s.seed, s.traffic.rate_rps).map_err(|e| anyhow::anyhow!("{e}"))?.reference(1000);
        Some(parity_stats(legacy.pipeline(), &reference, segments.names().to_vec()))
    } else {
        None
    };
    let state = RouterState::new(RouterConfig {
        legacy: legacy_up,
        new: new_up,
        scenario: cfg.scenario.clone(),
        policy,
        time_scale: cfg.time_scale,
        token: token.clone(),
        features,
        kinds,
        faults: Some(board),
        hold: cfg.hold,
        lineage,
        parity,
        limits: cfg.answer_limits,
        state,
        plan_sha256,
    })
    .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let (listener, router_addr) = listen(cfg.bind, cfg.router_port).await?;
    let controller = state.spawn_controller();
    let (router_stop, router_stopped) = watch::channel(false);
    let router_task =
        spawn(listener, router::routes(state.clone(), crate::dashboard::routes()), cfg.router_limits, router_stopped);
    Ok(Running {
        router: router_addr,
        clients,
        legacy: legacy_addr,
        new: new_addr,
        token,
        state,
        platform,
        jobs,
        router_stop,
        stacks_stop,
        router_task,
        controller,
        stacks: tasks,
        drain: cfg.router_limits.drain,
    })
}
