//! The runtime's configuration: Kubeless's environment contract plus Kelp's own knobs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::MAX_BODY;

/// The longest `FUNC_TIMEOUT` (and `KELP_SHUTDOWN_TIMEOUT`): one week, the bound `kelp-api`
/// puts on `spec.timeout` (`MAX_TIMEOUT_SECONDS`). Deadlines are the start of a request plus
/// the timeout; bounded, they never overflow the clock.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The most workers of one runtime (`KELP_WORKERS`, `KELP_MAX_WORKERS`): each is an interpreter
/// process.
pub const MAX_WORKERS: usize = 1024;

/// Everything the runtime reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `FUNC_HANDLER`: the function to call.
    pub handler: Option<String>,
    /// `MOD_NAME`: the module holding it, a file name in the code directory
    /// ([`is_file_name`]).
    pub module: Option<String>,
    /// `FUNC_TIMEOUT` in seconds (default 180): finite, positive, at most [`MAX_TIMEOUT`].
    pub timeout_secs: f64,
    /// `FUNC_RUNTIME`, such as `python3.8`.
    pub runtime: Option<String>,
    /// `FUNC_MEMORY_LIMIT` (default `"0"`), passed to the function's context.
    pub memory_limit: String,
    /// `FUNC_PORT` (default 8080).
    pub port: u16,
    /// `KELP_LISTEN`: the address to bind (default 127.0.0.1; images set 0.0.0.0).
    pub listen: IpAddr,
    /// `KUBELESS_INSTALL_VOLUME` (default `/kubeless`): where the code is.
    pub code_dir: PathBuf,
    /// `KELP_WORKERS`: workers kept running (default: one per core), at most [`MAX_WORKERS`].
    pub min_workers: usize,
    /// `KELP_MAX_WORKERS`: the pool grows up to this many when requests wait (default 4 × min),
    /// at most [`MAX_WORKERS`].
    pub max_workers: usize,
    /// Largest request body accepted, in bytes: `FUNC_MEMFILE_MAX` (bytes) or `REQ_MB_LIMIT`
    /// (MiB), as in Kubeless's Python and Node.js runtimes; default 100 MiB, at most
    /// [`MAX_BODY`] (what a frame of the worker protocol holds).
    pub max_body: usize,
    /// `KELP_CACHE_DIR`: where worker scripts (and, by default, installed dependencies) are kept.
    pub cache_dir: PathBuf,
    /// `KELP_DEPS_DIR` (default `<KELP_CACHE_DIR>/deps`): where dependencies are installed, one
    /// directory per language and content hash. It may be shared, even read-only (an install
    /// found there is used as it is).
    pub deps_dir: PathBuf,
    /// `KELP_NAMESPACE` (default empty): the function's namespace, part of the key of its
    /// dependency installs, so that namespaces sharing a cache never share an install.
    pub namespace: String,
    /// `KELP_DEPS_STAGE`: the directory `--fetch-deps` fetches the dependencies into and from
    /// which an install then runs offline, so that the packages' install scripts run without the
    /// credentials the fetch had (unset: installs download as they go).
    pub deps_stage: Option<PathBuf>,
    /// `KELP_INSTALL_TIMEOUT` seconds (default 600): how long a dependency install may take, and
    /// how long an instance waits for another one's install of the same dependencies.
    pub install_timeout: Duration,
    /// `KELP_BUILD_TIMEOUT` seconds (default 300): how long the build of a compiled language's
    /// function may take, and how long an instance waits for another one's build of it.
    pub build_timeout: Duration,
    /// `KELP_SHUTDOWN_TIMEOUT` seconds (default 30, at most [`MAX_TIMEOUT`]): how long SIGTERM
    /// waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// `KELP_UNIX_LISTEN`: a Unix socket path to serve HTTP on as well (mode 0600), for a
    /// gateway on the same machine (`kelp up`'s).
    pub unix_listen: Option<PathBuf>,
    /// `KELP_ACCESS_LOG` (default on; `0` or `false` turns the per-request log line off).
    pub access_log: bool,
    /// `KELP_PIPELINE_BELOW` milliseconds (default 1, at most 1000; `0` turns pipelining off):
    /// calls are sent to a busy worker ahead of its answer only while the function's calls take
    /// less than this on average (`crate::pool`).
    pub pipeline_below: Duration,
    /// `KELP_EXIT_WITH_PARENT=1`: shut down (as on SIGTERM) when the process that started this
    /// one dies, so a supervisor killed with SIGKILL leaves no instance behind.
    pub exit_with_parent: bool,
    /// `KELP_IN_PROCESS=1` (`1`/`true`/`on`, or `0`/`false`/`off`, the default): a compiled
    /// function whose build has a library (Rust, Go) runs inside the front's process, on threads of its
    /// own, instead of in worker processes (`crate::native`: faster, but a function that exits
    /// takes the front with it).
    pub in_process: bool,
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: &'static str,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get`, which returns a variable's value if it is set.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = |v: &usize| (1..=MAX_WORKERS).contains(v);
        let min_workers = parse(&get, "KELP_WORKERS", "a number of workers from 1 to 1024", workers)?
            .unwrap_or(cores.min(MAX_WORKERS));
        let max_body = match (get("FUNC_MEMFILE_MAX"), get("REQ_MB_LIMIT")) {
            (Some(_), _) => {
                parse(&get, "FUNC_MEMFILE_MAX", "a size in bytes, less than 4 GiB", |v: &usize| *v <= MAX_BODY)?
            }
            (None, Some(_)) => parse(&get, "REQ_MB_LIMIT", "a size in MiB, less than 4096", |mb: &usize| {
                mb.checked_mul(1 << 20).is_some_and(|bytes| bytes <= MAX_BODY)
            })?
            .map(|mb| mb << 20),
            (None, None) => None,
        };
        let cache_dir = get("KELP_CACHE_DIR").map_or_else(|| default_cache_dir(&get), PathBuf::from);
        Ok(Config {
            handler: get("FUNC_HANDLER"),
            module: match get("MOD_NAME") {
                Some(value) if !is_file_name(&value) => {
                    return Err(ConfigError {
                        name: "MOD_NAME",
                        value,
                        reason: "a module name: a file name in the code directory, not a path",
                    });
                }
                module => module,
            },
            timeout_secs: parse(
                &get,
                "FUNC_TIMEOUT",
                "a positive number of seconds, at most 604800 (one week)",
                |v: &f64| *v > 0.0 && seconds(*v).is_some(),
            )?
            .unwrap_or(180.0),
            runtime: get("FUNC_RUNTIME"),
            memory_limit: get("FUNC_MEMORY_LIMIT").unwrap_or_else(|| "0".into()),
            port: parse(&get, "FUNC_PORT", "a TCP port", |_: &u16| true)?.unwrap_or(8080),
            listen: parse(&get, "KELP_LISTEN", "an IP address", |_: &IpAddr| true)?
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            code_dir: get("KUBELESS_INSTALL_VOLUME").map_or_else(|| PathBuf::from("/kubeless"), PathBuf::from),
            min_workers,
            max_workers: parse(&get, "KELP_MAX_WORKERS", "a number of workers from 1 to 1024", workers)?
                .unwrap_or(min_workers.saturating_mul(4).min(MAX_WORKERS))
                .max(min_workers),
            max_body: max_body.unwrap_or(100 << 20),
            deps_dir: get("KELP_DEPS_DIR").map_or_else(|| cache_dir.join("deps"), PathBuf::from),
            cache_dir,
            namespace: get("KELP_NAMESPACE").unwrap_or_default(),
            deps_stage: get("KELP_DEPS_STAGE").filter(|s| !s.is_empty()).map(PathBuf::from),
            install_timeout: parse(
                &get,
                "KELP_INSTALL_TIMEOUT",
                "a positive number of seconds, at most 604800 (one week)",
                |v: &f64| *v > 0.0 && seconds(*v).is_some(),
            )?
            .and_then(seconds)
            .unwrap_or(crate::deps::DEFAULT_INSTALL_TIMEOUT),
            build_timeout: parse(
                &get,
                "KELP_BUILD_TIMEOUT",
                "a positive number of seconds, at most 604800 (one week)",
                |v: &f64| *v > 0.0 && seconds(*v).is_some(),
            )?
            .and_then(seconds)
            .unwrap_or(crate::build::DEFAULT_BUILD_TIMEOUT),
            shutdown_timeout: parse(
                &get,
                "KELP_SHUTDOWN_TIMEOUT",
                "a number of seconds, at most 604800 (one week)",
                |v: &f64| seconds(*v).is_some(),
            )?
            .and_then(seconds)
            .unwrap_or(Duration::from_secs(30)),
            unix_listen: get("KELP_UNIX_LISTEN").map(PathBuf::from),
            pipeline_below: parse(
                &get,
                "KELP_PIPELINE_BELOW",
                "a number of milliseconds from 0 to 1000",
                |v: &f64| (0.0..=1000.0).contains(v),
            )?
            .map_or(crate::pool::PIPELINE_BELOW, |ms| Duration::from_secs_f64(ms / 1000.0)),
            access_log: !matches!(get("KELP_ACCESS_LOG").as_deref(), Some("0" | "false" | "off")),
            exit_with_parent: matches!(get("KELP_EXIT_WITH_PARENT").as_deref(), Some("1" | "true" | "on")),
            in_process: match get("KELP_IN_PROCESS") {
                None => false,
                Some(value) => match value.as_str() {
                    "1" | "true" | "on" => true,
                    "0" | "false" | "off" => false,
                    _ => {
                        return Err(ConfigError {
                            name: "KELP_IN_PROCESS",
                            value,
                            reason: "1, true or on; 0, false or off",
                        });
                    }
                },
            },
        })
    }

    /// The function's timeout.
    pub fn timeout(&self) -> Duration {
        seconds(self.timeout_secs).unwrap_or(MAX_TIMEOUT)
    }
}

