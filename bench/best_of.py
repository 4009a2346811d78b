#!/usr/bin/env python3
"""Best of N runs of a command: prints "WALL_S PEAK_KB" for the fastest run.

    bench/best_of.py N COMMAND [ARGS...]

Wall time is taken with a monotonic clock, to the millisecond (GNU time's
%e rounds to 10 ms, 6 % of a 0.16 s digest), and the peak RSS is that one
run's, from wait4. The command's output is discarded.
"""
import os
import subprocess
import sys
import time


def one_run(command):
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux.
    return wall, usage.ru_maxrss


def main():
    n, command = int(sys.argv[1]), sys.argv[2:]
    wall, peak = min(one_run(command) for _ in range(n))
    print(f"{wall:.3f} {peak}")


if __name__ == "__main__":
    main()
