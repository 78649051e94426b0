//! Parsing of the list-valued flags: `-l/--label`, `-e/--env`, `--node-selectors`, `--secrets`
//! and the label queries of `--function-selector`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kelp_api::check_dns1123_subdomain;

use super::BuildError;

/// Splits one flag value on commas, as the kubeless CLI's string-slice flags did (pflag reads
/// them as a CSV record): `a=1,b=2` is two items, `"a=1,2",b` keeps the quoted comma. Empty
/// items are dropped.
pub(crate) fn split_list(value: &str) -> Result<Vec<String>, BuildError> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if current.is_empty() => quoted = true,
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(BuildError::Flag(format!("unterminated quote in {value:?}")));
    }
    items.push(current);
    Ok(items.into_iter().filter(|item| !item.is_empty()).collect())
}

/// Splits `key=value` or `key:value` at the first `=` or `:`; a bare `key` has an empty value
/// (the kubeless CLI's `getKV`).
pub(crate) fn parse_kv(input: &str) -> (String, String) {
    match input.find(['=', ':']) {
        Some(at) => (input[..at].to_owned(), input[at + 1..].to_owned()),
        None => (input.to_owned(), String::new()),
    }
}

/// Every `key=value` pair of a repeatable, comma-separated flag, in order (a later repeat of a
/// key wins where the result is a map).
pub(crate) fn parse_pairs(flag: &str, values: &[String]) -> Result<Vec<(String, String)>, BuildError> {
    let mut pairs = Vec::new();
    for value in values {
        for item in split_list(value)? {
            let (key, val) = parse_kv(&item);
            if key.is_empty() {
                return Err(BuildError::Flag(format!(
                    "{flag} {item:?}: the key is empty (use key=value or key:value)"
                )));
            }
            pairs.push((key, val));
        }
    }
    Ok(pairs)
}

/// Every item of a repeatable, comma-separated flag.
pub(crate) fn parse_items(values: &[String]) -> Result<Vec<String>, BuildError> {
    let mut items = Vec::new();
    for value in values {
        items.extend(split_list(value)?);
    }
    Ok(items)
}

/// Parses `-l/--label` values into a map, checking keys and values as Kubernetes does.
pub(crate) fn parse_labels(values: &[String]) -> Result<BTreeMap<String, String>, BuildError> {
    let mut labels = BTreeMap::new();
    for (key, value) in parse_pairs("--label", values)? {
        check_label_key(&key).map_err(|reason| BuildError::Flag(format!("--label {key:?}: {reason}")))?;
        check_label_value(&value).map_err(|reason| BuildError::Flag(format!("--label {key}={value:?}: {reason}")))?;
        labels.insert(key, value);
    }
    Ok(labels)
}

fn is_label_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// alphanumerics, `-`, `_` and `.`, starting and ending with an alphanumeric.
pub(crate) fn check_label_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            check_dns1123_subdomain(prefix).map_err(|reason| format!("the prefix {prefix:?}: {reason}"))?;
            name
        }
        None => key,
    };
    if is_label_name(name) {
        Ok(())
    } else {
        Err("a label key must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending \
             with an alphanumeric character (optionally after a DNS prefix and '/')"
            .to_owned())
    }
}

/// Checks a label value: empty, or at most 63 alphanumerics, `-`, `_` and `.`, starting and
/// ending with an alphanumeric.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err("a label value must be empty or at most 63 alphanumeric characters, '-', '_' or '.', starting \
             and ending with an alphanumeric character"
            .to_owned())
    }
}

