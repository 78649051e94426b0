//! Which API server, as whom, in which namespace: `--kubeconfig`, `--context` and
//! `-n/--namespace`, resolved exactly as kubectl does, into one `kube::Client`.
//!
//! The kubeconfig is `--kubeconfig FILE`, else the files of `$KUBECONFIG` (merged, first wins),
//! else `~/.kube/config`; inside a pod with none of these, the in-cluster service account. The
//! context is `--context` or the kubeconfig's `current-context`; the namespace is `-n`, else
//! the context's namespace, else `default`. The same code path serves `kelp up` and any cluster:
//! nothing here knows which one it talks to.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// The global flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct GlobalArgs {
    /// The kubeconfig file to use (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE", help_heading = "Global options")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current-context)
    #[arg(long, global = true, value_name = "NAME", help_heading = "Global options")]
    pub(crate) context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE", help_heading = "Global options")]
    pub(crate) namespace: Option<String>,
}

/// Why no API server could be chosen. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// No kubeconfig anywhere.
    #[error(
        "no kubeconfig found: pass --kubeconfig FILE, set $KUBECONFIG, or create ~/.kube/config \
         (`kelp up` writes one)"
    )]
    NoKubeconfig,
    /// A kubeconfig file cannot be read or parsed.
    #[error("cannot read kubeconfig {path}: {reason}")]
    Unreadable {
        /// The file(s).
        path: String,
        /// Why.
        reason: String,
    },
    /// No `--context` and no `current-context`.
    #[error("kubeconfig {source_name} has no current-context: pass --context NAME (one of: {available})")]
    NoContext {
        /// Where the kubeconfig came from.
        source_name: String,
        /// The contexts it has.
        available: String,
    },
    /// The context named does not exist.
    #[error("context {context:?} not found in kubeconfig {source_name} (available: {available})")]
    UnknownContext {
        /// The context asked for.
        context: String,
        /// Where the kubeconfig came from.
        source_name: String,
        /// The contexts it has.
        available: String,
    },
    /// kube could not build a client configuration from the context.
    #[error("kubeconfig {source_name}, context {context:?}: {reason}")]
    Invalid {
        /// Where the kubeconfig came from.
        source_name: String,
        /// The context.
        context: String,
        /// What kube said.
        reason: String,
    },
}

/// A loaded kubeconfig and where it came from (for messages).
#[derive(Clone, Debug)]
pub(crate) struct LoadedKubeconfig {
    /// The merged kubeconfig.
    pub(crate) kubeconfig: Kubeconfig,
    /// The file(s) it was read from.
    pub(crate) source_name: String,
}

/// Reads the kubeconfig kubectl would: `explicit`, else the paths in `env` (`$KUBECONFIG`,
/// empty entries skipped, files that do not exist skipped, merged in order), else
/// `<home>/.kube/config`. `Ok(None)` when there is none at all.
pub(crate) fn load_kubeconfig(
    explicit: Option<&Path>,
    env: Option<OsString>,
    home: Option<PathBuf>,
) -> Result<Option<LoadedKubeconfig>, TargetError> {
    let read = |path: &Path| {
        Kubeconfig::read_from(path)
            .map_err(|e| TargetError::Unreadable { path: path.display().to_string(), reason: reason(&e) })
    };
    if let Some(path) = explicit {
        if !path.exists() {
            return Err(TargetError::Unreadable {
                path: path.display().to_string(),
                reason: "no such file (check --kubeconfig)".to_owned(),
            });
        }
        return Ok(Some(LoadedKubeconfig { kubeconfig: read(path)?, source_name: path.display().to_string() }));
    }
    if let Some(value) = env.filter(|v| !v.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty()).collect();
        let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
        if existing.is_empty() {
            return Err(TargetError::Unreadable {
                path: value.to_string_lossy().into_owned(),
                reason: "none of the files in $KUBECONFIG exists".to_owned(),
            });
        }
        let mut merged: Option<Kubeconfig> = None;
        for path in &existing {
            let next = read(path)?;
            merged = Some(match merged {
                None => next,
                Some(first) => first
                    .merge(next)
                    .map_err(|e| TargetError::Unreadable { path: path.display().to_string(), reason: reason(&e) })?,
            });
        }
        let source_name = existing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        return Ok(merged.map(|kubeconfig| LoadedKubeconfig { kubeconfig, source_name }));
    }
    let Some(path) = home.map(|h| h.join(".kube").join("config")).filter(|p| p.exists()) else {
        return Ok(None);
    };
    Ok(Some(LoadedKubeconfig { kubeconfig: read(&path)?, source_name: path.display().to_string() }))
}

fn reason(error: &KubeconfigError) -> String {
    crate::cmd::error_chain(error)
}

