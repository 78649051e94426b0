//! The desired state of Kelp's kinds on Kubernetes, as plain values: what a Function, an
//! HTTPTrigger and a CronJobTrigger become, and what installs Kelp. This crate does no I/O; a
//! controller applies what it returns (server-side apply) and owns every decision about *when*.
//!
//! - [`function_children`]: a [`Function`](kelp_api::Function) and the [`Config`] (the
//!   `kubeless-config` ConfigMap) → its ConfigMap, Deployment, Service and, when configured, its
//!   autoscaling/v2 HorizontalPodAutoscaler ([`FunctionChildren`]).
//! - [`http_trigger_ingress`]: an HTTPTrigger and its function's Service → a networking.k8s.io/v1
//!   Ingress named after the trigger.
//! - [`cronjob_trigger_cronjob`]: a CronJobTrigger and its function → a batch/v1 CronJob named
//!   after the trigger.
//! - [`adoptable`]: whether an existing object may be taken over (else the controller reports a
//!   conflict, as Kubeless did).
//! - [`install`]: the objects of `deploy/kelp.yaml` (namespace, RBAC, `kubeless-config`, the
//!   Deployments of the controller and of `kelp-triggers`, the Kafka/NATS consumers).
//! - [`run`]: what runs a function on both backends: the steps before it serves (install,
//!   build), which the controller applies as init containers and `kelp up` runs as processes,
//!   and its Kubeless environment.
//! - [`images`]: where Kelp's own images live (`<registry>/<name>:<version>`, `kelp` by default).
//!
//! # Shapes
//!
//! The objects are Kubeless's (names, the `function` and `created-by: kubeless` labels, the
//! selector `{created-by: kubeless, function: <fn>}`, the port `http-function-port`, the init
//! containers `prepare` and `install`, the `FUNC_*` environment, the Prometheus annotations, the
//! pod defaults `runAsUser`/`fsGroup` 1000 and soft anti-affinity, `maxUnavailable: 0`, the
//! `/healthz` liveness probe), on the current APIs, running Kelp's `kelp-runtime` images. Where
//! Kubeless had a bug, Kelp does not copy it:
//!
//! - **ownerReferences** name the owner's `uid` and set `controller` and `blockOwnerDeletion`, so
//!   garbage collection and `kubectl` see one controller; a CronJob's owner kind is
//!   `CronJobTrigger` (Kubeless wrote `Trigger`).
//! - **Every change rolls the pods.** The pod template carries [`FUNCTION_HASH_ANNOTATION`], the
//!   SHA-256 of the function's labels and of its spec except `service` and
//!   `horizontalPodAutoscaler` (which reach the pods only through values already in the template,
//!   such as the port). A change of code without a checksum, of the runtime or of a label gives a
//!   new template, hence a rollout; applying the same Function again gives the same template, so
//!   no rollout. (Kubeless rolled only when the checksum changed, and ignored runtime and label
//!   changes.)
//! - **One CronJob per trigger**, named after the trigger. Kubeless named it
//!   `trigger-<function>`, so two CronJobTriggers of one function fought over one CronJob.
//! - **The Ingress backend is the Service's port** (by name when it has one). Kubeless pointed at
//!   the `targetPort`, which only worked while both were 8080 (#1130).
//! - Function containers get a readiness probe (`/healthz`, which `kelp-runtime` answers once
//!   the function is loaded), so a rollout waits for the new pods to serve; an autoscaled
//!   Deployment leaves `replicas` to its autoscaler.
//! - The user's `imagePullSecrets`, init containers and Deployment strategy are kept next to (or
//!   instead of) Kelp's (Kubeless replaced them, #1119), the
//!   `kubectl.kubernetes.io/last-applied-configuration` annotation is not copied onto children
//!   (it holds the whole Function, code included), and no list gets two entries with one key
//!   (server-side apply rejects those).
//!
//! # Dependencies: installed once per node and namespace, not once per pod
//!
//! Kubeless installed a function's `requirements.txt` / `package.json` in an `install` init
//! container of every pod, at every start (#158). Kelp's runtime images hold `kelp-runtime`,
//! which installs a dependency file once per key (the SHA-256 of the file, the interpreter's
//! version and the namespace, `KELP_NAMESPACE`), under a lock, into a cache directory
//! (`KELP_DEPS_DIR`). The `install` init container runs `kelp-runtime --install-deps` on that
//! cache; the function's container mounts the same volume **read-only** and finds the install
//! done. The volume is chosen by the `dependency-cache-path` key of `kubeless-config`:
//!
//! - a node directory per namespace (`hostPath` `<dependency-cache-path>/<namespace>`, type
//!   `DirectoryOrCreate`; default `/var/cache/kelp/<namespace>`): every pod of every function of
//!   a namespace on a node whose dependency file has the same content reuses one install, so a
//!   scale-out or a restart installs nothing, and no namespace sees another's installs (an
//!   install script may write anywhere in its namespace's directory). The kubelet creates that
//!   directory owned by root; the `cache-owner` init container, which runs one fixed `chown` as
//!   root with no capability but `CHOWN` (and nothing of the user's), gives it to UID 1000, so
//!   `install` runs as UID 1000 (as does `prepare`): not root, without capabilities, privilege
//!   escalation, a writable root file system (a scratch `emptyDir` at `/tmp`, also `HOME`) or a
//!   ServiceAccount token (an empty volume over its mount path keeps the API server from adding
//!   one, even when the function asks for a token). `fsGroup` cannot help here: the kubelet
//!   does not change the ownership of `hostPath` volumes. Pod Security's `baseline` level
//!   forbids `hostPath`;
//! - `dependency-cache-path: ""`: a per-pod `emptyDir`, as Kubeless had (installed at each pod
//!   start), for clusters whose Pod Security forbids `hostPath`.
//!
//! `install` gets the function's environment (proxies, as Kubeless passed it) but not its
//! Secret-valued variables (`valueFrom.secretKeyRef`): those are the function's, not the
//! packages' install scripts'. The `installation` phase's Secrets (`runtime-images`), the way to
//! give an install credentials, are mounted into `install` only, as
//! Kubeless did: the install command needs them (a private index), and so the packages' install
//! scripts, which it runs as the same user, can read them; being Secrets of the function's own
//! namespace, they reach no other namespace, and nothing `install` writes leaves the namespace's
//! cache directory.
//!
//! Only the cache is shared: the code stays in the pod's own `emptyDir` at `/kubeless`, and the
//! runtime's worker scripts in its private `KELP_CACHE_DIR`.

