//! The one fault vocabulary (`docs/spec.md`, fault model) and the one
//! `--faults` list grammar, shared by the simulator, live mode, the model
//! and the fuzzer.
//!
//! Grammar: a comma-separated list. An optional first word chooses the
//! start: `swarm` (each seed draws a random subset of the pool), `all`
//! (every fault the tool supports; for the simulator, live mode and the
//! fuzzer without `pause`, see [`Tool::all_includes_pause`]), `none` (no
//! fault) or `standard` (the tool's default set, [`FaultSet::standard_for`]:
//! `all` except for the model). Then each item is a fault name, optionally
//! prefixed by `+` (add, the default) or `-` (remove). Group names:
//! `indeterminate` stands for `error-applied,error-lost`. Aliases from the
//! model's old vocabulary: `crash` is `producer-crash`, `collision` is
//! `collisions`. An unknown word is an error that names it and lists the
//! valid ones. [`FaultSpec::named`] keeps apart the faults a list names one
//! by one from those a start word brought in, so that a tool can leave out a
//! fault `all` brought in that does not apply to its configuration, yet
//! refuse the same fault when it was asked for by name.

use std::collections::BTreeSet;
use std::fmt;

/// A tool that injects faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    /// The deterministic simulator (`sim`, madsim).
    Simulator,
    /// Live mode (`sim --live`).
    Live,
    /// The stateright model (`model`).
    Model,
    /// The fuzzer (`fuzz`, `fuzz-check`).
    Fuzz,
}

/// One fault of the fault model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Fault {
    /// Producers pick keys from a few hot ones, so claims race.
    Contention,
    /// Store calls are delayed and reordered.
    Latency,
    /// A store call takes effect but answers with an error.
    ErrorApplied,
    /// A store call answers with an error without taking effect.
    ErrorLost,
    /// Reads and scans served from an older view.
    StaleReads,
    /// Producers killed at any await point, restarted with no memory.
    ProducerCrash,
    /// The store crashes, dropping unflushed appends.
    StoreCrash,
    /// Clocks offset from each other and jumping.
    ClockSkew,
    /// Stored records bit-flipped, truncated or overwritten.
    Corruption,
    /// Keys share streams (a tiny hash space or a forced collision).
    Collisions,
    /// Fenced sweeps page over a few streams, so their cursor crosses pages.
    LongStreams,
    /// A producer paused longer than the TTL (drops A1's assumption).
    Pause,
    /// A delivery fails, so the producer releases its claim.
    DeliveryFailure,
    /// A janitor compacts a stream below its head at any moment, racing
    /// every operation.
    Compaction,
}

/// The group name `--faults` accepts for [`Fault::INDETERMINATE`].
pub const INDETERMINATE_GROUP: &str = "indeterminate";

impl Tool {
    /// True when `all` includes `pause` for this tool. The model explores
    /// `pause` exhaustively as one more fault (its seed-API A1 becomes a
    /// `sometimes` that must be witnessed), so `all` means every fault it
    /// has; the simulator, live mode and the fuzzer report every A1 break
    /// `pause` provokes on a random seed as a violation, so for them
    /// `pause` is only ever named.
    #[must_use]
    pub fn all_includes_pause(self) -> bool {
        self == Tool::Model
    }

    /// The tool's name as its error messages spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Tool::Simulator => "simulator",
            Tool::Live => "live",
            Tool::Model => "model",
            Tool::Fuzz => "fuzz",
        }
    }
}

impl Fault {
    /// The faults `indeterminate` stands for: an error answer that may or
    /// may not have taken effect.
    pub const INDETERMINATE: [Fault; 2] = [Fault::ErrorApplied, Fault::ErrorLost];

    /// Every fault, in a fixed order (the simulator's order first).
    pub const ALL: [Fault; 14] = [
        Fault::Contention,
        Fault::Latency,
        Fault::ErrorApplied,
        Fault::ErrorLost,
        Fault::StaleReads,
        Fault::ProducerCrash,
        Fault::StoreCrash,
        Fault::ClockSkew,
        Fault::Corruption,
        Fault::Collisions,
        Fault::LongStreams,
        Fault::Pause,
        Fault::DeliveryFailure,
        Fault::Compaction,
    ];

