//! A rollout that survives its router (`serve --state DIR`). The folder holds the
//! history, every event appended as it happens (`history.jsonl`), and a checkpoint of the
//! rollout (`rollout.json`: the controller's place in the plan, the judge's evidence, the
//! windows, the counts; see `cutover_sim::core::checkpoint`). A decision that moves the
//! ramp is on disk, synced, before it takes effect; the evidence between decisions is
//! checkpointed at most once a second. A router started on the folder again resumes at
//! the last decided stage with the judge's evidence (or in shadow, where the plan says
//! so), its clock going on from the last event written: the time it was down counts for
//! no stage. One router at a time: the folder is locked while one runs on it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cutover_sim::core::checkpoint::RolloutState;
use cutover_sim::core::controller::Phase;
use cutover_sim::core::history::History;
use cutover_sim::core::rollout::Counts;
use cutover_sim::scenario::LoadedScenario;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The checkpoint's format; another is refused.
pub const FORMAT: u32 = 1;

/// How often the evidence between decisions is checkpointed, at most.
pub const EVIDENCE_EVERY: Duration = Duration::from_millis(200);

/// A checkpoint as of a moment, made into [`Checkpoint`] (the judge's state serialized)
/// by the folder's writer, off the request path.
pub type Pending = Box<dyn FnOnce() -> Checkpoint + Send>;

struct Job {
    pending: Pending,
    /// For a decision: sync the history first, and say when both are on disk.
    done: Option<std::sync::mpsc::SyncSender<std::io::Result<()>>>,
}

/// A decision's write under way: [`Written::wait`] returns once it is on disk.
pub struct Written(std::sync::mpsc::Receiver<std::io::Result<()>>);

impl Written {
    /// Waits for the write (off the async workers' schedule where the runtime allows).
    pub fn wait(self) -> std::io::Result<()> {
        let gone = || Err(std::io::Error::other("the state folder's writer stopped"));
        let recv = || self.0.recv().unwrap_or_else(|_| gone());
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(recv)
            }
            _ => recv(),
        }
    }

    /// A write that failed before it began.
    fn failed(e: std::io::Error) -> Written {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let _ = tx.send(Err(e));
        Written(rx)
    }
}

/// What `rollout.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The file's format.
    pub format: u32,
    /// The scenario's name.
    pub scenario: String,
    /// The judge's name.
    pub policy: String,
    /// A hash of what the plan is (stages, bake, guardrails and their limits, judge).
    pub plan_sha256: String,
    /// Whether the rollout had started.
    pub started: bool,
    /// Scenario time of the checkpoint, µs.
    pub t_us: u64,
    /// Requests answered, failed, bad decisions served.
    pub counts: [u64; 3],
    /// When the first fault began, µs.
    pub fault_start_us: Option<u64>,
    /// The rollout.
    pub rollout: RolloutState,
}

impl Checkpoint {
    /// The counts as the rollout keeps them.
    pub fn counts(&self) -> Counts {
        Counts { requests_total: self.counts[0], requests_failed: self.counts[1], bad_decisions: self.counts[2] }
    }
}

