//! The CUDA API calls each engine step's thread made inside the step: per
//! step their count and time, and how many were graph launches (what the
//! graph mode reads); per phase, the same by API name. One pass over the
//! calls, made only when the profile has steps.

use super::rows::ApiCalls;
use super::slots::DenseIds;
use rustc_hash::FxHashMap as HashMap;

/// One step range: its thread, start and end.
#[derive(Debug, Clone, Copy)]
pub struct StepSpan {
    pub tid: i64,
    pub start: i64,
    pub end: i64,
    /// Which group (phase) the step's calls are summed in.
    pub group: usize,
}

/// Calls and their summed duration.
pub type CallSum = (u64, i64);

#[derive(Debug, Default)]
pub struct StepCalls {
    /// Per step, every call inside it.
    pub per_step: Vec<CallSum>,
    /// Per step, the calls named one of the graph-launch names.
    pub graph_launches: Vec<u64>,
    /// Per group, per API name id, in the order names first came.
    pub per_group: Vec<Vec<(i64, CallSum)>>,
}

/// One thread's steps. A call belongs to the first step, in step order,
/// whose range holds the whole call; where the thread's steps do not
/// overlap, that is the one that starts last before the call (the pass
/// keeps it while the thread's calls stay inside it: [`StepRun`]).
struct ThreadSteps {
    /// Step indexes, in step order, or by start where `disjoint`.
    steps: Vec<usize>,
    disjoint: bool,
}

impl ThreadSteps {
    fn new(mut steps: Vec<usize>, spans: &[StepSpan]) -> ThreadSteps {
        let mut by_start = steps.clone();
        by_start.sort_by_key(|&s| (spans[s].start, spans[s].end));
        let disjoint = by_start
            .windows(2)
            .all(|w| spans[w[0]].end < spans[w[1]].start);
        if disjoint {
            steps = by_start;
        }
        ThreadSteps { steps, disjoint }
    }

    fn find(&self, spans: &[StepSpan], start: i64, end: i64) -> Option<usize> {
        let holds = |s: usize| spans[s].start <= start && end <= spans[s].end;
        if !self.disjoint {
            return self.steps.iter().copied().find(|&s| holds(s));
        }
        let after = self.steps.partition_point(|&s| spans[s].start <= start);
        let step = self.steps[after.checked_sub(1)?];
        holds(step).then_some(step)
    }
}

/// Per group, per name slot: calls and their time.
#[derive(Default)]
struct GroupSums {
    /// A slot per API name id, in the order names first came.
    slots: DenseIds,
    /// The name id of each slot.
    names: Vec<i64>,
    sums: Vec<Vec<CallSum>>,
}

impl GroupSums {
    #[inline]
    fn add(&mut self, group: usize, name: i64, ns: i64) {
        let slot = self.slots.slot(name) as usize;
        if slot == self.names.len() {
            self.names.push(name);
        }
        let sums = &mut self.sums[group];
        if slot >= sums.len() {
            sums.resize(slot + 1, (0, 0));
        }
        sums[slot].0 += 1;
        sums[slot].1 += ns;
    }

    /// Per group, the names it called, in the order names first came.
    fn finish(self) -> Vec<Vec<(i64, CallSum)>> {
        let names = self.names;
        self.sums
            .into_iter()
            .map(|sums| {
                let called = sums.into_iter().enumerate().filter(|(_, s)| s.0 > 0);
                called.map(|(slot, s)| (names[slot], s)).collect()
            })
            .collect()
    }
}

/// Every call of `calls` that a step holds, summed per step and per group.
pub fn gather(calls: &ApiCalls, spans: &[StepSpan], launch_names: &[i64]) -> StepCalls {
    let threads = threads_with_steps(calls, spans);
    let groups = spans.iter().map(|s| s.group + 1).max().unwrap_or(0);
    let mut out = StepCalls {
        per_step: vec![(0, 0); spans.len()],
        graph_launches: vec![0; spans.len()],
        per_group: Vec::new(),
    };
    let mut names = GroupSums {
        sums: vec![Vec::new(); groups],
        ..GroupSums::default()
    };
    // A thread's calls come in runs inside one step: while they stay on
    // the thread and inside the step, the step is known without a search.
    let mut run = StepRun::NONE;
    for c in calls.iter() {
        let ns = calls.duration(c);
        let end = c.start.wrapping_add(ns);
        if !run.holds(c.thread_slot(), c.start, end) {
            let Some(Some(thread)) = threads.get(c.thread_slot() as usize) else {
                continue;
            };
            let Some(step) = thread.find(spans, c.start, end) else {
                continue;
            };
            let owner = if thread.disjoint {
                c.thread_slot()
            } else {
                NO_THREAD
            };
            run = StepRun::of(owner, step, &spans[step]);
        }
        add_call(&mut out, run.step, c.name(), ns, launch_names);
        names.add(run.group, c.name(), ns);
    }
    out.per_group = names.finish();
    out
}

/// The step the last call fell in. Only on a thread whose steps do not
/// overlap is it the one step that holds every later call inside its range;
/// elsewhere its thread is [`NO_THREAD`] and it holds none.
struct StepRun {
    thread: u32,
    start: i64,
    end: i64,
    step: usize,
    group: usize,
}

