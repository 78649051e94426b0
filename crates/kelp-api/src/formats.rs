//! Parsers for the string-typed Function spec fields: handler, runtime, checksum, timeout.
//!
//! Each parser's error `Display` is the reason validation reports for that field.

use std::fmt;

/// The timeout Kubeless applies when `spec.timeout` is empty (`FUNC_TIMEOUT`, CronJob
/// `activeDeadlineSeconds`).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 180;

/// The longest `spec.timeout` accepted: one week.
///
/// Kubeless had no bound, but no function could use more: its Node.js runtime's timers hold at
/// most 2^31 - 1 ms (24.8 days), and a call is an HTTP request that proxies, load balancers and
/// clients give up on long before a week. A week keeps every long-running job (a CronJob's
/// `activeDeadlineSeconds`, a nightly batch) working, while every process that adds the timeout
/// to a clock (`kelp-runtime`, `kelp up`, `kelp-triggers`) stays far from overflowing.
pub const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 60 * 60;

/// The longest module part of `spec.handler`, in bytes: the code file is `<module><suffix>`,
/// which must fit a file name (255 bytes) and, on a cluster, a ConfigMap key (253).
pub const MAX_MODULE_LEN: usize = 240;

/// Why a Function spec string is malformed. `Display` is a validation reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The handler does not split on `.` into exactly two parts.
    #[error("must be \"<module>.<function>\" (exactly one dot)")]
    HandlerDots,
    /// The handler's module or function part is empty.
    #[error("must be \"<module>.<function>\" (module and function must not be empty)")]
    HandlerEmptyPart,
    /// The handler's module part is not a plain file name.
    #[error(
        "the module part (before the dot) names the code file: it must be at most {MAX_MODULE_LEN} letters, digits, \
         '-' or '_'"
    )]
    HandlerModule,
    /// The runtime is not `<id><version>`.
    #[error("must be \"<id><version>\" matching ^[a-zA-Z_-]+[0-9.]+$ (e.g. python3.8, nodejs14, go1.14)")]
    Runtime,
    /// Unknown content type.
    #[error(
        "unknown content type {0:?}: must be text, base64 or url (empty means text), optionally \
         followed by +zip or +compressedtar, optionally followed by +deps"
    )]
    ContentType(String),
    /// The checksum is neither empty nor `sha256:<64 lowercase hex>`.
    #[error("must be empty or \"sha256:<64 lowercase hex digits>\"")]
    Checksum,
    /// The timeout is neither empty nor a positive number of seconds.
    #[error("must be empty or a positive integer number of seconds")]
    Timeout,
    /// The timeout is longer than [`MAX_TIMEOUT_SECONDS`].
    #[error("must be at most {MAX_TIMEOUT_SECONDS} seconds (one week)")]
    TimeoutTooLong,
}

/// A parsed `spec.handler`: `"<module>.<function>"`.
///
/// The module names the code file (the class for Java); the function becomes `FUNC_HANDLER`
/// (and `KUBELESS_FUNC_NAME` for the compile step), the module `MOD_NAME`. The module is
/// therefore a plain file name ([`is_module_name`]).
///
/// ```
/// let h = kelp_api::Handler::parse("hello.world").unwrap();
/// assert_eq!((h.module, h.function), ("hello", "world"));
/// assert!(kelp_api::Handler::parse("a.b.c").is_err());
/// assert!(kelp_api::Handler::parse("/abs/path/x.hello").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handler<'a> {
    /// The part before the dot.
    pub module: &'a str,
    /// The part after the dot.
    pub function: &'a str,
}

impl<'a> Handler<'a> {
    /// Splits a handler into module and function.
    pub fn parse(value: &'a str) -> Result<Self, FormatError> {
        let mut parts = value.split('.');
        let (Some(module), Some(function), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(FormatError::HandlerDots);
        };
        if module.is_empty() || function.is_empty() {
            return Err(FormatError::HandlerEmptyPart);
        }
        if !is_module_name(module) {
            return Err(FormatError::HandlerModule);
        }
        Ok(Self { module, function })
    }
}

impl fmt::Display for Handler<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.function)
    }
}

/// Whether `module` may be the module part of a handler: 1 to [`MAX_MODULE_LEN`] ASCII letters,
/// digits, `-` or `_`. It then names a file inside the code directory and nothing else (no
/// separator, no `..`, no hidden file, nothing a shell would read).
///
/// These are the characters Kubeless's functions could use: the code file `<module><suffix>` was
/// a ConfigMap key, which Kubernetes limits to letters, digits, `-`, `_` and `.` (and the module
/// holds no `.`, the handler's separator).
///
/// ```
/// assert!(kelp_api::is_module_name("hello-world_2"));
/// assert!(!kelp_api::is_module_name("../hello"));
/// ```
pub fn is_module_name(module: &str) -> bool {
    (1..=MAX_MODULE_LEN).contains(&module.len())
        && module.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A parsed `spec.runtime`: `<id><version>`, as Kubeless matches it against the
/// `runtime-images` of `kubeless-config` (ID `^[a-zA-Z_-]+`, version `[0-9.]+$`).
///
/// ```
/// let r = kelp_api::RuntimeName::parse("nodejs_distroless8").unwrap();
/// assert_eq!((r.id, r.version), ("nodejs_distroless", "8"));
/// let r = kelp_api::RuntimeName::parse("dotnetcore3.1").unwrap();
/// assert_eq!((r.id, r.version), ("dotnetcore", "3.1"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuntimeName<'a> {
    /// The runtime ID, e.g. `python`.
    pub id: &'a str,
    /// The version, e.g. `3.8`.
    pub version: &'a str,
}

