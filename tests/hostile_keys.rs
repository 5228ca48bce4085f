//! Hostile keys: real FNV-1a 64 collisions, built here in well under a
//! second; the keyed hash (`KeyHash::SipHash24`) puts colliding keys in
//! different streams; under FNV-1a the second of two colliding keys is
//! always refused with `DedupCollision`, on both APIs, and its records never
//! mix with the first key's.
//!
//! How the collisions are built. One FNV-1a step is `s' = (s ^ b) * P`. A
//! byte changes only the state's low byte, so `s ^ b = s + d` for a small
//! integer `d = (L ^ b) - L`, `L = s & 0xff`; the hash of `n` bytes after a
//! state `s0` is then `s0 * P^n + sum(d_i * P^(n - i))` (mod 2^64), linear
//! in the `d_i`. Two keys of one length collide exactly when their deltas'
//! differences `e_i = d'_i - d_i` satisfy `sum(e_i * P^(n - i)) = 0`
//! (mod 2^64). Small `e_i` with that sum are found by a generalized
//! birthday search (Wagner's k-tree, eight lists of 2^17 each, each merge
//! zeroing 17 more low bits, the last the remaining 30), then two
//! alphanumeric keys realizing those differences are built byte by byte.

mod common;

use std::sync::Arc;

use atmostonce::fenced::{Claim, FencedCache, FencedOptions, FencedSweeper};
use atmostonce::{
    DedupCache, DedupDecision, DedupOptions, DedupSweeper, DurabilityError, DurableStore, KeyHash,
    MemoryStore, ProcessingReceipt, fnv1a64,
};
use atmostonce_verify::oracle::{naming, record};
use common::run;

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Key bytes the search varies (after a fixed prefix).
const POSITIONS: usize = 24;
/// The k-tree's leaves, each a list over its own positions.
const LEAVES: usize = 8;
const POSITIONS_PER_LEAF: usize = POSITIONS / LEAVES;
/// Each difference `e_i` is in `-RADIUS..=RADIUS`: a leaf holds
/// `(2 * RADIUS + 1)^3 - 1 = 132,650` (about 2^17) nonzero vectors.
const RADIUS: i64 = 25;
/// Low bits each merge level zeroes: 17 + 17 + 30 = 64.
const LEVEL_BITS: [u32; 3] = [17, 17, 30];
/// At most this many entries per merged list.
const MERGE_CAP: usize = 1 << 18;
/// The search's bound on byte choices tried per key pair.
const MAX_CHOICES: usize = 1_000_000;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// One entry of a k-tree list: its sum and where it came from (a leaf's
/// vector code, or the indices of the two entries merged).
#[derive(Clone, Copy)]
struct Node {
    value: u64,
    left: u32,
    right: u32,
}

/// The multiplier of the delta at `position`: `P^(POSITIONS - position)`.
fn coefficient(position: usize) -> u64 {
    (position..POSITIONS).fold(1u64, |product, _| product.wrapping_mul(FNV_PRIME))
}

/// The difference vector a leaf code stands for.
fn leaf_vector(code: u32) -> [i64; POSITIONS_PER_LEAF] {
    let width = u32::try_from(2 * RADIUS + 1).unwrap();
    let mut rest = code;
    std::array::from_fn(|_| {
        let digit = i64::from(rest % width) - RADIUS;
        rest /= width;
        digit
    })
}

fn leaf(index: usize) -> Vec<Node> {
    let width = u32::try_from(2 * RADIUS + 1).unwrap();
    let coefficients: [u64; POSITIONS_PER_LEAF] =
        std::array::from_fn(|j| coefficient(index * POSITIONS_PER_LEAF + j));
    (0..width.pow(3))
        .filter_map(|code| {
            let vector = leaf_vector(code);
            if vector.iter().all(|e| *e == 0) {
                return None;
            }
            let value = vector.iter().zip(coefficients).fold(0u64, |sum, (e, c)| {
                // Two's complement: a negative difference times c, mod 2^64.
                sum.wrapping_add(c.wrapping_mul(*e as u64))
            });
            Some(Node {
                value,
                left: code,
                right: 0,
            })
        })
        .collect()
}

