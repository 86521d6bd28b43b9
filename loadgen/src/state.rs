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
use cutover_sim::core::history::History;
use cutover_sim::core::rollout::Counts;
use cutover_sim::scenario::Scenario;
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
    done: Option<std::sync::mpsc::SyncSender<std::io::Result<()>>>,
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

/// What a plan is, as a hash: a state written under another plan is not taken up.
pub fn plan_sha256(s: &Scenario, policy: &str) -> String {
    let r = &s.rollout;
    let text = serde_json::json!({
        "scenario": s.name,
        "policy": policy,
        "stages_pct": r.stages_pct,
        "shadow_s": r.shadow_s,
        "bake_s": r.bake_s,
        "keep_legacy_warm_s": r.keep_legacy_warm_s,
        "min_requests_per_stage": r.min_requests_per_stage,
        "guardrails": s.guardrails.set(),
        "false_rollback_budget": s.controller.false_rollback_budget,
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
                let last_event_us = last_event_us(&dir.join("history.jsonl")).map_err(at)?;
                Some(Resume { checkpoint, last_event_us })
            }
        };
        let history = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("history.jsonl"))
            .map_err(|e| format!("{}: {e}", dir.join("history.jsonl").display()))?;
        let written = resume.as_ref().map_or(0, |r| r.checkpoint.rollout.history_pushed);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let folder = dir.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("cutover-state".into())
            .spawn(move || {
                for job in queue {
                    let written = write_checkpoint(&folder, &(job.pending)());
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

    /// Appends the events `history` holds that are not written yet; with `durable`, syncs.
    pub fn append(&mut self, history: &History, durable: bool) -> std::io::Result<()> {
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
        if durable {
            self.history.sync_data()?;
        }
        Ok(())
    }

    /// Whether the evidence is due for a checkpoint (at most every [`EVIDENCE_EVERY`]).
    pub fn due(&self) -> bool {
        self.last_checkpoint.is_none_or(|t| t.elapsed() >= EVIDENCE_EVERY)
    }

    /// Queues a checkpoint for the writer, which writes them in order; with `wait`, returns
    /// once it is on disk (a decision waits; the evidence does not).
    pub fn checkpoint(&mut self, pending: Pending, wait: bool) -> std::io::Result<()> {
        self.last_checkpoint = Some(Instant::now());
        let gone = || std::io::Error::other("the state folder's writer stopped");
        let jobs = self.jobs.as_ref().ok_or_else(gone)?;
        if !wait {
            return jobs.send(Job { pending, done: None }).map_err(|_| gone());
        }
        let (done, written) = std::sync::mpsc::sync_channel(1);
        jobs.send(Job { pending, done: Some(done) }).map_err(|_| gone())?;
        written.recv().map_err(|_| gone())?
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
    // The last events are in the file's tail: an evaluation is a few KiB at most.
    let from = len.saturating_sub(256 * 1024);
    f.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let whole = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < tail.len() {
        f.set_len(from + whole as u64)?;
        f.sync_all()?;
    }
    let text = String::from_utf8_lossy(&tail[..whole]);
    let last = text.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    Ok(last.and_then(|v| v.get("t_s").and_then(serde_json::Value::as_f64)).map_or(0, |t| (t * 1e6).round() as u64))
}
