//! Validation results: every problem found in an object, each with a field path and a reason.
//!
//! Validation never stops at the first problem: [`Validate::validate`] returns all of them, so
//! an API server can answer with one Kubernetes `422 Invalid` [`Status`] listing every cause
//! (see [`ValidationErrors::to_status`]).

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Status, StatusCause, StatusDetails};

/// Something that can check itself and report every problem it has.
///
/// Implemented by every spec (paths start with `spec.`) and every root object (which adds
/// `metadata.name`).
pub trait Validate {
    /// Appends every problem found to `errors`.
    fn collect_errors(&self, errors: &mut ValidationErrors);

    /// Returns `Ok(())` when there is no problem, otherwise all of them.
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        self.collect_errors(&mut errors);
        errors.into_result()
    }
}

/// The class of a [`ValidationError`], matching the Kubernetes `StatusCause` reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValidationErrorKind {
    /// A required field is missing or empty (`FieldValueRequired`).
    Required,
    /// A field has a malformed value (`FieldValueInvalid`).
    Invalid,
    /// A value is one Kelp does not support, or a combination that is not allowed
    /// (`FieldValueNotSupported`).
    NotSupported,
}

impl ValidationErrorKind {
    /// The Kubernetes `StatusCause.reason` for this kind.
    pub fn cause_reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
        }
    }
}

/// One problem: which field (a Kubernetes-style path such as `spec.handler` or
/// `spec.functionSelector.matchExpressions[0].operator`) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The path of the offending field, e.g. `spec.function-content-type`.
    pub field: String,
    /// What is wrong, for humans, e.g. `must be "<module>.<function>" (exactly one dot)`.
    pub reason: String,
    /// The class of problem.
    pub kind: ValidationErrorKind,
}

impl ValidationError {
    /// The Kubernetes `StatusCause` for this error (for a 422 `details.causes` entry).
    pub fn to_status_cause(&self) -> StatusCause {
        StatusCause {
            field: Some(self.field.clone()),
            message: Some(self.reason.clone()),
            reason: Some(self.kind.cause_reason().to_owned()),
        }
    }
}

/// Every problem found in an object. Its `Display` prints one `field: reason` line per problem.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    errors: Vec<ValidationError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    /// The individual problems, in the order they were found.
    pub fn errors(&self) -> &[ValidationError] {
        &self.errors
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many problems were recorded.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Records a problem.
    pub fn push(&mut self, field: impl Into<String>, kind: ValidationErrorKind, reason: impl Into<String>) {
        self.errors.push(ValidationError { field: field.into(), reason: reason.into(), kind });
    }

    /// Records a missing required field.
    pub fn required(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.push(field, ValidationErrorKind::Required, reason);
    }

    /// Records a malformed value.
    pub fn invalid(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.push(field, ValidationErrorKind::Invalid, reason);
    }

    /// Records an unsupported value or combination.
    pub fn not_supported(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.push(field, ValidationErrorKind::NotSupported, reason);
    }

    /// `Ok(())` if empty, otherwise `Err(self)`.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// A Kubernetes `422 Invalid` [`Status`] for object `name` of `kind` in API `group`, listing
    /// every problem in `details.causes`, shaped like the API server's own validation failures.
    pub fn to_status(&self, group: &str, kind: &str, name: &str) -> Status {
        let causes: Vec<_> = self.errors.iter().map(ValidationError::to_status_cause).collect();
        let summary: Vec<_> = self.errors.iter().map(ToString::to_string).collect();
        Status {
            code: Some(422),
            status: Some("Failure".to_owned()),
            reason: Some("Invalid".to_owned()),
            message: Some(format!("{kind}.{group} \"{name}\" is invalid: [{}]", summary.join(", "))),
            details: Some(StatusDetails {
                group: Some(group.to_owned()),
                kind: Some(kind.to_owned()),
                name: Some(name.to_owned()),
                causes: Some(causes),
                ..StatusDetails::default()
            }),
            metadata: Default::default(),
        }
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a ValidationError;
    type IntoIter = std::slice::Iter<'a, ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl IntoIterator for ValidationErrors {
    type Item = ValidationError;
    type IntoIter = std::vec::IntoIter<ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

/// Which DNS rule an object's `metadata.name` must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// RFC 1123 subdomain (most Kubernetes objects).
    Dns1123Subdomain,
    /// RFC 1035 label: the name is also used for a Service and a container.
    Dns1035Label,
}

/// Checks `metadata.name` (a `generateName` alone is accepted, since the server picks the name).
pub(crate) fn collect_metadata_errors(meta: &ObjectMeta, rule: NameRule, errors: &mut ValidationErrors) {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => {
            let result = match rule {
                NameRule::Dns1123Subdomain => check_dns1123_subdomain(name),
                NameRule::Dns1035Label => check_dns1035_label(name),
            };
            if let Err(reason) = result {
                errors.invalid("metadata.name", reason);
            }
        }
        _ if meta.generate_name.as_deref().is_some_and(|g| !g.is_empty()) => {}
        _ => errors.required("metadata.name", "name or generateName is required"),
    }
}

