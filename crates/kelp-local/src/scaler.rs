//! One function's instances: revisions (a new one per spec or environment change, rolled over
//! without failing a request), scale from zero on a request, scale out when every instance is
//! busy, scale in (to `min`, zero included) after the idle timeout.

use crate::instance::{Instance, Launch, Lease, Termination};
use crate::platform::{Scaling, Shared};
use kelp_plan::run::Step;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// The state of a function on this machine, for its `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRunStatus {
    /// The revision being rolled out (or serving): a short hash of the spec and environment.
    pub revision: String,
    /// Instances ready to serve.
    pub ready_instances: usize,
    /// Instances running or starting (not counting those being stopped).
    pub instances: usize,
    /// Whether a request would be served: an instance is ready, or none runs (scaled to zero) and
    /// nothing failed.
    pub ready: bool,
    /// Why not, in one word (`MaterialiseFailed`, `Installing`, `InstallFailed`, `Building`,
    /// `BuildFailed`, `OOMKilled`, `Error`, `Starting`).
    pub reason: Option<String>,
    /// Why not, for people: e.g. `dependency install failed: ...` or
    /// `memory limit exceeded: ...`.
    pub message: Option<String>,
    /// The outcome of the latest step (install, build) of a revision, if there was one.
    pub step: Option<StepReport>,
}

/// The outcome of one step (install, build) of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// The revision.
    pub revision: String,
    /// The step.
    pub step: Step,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// What it did (what was built, from which key, how long it took); or why it failed, with
    /// the tool's first error lines.
    pub message: String,
}

/// A deployed function.
#[derive(Debug)]
pub(crate) struct Function {
    pub(crate) namespace: String,
    pub(crate) name: String,
    scaling: Mutex<Scaling>,
    /// Oldest first; the last is the one wanted. Older ones serve until it is ready.
    revisions: Mutex<Vec<Arc<Revision>>>,
    /// Bumped when an instance becomes ready or fails, or the function changes.
    events: watch::Sender<u64>,
    /// Serialises deploys (and the removal) of this function.
    pub(crate) deploying: tokio::sync::Mutex<()>,
    /// Set by [`Function::stop_all`]: no instance starts any more.
    removed: AtomicBool,
    /// Logs of instances that ended (scaled in, replaced, crashed for good), oldest first; they go
    /// with the function.
    ended_logs: Mutex<VecDeque<PathBuf>>,
    /// The steps (install, build) of the newest spec, before it becomes a revision.
    pub(crate) steps: Mutex<StepState>,
    /// The outcome of the latest step.
    pub(crate) last_step: Mutex<Option<StepReport>>,
}

/// Where the steps of the newest spec stand (the revisions serving meanwhile are the older
/// ones).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum StepState {
    /// No step under way or failed: the newest spec is the wanted revision.
    #[default]
    Idle,
    /// A step of the revision `hash` runs.
    Running {
        /// The revision.
        hash: String,
        /// The step.
        step: Step,
        /// The revision's code, in use.
        code_dir: PathBuf,
    },
    /// A step of the revision `hash` failed; it is not retried until the spec changes.
    Failed {
        /// The revision.
        hash: String,
        /// The step.
        step: Step,
        /// Why, with the tool's first error lines.
        message: String,
        /// The revision's code, kept while the spec is the newest.
        code_dir: PathBuf,
    },
}

impl StepState {
    /// The revision this state is about.
    pub(crate) fn hash(&self) -> Option<&str> {
        match self {
            StepState::Idle => None,
            StepState::Running { hash, .. } | StepState::Failed { hash, .. } => Some(hash),
        }
    }

    /// The code of the revision this state is about.
    fn code_dir(&self) -> Option<&PathBuf> {
        match self {
            StepState::Idle => None,
            StepState::Running { code_dir, .. } | StepState::Failed { code_dir, .. } => Some(code_dir),
        }
    }
}

/// Logs of ended instances kept per function.
pub(crate) const ENDED_LOGS_KEPT: usize = 5;

/// Deletes a log and its rotated predecessor.
fn remove_log(log: &Path) {
    let _ = std::fs::remove_file(log);
    let mut rotated = log.as_os_str().to_owned();
    rotated.push(".1");
    let _ = std::fs::remove_file(rotated);
}