mod config;
mod cronjob;
mod error;
mod function;
pub mod images;
mod ingress;
pub mod install;
mod merge;
mod meta;
pub mod run;
mod runtimes;
mod shell;

pub use config::{Config, DEFAULT_DEPENDENCY_CACHE_PATH, KAFKA_BROKERS_KEY, NATS_URL_KEY};
pub use cronjob::cronjob_trigger_cronjob;
pub use error::PlanError;
pub use function::{FUNCTION_URL, FunctionChildren, function_children, function_url};
pub use ingress::{ALLOWED_INGRESS_ANNOTATIONS, http_trigger_ingress, refused_ingress_annotations};
pub use meta::{adoptable, hex, sha256_hex};

/// The label naming the function on the Function and on every object made for it.
pub const FUNCTION_LABEL: &str = "function";
/// The label marking objects Kelp (or Kubeless) made, with value [`CREATED_BY_KUBELESS`].
pub const CREATED_BY_LABEL: &str = "created-by";
/// The value of [`CREATED_BY_LABEL`]: `kubeless`, as Kubeless wrote it, so tools that select on
/// it (`kubeless autoscale list`, dashboards) keep working.
pub const CREATED_BY_KUBELESS: &str = "kubeless";
/// The pod-template annotation whose change rolls a function's pods (see the crate docs).
pub const FUNCTION_HASH_ANNOTATION: &str = "kelp.dev/function-hash";
/// The name of the Service port of every function (the `http-` prefix is for Istio).
pub const FUNCTION_PORT_NAME: &str = "http-function-port";

/// The finalizer Kubeless put on Functions; Kelp keeps the name so existing objects delete.
pub const FUNCTION_FINALIZER: &str = "kubeless.io/function";
/// The finalizer Kubeless put on HTTPTriggers.
pub const HTTP_TRIGGER_FINALIZER: &str = "kubeless.io/httptrigger";
/// The finalizer Kubeless put on CronJobTriggers.
pub const CRONJOB_TRIGGER_FINALIZER: &str = "kubeless.io/cronjobtrigger";
/// The finalizer Kubeless put on KafkaTriggers.
pub const KAFKA_TRIGGER_FINALIZER: &str = "kubeless.io/kafkatrigger";
/// The finalizer Kubeless put on NATSTriggers.
pub const NATS_TRIGGER_FINALIZER: &str = "kubeless.io/natstrigger";
