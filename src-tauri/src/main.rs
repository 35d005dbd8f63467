//! The `troupe` binary: with no command it opens the window (desktop builds); with a command it
//! is the headless CLI (`troupe --help`).

use std::process::ExitCode;

use clap::Parser;
use troupe::cli::{Cli, Command};

fn main() -> ExitCode {
    // RUST_BACKTRACE=1 (set by developers and CI for panics) also makes every library error
    // capture a backtrace, and mistral.rs formats one for each optional GGUF key it probes
    // while reading a tokenizer: symbolising them parsed the binary's debug info, 56 MB kept
    // for the life of the process (heaptrack, docs/PERFORMANCE.md). Panics still print theirs;
    // RUST_LIB_BACKTRACE=1 brings the errors' back. No other thread exists yet.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    troupe::engine::one_allocator_arena();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TROUPE_LOG")
                .unwrap_or_else(|_| "warn,troupe=info,mistralrs_core=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(Command::Bench(troupe::cli::BenchArgs {
        threads: Some(t), ..
    })) = &cli.command
    {
        // candle runs matmuls on rayon's global pool, which reads this when it is first built;
        // no other thread exists yet.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    if cli.command.is_none() {
        #[cfg(feature = "desktop")]
        {
            troupe::desktop::run(cli.model);
            return ExitCode::SUCCESS;
        }
        #[cfg(not(feature = "desktop"))]
        {
            eprintln!("this is the headless build of Troupe; see `troupe --help`");
            return ExitCode::from(2);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(troupe::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("troupe: {e:#}");
            ExitCode::FAILURE
        }
    }
}
