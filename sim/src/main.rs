//! The simulator's command line. See `cargo sim -- --help`.

use atmostonce_sim::cli::{self, Mode};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match cli::parse(&args) {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("atmostonce-sim: {error}");
            std::process::exit(2);
        }
    };
    if cli.mode == Mode::Help {
        println!("{}", cli::help());
        #[cfg(not(madsim))]
        println!("\n{}", cli::ordinary_build_notice());
        return;
    }
    std::process::exit(dispatch(&cli));
}

/// Runs the mode the command line asked for; returns the exit status.
#[cfg(madsim)]
fn dispatch(cli: &cli::Cli) -> i32 {
    match cli.mode {
        Mode::Live(_) | Mode::LiveServer { .. } => {
            eprintln!("{}", cli::madsim_build_notice());
            2
        }
        _ => atmostonce_sim::madsim::app::run(cli),
    }
}

/// Runs the mode the command line asked for; returns the exit status.
#[cfg(not(madsim))]
fn dispatch(cli: &cli::Cli) -> i32 {
    match &cli.mode {
        Mode::Live(args) => atmostonce_sim::live::app::run_command(args),
        Mode::LiveServer { path } => atmostonce_sim::live::server::serve(path),
        _ => {
            eprintln!("{}", cli::ordinary_build_notice());
            2
        }
    }
}
