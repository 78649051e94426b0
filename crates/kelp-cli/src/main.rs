//! `kelp`: the kubeless CLI's commands and flags (`kelp function deploy ...`, `kelp trigger
//! http create ...`, `kelp autoscale ...`), plus `apply`, `delete` and `get` for manifests,
//! aimed at any Kubernetes API server the way kubectl is (`--kubeconfig`, `--context`, `-n`):
//! the one `kelp up` runs, or a cluster's.
//!
//! Layout: `target` (kubeconfig → client), `build` (flags → objects, pure), `cmd` (the
//! commands), `kinds` (what `apply`/`get` handle), `fetch` (files and URLs), `table`,
//! `output`, `metrics` (`function top`), `dashboard` (the web page and its API proxy),
//! `warnings` (the API server's, printed as kubectl does).
//!
//! Data goes to stdout, information to stderr; an error is one line on stderr,
//! `kelp: error: ...`, and exit code 1.
//!
//! The objects written are the kubeless CLI's (golden tests in `build` compare them with the
//! Kubeless reference objects of `kelp-api`), without its bugs:
//!
//! - `function update` sends a JSON merge patch of the flags given only: the timeout, port and
//!   image pull policy are not reset to their defaults, `--env` sets variables by name and
//!   keeps the others, `--secrets` does not mount a Secret twice.
//! - `--memory` alone writes no `cpu: "0"` request and limit (nor `--cpu` alone a memory one).
//! - `trigger cronjob create` without a payload stores none (Kubeless stored `{}`, a POST).
//! - An archive is always `base64`, even when its bytes happen to be UTF-8.
//! - `function ls -o wide` has as many cells as headers, aligned; multi-line cells stay in
//!   their column.
//! - `autoscale create` targets `apps/v1` Deployments (Kubeless wrote `apps/v1beta1`).
//! - The client does not retry 429/503 answers: a 503 through the service proxy is a
//!   function's answer, and retrying would call it again.

mod build;
mod bundle;
mod cmd;
mod dashboard;
mod dynamic;
mod fetch;
mod kinds;
mod metrics;
mod output;
mod table;
mod target;
mod up;
mod warnings;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::target::GlobalArgs;

/// Deploy and run Kubeless functions with Kelp.
#[derive(Debug, Parser)]
#[command(name = "kelp", version, propagate_version = true, max_term_width = 120)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The commands. Adding one (e.g. `kelp up`) is a variant here, its module, and an arm in
/// [`run`].
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy, update, list, call and inspect functions
    #[command(subcommand)]
    Function(cmd::function::FunctionCommand),
    /// Create, update, delete and list triggers
    #[command(subcommand)]
    Trigger(cmd::trigger::TriggerCommand),
    /// Create, delete, list and publish to Kafka topics (through the brokers' admin API)
    #[command(subcommand)]
    Topic(cmd::topic::TopicCommand),
    /// Scale functions automatically
    #[command(subcommand)]
    Autoscale(cmd::autoscale::AutoscaleCommand),
    /// Create or update the objects of manifest files
    Apply(cmd::manifest::ApplyArgs),
    /// Delete the objects of manifest files
    Delete(cmd::manifest::DeleteArgs),
    /// Print objects of a kind
    Get(cmd::manifest::GetArgs),
    /// Print the runtimes the server supports
    GetServerConfig,
    /// Print the version
    Version,
    /// Print a shell completion script
    Completion {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run Kelp on this machine: the Kubernetes API for functions, and the functions themselves
    Up(up::UpArgs),
    /// Serve the web dashboard on loopback, talking to the context's API server with your
    /// credentials (kelp up's or a cluster's); prints the login URL
    Dashboard(dashboard::DashboardArgs),
    /// Install Kelp into the cluster of the context: the CRDs, then the controller and what it
    /// needs, in namespace -n (default kubeless)
    Install(cmd::install::InstallArgs),
    /// Remove what `kelp install` installed from namespace -n (default kubeless); the CRDs, and
    /// so every Function and trigger, stay unless --crds is given
    Uninstall(cmd::install::UninstallArgs),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Function(command) => cmd::function::run(&cli.global, command).await,
        Command::Trigger(command) => cmd::trigger::run(&cli.global, command).await,
        Command::Topic(command) => cmd::topic::run(&cli.global, command).await,
        Command::Autoscale(command) => cmd::autoscale::run(&cli.global, command).await,
        Command::Apply(args) => cmd::manifest::apply(&cli.global, args).await,
        Command::Delete(args) => cmd::manifest::delete(&cli.global, args).await,
        Command::Get(args) => cmd::manifest::get(&cli.global, args).await,
        Command::GetServerConfig => cmd::server_config::run(&cli.global).await,
        Command::Up(args) => up::run(&cli.global, args).await,
        Command::Dashboard(args) => dashboard::run(&cli.global, args).await,
        Command::Install(args) => cmd::install::install(&cli.global, args).await,
        Command::Uninstall(args) => cmd::install::uninstall(&cli.global, args).await,
        Command::Version => output::emit(format!("Kelp version: {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Completion { shell } => {
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kelp", &mut buffer);
            output::emit(buffer)
        }
    }
}

