//! The two big tables as held in memory: compact rows, and the small side
//! tables they point into.
//!
//! A 1 GB export holds millions of kernels and API calls, and the reports
//! read them again and again. Past the last-level cache every byte of a row
//! is paid for in each of those passes, so a row keeps only what varies
//! from row to row: a thread, process or stream is a slot in a short list,
//! a duration fits in 4 bytes unless it is unusually long, and a kernel's
//! graph node, which only node-trace exports have, sits in a column of its
//! own.

use super::int_rows::{failure, IntCells};
use super::slots::RunSlots;
use std::num::NonZeroI64;
use std::ops::Deref;

/// NULL in a 32-bit id column; the value itself is refused when read.
const NO_ID: u32 = u32::MAX;

fn id_or_minus_one(id: u32) -> i64 {
    if id == NO_ID {
        -1
    } else {
        i64::from(id)
    }
}

/// Builds one table's rows and side tables, row by row. The page reader
/// may give up part way through a table, and SQLite then reads it again
/// from the start with a fresh builder.
pub trait RowBuilder: Default {
    type Row;
    type Table;
    fn row(&mut self, cells: &IntCells<'_>) -> rusqlite::Result<Self::Row>;
    fn finish(self, rows: Vec<Self::Row>) -> Self::Table;
}

/// Keys numbered in order of first appearance, with the list of keys.
#[derive(Debug)]
struct KeySlots<K> {
    slots: RunSlots<K>,
    keys: Vec<K>,
}

impl<K> Default for KeySlots<K> {
    fn default() -> Self {
        KeySlots {
            slots: RunSlots::default(),
            keys: Vec::new(),
        }
    }
}

impl<K: Copy + Eq + std::hash::Hash> KeySlots<K> {
    fn slot(&mut self, key: K) -> rusqlite::Result<u32> {
        let (slot, new) = self.slots.slot(key);
        if new {
            self.keys.push(key);
        }
        u32::try_from(slot)
            .map_err(|_| too_many(u32::MAX, "distinct threads, processes or streams"))
    }
}

#[cold]
fn too_many(limit: u32, what: &str) -> rusqlite::Error {
    failure(format!("more than {limit} {what}"))
}

/// The first duration kept aside, and the tag of an index to it.
const LONG_DURATION: u32 = 1 << 31;

/// Durations in 4 bytes: nanoseconds below [`LONG_DURATION`]; from it up,
/// the index of the duration in a list of long ones (past 2.1 s, or
/// negative), which no real export seen has.
#[derive(Debug, Default, PartialEq, Eq)]
struct Durations {
    long: Vec<i64>,
}

impl Durations {
    /// Taken wrapping, so that `start + duration` gives back the end cell.
    fn encode(&mut self, start: i64, end: i64) -> rusqlite::Result<u32> {
        let ns = end.wrapping_sub(start);
        match u32::try_from(ns) {
            Ok(d) if d < LONG_DURATION => Ok(d),
            _ => self.push_long(ns),
        }
    }

    /// Keep `ns` aside; its tagged index.
    fn push_long(&mut self, ns: i64) -> rusqlite::Result<u32> {
        let at = u32::try_from(self.long.len())
            .ok()
            .filter(|&i| i < LONG_DURATION)
            .ok_or_else(|| too_many(LONG_DURATION, "durations of over 2.1 s"))?;
        self.long.push(ns);
        Ok(LONG_DURATION | at)
    }

    #[inline]
    fn get(&self, duration: u32) -> i64 {
        if duration < LONG_DURATION {
            i64::from(duration)
        } else {
            self.long[(duration - LONG_DURATION) as usize]
        }
    }
}

/// One row of `CUPTI_ACTIVITY_KIND_KERNEL`, in 32 bytes: there are millions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub start: i64,
    /// See [`Durations`].
    duration: u32,
    /// CUPTI's ids are 32-bit, and so are the string ids of every export
    /// seen; [`NO_ID`] stands for NULL.
    correlation: u32,
    short_name: u32,
    demangled_name: u32,
    /// Slot in [`Kernels`]' list of (device, stream) pairs.
    stream: u32,
    /// Slot in [`Kernels`]' list of processes.
    process: u32,
}

// Millions of these are held at once.
const _: () = assert!(std::mem::size_of::<Kernel>() == 32);

