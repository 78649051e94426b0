//! A function's Secret and ConfigMap volumes, as files in each process's own directory.
//!
//! There are no mount namespaces here: a volume a pod would mount at `/s1` is written to
//! `<process dir>/volumes/s1/` before the function loads (again for every process, so a restart
//! gets fresh files), and the function finds it through [`VOLUMES_DIR_VAR`].

use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path};

/// The variable that tells a function where its volumes are: `$KELP_VOLUMES_DIR/s1/key` is what a
/// pod would read at `/s1/key`.
pub const VOLUMES_DIR_VAR: &str = "KELP_VOLUMES_DIR";

/// Mode of a Secret's files: the owner's (the platform's user) to read, nobody else's.
const SECRET_MODE: u32 = 0o400;
/// Mode of a ConfigMap's files: read-only, as mounted in a pod.
const CONFIG_MODE: u32 = 0o444;

/// A volume of a function's pod template as files: a Secret or ConfigMap mounted at
/// `mount_path`. Its [`fmt::Debug`] never shows file contents.
#[derive(Clone, PartialEq, Eq)]
pub struct Volume {
    /// The container's `mountPath`, e.g. `/s1`.
    pub mount_path: String,
    /// Whether the files are a Secret's (mode 0400) rather than a ConfigMap's (0444).
    pub secret: bool,
    /// The files: path under the mount (a key, or an item's `path`) and content.
    pub files: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: Vec<&str> = self.files.iter().map(|(path, _)| path.as_str()).collect();
        f.debug_struct("Volume")
            .field("mount_path", &self.mount_path)
            .field("secret", &self.secret)
            .field("files", &files)
            .finish()
    }
}

impl Volume {
    /// Bytes that change when anything of the volume does (for the revision hash).
    pub(crate) fn digest_input(&self, out: &mut Vec<u8>) {
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        field(self.mount_path.as_bytes());
        field(&[u8::from(self.secret)]);
        for (path, content) in &self.files {
            field(path.as_bytes());
            field(content);
        }
    }
}

/// Refuses mount paths and file paths that would leave the volumes directory (`..`) or name
/// nothing.
pub(crate) fn check(volumes: &[Volume]) -> Result<(), String> {
    for volume in volumes {
        relative(&volume.mount_path)
            .ok_or_else(|| format!("volume mount path {:?} is not usable", volume.mount_path))?;
        for (path, _) in &volume.files {
            relative(path)
                .filter(|p| !path.starts_with('/') && p.components().count() > 0)
                .ok_or_else(|| format!("volume file {path:?} (under {}) is not usable", volume.mount_path))?;
        }
    }
    Ok(())
}

/// `path` without its leading `/`, if it has only normal components.
fn relative(path: &str) -> Option<&Path> {
    let relative = Path::new(path.trim_start_matches('/'));
    relative.components().all(|c| matches!(c, Component::Normal(_))).then_some(relative)
}

/// Writes `volumes` under `dir` (created owner-only) and returns the variable naming it; nothing
/// when there are no volumes.
pub(crate) fn write(dir: &Path, volumes: &[Volume]) -> io::Result<Option<(String, String)>> {
    if volumes.is_empty() {
        return Ok(None);
    }
    check(volumes).map_err(io::Error::other)?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder.create(dir)?;
    for volume in volumes {
        let mount = dir.join(relative(&volume.mount_path).unwrap_or(Path::new("")));
        builder.create(&mount)?;
        for (path, content) in &volume.files {
            let file = mount.join(relative(path).unwrap_or(Path::new("")));
            if let Some(parent) = file.parent() {
                builder.create(parent)?;
            }
            let mode = if volume.secret { SECRET_MODE } else { CONFIG_MODE };
            std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&file)?.write_all(content)?;
        }
    }
    Ok(Some((VOLUMES_DIR_VAR.to_owned(), dir.display().to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn volume(mount_path: &str, secret: bool, files: &[(&str, &str)]) -> Volume {
        let files = files.iter().map(|(p, c)| (p.to_string(), c.as_bytes().to_vec())).collect();
        Volume { mount_path: mount_path.into(), secret, files }
    }

    #[test]
    fn files_land_under_the_mount_path_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("volumes");
        let volumes =
            [volume("/s1", true, &[("key", "MY_KEY")]), volume("/etc/conf", false, &[("a", "1"), ("sub/b", "2")])];
        let var = write(&root, &volumes).unwrap().unwrap();
        assert_eq!(var, (VOLUMES_DIR_VAR.to_owned(), root.display().to_string()));
        assert_eq!(std::fs::read_to_string(root.join("s1/key")).unwrap(), "MY_KEY");
        assert_eq!(std::fs::read_to_string(root.join("etc/conf/sub/b")).unwrap(), "2");
        let mode = |p: &str| std::fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("s1/key"), mode("etc/conf/a"), mode("")), (0o400, 0o444, 0o700));
        assert_eq!(write(&dir.path().join("none"), &[]).unwrap(), None);
    }

    #[test]
    fn paths_stay_inside_and_contents_stay_hidden() {
        assert!(check(&[volume("/../etc", true, &[])]).is_err());
        assert!(check(&[volume("/s", true, &[("../x", "")])]).is_err());
        assert!(check(&[volume("/s", true, &[("", "")])]).is_err());
        assert!(check(&[volume("/s", true, &[("a/./b", "")])]).is_ok());
        let shown = format!("{:?}", volume("/s1", true, &[("key", "MY_KEY")]));
        assert!(shown.contains("key") && !shown.contains("MY_KEY"), "{shown}");
    }
}