/// The context and namespace to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The context name.
    pub(crate) context: String,
    /// The namespace.
    pub(crate) namespace: String,
    /// The server URL of the context's cluster (for messages).
    pub(crate) server: String,
}

/// Picks the context (`--context`, else `current-context`) and the namespace (`-n`, else the
/// context's, else `default`).
pub(crate) fn resolve(
    loaded: &LoadedKubeconfig,
    context: Option<&str>,
    namespace: Option<&str>,
) -> Result<Resolved, TargetError> {
    let kubeconfig = &loaded.kubeconfig;
    let available = || {
        let names: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    };
    let name = match context.or(kubeconfig.current_context.as_deref()).filter(|c| !c.is_empty()) {
        Some(name) => name,
        None => return Err(TargetError::NoContext { source_name: loaded.source_name.clone(), available: available() }),
    };
    let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == name) else {
        return Err(TargetError::UnknownContext {
            context: name.to_owned(),
            source_name: loaded.source_name.clone(),
            available: available(),
        });
    };
    let ctx = named.context.as_ref();
    let server = ctx
        .and_then(|c| kubeconfig.clusters.iter().find(|cl| cl.name == c.cluster))
        .and_then(|cl| cl.cluster.as_ref())
        .and_then(|cl| cl.server.clone())
        .unwrap_or_default();
    let namespace = namespace
        .filter(|n| !n.is_empty())
        .or_else(|| ctx.and_then(|c| c.namespace.as_deref()).filter(|n| !n.is_empty()))
        .unwrap_or("default");
    Ok(Resolved { context: name.to_owned(), namespace: namespace.to_owned(), server })
}

/// A connected API server.
#[derive(Clone)]
pub(crate) struct Target {
    /// The client.
    pub(crate) client: kube::Client,
    /// The client configuration (to build variants, e.g. without a read timeout).
    pub(crate) config: kube::Config,
    /// The namespace commands work in.
    pub(crate) namespace: String,
    /// Whether `-n` was given.
    pub(crate) namespace_explicit: bool,
    /// The server URL, for messages.
    pub(crate) server: String,
    /// The context name (`in-cluster` inside a pod).
    pub(crate) context: String,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")).filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Loads the kubeconfig from the process environment and the flags.
fn load_from_env(args: &GlobalArgs) -> Result<Option<LoadedKubeconfig>, TargetError> {
    load_kubeconfig(args.kubeconfig.as_deref(), std::env::var_os("KUBECONFIG"), home())
}

/// What is known without contacting a server (`--dryrun`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Offline {
    /// The namespace, as [`connect`] would pick it, or `-n`/`default` when there is no
    /// kubeconfig.
    pub(crate) namespace: String,
    /// The server URL, when there is a kubeconfig.
    pub(crate) server: Option<String>,
}

/// The namespace (and server) to use without contacting a server.
pub(crate) fn namespace_only(args: &GlobalArgs) -> Result<Offline, TargetError> {
    match load_from_env(args)? {
        Some(loaded) => {
            let resolved = resolve(&loaded, args.context.as_deref(), args.namespace.as_deref())?;
            Ok(Offline { namespace: resolved.namespace, server: Some(resolved.server) })
        }
        None => Ok(Offline {
            namespace: args.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".to_owned()),
            server: None,
        }),
    }
}