/// Pairs of `a` and `b` entries whose sum is zero in its low `shift + bits`
/// bits (both are zero in the low `shift` already).
fn merge(a: &[Node], b: &[Node], shift: u32, bits: u32) -> Vec<Node> {
    let mask = (1u64 << bits) - 1;
    let slice = |value: u64| (value >> shift) & mask;
    let mut sorted: Vec<(u64, u32)> = b
        .iter()
        .enumerate()
        .map(|(j, node)| (slice(node.value), u32::try_from(j).unwrap()))
        .collect();
    sorted.sort_unstable();
    let mut merged = Vec::new();
    for (i, x) in a.iter().enumerate() {
        let wanted = slice(x.value).wrapping_neg() & mask;
        let start = sorted.partition_point(|(s, _)| *s < wanted);
        for (_, j) in sorted[start..].iter().take_while(|(s, _)| *s == wanted) {
            merged.push(Node {
                value: x.value.wrapping_add(b[*j as usize].value),
                left: u32::try_from(i).unwrap(),
                right: *j,
            });
            if merged.len() == MERGE_CAP {
                return merged;
            }
        }
    }
    merged
}

/// Difference vectors `e` (nonzero, each `|e_i| <= RADIUS`) with
/// `sum(e_i * P^(POSITIONS - i)) = 0 (mod 2^64)`.
fn zero_sum_vectors() -> Vec<[i64; POSITIONS]> {
    let mut levels: Vec<Vec<Vec<Node>>> = vec![(0..LEAVES).map(leaf).collect()];
    let mut shift = 0;
    for bits in LEVEL_BITS {
        let lists = levels.last().unwrap();
        let next = lists
            .chunks(2)
            .map(|pair| merge(&pair[0], &pair[1], shift, bits))
            .collect();
        levels.push(next);
        shift += bits;
    }
    let roots = &levels[LEVEL_BITS.len()][0];
    roots
        .iter()
        .enumerate()
        .filter(|(_, node)| node.value == 0)
        .map(|(index, _)| {
            let mut vector = [0; POSITIONS];
            unfold(&levels, LEVEL_BITS.len(), 0, index, &mut vector);
            vector
        })
        .collect()
}

/// Writes the differences under entry `index` of list `list` at `level`.
fn unfold(levels: &[Vec<Vec<Node>>], level: usize, list: usize, index: usize, out: &mut [i64]) {
    let node = levels[level][list][index];
    if level == 0 {
        let start = list * POSITIONS_PER_LEAF;
        out[start..start + POSITIONS_PER_LEAF].copy_from_slice(&leaf_vector(node.left));
        return;
    }
    unfold(levels, level - 1, 2 * list, node.left as usize, out);
    unfold(levels, level - 1, 2 * list + 1, node.right as usize, out);
}

