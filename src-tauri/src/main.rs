//! The `troupe` binary: with no command it opens the window (desktop builds); with a command it
//! is the headless CLI (`troupe --help`). In the window's build a command hands the process
//! over to `troupe-cli` beside it, the same commands without WebKit (`cli::process`).

use std::process::ExitCode;

use clap::Parser;
use troupe::cli::{process, Cli};

fn main() -> ExitCode {
    troupe::engine::prepare_process();
    let cli = Cli::parse();
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
    #[cfg(feature = "desktop")]
    process::exec_headless();
    process::main(cli)
}
