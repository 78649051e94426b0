//! Quoting for the `sh -c` strings of init containers and CronJobs.

/// `text` as one `sh` word: single-quoted, with each `'` written as `'\''`.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as the kubelet must see it in a container's `command`/`args` to pass it on
/// unchanged: every `$` doubled, so `$(NAME)` is not replaced by an environment variable.
pub(crate) fn escape_kubelet(text: &str) -> String {
    text.replace('$', "$$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("https://example.test/a b"), "'https://example.test/a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(escape_kubelet("$(POD_UID) $$ $x"), "$$(POD_UID) $$$$ $$x");
    }
}
