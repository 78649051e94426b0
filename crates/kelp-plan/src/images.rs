//! Where Kelp's own images live: every one is `<registry>/<name>:<version>`, with the registry
//! [`DEFAULT_IMAGE_REGISTRY`] (`kelp`) unless the operator gives another
//! (`kelp install --image-registry`, Helm's `image.registry`) and the version this crate's.
//!
//! The images: [`CONTROLLER_IMAGE`] (both Deployments of the install), `runtime-<language>` (the
//! runtimes of `runtime-images`, see [`ImageRegistry::runtime`]) and [`PROVISION_IMAGE`] (the
//! `prepare` and `cache-owner` init containers and the CronJobs' `curl`).

use std::fmt;
use std::str::FromStr;

/// The registry of Kelp's images when none is given: `kelp/controller`, `kelp/runtime-python`, ...
pub const DEFAULT_IMAGE_REGISTRY: &str = "kelp";
/// The name of the image of the controller and of `kelp-triggers`.
pub const CONTROLLER_IMAGE: &str = "controller";
/// The name of the provision image: `sh`, `curl`, `base64`, `sha256sum`, `unzip` and `tar`.
pub const PROVISION_IMAGE: &str = "provision";
/// The tag of every Kelp image: the version of this crate (the workspace's).
pub const IMAGE_TAG: &str = env!("CARGO_PKG_VERSION");

/// The longest registry accepted, so that `<registry>/<name>:<tag>` stays well within the 255
/// characters a container image name may have.
const MAX_REGISTRY_LEN: usize = 200;

/// Where Kelp's images live: a registry host (with an optional port) and/or a path, without a
/// tag, as container image references name them: `kelp`, `localhost:5000/kelp`,
/// `registry.example.com/team/kelp`. Parsed by [`ImageRegistry::parse`]; its images are
/// `<registry>/<name>:<version>` ([`ImageRegistry::image`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRegistry(String);

/// Why a registry is refused; `Display` is the reason alone, for the caller to say which flag or
/// value it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidImageRegistry(String);

impl ImageRegistry {
    /// Checks `text` against the grammar of image references (the first component is a host
    /// when it holds a `.` or a `:` or is `localhost`, every other one a path component) with two
    /// stricter rules: everything lower-case (host names are case-insensitive, image names are
    /// not), and no tag or digest (`:x` after a `/`, `@...`): Kelp tags every image with its
    /// own version, so `localhost:5000` is a host and port, but `localhost:5000/kelp:x` is
    /// refused rather than guessed at.
    pub fn parse(text: &str) -> Result<ImageRegistry, InvalidImageRegistry> {
        let refuse = |reason: String| Err(InvalidImageRegistry(reason));
        if text.is_empty() {
            return refuse("is empty; give a registry and path such as localhost:5000/kelp".into());
        }
        if text.len() > MAX_REGISTRY_LEN {
            return refuse(format!("is {} characters long; at most {MAX_REGISTRY_LEN}", text.len()));
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return refuse(format!("contains {c:?}; white space and control characters are not allowed"));
        }
        if text.chars().any(char::is_uppercase) {
            return refuse("has upper-case letters; image names are lower-case".into());
        }
        if text.contains('@') {
            return refuse(format!(
                "has a digest ('@'); give where the images live, without tag or digest: \
                 Kelp tags every image with its version ({IMAGE_TAG})"
            ));
        }
        if text.ends_with('/') {
            return refuse(format!("ends with '/'; give it without, e.g. {}", text.trim_end_matches('/')));
        }
        let mut components = text.split('/');
        let first = components.next().unwrap_or_default();
        let is_host = first.contains(['.', ':']) || first == "localhost";
        if is_host {
            check_host(first)?;
        } else {
            check_path_component(first)?;
        }
        components.try_for_each(check_path_component)?;
        Ok(ImageRegistry(text.to_owned()))
    }

    /// The registry as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The image `name` of this registry: `<registry>/<name>:<version>`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}:{IMAGE_TAG}", self.0)
    }

    /// The runtime image of `language` (`python`, `nodejs`): `<registry>/runtime-<language>:<version>`.
    pub fn runtime(&self, language: &str) -> String {
        self.image(&format!("runtime-{language}"))
    }
}

impl Default for ImageRegistry {
    /// [`DEFAULT_IMAGE_REGISTRY`].
    fn default() -> Self {
        ImageRegistry(DEFAULT_IMAGE_REGISTRY.to_owned())
    }
}

impl fmt::Display for ImageRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ImageRegistry {
    type Err = InvalidImageRegistry;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ImageRegistry::parse(text)
    }
}

/// The reason given for a `:` where a tag would be.
fn no_tag(component: &str) -> InvalidImageRegistry {
    InvalidImageRegistry(format!(
        "{component:?} ends with what would be a tag; give where the images live, without tag: \
         Kelp tags every image with its version ({IMAGE_TAG})"
    ))
}

