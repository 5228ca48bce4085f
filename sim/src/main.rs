//! The simulator's command line. See `cargo sim -- --help`.

use atmostonce_sim::cli::{self, Action};

fn main() {
    let action = cli::parse(std::env::args_os()).unwrap_or_else(|error| error.exit());
    std::process::exit(dispatch(action));
}

/// Runs what both builds run alike; `None` for a mode of one build.
fn common(action: &Action) -> Option<i32> {
    match action {
        Action::Help => {
            println!("{}", cli::long_help());
            Some(0)
        }
        Action::Merge { files, json } => Some(atmostonce_sim::merge::run(files, *json)),
        Action::Completions(shell) => {
            cli::completions(*shell, &mut std::io::stdout());
            Some(0)
        }
        Action::Simulate(_) | Action::Live(_) | Action::LiveServer { .. } => None,
    }
}

/// Runs the mode the command line asked for; returns the exit status.
#[cfg(madsim)]
fn dispatch(action: Action) -> i32 {
    if let Some(code) = common(&action) {
        return code;
    }
    match action {
        Action::Simulate(sim) => atmostonce_sim::madsim::app::run(&sim),
        _ => {
            eprintln!("{}", cli::madsim_build_notice());
            2
        }
    }
}

/// Runs the mode the command line asked for; returns the exit status.
#[cfg(not(madsim))]
fn dispatch(action: Action) -> i32 {
    if let Some(code) = common(&action) {
        return code;
    }
    match action {
        Action::Live(args) => atmostonce_sim::live::app::run_command(&args),
        Action::LiveServer { path } => atmostonce_sim::live::server::serve(&path),
        _ => {
            eprintln!("{}", cli::ordinary_build_notice());
            2
        }
    }
}
