//! Running the checker on a configuration and reporting what it found.

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use stateright::{Checker, Model, Path};

use crate::action::Action;
use crate::config::Config;
use crate::model::DedupModel;
use crate::narration::Narration;
use crate::properties::{Always, INVARIANTS, WITNESSES};
use atmostonce_verify::catalogue::{self, Invariant, Violation};

use crate::state::State;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Reduce by producer symmetry (depth-first: stateright applies symmetry
    /// in its DFS only).
    pub symmetry: bool,
    /// Checker threads.
    pub threads: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            symmetry: true,
            threads: 2,
        }
    }
}

/// One step of a counterexample, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepText {
    /// The action, briefly.
    pub action: String,
    /// What happened.
    pub what: String,
    /// The store afterwards.
    pub store: String,
}

/// A property's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An `always` property held in every reachable state.
    Holds,
    /// An `always` property failed; the actions of a shortest counterexample.
    Violated(Vec<Action>),
    /// A `sometimes` property was witnessed (by this path).
    Witnessed(Vec<Action>),
    /// A `sometimes` property was never witnessed: a failure.
    NotWitnessed,
    /// A `sometimes` property needs a fault the configuration turns off (or
    /// more producers).
    NotApplicable,
}

impl Verdict {
    /// True for a verdict that makes the check fail.
    #[must_use]
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::Violated(_) | Verdict::NotWitnessed)
    }
}

/// What one check found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The configuration.
    pub config: Config,
    /// How it was searched.
    pub search: SearchOptions,
    /// Distinct states visited (representatives, with symmetry).
    pub unique_states: usize,
    /// The exhaustive search's wall-clock time.
    pub elapsed: Duration,
    /// The time spent finding shortest counterexamples afterwards.
    pub counterexample_elapsed: Duration,
    /// Each property, in order, with its verdict.
    pub verdicts: Vec<(&'static str, Verdict)>,
}

impl Report {
    /// True when every `always` held and every applicable `sometimes` was
    /// witnessed.
    #[must_use]
    pub fn passed(&self) -> bool {
        !self.verdicts.iter().any(|(_, v)| v.is_failure())
    }

    /// The verdict of the property named `name`.
    #[must_use]
    pub fn verdict(&self, name: &str) -> Option<&Verdict> {
        self.verdicts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The verdict of an invariant.
    #[must_use]
    pub fn invariant(&self, invariant: Invariant) -> Option<&Verdict> {
        let always = INVARIANTS
            .iter()
            .find(|a| a.invariant == invariant && a.of_api(self.config.api))?;
        self.verdict(always.name)
    }

    /// The check's findings in the harness's one vocabulary
    /// (`atmostonce_verify::catalogue`): a violation per violated
    /// invariant, and an internal one per applicable witness never reached
    /// (a check that cannot reach a branch proves nothing about it).
    #[must_use]
    pub fn catalogue_verdict(&self) -> catalogue::Verdict {
        let mut verdict = catalogue::Verdict::default();
        for (name, found) in &self.verdicts {
            match found {
                Verdict::Violated(actions) => {
                    let Some(always) = INVARIANTS.iter().find(|a| a.name == *name) else {
                        continue;
                    };
                    verdict.violations.push(Violation::new(
                        always.invariant,
                        None,
                        format!("{name}: a counterexample of {} steps", actions.len()),
                    ));
                }
                Verdict::NotWitnessed => verdict.violations.push(Violation::new(
                    Invariant::Internal,
                    None,
                    format!("the witness {name:?} was never reached"),
                )),
                Verdict::Holds | Verdict::Witnessed(_) | Verdict::NotApplicable => {}
            }
        }
        verdict
    }

    /// Unique states per second.
    #[must_use]
    pub fn states_per_second(&self) -> f64 {
        self.unique_states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn discoveries_of<C: Checker<DedupModel>>(checker: &C) -> HashMap<&'static str, Vec<Action>> {
    checker
        .discoveries()
        .into_iter()
        .map(|(name, path)| (name, path.into_actions()))
        .collect()
}

/// How far a running check has got, as stateright's checker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// States generated, repeats included.
    pub states: usize,
    /// Distinct states (representatives, with symmetry).
    pub unique_states: usize,
    /// The deepest path explored so far.
    pub max_depth: usize,
    /// Time since the exhaustive search started.
    pub elapsed: Duration,
}

/// How often a watched check reports its [`Progress`]: often enough for a
/// live display, rare enough to cost the checker's threads nothing.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How often a check looks whether the checker's threads are done: a small
/// check ends within this of its last state, not within a whole
/// [`PROGRESS_INTERVAL`].
const FINISH_POLL: Duration = Duration::from_millis(10);

/// Checks `config` exhaustively.
pub fn check(config: &Config, search: SearchOptions) -> Result<Report, String> {
    check_watched(config, search, &mut |_| {})
}

/// Runs a spawned checker to its end, calling `watch` every
/// [`PROGRESS_INTERVAL`] from this thread while the checker's threads run,
/// and once more when they are done.
fn watch_checker<C: Checker<DedupModel>>(
    mut checker: C,
    started: Instant,
    watch: &mut dyn FnMut(Progress),
) -> Result<C, String> {
    let progress = |checker: &C| Progress {
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        elapsed: started.elapsed(),
    };
    let handles = checker.handles();
    let mut last_watched: Option<Instant> = None;
    while !handles.iter().all(std::thread::JoinHandle::is_finished) {
        if last_watched.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL) {
            watch(progress(&checker));
            last_watched = Some(Instant::now());
        }
        std::thread::sleep(FINISH_POLL);
    }
    for handle in handles {
        handle
            .join()
            .map_err(|_| "a checker thread panicked; the check is incomplete".to_owned())?;
    }
    watch(progress(&checker));
    Ok(checker)
}

