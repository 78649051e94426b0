//! `spec.function-content-type`: how `spec.function` is encoded and packaged.

use std::fmt;
use std::str::FromStr;

use crate::formats::FormatError;

/// How the code in `spec.function` is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Plain source text (also what an empty content type means).
    #[default]
    Text,
    /// Base64 of the file's bytes.
    Base64,
    /// `spec.function` is an `http(s)://` URL to download.
    Url,
}

/// How the (decoded) code is packaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Archive {
    /// A single file, copied as `<module><fileNameSuffix>`.
    #[default]
    None,
    /// A zip archive (`+zip`), unpacked with `unzip`.
    Zip,
    /// A compressed tarball (`+compressedtar`), unpacked with `tar xf`.
    CompressedTar,
}

/// A parsed `function-content-type`: `text|base64|url` (empty means `text`), optionally followed
/// by `+zip` or `+compressedtar`, optionally followed by `+deps` (the dependency file is inside
/// the code, so the controller must not copy `spec.deps`).
///
/// ```
/// use kelp_api::{Archive, ContentType, Encoding};
/// let ct: ContentType = "url+zip+deps".parse().unwrap();
/// assert_eq!((ct.encoding, ct.archive, ct.deps), (Encoding::Url, Archive::Zip, true));
/// assert_eq!(ct.to_string(), "url+zip+deps");
/// assert_eq!(ContentType::parse("").unwrap(), ContentType::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ContentType {
    /// How the code is encoded.
    pub encoding: Encoding,
    /// How the code is packaged.
    pub archive: Archive,
    /// Whether the dependency file is bundled with the code (`+deps`).
    pub deps: bool,
}

impl ContentType {
    /// Parses a content type; the empty string is plain `text`.
    pub fn parse(value: &str) -> Result<Self, FormatError> {
        let unknown = || FormatError::ContentType(value.to_owned());
        if value.is_empty() {
            return Ok(Self::default());
        }
        let mut parts = value.split('+');
        let encoding = match parts.next() {
            Some("text") => Encoding::Text,
            Some("base64") => Encoding::Base64,
            Some("url") => Encoding::Url,
            _ => return Err(unknown()),
        };
        let mut content_type = Self { encoding, ..Self::default() };
        let mut next = parts.next();
        match next {
            Some("zip") => content_type.archive = Archive::Zip,
            Some("compressedtar") => content_type.archive = Archive::CompressedTar,
            _ => {}
        }
        if content_type.archive != Archive::None {
            next = parts.next();
        }
        if next == Some("deps") {
            content_type.deps = true;
            next = parts.next();
        }
        match next {
            None => Ok(content_type),
            Some(_) => Err(unknown()),
        }
    }

    /// Whether the code is an archive to unpack (Kubeless then names the code file after the
    /// bare module, without the runtime's file suffix; so does `+deps`).
    pub fn is_archive(&self) -> bool {
        self.archive != Archive::None
    }
}

impl FromStr for ContentType {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ContentType {
    /// The canonical spelling (`text` for the empty content type).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.encoding {
            Encoding::Text => "text",
            Encoding::Base64 => "base64",
            Encoding::Url => "url",
        })?;
        f.write_str(match self.archive {
            Archive::None => "",
            Archive::Zip => "+zip",
            Archive::CompressedTar => "+compressedtar",
        })?;
        if self.deps {
            f.write_str("+deps")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_kubeless_spelling() {
        for encoding in ["text", "base64", "url"] {
            for archive in ["", "+zip", "+compressedtar"] {
                for deps in ["", "+deps"] {
                    let s = format!("{encoding}{archive}{deps}");
                    assert_eq!(ContentType::parse(&s).unwrap().to_string(), s);
                }
            }
        }
    }

    #[test]
    fn rejects_the_rest() {
        for bad in ["zip", "text+", "base64+deps+zip", "url+zip+zip", "TEXT", "text+tar", "+zip"] {
            assert!(ContentType::parse(bad).is_err(), "{bad}");
        }
    }
}
