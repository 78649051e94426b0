//! The platform: deployed functions, the pre-warmed pool, the gateway's routes, and the upkeep
//! loop that scales them.

use crate::collect::{COLLECT_INTERVAL, Collector};
use crate::gateway::{Gateway, GatewayBody, Route};
use crate::instance::{InstanceInfo, Launch};
use crate::logs::{self, LogStream};
use crate::materialise::{digest_of, language, materialise};
use crate::memory::parse_quantity;
use crate::metrics::{Metrics, escape};
use crate::pool::Pool;
use crate::process::Launcher;
use crate::scaler::{Function, FunctionRunStatus, StepReport, StepState};
use crate::volumes::{self, Volume};
use crate::{Error, HttpClient};
use kelp_api::FunctionSpec;
use kelp_plan::run::Step;
use kelp_runtime::language::LANGUAGES;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How often functions are reconciled (rollovers, `min`, idle scale-in).
const UPKEEP_INTERVAL: Duration = Duration::from_millis(200);

/// How the platform runs.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Where code, caches, logs and working directories live (see the crate docs).
    pub data_dir: PathBuf,
    /// The `kelp-runtime` binary.
    pub runtime_bin: PathBuf,
    /// Pre-warmed processes kept per language (default 1; 0 turns the pool off).
    pub prewarm_per_language: usize,
    /// Workers per instance (`KELP_WORKERS` and `KELP_MAX_WORKERS`, default 2); also the in-flight
    /// requests per instance above which another instance is started.
    pub workers_per_instance: usize,
    /// Size at which an instance's log is rotated (default 10 MiB; one old file is kept).
    pub log_max_bytes: u64,
    /// How long a request waits for an instance to become ready (default 120 s).
    pub start_timeout: Duration,
    /// Between SIGTERM and SIGKILL when an instance stops (default 10 s).
    pub stop_grace: Duration,
    /// Instances started before any request ([`FunctionDeployment::start_now`]) that have not
    /// served one yet, at most, over all functions (default 4). Beyond, a new or changed
    /// function starts on its first request: deploying a thousand functions at once does not
    /// start a thousand processes.
    pub eager_starts: usize,
    /// How old an unused code or dependency directory must be before it is removed (default one
    /// hour; see [`Platform::collect`]).
    pub collect_grace: Duration,
    /// Request body bytes the gateway holds at once, over all requests (default 1 GiB): each body
    /// is read whole before it is forwarded (so that a request whose instance vanished can go to
    /// another), and a request that would pass this is answered 503 with `Retry-After`, so that
    /// many large uploads at once cannot exhaust the memory of the platform.
    pub body_buffer_budget: usize,
    /// How long the gateway waits for the next piece of a request body (default 30 s, as nginx's
    /// `client_body_timeout` waits 60 s): a client that stops sending mid-body is answered 408 and
    /// gives back its connection slot and its share of the buffer budget.
    pub body_idle_timeout: Duration,
}

