//! The `kelp-local` context `kelp up` adds to a kubeconfig, so kubectl, kube-rs and the `kelp`
//! CLI reach the platform the way they reach a cluster.

use serde_json::{Value, json};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// The name of the context, cluster and user `kelp up` writes.
pub const CONTEXT: &str = "kelp-local";

/// Why the kubeconfig could not be updated.
#[derive(Debug, thiserror::Error)]
#[error("updating the kubeconfig {path}: {reason}")]
pub struct KubeconfigError {
    path: PathBuf,
    reason: String,
}

/// What changed in the kubeconfig.
#[derive(Debug, PartialEq)]
pub struct Written {
    /// The file written.
    pub path: PathBuf,
    /// The current context before, if it was another one.
    pub previous_context: Option<String>,
}

/// The kubeconfig kubectl would use: `explicit`, else the first file of `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn default_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(first) = std::env::var_os("KUBECONFIG").and_then(|v| std::env::split_paths(&v).next())
        && !first.as_os_str().is_empty()
    {
        return first;
    }
    std::env::var_os("HOME").map_or_else(|| PathBuf::from(".kube/config"), |h| PathBuf::from(h).join(".kube/config"))
}

/// Adds (or replaces) the `kelp-local` cluster, user and context in `path` — other entries are
/// kept as they are — and makes it the current context.
pub fn write(path: &Path, server: &str, token: Option<&str>, ca_pem: Option<&str>) -> Result<Written, KubeconfigError> {
    let err = |reason: String| KubeconfigError { path: path.to_path_buf(), reason };
    let mut config: Value = match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?,
        Ok(_) => json!({}),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(err(e.to_string())),
    };
    if !config.is_object() {
        return Err(err("not a kubeconfig (expected a mapping)".into()));
    }
    config["apiVersion"] = json!("v1");
    config["kind"] = json!("Config");
    let mut cluster = json!({"server": server});
    if let Some(ca) = ca_pem {
        use base64::Engine;
        cluster["certificate-authority-data"] = json!(base64::engine::general_purpose::STANDARD.encode(ca));
    }
    let user = token.map_or_else(|| json!({}), |t| json!({"token": t}));
    upsert(&mut config, "clusters", "cluster", cluster);
    upsert(&mut config, "users", "user", user);
    upsert(&mut config, "contexts", "context", json!({"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}));
    let previous = config.get("current-context").and_then(Value::as_str).filter(|c| *c != CONTEXT && !c.is_empty());
    let previous_context = previous.map(str::to_string);
    config["current-context"] = json!(CONTEXT);
    let text = serde_saphyr::to_string(&config).map_err(|e| err(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|e| err(e.to_string()))?;
    }
    // The token is in it: the file is owner-only from its creation, never readable for a moment.
    let tmp = path.with_extension(format!("kelp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e.to_string()));
    }
    Ok(Written { path: path.to_path_buf(), previous_context })
}

/// Replaces the entry named [`CONTEXT`] of the list `list` (or appends it).
fn upsert(config: &mut Value, list: &str, field: &str, value: Value) {
    if !config[list].is_array() {
        config[list] = json!([]);
    }
    let entries = config[list].as_array_mut().expect("made an array above");
    entries.retain(|e| e.get("name").and_then(Value::as_str) != Some(CONTEXT));
    entries.push(json!({"name": CONTEXT, field: value}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_context_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- name: prod\n  cluster: {server: https://prod:6443}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: admin}\nusers:\n- name: admin\n  user: {token: abc}\n",
        )
        .unwrap();
        let written = write(&path, "http://127.0.0.1:8080", None, None).unwrap();
        assert_eq!(written.previous_context.as_deref(), Some("prod"));
        let config: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(config["current-context"], CONTEXT);
        assert_eq!(config["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(config["users"][0]["user"]["token"], "abc");
        assert_eq!(config["clusters"][1]["cluster"]["server"], "http://127.0.0.1:8080");
        // Writing again replaces the entry instead of adding another.
        write(&path, "http://127.0.0.1:9090", Some("t"), None).unwrap();
        let config: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(config["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(config["users"][1]["user"]["token"], "t");
    }

    #[test]
    fn the_file_and_a_new_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".kube/config");
        write(&path, "https://127.0.0.1:8080", Some("t"), None).unwrap();
        assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        // Nothing else is left in the directory (the temporary file was renamed).
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
