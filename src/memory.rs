//! Allocator settings for a short-lived process that allocates and frees
//! large vectors, report after report and profile after profile.

/// Keep freed memory for reuse instead of handing it back to the kernel.
///
/// glibc maps every block over its mmap threshold (dynamic, from 128 KiB,
/// at most 32 MiB) on its own and unmaps it when freed, so the next
/// report's vectors fault in fresh zeroed pages again; on a 1 GB export
/// most vectors are far over 32 MiB. Here blocks come from the heap, whose
/// freed space is kept and reused. Threads other than the first still map
/// their large blocks: see [`share_one_heap`].
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called first
    // thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// For a single profile: every thread allocates from the one main heap.
///
/// glibc gives each thread its own arena, whose heaps are at most 64 MiB,
/// so the table readers' and the reports' big vectors are mapped and
/// unmapped one by one anyway. One heap lets them reuse each other's freed
/// space. Measured on the SYNTHETIC 1 GB export: 651k → 420k page faults,
/// system time 2.6 → 1.7 s; on the 76 MB export 36k → 33k. Not for folder
/// runs, where two workers allocate small blocks all the time and one
/// heap's lock made them wait (2-thread folder run 0.36–0.39 → 0.39–0.50 s).
/// Call it before any other thread exists: a thread that allocated before
/// keeps an arena of its own, which later threads would share.
pub fn share_one_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as above.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Keeps a filling vector's pages mapped in a few MiB ahead of its length.
///
/// The big row vectors are sized once from an upper bound and then written
/// front to back, so every page of them would fault in on its own, while
/// two reader threads fault into the same heap. Mapping them in by the
/// megabyte (`MADV_POPULATE_WRITE`, Linux 5.14) lowered the SYNTHETIC 1 GB
/// digest's median system time in four of five alternating sets (1.75 to
/// 1.00 s in the largest gain, 1.08 to 0.90 s in the last). Staying only [`POPULATE_AHEAD`]
/// ahead keeps a bound far above the rows read (sparse rowids) from
/// becoming resident memory. The advice never changes the memory's
/// contents; where the kernel lacks it, the pages fault in as before.
#[derive(Debug, Default)]
pub struct PopulateAhead {
    /// The buffer populated, and how many bytes of it.
    base: usize,
    done: usize,
}

/// How far ahead of the vector's length its pages are mapped in.
pub const POPULATE_AHEAD: usize = 8 << 20;

impl PopulateAhead {
    /// Call before each push.
    #[inline]
    pub fn before_push<T>(&mut self, v: &mut Vec<T>) {
        let used = std::mem::size_of_val(v.as_slice());
        if used + POPULATE_AHEAD / 2 > self.done || v.as_ptr() as usize != self.base {
            self.advance(v, used);
        }
    }

    #[cold]
    fn advance<T>(&mut self, v: &mut Vec<T>, used: usize) {
        let base = v.as_mut_ptr() as usize;
        if base != self.base {
            // A new buffer: what was copied in is in place, the rest is new.
            self.base = base;
            self.done = used;
        }
        let capacity = v.capacity() * std::mem::size_of::<T>();
        let from = self.done.max(used);
        let to = (used + POPULATE_AHEAD).min(capacity);
        if to > from {
            populate(base + from, to - from);
        }
        // At the end of the capacity there is nothing left to map in.
        self.done = if to >= capacity { usize::MAX } else { to };
    }
}

