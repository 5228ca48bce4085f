//! Prints the outcome of every `cache_ops` input in the given directories,
//! one line each: size in bytes, outcome, path. For choosing which fuzzer
//! finds to commit under a descriptive name (see the README, "Fuzzing").
//!
//! ```sh
//! cargo run --release -p atmostonce-fuzz-check --example outcomes -- fuzz/corpus/cache_ops
//! ```

use atmostonce_fuzz_check::history::excused_causes;
use atmostonce_fuzz_check::program::check_bytes;

fn main() -> std::io::Result<()> {
    for dir in std::env::args().skip(1) {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let bytes = std::fs::read(&path)?;
            let outcome = match check_bytes(&bytes) {
                None => "no program".to_owned(),
                Some(verdict) => match verdict.excused.first() {
                    None => "Clean".to_owned(),
                    Some(excused) => format!(
                        "Known {:?} ({:?})",
                        excused_causes(&verdict),
                        excused.violation.invariant
                    ),
                },
            };
            println!("{}\t{outcome}\t{}", bytes.len(), path.display());
        }
    }
    Ok(())
}