/// Checks `config` exhaustively, telling `watch` how far the search has got
/// while it runs ([`Progress`], every [`PROGRESS_INTERVAL`]).
pub fn check_watched(
    config: &Config,
    search: SearchOptions,
    watch: &mut dyn FnMut(Progress),
) -> Result<Report, String> {
    let model = DedupModel::new(config.clone())?;
    let threads = search.threads.max(1);
    let started = Instant::now();
    let (unique_states, mut found) = if search.symmetry {
        let checker = model
            .for_search()
            .checker()
            .threads(threads)
            .symmetry()
            .spawn_dfs();
        let checker = watch_checker(checker, started, watch)?;
        (checker.unique_state_count(), discoveries_of(&checker))
    } else {
        let checker = model.for_search().checker().threads(threads).spawn_bfs();
        let checker = watch_checker(checker, started, watch)?;
        (checker.unique_state_count(), discoveries_of(&checker))
    };
    let elapsed = started.elapsed();

    // The checker's discoveries prove a violation exists, but its paths
    // are neither shortest nor stable (a violation is sticky, so every later
    // state re-reports it). Search again for shortest ones.
    let violated: Vec<&'static Always> = INVARIANTS
        .iter()
        .filter(|a| found.contains_key(a.name))
        .collect();
    let searching = Instant::now();
    for (name, actions) in shortest_counterexamples(&model, &violated) {
        found.insert(name, actions);
    }
    let counterexample_elapsed = searching.elapsed();

    let mut verdicts = Vec::new();
    // Each API's properties only: the other's are not listed.
    for always in INVARIANTS.iter().filter(|a| a.of_api(config.api)) {
        let checked = always.applies(config);
        let verdict = match found.remove(always.name) {
            Some(actions) => Verdict::Violated(actions),
            None if checked => Verdict::Holds,
            None => Verdict::NotApplicable,
        };
        verdicts.push((always.name, verdict));
    }
    for witness in WITNESSES.iter().filter(|w| w.of_api(config.api)) {
        let verdict = if !witness.applies(config) {
            Verdict::NotApplicable
        } else {
            match found.remove(witness.name) {
                Some(actions) => Verdict::Witnessed(actions),
                None => Verdict::NotWitnessed,
            }
        };
        verdicts.push((witness.name, verdict));
    }
    Ok(Report {
        config: config.clone(),
        search,
        unique_states,
        elapsed,
        counterexample_elapsed,
        verdicts,
    })
}

