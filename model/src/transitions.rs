//! The model's transitions: which actions are enabled in a state, and
//! performing one.

use atmostonce::core::{Operation, PhaseKind, Step, StoreRequest};

use crate::action::{Action, Call, ProducerAction, Skew};
use crate::config::{Api, Config, Fault};
use crate::model::{Actor, DedupModel};
use crate::narration::Narration;
use crate::state::{Phase, State, SweepPass};

impl DedupModel {
    /// The actions enabled in `state` (every other one is a no-op).
    pub fn enabled_actions(&self, state: &State, actions: &mut Vec<Action>) {
        let faults_left = state.budget.left(Fault::Indeterminate) > 0;
        let stale_left = state.budget.left(Fault::StaleReads) > 0;
        for (index, producer) in state.producers.iter().enumerate() {
            let Ok(i) = u8::try_from(index) else { continue };
            let act = |a| Action::Producer(i, a);
            match &producer.phase {
                Phase::Done(_) => continue,
                Phase::Delivering { .. } | Phase::FencedDelivering { .. } => {
                    actions.push(act(ProducerAction::Deliver));
                    if state.budget.left(Fault::DeliveryFailure) > 0 {
                        actions.push(act(ProducerAction::FailDelivery));
                    }
                }
                phase => {
                    actions.push(act(ProducerAction::Call(Call::Normal)));
                    if faults_left && next_is_append(phase) {
                        // `perform` refuses "applied" when it would conflict.
                        actions.push(act(ProducerAction::Call(Call::AppendFailsApplied)));
                        actions.push(act(ProducerAction::Call(Call::AppendFailsNotApplied)));
                    }
                    if stale_left && !next_is_append(phase) {
                        // Refused by `perform` unless the next call reads
                        // and the older view differs from the latest.
                        actions.push(act(ProducerAction::Call(Call::StaleRead)));
                    }
                }
            }
            if state.budget.left(Fault::Crash) > 0 && producer.phase.is_busy() {
                actions.push(act(ProducerAction::Crash));
            }
        }
        match &state.sweeper.op {
            Some(_) => {
                actions.push(Action::Sweeper(Call::Normal));
                if faults_left {
                    // Refused by `perform` unless the next call is an append.
                    actions.push(Action::Sweeper(Call::AppendFailsApplied));
                    actions.push(Action::Sweeper(Call::AppendFailsNotApplied));
                }
                if stale_left {
                    actions.push(Action::Sweeper(Call::StaleRead));
                }
            }
            // A pass that finds nothing expired changes nothing: start one
            // only when some key's latest entry has expired.
            None => {
                if self.sweep_would_expire(state) || self.sweep_due_by_oracle(state) {
                    actions.push(Action::Sweeper(Call::Normal));
                }
                if state.budget.left(Fault::ClockSkew) > 0 {
                    for skew in [Skew::Ahead, Skew::Behind] {
                        if self
                            .skewed_sweep(state, skew)
                            .is_some_and(|op| self.would_append_next(state, Actor::Sweeper, &op))
                        {
                            actions.push(Action::SkewedSweep(skew));
                        }
                    }
                }
            }
        }
        if self.may_tick(state).is_some() {
            actions.push(Action::Tick);
        }
        if state.budget.left(Fault::StoreCrash) > 0 && state.store.has_unflushed() {
            actions.push(Action::StoreCrash);
        }
        self.store_fault_actions(state, actions);
    }

    /// Whether the clock may advance, and whether that tick is a pause. It
    /// may not at its bound, nor when the tick would change nothing (see
    /// [`DedupModel::tick_is_idle`]). A tick that would expire a claim a live
    /// producer is acquiring or holds breaks A1's timing assumption
    /// ("processing time + clock skew < TTL"): without the `pause` fault it
    /// is not enabled; with it, it is a pause and spends one of the run's
    /// pauses (`--bound`, as every fault kind is bounded: every run with at
    /// most that many pauses is explored, each at every point it can
    /// strike).
    pub(crate) fn may_tick(&self, state: &State) -> Option<TickKind> {
        if state.tick >= self.config.bounds.max_tick || self.tick_is_idle(state) {
            return None;
        }
        let next = state.tick + 1;
        let overtaken = state
            .producers
            .iter()
            .filter_map(|p| p.phase.live_claim_stamp())
            .filter(|stamp| Config::expired_at(*stamp, next))
            .count();
        if overtaken == 0 {
            return Some(TickKind::OnTime);
        }
        let overtaken = u8::try_from(overtaken).unwrap_or(u8::MAX);
        (!self.config.timing_assumption() && state.budget.pauses >= overtaken)
            .then_some(TickKind::Pause(overtaken))
    }

