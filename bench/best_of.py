#!/usr/bin/env python3
"""Best of N runs of a command: prints "WALL_S PEAK_KB".

    bench/best_of.py N COMMAND [ARGS...]

The wall time is the fastest of N runs, taken with a monotonic clock to the
millisecond (GNU time's %e rounds to 10 ms, 6 % of a 0.16 s digest). The
peak RSS comes from one more run under GNU time: a child's rusage here
would also count this Python process's own pages, which it starts with
(about 14 MB). The command's output is discarded.

One untimed run comes first, as hyperfine's `--warmup`: on a VM that hands
freed memory back to its host, the first large run after a pause pays for
the host to supply its memory again (one SYNTHETIC 1 GB digest took 3.7 s,
2.9 s of it in the kernel, against 1.3-1.9 s for the runs after it), and
best of N then depends on how long that lasts rather than on the command.
"""
import os
import subprocess
import sys
import tempfile
import time


def run(command):
    """Run the command quietly; a failed run must not be timed as a fast one."""
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"best_of.py: {' '.join(command)} exited {done.returncode}")


def wall(command):
    start = time.perf_counter()
    run(command)
    return time.perf_counter() - start


def peak_kb(command):
    with tempfile.NamedTemporaryFile("r") as out:
        run(["/usr/bin/time", "-f", "%M", "-o", out.name, *command])
        return int(out.read().split()[-1])


def main():
    n, command = int(sys.argv[1]), sys.argv[2:]
    run(command)
    best = min(wall(command) for _ in range(n))
    print(f"{best:.3f} {peak_kb(command)}")


if __name__ == "__main__":
    main()
