//! A function's Secret and ConfigMap volumes (what `kelp function deploy --secrets` adds: volume
//! `<s>-vol` mounted at `/<s>`), read as a kubelet would before it starts the container: every
//! key of the object, or only its `items`, as files under the container's `mountPath`.

use crate::env::{self, Lookup};
use k8s_openapi::api::core::v1::{Container, KeyToPath, PodSpec};
use kelp_local::Volume;
use serde_json::Value;

/// Why a volume cannot be read; the function is not started until it can.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("volume {volume}: {reason}")]
pub struct VolumeError {
    /// The volume's name in the pod template.
    pub volume: String,
    /// What is missing, naming the Secret or ConfigMap.
    pub reason: String,
}

/// The Secret and ConfigMap volumes that `container` mounts, from `pod`'s volumes, in the order
/// of its `volumeMounts`. Other kinds of volumes are left out.
pub fn resolve(
    pod: &PodSpec,
    container: &Container,
    namespace: &str,
    lookup: &dyn Lookup,
) -> Result<Vec<Volume>, VolumeError> {
    let mut volumes = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = pod.volumes.iter().flatten().find(|v| v.name == mount.name) else {
            return Err(VolumeError {
                volume: mount.name.clone(),
                reason: "mounted but not in the pod's volumes".into(),
            });
        };
        let err = |reason: String| VolumeError { volume: volume.name.clone(), reason };
        let (resource, object, items, optional) = match (&volume.secret, &volume.config_map) {
            (Some(s), _) => ("/secrets", s.secret_name.clone().unwrap_or_default(), &s.items, s.optional),
            (None, Some(c)) => ("/configmaps", c.name.clone(), &c.items, c.optional),
            (None, None) => continue,
        };
        let named = env::named(resource, namespace, &object);
        let files = match lookup.get(resource, namespace, &object) {
            Some(found) => files(resource, &found, items.as_deref(), optional.unwrap_or(false))
                .map_err(|key| err(format!("{named} has no key {key:?}")))?,
            None if optional.unwrap_or(false) => Vec::new(),
            None => return Err(err(format!("{named} not found"))),
        };
        volumes.push(Volume { mount_path: mount.mount_path.clone(), secret: resource == "/secrets", files });
    }
    Ok(volumes)
}

/// The files of a Secret or ConfigMap: every key, or the `items` (key → path); `Err(key)` for an
/// item whose key is missing (unless the volume is optional).
fn files(
    resource: &str,
    object: &Value,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut data = env::data(resource, object);
    if resource == "/configmaps" {
        let binary = object.get("binaryData").and_then(Value::as_object).into_iter().flatten();
        data.extend(binary.map(|(k, v)| (k.clone(), env::bytes(v, true))));
    }
    let Some(items) = items.filter(|i| !i.is_empty()) else { return Ok(data) };
    let mut files = Vec::new();
    for item in items {
        match data.iter().find(|(k, _)| *k == item.key) {
            Some((_, content)) => files.push((item.path.clone(), content.clone())),
            None if optional => {}
            None => return Err(item.key.clone()),
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Objects(Vec<(&'static str, &'static str, Value)>);

    impl Lookup for Objects {
        fn get(&self, resource: &str, _namespace: &str, name: &str) -> Option<Value> {
            self.0.iter().find(|(r, n, _)| *r == resource && *n == name).map(|(_, _, v)| v.clone())
        }
    }

    fn objects() -> Objects {
        Objects(vec![
            ("/secrets", "s1", json!({"data": {"key": "TVlfS0VZ"}, "stringData": {"other": "x"}})),
            ("/configmaps", "cfg", json!({"data": {"a": "1"}, "binaryData": {"b": "Ag=="}})),
        ])
    }

    fn pod_of(volumes: Value, mounts: Value) -> (PodSpec, Container) {
        let pod: PodSpec =
            serde_json::from_value(json!({"volumes": volumes, "containers": [{"name": "", "volumeMounts": mounts}]}))
                .unwrap();
        let container = pod.containers[0].clone();
        (pod, container)
    }

    #[test]
    fn secrets_and_configmaps_become_files_at_their_mount_paths() {
        let (pod, container) = pod_of(
            json!([
                {"name": "s1-vol", "secret": {"secretName": "s1"}},
                {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "b", "path": "sub/b.bin"}]}},
                {"name": "scratch", "emptyDir": {}},
            ]),
            json!([
                {"name": "s1-vol", "mountPath": "/s1"},
                {"name": "conf", "mountPath": "/etc/conf"},
                {"name": "scratch", "mountPath": "/tmp/x"},
            ]),
        );
        let volumes = resolve(&pod, &container, "default", &objects()).unwrap();
        let secret = Volume {
            mount_path: "/s1".into(),
            secret: true,
            files: vec![("key".into(), b"MY_KEY".to_vec()), ("other".into(), b"x".to_vec())],
        };
        let config =
            Volume { mount_path: "/etc/conf".into(), secret: false, files: vec![("sub/b.bin".into(), vec![2])] };
        assert_eq!(volumes, [secret, config]);
    }

    #[test]
    fn a_missing_secret_or_key_is_named() {
        let (pod, container) = pod_of(
            json!([{"name": "gone-vol", "secret": {"secretName": "gone"}}]),
            json!([{"name": "gone-vol", "mountPath": "/gone"}]),
        );
        let err = resolve(&pod, &container, "team", &objects()).unwrap_err();
        assert_eq!(err.to_string(), "volume gone-vol: secret team/gone not found");
        let (pod, container) = pod_of(
            json!([{"name": "v", "secret": {"secretName": "s1", "items": [{"key": "nope", "path": "p"}]}}]),
            json!([{"name": "v", "mountPath": "/v"}]),
        );
        let err = resolve(&pod, &container, "team", &objects()).unwrap_err();
        assert_eq!(err.to_string(), "volume v: secret team/s1 has no key \"nope\"");
        let (pod, container) = pod_of(
            json!([{"name": "v", "secret": {"secretName": "gone", "optional": true}}]),
            json!([{"name": "v", "mountPath": "/v"}]),
        );
        assert_eq!(resolve(&pod, &container, "team", &objects()).unwrap()[0].files, []);
    }
}
