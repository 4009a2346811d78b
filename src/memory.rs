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
