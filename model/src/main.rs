//! `atmostonce-model`: check the model exhaustively, or explore it. The
//! command line is `cli/` (`atmostonce-model --help`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::run(cli::Cli::parse())
}
