//! Lets an idle thread take part of a big table's read. The thread that
//! owns the read takes runs of leaves from the front; a helper takes runs
//! from the back, each into a part of its own, which the owner joins after
//! its own rows, in leaf order.
//!
//! On the SYNTHETIC 1 GB export the kernel reader and the small tables
//! were done 40–60 ms before the runtime reader, with one core idle.

use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Leaves per run: 512 KiB of 4 KiB pages, about 0.3 ms of the runtime
/// table, so the two readers end within about that of each other.
const RUN_LEAVES: usize = 128;

/// The runs of one table's leaves, shared by its owner and one helper.
/// `P` is what both read with; `S` is a part the helper read.
pub struct LeafShare<P, S> {
    state: Mutex<State<P, S>>,
    helper_done: Condvar,
}

struct State<P, S> {
    plan: Option<Arc<P>>,
    leaves: usize,
    run_leaves: usize,
    /// Runs not taken yet.
    untaken: Range<usize>,
    helping: bool,
    closed: bool,
    /// The helper's parts, last run first: it takes them from the back.
    parts: Vec<S>,
}

impl<P, S> Default for LeafShare<P, S> {
    fn default() -> Self {
        LeafShare::with_run_leaves(RUN_LEAVES)
    }
}

impl<P, S> LeafShare<P, S> {
    /// Runs of `run_leaves` leaves (at least one) instead of [`RUN_LEAVES`]:
    /// the tests cut small exports into many runs.
    pub fn with_run_leaves(run_leaves: usize) -> Self {
        LeafShare {
            state: Mutex::new(State {
                plan: None,
                leaves: 0,
                run_leaves: run_leaves.max(1),
                untaken: 0..0,
                helping: false,
                closed: false,
                parts: Vec::new(),
            }),
            helper_done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<P, S>> {
        // Held only between reads, never across one, so poisoned only by a
        // panic elsewhere; the state stays consistent either way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Offer the table's `leaves` leaves, read with `plan`.
    pub fn open(&self, plan: Arc<P>, leaves: usize) {
        let mut state = self.lock();
        if !state.closed {
            state.untaken = 0..leaves.div_ceil(state.run_leaves);
            state.leaves = leaves;
            state.plan = Some(plan);
        }
    }

    /// The owner's next run of leaves, from the front.
    pub fn take_front(&self) -> Option<Range<usize>> {
        let mut state = self.lock();
        let run = state.untaken.next()?;
        Some(state.leaf_range(run))
    }

    /// Take no more runs; wait for the helper's last one, and return its
    /// parts in leaf order.
    pub fn close(&self) -> Vec<S> {
        let mut state = self.lock();
        state.closed = true;
        while state.helping {
            state = self
                .helper_done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let mut parts = std::mem::take(&mut state.parts);
        parts.reverse();
        parts
    }

    /// As the helper, read runs from the back with `read` until the owner
    /// has the rest, or `read` says to stop. Nothing when the owner has not
    /// offered the table, or has closed it.
    pub fn help(&self, mut read: impl FnMut(&P, Range<usize>) -> (S, bool)) {
        loop {
            let (plan, leaves) = {
                let mut state = self.lock();
                if state.closed {
                    return;
                }
                let Some(plan) = state.plan.clone() else {
                    return;
                };
                let Some(run) = state.untaken.next_back() else {
                    return;
                };
                state.helping = true;
                (plan, state.leaf_range(run))
            };
            let helping = Helping(self);
            let (part, go_on) = read(&plan, leaves);
            helping.0.lock().parts.push(part);
            drop(helping);
            if !go_on {
                return;
            }
        }
    }
}

/// Marks the helper done when dropped, even by a panic in its read, so
/// that the owner never waits for it forever.
struct Helping<'s, P, S>(&'s LeafShare<P, S>);

impl<P, S> Drop for Helping<'_, P, S> {
    fn drop(&mut self) {
        self.0.lock().helping = false;
        self.0.helper_done.notify_all();
    }
}

impl<P, S> State<P, S> {
    fn leaf_range(&self, run: usize) -> Range<usize> {
        run * self.run_leaves..((run + 1) * self.run_leaves).min(self.leaves)
    }
}

#[cfg(test)]
mod tests {
    use super::{LeafShare, RUN_LEAVES};
    use std::sync::Arc;

    /// Owner and helper on two threads take every run exactly once; the
    /// owner closes while the helper is still reading, and gets its last
    /// part too, with the others, in leaf order.
    #[test]
    fn every_run_is_taken_once_and_parts_come_back_in_order() {
        let leaves = 50 * RUN_LEAVES + 7;
        let share = LeafShare::<(), Vec<usize>>::default();
        share.open(Arc::new(()), leaves);
        let slow_read = |_: &(), run: std::ops::Range<usize>| {
            std::thread::sleep(std::time::Duration::from_millis(2));
            (run.collect(), true)
        };
        let (mine, parts) = std::thread::scope(|scope| {
            scope.spawn(|| share.help(slow_read));
            let mut mine = Vec::new();
            while let Some(run) = share.take_front() {
                mine.extend(run);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            (mine, share.close())
        });
        let theirs: Vec<usize> = parts.into_iter().flatten().collect();
        let mut all = mine.clone();
        all.extend(&theirs);
        assert_eq!(
            all,
            (0..leaves).collect::<Vec<_>>(),
            "{} + {}",
            mine.len(),
            theirs.len()
        );
    }

    /// The owner closes while the helper is inside its read: close waits
    /// for that part.
    #[test]
    fn close_waits_for_the_run_the_helper_is_reading() {
        let share = LeafShare::<(), usize>::default();
        share.open(Arc::new(()), 2 * RUN_LEAVES);
        let (reading, in_read) = std::sync::mpsc::channel();
        let parts = std::thread::scope(|scope| {
            scope.spawn(|| {
                share.help(|_, run| {
                    reading.send(()).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    (run.start, true)
                })
            });
            in_read.recv().unwrap();
            assert_eq!(share.take_front(), Some(0..RUN_LEAVES));
            assert_eq!(share.take_front(), None);
            share.close()
        });
        assert_eq!(parts, vec![RUN_LEAVES]);
    }

    #[test]
    fn a_helper_that_stops_leaves_the_rest_to_the_owner() {
        let share = LeafShare::<(), usize>::default();
        share.help(|_, _| unreachable!("nothing offered yet"));
        share.open(Arc::new(()), 10 * RUN_LEAVES);
        share.help(|_, run| (run.start, false));
        let mut mine = 0;
        while share.take_front().is_some() {
            mine += 1;
        }
        assert_eq!((mine, share.close()), (9, vec![9 * RUN_LEAVES]));
        share.help(|_, _| unreachable!("closed"));
    }
}
