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

/// Map in the pages of a vector's spare capacity before it is filled;
/// true when the kernel took the advice.
///
/// The big row vectors are sized once and then written front to back, so
/// every page of them would fault in on its own, while two reader threads
/// fault into the same heap. One call for all of them
/// (`MADV_POPULATE_WRITE`, Linux 5.14) cut the SYNTHETIC 1 GB digest's
/// median system time from 1.75 to 1.00, 1.01 to 0.86 and 1.03 to 0.96 s
/// in three alternating sets. It never changes the memory's contents;
/// where the kernel lacks it, the pages fault in as before.
pub fn populate_spare_capacity<T>(v: &mut Vec<T>) -> bool {
    #[cfg(target_os = "linux")]
    {
        let spare = v.spare_capacity_mut();
        let bytes = std::mem::size_of_val(spare);
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let Ok(page) = usize::try_from(page) else {
            return false;
        };
        if page == 0 || bytes < 2 * page {
            return false;
        }
        let start = spare.as_mut_ptr() as usize;
        let first = start.next_multiple_of(page);
        let end = (start + bytes) / page * page;
        // SAFETY: the range lies inside memory this vector owns; the
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
        let _ = v;
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    //! The settings change the whole process, so each case runs in a child
    //! copy of this test binary.
    use super::{populate_spare_capacity, reuse_freed_memory, share_one_heap};
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

    /// Page faults of this thread only: other tests run beside this one.
    fn thread_minor_faults() -> i64 {
        // SAFETY: getrusage writes into the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        usage.ru_minflt
    }

    /// Populated capacity is filled without a fault per page, and what the
    /// vector already held is left as it was.
    #[test]
    fn populated_capacity_fills_without_faults() {
        let pages = BLOCK / 4096;
        let mut v: Vec<u8> = Vec::with_capacity(BLOCK);
        v.extend((0..4096 * 3).map(|i| (i % 251) as u8));
        if !populate_spare_capacity(&mut v) {
            eprintln!("MADV_POPULATE_WRITE not supported here; nothing to check");
            return;
        }
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        let before = thread_minor_faults();
        v.resize(BLOCK, 7);
        let faults = thread_minor_faults() - before;
        assert!(
            faults < (pages / 10) as i64,
            "{faults} faults filling {pages} populated pages"
        );
        assert!(
            !populate_spare_capacity(&mut v),
            "a full vector has no spare pages"
        );
    }
}
