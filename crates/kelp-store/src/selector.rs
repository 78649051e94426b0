//! Label and field selectors, with the syntax of the Kubernetes `labelSelector` and
//! `fieldSelector` query parameters.

use std::fmt;

use serde_json::Value;

/// A selector string that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// The operator of one label requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelOp {
    /// `a=b`, `a==b`
    Equals(String),
    /// `a!=b`: the label is absent or has another value.
    NotEquals(String),
    /// `a in (x,y)`
    In(Vec<String>),
    /// `a notin (x,y)`: the label is absent or has none of the values.
    NotIn(Vec<String>),
    /// `a`
    Exists,
    /// `!a`
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

impl LabelRequirement {
    fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).and_then(Value::as_str);
        match (&self.op, value) {
            (LabelOp::Equals(want), Some(v)) => v == want,
            (LabelOp::Equals(_), None) => false,
            (LabelOp::NotEquals(want), v) => v != Some(want.as_str()),
            (LabelOp::In(set), Some(v)) => set.iter().any(|s| s == v),
            (LabelOp::In(_), None) => false,
            (LabelOp::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::DoesNotExist, v) => v.is_none(),
        }
    }
}

/// A label selector: every requirement must hold (`a=b,c in (x,y),!d`). The empty selector
/// matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("{whole}: expected a parenthesised set of values")))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        return Err(SelectorError(format!("{whole}: for 'in', 'notin' operators, values set can't be empty")));
    }
    if let Some(bad) = values.iter().find(|v| !valid_value(v)) {
        return Err(SelectorError(format!("{whole}: invalid label value {bad:?}")));
    }
    Ok(values)
}

fn parse_label_requirement(part: &str) -> Result<LabelRequirement, SelectorError> {
    let bad = |why: &str| SelectorError(format!("{part}: {why}"));
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) {
            Ok(LabelRequirement { key: key.to_owned(), op: LabelOp::DoesNotExist })
        } else {
            Err(bad("invalid label key"))
        };
    }
    let (key, op) = if let Some((k, v)) = part.split_once("!=") {
        (k, LabelOp::NotEquals(v.trim().to_owned()))
    } else if let Some((k, v)) = part.split_once("==") {
        (k, LabelOp::Equals(v.trim().to_owned()))
    } else if let Some((k, v)) = part.split_once('=') {
        (k, LabelOp::Equals(v.trim().to_owned()))
    } else if let Some((k, rest)) = part.split_once(" notin ") {
        (k, LabelOp::NotIn(parse_set(rest, part)?))
    } else if let Some((k, rest)) = part.split_once(" in ") {
        (k, LabelOp::In(parse_set(rest, part)?))
    } else if part.contains(['<', '>', '(', ')', ' ']) {
        return Err(bad("unsupported operator"));
    } else {
        (part, LabelOp::Exists)
    };
    let key = key.trim();
    if !valid_key(key) {
        return Err(bad("invalid label key"));
    }
    if let LabelOp::Equals(v) | LabelOp::NotEquals(v) = &op
        && !valid_value(v)
    {
        return Err(bad("invalid label value"));
    }
    Ok(LabelRequirement { key: key.to_owned(), op })
}

impl LabelSelector {
    /// Parses a selector such as `a=b,c!=d,e in (x,y),f notin (z),g,!h`. Empty means everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::default());
        }
        let requirements =
            split_top_level(s).into_iter().map(|p| parse_label_requirement(p.trim())).collect::<Result<_, _>>()?;
        Ok(Self { requirements })
    }

    /// Whether `labels` (an object's `metadata.labels`) satisfies every requirement.
    pub fn matches_labels(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// A field selector: `metadata.name=x,metadata.namespace!=y` (`=`, `==`, `!=`). Fields are dotted
/// paths to string values; a missing field is the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses a field selector. Empty means everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::default());
        }
        let mut requirements = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError(format!("invalid field selector: '{part}'")));
            };
            let field = field.trim();
            if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(SelectorError(format!("invalid field selector: '{part}'")));
            }
            requirements.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self { requirements })
    }

    /// Whether `object` satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|(field, equal, want)| {
            let value = field.split('.').try_fold(object, |v, k| v.get(k));
            let value = match value {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (value == *want) == *equal
        })
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value required for `field` by an equality requirement, if any (e.g. the name of a
    /// `metadata.name=x` selector), for index look-ups.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.requirements.iter().find(|(f, eq, _)| *eq && f == field).map(|(_, _, v)| v.as_str())
    }
}