impl Kernel {
    /// The launching call's correlation id, -1 when NULL.
    pub fn correlation(&self) -> i64 {
        id_or_minus_one(self.correlation)
    }

    /// Name ids in the string table, -1 when NULL.
    pub fn short_name(&self) -> i64 {
        id_or_minus_one(self.short_name)
    }

    pub fn demangled_name(&self) -> i64 {
        id_or_minus_one(self.demangled_name)
    }
}

/// The kernel rows, in table order, with what they point into.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Kernels {
    rows: Vec<Kernel>,
    /// `globalPid` per process slot; 0 and NULL are both "no process".
    processes: Vec<Option<NonZeroI64>>,
    /// `(deviceId, streamId)` per stream slot, 0 for NULL.
    streams: Vec<(u32, u32)>,
    durations: Durations,
    /// `graphNodeId` per kernel, kept only when some kernel has one.
    graph_nodes: Option<Vec<Option<NonZeroI64>>>,
    /// Kernels that end before they start.
    backwards: usize,
}

impl Deref for Kernels {
    type Target = [Kernel];
    fn deref(&self) -> &[Kernel] {
        &self.rows
    }
}

impl Kernels {
    pub fn duration(&self, k: &Kernel) -> i64 {
        self.durations.get(k.duration)
    }

    pub fn end(&self, k: &Kernel) -> i64 {
        k.start.wrapping_add(self.duration(k))
    }

    pub fn device(&self, k: &Kernel) -> u32 {
        self.streams[k.stream as usize].0
    }

    pub fn stream(&self, k: &Kernel) -> u32 {
        self.streams[k.stream as usize].1
    }

    pub fn global_pid(&self, k: &Kernel) -> Option<i64> {
        self.processes[k.process as usize].map(NonZeroI64::get)
    }

    /// Every process that ran a kernel, in order of its first kernel.
    pub fn processes(&self) -> impl Iterator<Item = i64> + '_ {
        self.processes.iter().flatten().map(|p| p.get())
    }

    /// Every device that ran a kernel, once per stream of it.
    pub fn devices(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter().map(|&(device, _)| device)
    }

    /// How many kernels end before they start.
    pub fn backwards(&self) -> usize {
        self.backwards
    }

    /// Set for kernels that ran as a node of a CUDA graph (node trace mode).
    pub fn graph_node(&self, index: usize) -> Option<i64> {
        self.graph_nodes.as_ref()?[index].map(NonZeroI64::get)
    }
}

impl Kernels {
    /// Keep the rows `keep` marks (one flag per row), as a time filter
    /// does. Stream and process slots are renumbered by first appearance
    /// among the rows kept, so that a process with no kernel left is no
    /// longer listed.
    pub fn retain_marked(&mut self, keep: &[bool]) {
        let mut streams = Renumber::new(std::mem::take(&mut self.streams));
        let mut processes = Renumber::new(std::mem::take(&mut self.processes));
        retain_updating(&mut self.rows, keep, |k| {
            k.stream = streams.slot(k.stream);
            k.process = processes.slot(k.process);
        });
        if let Some(nodes) = &mut self.graph_nodes {
            retain_marked(nodes, keep);
        }
        self.streams = streams.keys;
        self.processes = processes.keys;
        let durations = &self.durations;
        self.backwards = self
            .rows
            .iter()
            .filter(|k| k.start.wrapping_add(durations.get(k.duration)) < k.start)
            .count();
    }
}

impl ApiCalls {
    /// Keep the calls `keep` marks; thread slots renumbered as for kernels.
    pub fn retain_marked(&mut self, keep: &[bool]) {
        let mut threads = Renumber::new(std::mem::take(&mut self.threads));
        retain_updating(&mut self.rows, keep, |c| c.thread = threads.slot(c.thread));
        self.threads = threads.keys;
    }
}

/// Keep the items of `items` that `keep` marks, one flag per item.
pub fn retain_marked<T>(items: &mut Vec<T>, keep: &[bool]) {
    retain_updating(items, keep, |_| {});
}

/// Keep the items `keep` marks, and `update` each one kept.
fn retain_updating<T>(items: &mut Vec<T>, keep: &[bool], mut update: impl FnMut(&mut T)) {
    let mut flags = keep.iter();
    items.retain_mut(|item| {
        let kept = flags.next().copied().unwrap_or(false);
        if kept {
            update(item);
        }
        kept
    });
}

