//! `troupe-cli`: the window's build's commands without the window. `troupe COMMAND` hands
//! itself over to this binary (`cli::process`), which references no Tauri or WebKit code, so
//! the linker leaves their libraries out and a command starts 43 MB lighter.

use std::process::ExitCode;

use clap::Parser;
use troupe::cli::{process, Cli};

fn main() -> ExitCode {
    troupe::engine::prepare_process();
    let cli = Cli::parse();
    if cli.command.is_none() {
        eprintln!("troupe-cli runs commands; `troupe` opens the window (see `troupe --help`)");
        return ExitCode::from(2);
    }
    process::main(cli)
}