    /// Fenced: true when a tick now would change nothing but the clock's
    /// reading, so the clock need not advance (a reduction, sound as
    /// follows). No actor is in an operation (every producer idle, deferred
    /// or done, the sweeper between passes), so no time value lives outside
    /// the store, and no record is stamped at the current tick `t`: every
    /// stamp is older, and an entry stamped at `s` has expired at every tick
    /// after `s`, so each is as expired at `t` as at `t + 1`. Every run that
    /// takes this tick is then matched, step for step, by the run that does
    /// not take it and stamps everything that follows one tick earlier: what
    /// the engine and the oracle compare (a stamp against the clock, one
    /// stamp against another) compares alike, every answer and record is the
    /// same but for the stamps, and so is every property's verdict; the
    /// matching run needs one tick fewer, so it stays within `--ticks`. The
    /// seed API keeps every tick (its standard configuration's figures stay
    /// comparable).
    fn tick_is_idle(&self, state: &State) -> bool {
        self.config.api == Api::Fenced
            && self.config.skip_idle_ticks
            && state.sweeper.op.is_none()
            && state
                .producers
                .iter()
                .all(|p| matches!(p.phase, Phase::Idle | Phase::Deferred | Phase::Done(_)))
            && state
                .store
                .streams
                .iter()
                .all(|stream| stream.records.iter().all(|r| r.tick < state.tick))
    }

    /// True when a sweep pass started now would expire something: the
    /// engine's own sweep, fed a scan of the store as it is, asks to append
    /// a tombstone. (A pass that expires nothing changes nothing.)
    fn sweep_would_expire(&self, state: &State) -> bool {
        match self.fresh_fenced() {
            None => self
                .fresh
                .sweep(state.tick)
                .is_some_and(|op| self.would_append_next(state, Actor::Sweeper, &op)),
            Some(fresh) => fresh
                .sweep(state.tick)
                .is_some_and(|op| self.would_append_next(state, Actor::Sweeper, &op)),
        }
    }

    /// The fenced sweep a pass on a clock off by the skew starts with
    /// (`None` for the seed API, which has no `clock-skew`).
    fn skewed_sweep(
        &self,
        state: &State,
        skew: Skew,
    ) -> Option<crate::hashed::Hashed<atmostonce::core::fenced::FencedSweepOp>> {
        self.fresh_fenced()?.skewed_sweep(state.tick, skew)
    }

    /// Performs `action` on `state`: the next state, or `None` when the
    /// action is not enabled.
    pub(crate) fn perform(
        &self,
        state: &State,
        action: Action,
        words: &mut Narration,
    ) -> Option<State> {
        let mut next = state.clone();
        // Events are those of the step that led to a state.
        next.events = 0;
        match action {
            Action::Tick => {
                if let TickKind::Pause(overtaken) = self.may_tick(state)? {
                    next.budget.pauses -= overtaken;
                }
                next.tick += 1;
                words.say(|| {
                    format!(
                        "the clock advances to tick {} ({} ms)",
                        next.tick,
                        Self::now_ms(&next)
                    )
                });
            }
            Action::StoreCrash => {
                if !next.store.has_unflushed() {
                    return None;
                }
                next.budget.spend(Fault::StoreCrash)?;
                next.store = next.store.with(|s| s.crash(&self.stream_names));
                next.sweeper.session.crashed();
                for producer in &mut next.producers {
                    producer.session.crashed();
                }
                words.say(|| {
                    "the store crashes and restarts, dropping every append not yet flushed".into()
                });
                self.check_acked(&mut next);
                self.check_durable(&mut next);
            }
            Action::Sweeper(call) => self.sweeper_step(&mut next, call, words)?,
            Action::Compact { .. } | Action::Corrupt { .. } => {
                self.store_fault_step(&mut next, action, words)?;
            }
            Action::SkewedSweep(skew) => {
                let op = self.skewed_sweep(state, skew)?;
                next.budget.spend(Fault::ClockSkew)?;
                let start = Some(SweepPass::Fenced(op));
                self.sweeper_step_from(&mut next, start, Call::Normal, words)?;
            }
            Action::Producer(index, action) => {
                let index = usize::from(index);
                if index >= next.producers.len() {
                    return None;
                }
                self.producer_step(&mut next, index, action, words)?;
            }
        }
        Some(next)
    }
}

/// A tick the clock may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TickKind {
    /// No live producer's claim expires.
    OnTime,
    /// Live producers' claims expire: the `pause` fault, one pause per
    /// producer overtaken.
    Pause(u8),
}

/// True when a producer's engine operation asks to append next: the seed
/// operations say so by their phase, the fenced ones by their next request.
fn next_is_append(phase: &Phase) -> bool {
    fn appends<O: Operation>(op: &O) -> bool {
        matches!(op.poll(), Step::Request(StoreRequest::Append { .. }))
    }
    match phase {
        Phase::Claiming { op, .. } => op.phase_kind() == PhaseKind::Appending,
        Phase::Completing { op, .. } => op.phase_kind() == PhaseKind::Appending,
        Phase::Releasing { op, .. } => op.phase_kind() == PhaseKind::Appending,
        Phase::FencedClaiming { op, .. } => appends(&**op),
        Phase::FencedCompleting { op, .. } => appends(&**op),
        Phase::FencedReleasing { op, .. } => appends(&**op),
        _ => false,
    }
}

