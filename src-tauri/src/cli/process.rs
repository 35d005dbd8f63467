//! The process around a command: how a parsed command runs to an exit code (`main`), and how
//! the window's binary hands a command to the headless one (`exec_headless`). The window's
//! build ships two binaries: `troupe`, which opens the window, and `troupe-cli` beside it, the
//! same commands linked without Tauri or WebKit. `troupe COMMAND` hands the process over to
//! `troupe-cli`, so a command, a `troupe serve` left running for days above all, does not carry
//! the window's libraries: 43 MB resident before any model (WebKitGTK, the speech voices it
//! links, JavaScriptCore, ICU; docs/PERFORMANCE.md, issue 24).

use std::process::ExitCode;

use super::{Cli, Command};

/// The headless binary the window's build puts beside `troupe`.
pub const HEADLESS_BINARY: &str = "troupe-cli";

/// Replaces this process with `troupe-cli` beside it, given the same arguments, when there is
/// one; returns only when there is none or it could not start (then the command runs here).
#[cfg(unix)]
pub fn exec_headless() {
    use std::os::unix::process::CommandExt;
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    let headless = me.with_file_name(HEADLESS_BINARY);
    if !headless.is_file() {
        return;
    }
    let err = std::process::Command::new(&headless)
        .arg0("troupe")
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!(
        "troupe: could not start {} ({err}); running the command here",
        headless.display()
    );
}

#[cfg(not(unix))]
pub fn exec_headless() {}

/// Runs a parsed command: logging to stderr, the bench's thread count, the async runtime;
/// errors print as one line.
pub fn main(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TROUPE_LOG")
                .unwrap_or_else(|_| "warn,troupe=info,mistralrs_core=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(Command::Bench(super::BenchArgs {
        threads: Some(t), ..
    })) = &cli.command
    {
        // candle runs matmuls on rayon's global pool, which reads this when it is first built;
        // no other thread exists yet.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(super::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("troupe: {e:#}");
            ExitCode::FAILURE
        }
    }
}
