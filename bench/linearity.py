#!/usr/bin/env python3
"""How the digest's cost grows with rows: one export at several sizes, per copy.

    bench/linearity.py DIGEST ROUNDS FILE:COPIES [FILE:COPIES ...]

Each FILE is the same export replicated COPIES times (`synthetic_nsys.py`);
the first should be the original (COPIES 1). The sizes run in turn, ROUNDS
times, so all see the same minutes. Printed per size: wall best and median,
CPU median (user + system, from the children's rusage), and each divided by
COPIES and by the first size's value. 1.00 everywhere is a cost exactly
linear in the rows.
"""
import os
import resource
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from best_of import wall as timed_wall  # noqa: E402  (fails loudly, like best_of)


def run(digest, path):
    """Wall and CPU seconds of one digest, CPU from the children's rusage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed_wall([digest, path])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def measure(digest, rounds, paths):
    """Wall and CPU seconds of each path's runs, the paths in turn each round."""
    walls = {path: [] for path in paths}
    cpus = {path: [] for path in paths}
    for _ in range(rounds):
        for path in paths:
            wall, cpu = run(digest, path)
            walls[path].append(wall)
            cpus[path].append(cpu)
    return walls, cpus


def back_to_back(digest, rounds, small, big, copies):
    """Per round, one run of `big` and the mean of `copies` runs of `small`
    back to back: both sides then last about as long and meet the same
    minutes, where a single short run is more often wholly lucky."""
    bigs, smalls = [], []
    for _ in range(rounds):
        bigs.append(timed_wall([digest, big]))
        smalls.append(sum(timed_wall([digest, small]) for _ in range(copies)) / copies)
    return bigs, smalls


def main():
    digest, rounds = sys.argv[1], int(sys.argv[2])
    sizes = [(path, int(copies)) for path, copies in (a.rsplit(":", 1) for a in sys.argv[3:])]
    walls, cpus = measure(digest, rounds, [path for path, _ in sizes])
    base, base_copies = sizes[0]
    ref = [f(v[base]) / base_copies for f, v in
           ((min, walls), (statistics.median, walls), (statistics.median, cpus))]
    print("| copies | wall best | wall median | CPU median | per copy ÷ first: best | median | CPU |")
    print("|---|---|---|---|---|---|---|")
    for path, copies in sizes:
        got = [f(v[path]) for f, v in
               ((min, walls), (statistics.median, walls), (statistics.median, cpus))]
        per = " | ".join(f"{g / copies / r:.2f}" for g, r in zip(got, ref))
        print(f"| {copies} | {got[0]:.3f} s | {got[1]:.3f} s | {got[2]:.3f} s | {per} |")


if __name__ == "__main__":
    main()
