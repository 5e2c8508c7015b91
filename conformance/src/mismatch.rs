//! What both replays share: the implementation side of a replay (the broker's replicas and
//! controller, or the quorum cores) seen through one trait, the step-by-step comparison with
//! the model's recorded states, and the first mismatch it finds.

use std::fmt;

use serde::Serialize;

/// A model step as replays name it.
pub trait Step: Copy + fmt::Debug + Serialize {
    /// One line for reports.
    fn describe(&self) -> String;
}

impl Step for osprey_model::Action {
    fn describe(&self) -> String {
        osprey_model::Action::describe(self)
    }
}

impl Step for osprey_model::kraft::KraftAction {
    fn describe(&self) -> String {
        osprey_model::kraft::KraftAction::describe(self)
    }
}

/// The implementation a trace is replayed on: it performs model steps and shows its state
/// as the model's view.
pub trait Implementation {
    type Action: Step;
    type View: Clone + fmt::Debug + Serialize;
    /// What the implementation is called in messages: "broker" or "core".
    const NAME: &'static str;
    fn apply(&mut self, action: Self::Action) -> Result<(), String>;
    fn view(&self) -> Result<Self::View, String>;
    /// Field-by-field differences between the model's view and the implementation's.
    fn diff(model: &Self::View, implementation: &Self::View) -> Vec<String>;
}

/// The first step where the implementation and the model disagree.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch<A, V> {
    /// Index of the step in the trace (0 = the initial state).
    pub step: usize,
    pub action: Option<A>,
    /// What went wrong: the implementation refused or failed the step, or the states differ.
    pub reason: String,
    /// Field-by-field differences (empty when the implementation failed the step itself).
    pub diff: Vec<String>,
    pub model: Option<V>,
    /// The implementation's state (the broker's, or the quorum core's).
    pub implementation: Option<V>,
    /// "broker" or "core", for the message.
    #[serde(skip)]
    pub side: &'static str,
}

impl<A: Step, V: Serialize> fmt::Display for Mismatch<A, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = self
            .action
            .map_or("initial state".to_string(), |a| a.describe());
        writeln!(f, "step {} ({action}): {}", self.step, self.reason)?;
        for d in &self.diff {
            writeln!(f, "  {d}")?;
        }
        if let (Some(m), Some(i)) = (&self.model, &self.implementation) {
            let json = |v| serde_json::to_string(v).unwrap_or_default();
            let width = self.side.len().max("model".len());
            writeln!(f, "  {:<width$} {}", "model:", json(m), width = width + 1)?;
            writeln!(
                f,
                "  {:<width$} {}",
                format!("{}:", self.side),
                json(i),
                width = width + 1
            )?;
        }
        Ok(())
    }
}

/// What one replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayOutcome<A, V> {
    /// Steps replayed and matched (the initial state not counted).
    pub steps: usize,
    pub mismatch: Option<Mismatch<A, V>>,
}

impl<A, V> ReplayOutcome<A, V> {
    /// The outcome of a replay that stopped at a mismatch at `step`: the steps before it
    /// matched.
    pub fn failed(
        side: &'static str,
        step: usize,
        action: Option<A>,
        reason: String,
        model: Option<V>,
        implementation: Option<V>,
        diff: Vec<String>,
    ) -> Self {
        ReplayOutcome {
            steps: step.saturating_sub(1),
            mismatch: Some(Mismatch {
                step,
                action,
                reason,
                diff,
                model,
                implementation,
                side,
            }),
        }
    }
}

/// Replays the recorded `steps` (index, the step taken, the model's state after it; the first
/// is the initial state, with no step) on `imp`, comparing its view with the model's after
/// each. Stops at the first mismatch.
pub fn replay_steps<'a, I: Implementation>(
    imp: &mut I,
    steps: impl IntoIterator<Item = (usize, Option<I::Action>, &'a I::View)>,
) -> ReplayOutcome<I::Action, I::View>
where
    I::View: 'a,
{
    let fail = |step, action, reason, model: &I::View, implementation, diff| {
        ReplayOutcome::failed(
            I::NAME,
            step,
            action,
            reason,
            Some(model.clone()),
            implementation,
            diff,
        )
    };
    let mut taken = 0;
    for (index, action, expected) in steps {
        if let Some(a) = action {
            if let Err(e) = imp.apply(a) {
                return fail(index, Some(a), e, expected, imp.view().ok(), vec![]);
            }
        }
        let view = match imp.view() {
            Ok(v) => v,
            Err(e) => return fail(index, action, e, expected, None, vec![]),
        };
        let d = I::diff(expected, &view);
        if !d.is_empty() {
            let reason = format!("the {}'s state is not the model's", I::NAME);
            return fail(index, action, reason, expected, Some(view), d);
        }
        if action.is_some() {
            taken += 1;
        }
    }
    ReplayOutcome {
        steps: taken,
        mismatch: None,
    }
}