impl<'a> RuntimeName<'a> {
    /// Splits a runtime into ID and version.
    pub fn parse(value: &'a str) -> Result<Self, FormatError> {
        let split = value.find(|c: char| !(c.is_ascii_alphabetic() || c == '_' || c == '-')).unwrap_or(value.len());
        let (id, version) = value.split_at(split);
        if id.is_empty() || version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(FormatError::Runtime);
        }
        Ok(Self { id, version })
    }
}

impl fmt::Display for RuntimeName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.id, self.version)
    }
}

/// Parses `spec.checksum`: `Ok(None)` when empty (Kubeless's deprecated "no check" path),
/// `Ok(Some(hex))` for `sha256:<64 lowercase hex>`.
///
/// ```
/// let sum = format!("sha256:{}", "a".repeat(64));
/// assert_eq!(kelp_api::parse_checksum(&sum).unwrap(), Some("a".repeat(64).as_str()));
/// assert_eq!(kelp_api::parse_checksum("").unwrap(), None);
/// assert!(kelp_api::parse_checksum("md5:abc").is_err());
/// ```
pub fn parse_checksum(value: &str) -> Result<Option<&str>, FormatError> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) => {
            Ok(Some(hex))
        }
        _ => Err(FormatError::Checksum),
    }
}

/// Parses `spec.timeout` in seconds, at most [`MAX_TIMEOUT_SECONDS`]; empty means
/// [`DEFAULT_TIMEOUT_SECONDS`].
///
/// ```
/// assert_eq!(kelp_api::parse_timeout("").unwrap(), 180);
/// assert_eq!(kelp_api::parse_timeout("30").unwrap(), 30);
/// assert!(kelp_api::parse_timeout("0").is_err());
/// assert!(kelp_api::parse_timeout("30s").is_err());
/// assert!(kelp_api::parse_timeout("18446744073709551615").is_err());
/// ```
pub fn parse_timeout(value: &str) -> Result<u64, FormatError> {
    if value.is_empty() {
        return Ok(DEFAULT_TIMEOUT_SECONDS);
    }
    if !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(FormatError::Timeout);
    }
    // All digits: the only parse error left is overflow, which is too long as well.
    match value.parse::<u64>() {
        Ok(0) => Err(FormatError::Timeout),
        Ok(seconds) if seconds <= MAX_TIMEOUT_SECONDS => Ok(seconds),
        _ => Err(FormatError::TimeoutTooLong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers() {
        assert_eq!(Handler::parse("a.b").unwrap().to_string(), "a.b");
        assert_eq!(Handler::parse("ab"), Err(FormatError::HandlerDots));
        assert_eq!(Handler::parse("a.b.c"), Err(FormatError::HandlerDots));
        assert_eq!(Handler::parse(".b"), Err(FormatError::HandlerEmptyPart));
        assert_eq!(Handler::parse("a."), Err(FormatError::HandlerEmptyPart));
    }

    #[test]
    fn handler_modules_are_plain_file_names() {
        for ok in ["hello", "hello-world", "hello_world", "Handler2", "io_ino_Handler", &"m".repeat(MAX_MODULE_LEN)] {
            assert_eq!(Handler::parse(&format!("{ok}.f")).unwrap().module, ok);
        }
        for bad in [
            "/abs/path/x",
            "sub/x",
            "a\\b",
            "x\0y",
            "x y",
            "x;rm",
            "$x",
            "\u{e9}t\u{e9}",
            &"m".repeat(MAX_MODULE_LEN + 1),
        ] {
            assert_eq!(Handler::parse(&format!("{bad}.f")), Err(FormatError::HandlerModule), "{bad:?}");
        }
        // Relative paths have dots, which the handler's own format refuses.
        assert_eq!(Handler::parse("../x.hello"), Err(FormatError::HandlerDots));
    }

    #[test]
    fn runtimes() {
        for ok in ["python3.8", "nodejs14", "go1.14", "nodejs_distroless8", "dotnetcore3.1", "jvm11"] {
            assert_eq!(RuntimeName::parse(ok).unwrap().to_string(), ok);
        }
        for bad in ["python", "3.8", "", "python3.8-slim", "py thon3", "python3x"] {
            assert_eq!(RuntimeName::parse(bad), Err(FormatError::Runtime), "{bad}");
        }
    }

    #[test]
    fn checksums() {
        assert!(parse_checksum(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(parse_checksum(&format!("sha256:{}", "0".repeat(63))).is_err());
        assert!(parse_checksum(&format!("sha1:{}", "0".repeat(64))).is_err());
    }

    #[test]
    fn timeouts() {
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("+5").is_err());
        assert_eq!(parse_timeout("99999999999999999999999"), Err(FormatError::TimeoutTooLong));
        assert_eq!(parse_timeout("18446744073709551615"), Err(FormatError::TimeoutTooLong));
        assert_eq!(parse_timeout(&(MAX_TIMEOUT_SECONDS + 1).to_string()), Err(FormatError::TimeoutTooLong));
        assert_eq!(parse_timeout(&MAX_TIMEOUT_SECONDS.to_string()).unwrap(), MAX_TIMEOUT_SECONDS);
        assert_eq!(parse_timeout("007").unwrap(), 7);
    }
}
