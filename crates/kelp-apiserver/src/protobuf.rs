//! Decoding of the Kubernetes protobuf encoding for the few built-in kinds kubectl sends that
//! way (`kubectl create namespace|secret|configmap` use client-go's typed clients, which send
//! `application/vnd.kubernetes.protobuf` bodies and have no JSON fallback).
//!
//! The encoding: the magic `k8s\0`, then a `runtime.Unknown` message whose `typeMeta` names the
//! kind and whose `raw` holds the object's message. Only decoding is needed: responses are JSON,
//! which the clients accept.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The type of a field, and how it becomes JSON.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// Bytes, as base64 (Kubernetes `[]byte` in JSON).
    Bytes,
    Int,
    Bool,
    /// `meta.v1.Time` → RFC 3339.
    Time,
    Msg(&'static [Field]),
    RepeatedStr,
    RepeatedMsg(&'static [Field]),
    MapStr,
    MapBytes,
}

/// (field number, JSON name, type)
type Field = (u32, &'static str, Ty);

const OWNER_REFERENCE: &[Field] = &[
    (1, "kind", Ty::Str),
    (3, "name", Ty::Str),
    (4, "uid", Ty::Str),
    (5, "apiVersion", Ty::Str),
    (6, "controller", Ty::Bool),
    (7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    (1, "name", Ty::Str),
    (2, "generateName", Ty::Str),
    (3, "namespace", Ty::Str),
    (5, "uid", Ty::Str),
    (6, "resourceVersion", Ty::Str),
    (7, "generation", Ty::Int),
    (8, "creationTimestamp", Ty::Time),
    (9, "deletionTimestamp", Ty::Time),
    (10, "deletionGracePeriodSeconds", Ty::Int),
    (11, "labels", Ty::MapStr),
    (12, "annotations", Ty::MapStr),
    (13, "ownerReferences", Ty::RepeatedMsg(OWNER_REFERENCE)),
    (14, "finalizers", Ty::RepeatedStr),
];

const NAMESPACE: &[Field] = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "spec", Ty::Msg(&[(1, "finalizers", Ty::RepeatedStr)])),
    (3, "status", Ty::Msg(&[(1, "phase", Ty::Str)])),
];

const SECRET: &[Field] = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "data", Ty::MapBytes),
    (3, "type", Ty::Str),
    (4, "stringData", Ty::MapStr),
    (5, "immutable", Ty::Bool),
];

const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Ty::Msg(OBJECT_META)),
    (2, "data", Ty::MapStr),
    (3, "binaryData", Ty::MapBytes),
    (4, "immutable", Ty::Bool),
];

const DELETE_OPTIONS: &[Field] = &[
    (1, "gracePeriodSeconds", Ty::Int),
    (2, "preconditions", Ty::Msg(&[(1, "uid", Ty::Str), (2, "resourceVersion", Ty::Str)])),
    (3, "orphanDependents", Ty::Bool),
    (4, "propagationPolicy", Ty::Str),
    (5, "dryRun", Ty::RepeatedStr),
];

const TYPE_META: &[Field] = &[(1, "apiVersion", Ty::Str), (2, "kind", Ty::Str)];

const MAGIC: &[u8] = b"k8s\0";

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".to_owned())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or("truncated field")?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| format!("invalid UTF-8: {e}"))
}

fn time(bytes: &[u8]) -> Result<Value, String> {
    let fields = message(bytes, &[(1, "seconds", Ty::Int)])?;
    let seconds = fields.get("seconds").and_then(Value::as_i64).unwrap_or(0);
    let t = OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| e.to_string())?;
    Ok(Value::String(t.format(&Rfc3339).map_err(|e| e.to_string())?))
}

