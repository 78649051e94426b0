//! The API server's warnings (`Warning: 299 - "..."` response headers), printed on stderr as
//! kubectl prints them: `Warning: <text>`, each once per command. Kubernetes sends them for
//! deprecated APIs and unknown fields; `kelp up` also says which interpreter runs a Function
//! whose runtime names another version than the one installed.

use std::collections::BTreeSet;
use std::sync::Mutex;

use http::HeaderMap;
use kube::client::ClientBuilder;

/// Warnings already printed by this process.
static PRINTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// kube's client for `config`, printing the warnings of every response.
pub(crate) fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    let layer = tower::util::MapResponseLayer::new(print);
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}

/// Prints the warnings of `response` not printed yet, and passes it on.
fn print<B>(response: http::Response<B>) -> http::Response<B> {
    for warning in warnings(response.headers()) {
        if PRINTED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(warning.clone()) {
            eprintln!("Warning: {warning}");
        }
    }
    response
}

/// The texts of the `Warning` headers: `299 - "text"` (RFC 7234: code, agent, quoted text,
/// optional date).
fn warnings(headers: &HeaderMap) -> Vec<String> {
    headers.get_all(http::header::WARNING).iter().filter_map(|v| v.to_str().ok()).filter_map(text).collect()
}

/// The quoted text of one warning value, unescaped.
fn text(value: &str) -> Option<String> {
    let (_code, rest) = value.trim().split_once(' ')?;
    let (_agent, quoted) = rest.trim_start().split_once(' ')?;
    let mut chars = quoted.trim_start().strip_prefix('"')?.chars();
    let mut text = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(text),
            '\\' => text.push(chars.next()?),
            c => text.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_headers_are_read_as_kubectl_reads_them() {
        let mut headers = HeaderMap::new();
        for value in [
            r#"299 - "runtime python3.8 runs on Python 3.11.7 (python3)""#,
            r#"299 - "unknown field \"spec.x\"" "Thu, 26 Nov 2026 22:00:00 GMT""#,
            "299 - not quoted",
        ] {
            headers.append(http::header::WARNING, value.parse().unwrap());
        }
        assert_eq!(
            warnings(&headers),
            ["runtime python3.8 runs on Python 3.11.7 (python3)", r#"unknown field "spec.x""#]
        );
    }
}
