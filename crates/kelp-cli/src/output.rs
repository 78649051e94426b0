//! Writing data to stdout (JSON, YAML, tables) and informational lines to stderr.

use std::io::Write as _;

use serde::Serialize;

/// `-o json|yaml` of the commands that print objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Indented JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `value` as indented JSON, with a final newline.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// `value` as YAML, with a final newline.
pub(crate) fn to_yaml<T: Serialize>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_saphyr::to_string(value)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `value` in `format`.
pub(crate) fn render<T: Serialize>(format: Format, value: &T) -> anyhow::Result<String> {
    match format {
        Format::Json => to_json(value),
        Format::Yaml => to_yaml(value),
    }
}

/// Writes data to stdout. A closed pipe (`kelp function ls | head -1`) ends the program
/// quietly, as for other Unix tools.
pub(crate) fn emit(text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_ref()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// An informational line on stderr.
pub(crate) fn info(line: impl std::fmt::Display) {
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn yaml_keeps_strings_that_look_like_numbers_quoted() {
        let value = json!({"timeout": "180", "port": 8080, "code": "def f():\n    return 1\n", "empty": ""});
        let yaml = to_yaml(&value).unwrap();
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, value, "{yaml}");
        assert_eq!(to_json(&json!({"a": 1})).unwrap(), "{\n  \"a\": 1\n}\n");
        assert_eq!(render(Format::Yaml, &json!({"a": [1, 2]})).unwrap(), "a:\n- 1\n- 2\n");
    }
}