/// Decodes one message with the field table `fields` (unknown fields are skipped).
fn message(bytes: &[u8], fields: &[Field]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut r = Reader { bytes, pos: 0 };
    while r.pos < bytes.len() {
        let tag = r.varint()?;
        let (number, wire) = ((tag >> 3) as u32, tag & 7);
        let payload = match wire {
            0 => Payload::Varint(r.varint()?),
            1 => Payload::Bytes(r.take(8)?),
            2 => {
                let len = usize::try_from(r.varint()?).map_err(|_| "length overflow")?;
                Payload::Bytes(r.take(len)?)
            }
            5 => Payload::Bytes(r.take(4)?),
            other => return Err(format!("unsupported wire type {other}")),
        };
        let Some(&(_, name, ty)) = fields.iter().find(|(n, _, _)| *n == number) else { continue };
        let value = match (ty, payload) {
            (Ty::Int, Payload::Varint(v)) => Value::from(v as i64),
            (Ty::Bool, Payload::Varint(v)) => Value::Bool(v != 0),
            (Ty::Str, Payload::Bytes(b)) => Value::String(text(b)?),
            (Ty::Bytes, Payload::Bytes(b)) => Value::String(STANDARD.encode(b)),
            (Ty::Time, Payload::Bytes(b)) => time(b)?,
            (Ty::Msg(inner), Payload::Bytes(b)) => Value::Object(message(b, inner)?),
            (Ty::RepeatedStr, Payload::Bytes(b)) => {
                push(&mut out, name, Value::String(text(b)?));
                continue;
            }
            (Ty::RepeatedMsg(inner), Payload::Bytes(b)) => {
                push(&mut out, name, Value::Object(message(b, inner)?));
                continue;
            }
            (Ty::MapStr | Ty::MapBytes, Payload::Bytes(b)) => {
                let value_ty = if matches!(ty, Ty::MapStr) { Ty::Str } else { Ty::Bytes };
                let entry = message(b, &[(1, "key", Ty::Str), (2, "value", value_ty)])?;
                let key = entry.get("key").and_then(Value::as_str).unwrap_or_default().to_owned();
                let value = entry.get("value").cloned().unwrap_or_else(|| Value::String(String::new()));
                let map = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
                if let Some(map) = map.as_object_mut() {
                    map.insert(key, value);
                }
                continue;
            }
            _ => return Err(format!("field {name} has an unexpected wire type")),
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

enum Payload<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn push(out: &mut Map<String, Value>, name: &str, value: Value) {
    let list = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = list.as_array_mut() {
        list.push(value);
    }
}

/// Decodes a protobuf-encoded Namespace, Secret, ConfigMap or DeleteOptions into its JSON form.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, String> {
    let body = bytes.strip_prefix(MAGIC).ok_or("not a Kubernetes protobuf message (no k8s\\0 prefix)")?;
    let mut r = Reader { bytes: body, pos: 0 };
    let (mut type_meta, mut raw) = (Map::new(), &[][..]);
    while r.pos < body.len() {
        let tag = r.varint()?;
        if tag & 7 != 2 {
            return Err("unexpected wire type in runtime.Unknown".to_owned());
        }
        let len = usize::try_from(r.varint()?).map_err(|_| "length overflow")?;
        let field = r.take(len)?;
        match tag >> 3 {
            1 => type_meta = message(field, TYPE_META)?,
            2 => raw = field,
            _ => {}
        }
    }
    let kind = type_meta.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let fields = match kind.as_str() {
        "Namespace" => NAMESPACE,
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "DeleteOptions" => DELETE_OPTIONS,
        other => return Err(format!("protobuf bodies of kind {other:?} are not supported; send JSON")),
    };
    let mut object = message(raw, fields)?;
    for (key, value) in type_meta {
        object.insert(key, value);
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(number: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_secret_as_kubectl_sends_it() {
        let meta =
            [field(1, b"creds"), field(3, b"team"), field(11, &[field(1, b"a"), field(2, b"b")].concat())].concat();
        let secret =
            [field(1, &meta), field(2, &[field(1, b"token"), field(2, b"abc")].concat()), field(3, b"Opaque")].concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "creds", "namespace": "team", "labels": {"a": "b"}},
                "data": {"token": "YWJj"},
            })
        );
        assert!(decode(b"{}").is_err());
        let pod = [MAGIC.to_vec(), field(1, &[field(1, b"v1"), field(2, b"Pod")].concat())].concat();
        assert!(decode(&pod).unwrap_err().contains("Pod"));
    }

    #[test]
    fn decodes_times_and_varints() {
        let time = [8u8, 0x80, 0xa3, 0xc3, 0xe6, 0x06]; // seconds = 1_758_000_000 - ish
        let meta = [field(8, &time), vec![7 << 3, 3]].concat();
        let ns =
            [MAGIC.to_vec(), field(1, &[field(1, b"v1"), field(2, b"Namespace")].concat()), field(2, &field(1, &meta))]
                .concat();
        let decoded = decode(&ns).unwrap();
        assert_eq!(decoded["metadata"]["generation"], 3);
        assert!(decoded["metadata"]["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    }
}
