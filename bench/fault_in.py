#!/usr/bin/env python3
"""The machine's cost of fresh memory: one byte written to each page of a
new anonymous mapping, in a new process each time.

    bench/fault_in.py N MB [MB ...]

Prints, per size, the median microseconds per 4 KiB page over N rounds (the
sizes in turn each round, so all see the same minutes) and the range. The
digest faults in about its peak RSS once, so the 76 MB and 1 GB digests'
peaks (about 65 and 740 MB) tell what the scaling line pays for memory
alone: on a VM whose host backs fresh guest memory lazily, a page of a large
mapping can cost several times one of a small mapping.
"""
import statistics
import subprocess
import sys

# Run in a child so that each mapping is a new process's, like a digest's.
TOUCH = """
import mmap, sys, time
n = int(sys.argv[1]) << 20
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
t = time.perf_counter()
m[::4096] = b"\\x01" * (n // 4096)
print((time.perf_counter() - t) / (n // 4096) * 1e6)
"""


def per_page_us(mb):
    out = subprocess.run([sys.executable, "-c", TOUCH, str(mb)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout)


def measure(n, sizes):
    """Microseconds per page of each size's N runs, the sizes in turn."""
    got = {mb: [] for mb in sizes}
    for _ in range(n):
        for mb in sizes:
            got[mb].append(per_page_us(mb))
    return got


def main():
    n, sizes = int(sys.argv[1]), [int(a) for a in sys.argv[2:]]
    got = measure(n, sizes)
    for mb in sizes:
        print(f"{mb} {statistics.median(got[mb]):.2f} {min(got[mb]):.2f} {max(got[mb]):.2f}")


if __name__ == "__main__":
    main()