/// `value` seconds as a duration, if it is a number from 0 to [`MAX_TIMEOUT`] (not NaN or
/// infinite, which `Duration::from_secs_f64` would panic on).
fn seconds(value: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(value).ok().filter(|d| *d <= MAX_TIMEOUT)
}

/// Whether `name` names a file directly inside a directory, and nothing else: not empty, not `.`
/// or `..`, no `/`, `\` or NUL, at most 255 bytes. Whatever writes or reads a file named after
/// user input (the module of a handler) checks this first, so it cannot leave its directory.
pub fn is_file_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..") && name.len() <= 255 && !name.contains(['/', '\\', '\0'])
}

/// Whether an environment variable configures a runtime instance (Kubeless's contract or Kelp's
/// own knobs), as opposed to saying where the tools are (`KELP_PYTHON`, `KELP_NODE`, `KELP_NPM`,
/// `KELP_JAVA`, `KELP_MAVEN`).
/// Whoever starts runtimes sets these per instance rather than passing its own on.
pub fn is_instance_setting(name: &str) -> bool {
    let tool = matches!(name, "KELP_PYTHON" | "KELP_NODE" | "KELP_NPM" | "KELP_JAVA" | "KELP_MAVEN");
    !tool
        && (name.starts_with("FUNC_")
            || name.starts_with("KELP_")
            || name.starts_with("KUBELESS_")
            || matches!(name, "MOD_NAME" | "REQ_MB_LIMIT"))
}