/// Slots renumbered in order of first use by the rows that remain.
struct Renumber<K> {
    old_keys: Vec<K>,
    new_of_old: Vec<u32>,
    keys: Vec<K>,
}

impl<K: Copy> Renumber<K> {
    fn new(old_keys: Vec<K>) -> Self {
        Renumber {
            new_of_old: vec![NO_ID; old_keys.len()],
            old_keys,
            keys: Vec::new(),
        }
    }

    fn slot(&mut self, old: u32) -> u32 {
        let new = &mut self.new_of_old[old as usize];
        if *new == NO_ID {
            // Fewer keys than before, so the count fits in a u32.
            *new = self.keys.len() as u32;
            self.keys.push(self.old_keys[old as usize]);
        }
        *new
    }
}

/// Builds [`Kernels`] from the cells of `kernels.sql` or
/// `kernels_minimal.sql`.
#[derive(Debug, Default)]
pub struct KernelBuilder {
    processes: KeySlots<Option<NonZeroI64>>,
    streams: KeySlots<(u32, u32)>,
    durations: Durations,
    graph_nodes: Option<Vec<Option<NonZeroI64>>>,
    rows: usize,
    backwards: usize,
}

impl RowBuilder for KernelBuilder {
    type Row = Kernel;
    type Table = Kernels;

    fn row(&mut self, r: &IntCells<'_>) -> rusqlite::Result<Kernel> {
        let (start, end) = (r.int(0)?, r.int(1)?);
        let place = (r.opt_u32(2)?.unwrap_or(0), r.opt_u32(3)?.unwrap_or(0));
        let correlation = r.opt_id(4)?.unwrap_or(NO_ID);
        let pid = r.opt_int(5)?.and_then(NonZeroI64::new);
        let short_name = r.opt_id(6)?.unwrap_or(NO_ID);
        let demangled_name = r.opt_id(7)?.unwrap_or(NO_ID);
        let node = r.opt_int(8)?.and_then(NonZeroI64::new);
        if node.is_some() || self.graph_nodes.is_some() {
            let rows = self.rows;
            self.graph_nodes
                .get_or_insert_with(|| vec![None; rows])
                .push(node);
        }
        self.rows += 1;
        self.backwards += usize::from(end < start);
        Ok(Kernel {
            start,
            duration: self.durations.encode(start, end)?,
            correlation,
            short_name,
            demangled_name,
            stream: self.streams.slot(place)?,
            process: self.processes.slot(pid)?,
        })
    }

    fn finish(self, rows: Vec<Kernel>) -> Kernels {
        Kernels {
            rows,
            processes: self.processes.keys,
            streams: self.streams.keys,
            durations: self.durations,
            graph_nodes: self.graph_nodes,
            backwards: self.backwards,
        }
    }
}

/// One row of `CUPTI_ACTIVITY_KIND_RUNTIME`, a CUDA runtime or driver call,
/// in 24 bytes: the SYNTHETIC 1 GB export holds 12 M of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    pub start: i64,
    /// See [`Durations`].
    duration: u32,
    /// Slot in [`ApiCalls`]' list of threads.
    thread: u32,
    correlation: u32,
    name: u32,
}

const _: () = assert!(std::mem::size_of::<ApiCall>() == 24);

impl ApiCall {
    /// The call's correlation id, -1 when NULL (it then matches no GPU work).
    pub fn correlation(&self) -> i64 {
        id_or_minus_one(self.correlation)
    }

    /// The call's name in the string table, -1 when NULL.
    pub fn name(&self) -> i64 {
        id_or_minus_one(self.name)
    }

    /// Its thread's slot in [`ApiCalls::threads`].
    pub fn thread_slot(&self) -> u32 {
        self.thread
    }
}

/// The API call rows, in table order, with what they point into.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApiCalls {
    rows: Vec<ApiCall>,
    /// `globalTid` per thread slot, 0 for NULL.
    threads: Vec<i64>,
    durations: Durations,
}

impl Deref for ApiCalls {
    type Target = [ApiCall];
    fn deref(&self) -> &[ApiCall] {
        &self.rows
    }
}

impl ApiCalls {
    pub fn duration(&self, c: &ApiCall) -> i64 {
        self.durations.get(c.duration)
    }

