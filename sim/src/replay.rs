//! Files that pin runs: replay files (one seed with its exact configuration,
//! written by `--shrink`, JSON) and the regression file (seeds with their
//! expected verdicts, TOML), replayed by the README's test command.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::{Invariant, Verdict};
use crate::config::{Api, Config, FaultSpec, Shape};
use crate::outcome::ConfigSource;

/// One run pinned exactly: its seed and its whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayFile {
    /// The seed.
    pub seed: u64,
    /// The configuration (not drawn: used as is).
    pub config: Config,
    /// Whether read-only answers are held strictly.
    #[serde(default)]
    pub strict_reads: bool,
    /// The invariant the run violates (`None`: it passes).
    pub expect: Option<String>,
    /// The trace hash the run had when the file was written.
    pub trace_hash: String,
    /// Where the run came from (for the reader).
    #[serde(default)]
    pub origin: String,
}

impl ReplayFile {
    /// Reads a replay file.
    pub fn read(path: &Path) -> Result<ReplayFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let file: ReplayFile = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not a replay file: {error}", path.display()))?;
        file.config
            .validate()
            .map_err(|error| format!("{}: {error}", path.display()))?;
        Ok(file)
    }

    /// Writes it as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|error| format!("cannot encode the replay file: {error}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|error| format!("cannot write {}: {error}", path.display()))
    }
}

/// The verdict an entry expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Every invariant holds.
    Pass,
    /// This invariant is violated (others may be too).
    Violates(Invariant),
}

impl Expect {
    /// Parses `pass` or an invariant name.
    pub fn parse(text: &str) -> Result<Expect, String> {
        if text.eq_ignore_ascii_case("pass") {
            return Ok(Expect::Pass);
        }
        Invariant::parse(text).map(Expect::Violates).ok_or_else(|| {
            format!("expect must be `pass` or an invariant (S1..S7, A1, A2), not {text:?}")
        })
    }

    /// True when `verdict` is what was expected.
    #[must_use]
    pub fn matches(self, verdict: &Verdict) -> bool {
        match self {
            Expect::Pass => verdict.passed(),
            Expect::Violates(invariant) => verdict.invariants().contains(&invariant),
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Pass => f.write_str("pass"),
            Expect::Violates(invariant) => write!(f, "{invariant}"),
        }
    }
}

/// One entry of the regression file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    #[serde(default)]
    why: String,
    seed: Option<u64>,
    #[serde(default)]
    faults: Option<String>,
    #[serde(default)]
    api: Option<String>,
    #[serde(default)]
    producers: Option<u16>,
    #[serde(default)]
    keys: Option<u16>,
    #[serde(default)]
    ops: Option<u32>,
    #[serde(default)]
    strict_reads: bool,
    #[serde(default)]
    replay: Option<PathBuf>,
    expect: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    entry: Vec<RawEntry>,
}

/// One regression: a run and the verdict it must keep giving.
#[derive(Debug, Clone)]
pub struct Regression {
    /// A short name.
    pub name: String,
    /// Why it is here.
    pub why: String,
    /// The seed.
    pub seed: u64,
    /// Its configuration source.
    pub source: ConfigSource,
    /// Strict reads.
    pub strict_reads: bool,
    /// The expected verdict.
    pub expect: Expect,
}

/// Reads a regression file. `replay` paths are relative to the file.
pub fn read_regressions(path: &Path) -> Result<Vec<Regression>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let raw: RawFile = toml::from_str(&text)
        .map_err(|error| format!("{} is not a regression file: {error}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    raw.entry
        .into_iter()
        .map(|entry| {
            let context =
                |error: String| format!("{}: entry {:?}: {error}", path.display(), entry.name);
            let expect = Expect::parse(&entry.expect).map_err(context)?;
            let (seed, source, strict_reads) = match &entry.replay {
                Some(replay) => {
                    let file = ReplayFile::read(&base.join(replay)).map_err(context)?;
                    (
                        file.seed,
                        ConfigSource::Fixed(file.config),
                        file.strict_reads,
                    )
                }
                None => {
                    let seed = entry
                        .seed
                        .ok_or_else(|| context("needs `seed` or `replay`".into()))?;
                    let faults = FaultSpec::parse(entry.faults.as_deref().unwrap_or("swarm"))
                        .map_err(context)?;
                    let api =
                        Api::parse(entry.api.as_deref().unwrap_or("seed")).map_err(context)?;
                    let shape = Shape {
                        producers: entry.producers.unwrap_or(Shape::STANDARD.producers),
                        keys: entry.keys.unwrap_or(Shape::STANDARD.keys),
                        ops: entry.ops.unwrap_or(Shape::STANDARD.ops),
                        fresh_pm: 0,
                    };
                    (
                        seed,
                        ConfigSource::Draw { api, shape, faults },
                        entry.strict_reads,
                    )
                }
            };
            Ok(Regression {
                name: entry.name,
                why: entry.why,
                seed,
                source,
                strict_reads: strict_reads || entry.strict_reads,
                expect,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SplitMix;

    #[test]
    fn a_replay_file_round_trips_through_json() {
        let config = Config::draw(
            Api::Seed,
            Shape::STANDARD,
            &FaultSpec::parse("all").unwrap(),
            &mut SplitMix(5),
        );
        let file = ReplayFile {
            seed: 5,
            config,
            strict_reads: false,
            expect: Some("S1".into()),
            trace_hash: "0x1".into(),
            origin: "test".into(),
        };
        let dir =
            std::env::temp_dir().join(format!("atmostonce-sim-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("replay.json");
        file.write(&path).unwrap();
        assert_eq!(ReplayFile::read(&path).unwrap(), file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_committed_regression_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions.toml");
        let entries = read_regressions(&path).unwrap();
        assert!(entries.iter().any(|entry| entry.expect == Expect::Pass));
        assert!(entries.iter().any(|entry| entry.expect != Expect::Pass));
    }

    #[test]
    fn an_expectation_matches_only_its_invariant() {
        let mut verdict = Verdict::default();
        assert!(Expect::Pass.matches(&verdict));
        verdict.violations.push(crate::check::Violation {
            invariant: Invariant::S1,
            key: Some(0),
            ops: vec![],
            message: String::new(),
        });
        assert!(Expect::Violates(Invariant::S1).matches(&verdict));
        assert!(!Expect::Violates(Invariant::A1).matches(&verdict));
        assert!(!Expect::Pass.matches(&verdict));
        assert!(Expect::parse("S9").is_err());
    }
}
