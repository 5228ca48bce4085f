//! The producers' behaviour, independent of any runtime: which key a message
//! carries, how long things take, and how a producer reacts to each answer.
//! The simulation drives it under madsim; a live mode can drive it with
//! real tasks against a real store.

use crate::config::{Config, Draw, Fault};

/// The namespace every simulated cache uses.
pub const NAMESPACE: &str = "sim";

/// Claims a producer makes for one message before it gives up on a key that
/// stays in flight (or keeps failing). Enough for a short-lived holder to
/// finish; the message is then dropped, as a broker would redeliver it later.
pub const MAX_CLAIM_ATTEMPTS: u32 = 3;

/// Completions (or releases) a producer tries after a failed answer before
/// it leaves the claim to expire: a few retries ride out transient store
/// errors without letting one message hold a producer forever.
pub const MAX_FINISH_ATTEMPTS: u32 = 4;

/// Back-off between retries, in milliseconds (drawn in this range).
pub const BACKOFF_MS: (u64, u64) = (5, 50);

/// How long a delivery (the side effect) takes, in milliseconds.
pub const DELIVERY_MS: (u64, u64) = (1, 20);

/// Fenced API: per mille of claims made with the message's fingerprint
/// (`claim_with_fingerprint`); the rest claim without one, which never
/// mismatches. Half and half reaches both paths often.
pub const FINGERPRINT_PM: u32 = 500;

/// Fenced API: per mille of fingerprinted claims that carry a different
/// message under the same key (a client reusing a key), which must be
/// refused with `FingerprintMismatch` while the key is held or completed
/// with a fingerprint. Rare, like the mistake it models.
pub const MISMATCH_PM: u32 = 100;

/// Fenced API: per mille of grants whose work is long: the holder works
/// [`LONG_WORK_MS`], renews its lease, then delivers with the renewed token.
pub const RENEW_PM: u32 = 200;

/// How long a long piece of work takes before its renewal, in milliseconds:
/// well under the shortest drawn lease (2 s), so a holder that is not paused
/// renews in time.
pub const LONG_WORK_MS: (u64, u64) = (50, 400);

/// The workload's keys: `k00`, `k01`, ... (zero-padded so they sort).
#[must_use]
pub fn key_names(keys: u16) -> Vec<String> {
    let width = keys.saturating_sub(1).to_string().len().max(2);
    (0..keys).map(|index| format!("k{index:0width$}")).collect()
}

/// Most fresh keys a run may have (`--fresh-keys`): keys are named by a
/// `u16`, and the workload's own keys (at most `MAX_KEYS`, 4,096) come
/// first.
pub const MAX_FRESH_KEYS: u16 = 60_000;

/// The fresh keys' names: `f00000`, `f00001`, ... (apart from the
/// workload's `k` keys; zero-padded so they sort).
#[must_use]
pub fn fresh_key_names(fresh: u16) -> Vec<String> {
    (0..fresh).map(|index| format!("f{index:05}")).collect()
}

/// Every key of a run of `config`: the workload's, then the fresh ones.
pub fn all_key_names(config: &Config) -> Result<Vec<String>, String> {
    if config.fresh_keys > MAX_FRESH_KEYS {
        return Err(format!(
            "invalid configuration: {} fresh keys; at most {MAX_FRESH_KEYS}",
            config.fresh_keys
        ));
    }
    let mut keys = key_names(config.shape.keys);
    keys.extend(fresh_key_names(config.fresh_keys));
    Ok(keys)
}

/// How many fresh keys a simulated run of `ops` operations with `fresh_pm`
/// per mille of its messages on fresh keys needs: one per such message at
/// most (a message takes at least one operation), within
/// [`MAX_FRESH_KEYS`].
#[must_use]
pub fn fresh_keys_for(ops: u32, fresh_pm: u32) -> u16 {
    if fresh_pm == 0 {
        return 0;
    }
    let wanted = u64::from(ops) * u64::from(fresh_pm.min(1000)) / 1000 + 1;
    u16::try_from(wanted.min(u64::from(MAX_FRESH_KEYS))).unwrap_or(MAX_FRESH_KEYS)
}

/// Picks the key of the next message: with `contention`, most picks go to a
/// few hot keys; otherwise keys are uniform.
pub fn pick_key(config: &Config, rng: &mut impl Draw) -> u16 {
    let keys = u64::from(config.shape.keys.max(1));
    // A shrunk configuration may have fewer keys than its drawn hot keys.
    let hot = u64::from(config.hot_keys.max(1)).min(keys);
    let index = if config.faults.has(Fault::Contention) && rng.chance(config.hot_pm) {
        rng.range(0, hot - 1)
    } else {
        rng.range(0, keys - 1)
    };
    u16::try_from(index).unwrap_or(0)
}

/// The operations each producer may invoke: `ops` shared out evenly.
#[must_use]
pub fn budgets(config: &Config) -> Vec<u32> {
    let producers = u32::from(config.shape.producers.max(1));
    (0..producers)
        .map(|index| config.shape.ops / producers + u32::from(index < config.shape.ops % producers))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Api, FaultSpec, Shape, SplitMix};

    #[test]
    fn key_names_sort_in_key_order() {
        let names = key_names(12);
        assert_eq!(names[0], "k00");
        assert_eq!(names[11], "k11");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
    }

    #[test]
    fn fresh_keys_follow_the_workload_keys_and_are_bounded() {
        let mut config = Config::draw(
            Api::Fenced,
            Shape {
                producers: 2,
                keys: 3,
                ops: 100,
                fresh_pm: 250,
            },
            &FaultSpec::parse("none").unwrap(),
            &mut SplitMix(1),
        );
        assert_eq!(config.fresh_keys, 26);
        let keys = all_key_names(&config).unwrap();
        assert_eq!(keys.len(), 29);
        assert_eq!((keys[2].as_str(), keys[3].as_str()), ("k02", "f00000"));
        assert_eq!(fresh_keys_for(u32::MAX, 1000), MAX_FRESH_KEYS);
        assert_eq!(fresh_keys_for(1000, 0), 0);
        config.fresh_keys = MAX_FRESH_KEYS + 1;
        assert!(all_key_names(&config).is_err());
    }

    #[test]
    fn budgets_share_out_every_operation() {
        let config = Config::draw(
            Api::Seed,
            Shape {
                producers: 3,
                keys: 4,
                ops: 100,
                fresh_pm: 0,
            },
            &FaultSpec::parse("none").unwrap(),
            &mut SplitMix(3),
        );
        assert_eq!(budgets(&config), vec![34, 33, 33]);
    }

    #[test]
    fn contention_sends_most_messages_to_the_hot_keys() {
        let mut rng = SplitMix(9);
        let mut config = Config::draw(
            Api::Seed,
            Shape::STANDARD,
            &FaultSpec::parse("none").unwrap(),
            &mut rng,
        );
        config.hot_keys = 2;
        config.hot_pm = 800;
        let hot = (0..1000)
            .filter(|_| pick_key(&config, &mut rng) < 2)
            .count();
        assert!(hot > 700, "only {hot} of 1000 picks were hot");
    }
}