    pub fn end(&self, c: &ApiCall) -> i64 {
        c.start.wrapping_add(self.duration(c))
    }

    pub fn global_tid(&self, c: &ApiCall) -> i64 {
        self.threads[c.thread as usize]
    }

    /// Every thread that made a call, `globalTid` by thread slot.
    pub fn threads(&self) -> &[i64] {
        &self.threads
    }

    /// Start appending the rows that follow these in the table, read on
    /// their own in parts; see `ApiCallJoin`.
    pub fn joiner(self) -> rusqlite::Result<ApiCallJoin> {
        let mut threads = KeySlots::default();
        for &tid in &self.threads {
            threads.slot(tid)?;
        }
        Ok(ApiCallJoin {
            calls: self,
            threads,
        })
    }
}

/// [`ApiCalls`] with later parts of the table appended, so that the result
/// equals one read of them all. Thread slots are numbered by first
/// appearance, so a part's new threads come after those before it, in its
/// order; its long durations come after theirs too.
#[derive(Debug)]
pub struct ApiCallJoin {
    calls: ApiCalls,
    threads: KeySlots<i64>,
}

impl ApiCallJoin {
    pub fn push(&mut self, later: ApiCalls) -> rusqlite::Result<()> {
        let slots = later
            .threads
            .iter()
            .map(|&tid| self.threads.slot(tid))
            .collect::<rusqlite::Result<Vec<u32>>>()?;
        let durations = &mut self.calls.durations;
        let shift = durations.long.len();
        for &ns in &later.durations.long {
            durations.push_long(ns)?;
        }
        self.calls.rows.extend(later.rows.into_iter().map(|mut c| {
            c.thread = slots[c.thread as usize];
            if c.duration >= LONG_DURATION {
                c.duration += shift as u32;
            }
            c
        }));
        Ok(())
    }

    pub fn finish(self) -> ApiCalls {
        ApiCalls {
            threads: self.threads.keys,
            ..self.calls
        }
    }
}

/// Builds [`ApiCalls`] from the cells of `runtime.sql`.
#[derive(Debug, Default)]
pub struct ApiCallBuilder {
    threads: KeySlots<i64>,
    durations: Durations,
}

impl RowBuilder for ApiCallBuilder {
    type Row = ApiCall;
    type Table = ApiCalls;

    fn row(&mut self, r: &IntCells<'_>) -> rusqlite::Result<ApiCall> {
        let start = r.int(0)?;
        let duration = self.durations.encode(start, r.int(1)?)?;
        Ok(ApiCall {
            start,
            duration,
            thread: self.threads.slot(r.opt_int(2)?.unwrap_or(0))?,
            correlation: r.opt_id(3)?.unwrap_or(NO_ID),
            name: r.opt_id(4)?.unwrap_or(NO_ID),
        })
    }

    fn finish(self, rows: Vec<ApiCall>) -> ApiCalls {
        ApiCalls {
            rows,
            threads: self.threads.keys,
            durations: self.durations,
        }
    }
}

