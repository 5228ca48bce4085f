//! Running a parsed command: the configuration it describes, the check or
//! the Explorer, and the exit status (0 pass, 1 fail, 2 usage error).

use std::process::ExitCode;

use clap::CommandFactory;
use clap::error::ErrorKind;
use stateright::Model;

use atmostonce_model::{
    Api, Config, DedupModel, FENCED_TOTAL_FAULTS, SearchOptions, check_watched,
};

use super::faults::{self, LeftOut};
use super::progress::CheckProgress;
use super::{Cli, Command, FENCED_PRODUCERS, ModelArgs, SEED_PRODUCERS};

/// The exit status of a usage error (clap's own, too).
const USAGE_ERROR: u8 = 2;

/// Prints to standard output. A reader that went away (`| head`) is not
/// an error of the check: the exit status still tells its verdict.
fn say(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(text);
}

/// A usage error found after parsing (a combination of flags), printed the
/// way clap prints its own, with the same exit status.
fn usage_error(message: String) -> ExitCode {
    let error = Cli::command().error(ErrorKind::ArgumentConflict, message);
    let _ = error.print();
    ExitCode::from(USAGE_ERROR)
}

/// The configuration and search the flags describe, and the faults `all`
/// brought in that the configuration cannot have.
fn configure(args: &ModelArgs) -> Result<(Config, SearchOptions, Vec<LeftOut>), String> {
    let mut config = Config::standard();
    // Both are within their clap ranges (at most MAX_PRODUCERS, MAX_KEYS).
    let producers = args.producers.unwrap_or(match args.api.into() {
        Api::Seed => SEED_PRODUCERS,
        Api::Fenced => FENCED_PRODUCERS,
    });
    config.producers = usize::try_from(producers).map_err(|e| e.to_string())?;
    config.keys = usize::try_from(args.keys).map_err(|e| e.to_string())?;
    config.api = args.api.into();
    let bounds = &mut config.bounds;
    bounds.producer_crashes = args.bound;
    bounds.store_crashes = args.bound;
    bounds.indeterminate_appends = args.bound;
    bounds.delivery_failures = args.bound;
    bounds.pauses = args.bound;
    bounds.clock_skews = args.bound;
    bounds.stale_reads = args.bound;
    bounds.max_tick = args.ticks;
    bounds.total_faults = match (args.total_faults, config.api) {
        (Some(total), _) => Some(total),
        (None, Api::Fenced) => Some(FENCED_TOTAL_FAULTS),
        (None, Api::Seed) => None,
    };
    config.skew_ms = args.skew_ms;
    let left_out = faults::apply(&args.faults, &mut config)?;
    config.validate()?;
    let search = SearchOptions {
        symmetry: !args.no_symmetry,
        threads: args.threads.max(1),
    };
    Ok((config, search, left_out))
}

fn say_left_out(left_out: &[LeftOut]) {
    for LeftOut { fault, reason } in left_out {
        say(format_args!(
            "fault {}: not applicable ({reason}), left out of --faults\n",
            fault.name()
        ));
    }
}

/// Runs `cli` and gives the exit status.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(args) => {
            let (config, search, left_out) = match configure(&args.model) {
                Ok(configured) => configured,
                Err(message) => return usage_error(message),
            };
            let progress = CheckProgress::new(args.progress);
            let checked = check_watched(&config, search, &mut |p| progress.update(p));
            progress.finish();
            match checked {
                Ok(report) => {
                    say(format_args!("{report}"));
                    say_left_out(&left_out);
                    if report.passed() {
                        say(format_args!("\nverdict: PASS\n"));
                        ExitCode::SUCCESS
                    } else {
                        say(format_args!(
                            "\nverdict: FAIL ({})\n",
                            report.catalogue_verdict().names()
                        ));
                        ExitCode::from(1)
                    }
                }
                Err(message) => {
                    eprintln!("atmostonce-model: {message}");
                    ExitCode::from(USAGE_ERROR)
                }
            }
        }
        Command::Explore(args) => {
            let (config, search, left_out) = match configure(&args.model) {
                Ok(configured) => configured,
                Err(message) => return usage_error(message),
            };
            let model = match DedupModel::new(config.clone()) {
                Ok(model) => model,
                Err(message) => {
                    eprintln!("atmostonce-model: {message}");
                    return ExitCode::from(USAGE_ERROR);
                }
            };
            say(format_args!("configuration: {config}\n"));
            say_left_out(&left_out);
            say(format_args!(
                "serving the stateright Explorer on http://{}/ (Ctrl-C to stop)\n",
                args.addr
            ));
            // Blocks for as long as the server runs.
            model
                .checker()
                .threads(search.threads)
                .serve(args.addr.as_str());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let name = command.get_name().to_owned();
            clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}
