//! One line for an error and its causes, for messages a user reads.

/// An error and its sources, `: `-separated (an HTTP client's errors say little at the top),
/// skipping a cause whose text the line already holds.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    #[test]
    fn causes_follow_once() {
        let inner = Layer { text: "connection refused", source: None };
        let middle = Layer { text: "connect failed: connection refused", source: Some(Box::new(inner)) };
        let outer = Layer { text: "client error", source: Some(Box::new(middle)) };
        assert_eq!(error_chain(&outer), "client error: connect failed: connection refused");
    }
}