impl PlatformConfig {
    /// The defaults, with `data_dir` and `runtime_bin`.
    pub fn new(data_dir: impl Into<PathBuf>, runtime_bin: impl Into<PathBuf>) -> Self {
        PlatformConfig {
            data_dir: data_dir.into(),
            runtime_bin: runtime_bin.into(),
            prewarm_per_language: 1,
            workers_per_instance: 2,
            log_max_bytes: 10 << 20,
            start_timeout: Duration::from_secs(120),
            stop_grace: Duration::from_secs(10),
            eager_starts: 4,
            collect_grace: Duration::from_secs(3600),
            body_buffer_budget: 1 << 30,
            body_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// How many instances a function has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaling {
    /// Instances kept running; 0 allows scaling to zero (default 0).
    pub min: usize,
    /// Instances at most (default 4).
    pub max: usize,
    /// Instances above `min` that served no request for this long are stopped (default 5 min;
    /// zero disables).
    pub idle_timeout: Duration,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling { min: 0, max: 4, idle_timeout: Duration::from_secs(300) }
    }
}

/// A function as it should run. Its [`std::fmt::Debug`] shows the names of `env`, not the
/// values (resolved Secrets among them).
#[derive(Clone)]
pub struct FunctionDeployment {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `metadata.uid`.
    pub uid: String,
    /// Its spec.
    pub spec: FunctionSpec,
    /// Its environment (the container's `env`, already resolved), before Kubeless's contract.
    pub env: Vec<(String, String)>,
    /// Its Secret and ConfigMap volumes (already read), written as files for every process.
    pub volumes: Vec<Volume>,
    /// Its scaling.
    pub scaling: Scaling,
    /// Whether a new revision starts an instance at once even when `scaling.min` is 0 (a
    /// function just created or changed: its code is loaded and its dependencies installed now,
    /// not on the first call; the instance then idles out like any other). A deploy that changes
    /// nothing starts nothing either way.
    pub start_now: bool,
    /// What runs before it serves ([`kelp_plan::run::steps`]: install its dependency file, build
    /// a compiled language's code), each a `kelp-runtime` process beside the platform; the
    /// revision becomes the wanted one once they all succeeded.
    pub steps: Vec<Step>,
}

impl std::fmt::Debug for FunctionDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionDeployment")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("spec", &self.spec)
            .field("env", &crate::EnvNames(&self.env))
            .field("volumes", &self.volumes)
            .field("scaling", &self.scaling)
            .field("start_now", &self.start_now)
            .finish()
    }
}

/// What every part of the platform shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: PlatformConfig,
    pub(crate) launcher: Arc<Launcher>,
    pub(crate) pool: Arc<Pool>,
    pub(crate) metrics: Metrics,
    pub(crate) client: HttpClient,
    pub(crate) functions: Mutex<BTreeMap<(String, String), Arc<Function>>>,
    pub(crate) routes: RwLock<Vec<Route>>,
    /// Held (shared) while a function is deployed or removed, and exclusively while unused
    /// directories are collected: what a deploy materialises is in use before it can be collected.
    collecting: tokio::sync::RwLock<()>,
    closing: AtomicBool,
    /// The gateway's budget of buffered request bodies, in KiB
    /// ([`PlatformConfig::body_buffer_budget`]).
    pub(crate) body_budget: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// Whether [`Platform::shutdown`] has begun.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The function `namespace/name`.
    pub(crate) fn function(&self, namespace: &str, name: &str) -> Option<Arc<Function>> {
        self.functions.lock().unwrap().get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    fn all_functions(&self) -> Vec<Arc<Function>> {
        self.functions.lock().unwrap().values().cloned().collect()
    }
}

/// The single-machine platform. Create it inside a Tokio runtime; call [`Platform::shutdown`]
/// before dropping it (dropping it without does begin stopping every instance, without waiting).
#[derive(Debug)]
pub struct Platform {
    shared: Arc<Shared>,
}

