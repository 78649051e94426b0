//! Parsing request paths into what they address, as a kube-apiserver lays out its URLs.

use std::borrow::Cow;
use std::sync::Arc;

use crate::kinds::{Kind, Kinds};

/// An object, a collection or a subresource of a kind.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub kind: Arc<Kind>,
    /// `None`: all namespaces (or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status`, `log`, ...
    pub subresource: Option<String>,
}

/// What a path addresses.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/api/v1`
    CoreResources,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/apis/{group}/{version}`
    GroupResources(String, String),
    /// `/openapi/v3`
    OpenApiV3Root,
    /// `/openapi/v3/{api/v1 | apis/group/version}`
    OpenApiV3(String),
    /// `/openapi/v2`
    OpenApiV2,
    Resource(Target),
    /// `/api/v1/namespaces/{ns}/services/{svc}[:{port}]/proxy/{rest}`
    ServiceProxy {
        namespace: String,
        service: String,
        port: Option<String>,
        rest: String,
    },
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The segments of `path`, each percent-decoded as kube-apiserver decodes a request's path
/// (`hello%3A8080` is `hello:8080`), or `None` when one does not decode to UTF-8.
fn decoded_segments(path: &str) -> Option<Vec<Cow<'_, str>>> {
    segments(path).into_iter().map(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok()).collect()
}

/// Parses `path`, whose segments may be percent-encoded. The rest of a service proxy's path is
/// kept as sent (still encoded, with its trailing slash), since it is forwarded as a path.
pub(crate) fn parse(kinds: &Kinds, path: &str) -> Option<Route> {
    let decoded = decoded_segments(path)?;
    let s: Vec<&str> = decoded.iter().map(AsRef::as_ref).collect();
    match s.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "readyz" | "livez", ..] => Some(Route::Health),
        ["api"] => Some(Route::CoreVersions),
        ["api", "v1"] => Some(Route::CoreResources),
        ["apis"] => Some(Route::Groups),
        ["apis", group] => kinds.groups().iter().any(|(g, _)| g == group).then(|| Route::Group((*group).to_owned())),
        ["apis", group, version] => kinds
            .in_group_version(group, version)
            .next()
            .map(|_| Route::GroupResources((*group).to_owned(), (*version).to_owned())),
        ["openapi", "v3"] => Some(Route::OpenApiV3Root),
        ["openapi", "v3", rest @ ..] => Some(Route::OpenApiV3(rest.join("/"))),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["api", "v1", rest @ ..] => resource(kinds, "", "v1", rest, path),
        ["apis", group, version, rest @ ..] => resource(kinds, group, version, rest, path),
        _ => None,
    }
}

/// The part of `path` after its first `count` segments, as sent, without its leading slash.
fn raw_tail(path: &str, count: usize) -> String {
    let mut rest = path;
    for _ in 0..count {
        rest = rest.trim_start_matches('/');
        rest = rest.find('/').map_or("", |i| &rest[i..]);
    }
    rest.trim_start_matches('/').to_owned()
}

/// Whether `path` is under `/apis/{group}` for a group, or `/apis/{group}/{version}` for a group
/// version, that is not served at all (as opposed to an unknown resource of a served one).
pub(crate) fn is_unserved_group(kinds: &Kinds, path: &str) -> bool {
    let Some(decoded) = decoded_segments(path) else { return false };
    let s: Vec<&str> = decoded.iter().map(AsRef::as_ref).collect();
    match s.as_slice() {
        ["apis", group] => !kinds.groups().iter().any(|(g, _)| g == group),
        ["apis", group, version, ..] => kinds.in_group_version(group, version).next().is_none(),
        _ => false,
    }
}

fn target(kind: &Arc<Kind>, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>) -> Route {
    Route::Resource(Target {
        kind: kind.clone(),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        subresource: sub.map(str::to_owned),
    })
}

/// `rest`: the decoded segments after the group version; `path`: the whole path as sent.
fn resource(kinds: &Kinds, group: &str, version: &str, rest: &[&str], path: &str) -> Option<Route> {
    let find = |plural: &str| kinds.find(group, version, plural);
    match rest {
        // `/namespaces/{ns}/{plural}...` for namespaced kinds (checked first, so that
        // `/namespaces/{name}/status` stays the namespace's subresource).
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|k| k.namespaced) => {
            let kind = find(plural)?;
            match tail {
                [] => Some(target(kind, Some(ns), None, None)),
                [name] => Some(target(kind, Some(ns), Some(name), None)),
                [name, "proxy", proxied @ ..] if kind.plural == "services" => {
                    let (service, port) = split_service(name);
                    let before = segments(path).len().checked_sub(proxied.len())?;
                    let rest = raw_tail(path, before);
                    Some(Route::ServiceProxy { namespace: (*ns).to_owned(), service, port, rest })
                }
                [name, sub] if is_subresource(kind, sub) => Some(target(kind, Some(ns), Some(name), Some(sub))),
                _ => None,
            }
        }
        [plural] => find(plural).map(|k| target(k, None, None, None)),
        [plural, name] => find(plural).filter(|k| !k.namespaced).map(|k| target(k, None, Some(name), None)),
        [plural, name, sub] => find(plural)
            .filter(|k| !k.namespaced && is_subresource(k, sub))
            .map(|k| target(k, None, Some(name), Some(sub))),
        _ => None,
    }
}

/// Whether `sub` is a subresource of `kind` (`status`, or `log` of pods).
fn is_subresource(kind: &Kind, sub: &str) -> bool {
    match sub {
        "status" => kind.status_subresource,
        "log" => kind.backend == crate::kinds::Backend::Pods,
        _ => false,
    }
}

/// `[scheme:]name[:port]` → (name, port).
fn split_service(segment: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = segment.split(':').collect();
    match parts.as_slice() {
        [name] => ((*name).to_owned(), None),
        ["http" | "https", name] => ((*name).to_owned(), None),
        ["http" | "https", name, port] | [name, port] => ((*name).to_owned(), Some((*port).to_owned())),
        _ => (segment.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> (String, Option<String>, Option<String>, Option<String>) {
        match parse(&Kinds::new(), path) {
            Some(Route::Resource(t)) => (t.kind.plural.clone(), t.namespace, t.name, t.subresource),
            other => panic!("{path}: {other:?}"),
        }
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn resources() {
        assert_eq!(
            res("/apis/kubeless.io/v1beta1/namespaces/default/functions"),
            ("functions".into(), s("default"), None, None)
        );
        assert_eq!(
            res("/apis/kubeless.io/v1beta1/namespaces/default/functions/hello/"),
            ("functions".into(), s("default"), s("hello"), None)
        );
        assert_eq!(
            res("/apis/kubeless.io/v1beta1/namespaces/d/httptriggers/h/status"),
            ("httptriggers".into(), s("d"), s("h"), s("status"))
        );
        assert_eq!(res("/apis/kubeless.io/v1beta1/functions"), ("functions".into(), None, None, None));
        assert_eq!(res("/api/v1/namespaces"), ("namespaces".into(), None, None, None));
        assert_eq!(res("/api/v1/namespaces/kubeless"), ("namespaces".into(), None, s("kubeless"), None));
        assert_eq!(res("/api/v1/namespaces/default/secrets/s"), ("secrets".into(), s("default"), s("s"), None));
        assert_eq!(res("/api/v1/namespaces/default/pods/p/log"), ("pods".into(), s("default"), s("p"), s("log")));
        assert_eq!(res("/api/v1/pods"), ("pods".into(), None, None, None));
        assert_eq!(res("/api/v1/configmaps"), ("configmaps".into(), None, None, None));
    }

    #[test]
    fn other_routes() {
        let kinds = Kinds::new();
        let p = |path: &str| parse(&kinds, path);
        assert!(matches!(p("/version"), Some(Route::Version)));
        assert!(matches!(p("/api"), Some(Route::CoreVersions)));
        assert!(matches!(p("/api/v1"), Some(Route::CoreResources)));
        assert!(matches!(p("/apis"), Some(Route::Groups)));
        assert!(matches!(p("/apis/kubeless.io"), Some(Route::Group(g)) if g == "kubeless.io"));
        assert!(matches!(p("/apis/kubeless.io/v1beta1"), Some(Route::GroupResources(..))));
        assert!(
            matches!(p("/openapi/v3/apis/kubeless.io/v1beta1"), Some(Route::OpenApiV3(g)) if g == "apis/kubeless.io/v1beta1")
        );
        for missing in [
            "/apis/batch",
            "/apis/kubeless.io/v1",
            "/apis/kubeless.io/v1beta1/widgets",
            "/apis/kubeless.io/v1beta1/functions/x",
            "/api/v1/namespaces/default/widgets",
            "/api/v1/namespaces/default/functions",
            "/api/v1/namespaces/default/secrets/a/b/c",
            "/nope",
            "/api/v1/namespaces/kubeless/status",
            "/apis/kubeless.io/v1beta1/namespaces/d/functions/f/scale",
        ] {
            assert!(p(missing).is_none(), "{missing}");
        }
        match p("/api/v1/namespaces/default/services/https:hello:8080/proxy/a/b") {
            Some(Route::ServiceProxy { namespace, service, port, rest }) => {
                assert_eq!(
                    (namespace.as_str(), service.as_str(), port.as_deref(), rest.as_str()),
                    ("default", "hello", Some("8080"), "a/b")
                );
            }
            other => panic!("{other:?}"),
        }
        match p("/api/v1/namespaces/d%65fault//services/hello%3Ahttp/proxy//a%2Fb/") {
            Some(Route::ServiceProxy { namespace, service, port, rest }) => {
                assert_eq!(
                    (namespace.as_str(), service.as_str(), port.as_deref(), rest.as_str()),
                    ("default", "hello", Some("http"), "a%2Fb/")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(p("/api/v1/namespaces/%FF/pods").is_none(), "not UTF-8 once decoded");
        match p("/api/v1/namespaces/default/services/hello/proxy") {
            Some(Route::ServiceProxy { service, port, rest, .. }) => {
                assert_eq!((service.as_str(), port, rest.as_str()), ("hello", None, ""));
            }
            other => panic!("{other:?}"),
        }
    }
}