/// The instances of one spec and environment of a function.
#[derive(Debug)]
pub(crate) struct Revision {
    pub(crate) hash: String,
    /// What starts its instances, or why its code could not be materialised.
    pub(crate) launch: Result<Arc<Launch>, String>,
    instances: Mutex<Vec<Arc<Instance>>>,
    next_index: AtomicUsize,
    /// Ready instances it needs before the older revisions are stopped.
    target: usize,
}

impl Revision {
    fn live(&self) -> Vec<Arc<Instance>> {
        self.instances.lock().unwrap().iter().filter(|i| i.is_live()).cloned().collect()
    }

    fn ready_count(&self) -> usize {
        self.instances.lock().unwrap().iter().filter(|i| i.is_ready()).count()
    }
}

/// Why a request cannot be served.
#[derive(Debug)]
pub(crate) struct Unavailable(pub(crate) String);

impl Function {
    pub(crate) fn new(namespace: &str, name: &str, scaling: Scaling) -> Arc<Function> {
        Arc::new(Function {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            scaling: Mutex::new(scaling),
            revisions: Mutex::default(),
            events: watch::Sender::new(0),
            deploying: tokio::sync::Mutex::new(()),
            removed: AtomicBool::new(false),
            ended_logs: Mutex::default(),
            steps: Mutex::default(),
            last_step: Mutex::default(),
        })
    }

    pub(crate) fn set_scaling(&self, scaling: Scaling) {
        *self.scaling.lock().unwrap() = scaling;
    }

    fn scaling(&self) -> Scaling {
        *self.scaling.lock().unwrap()
    }

    fn desired(&self) -> Option<Arc<Revision>> {
        self.revisions.lock().unwrap().last().cloned()
    }

    /// The largest request body the wanted revision accepts, in bytes (the runtime's default when
    /// there is none or its code could not be materialised).
    pub(crate) fn max_body(&self) -> usize {
        match self.desired().as_ref().map(|r| &r.launch) {
            Some(Ok(launch)) => launch.max_body,
            _ => crate::platform::max_body(&[]),
        }
    }

    /// Live instances of every revision that have served no request yet.
    pub(crate) fn unused_instances(&self) -> usize {
        let revisions = self.revisions.lock().unwrap();
        revisions.iter().map(|r| r.live().iter().filter(|i| i.served() == 0).count()).sum()
    }

    /// The code directories of its revisions (the wanted one and those still running) and of the
    /// spec whose steps run or failed.
    pub(crate) fn code_dirs(&self) -> Vec<PathBuf> {
        let revisions = self.revisions.lock().unwrap();
        let mut dirs: Vec<PathBuf> =
            revisions.iter().filter_map(|r| r.launch.as_ref().ok()).map(|l| l.code_dir.clone()).collect();
        dirs.extend(self.steps.lock().unwrap().code_dir().cloned());
        dirs
    }

    /// The wanted revision, if its code was materialised.
    pub(crate) fn desired_hash_ok(&self) -> Option<String> {
        self.desired().filter(|r| r.launch.is_ok()).map(|r| r.hash.clone())
    }

    /// Makes `hash` the wanted revision, starting as many instances as the older ones have live
    /// (within `min` and `max`, and at least one with `start_now`); they take over once ready.
    pub(crate) fn add_revision(
        &self,
        shared: &Arc<Shared>,
        hash: String,
        launch: Result<Arc<Launch>, String>,
        start_now: bool,
    ) {
        let scaling = self.scaling();
        let mut revisions = self.revisions.lock().unwrap();
        let live: usize = revisions.iter().map(|r| r.live().len()).sum();
        let wanted = live.max(scaling.min).max(usize::from(start_now));
        let target = if launch.is_ok() { wanted.min(scaling.max.max(1)) } else { 0 };
        let revision =
            Arc::new(Revision { hash, launch, instances: Mutex::default(), next_index: AtomicUsize::new(1), target });
        // A revision whose code failed to materialise has no instances and is replaced.
        revisions.retain(|r| r.launch.is_ok());
        revisions.push(revision.clone());
        drop(revisions);
        for _ in 0..target {
            self.start_instance(shared, &revision);
        }
        self.events.send_modify(|n| *n += 1);
    }