/// Hand-made call rows for unit tests, from the cells of `runtime.sql`
/// (start, end, globalTid, correlation id, name id).
#[cfg(test)]
pub(crate) fn calls_from_cells(rows: &[[Option<i64>; 5]]) -> ApiCalls {
    let mut builder = ApiCallBuilder::default();
    let names = crate::nsys::int_rows::argument_names(crate::nsys::queries::RUNTIME.sql);
    let held = rows
        .iter()
        .map(|cells| builder.row(&IntCells::decoded(cells, &names)).unwrap())
        .collect();
    builder.finish(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::nsys::int_rows::argument_names;
    use crate::nsys::queries;

    /// The cells' names, from the query the rows are read with.
    fn kernel_names() -> Vec<&'static str> {
        argument_names(queries::KERNELS.sql)
    }

    fn calls(rows: &[[Option<i64>; 5]]) -> ApiCalls {
        calls_from_cells(rows)
    }

    /// Hand-made: no real export has a call of over 2.1 s, or one that
    /// ends before it starts, but a long `cudaDeviceSynchronize` would.
    #[test]
    fn long_and_backward_calls_keep_their_exact_times() {
        let rows = [
            [Some(10), Some(25), Some(7), Some(1), Some(2)],
            [Some(100), Some(100 + (1 << 31)), Some(7), Some(2), Some(2)],
            [Some(5), Some(5 + (1 << 31) - 1), Some(8), Some(3), Some(2)],
            [Some(50), Some(40), None, None, None],
            [Some(i64::MIN), Some(i64::MAX), Some(8), Some(4), Some(2)],
        ];
        let table = calls(&rows);
        for (c, cells) in table.iter().zip(&rows) {
            assert_eq!(c.start, cells[0].unwrap());
            assert_eq!(table.end(c), cells[1].unwrap());
            assert_eq!(table.global_tid(c), cells[2].unwrap_or(0));
        }
        assert_eq!(table.duration(&table[1]), 1 << 31);
        assert_eq!(table.duration(&table[3]), -10);
        assert_eq!(table.durations.long.len(), 3);
        assert_eq!(table.threads.len(), 3);
        assert_eq!((table[3].correlation(), table[3].name()), (-1, -1));
        for cut in 0..=rows.len() {
            let mut joined = calls(&rows[..cut]).joiner().unwrap();
            for part in rows[cut..].chunks(2) {
                joined.push(calls(part)).unwrap();
            }
            assert_eq!(joined.finish(), table, "cut at {cut}");
        }
    }

    /// Hand-made: the graph node column appears with the first kernel that
    /// has a node, filled with "none" for the kernels before it.
    #[test]
    fn graph_nodes_are_kept_only_once_a_kernel_has_one() {
        let row = |pid: i64, node: Option<i64>| {
            [
                Some(1),
                Some(2),
                Some(0),
                Some(7),
                Some(3),
                Some(pid),
                Some(4),
                Some(5),
                node,
            ]
        };
        let names = kernel_names();
        let build = |rows: &[[Option<i64>; 9]]| {
            let mut builder = KernelBuilder::default();
            let held = rows
                .iter()
                .map(|cells| builder.row(&IntCells::decoded(cells, &names)).unwrap())
                .collect();
            builder.finish(held)
        };
        let plain = build(&[row(1 << 24, None), row(0, Some(0))]);
        assert_eq!(plain.graph_nodes, None);
        assert_eq!(plain.global_pid(&plain[0]), Some(1 << 24));
        assert_eq!(plain.global_pid(&plain[1]), None);

        let nodes = build(&[
            row(1 << 24, None),
            row(2 << 24, Some(9)),
            row(1 << 24, None),
        ]);
        let found: Vec<_> = (0..3).map(|i| nodes.graph_node(i)).collect();
        assert_eq!(found, [None, Some(9), None]);
        let pids: Vec<_> = nodes.iter().map(|k| nodes.global_pid(k)).collect();
        assert_eq!(pids, [Some(1 << 24), Some(2 << 24), Some(1 << 24)]);
        assert_eq!(nodes.processes.len(), 2);
    }

    /// Hand-made, like the calls above: times, devices and streams come
    /// back exactly, a kernel of over 2.1 s and one that ends before it
    /// starts included.
    #[test]
    fn kernel_times_and_streams_come_back_exactly() {
        let cells = [
            [Some(10), Some(25), Some(0), Some(7)],
            [Some(3), Some(3 + (1 << 31)), Some(1), Some(7)],
            [Some(50), Some(40), None, None],
            [Some(i64::MIN), Some(i64::MAX), Some(0), Some(7)],
        ];
        let mut builder = KernelBuilder::default();
        let names = kernel_names();
        let held = cells
            .iter()
            .map(|c| {
                let row = [
                    c[0],
                    c[1],
                    c[2],
                    c[3],
                    Some(1),
                    None,
                    Some(4),
                    Some(5),
                    None,
                ];
                builder.row(&IntCells::decoded(&row, &names)).unwrap()
            })
            .collect();
        let kernels = builder.finish(held);
        for (k, c) in kernels.iter().zip(&cells) {
            assert_eq!((k.start, kernels.end(k)), (c[0].unwrap(), c[1].unwrap()));
            let place = (kernels.device(k), kernels.stream(k));
            assert_eq!(place, (c[2].unwrap_or(0) as u32, c[3].unwrap_or(0) as u32));
        }
        assert_eq!(kernels.duration(&kernels[1]), 1 << 31);
        assert_eq!(kernels.duration(&kernels[2]), -10);
        assert_eq!(kernels.streams.len(), 3);
    }
}