/// No thread slot: there are fewer threads than this.
const NO_THREAD: u32 = u32::MAX;

impl StepRun {
    const NONE: StepRun = StepRun {
        thread: NO_THREAD,
        start: 0,
        end: -1,
        step: 0,
        group: 0,
    };

    fn of(thread: u32, step: usize, span: &StepSpan) -> StepRun {
        StepRun {
            thread,
            start: span.start,
            end: span.end,
            step,
            group: span.group,
        }
    }

    #[inline]
    fn holds(&self, thread: u32, start: i64, end: i64) -> bool {
        thread == self.thread && thread != NO_THREAD && self.start <= start && end <= self.end
    }
}

fn add_call(out: &mut StepCalls, step: usize, name: i64, ns: i64, launch_names: &[i64]) {
    let sum = &mut out.per_step[step];
    sum.0 += 1;
    sum.1 += ns;
    if launch_names.contains(&name) {
        out.graph_launches[step] += 1;
    }
}

/// Per thread slot of the calls, the steps on that thread, if any.
fn threads_with_steps(calls: &ApiCalls, spans: &[StepSpan]) -> Vec<Option<ThreadSteps>> {
    let mut by_tid: HashMap<i64, Vec<usize>> = HashMap::default();
    for (i, s) in spans.iter().enumerate() {
        by_tid.entry(s.tid).or_default().push(i);
    }
    calls
        .threads()
        .iter()
        .map(|tid| {
            by_tid
                .get(tid)
                .map(|steps| ThreadSteps::new(steps.clone(), spans))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: i64, end: i64) -> StepSpan {
        StepSpan {
            tid: 1,
            start,
            end,
            group: 0,
        }
    }

    #[test]
    fn a_call_falls_in_the_step_that_holds_it_whole() {
        let spans = [span(10, 20), span(30, 40), span(0, 5)];
        let t = ThreadSteps::new(vec![0, 1, 2], &spans);
        assert!(t.disjoint);
        assert_eq!(t.find(&spans, 31, 39), Some(1));
        assert_eq!(t.find(&spans, 12, 20), Some(0));
        assert_eq!(t.find(&spans, 1, 2), Some(2));
        assert_eq!(t.find(&spans, 19, 21), None, "crosses the step's end");
        assert_eq!(t.find(&spans, 25, 26), None, "between steps");
        assert_eq!(t.find(&spans, 50, 60), None, "after every step");
    }

    #[test]
    fn overlapping_steps_give_a_call_to_the_first_in_step_order() {
        let spans = [span(10, 50), span(20, 30)];
        let t = ThreadSteps::new(vec![1, 0], &spans);
        assert!(!t.disjoint);
        assert_eq!(t.find(&spans, 22, 28), Some(1));
        assert_eq!(t.find(&spans, 12, 18), Some(0));
    }

    /// Hand-made: no real export has steps that overlap on one thread.
    /// Calls from threads with and without steps interleave; on the thread
    /// whose steps overlap, a call goes to the first step in step order
    /// that holds it, whichever step took the call before it.
    #[test]
    fn interleaved_threads_and_overlapping_steps() {
        let spans = [
            StepSpan {
                tid: 7,
                start: 20,
                end: 30,
                group: 0,
            },
            StepSpan {
                tid: 7,
                start: 10,
                end: 50,
                group: 0,
            },
            StepSpan {
                tid: 9,
                start: 100,
                end: 200,
                group: 1,
            },
            StepSpan {
                tid: 9,
                start: 300,
                end: 400,
                group: 1,
            },
        ];
        let call = |start, end, tid, name| [Some(start), Some(end), Some(tid), Some(0), Some(name)];
        let calls = crate::nsys::rows::calls_from_cells(&[
            call(12, 18, 7, 1),
            call(22, 28, 7, 2),
            call(110, 120, 9, 1),
            call(130, 140, 8, 1),
            call(25, 26, 8, 1),
            call(150, 160, 9, 1),
            call(40, 45, 7, 1),
            call(310, 320, 9, 2),
            call(195, 205, 9, 1),
        ]);
        let out = gather(&calls, &spans, &[2]);
        assert_eq!(out.per_step, vec![(1, 6), (2, 11), (2, 20), (1, 10)]);
        assert_eq!(out.graph_launches, vec![1, 0, 0, 1]);
        assert_eq!(
            out.per_group,
            vec![
                vec![(1, (2, 11)), (2, (1, 6))],
                vec![(1, (2, 20)), (2, (1, 10))]
            ]
        );
    }

    #[test]
    fn name_sums_keep_first_appearance_order_per_group() {
        let mut n = GroupSums {
            sums: vec![Vec::new(); 2],
            ..GroupSums::default()
        };
        // Past `DenseIds`' table, so that both of its paths give slots.
        let far = (1 << 40) + 5;
        for (group, name, ns) in [(1, 7, 1), (0, far, 9), (1, 7, 2), (1, 3, 5), (1, far, 4)] {
            n.add(group, name, ns);
        }
        assert_eq!(
            n.finish(),
            vec![
                vec![(far, (1, 9))],
                vec![(7, (2, 3)), (far, (1, 4)), (3, (1, 5))]
            ]
        );
    }
}