/// A registry host: DNS labels separated by dots, then optionally `:` and a port.
fn check_host(host: &str) -> Result<(), InvalidImageRegistry> {
    if host.starts_with('[') {
        return Err(InvalidImageRegistry(format!("{host:?}: an IPv6 address is not supported; use a host name")));
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(no_tag(host));
        }
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(InvalidImageRegistry(format!("{host:?}: the port must be between 1 and 65535")));
        }
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(InvalidImageRegistry(format!(
            "{host:?} is not a registry host: dot-separated names of letters, digits and inner '-', \
             optionally followed by ':' and a port"
        )))
    }
}

/// A path component: lower-case letters and digits, separated by one `.`, one or two `_`, or
/// any number of `-`.
fn check_path_component(component: &str) -> Result<(), InvalidImageRegistry> {
    if component.is_empty() {
        return Err(InvalidImageRegistry("has an empty component ('/' at the start, or '//')".into()));
    }
    if component.contains(':') {
        return Err(no_tag(component));
    }
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut ok = alphanumeric(bytes[0]) && alphanumeric(bytes[bytes.len() - 1]);
    let mut i = 0;
    while ok && i < bytes.len() {
        let run = bytes[i..].iter().take_while(|b| !alphanumeric(**b)).count();
        if run > 0 {
            let separator = &component[i..i + run];
            ok = separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|b| b == b'-');
            i += run;
        } else {
            i += 1;
        }
    }
    if ok {
        Ok(())
    } else {
        Err(InvalidImageRegistry(format!(
            "{component:?} is not an image path component: lower-case letters and digits, separated by \
             '.', '_', '__' or dashes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        ImageRegistry::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn images_are_named_after_the_registry_and_tagged_with_the_version() {
        let default = ImageRegistry::default();
        assert_eq!(default.image(CONTROLLER_IMAGE), format!("kelp/controller:{}", env!("CARGO_PKG_VERSION")));
        let local = ImageRegistry::parse("localhost:5000/kelp").unwrap();
        assert_eq!(local.runtime("python"), format!("localhost:5000/kelp/runtime-python:{IMAGE_TAG}"));
        assert_eq!(local.image(PROVISION_IMAGE), format!("localhost:5000/kelp/provision:{IMAGE_TAG}"));
        assert_eq!(local.as_str(), "localhost:5000/kelp");
    }

    #[test]
    fn registries_as_image_references_name_them_are_accepted() {
        for good in [
            "kelp",
            "localhost",
            "localhost:5000",
            "localhost:5000/kelp",
            "127.0.0.1:5000/kelp",
            "registry.example.com/team/kelp",
            "registry-1.example.com:443/a.b/c_d/e__f/g--h",
            "ghcr.io/example-org/kelp",
        ] {
            assert_eq!(ImageRegistry::parse(good).map(|r| r.to_string()), Ok(good.to_owned()), "{good}");
            assert_eq!(good.parse::<ImageRegistry>().unwrap().as_str(), good);
        }
    }

    #[test]
    fn malformed_registries_are_refused_with_the_reason() {
        assert!(refused("").starts_with("is empty"));
        assert!(refused("localhost:5000/kelp/").contains("ends with '/'; give it without, e.g. localhost:5000/kelp"));
        assert!(refused("localhost:5000/Kelp").contains("upper-case"));
        assert!(refused("Registry.example.com/kelp").contains("upper-case"));
        assert!(refused("local host/kelp").contains("white space"));
        assert!(refused("kelp\n").contains("white space"));
        let tag = refused("localhost:5000/kelp:dev");
        assert!(tag.contains("\"kelp:dev\" ends with what would be a tag") && tag.contains(IMAGE_TAG), "{tag}");
        assert!(refused("kelp:dev").contains("would be a tag"), "a name then ':' is not a host and port");
        assert!(refused("localhost:5000/kelp@sha256:00").contains("digest"));
        assert!(refused("localhost:99999/kelp").contains("between 1 and 65535"));
        assert!(refused("[::1]:5000/kelp").contains("IPv6"));
        assert!(refused("/kelp").contains("empty component"));
        assert!(refused("registry.example.com//kelp").contains("empty component"));
        assert!(refused("-registry.example.com/kelp").contains("not a registry host"));
        assert!(refused("registry..example/kelp").contains("not a registry host"));
        for bad in ["team/-kelp", "team/kelp-", "team/ke...lp", "team/ke___lp", "team/ke+lp", "team/ké"] {
            assert!(refused(bad).contains("not an image path component"), "{bad}: {}", refused(bad));
        }
        assert!(refused(&"a".repeat(201)).contains("at most 200"));
        assert!(ImageRegistry::parse(&"a".repeat(200)).is_ok());
    }
}