    /// The name used by `--faults` and in files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Fault::Contention => "contention",
            Fault::Latency => "latency",
            Fault::ErrorApplied => "error-applied",
            Fault::ErrorLost => "error-lost",
            Fault::StaleReads => "stale-reads",
            Fault::ProducerCrash => "producer-crash",
            Fault::StoreCrash => "store-crash",
            Fault::ClockSkew => "clock-skew",
            Fault::Corruption => "corruption",
            Fault::Collisions => "collisions",
            Fault::LongStreams => "long-streams",
            Fault::Pause => "pause",
            Fault::DeliveryFailure => "delivery-failure",
            Fault::Compaction => "compaction",
        }
    }

    /// One line on what it does.
    #[must_use]
    pub fn meaning(self) -> &'static str {
        match self {
            Fault::Contention => "producers pick keys from a few hot ones, so claims race",
            Fault::Latency => {
                "store calls get extra delay before and after they act, so they reorder"
            }
            Fault::ErrorApplied => "an append or flush takes effect but answers StoreError",
            Fault::ErrorLost => "a store call answers StoreError without taking effect",
            Fault::StaleReads => "a read or scan is served from an older view of the stream",
            Fault::ProducerCrash => "a producer is killed at any await point and restarts empty",
            Fault::StoreCrash => "the store crashes, drops unflushed appends, restarts",
            Fault::ClockSkew => "clocks are offset from each other and jump",
            Fault::Corruption => "a stored record gets a bit flip, is truncated or overwritten",
            Fault::Collisions => "keys share streams",
            Fault::LongStreams => {
                "fenced sweeps page over a few streams, so their cursor crosses pages"
            }
            Fault::Pause => "a producer is paused longer than the TTL (drops A1's assumption)",
            Fault::DeliveryFailure => "a delivery fails, so the producer releases its claim",
            Fault::Compaction => {
                "a janitor compacts a stream below its head at any moment, racing every operation"
            }
        }
    }

    /// The tools that can inject this fault today.
    #[must_use]
    pub fn tools(self) -> &'static [Tool] {
        use Tool::{Fuzz, Live, Model, Simulator};
        match self {
            Fault::Contention | Fault::Latency | Fault::LongStreams => &[Simulator, Live],
            Fault::ErrorApplied | Fault::ErrorLost => &[Simulator, Live, Model, Fuzz],
            Fault::StaleReads => &[Simulator, Live, Model, Fuzz],
            Fault::Corruption => &[Simulator, Live, Model, Fuzz],
            Fault::ProducerCrash | Fault::Pause => &[Simulator, Live, Model],
            Fault::StoreCrash => &[Simulator, Live, Model, Fuzz],
            Fault::ClockSkew => &[Simulator, Live, Model],
            Fault::Compaction => &[Simulator, Live, Model],
            Fault::Collisions => &[Simulator, Live, Model],
            Fault::DeliveryFailure => &[Model],
        }
    }

    /// True when `tool` can inject this fault.
    #[must_use]
    pub fn supported_by(self, tool: Tool) -> bool {
        self.tools().contains(&tool)
    }

    /// Parses one fault name (or an alias from the model's vocabulary).
    #[must_use]
    pub fn parse(name: &str) -> Option<Fault> {
        match name {
            "crash" => Some(Fault::ProducerCrash),
            "collision" => Some(Fault::Collisions),
            _ => Fault::ALL.into_iter().find(|fault| fault.name() == name),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of faults, printed as a comma-separated list (`none` when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FaultSet(pub BTreeSet<Fault>);

impl FaultSet {
    /// What `all` means for `tool`: every fault it supports, `pause` only
    /// where [`Tool::all_includes_pause`].
    #[must_use]
    pub fn all_for(tool: Tool) -> FaultSet {
        FaultSet(
            Fault::ALL
                .into_iter()
                .filter(|fault| {
                    fault.supported_by(tool)
                        && (*fault != Fault::Pause || tool.all_includes_pause())
                })
                .collect(),
        )
    }

    /// What `standard` means for `tool`: its default configuration's faults.
    /// For the model that is every fault it supports but `pause` (which
    /// drops A1's timing assumption), `collisions` (which needs two keys,
    /// and the standard configuration has one), `clock-skew` and
    /// `stale-reads` (which need the fenced API, and the standard
    /// configuration runs the seed API), `compaction` and `corruption`
    /// (which the standard configuration leaves out, so that its figures
    /// stay comparable); for the other tools it is `all`.
    #[must_use]
    pub fn standard_for(tool: Tool) -> FaultSet {
        let mut set = FaultSet::all_for(tool);
        if tool == Tool::Model {
            set.0.remove(&Fault::Pause);
            set.0.remove(&Fault::Collisions);
            set.0.remove(&Fault::ClockSkew);
            set.0.remove(&Fault::StaleReads);
            set.0.remove(&Fault::Compaction);
            set.0.remove(&Fault::Corruption);
        }
        set
    }

    /// True when `fault` is in the set.
    #[must_use]
    pub fn has(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|fault| fault.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// What a `--faults` value asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    /// True for `swarm`: each seed enables a random subset of `set`.
    pub swarm: bool,
    /// The faults (or, with `swarm`, the pool).
    pub set: FaultSet,
    /// The faults of `set` the list named one by one (or by a group name),
    /// as opposed to those its start word (`all`, `standard`, `swarm`)
    /// brought in.
    pub named: FaultSet,
}

impl FaultSpec {
    /// Parses a `--faults` value for `tool` (see the module comment). A
    /// fault `tool` cannot inject is an error naming the tools that can.
    pub fn parse(text: &str, tool: Tool) -> Result<FaultSpec, String> {
        let mut parts = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .peekable();
        let mut spec = FaultSpec {
            swarm: false,
            set: FaultSet::default(),
            named: FaultSet::default(),
        };
        match parts.peek().copied() {
            Some("swarm") => {
                spec.swarm = true;
                spec.set = FaultSet::all_for(tool);
            }
            Some("all") => spec.set = FaultSet::all_for(tool),
            Some("standard") => spec.set = FaultSet::standard_for(tool),
            Some("none") => {}
            Some(_) => return parse_items(parts, spec, tool),
            None => {
                return Err(format!(
                    "--faults needs a value: swarm, all, none or a list of {}",
                    known()
                ));
            }
        }
        parts.next();
        parse_items(parts, spec, tool)
    }
}

fn parse_items<'a>(
    parts: impl Iterator<Item = &'a str>,
    mut spec: FaultSpec,
    tool: Tool,
) -> Result<FaultSpec, String> {
    for part in parts {
        let (remove, name) = match part.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let faults = if name == INDETERMINATE_GROUP {
            Fault::INDETERMINATE.to_vec()
        } else {
            vec![Fault::parse(name).ok_or_else(|| {
                format!(
                    "unknown fault {name:?}; the faults are {}, or swarm/all/none/indeterminate",
                    known()
                )
            })?]
        };
        for fault in faults {
            if remove {
                spec.set.0.remove(&fault);
                spec.named.0.remove(&fault);
            } else if fault.supported_by(tool) {
                spec.set.0.insert(fault);
                spec.named.0.insert(fault);
            } else {
                let tools: Vec<&str> = fault.tools().iter().map(|t| t.name()).collect();
                return Err(format!(
                    "fault {:?} is not supported by {}; it is supported by {}",
                    fault.name(),
                    tool.name(),
                    tools.join(", ")
                ));
            }
        }
    }
    Ok(spec)
}

fn known() -> String {
    Fault::ALL.map(Fault::name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_name_parses_back_to_itself() {
        for fault in Fault::ALL {
            assert_eq!(Fault::parse(fault.name()), Some(fault));
        }
    }

    #[test]
    fn compaction_parses_and_is_in_all_and_swarm_for_the_simulator_live_and_model_only() {
        assert_eq!(Fault::parse("compaction"), Some(Fault::Compaction));
        assert!(FaultSet::all_for(Tool::Model).has(Fault::Compaction));
        assert!(FaultSpec::parse("none,compaction", Tool::Model).is_ok());
        for tool in [Tool::Simulator, Tool::Live] {
            assert!(FaultSet::all_for(tool).has(Fault::Compaction), "{tool:?}");
            let swarm = FaultSpec::parse("swarm", tool).unwrap();
            assert!(swarm.swarm && swarm.set.has(Fault::Compaction), "{tool:?}");
            let named = FaultSpec::parse("none,compaction", tool).unwrap();
            assert_eq!(named.set.to_string(), "compaction");
        }
        assert!(!FaultSet::all_for(Tool::Fuzz).has(Fault::Compaction));
        assert!(FaultSpec::parse("compaction", Tool::Fuzz).is_err());
    }

    #[test]
    fn swarm_minus_a_fault_is_a_swarm_pool_without_it() {
        let spec = FaultSpec::parse("swarm,-latency", Tool::Simulator).unwrap();
        assert!(spec.swarm);
        assert!(!spec.set.has(Fault::Latency));
        assert!(spec.set.has(Fault::StoreCrash));
        assert!(!spec.set.has(Fault::Pause));
    }

    #[test]
    fn indeterminate_stands_for_both_error_faults_and_model_aliases_parse() {
        let spec = FaultSpec::parse("crash,indeterminate,collision", Tool::Model).unwrap();
        let want = [
            Fault::ProducerCrash,
            Fault::ErrorApplied,
            Fault::ErrorLost,
            Fault::Collisions,
        ];
        assert_eq!(spec.set, FaultSet(want.into_iter().collect()));
        assert!(
            !FaultSpec::parse("all,-indeterminate", Tool::Model)
                .unwrap()
                .set
                .has(Fault::ErrorLost)
        );
    }

    #[test]
    fn none_plus_a_fault_is_exactly_that_fault() {
        let spec = FaultSpec::parse("none,+pause", Tool::Simulator).unwrap();
        assert_eq!(spec.set.to_string(), "pause");
        assert_eq!(
            FaultSpec::parse("none", Tool::Fuzz)
                .unwrap()
                .set
                .to_string(),
            "none"
        );
    }

    #[test]
    fn an_unknown_word_is_named_and_the_valid_ones_listed() {
        let error = FaultSpec::parse("all,+gremlins", Tool::Simulator).unwrap_err();
        assert!(error.contains("\"gremlins\""), "{error}");
        assert!(
            error.contains("store-crash") && error.contains("delivery-failure"),
            "{error}"
        );
        assert!(FaultSpec::parse("", Tool::Simulator).is_err());
    }

    #[test]
    fn a_fault_the_tool_cannot_inject_is_refused_with_the_tools_that_can() {
        let error = FaultSpec::parse("latency", Tool::Model).unwrap_err();
        assert!(
            error.contains("latency") && error.contains("simulator"),
            "{error}"
        );
    }

    #[test]
    fn all_means_every_fault_the_model_supports_pause_included() {
        let all = FaultSpec::parse("all", Tool::Model).unwrap().set;
        let supported: BTreeSet<Fault> = Fault::ALL
            .into_iter()
            .filter(|fault| fault.supported_by(Tool::Model))
            .collect();
        assert_eq!(all.0, supported);
        assert!(all.has(Fault::Pause));
        assert!(!FaultSet::all_for(Tool::Simulator).has(Fault::Pause));
    }

    #[test]
    fn standard_for_the_model_leaves_out_pause_collisions_clock_skew_and_stale_reads() {
        let standard = FaultSpec::parse("standard", Tool::Model).unwrap().set;
        assert_eq!(
            standard.to_string(),
            "error-applied,error-lost,producer-crash,store-crash,delivery-failure"
        );
        assert_eq!(
            FaultSpec::parse("standard", Tool::Simulator).unwrap().set,
            FaultSet::all_for(Tool::Simulator)
        );
    }

    #[test]
    fn named_holds_the_faults_listed_one_by_one_not_those_all_brought_in() {
        let spec = FaultSpec::parse("all,-pause,collision", Tool::Model).unwrap();
        assert_eq!(spec.named.to_string(), "collisions");
        assert!(spec.set.has(Fault::StoreCrash) && !spec.set.has(Fault::Pause));
        let spec = FaultSpec::parse("indeterminate,-error-lost", Tool::Model).unwrap();
        assert_eq!(spec.named.to_string(), "error-applied");
        assert!(
            FaultSpec::parse("all", Tool::Model)
                .unwrap()
                .named
                .0
                .is_empty()
        );
    }
}
