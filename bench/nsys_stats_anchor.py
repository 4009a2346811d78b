"""Whole-process timings against `nsys stats`, for a machine that has it.

    NSYS=/path/to/nsys python3 bench/nsys_stats_anchor.py EXPORT.sqlite[.gz] [ROUNDS]

Times, alternating in ROUNDS rounds (default 3): nsys-digest's default
digest (3 runs a round), `nsys stats` with the four reports
bench/compare.sh uses (1 run), `nsys stats` with cuda_gpu_kern_sum and
nvtx_gpu_proj_sum (1 run), and a raw scan of the kernel, runtime and NVTX
tables through Python's sqlite3 module (3 runs). Prints best and median of
each and nsys-digest's best as a ratio of each best. NSYS_DIGEST names the
binary (default target/release/nsys-digest). A .gz export is inflated into
the temp folder first, since nsys stats reads only .sqlite. With
NSYS_STATS_CSV_DIR set, nsys stats writes its CSVs there (four_*.csv,
two_*.csv) instead of into the temp folder, to compare with the digest.
"""
import gzip, os, shutil, statistics, subprocess, sys, tempfile, time

export = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
nsys = os.environ.get("NSYS", "nsys")
digest = os.environ.get("NSYS_DIGEST", "target/release/nsys-digest")
work = tempfile.mkdtemp(prefix="nsys-stats-anchor-")
csv_dir = os.environ.get("NSYS_STATS_CSV_DIR", work)
db = export
if export.endswith(".gz"):
    db = os.path.join(work, "export.sqlite")
    with gzip.open(export) as f, open(db, "wb") as g:
        shutil.copyfileobj(f, g)
SCAN = (
    "select count(*), total(end-start), total(deviceId), total(correlationId), total(globalPid), total(demangledName) from CUPTI_ACTIVITY_KIND_KERNEL;"
    "select total(end-start), total(globalTid), total(correlationId), total(nameId) from CUPTI_ACTIVITY_KIND_RUNTIME;"
    "select total(end), count(text) from NVTX_EVENTS"
)
stats = [nsys, "stats", "--format", "csv", "--force-overwrite", "true"]
runs = {
    "nsys-digest, default digest": ([digest, db], 3),
    "nsys stats cuda_gpu_kern_sum,nvtx_kern_sum,cuda_kern_exec_sum,cuda_api_sum": (
        stats + ["--report", "cuda_gpu_kern_sum,nvtx_kern_sum,cuda_kern_exec_sum,cuda_api_sum", "--output", os.path.join(csv_dir, "four"), db],
        1,
    ),
    "nsys stats cuda_gpu_kern_sum,nvtx_gpu_proj_sum": (
        stats + ["--report", "cuda_gpu_kern_sum,nvtx_gpu_proj_sum", "--output", os.path.join(csv_dir, "two"), db],
        1,
    ),
    "Python sqlite3 scan of the three tables": (
        [sys.executable, "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [c.execute(q).fetchall() for q in sys.argv[2].split(';')]", db, SCAN],
        3,
    ),
}
print("cores:", os.cpu_count())
print(subprocess.run([nsys, "--version"], capture_output=True, text=True).stdout.strip())
times = {name: [] for name in runs}
for _ in range(rounds):
    for name, (cmd, repeat) in runs.items():
        for _ in range(repeat):
            start = time.perf_counter()
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            times[name].append(time.perf_counter() - start)
            if done.returncode:
                sys.exit(f"{name} failed ({done.returncode}): {done.stderr[-800:]}")
ours = min(times["nsys-digest, default digest"])
for name, t in times.items():
    print(f"{name}: best {min(t):.3f} s, median {statistics.median(t):.3f} s ({len(t)} runs); nsys-digest's best is {ours / min(t):.3f}× of it")
shutil.rmtree(work)
