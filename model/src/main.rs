//! `atmostonce-model`: check the model exhaustively, or explore it.

use std::process::ExitCode;

use atmostonce_model::{Api, Config, FaultSet, MAX_FAULT_BOUND, SearchOptions, check};
use stateright::Model;

const HELP: &str = "\
atmostonce-model: exhaustive model checking of the atmostonce protocol

The model runs the engine's own operation state machines (the values the
async DedupCache drives) for N producers, each handling one message per key,
plus the TTL sweeper, against a store that can crash, and explores every
interleaving of their store calls and of the faults below. It checks the
invariants S1-S7 of docs/spec.md (Invariants) as `always` properties, A1
under its timing assumption, that the model can explain every step
(`internal`), and `sometimes` witnesses that every interesting branch
was reached (an applicable witness never reached is a failure).

USAGE:
    atmostonce-model check   [OPTIONS]
    atmostonce-model explore [--addr 127.0.0.1:3000] [OPTIONS]
    atmostonce-model --help

Without options, `check` runs the standard configuration: 3 producers,
1 key, the seed API, faults crash,store-crash,indeterminate,delivery-failure,
one of each, the clock at ticks 0..=2, producer symmetry reduction, 2 threads.

OPTIONS:
    --producers N     concurrent producers (1-6; default 3)
    --keys K          idempotency keys; each producer handles one message per
                      key, in order (1-3; default 1)
    --api API         the API the producers use (default seed):
                        seed    claim_or_get / complete_receipt_at /
                                release_claim_at and the TTL sweeper
                        fenced  claim (a claim id the model draws) /
                                complete / release with the claim token, the
                                FencedSweeper; the delivery carries the
                                token's fence to a downstream that refuses a
                                fence lower than one it accepted, so A1 is
                                checked unconditionally (also with pause),
                                and every answer and record is judged by the
                                oracle's fenced specification
    --faults LIST     comma-separated faults (default: standard):
                        crash             a producer crashes at any await point
                                          and restarts with no memory
                        store-crash       the store crashes and drops appends
                                          not yet flushed
                        indeterminate     an append answers with an error,
                                          applied or not
                        delivery-failure  a delivery fails; the claim is released
                        pause             drop A1's timing assumption: a producer
                                          may pause past the TTL (A1 becomes a
                                          `sometimes` that must be witnessed)
                        collision         all keys share one stream (needs --keys 2+)
                      or none, all, standard
    --bound N         how many faults of each kind (0-4; default 1)
    --ticks N         the clock's last tick (1-4; default 2; an entry expires one
                      tick after its timestamp)
    --no-symmetry     explore without producer symmetry reduction (breadth-first)
    --threads T       checker threads (default 2)
    --addr A          where `explore` serves the Explorer (default 127.0.0.1:3000)

OUTPUT (check): the configuration, unique states, states per second, elapsed
time, each property's verdict (HOLDS / VIOLATED, witnessed / NOT WITNESSED /
not applicable), and for each violated invariant a shortest counterexample as
numbered steps: who did what, what the engine answered, and what the store
held afterwards: each stream's records `seq:kind(key, tick)`, with `|`
where the durable prefix ends (what follows it a store crash drops).

EXIT STATUS: 0 when every invariant holds and every applicable witness was
reached, 1 otherwise, 2 for a usage error.
";

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints to standard output. A reader that went away (`| head`) is not
/// an error of the check: the exit status still tells its verdict.
fn say(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_fmt(text);
}

enum Command {
    Check,
    Explore,
}

struct Args {
    command: Command,
    config: Config,
    search: SearchOptions,
    addr: String,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let command = match args.next().as_deref() {
        Some("check") => Command::Check,
        Some("explore") => Command::Explore,
        Some("--help" | "-h" | "help") => return Ok(None),
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("missing command: check or explore".into()),
    };
    let mut parsed = Args {
        command,
        config: Config::standard(),
        search: SearchOptions::default(),
        addr: "127.0.0.1:3000".into(),
    };
    let number = |flag: &str, value: Option<String>| -> Result<usize, String> {
        value
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse()
            .map_err(|_| format!("{flag} needs a number"))
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--producers" => parsed.config.producers = number(&flag, args.next())?,
            "--keys" => parsed.config.keys = number(&flag, args.next())?,
            "--threads" => parsed.search.threads = number(&flag, args.next())?.max(1),
            "--no-symmetry" => parsed.search.symmetry = false,
            "--api" => {
                let value = args.next().ok_or("--api needs a value")?;
                parsed.config.api = Api::parse(&value)
                    .ok_or_else(|| format!("unknown API {value:?}; the APIs are seed, fenced"))?;
            }
            "--faults" => {
                parsed.config.faults =
                    FaultSet::parse(&args.next().ok_or("--faults needs a list")?)?;
            }
            "--bound" => {
                let bound = u8::try_from(number(&flag, args.next())?)
                    .ok()
                    .filter(|b| *b <= MAX_FAULT_BOUND)
                    .ok_or_else(|| format!("--bound is at most {MAX_FAULT_BOUND}"))?;
                let b = &mut parsed.config.bounds;
                b.producer_crashes = bound;
                b.store_crashes = bound;
                b.indeterminate_appends = bound;
                b.delivery_failures = bound;
            }
            "--ticks" => {
                parsed.config.bounds.max_tick = u8::try_from(number(&flag, args.next())?)
                    .ok()
                    .filter(|t| (1..=4).contains(t))
                    .ok_or("--ticks must be between 1 and 4")?;
            }
            "--addr" => parsed.addr = args.next().ok_or("--addr needs an address")?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    parsed.config.validate()?;
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            say(format_args!("{HELP}"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("atmostonce-model: {message}\n\nrun `atmostonce-model --help` for usage");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Command::Check => match check(&args.config, args.search) {
            Ok(report) => {
                say(format_args!("{report}"));
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
                ExitCode::from(2)
            }
        },
        Command::Explore => {
            let model = match atmostonce_model::DedupModel::new(args.config.clone()) {
                Ok(model) => model,
                Err(message) => {
                    eprintln!("atmostonce-model: {message}");
                    return ExitCode::from(2);
                }
            };
            say(format_args!("configuration: {}\n", args.config));
            say(format_args!(
                "serving the stateright Explorer on http://{}/ (Ctrl-C to stop)\n",
                args.addr
            ));
            // Blocks for as long as the server runs.
            model
                .checker()
                .threads(args.search.threads)
                .serve(args.addr.as_str());
            ExitCode::SUCCESS
        }
    }
}