/// `MADV_POPULATE_WRITE` over the whole pages inside `start..start + bytes`;
/// true when the kernel took the advice.
fn populate(start: usize, bytes: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let Ok(page) = usize::try_from(page) else {
            return false;
        };
        if page == 0 {
            return false;
        }
        let first = start.next_multiple_of(page);
        let end = (start + bytes) / page * page;
        // SAFETY: callers pass spare capacity of a vector they own; the
        // advice only maps pages in and leaves their contents as they are.
        end > first
            && unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    end - first,
                    libc::MADV_POPULATE_WRITE,
                )
            } == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (start, bytes);
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    //! The settings change the whole process, so each case runs in a child
    //! copy of this test binary.
    use super::{populate, reuse_freed_memory, share_one_heap, PopulateAhead, POPULATE_AHEAD};
    use std::process::Command;

    const CHILD: &str = "NSIGHT_DIGEST_MEMORY_CHILD";
    /// Over glibc's largest mmap threshold (32 MiB), so without the
    /// settings the block is always mapped on its own and unmapped when
    /// freed.
    const BLOCK: usize = 40 << 20;

    fn minor_faults() -> i64 {
        // SAFETY: getrusage writes into the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        usage.ru_minflt
    }

    /// Allocate a block, write a byte per page, free it.
    fn touch_block() {
        let mut block = vec![0u8; BLOCK];
        for i in (0..BLOCK).step_by(4096) {
            block[i] = 1;
        }
        std::hint::black_box(&block);
    }

    /// Page faults of the second of two same-sized blocks.
    fn faults_of_a_second_block() -> i64 {
        touch_block();
        let before = minor_faults();
        touch_block();
        minor_faults() - before
    }

    fn run_child(mode: &str) -> std::process::Output {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "memory::tests::a_freed_block_is_reused",
                "--nocapture",
            ])
            .env(CHILD, mode)
            .output()
            .unwrap()
    }

    /// With the settings, the second block reuses the first one's pages;
    /// without them (the control) its 10,240 pages fault in again.
    #[test]
    fn a_freed_block_is_reused() {
        let pages = (BLOCK / 4096) as i64;
        match std::env::var(CHILD).as_deref() {
            Ok("settings") => {
                reuse_freed_memory();
                share_one_heap();
                let faults = faults_of_a_second_block();
                assert!(faults < pages / 10, "{faults} faults with the settings");
            }
            Ok("control") => {
                let faults = faults_of_a_second_block();
                assert!(faults > pages / 2, "{faults} faults without the settings");
            }
            _ => {
                for mode in ["settings", "control"] {
                    let out = run_child(mode);
                    assert!(
                        out.status.success(),
                        "{mode}: {}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
            }
        }
    }

    /// How many of the whole pages in `start..start + bytes` are resident.
    fn resident_pages(start: usize, bytes: usize) -> usize {
        let first = start.next_multiple_of(4096);
        let end = (start + bytes) / 4096 * 4096;
        let mut flags = vec![0u8; (end - first) / 4096];
        // SAFETY: mincore writes one byte per page into `flags`, which has
        // room for every page of the range.
        let rc =
            unsafe { libc::mincore(first as *mut libc::c_void, end - first, flags.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore");
        flags.iter().filter(|&&f| f & 1 == 1).count()
    }

    /// Filled through `PopulateAhead`, a vector has the pages just past its
    /// length mapped in, none beyond `POPULATE_AHEAD`, and holds what was
    /// written.
    #[test]
    fn populating_ahead_maps_in_pages_just_past_the_length() {
        let mut v: Vec<u8> = Vec::with_capacity(4 * BLOCK);
        let mut ahead = PopulateAhead::default();
        for i in 0..BLOCK {
            ahead.before_push(&mut v);
            v.push((i % 251) as u8);
        }
        ahead.before_push(&mut v);
        let end = v.as_ptr() as usize + v.len();
        let near = resident_pages(end, POPULATE_AHEAD / 2);
        let far = resident_pages(end + POPULATE_AHEAD + 4096, BLOCK);
        let mut probe: Vec<u8> = Vec::with_capacity(1 << 20);
        if !populate(probe.as_mut_ptr() as usize, 1 << 20) {
            eprintln!("MADV_POPULATE_WRITE not supported here; nothing to check");
            return;
        }
        assert!(
            near >= POPULATE_AHEAD / 2 / 4096 - 1,
            "{near} pages resident just past the length"
        );
        assert_eq!(far, 0, "pages resident past POPULATE_AHEAD");
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }
}