/// Whether a variable of the environment of whoever starts runtimes (`kelp up`) is passed on to
/// them: where the tools are, what they need to run and to install dependencies (search path,
/// home, locale, time zone, temporary directory, certificate bundles, proxies, pip's and npm's
/// settings, where plugin runtimes are and their interpreters). Nothing else is: that environment may hold a broker's password or a cloud
/// credential, which no function should read.
pub fn is_host_setting(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "KELP_PYTHON",
        "KELP_NODE",
        "KELP_NPM",
        "KELP_GO",
        "KELP_JAVA",
        "KELP_CARGO",
        "KELP_BUILD_TIMEOUT",
        "KELP_MAVEN",
        crate::plugin::PATH_VAR,
        "JAVA_HOME",
        "MAVEN_OPTS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
    ];
    // Proxies and npm's settings are read in either case (`https_proxy`, `npm_config_registry`).
    const ANY_CASE: &[&str] = &["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"];
    let upper = name.to_ascii_uppercase();
    NAMES.contains(&name)
        || ANY_CASE.contains(&upper.as_str())
        || name.starts_with("LC_")
        || name.starts_with("PIP_")
        // The Go toolchain's settings (`GOPROXY`, `GOSUMDB`, `GOPRIVATE`, `GOFLAGS`) and Cargo's
        // (`CARGO_HTTP_CAINFO`, `CARGO_REGISTRIES_<name>_INDEX`).
        || (name.starts_with("GO") && name.bytes().all(|b| b.is_ascii_uppercase()))
        || name.starts_with("CARGO_HTTP_")
        || name.starts_with("CARGO_REGISTRIES_")
        // A plugin runtime's interpreter variable (`KELP_RUBY`, `KELP_PHP`).
        || (name.starts_with("KELP_")
            && crate::plugin::all().into_iter().flatten().any(|p| p.language.interpreter.0 == name))
        || upper.starts_with("NPM_CONFIG_")
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    reason: &'static str,
    ok: impl Fn(&T) -> bool,
) -> Result<Option<T>, ConfigError> {
    get(name)
        .map(|value| match value.trim().parse::<T>() {
            Ok(v) if ok(&v) => Ok(v),
            _ => Err(ConfigError { name, value, reason }),
        })
        .transpose()
}