    fn start_instance(&self, shared: &Arc<Shared>, revision: &Arc<Revision>) {
        let Ok(launch) = &revision.launch else { return };
        if shared.is_closing() || self.removed.load(Ordering::Acquire) {
            return;
        }
        let index = revision.next_index.fetch_add(1, Ordering::Relaxed);
        let instance = Instance::start(
            shared,
            &self.namespace,
            &self.name,
            &revision.hash,
            index,
            launch.clone(),
            self.events.clone(),
        );
        revision.instances.lock().unwrap().push(instance);
    }

    /// A ready instance for one request, starting one (and waiting for it) when none is ready.
    pub(crate) async fn acquire(&self, shared: &Arc<Shared>) -> Result<Lease, Unavailable> {
        let mut events = self.events.subscribe();
        let since = Instant::now();
        let deadline = tokio::time::Instant::now() + shared.config.start_timeout;
        let who = || format!("function {}/{}", self.namespace, self.name);
        loop {
            events.borrow_and_update();
            if shared.is_closing() {
                return Err(Unavailable(format!("{}: the platform is shutting down", who())));
            }
            if self.removed.load(Ordering::Acquire) {
                return Err(Unavailable(format!("{} was removed", who())));
            }
            if let Some(lease) = self.pick(shared) {
                return Ok(lease);
            }
            let desired = self.desired();
            let steps = self.steps.lock().unwrap().clone();
            let desired = match (desired, steps) {
                (Some(desired), _) => desired,
                // Its first revision is being installed or built: wait for it.
                (None, StepState::Running { .. }) => match tokio::time::timeout_at(deadline, events.changed()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return Err(Unavailable(format!("{} was removed", who()))),
                    Err(_) => {
                        let waited = shared.config.start_timeout.as_secs();
                        return Err(Unavailable(format!("{}: still being prepared after {waited}s", who())));
                    }
                },
                (None, StepState::Failed { message, .. }) => return Err(Unavailable(message)),
                (None, StepState::Idle) => return Err(Unavailable(format!("{} is being removed", who()))),
            };
            if let Err(reason) = &desired.launch {
                return Err(Unavailable(reason.clone()));
            }
            if desired.live().is_empty() {
                self.start_instance(shared, &desired);
            }
            let failure = desired.live().iter().find_map(|i| i.failure_since(since));
            if let Some(t) = failure {
                return Err(Unavailable(format!("{} failed to start ({}): {}", who(), t.reason, t.message)));
            }
            match tokio::time::timeout_at(deadline, events.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Unavailable(format!("{} was removed", who()))),
                Err(_) => {
                    let waited = shared.config.start_timeout.as_secs();
                    return Err(Unavailable(format!("{}: no instance became ready within {waited}s", who())));
                }
            }
        }
    }

    /// Leases the least busy ready instance of the newest revision that has one; starts another
    /// instance when every one is at the concurrency target.
    fn pick(&self, shared: &Arc<Shared>) -> Option<Lease> {
        let revisions = self.revisions.lock().unwrap().clone();
        let desired = revisions.last()?;
        for revision in revisions.iter().rev() {
            let best = revision.live().into_iter().filter(|i| i.is_ready()).min_by_key(|i| i.in_flight());
            let Some(lease) = best.and_then(|i| i.try_lease()) else { continue };
            let busy = lease.instance().in_flight() > shared.config.workers_per_instance;
            let live = desired.live();
            if busy && live.len() < self.scaling().max && !live.iter().any(|i| i.is_starting()) {
                self.start_instance(shared, desired);
            }
            return Some(lease);
        }
        None
    }

    /// Periodic upkeep: retire older revisions once the wanted one is ready, keep `min`
    /// instances, stop idle ones above `min` and above `max`, forget stopped ones.
    pub(crate) fn reconcile(&self, shared: &Arc<Shared>) {
        let scaling = self.scaling();
        let revisions = self.revisions.lock().unwrap().clone();
        let Some(desired) = revisions.last() else { return };
        if desired.launch.is_ok() && desired.ready_count() >= desired.target {
            for old in &revisions[..revisions.len() - 1] {
                old.live().iter().for_each(|i| i.request_stop());
            }
        }
        let live = desired.live();
        for _ in live.len()..scaling.min {
            self.start_instance(shared, desired);
        }
        let mut count = live.len();
        let mut candidates = live;
        candidates.sort_by_key(|i| std::cmp::Reverse(i.idle_for()));
        for instance in candidates {
            if count <= scaling.min {
                break;
            }
            let idle = !scaling.idle_timeout.is_zero() && instance.idle_for() >= scaling.idle_timeout;
            if idle || count > scaling.max.max(scaling.min) {
                instance.request_stop();
                count -= 1;
            }
        }
        self.forget_stopped(desired);
    }

    /// Drops stopped instances and revisions left without any.
    fn forget_stopped(&self, desired: &Arc<Revision>) {
        let mut revisions = self.revisions.lock().unwrap();
        for revision in revisions.iter() {
            revision.instances.lock().unwrap().retain(|i| {
                let done = i.is_done();
                if done {
                    self.keep_ended_log(i.log_path.clone());
                }
                !done
            });
        }
        revisions.retain(|r| Arc::ptr_eq(r, desired) || !r.instances.lock().unwrap().is_empty());
    }

    /// Keeps the log of an instance that ended, deleting the oldest beyond [`ENDED_LOGS_KEPT`].
    fn keep_ended_log(&self, log: PathBuf) {
        let mut ended = self.ended_logs.lock().unwrap();
        ended.push_back(log);
        while ended.len() > ENDED_LOGS_KEPT {
            if let Some(old) = ended.pop_front() {
                remove_log(&old);
            }
        }
    }

    /// The kept log of the ended instance named `instance` (its log file is `<instance>.log`).
    pub(crate) fn ended_log(&self, instance: &str) -> Option<PathBuf> {
        let ended = self.ended_logs.lock().unwrap();
        ended.iter().find(|log| log.file_stem().is_some_and(|stem| stem == instance)).cloned()
    }

    /// Wakes whoever waits for the function to change (a request waiting for an instance, the
    /// status).
    pub(crate) fn changed(&self) {
        self.events.send_modify(|n| *n += 1);
    }

    /// Every instance, of every revision.
    pub(crate) fn instances(&self) -> Vec<Arc<Instance>> {
        let revisions = self.revisions.lock().unwrap().clone();
        revisions.iter().flat_map(|r| r.instances.lock().unwrap().clone()).collect()
    }

    /// Stops every instance, starts no more, and waits until they are gone.
    pub(crate) async fn stop_all(&self) {
        self.removed.store(true, Ordering::Release);
        self.events.send_modify(|n| *n += 1);
        let instances = self.instances();
        for i in &instances {
            i.request_stop();
        }
        for i in &instances {
            let _ = i.done().wait_for(|d| *d).await;
        }
        let desired = self.desired();
        if let Some(d) = desired {
            self.forget_stopped(&d);
        }
        for log in std::mem::take(&mut *self.ended_logs.lock().unwrap()) {
            remove_log(&log);
        }
    }

    /// The function's status.
    pub(crate) fn status(&self) -> FunctionRunStatus {
        let revisions = self.revisions.lock().unwrap().clone();
        let desired = revisions.last();
        let all: Vec<Arc<Instance>> = revisions.iter().flat_map(|r| r.live()).collect();
        let ready_instances = all.iter().filter(|i| i.is_ready()).count();
        let failure: Option<Termination> = desired.and_then(|d| d.live().iter().find_map(|i| i.current_failure()));
        let steps = self.steps.lock().unwrap().clone();
        let (reason, message) = match (&steps, desired.map(|d| &d.launch), failure) {
            (StepState::Running { step, .. }, ..) => {
                (Some(step.running_reason().to_owned()), Some(format!("running the function's {} step", step.name())))
            }
            (StepState::Failed { step, message, .. }, ..) => {
                (Some(step.failed_reason().to_owned()), Some(message.clone()))
            }
            (_, Some(Err(message)), _) => (Some("MaterialiseFailed".to_owned()), Some(message.clone())),
            (_, _, Some(t)) => (Some(t.reason), Some(t.message)),
            _ if ready_instances == 0 && !all.is_empty() => (Some("Starting".to_owned()), None),
            _ => (None, None),
        };
        FunctionRunStatus {
            revision: desired.map(|d| d.hash.clone()).unwrap_or_default(),
            ready_instances,
            instances: all.len(),
            ready: matches!(steps, StepState::Idle) && (ready_instances > 0 || (all.is_empty() && reason.is_none())),
            reason,
            message,
            step: self.last_step.lock().unwrap().clone(),
        }
    }
}