fn step(state: u64, byte: u8) -> u64 {
    (state ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// Two alphanumeric tails after `prefix` whose deltas differ by `e`,
/// chosen byte by byte (depth first, within [`MAX_CHOICES`] choices).
fn realize(prefix: &str, e: &[i64; POSITIONS]) -> Option<(String, String)> {
    fn search(
        e: &[i64],
        states: (u64, u64),
        tails: &mut (Vec<u8>, Vec<u8>),
        budget: &mut usize,
    ) -> bool {
        let Some((first, rest)) = e.split_first() else {
            return true;
        };
        let (low, other_low) = ((states.0 & 0xff) as i64, (states.1 & 0xff) as i64);
        for &x in ALPHABET {
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            let delta = (low ^ i64::from(x)) - low;
            let other_xored = other_low + delta + first;
            let Ok(y) = u8::try_from(other_xored ^ other_low) else {
                continue;
            };
            if !(0..=255).contains(&other_xored) || !ALPHABET.contains(&y) {
                continue;
            }
            tails.0.push(x);
            tails.1.push(y);
            let next = (step(states.0, x), step(states.1, y));
            if search(rest, next, tails, budget) {
                return true;
            }
            tails.0.pop();
            tails.1.pop();
        }
        false
    }
    let start = fnv1a64(prefix);
    let mut tails = (Vec::new(), Vec::new());
    let mut budget = MAX_CHOICES;
    search(e, (start, start), &mut tails, &mut budget).then(|| {
        let key = |tail: &[u8]| format!("{prefix}{}", String::from_utf8_lossy(tail));
        (key(&tails.0), key(&tails.1))
    })
}

/// At least three distinct pairs of distinct keys with equal FNV-1a 64,
/// searched once per test binary.
fn colliding_pairs() -> Vec<(String, String)> {
    static PAIRS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    PAIRS.get_or_init(search_pairs).clone()
}

fn search_pairs() -> Vec<(String, String)> {
    let vectors = zero_sum_vectors();
    let pairs: Vec<_> = vectors
        .iter()
        .take(3)
        .enumerate()
        .filter_map(|(index, e)| realize(&format!("order-{index}-"), e))
        .collect();
    assert!(
        pairs.len() >= 3,
        "the search found {} zero-sum vectors and realized {} key pairs",
        vectors.len(),
        pairs.len()
    );
    pairs
}

#[test]
fn the_search_builds_real_fnv1a_64_collisions() {
    for (a, b) in colliding_pairs() {
        assert_ne!(a, b);
        assert_eq!(fnv1a64(&a), fnv1a64(&b), "{a} / {b}");
        // The oracle's own FNV-1a agrees: the collision is not an artefact
        // of the engine's hash.
        assert_eq!(naming::stream_name("ns", &a), naming::stream_name("ns", &b));
        let cache = DedupCache::new(Arc::new(MemoryStore::new()), "ns");
        assert_eq!(cache.stream_key_for(&a), cache.stream_key_for(&b));
    }
}

const SECRET: [u8; 16] = *b"0123456789abcdef";

fn keyed() -> KeyHash {
    KeyHash::SipHash24 { secret: SECRET }
}

#[test]
fn the_keyed_hash_separates_colliding_keys_in_names_the_oracle_computes() {
    let seed = DedupOptions::default().with_key_hash(keyed());
    let fenced = FencedOptions::default().with_key_hash(keyed());
    let store = Arc::new(MemoryStore::new());
    let seed_cache = DedupCache::with_options(store.clone(), "ns", seed).unwrap();
    let fenced_cache = FencedCache::new(store, "ns", fenced).unwrap();
    for (a, b) in colliding_pairs() {
        for key in [&a, &b] {
            let name = seed_cache.stream_key_for(key);
            assert_eq!(name, naming::keyed_stream_name("ns", key, &SECRET));
            assert_eq!(name, fenced_cache.stream_key_for(key));
            // Never an FNV-1a name, of any width: a tag, then 32 digits.
            assert!(name.starts_with("ns:sip24-"), "{name}");
            assert_eq!(name.len(), "ns:sip24-".len() + 32);
            assert_eq!(naming::hash_widths_naming("ns", key, &name), 0);
        }
        assert_ne!(seed_cache.stream_key_for(&a), seed_cache.stream_key_for(&b));
    }
}

#[test]
fn under_the_keyed_hash_colliding_keys_are_two_independent_keys_on_both_apis() {
    for (a, b) in colliding_pairs() {
        let options = DedupOptions::default().with_key_hash(keyed());
        let cache = DedupCache::with_options(Arc::new(MemoryStore::new()), "ns", options).unwrap();
        for key in [&a, &b] {
            assert_eq!(run(cache.claim_or_get(key, 1)), Ok(DedupDecision::Claimed));
        }
        for key in [&a, &b] {
            let receipt = ProcessingReceipt::new(key.as_bytes().to_vec());
            run(cache.complete_receipt_at(key, &receipt, 2)).unwrap();
            let again = run(cache.claim_or_get(key, 3));
            assert_eq!(again, Ok(DedupDecision::Completed(receipt)));
        }

        let options = FencedOptions::default().with_key_hash(keyed());
        let cache = FencedCache::new(Arc::new(MemoryStore::new()), "ns", options).unwrap();
        let tokens: Vec<_> = [&a, &b]
            .into_iter()
            .map(|key| match run(cache.claim(key, 1)) {
                Ok(Claim::Granted(token)) => token,
                other => panic!("{key}: {other:?}"),
            })
            .collect();
        for (key, token) in [&a, &b].into_iter().zip(&tokens) {
            let receipt = ProcessingReceipt::new(key.as_bytes().to_vec());
            run(cache.complete(token, &receipt, 2)).unwrap();
            assert_eq!(run(cache.claim(key, 3)), Ok(Claim::Completed(receipt)));
        }
    }
}

fn collision(key: &str) -> DurabilityError {
    DurabilityError::DedupCollision {
        key: key.to_owned(),
    }
}

/// Every record of `stream` decodes (by the oracle's decoder) as `owner`'s.
fn only_records_of(store: &MemoryStore, stream: &str, owner: &str) -> usize {
    let entries = run(store.read_from(stream, 0, 1_000)).unwrap();
    for entry in &entries {
        let decoded = record::decode(&entry.payload).unwrap();
        assert_eq!(decoded.key(), owner, "{stream} #{}", entry.sequence);
    }
    entries.len()
}

#[test]
fn under_fnv_the_seed_api_always_refuses_the_second_of_two_colliding_keys() {
    for (first, second) in colliding_pairs()
        .into_iter()
        .flat_map(|(a, b)| [(a.clone(), b.clone()), (b, a)])
    {
        let store = Arc::new(MemoryStore::new());
        let cache = DedupCache::new(store.clone(), "ns");
        let receipt = ProcessingReceipt::new(b"first's receipt".to_vec());
        assert_eq!(
            run(cache.claim_or_get(&first, 1)),
            Ok(DedupDecision::Claimed)
        );
        assert_eq!(run(cache.claim_or_get(&second, 2)), Err(collision(&second)));
        assert_eq!(run(cache.lookup(&second)), Err(collision(&second)));
        let other = ProcessingReceipt::new(b"second's receipt".to_vec());
        assert_eq!(
            run(cache.complete_receipt_at(&second, &other, 3)),
            Err(collision(&second))
        );
        assert_eq!(
            run(cache.release_claim_at(&second, 3)),
            Err(collision(&second))
        );
        run(cache.complete_receipt_at(&first, &receipt, 4)).unwrap();
        // Never the first key's receipt: refused, still.
        assert_eq!(run(cache.claim_or_get(&second, 5)), Err(collision(&second)));
        assert_eq!(
            run(cache.claim_or_get(&first, 5)),
            Ok(DedupDecision::Completed(receipt))
        );
        // After the first key expires, the stream still holds its records.
        let sweeper = DedupSweeper::new(
            &cache,
            std::time::Duration::from_millis(1),
            std::time::Duration::from_secs(1),
        );
        assert_eq!(
            run(sweeper.sweep_once(1_000_000)).unwrap().expired_entries,
            1
        );
        assert_eq!(
            run(cache.claim_or_get(&second, 1_000_001)),
            Err(collision(&second))
        );
        assert_eq!(
            run(cache.claim_or_get(&first, 1_000_001)),
            Ok(DedupDecision::Claimed)
        );
        let stream = cache.stream_key_for(&first);
        assert_eq!(only_records_of(&store, &stream, &first), 4);
    }
}

#[test]
fn under_fnv_the_fenced_api_always_refuses_the_second_of_two_colliding_keys() {
    for (first, second) in colliding_pairs()
        .into_iter()
        .flat_map(|(a, b)| [(a.clone(), b.clone()), (b, a)])
    {
        let store = Arc::new(MemoryStore::new());
        let options = FencedOptions::default()
            .with_lease_ms(10)
            .with_receipt_ttl_ms(10);
        let cache = FencedCache::new(store.clone(), "ns", options).unwrap();
        let Ok(Claim::Granted(token)) = run(cache.claim(&first, 1)) else {
            panic!("a fresh key is granted");
        };
        assert_eq!(run(cache.claim(&second, 2)), Err(collision(&second)));
        assert_eq!(
            run(cache.claim_with_fingerprint(&second, b"f", 2)),
            Err(collision(&second))
        );
        assert_eq!(run(cache.lookup(&second, 2)), Err(collision(&second)));
        let receipt = ProcessingReceipt::new(b"first's receipt".to_vec());
        run(cache.complete(&token, &receipt, 3)).unwrap();
        assert_eq!(run(cache.claim(&second, 4)), Err(collision(&second)));
        assert_eq!(run(cache.claim(&first, 4)), Ok(Claim::Completed(receipt)));
        // The sweep expires the first key's receipt; the second stays refused.
        let report = run(FencedSweeper::new(&cache).sweep_once(1_000_000)).unwrap();
        assert!(report.skipped.is_empty(), "{report:?}");
        assert_eq!(report.expired_receipts, 1);
        assert_eq!(
            run(cache.claim(&second, 1_000_001)),
            Err(collision(&second))
        );
        assert!(matches!(
            run(cache.claim(&first, 1_000_001)),
            Ok(Claim::Granted(_))
        ));
        // The stream held the first key's claim, completion, expiry and new
        // claim; the sweep compacted all below its expiry away.
        let stream = cache.stream_key_for(&first);
        assert_eq!(only_records_of(&store, &stream, &first), 2);
        assert_eq!(run(store.read_head(&stream)).unwrap().length, 4);
    }
}