/// A usage error as one line: clap's message and the hints it attaches, without the usage
/// block.
fn usage_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect();
    let mut text = String::new();
    for line in lines {
        if !text.is_empty() {
            text.push_str(if text.ends_with(':') { " " } else { "; " });
        }
        text.push_str(line);
    }
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("{text} (see --help)")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `kelp function`: the help of what is missing, on stderr.
            let _ = error.print();
            return ExitCode::FAILURE;
        }
        Err(error) if error.use_stderr() => {
            eprintln!("kelp: error: {}", usage_error(&error));
            return ExitCode::FAILURE;
        }
        Err(error) => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kelp: error: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = format!("{error:#}");
            let message: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("kelp: error: {}", message.join("; "));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kubeless_flags_parse() {
        let cli = Cli::try_parse_from([
            "kelp",
            "function",
            "deploy",
            "hello",
            "-r",
            "python3.8",
            "--handler",
            "h.f",
            "-f",
            "h.py",
            "-l",
            "a=b,c:d",
            "-l",
            "e",
            "-e",
            "X=1",
            "--servicePort",
            "80",
            "--headless",
            "-n",
            "ns",
            "--dryrun",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("ns"));
        let alias =
            Cli::try_parse_from(["kelp", "function", "update", "hello", "--service-port", "81", "--headless=false"]);
        assert!(alias.is_ok());
        assert!(Cli::try_parse_from(["kelp", "--context", "prod", "fn", "ls"]).is_err());
        assert!(Cli::try_parse_from(["kelp", "--context", "prod", "function", "ls", "-o", "wide"]).is_ok());
        assert!(
            Cli::try_parse_from(["kelp", "trigger", "http", "create", "t", "--function-name", "f", "--enableTLSAcme"])
                .is_ok()
        );
        assert!(
            Cli::try_parse_from([
                "kelp",
                "trigger",
                "cronjob",
                "create",
                "t",
                "--function",
                "f",
                "--schedule",
                "@daily",
                "-p",
                "{}"
            ])
            .is_ok()
        );
        assert!(
            Cli::try_parse_from([
                "kelp",
                "trigger",
                "kafka",
                "create",
                "t",
                "--trigger-topic",
                "x",
                "--function-selector",
                "a=b"
            ])
            .is_ok()
        );
        assert!(Cli::try_parse_from(["kelp", "autoscale", "create", "f", "--metric", "qps", "--value", "10"]).is_ok());
        assert!(Cli::try_parse_from(["kelp", "apply", "-f", "-"]).is_ok());
        assert!(Cli::try_parse_from(["kelp", "function", "top", "-f", "hello", "-o", "yaml"]).is_ok());
    }

    #[test]
    fn usage_errors_are_one_line() {
        let error = Cli::try_parse_from(["kelp", "function", "deploy", "hello", "--bogus"]).unwrap_err();
        let line = usage_error(&error);
        assert!(!line.contains('\n'));
        assert!(line.starts_with("unexpected argument '--bogus' found"), "{line}");
        let error = Cli::try_parse_from(["kelp", "trigger", "http", "create", "x"]).unwrap_err();
        assert_eq!(
            usage_error(&error),
            "the following required arguments were not provided: --function-name <FUNCTION> (see --help)"
        );
        let error = Cli::try_parse_from(["kelp", "autoscale", "create", "f", "--metric", "memory", "--value", "1"])
            .unwrap_err();
        assert!(usage_error(&error).contains("possible values: cpu, qps"), "{}", usage_error(&error));
    }
}