/// What a plan is, as a hash: a state written under another plan is not taken up. It
/// covers the rollout's stages and times, the controller's settings (the judge and every
/// parameter of it), the guardrails and their limits, and what the judge's evidence is
/// about: the model's features, the migration's segments and the registry entries both
/// stacks serve (their artifacts' hashes).
pub fn plan_sha256(loaded: &LoadedScenario, policy: &str, features: &[String]) -> String {
    let (s, m) = (&loaded.scenario, &loaded.migration);
    let segments = m.segments().map(|g| g.names().to_vec()).unwrap_or_default();
    let registry = m.registry();
    let (legacy, new) = m.entries();
    let artifact = |id: &str| registry.get(id).map(|e| e.sha256).unwrap_or_default();
    let text = serde_json::json!({
        "scenario": s.name,
        "policy": policy,
        "rollout": s.rollout,
        "controller": s.controller,
        "guardrails": s.guardrails,
        "features": features,
        "segments": segments,
        "entries": [[legacy, artifact(legacy)], [new, artifact(new)]],
    })
    .to_string();
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The state folder of a running router.
pub struct StateDir {
    dir: PathBuf,
    history: std::fs::File,
    /// Events of the history written so far (by [`History::pushed`]).
    written: u64,
    last_checkpoint: Option<Instant>,
    /// The checkpoints' writer, in order, on a thread of its own.
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Held while the router runs: another router on the folder is refused.
    _lock: std::fs::File,
}

impl Drop for StateDir {
    fn drop(&mut self) {
        // What is queued is written before the folder is let go.
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// What a folder held when a router opened it.
pub struct Resume {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The scenario time of the last event written, µs (the clock goes on from the later
    /// of the two).
    pub last_event_us: u64,
    /// The last stage the history entered after the checkpoint, if any (a decision written
    /// and synced, its checkpoint not yet in place when the router stopped): its time, µs,
    /// and phase. The rollout takes it up, so no decision written is lost or repeated.
    pub later_stage: Option<(u64, Phase)>,
    /// Events the history file holds (the history goes on counting from there).
    pub history_lines: u64,
}

impl StateDir {
    /// Opens (creating) the state folder for a router running `plan`; what a previous
    /// router left there, if anything. Refused: a folder another router holds, a
    /// checkpoint of another plan or format, one that does not parse.
    pub fn open(dir: &Path, plan: &str) -> Result<(StateDir, Option<Resume>), String> {
        let at = |e: std::io::Error| format!("{}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(at)?;
        let lock =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock")).map_err(at)?;
        lock.try_lock().map_err(|_| {
            format!("{}: another router holds this state folder (one router per rollout)", dir.display())
        })?;
        let path = dir.join("rollout.json");
        let resume = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
            Ok(text) => {
                let checkpoint: Checkpoint = serde_json::from_str(&text).map_err(|e| {
                    format!("{}:{}:{}: not a rollout checkpoint: {e}", path.display(), e.line(), e.column())
                })?;
                if checkpoint.format != FORMAT {
                    return Err(format!(
                        "{}: field `format`: {} is not this version's ({FORMAT})",
                        path.display(),
                        checkpoint.format
                    ));
                }
                if checkpoint.plan_sha256 != plan {
                    return Err(format!(
                        "{}: field `plan_sha256`: the state was written by a rollout of another plan (scenario `{}`, \
                         judge {}); give this one a folder of its own",
                        path.display(),
                        cutover_models::shown(&checkpoint.scenario),
                        checkpoint.policy
                    ));
                }
                let file = dir.join("history.jsonl");
                let last_event_us = last_event_us(&file).map_err(at)?;
                let (history_lines, later_stage) = stage_after(&file, checkpoint.rollout.history_pushed).map_err(at)?;
                Some(Resume { checkpoint, last_event_us, later_stage, history_lines })
            }
        };
        let history = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("history.jsonl"))
            .map_err(|e| format!("{}: {e}", dir.join("history.jsonl").display()))?;
        let written = resume.as_ref().map_or(0, |r| r.history_lines);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let folder = dir.to_path_buf();
        let synced = history.try_clone().map_err(|e| format!("{}: {e}", dir.join("history.jsonl").display()))?;
        let writer = std::thread::Builder::new()
            .name("cutover-state".into())
            .spawn(move || {
                for job in queue {
                    let mut written = Ok(());
                    if job.done.is_some() {
                        written = synced.sync_data();
                    }
                    let written = written.and_then(|()| write_checkpoint(&folder, &(job.pending)()));
                    if let Some(done) = job.done {
                        let _ = done.send(written);
                    } else if let Err(e) = written {
                        metrics::counter!("cutover_state_write_failures_total").increment(1);
                        eprintln!("cutover: {}: the rollout's checkpoint could not be written: {e}", folder.display());
                    }
                }
            })
            .map_err(|e| format!("{}: cannot start its writer: {e}", dir.display()))?;
        let state = StateDir {
            dir: dir.to_path_buf(),
            history,
            written,
            last_checkpoint: None,
            jobs: Some(jobs),
            writer: Some(writer),
            _lock: lock,
        };
        Ok((state, resume))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends the events `history` holds that are not written yet (synced with the next
    /// decision's checkpoint).
    pub fn append(&mut self, history: &History) -> std::io::Result<()> {
        let new = history.pushed().saturating_sub(self.written);
        if new > 0 {
            let mut lines = Vec::new();
            for e in history.last(new) {
                serde_json::to_writer(&mut lines, e).map_err(std::io::Error::other)?;
                lines.push(b'\n');
            }
            self.history.write_all(&lines)?;
            self.written = history.pushed();
        }
        Ok(())
    }

    /// Whether the evidence is due for a checkpoint (at most every [`EVIDENCE_EVERY`]).
    pub fn due(&self) -> bool {
        self.last_checkpoint.is_none_or(|t| t.elapsed() >= EVIDENCE_EVERY)
    }

    /// Queues the evidence's checkpoint for the writer, which writes them in order.
    pub fn checkpoint(&mut self, pending: Pending) -> std::io::Result<()> {
        self.last_checkpoint = Some(Instant::now());
        let jobs = self.jobs.as_ref().ok_or_else(|| std::io::Error::other("the state folder's writer stopped"))?;
        jobs.send(Job { pending, done: None }).map_err(|_| std::io::Error::other("the state folder's writer stopped"))
    }

    /// Appends what the history gained and queues a decision's checkpoint: the writer syncs
    /// the history, then writes the checkpoint and syncs it; the decision may take effect
    /// once [`Written::wait`] returns Ok. Nothing here waits for the disk.
    pub fn decision(&mut self, history: &History, pending: Pending) -> Written {
        if let Err(e) = self.append(history) {
            return Written::failed(e);
        }
        self.last_checkpoint = Some(Instant::now());
        let Some(jobs) = self.jobs.as_ref() else {
            return Written::failed(std::io::Error::other("the state folder's writer stopped"));
        };
        let (done, written) = std::sync::mpsc::sync_channel(1);
        match jobs.send(Job { pending, done: Some(done) }) {
            Ok(()) => Written(written),
            Err(_) => Written::failed(std::io::Error::other("the state folder's writer stopped")),
        }
    }
}

/// Writes a checkpoint in place of the last, atomically and synced: written to a file
/// beside it, synced, renamed over it, the folder synced.
fn write_checkpoint(dir: &Path, c: &Checkpoint) -> std::io::Result<()> {
    let path = dir.join("rollout.json");
    let partial = dir.join("rollout.json.partial");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    serde_json::to_writer(&mut f, c).map_err(std::io::Error::other)?;
    f.write_all(b"\n")?;
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&partial, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The last stage event among the history's events after the first `kept` (those the
/// checkpoint holds): (time µs, phase).
/// Also how many events the file holds.
fn stage_after(path: &Path, kept: u64) -> std::io::Result<(u64, Option<(u64, Phase)>)> {
    use std::io::BufRead;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, None)),
        Err(e) => return Err(e),
    };
    let (mut last, mut lines) = (None, 0u64);
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        lines += 1;
        if lines <= kept {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if v["event"] == "stage" {
            let phase: Option<Phase> = serde_json::from_value(v["phase"].clone()).ok();
            let t = v["t_s"].as_f64().map(|t| (t * 1e6).round() as u64);
            if let (Some(phase), Some(t)) = (phase, t) {
                last = Some((t, phase));
            }
        }
    }
    Ok((lines, last))
}

/// The scenario time of the last event in a history file, µs (0 without one). A line a
/// crash cut short is dropped from the file, so the next event starts a line of its own.
fn last_event_us(path: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    // The last events are in the file's tail: read back from the end until a whole line is
    // in it (an evaluation is a few KiB; a very wide model's, more).
    let mut span = 256 * 1024u64;
    let (from, tail) = loop {
        let from = len.saturating_sub(span);
        f.seek(SeekFrom::Start(from))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail)?;
        if from == 0 || tail.iter().filter(|&&b| b == b'\n').count() >= 2 {
            break (from, tail);
        }
        span *= 4;
    };
    let whole = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < tail.len() && (whole > 0 || from == 0) {
        f.set_len(from + whole as u64)?;
        f.sync_all()?;
    }
    let text = String::from_utf8_lossy(&tail[..whole]);
    let last = text.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    Ok(last.and_then(|v| v.get("t_s").and_then(serde_json::Value::as_f64)).map_or(0, |t| (t * 1e6).round() as u64))
}