/// Checks a required reference to another object by name (a Function, a Secret, ...).
pub(crate) fn collect_reference_errors(field: &str, value: Option<&str>, errors: &mut ValidationErrors) {
    match value.unwrap_or_default() {
        "" => errors.required(field, "must not be empty"),
        name => {
            if let Err(reason) = check_dns1123_subdomain(name) {
                errors.invalid(field, reason);
            }
        }
    }
}

/// Checks a required free-form string.
pub(crate) fn collect_required(field: &str, value: Option<&str>, errors: &mut ValidationErrors) {
    if value.unwrap_or_default().is_empty() {
        errors.required(field, "must not be empty");
    }
}

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dns1123_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= DNS1123_LABEL_MAX
        && label.starts_with(is_lower_alnum)
        && label.ends_with(is_lower_alnum)
        && label.chars().all(|c| is_lower_alnum(c) || c == '-')
}

/// Checks an RFC 1123 subdomain (Kubernetes `IsDNS1123Subdomain`): at most 253 characters,
/// lowercase alphanumerics, `-` and `.`, each dot-separated part starting and ending with an
/// alphanumeric.
pub fn check_dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!("must be no more than {DNS1123_SUBDOMAIN_MAX} characters"));
    }
    if value.split('.').all(is_dns1123_label) {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character"
            .to_owned())
    }
}

/// Checks an RFC 1035 label (Kubernetes `IsDNS1035Label`, required of Service names): at most
/// 63 characters, lowercase alphanumerics and `-`, starting with a letter and ending with an
/// alphanumeric.
pub fn check_dns1035_label(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_LABEL_MAX {
        return Err(format!("must be no more than {DNS1123_LABEL_MAX} characters"));
    }
    if is_dns1123_label(value) && value.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
             with an alphabetic character, and end with an alphanumeric character"
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_rules() {
        assert!(check_dns1123_subdomain("hello-world.v2").is_ok());
        assert!(check_dns1123_subdomain("1abc").is_ok());
        assert!(check_dns1123_subdomain("Hello").is_err());
        assert!(check_dns1123_subdomain("a..b").is_err());
        assert!(check_dns1123_subdomain("-a").is_err());
        assert!(check_dns1123_subdomain(&"a".repeat(254)).is_err());
        assert!(check_dns1035_label("hello-1").is_ok());
        assert!(check_dns1035_label("1hello").is_err());
        assert!(check_dns1035_label("a.b").is_err());
        assert!(check_dns1035_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn display_lists_every_error_on_its_own_line() {
        let mut errors = ValidationErrors::default();
        errors.invalid("spec.handler", "bad");
        errors.required("spec.runtime", "missing");
        assert_eq!(errors.to_string(), "spec.handler: bad\nspec.runtime: missing");
        let status = errors.to_status("kubeless.io", "Function", "f");
        assert_eq!(status.code, Some(422));
        let causes = status.details.unwrap().causes.unwrap();
        assert_eq!(causes[1].reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(causes[0].field.as_deref(), Some("spec.handler"));
    }
}