/// `$XDG_CACHE_HOME/kelp`, else `$HOME/.cache/kelp`, else `<tmp>/kelp-cache`.
fn default_cache_dir(get: &impl Fn(&str) -> Option<String>) -> PathBuf {
    get("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map_or_else(|| std::env::temp_dir().join("kelp-cache"), |d| d.join("kelp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn only_host_settings_are_passed_on() {
        for name in
            ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "KELP_PYTHON", "https_proxy", "PIP_INDEX_URL", "npm_config_cache"]
                .into_iter()
                .chain(["KELP_GO", "GOPROXY", "GOFLAGS", "KELP_BUILD_TIMEOUT", "CARGO_HTTP_CAINFO", "MAVEN_OPTS"])
        {
            assert!(is_host_setting(name), "{name}");
        }
        for name in
            ["KAFKA_PASSWORD", "KAFKA_USERNAME", "AWS_SECRET_ACCESS_KEY", "KUBECONFIG", "FUNC_HANDLER", "KELP_LOG"]
                .into_iter()
                .chain(["GOOGLE_APPLICATION_CREDENTIALS", "Go_TOKEN", "CARGO_REGISTRY_TOKEN"])
        {
            assert!(!is_host_setting(name), "{name}");
        }
    }

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_follow_kubeless() {
        let c = config(&[]).unwrap();
        assert_eq!((c.port, c.timeout_secs, c.memory_limit.as_str()), (8080, 180.0, "0"));
        assert_eq!(c.code_dir, PathBuf::from("/kubeless"));
        assert_eq!(c.listen, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(c.max_body, 100 << 20);
        assert_eq!(c.deps_dir, c.cache_dir.join("deps"));
    }

    #[test]
    fn dependencies_may_live_outside_the_cache() {
        let c = config(&[("KELP_CACHE_DIR", "/tmp/c"), ("KELP_DEPS_DIR", "/kelp-deps")]).unwrap();
        assert_eq!((c.cache_dir, c.deps_dir), (PathBuf::from("/tmp/c"), PathBuf::from("/kelp-deps")));
    }

    #[test]
    fn body_limits_read_both_kubeless_names() {
        assert_eq!(config(&[("REQ_MB_LIMIT", "2")]).unwrap().max_body, 2 << 20);
        assert_eq!(config(&[("FUNC_MEMFILE_MAX", "1000")]).unwrap().max_body, 1000);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("FUNC_TIMEOUT", "soon")]).unwrap_err().to_string();
        assert!(err.starts_with("FUNC_TIMEOUT=\"soon\""), "{err}");
        assert!(config(&[("FUNC_PORT", "99999")]).is_err());
        assert!(config(&[("KELP_WORKERS", "0")]).is_err());
        assert!(!config(&[]).unwrap().in_process);
        assert!(config(&[("KELP_IN_PROCESS", "true")]).unwrap().in_process);
        assert!(!config(&[("KELP_IN_PROCESS", "off")]).unwrap().in_process);
        let refused = config(&[("KELP_IN_PROCESS", "yes")]).unwrap_err().to_string();
        assert!(refused.starts_with("KELP_IN_PROCESS=\"yes\""), "{refused}");
        for bad in ["0", "inf", "1e30", "NaN"] {
            assert!(config(&[("KELP_INSTALL_TIMEOUT", bad)]).is_err(), "{bad}");
        }
        assert_eq!(config(&[("KELP_INSTALL_TIMEOUT", "1.5")]).unwrap().install_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn workers_are_bounded() {
        // `min × 4` overflowed (a panic in debug builds), and each worker is a process.
        for (name, bad) in [("KELP_WORKERS", "18446744073709551615"), ("KELP_MAX_WORKERS", "1025")] {
            let err = config(&[(name, bad)]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name}={bad:?}: a number of workers from 1 to 1024")), "{err}");
        }
        let c = config(&[("KELP_WORKERS", "1000")]).unwrap();
        assert_eq!((c.min_workers, c.max_workers), (1000, MAX_WORKERS));
    }

    #[test]
    fn the_module_is_a_file_name_not_a_path() {
        for bad in ["/abs/path/x", "../x", "..", "a\\b", "x\0y"] {
            let err = config(&[("MOD_NAME", bad)]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("MOD_NAME={bad:?}: a module name")), "{err}");
        }
        assert_eq!(config(&[("MOD_NAME", "hello-world_2")]).unwrap().module.as_deref(), Some("hello-world_2"));
    }

    #[test]
    fn timeouts_are_finite_and_at_most_a_week() {
        for bad in ["inf", "-inf", "NaN", "1e300", "18446744073709551615", "604800.5", "0", "-1"] {
            let err = config(&[("FUNC_TIMEOUT", bad)]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("FUNC_TIMEOUT={bad:?}: a positive number of seconds")), "{err}");
            assert!(config(&[("KELP_SHUTDOWN_TIMEOUT", bad)]).is_err() || bad == "0", "{bad}");
        }
        let week = config(&[("FUNC_TIMEOUT", "604800"), ("KELP_SHUTDOWN_TIMEOUT", "0.5")]).unwrap();
        assert_eq!((week.timeout(), week.shutdown_timeout), (MAX_TIMEOUT, Duration::from_millis(500)));
        assert_eq!(config(&[("FUNC_TIMEOUT", "1.5")]).unwrap().timeout(), Duration::from_millis(1500));
    }

    #[test]
    fn body_limits_fit_a_frame() {
        for (name, bad) in
            [("REQ_MB_LIMIT", "4096"), ("REQ_MB_LIMIT", "18446744073709551615"), ("FUNC_MEMFILE_MAX", "4294967296")]
        {
            let err = config(&[(name, bad)]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name}={bad:?}: a size in")), "{err}");
        }
        assert_eq!(config(&[("REQ_MB_LIMIT", "4095")]).unwrap().max_body, 4095 << 20);
    }
}