/// A label selector and a field selector, both of which must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The label selector.
    pub labels: LabelSelector,
    /// The field selector.
    pub fields: FieldSelector,
}

impl Selector {
    /// Parses the `labelSelector` and `fieldSelector` query parameters (absent: everything).
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, SelectorError> {
        Ok(Self {
            labels: LabelSelector::parse(labels.unwrap_or_default())?,
            fields: FieldSelector::parse(fields.unwrap_or_default())?,
        })
    }

    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether `object` matches.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.get("metadata").and_then(|m| m.get("labels")).and_then(Value::as_object);
        self.labels.matches_labels(labels) && self.fields.matches(object)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match &r.op {
                LabelOp::Equals(v) => write!(f, "{}={v}", r.key)?,
                LabelOp::NotEquals(v) => write!(f, "{}!={v}", r.key)?,
                LabelOp::In(vs) => write!(f, "{} in ({})", r.key, vs.join(","))?,
                LabelOp::NotIn(vs) => write!(f, "{} notin ({})", r.key, vs.join(","))?,
                LabelOp::Exists => write!(f, "{}", r.key)?,
                LabelOp::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "namespace": "ns", "labels": labels}})
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    fn matches(s: &str, labels: Value) -> bool {
        Selector { labels: sel(s), fields: FieldSelector::default() }.matches(&obj(labels))
    }

    #[test]
    fn equality() {
        assert!(matches("a=b", json!({"a": "b"})));
        assert!(matches("a==b", json!({"a": "b"})));
        assert!(!matches("a=b", json!({"a": "c"})));
        assert!(!matches("a=b", json!({})));
        assert!(matches("a!=b", json!({"a": "c"})));
        assert!(matches("a!=b", json!({})), "!= matches objects without the label");
        assert!(!matches("a!=b", json!({"a": "b"})));
        assert!(matches("a=", json!({"a": ""})));
    }

    #[test]
    fn set_based() {
        assert!(matches("a in (x,y)", json!({"a": "y"})));
        assert!(matches("a in (x, y)", json!({"a": "y"})));
        assert!(!matches("a in (x,y)", json!({"a": "z"})));
        assert!(!matches("a in (x,y)", json!({})));
        assert!(matches("a notin (x)", json!({"a": "y"})));
        assert!(matches("a notin (x)", json!({})));
        assert!(!matches("a notin (x)", json!({"a": "x"})));
        assert!(matches("a", json!({"a": ""})));
        assert!(!matches("a", json!({"b": ""})));
        assert!(matches("!a", json!({"b": ""})));
        assert!(!matches("!a", json!({"a": "x"})));
    }

    #[test]
    fn conjunctions_and_labels_missing() {
        let s = "app=web,tier in (front,back),!canary,env";
        assert!(matches(s, json!({"app": "web", "tier": "back", "env": "p"})));
        assert!(!matches(s, json!({"app": "web", "tier": "back", "env": "p", "canary": "1"})));
        assert!(sel("").is_empty());
        let no_labels = json!({"metadata": {"name": "n"}});
        assert!(Selector { labels: sel("a!=b"), ..Default::default() }.matches(&no_labels));
        assert!(!Selector { labels: sel("a"), ..Default::default() }.matches(&no_labels));
        assert_eq!(sel(s).to_string(), "app=web,tier in (front,back),!canary,env");
    }

    #[test]
    fn parse_errors() {
        for bad in ["a in ()", "a in x", "=b", "a=b c", "a>1", "a=(b)", "!", "a in (x", "a,,b"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should not parse");
        }
        assert!(FieldSelector::parse("metadata.name").is_err());
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let f = |s: &str| FieldSelector::parse(s).unwrap().matches(&o);
        assert!(f("metadata.name=n"));
        assert!(f("metadata.name==n,metadata.namespace=ns"));
        assert!(!f("metadata.name=m"));
        assert!(f("metadata.name!=m"));
        assert!(f("spec.missing="));
        assert_eq!(FieldSelector::parse("metadata.name=n").unwrap().required_value("metadata.name"), Some("n"));
    }
}
