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