/// Resolves the flags and builds the client.
pub(crate) async fn connect(args: &GlobalArgs) -> anyhow::Result<Target> {
    let explicit_namespace = args.namespace.clone().filter(|n| !n.is_empty());
    let Some(loaded) = load_from_env(args)? else {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() && args.context.is_none() {
            let mut config = kube::Config::incluster().map_err(|e| anyhow::anyhow!("in-cluster configuration: {e}"))?;
            if let Some(ns) = &explicit_namespace {
                config.default_namespace = ns.clone();
            }
            config.default_retry = false;
            let client = crate::warnings::client(config.clone())?;
            return Ok(Target {
                namespace: config.default_namespace.clone(),
                namespace_explicit: explicit_namespace.is_some(),
                server: config.cluster_url.to_string(),
                context: "in-cluster".to_owned(),
                client,
                config,
            });
        }
        return Err(TargetError::NoKubeconfig.into());
    };
    let resolved = resolve(&loaded, args.context.as_deref(), explicit_namespace.as_deref())?;
    let options = KubeConfigOptions { context: Some(resolved.context.clone()), ..KubeConfigOptions::default() };
    let mut config = kube::Config::from_custom_kubeconfig(loaded.kubeconfig.clone(), &options).await.map_err(|e| {
        TargetError::Invalid {
            source_name: loaded.source_name.clone(),
            context: resolved.context.clone(),
            reason: reason(&e),
        }
    })?;
    config.default_namespace = resolved.namespace.clone();
    // kube retries 429/503/504 up to 15 times with a backoff growing to minutes. A command must
    // fail fast, and a 503 through the service proxy is a function's answer: retrying would
    // call the function again.
    config.default_retry = false;
    let client = crate::warnings::client(config.clone()).map_err(|e| TargetError::Invalid {
        source_name: loaded.source_name.clone(),
        context: resolved.context.clone(),
        reason: e.to_string(),
    })?;
    Ok(Target {
        client,
        config,
        namespace: resolved.namespace,
        namespace_explicit: explicit_namespace.is_some(),
        server: resolved.server,
        context: resolved.context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
current-context: local
clusters:
- name: local
  cluster: {server: "http://127.0.0.1:7000"}
- name: prod
  cluster: {server: "https://prod.example.com:6443"}
contexts:
- name: local
  context: {cluster: local, user: me}
- name: prod
  context: {cluster: prod, user: me, namespace: functions}
users:
- name: me
  user: {token: abc}
"#;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn current_context_then_default_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "config", TWO_CONTEXTS);
        let loaded = load_kubeconfig(Some(&file), None, None).unwrap().unwrap();
        let resolved = resolve(&loaded, None, None).unwrap();
        assert_eq!(
            resolved,
            Resolved { context: "local".into(), namespace: "default".into(), server: "http://127.0.0.1:7000".into() }
        );
        assert_eq!(resolve(&loaded, None, Some("team")).unwrap().namespace, "team");
    }

    #[test]
    fn context_flag_picks_a_non_current_context_and_its_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "config", TWO_CONTEXTS);
        let loaded = load_kubeconfig(Some(&file), None, None).unwrap().unwrap();
        let resolved = resolve(&loaded, Some("prod"), None).unwrap();
        assert_eq!(resolved.context, "prod");
        assert_eq!(resolved.namespace, "functions");
        assert_eq!(resolved.server, "https://prod.example.com:6443");
        assert_eq!(resolve(&loaded, Some("prod"), Some("other")).unwrap().namespace, "other");
        let error = resolve(&loaded, Some("staging"), None).unwrap_err().to_string();
        assert_eq!(
            error,
            format!("context \"staging\" not found in kubeconfig {} (available: local, prod)", file.display())
        );
    }

    #[test]
    fn kubeconfig_env_then_home() {
        let dir = tempfile::tempdir().unwrap();
        let first = write(dir.path(), "first", "apiVersion: v1\nkind: Config\ncurrent-context: prod\n");
        let second = write(dir.path(), "second", TWO_CONTEXTS);
        let missing = dir.path().join("missing");
        let env = std::env::join_paths([&missing, &first, &second]).unwrap();
        let loaded = load_kubeconfig(None, Some(env), None).unwrap().unwrap();
        // The first file to set current-context wins; the contexts come from the second.
        assert_eq!(resolve(&loaded, None, None).unwrap().context, "prod");
        assert!(loaded.source_name.contains("first") && loaded.source_name.contains("second"));

        // --kubeconfig beats $KUBECONFIG.
        let explicit = load_kubeconfig(Some(&second), Some(OsString::from(&first)), None).unwrap().unwrap();
        assert_eq!(resolve(&explicit, None, None).unwrap().context, "local");

        // Home: ~/.kube/config.
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".kube")).unwrap();
        write(&home.path().join(".kube"), "config", TWO_CONTEXTS);
        let loaded = load_kubeconfig(None, Some(OsString::new()), Some(home.path().to_owned())).unwrap().unwrap();
        assert_eq!(resolve(&loaded, None, None).unwrap().context, "local");

        // Nothing anywhere.
        let empty = tempfile::tempdir().unwrap();
        assert!(load_kubeconfig(None, None, Some(empty.path().to_owned())).unwrap().is_none());
    }

    #[test]
    fn errors_say_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = load_kubeconfig(Some(&missing), None, None).unwrap_err().to_string();
        assert!(error.contains("no such file (check --kubeconfig)"), "{error}");
        let bad = write(dir.path(), "bad", "clusters: [unterminated");
        assert!(load_kubeconfig(Some(&bad), None, None).unwrap_err().to_string().starts_with("cannot read kubeconfig"));
        let none = write(dir.path(), "none", "apiVersion: v1\nkind: Config\ncontexts: []\n");
        let loaded = load_kubeconfig(Some(&none), None, None).unwrap().unwrap();
        assert!(resolve(&loaded, None, None).unwrap_err().to_string().contains("pass --context NAME"));
        let env = std::env::join_paths([dir.path().join("a"), dir.path().join("b")]).unwrap();
        assert!(load_kubeconfig(None, Some(env), None).unwrap_err().to_string().contains("$KUBECONFIG"));
    }
}
