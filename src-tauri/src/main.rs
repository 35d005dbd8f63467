//! The `troupe` binary: with no command it opens the window (desktop builds); with a command it
//! is the headless CLI (`troupe --help`).

use std::process::ExitCode;

use clap::Parser;
use troupe::cli::{Cli, Command};

fn main() -> ExitCode {
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
