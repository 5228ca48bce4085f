//! `--faults` for the model: the harness's one grammar and names
//! (`atmostonce_verify::faults`), mapped onto the model's fault set, and the
//! faults a configuration cannot have.

use std::fmt::Write as _;

use atmostonce_model::{Config, Fault, FaultSet};
use atmostonce_verify::faults::{FaultSpec, Tool};

/// A parsed `--faults`: the model's faults, and which of them the list
/// named (a named fault that cannot happen is an error; one `all` brought
/// in is left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultChoice {
    /// Every fault asked for.
    pub faults: FaultSet,
    /// Those the list named one by one.
    pub named: FaultSet,
}

/// A fault `all` brought in that the configuration cannot have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOut {
    /// The fault.
    pub fault: Fault,
    /// Why it cannot happen (`needs --keys 2+`).
    pub reason: &'static str,
}

/// Parses a `--faults` value (clap's value parser: its error names the
/// flag and the value).
pub fn parse(text: &str) -> Result<FaultChoice, String> {
    let spec = FaultSpec::parse(text, Tool::Model)?;
    if spec.swarm {
        return Err(
            "swarm draws faults per seed, for the simulator; the model explores every \
             combination of the faults it is given: use all, standard, none or a list"
                .into(),
        );
    }
    let faults = FaultSet::from_vocabulary(&spec.set)?;
    let named = Fault::ALL
        .into_iter()
        .filter(|fault| {
            faults.contains(*fault) && fault.vocabulary().iter().any(|f| spec.named.has(*f))
        })
        .fold(FaultSet::none(), FaultSet::with);
    Ok(FaultChoice { faults, named })
}

/// Puts `choice` into `config` (whose keys are already set): a fault that
/// cannot happen in it is left out when `all` brought it in, and is an error
/// when the list named it.
pub fn apply(choice: &FaultChoice, config: &mut Config) -> Result<Vec<LeftOut>, String> {
    config.faults = choice.faults;
    let mut left_out = Vec::new();
    for fault in Fault::ALL {
        if !choice.faults.contains(fault) {
            continue;
        }
        let Some(reason) = config.inapplicable(fault) else {
            continue;
        };
        if choice.named.contains(fault) {
            return Err(format!(
                "--faults {}: not applicable in this configuration ({reason})",
                fault.name()
            ));
        }
        config.faults = config.faults.without(fault);
        left_out.push(LeftOut { fault, reason });
    }
    Ok(left_out)
}

/// What a fault does in the model (the harness's one-line meanings are
/// about the simulator's store; the model's faults are narrower).
fn meaning(fault: Fault) -> &'static str {
    match fault {
        Fault::Crash => "a producer crashes at any await point and restarts with no memory",
        Fault::StoreCrash => "the store crashes and drops appends not yet flushed",
        Fault::Indeterminate => {
            "an append answers with an error, applied (error-applied) or not (error-lost)"
        }
        Fault::DeliveryFailure => "a delivery fails; the claim is released",
        Fault::Pause => {
            "drop A1's timing assumption: a producer may pause past the TTL (A1 becomes a \
             `sometimes` that must be witnessed)"
        }
        Fault::Collision => "all keys share one stream (needs --keys 2+)",
        Fault::ClockSkew => {
            "a sweep pass reads the clock --skew-ms ahead of or behind the true time \
             (needs --api fenced; counted in --total-faults)"
        }
        Fault::StaleReads => {
            "a read, head read or scan misses each stream's newest entry (needs --api fenced; \
             counted in --total-faults)"
        }
        Fault::Compaction => {
            "a janitor compacts a stream below any sequence up to its head's, at any moment \
             (never its last durable entry; not counted in --total-faults)"
        }
        Fault::Corruption => {
            "a stored record loses its last byte or gets a bit flipped (in its receipt, or a \
             version-1 timestamp's highest set bit)"
        }
    }
}

/// The long help of `--faults`: `head`, then each model fault and what it
/// does.
pub fn long_help(head: &str) -> String {
    let mut text = head.to_owned();
    let width = Fault::ALL.iter().map(|f| f.name().len()).max().unwrap_or(0);
    for fault in Fault::ALL {
        let _ = write!(text, "\n  {:<width$}  {}", fault.name(), meaning(fault));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(keys: usize) -> Config {
        let mut config = Config::standard();
        config.keys = keys;
        config
    }

    #[test]
    fn standard_is_the_standard_configurations_faults() {
        assert_eq!(parse("standard").unwrap().faults, FaultSet::standard());
    }

    #[test]
    fn all_is_every_model_fault_pause_included() {
        let all = parse("all").unwrap();
        assert_eq!(
            all.faults,
            Fault::ALL
                .into_iter()
                .fold(FaultSet::none(), FaultSet::with)
        );
        assert_eq!(all.named, FaultSet::none());
    }

    #[test]
    fn all_with_one_key_and_the_seed_api_leaves_collisions_clock_skew_and_stale_reads_out_and_says_why()
     {
        let mut config = config(1);
        let left_out = apply(&parse("all").unwrap(), &mut config).unwrap();
        assert_eq!(
            left_out,
            [
                LeftOut {
                    fault: Fault::Collision,
                    reason: "needs --keys 2+"
                },
                LeftOut {
                    fault: Fault::ClockSkew,
                    reason: "needs --api fenced"
                },
                LeftOut {
                    fault: Fault::StaleReads,
                    reason: "needs --api fenced"
                },
            ]
        );
        assert!(!config.faults.contains(Fault::Collision));
        assert!(config.faults.contains(Fault::Pause));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_named_collision_with_one_key_is_an_error_naming_it() {
        let error = apply(&parse("all,collision").unwrap(), &mut config(1)).unwrap_err();
        assert!(
            error.contains("collisions") && error.contains("--keys 2+"),
            "{error}"
        );
        let mut two = config(2);
        assert!(
            apply(&parse("collision").unwrap(), &mut two)
                .unwrap()
                .is_empty()
        );
        assert!(two.faults.contains(Fault::Collision));
    }

    #[test]
    fn one_error_fault_alone_is_refused_as_the_model_injects_both() {
        let error = parse("error-applied").unwrap_err();
        assert!(error.contains("error-applied and error-lost"), "{error}");
        let both = parse("error-applied,error-lost").unwrap().faults;
        assert_eq!(both, FaultSet::none().with(Fault::Indeterminate));
    }

    #[test]
    fn swarm_and_faults_the_model_lacks_are_refused_by_name() {
        assert!(parse("swarm").unwrap_err().contains("swarm"));
        let error = parse("standard,latency").unwrap_err();
        assert!(
            error.contains("latency") && error.contains("simulator"),
            "{error}"
        );
    }

    #[test]
    fn what_a_configuration_prints_parses_back_to_it() {
        for text in [
            "standard",
            "all",
            "none",
            "crash,pause",
            "indeterminate,collision",
        ] {
            let faults = parse(text).unwrap().faults;
            assert_eq!(parse(&faults.to_string()).unwrap().faults, faults, "{text}");
        }
    }
}