impl Platform {
    /// Creates the data directories, starts the pre-warmed pool and the upkeep loop.
    pub fn new(config: PlatformConfig) -> Result<Platform, Error> {
        let code = config.data_dir.join("code");
        let cache = config.data_dir.join("cache");
        let run = config.data_dir.join("run");
        // Working directories of a previous run are stale: their processes are gone.
        let _ = std::fs::remove_dir_all(&run);
        // Owner-only: code, installed dependencies, logs and Secret volumes are the functions'.
        let mut private = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(private.recursive(true), 0o700);
        for dir in [&config.data_dir, &code, &cache, &run, &config.data_dir.join("logs")] {
            private.create(dir).map_err(|cause| Error::Io { context: format!("creating {}", dir.display()), cause })?;
        }
        let client = crate::http_client();
        let launcher = Arc::new(Launcher::new(
            config.runtime_bin.clone(),
            run,
            &cache,
            config.workers_per_instance.max(1),
            config.stop_grace,
            config.log_max_bytes,
            client.clone(),
        ));
        let pool = Pool::start(launcher.clone(), config.prewarm_per_language);
        let budget_kib = (config.body_buffer_budget >> 10).clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            body_budget: Arc::new(tokio::sync::Semaphore::new(budget_kib)),
            config,
            launcher,
            pool,
            metrics: Metrics::default(),
            client,
            functions: Mutex::default(),
            routes: RwLock::default(),
            collecting: tokio::sync::RwLock::default(),
            closing: AtomicBool::new(false),
        });
        tokio::spawn(upkeep(Arc::downgrade(&shared)));
        tokio::spawn(collect_periodically(Arc::downgrade(&shared)));
        Ok(Platform { shared })
    }

    /// Makes `deployment` run. Idempotent: the same spec and environment change nothing (but the
    /// scaling); a change starts instances of the new revision, moves traffic to them once
    /// they are ready, then drains and stops the old ones. Code that cannot be materialised is an
    /// error, also reported by [`Platform::status`] (older instances keep serving).
    pub async fn deploy(&self, deployment: FunctionDeployment) -> Result<(), Error> {
        let FunctionDeployment { namespace, name, uid: _, spec, env, volumes, scaling, start_now, steps } = deployment;
        let label = format!("{namespace}/{name}");
        let invalid = |reason: String| Error::Invalid { function: label.clone(), reason };
        if spec.custom_image().is_some() {
            return Err(invalid("custom images (deployment containers[0].image) cannot run without containers".into()));
        }
        let handler = spec.parsed_handler().map_err(|e| invalid(format!("spec.handler: {e}")))?;
        let language = language(&spec).map_err(invalid)?;
        let timeout = spec.timeout_seconds().map_err(|e| invalid(format!("spec.timeout: {e}")))?;
        let memory = memory_limit(&spec);
        let function_env = kelp_plan::run::function_env(&spec, handler, &memory).map_err(|e| invalid(e.to_string()))?;
        let memory_limit = parse_quantity(&memory).map_err(|e| invalid(format!("memory limit: {e}")))?;
        volumes::check(&volumes).map_err(invalid)?;
        let spec_json = serde_json::to_vec(&spec).unwrap_or_default();
        let env_json = serde_json::to_vec(&env).unwrap_or_default();
        let mut volume_bytes = Vec::new();
        volumes.iter().for_each(|v| v.digest_input(&mut volume_bytes));
        let hash = digest_of(&[&spec_json, &env_json, &volume_bytes])[..10].to_owned();

        let function = {
            let mut functions = self.shared.functions.lock().unwrap();
            functions
                .entry((namespace.clone(), name.clone()))
                .or_insert_with(|| Function::new(&namespace, &name, scaling))
                .clone()
        };
        let _deploying = function.deploying.lock().await;
        let _in_use = self.shared.collecting.read().await;
        function.set_scaling(scaling);
        if function.desired_hash_ok().as_deref() == Some(hash.as_str()) {
            // Back to the spec that serves: the steps of a newer one (under way or failed) are moot.
            *function.steps.lock().unwrap() = StepState::Idle;
            return Ok(());
        }
        if function.steps.lock().unwrap().hash() == Some(hash.as_str()) {
            // Its steps are under way, or failed: the same content fails the same way.
            return Ok(());
        }
        let code_root = self.shared.config.data_dir.join("code");
        let materialised = materialise(&code_root, &label, &spec).await;
        let launch = materialised.as_ref().map_err(ToString::to_string).map(|code_dir| {
            let mut env = env.clone();
            env.extend(function_env.iter().map(|(name, value)| ((*name).to_owned(), value.clone())));
            env.extend([
                ("KUBELESS_INSTALL_VOLUME".to_owned(), code_dir.display().to_string()),
                // Part of the key of the function's dependency installs and builds
                // (kelp-runtime's `deps` and `build`).
                ("KELP_NAMESPACE".to_owned(), namespace.clone()),
            ]);
            let code_dir = code_dir.clone();
            let max_body = max_body(&env);
            Arc::new(Launch {
                language,
                env,
                memory_limit,
                timeout: Duration::from_secs(timeout),
                max_body,
                volumes,
                code_dir,
                preface: Vec::new(),
            })
        });
        let start_now = start_now && self.unused_instances() < self.shared.config.eager_starts;
        match launch {
            Ok(launch) if !steps.is_empty() => self.run_steps(function.clone(), hash, launch, steps, start_now),
            launch => function.add_revision(&self.shared, hash, launch, start_now),
        }
        materialised.map(drop).map_err(Error::from)
    }

    /// Runs the `steps` of the revision `hash` (install, build) one after the other beside the
    /// platform, then makes it the wanted revision; until then (and if a step fails) the older
    /// revisions keep serving, and the function's status says `Installing` or `Building`, then
    /// `InstallFailed` or `BuildFailed` with the tool's first error lines.
    fn run_steps(&self, function: Arc<Function>, hash: String, launch: Arc<Launch>, steps: Vec<Step>, start_now: bool) {
        let shared = self.shared.clone();
        let code_dir = launch.code_dir.clone();
        // At once, so that the code is in use (not collected) before the task starts.
        *function.steps.lock().unwrap() =
            StepState::Running { hash: hash.clone(), step: steps[0], code_dir: code_dir.clone() };
        tokio::spawn(async move {
            let config = kelp_runtime::config::Config::from_lookup(|k| {
                launch
                    .env
                    .iter()
                    .rev()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(k).ok())
            });
            let label = format!("{}/{}", function.namespace, function.name);
            let mut preface = Vec::new();
            for step in steps {
                {
                    let mut state = function.steps.lock().unwrap();
                    if *state != StepState::Idle && state.hash() != Some(hash.as_str()) {
                        return; // A newer spec replaced this one.
                    }
                    *state = StepState::Running { hash: hash.clone(), step, code_dir: code_dir.clone() };
                }
                function.changed();
                let limit = match (&config, step) {
                    (Ok(c), Step::Build) => c.build_timeout,
                    (Ok(c), Step::Install) => c.install_timeout,
                    (Err(_), Step::Build) => kelp_runtime::build::DEFAULT_BUILD_TIMEOUT,
                    (Err(_), Step::Install) => kelp_runtime::deps::DEFAULT_INSTALL_TIMEOUT,
                };
                let outcome = shared.launcher.step(step.args(), &launch.env, limit).await;
                let mut state = function.steps.lock().unwrap();
                if state.hash() != Some(hash.as_str()) {
                    return; // A newer spec replaced this one while the step ran.
                }
                let report = |succeeded, message: &str| StepReport {
                    revision: hash.clone(),
                    step,
                    succeeded,
                    message: message.to_owned(),
                };
                match outcome {
                    Ok(output) => {
                        tracing::info!(function = %label, step = step.name(), "{}", output.summary);
                        *function.last_step.lock().unwrap() = Some(report(true, &output.summary));
                        preface.extend(output.lines);
                    }
                    Err(message) => {
                        tracing::warn!(function = %label, step = step.name(), error = %message, "step failed");
                        *function.last_step.lock().unwrap() = Some(report(false, &message));
                        *state = StepState::Failed { hash, step, message, code_dir };
                        drop(state);
                        function.changed();
                        return;
                    }
                }
            }
            let _deploying = function.deploying.lock().await;
            let mut state = function.steps.lock().unwrap();
            if state.hash() == Some(hash.as_str()) {
                *state = StepState::Idle;
                drop(state);
                let launch = Arc::new(Launch { preface, ..Launch::clone(&launch) });
                function.add_revision(&shared, hash, Ok(launch), start_now);
            }
        });
    }

    /// Live instances, over all functions, that have served no request yet.
    fn unused_instances(&self) -> usize {
        let functions: Vec<Arc<Function>> = self.shared.functions.lock().unwrap().values().cloned().collect();
        functions.iter().map(|f| f.unused_instances()).sum()
    }

    /// Stops every instance of `namespace/name` (draining in-flight requests) and forgets it;
    /// false if it was not deployed.
    pub async fn remove(&self, namespace: &str, name: &str) -> bool {
        let removed = self.shared.functions.lock().unwrap().remove(&(namespace.to_owned(), name.to_owned()));
        match removed {
            Some(function) => {
                // A deploy under way finishes first, so that what it starts is stopped too.
                let _deploying = function.deploying.lock().await;
                let _in_use = self.shared.collecting.read().await;
                function.stop_all().await;
                true
            }
            None => false,
        }
    }

    /// Removes what no live function uses: code and dependency directories older than
    /// [`PlatformConfig::collect_grace`], and temporaries that processes which are gone left
    /// behind. The platform does this at start and every ten minutes; returns what was removed.
    pub async fn collect(&self) -> Vec<PathBuf> {
        let exclusive = self.shared.collecting.write().await;
        collect(&self.shared, true, exclusive).await
    }

    /// The status of `namespace/name`, if deployed.
    pub fn status(&self, namespace: &str, name: &str) -> Option<FunctionRunStatus> {
        self.shared.function(namespace, name).map(|f| f.status())
    }

    /// Every instance of every function.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.shared.all_functions().iter().flat_map(|f| f.instances()).map(|i| i.info()).collect()
    }

    /// The log of the instance `instance` in `namespace`: all of it or its last `tail` lines,
    /// then, with `follow`, what it writes until it is gone. An instance that ended and whose log
    /// is kept (the last few of each function) gets its log as it was, and a follow ends there.
    pub async fn logs(
        &self,
        namespace: &str,
        instance: &str,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<LogStream, Error> {
        let functions = self.shared.all_functions();
        let found = functions
            .iter()
            .filter(|f| f.namespace == namespace)
            .flat_map(|f| f.instances())
            .find(|i| i.name == instance);
        let Some(found) = found else {
            // An instance that ended (replaced, scaled in, crashed for good): its kept log, whole
            // (a follow ends at once: nothing more will be written).
            let ended = functions.iter().filter(|f| f.namespace == namespace).find_map(|f| f.ended_log(instance));
            let Some(path) = ended else {
                return Err(Error::NoSuchInstance { namespace: namespace.to_owned(), instance: instance.to_owned() });
            };
            let (_, done) = tokio::sync::watch::channel(true);
            return logs::read(path.clone(), tail, false, done)
                .await
                .map_err(|cause| Error::Io { context: format!("reading {}", path.display()), cause });
        };
        logs::read(found.log_path.clone(), tail, follow, found.done())
            .await
            .map_err(|cause| Error::Io { context: format!("reading {}", found.log_path.display()), cause })
    }

    /// The HTTP gateway (short URLs and routes).
    pub fn gateway(&self) -> Gateway {
        Gateway::new(self.shared.clone())
    }

    /// Forwards `request` (path and query as the function should see them) to `namespace/name`,
    /// as the API server's service proxy does.
    pub async fn proxy<B>(&self, namespace: &str, name: &str, request: http::Request<B>) -> http::Response<GatewayBody>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.gateway().proxy(namespace, name, request).await
    }

    /// Replaces the HTTPTrigger routes of the gateway.
    pub fn set_routes(&self, routes: Vec<Route>) {
        *self.shared.routes.write().unwrap() = routes;
    }

    /// Prometheus text: `kelp_cold_start_seconds` (histogram by namespace, function, pooled),
    /// `kelp_function_ready_instances` and `kelp_prewarmed_processes` (gauges).
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        self.shared.metrics.render(&mut out);
        out.push_str("# HELP kelp_function_ready_instances Instances of a function ready to serve.\n");
        out.push_str("# TYPE kelp_function_ready_instances gauge\n");
        for f in self.shared.all_functions() {
            let ready = f.status().ready_instances;
            let (ns, name) = (escape(&f.namespace), escape(&f.name));
            let _ = writeln!(out, "kelp_function_ready_instances{{namespace=\"{ns}\",function=\"{name}\"}} {ready}");
        }
        out.push_str("# HELP kelp_prewarmed_processes Pre-warmed runtime processes waiting for a function.\n");
        out.push_str("# TYPE kelp_prewarmed_processes gauge\n");
        for language in LANGUAGES {
            let _ = writeln!(
                out,
                "kelp_prewarmed_processes{{language=\"{}\"}} {}",
                language.name,
                self.shared.pool.warm(language)
            );
        }
        out
    }

    /// Stops everything: SIGTERM to every instance and pre-warmed process, SIGKILL to what is
    /// left after [`PlatformConfig::stop_grace`]; returns when all are gone.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::Release);
        let functions = std::mem::take(&mut *self.shared.functions.lock().unwrap());
        let stops = functions.values().map(|f| f.stop_all());
        tokio::join!(futures_util::future::join_all(stops), self.shared.pool.close(self.shared.config.stop_grace));
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        for f in self.shared.all_functions() {
            f.instances().iter().for_each(|i| i.request_stop());
        }
        let pool = self.shared.pool.clone();
        let grace = self.shared.config.stop_grace;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { pool.close(grace).await });
        }
    }
}

