mod fault_lists {
    use std::collections::BTreeSet;

    use crate::config::*;

    #[test]
    fn fault_lists_parse_with_additions_and_removals() {
        let spec = FaultSpec::parse("swarm,-corruption,pause").unwrap();
        let FaultSpec::Swarm(pool) = &spec else {
            panic!("swarm expected")
        };
        assert!(!pool.has(Fault::Corruption));
        assert!(pool.has(Fault::Pause));
        assert!(pool.has(Fault::StoreCrash));
        assert_eq!(spec.to_string(), "swarm,-corruption,pause");
        assert_eq!(
            FaultSpec::parse("none").unwrap(),
            FaultSpec::Exact(FaultSet([Fault::Contention].into_iter().collect()))
        );
        assert_eq!(
            FaultSpec::parse("latency,indeterminate").unwrap(),
            FaultSpec::Exact(FaultSet(
                [Fault::Latency, Fault::ErrorApplied, Fault::ErrorLost]
                    .into_iter()
                    .collect()
            ))
        );
        assert!(FaultSpec::parse("lightning").is_err());
    }

    #[test]
    fn printing_a_fault_spec_gives_text_that_parses_back_to_it() {
        for text in [
            "swarm",
            "all",
            "none",
            "latency,stale-reads",
            "swarm,-error-lost,pause",
        ] {
            let spec = FaultSpec::parse(text).unwrap();
            assert_eq!(FaultSpec::parse(&spec.to_string()).unwrap(), spec, "{text}");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_config_and_swarm_draws_subsets() {
        let spec = FaultSpec::parse("swarm").unwrap();
        let draw = |seed| Config::draw(Api::Seed, Shape::STANDARD, &spec, &mut SplitMix(seed));
        assert_eq!(draw(7), draw(7));
        let distinct: BTreeSet<String> =
            (0..50).map(|seed| draw(seed).faults.to_string()).collect();
        assert!(distinct.len() > 10, "swarm drew only {distinct:?}");
        assert!((0..50).all(|seed| !draw(seed).faults.has(Fault::Pause)));
    }

    #[test]
    fn a_fault_that_is_off_has_no_rate() {
        let config = Config::draw(
            Api::Seed,
            Shape::STANDARD,
            &FaultSpec::parse("none").unwrap(),
            &mut SplitMix(1),
        );
        assert_eq!(
            config.error_lost_pm + config.stale_pm + config.latency_pm,
            0
        );
        assert_eq!(config.hash_bits, 64);
        assert_eq!(config.max_skew_ms, 0);
        assert!(config.validate().is_ok());
    }
}

mod draws {
    use crate::config::*;

    #[test]
    fn drawing_consumes_the_same_randomness_whatever_the_faults() {
        for spec in ["none", "all", "swarm", "latency,pause"] {
            let mut rng = SplitMix(11);
            let _ = Config::draw(
                Api::Seed,
                Shape::STANDARD,
                &FaultSpec::parse(spec).unwrap(),
                &mut rng,
            );
            let mut reference = SplitMix(11);
            let _ = Config::draw(
                Api::Seed,
                Shape::STANDARD,
                &FaultSpec::parse("none").unwrap(),
                &mut reference,
            );
            assert_eq!(rng.next_u64(), reference.next_u64(), "{spec}");
        }
    }
}

mod late {
    use crate::config::*;

    /// Values an old seed's configuration takes from the seed's stream: one
    /// coin per fault but the late ones (12), then 21 rates and timings. A
    /// new fault drawn from that stream would shift every later draw of
    /// every old seed (and the schedule after it), so the count is pinned.
    const EARLY_DRAWS: usize = 33;

    #[test]
    fn a_late_fault_takes_nothing_from_the_seed_stream() {
        for spec in ["swarm", "all", "none,compaction"] {
            let mut rng = SplitMix(5);
            let config = Config::draw(
                Api::Fenced,
                Shape::STANDARD,
                &FaultSpec::parse(spec).unwrap(),
                &mut rng,
            );
            let mut reference = SplitMix(5);
            for _ in 0..EARLY_DRAWS {
                reference.next_u64();
            }
            assert_eq!(rng.next_u64(), reference.next_u64(), "{spec}");
            if spec != "swarm" {
                assert!(config.faults.has(Fault::Compaction), "{spec}");
                assert!((5..=200).contains(&config.compact_every_ms), "{spec}");
            }
        }
    }

    #[test]
    fn swarm_draws_compaction_for_some_seeds_and_leaves_their_other_draws_alone() {
        let draw = |spec: &str, seed| {
            Config::draw(
                Api::Fenced,
                Shape::STANDARD,
                &FaultSpec::parse(spec).unwrap(),
                &mut SplitMix(seed),
            )
        };
        let mut with = 0;
        for seed in 0..40 {
            let mut config = draw("swarm", seed);
            let without = draw("swarm,-compaction", seed);
            if config.faults.0.remove(&Fault::Compaction) {
                with += 1;
                assert!(config.compact_every_ms > 0);
                config.compact_every_ms = 0;
            } else {
                assert_eq!(config.compact_every_ms, 0);
            }
            assert_eq!(config, without, "seed {seed}");
        }
        assert!(
            (5..=35).contains(&with),
            "{with} of 40 seeds drew compaction"
        );
        let seed_api = |seed| {
            Config::draw(
                Api::Seed,
                Shape::STANDARD,
                &FaultSpec::parse("swarm").unwrap(),
                &mut SplitMix(seed),
            )
        };
        assert!((0..40).all(|seed| !seed_api(seed).faults.has(Fault::Compaction)));
    }
}