/// A shortest path to a violation of each of `targets`: a breadth-first
/// search on one thread, in the model's action order, so the result is
/// deterministic. It stops once every target has a path.
pub fn shortest_counterexamples(
    model: &DedupModel,
    targets: &[&Always],
) -> Vec<(&'static str, Vec<Action>)> {
    let mut found: Vec<(&'static str, Vec<Action>)> = Vec::new();
    if targets.is_empty() {
        return found;
    }
    let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let initial = model.initial_state();
    // fingerprint -> (parent fingerprint, action from the parent)
    let mut parents: HashMap<u64, Option<(u64, Action)>> = HashMap::new();
    let mut queue = VecDeque::new();
    let fingerprint = hasher.hash_one(&initial);
    parents.insert(fingerprint, None);
    queue.push_back((initial, fingerprint));
    let mut actions = Vec::new();
    while let Some((state, fingerprint)) = queue.pop_front() {
        for target in targets {
            if found.iter().any(|(name, _)| *name == target.name) || (target.holds)(model, &state) {
                continue;
            }
            let mut path = Vec::new();
            let mut at = fingerprint;
            while let Some(Some((parent, action))) = parents.get(&at) {
                path.push(*action);
                at = *parent;
            }
            path.reverse();
            found.push((target.name, path));
        }
        if found.len() == targets.len() {
            break;
        }
        actions.clear();
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            let Some(next) = model.next_state(&state, action) else {
                continue;
            };
            let next_fingerprint = hasher.hash_one(&next);
            if let std::collections::hash_map::Entry::Vacant(entry) =
                parents.entry(next_fingerprint)
            {
                entry.insert(Some((fingerprint, action)));
                queue.push_back((next, next_fingerprint));
            }
        }
    }
    found
}

/// The states a sequence of actions leads through, from the initial state.
pub fn replay_actions(model: &DedupModel, actions: &[Action]) -> Result<Vec<State>, String> {
    let mut states = vec![model.initial_state()];
    for (index, action) in actions.iter().enumerate() {
        let last = states
            .last()
            .cloned()
            .unwrap_or_else(|| model.initial_state());
        let next = model
            .perform(&last, *action, &mut Narration::silent())
            .ok_or_else(|| format!("step {}: {action} is not enabled", index + 1))?;
        states.push(next);
    }
    Ok(states)
}

/// A path as steps a person can follow.
pub fn narrate(model: &DedupModel, actions: &[Action]) -> Result<Vec<StepText>, String> {
    let mut state = model.initial_state();
    let mut steps = Vec::new();
    for (index, action) in actions.iter().enumerate() {
        let mut words = Narration::spoken();
        state = model
            .perform(&state, *action, &mut words)
            .ok_or_else(|| format!("step {}: {action} is not enabled", index + 1))?;
        steps.push(StepText {
            action: action.to_string(),
            what: words.into_text(),
            store: model.describe_store(&state),
        });
    }
    Ok(steps)
}

/// A stateright path from its actions (for tests and the Explorer).
pub fn path_of(model: &DedupModel, actions: &[Action]) -> Option<Path<State, Action>> {
    Path::from_actions(model, model.initial_state(), actions)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration: {}", self.config)?;
        writeln!(
            f,
            "search: {}, {} thread(s)",
            if self.search.symmetry {
                "depth-first with producer symmetry reduction"
            } else {
                "breadth-first, no symmetry reduction"
            },
            self.search.threads
        )?;
        writeln!(f, "unique states: {}", self.unique_states)?;
        writeln!(f, "states/s: {:.0}", self.states_per_second())?;
        writeln!(
            f,
            "elapsed: {:.2} s (exhaustive search) + {:.2} s (shortest counterexamples)",
            self.elapsed.as_secs_f64(),
            self.counterexample_elapsed.as_secs_f64()
        )?;
        writeln!(f)?;
        let model = DedupModel::new(self.config.clone()).map_err(|_| fmt::Error)?;
        for (name, verdict) in &self.verdicts {
            let (kind, word) = match verdict {
                Verdict::Holds => ("always   ", "HOLDS".to_owned()),
                Verdict::Violated(a) => ("always   ", format!("VIOLATED ({} steps)", a.len())),
                Verdict::Witnessed(a) => ("sometimes", format!("witnessed ({} steps)", a.len())),
                Verdict::NotWitnessed => ("sometimes", "NOT WITNESSED (failure)".to_owned()),
                Verdict::NotApplicable => ("         ", "not applicable".to_owned()),
            };
            writeln!(f, "  {kind} {word:<24} {name}")?;
        }
        for (name, verdict) in &self.verdicts {
            if let Verdict::Violated(actions) = verdict {
                writeln!(f)?;
                writeln!(f, "counterexample to \"{name}\" ({} steps):", actions.len())?;
                let steps = narrate(&model, actions).map_err(|_| fmt::Error)?;
                let mut text = String::new();
                for (index, step) in steps.iter().enumerate() {
                    let _ = writeln!(text, "  {:>2}. {}", index + 1, step.what);
                    let _ = writeln!(text, "      store: {}", step.store);
                }
                f.write_str(&text)?;
            }
        }
        Ok(())
    }
}
