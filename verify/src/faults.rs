//! The one fault vocabulary: every fault of the fault model, what it does,
//! which tools inject it, and the one `--faults` list grammar.
//!
//! Grammar: an optional leading `swarm` (each seed draws a subset), `all`
//! or `none`, then comma-separated names, each optionally prefixed by `+`
//! (add) or `-` (remove). `indeterminate` stands for
//! `error-applied,error-lost`; the model's older names `crash` and
//! `collision` stand for `producer-crash` and `collisions`.

use std::collections::BTreeSet;
use std::fmt;

/// A tool of the harness that can inject faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    /// The madsim simulator.
    Simulator,
    /// Live mode against real stores.
    Live,
    /// The stateright model.
    Model,
    /// The `cache_ops` fuzz program.
    Fuzz,
}

/// A fault of the fault model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Many producers on a few hot keys.
    Contention,
    /// Store calls delayed by random extra amounts.
    Latency,
    /// A call takes effect but answers an indeterminate error.
    ErrorApplied,
    /// A call answers an indeterminate error without taking effect.
    ErrorLost,
    /// A read or scan served from an older snapshot.
    StaleReads,
    /// A producer killed at any await point, restarted with no memory.
    ProducerCrash,
    /// The store crashes, dropping unflushed appends.
    StoreCrash,
    /// Actor clocks offset from each other and jumping.
    ClockSkew,
    /// Stored record bytes bit-flipped, truncated or overwritten.
    Corruption,
    /// A tiny hash space: keys share streams.
    Collisions,
    /// Small read batches: reads take many calls.
    LongStreams,
    /// A producer paused longer than the TTL (breaks A1's assumption).
    Pause,
    /// A delivery fails and the claim is released.
    DeliveryFailure,
}

impl Fault {
    /// Every fault, in a fixed order.
    pub const ALL: [Fault; 13] = [
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
    ];

    /// The name `--faults` uses.
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
        }
    }

    /// One line saying what the fault does.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            Fault::Contention => "producers pick keys from a few hot ones, so claims race",
            Fault::Latency => "store calls get random extra delay before and after they act",
            Fault::ErrorApplied => "an append or flush takes effect but answers StoreError",
            Fault::ErrorLost => "a store call answers StoreError without taking effect",
            Fault::StaleReads => "a read or scan hides the newest 1-3 entries of a stream",
            Fault::ProducerCrash => "a producer is killed at any await point and restarts empty",
            Fault::StoreCrash => "the store crashes, drops unflushed appends, restarts",
            Fault::ClockSkew => "actor clocks are offset from each other and jump",
            Fault::Corruption => "a stored record gets a bit flip, truncation or overwrite",
            Fault::Collisions => "1-3 hash bits, so keys share streams",
            Fault::LongStreams => "read batches of 1-4 records, so reads take many calls",
            Fault::Pause => "a producer is paused longer than the TTL (breaks A1's assumption)",
            Fault::DeliveryFailure => "a delivery fails and the producer releases its claim",
        }
    }

    /// The tools that inject this fault (the simulator's and the model's
    /// `--faults` lists and the fuzz program; live mode's column is not yet
    /// checked against `sim/src/live/`).
    #[must_use]
    pub fn tools(self) -> &'static [Tool] {
        use Tool::{Fuzz, Live, Model, Simulator};
        match self {
            Fault::Contention | Fault::ProducerCrash | Fault::Pause => &[Simulator, Live, Model],
            Fault::Latency | Fault::ClockSkew => &[Simulator, Live],
            Fault::ErrorApplied | Fault::ErrorLost => &[Simulator, Live, Model, Fuzz],
            Fault::StaleReads => &[Simulator, Live, Fuzz],
            Fault::StoreCrash => &[Simulator, Live, Model],
            Fault::Corruption => &[Simulator, Live],
            Fault::Collisions => &[Simulator, Live, Model, Fuzz],
            Fault::LongStreams => &[Simulator, Live, Fuzz],
            Fault::DeliveryFailure => &[Simulator, Live, Model],
        }
    }

    /// The fault a name (or an older alias) stands for.
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

/// What a `--faults` list asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FaultSpec {
    /// Each seed draws a random subset of `set` (`swarm`).
    pub swarm: bool,
    /// The faults.
    pub set: BTreeSet<Fault>,
}

/// `all` and `swarm`: every fault except [`Fault::Pause`], which drops
/// A1's timing assumption and must be asked for.
#[must_use]
pub fn all_but_pause() -> BTreeSet<Fault> {
    Fault::ALL
        .into_iter()
        .filter(|fault| *fault != Fault::Pause)
        .collect()
}

impl FaultSpec {
    /// Parses a `--faults` list (see the module's grammar). An unknown word
    /// is an error naming it and listing the valid ones.
    pub fn parse(text: &str) -> Result<FaultSpec, String> {
        let mut parts = text.split(',').map(str::trim).filter(|p| !p.is_empty());
        let mut spec = FaultSpec {
            swarm: false,
            set: BTreeSet::new(),
        };
        let mut rest = Vec::new();
        match parts.next() {
            Some("swarm") => {
                spec.swarm = true;
                spec.set = all_but_pause();
            }
            Some("all") => spec.set = all_but_pause(),
            // The simulator's `none` keeps its workload's natural contention.
            Some("none") => {
                spec.set.insert(Fault::Contention);
            }
            Some(first) => rest.push(first),
            None => return Err("--faults needs a value: swarm, all, none or a list".into()),
        }
        rest.extend(parts);
        for part in rest {
            let (remove, name) = match part.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, part.strip_prefix('+').unwrap_or(part)),
            };
            let faults = if name == "indeterminate" {
                vec![Fault::ErrorApplied, Fault::ErrorLost]
            } else {
                vec![Fault::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                    format!(
                        "unknown fault {name:?}; known faults: {}, indeterminate (or swarm, all, none first)",
                        known.join(", ")
                    )
                })?]
            };
            for fault in faults {
                if remove {
                    spec.set.remove(&fault);
                } else {
                    spec.set.insert(fault);
                }
            }
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_fault() {
        for fault in Fault::ALL {
            assert_eq!(Fault::parse(fault.name()), Some(fault));
        }
    }

    #[test]
    fn swarm_minus_a_fault_leaves_it_out() {
        let spec = FaultSpec::parse("swarm,-error-applied,-store-crash").unwrap();
        assert!(spec.swarm);
        assert!(!spec.set.contains(&Fault::ErrorApplied));
        assert!(!spec.set.contains(&Fault::StoreCrash));
        assert!(spec.set.contains(&Fault::ErrorLost));
        assert!(!spec.set.contains(&Fault::Pause));
    }

    #[test]
    fn the_models_names_parse_too() {
        let spec = FaultSpec::parse("crash,store-crash,indeterminate,collision").unwrap();
        assert!(spec.set.contains(&Fault::ProducerCrash));
        assert!(spec.set.contains(&Fault::ErrorLost));
        assert!(spec.set.contains(&Fault::Collisions));
    }

    #[test]
    fn an_unknown_word_is_named_with_the_valid_ones() {
        let error = FaultSpec::parse("all,-bogus").unwrap_err();
        assert!(error.contains("\"bogus\""));
        assert!(error.contains("stale-reads"));
    }
}