/// `deployment.spec.template.spec.containers[0].resources.limits.memory`, as Kubeless's
/// `FUNC_MEMORY_LIMIT`; `"0"` when unset.
fn memory_limit(spec: &FunctionSpec) -> String {
    let limit = || {
        let pod = spec.deployment.as_deref()?.spec.as_ref()?.template.spec.as_ref()?;
        let limits = pod.containers.first()?.resources.as_ref()?.limits.as_ref()?;
        Some(limits.get("memory")?.0.clone())
    };
    limit().unwrap_or_else(|| "0".to_owned())
}

/// Collects ([`Platform::collect`]) temporaries, and with `unused` unused directories too, while
/// holding `_exclusive`: no deploy or removal is under way.
async fn collect(shared: &Shared, unused: bool, _exclusive: tokio::sync::RwLockWriteGuard<'_, ()>) -> Vec<PathBuf> {
    let live: BTreeSet<PathBuf> = shared.all_functions().iter().flat_map(|f| f.code_dirs()).collect();
    let data_dir = shared.config.data_dir.clone();
    let grace = unused.then_some(shared.config.collect_grace);
    let removed = tokio::task::spawn_blocking(move || {
        let (code_root, cache_dir) = (data_dir.join("code"), data_dir.join("cache"));
        Collector { code_root: &code_root, cache_dir: &cache_dir, grace }.collect(&live)
    })
    .await
    .unwrap_or_default();
    if !removed.is_empty() {
        tracing::info!(removed = removed.len(), "removed unused code, dependencies and temporaries");
    }
    removed
}

/// Collects temporaries at start, then everything unused every [`COLLECT_INTERVAL`] until the
/// platform is gone or shutting down.
async fn collect_periodically(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(COLLECT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unused = false;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.is_closing() {
            return;
        }
        // A deploy or a removal (which drains its instances) under way: next time. Waiting would
        // hold up every deploy behind this collection.
        let Ok(exclusive) = shared.collecting.try_write() else { continue };
        collect(&shared, unused, exclusive).await;
        unused = true;
    }
}

/// The largest request body a function with the environment `env` accepts: what its runtime
/// reads (`FUNC_MEMFILE_MAX`, `REQ_MB_LIMIT`; the last value of a name wins, as for the process),
/// or the runtime's default when the environment is not one it would start with.
pub(crate) fn max_body(env: &[(String, String)]) -> usize {
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    kelp_runtime::config::Config::from_lookup(lookup)
        .or_else(|_| kelp_runtime::config::Config::from_lookup(|_| None))
        .map_or(0, |config| config.max_body)
}

/// Reconciles every function until the platform is gone or shutting down.
async fn upkeep(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if shared.is_closing() {
            return;
        }
        for f in shared.all_functions() {
            f.reconcile(&shared);
        }
    }
}
