//! A small file system of a test's own, to fill up: a tmpfs mounted on a temporary directory
//! (mounting needs root; where it is refused, the test says why and skips that part).

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

/// A tmpfs of a few MiB mounted on a new temporary directory, unmounted when dropped.
#[derive(Debug)]
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB (mode 0700) on a new temporary directory whose name starts with
    /// `prefix`, or says why it cannot.
    pub fn mount(mib: u64, prefix: &str) -> Result<SmallDisk, String> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700"), "kelp-test"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs refused: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(SmallDisk { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a process of the test that outlived it may still hold a file there.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Appends to the file `path` until its file system is full (to the last byte); how many bytes it
/// took.
pub fn fill(path: &Path) -> std::io::Result<u64> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let block = vec![0u8; 1 << 20];
    let mut taken = 0;
    for size in [1 << 20, 4 << 10, 1] {
        loop {
            match file.write(&block[..size]) {
                Ok(0) => break,
                Ok(n) => taken += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(taken)
}