impl stateright::Model for DedupModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.enabled_actions(state, actions);
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        let next = self.perform(state, action, &mut Narration::silent())?;
        // A step that changes nothing (an idle sweep that finds nothing to
        // expire) is not a transition.
        (next != *state).then_some(next)
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }

    fn format_step(&self, last_state: &State, action: Action) -> Option<String> {
        let mut words = Narration::spoken();
        let next = self.perform(last_state, action, &mut words)?;
        Some(format!(
            "{}\nstore: {}",
            words.into_text(),
            self.describe_store(&next)
        ))
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        crate::properties::properties(&self.config, self.discovered())
    }
}

#[cfg(test)]
mod tests {
    use atmostonce_verify::catalogue::Invariant;

    use super::*;

    /// Every step of a long pseudo-random walk through the standard
    /// configuration (every action enabled in each state visited, the walk
    /// restarting at dead ends), taken twice: silently, which the checker
    /// does and which serves memoized answers from the second time on, and
    /// narrated, which computes every answer afresh.
    #[test]
    fn memoized_steps_equal_steps_computed_afresh() {
        let model = DedupModel::new(Config::standard()).unwrap();
        let mut state = model.initial_state();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut actions = Vec::new();
        let mut steps = 0;
        for _ in 0..3_000 {
            actions.clear();
            model.enabled_actions(&state, &mut actions);
            let mut next_states = Vec::new();
            for action in &actions {
                for _ in 0..2 {
                    let silent = model.perform(&state, *action, &mut Narration::silent());
                    let spoken = model.perform(&state, *action, &mut Narration::spoken());
                    assert_eq!(silent, spoken, "{action} from {state:?}");
                    steps += 1;
                }
                next_states.extend(model.perform(&state, *action, &mut Narration::silent()));
            }
            // xorshift64: the walk is the same in every run.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            state = if next_states.is_empty() {
                model.initial_state()
            } else {
                let pick = usize::try_from(seed % next_states.len() as u64).unwrap();
                next_states.swap_remove(pick)
            };
        }
        assert!(steps > 10_000, "the walk took {steps} steps");
    }

    /// Runs producer 0's operation `op` (placed in the initial state) to
    /// its end, normally: the state after its last step.
    fn run_claim(model: &DedupModel, op: atmostonce::core::ClaimOp) -> State {
        let mut state = model.initial_state();
        state.producers[0].phase = Phase::Claiming {
            op: crate::hashed::Hashed::new(op),
            append_seq: 0,
            landed: false,
        };
        let action = Action::Producer(0, ProducerAction::Call(Call::Normal));
        for _ in 0..8 {
            match model.perform(&state, action, &mut Narration::silent()) {
                Some(next) if matches!(next.producers[0].phase, Phase::Claiming { .. }) => {
                    state = next;
                }
                Some(next) => return next,
                None => break,
            }
        }
        state
    }

    #[test]
    fn an_append_to_a_stream_no_key_of_the_model_names_is_an_internal_error() {
        let model = DedupModel::new(Config::standard()).unwrap();
        let stranger = model.protocol().claim("stranger", 0).unwrap();
        let state = run_claim(&model, stranger);
        assert!(state.violated(Invariant::Internal), "{state:?}");
        let own = model.protocol().claim("k0", 0).unwrap();
        assert!(!run_claim(&model, own).violated(Invariant::Internal));
    }

    #[test]
    fn an_append_of_a_key_the_model_does_not_have_is_an_internal_error_not_key_0() {
        let mut config = Config::standard();
        config.keys = 2;
        config.faults = config.faults.with(crate::config::Fault::Collision);
        let model = DedupModel::new(config).unwrap();
        // A third name in the keys' one stream.
        let stranger = (2..)
            .map(|i| format!("k{i}"))
            .find(|name| {
                !model.key_names().contains(name)
                    && model.protocol().stream_key_for(name) == model.stream_names()[0]
            })
            .unwrap();
        let state = run_claim(&model, model.protocol().claim(&stranger, 0).unwrap());
        assert!(state.violated(Invariant::Internal), "{state:?}");
        assert!(state.store.streams[0].records.is_empty(), "nothing landed");
    }

    #[test]
    fn the_sweeper_may_start_exactly_when_the_engines_sweep_would_expire_something() {
        let model = DedupModel::new(Config::standard()).unwrap();
        let sweeper_enabled = |state: &State| {
            let mut actions = Vec::new();
            model.enabled_actions(state, &mut actions);
            actions.contains(&Action::Sweeper(Call::Normal))
        };
        let mut state = model.initial_state();
        assert!(
            !sweeper_enabled(&state),
            "an empty store has nothing to expire"
        );
        state = run_claim(&model, model.protocol().claim("k0", 0).unwrap());
        assert!(!sweeper_enabled(&state), "a fresh claim has not expired");
        state.tick = 1;
        assert!(sweeper_enabled(&state), "one tick later it has");
    }
}
