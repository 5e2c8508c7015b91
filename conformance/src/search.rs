//! Breadth-first search over a model's steps for both protocols: an arena that remembers how
//! each visited state was reached, and the covering search that finds the shortest run
//! taking each step kind and reaching each sometimes-property's witness.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use stateright::{Model, Property};

/// The visited states of a breadth-first search, each with its parent and the step that
/// reached it, so that a path is read back from any state without storing paths.
pub struct Arena<A> {
    nodes: Vec<(usize, Option<A>)>,
}

impl<A: Copy> Arena<A> {
    /// An arena holding the initial state, at index 0.
    pub fn new() -> Self {
        Arena {
            nodes: vec![(0, None)],
        }
    }

    /// Records a state reached from `parent` by `action`; returns its index.
    pub fn push(&mut self, parent: usize, action: A) -> usize {
        self.nodes.push((parent, Some(action)));
        self.nodes.len() - 1
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The steps from the initial state to state `i`.
    pub fn path(&self, mut i: usize) -> Vec<A> {
        let mut actions = Vec::new();
        while let (parent, Some(a)) = self.nodes[i] {
            actions.push(a);
            i = parent;
        }
        actions.reverse();
        actions
    }
}

impl<A: Copy> Default for Arena<A> {
    fn default() -> Self {
        Arena::new()
    }
}

/// The covering targets of a model: `step:Kind` for every step kind, `witness:Name` for every
/// sometimes-property, in that order.
pub fn covering_targets<M: Model>(kinds: &[&str], sometimes: &[Property<M>]) -> Vec<String> {
    kinds
        .iter()
        .map(|k| format!("step:{k}"))
        .chain(sometimes.iter().map(|p| format!("witness:{}", p.name)))
        .collect()
}

/// Breadth-first search from `init` through `successors` (in the model's order) for the
/// targets still in `open`, visiting at most `limit` states; each target found is removed
/// from `open` and returned with the shortest run that reaches it. `kind` names a step's kind;
/// `sometimes` are the model's sometimes-properties.
pub fn covering_search<M: Model>(
    model: &M,
    init: M::State,
    successors: impl Fn(&M::State) -> Vec<(M::Action, M::State)>,
    kind: impl Fn(&M::Action) -> &'static str,
    sometimes: &[Property<M>],
    open: &mut Vec<String>,
    limit: usize,
) -> Vec<(String, Vec<M::Action>)>
where
    M::State: Clone + Eq + Hash,
    M::Action: Copy,
{
    let mut out = Vec::new();
    let mut arena = Arena::new();
    let mut index: HashMap<M::State, usize> = HashMap::from([(init.clone(), 0)]);
    let mut queue = VecDeque::from([(init, 0usize)]);
    while let Some((s, i)) = queue.pop_front() {
        if open.is_empty() || arena.len() > limit {
            break;
        }
        for (a, n) in successors(&s) {
            let mut hit = Vec::new();
            let step_target = format!("step:{}", kind(&a));
            if open.contains(&step_target) {
                hit.push(step_target);
            }
            for p in sometimes {
                let t = format!("witness:{}", p.name);
                if open.contains(&t) && (p.condition)(model, &n) {
                    hit.push(t);
                }
            }
            if !hit.is_empty() {
                let mut actions = arena.path(i);
                actions.push(a);
                for t in hit {
                    open.retain(|o| *o != t);
                    out.push((t, actions.clone()));
                }
            }
            if let std::collections::hash_map::Entry::Vacant(e) = index.entry(n.clone()) {
                let j = arena.push(i, a);
                e.insert(j);
                queue.push_back((n, j));
            }
        }
    }
    out
}
