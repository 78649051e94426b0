//! A finished command's exit code and output, and the assertions the CLI tests make on them
//! (shared by the test binaries through `#[path]`).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

/// The result of a command.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

#[allow(dead_code)] // Each test binary uses some of these.
impl Run {
    /// Exit code 0.
    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        assert_eq!(self.code, 0, "the command failed: {self:?}");
        self
    }

    /// Exit code 1 and exactly one error line, `kelp: error: ...` containing `needle`, last on
    /// stderr (informational lines such as `Deploying function...` may come before it).
    #[track_caller]
    pub(crate) fn fails_with(self, needle: &str) -> Self {
        assert_eq!(self.code, 1, "{self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        let errors = lines.iter().filter(|l| l.starts_with("kelp: error: ")).count();
        assert_eq!(errors, 1, "one error line: {self:?}");
        let last = lines.last().copied().unwrap_or_default();
        assert!(last.starts_with("kelp: error: "), "the error comes last: {self:?}");
        assert!(last.contains(needle), "{needle:?} not in {last:?}");
        self
    }

    /// [`Run::fails_with`], and nothing else on stderr.
    #[track_caller]
    pub(crate) fn fails_alone_with(self, needle: &str) -> Self {
        let run = self.fails_with(needle);
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
        assert_eq!(run.stdout, "", "{run:?}");
        run
    }
}

/// Runs `command` to completion with `stdin` as its input (closed when `None`).
pub(crate) fn run(command: &mut Command, stdin: Option<&str>) -> Run {
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