/// Parses a label query (`--function-selector`) as Kubernetes' `ParseToLabelSelector` does:
/// comma-separated requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`,
/// `!k`. Equalities become `matchLabels`, the rest `matchExpressions`.
pub(crate) fn parse_label_selector(query: &str) -> Result<LabelSelector, BuildError> {
    let invalid = |why: String| BuildError::Flag(format!("--function-selector {query:?}: {why}"));
    let mut match_labels = BTreeMap::new();
    let mut expressions = Vec::new();
    for requirement in split_requirements(query) {
        let requirement = requirement.trim();
        if requirement.is_empty() {
            continue;
        }
        let expression = |key: &str, operator: &str, values: Option<Vec<String>>| LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values,
        };
        if let Some(key) = requirement.strip_prefix('!') {
            let key = key.trim();
            check_label_key(key).map_err(&invalid)?;
            expressions.push(expression(key, "DoesNotExist", None));
        } else if let Some((key, value)) = requirement.split_once("!=") {
            let (key, value) = (key.trim(), value.trim());
            check_label_key(key).map_err(&invalid)?;
            check_label_value(value).map_err(&invalid)?;
            expressions.push(expression(key, "NotIn", Some(vec![value.to_owned()])));
        } else if let Some((key, value)) = requirement.split_once("==").or_else(|| requirement.split_once('=')) {
            let (key, value) = (key.trim(), value.trim());
            check_label_key(key).map_err(&invalid)?;
            check_label_value(value).map_err(&invalid)?;
            match_labels.insert(key.to_owned(), value.to_owned());
        } else if let Some((key, operator, values)) = set_requirement(requirement) {
            check_label_key(key).map_err(&invalid)?;
            for value in &values {
                check_label_value(value).map_err(&invalid)?;
            }
            if values.is_empty() {
                return Err(invalid(format!("{requirement:?}: the set of values is empty")));
            }
            expressions.push(expression(key, operator, Some(values)));
        } else {
            check_label_key(requirement).map_err(&invalid)?;
            expressions.push(expression(requirement, "Exists", None));
        }
    }
    if match_labels.is_empty() && expressions.is_empty() {
        return Err(invalid("selects nothing: give at least one requirement such as function=hello".to_owned()));
    }
    Ok(LabelSelector {
        match_labels: (!match_labels.is_empty()).then_some(match_labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

/// Splits a label query at the commas outside parentheses.
fn split_requirements(query: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in query.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&query[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&query[start..]);
    parts
}

/// `key in (a,b)` / `key notin (a,b)` → (key, operator, values).
fn set_requirement(requirement: &str) -> Option<(&str, &'static str, Vec<String>)> {
    let open = requirement.find('(')?;
    let inner = requirement[open + 1..].strip_suffix(')')?;
    let mut head = requirement[..open].split_whitespace();
    let (key, word) = (head.next()?, head.next()?);
    if head.next().is_some() {
        return None;
    }
    let operator = match word {
        "in" => "In",
        "notin" => "NotIn",
        _ => return None,
    };
    let values = inner.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect();
    Some((key, operator, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn key_values_take_equals_colon_or_nothing() {
        assert_eq!(parse_kv("a=b"), ("a".into(), "b".into()));
        assert_eq!(parse_kv("a:b"), ("a".into(), "b".into()));
        assert_eq!(parse_kv("a"), ("a".into(), String::new()));
        assert_eq!(parse_kv("a=b:c=d"), ("a".into(), "b:c=d".into()));
        assert_eq!(parse_kv("url:http://x=1"), ("url".into(), "http://x=1".into()));
        assert_eq!(parse_kv("a="), ("a".into(), String::new()));
    }

    #[test]
    fn lists_are_comma_separated_and_repeatable() {
        let pairs = parse_pairs("--env", &strings(&["A=1,B:2", "C", "D=x=y"])).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("C".into(), String::new()),
                ("D".into(), "x=y".into())
            ]
        );
        assert_eq!(split_list(r#""A=1,2",B=3"#).unwrap(), vec!["A=1,2", "B=3"]);
        assert_eq!(split_list(r#""say ""hi""",x"#).unwrap(), vec![r#"say "hi""#, "x"]);
        assert_eq!(split_list("a,,b,").unwrap(), vec!["a", "b"]);
        assert!(split_list(r#""open"#).is_err());
        assert!(parse_pairs("--env", &strings(&["=1"])).is_err());
    }

    #[test]
    fn labels_are_checked_like_kubernetes() {
        let labels = parse_labels(&strings(&["tier=web,team:core", "canary", "example.com/owner=me"])).unwrap();
        assert_eq!(labels["tier"], "web");
        assert_eq!(labels["team"], "core");
        assert_eq!(labels["canary"], "");
        assert_eq!(labels["example.com/owner"], "me");
        for bad in ["bad key=x", "k=not ok", "-k=v", "k=-v", "Example.COM/x=y"] {
            assert!(parse_labels(&strings(&[bad])).is_err(), "{bad}");
        }
        let long = format!("k={}", "v".repeat(64));
        assert!(parse_labels(&[long]).is_err());
    }

    #[test]
    fn label_queries_become_selectors() {
        let selector = parse_label_selector("created-by=kubeless,function==x,tier!=db,env in (a, b),!off,on").unwrap();
        let labels = selector.match_labels.clone().unwrap();
        assert_eq!(labels["created-by"], "kubeless");
        assert_eq!(labels["function"], "x");
        let expressions = selector.match_expressions.clone().unwrap();
        let ops: Vec<_> = expressions.iter().map(|e| (e.key.as_str(), e.operator.as_str())).collect();
        assert_eq!(ops, vec![("tier", "NotIn"), ("env", "In"), ("off", "DoesNotExist"), ("on", "Exists")]);
        assert_eq!(expressions[1].values.as_deref().unwrap(), ["a", "b"]);
        assert_eq!(
            kelp_api::label_query(&selector),
            "created-by=kubeless,function=x,tier notin (db),env in (a,b),!off,on"
        );
        assert!(parse_label_selector("").is_err());
        assert!(parse_label_selector("a in ()").is_err());
        assert!(parse_label_selector("bad key=x").is_err());
    }
}
