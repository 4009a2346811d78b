#!/usr/bin/env python3
"""How the digest's cost grows with rows: one export at several sizes, per copy.

    bench/linearity.py DIGEST ROUNDS FILE:COPIES [FILE:COPIES ...]

Each FILE is the same export replicated COPIES times (`synthetic_nsys.py`);
the first should be the original (COPIES 1). The sizes run in turn, ROUNDS
times, so all see the same minutes. Printed per size: wall best and median,
CPU median (user + system, from the children's rusage), and each divided by
COPIES and by the first size's value. 1.00 everywhere is a cost exactly
linear in the rows. A second table gives each size's median system time and
page faults: on a VM whose host backs fresh guest memory lazily, the time a
page fault costs moves several-fold between runs, and the biggest size,
which faults in the most memory, feels it most.
"""
import os
import resource
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from best_of import wall as timed_wall  # noqa: E402  (fails loudly, like best_of)


class Runs:
    """Per path, one list per measure: wall, CPU and system seconds, and
    minor page faults, from the children's rusage."""

    def __init__(self, paths):
        self.wall, self.cpu, self.system, self.faults = (
            {path: [] for path in paths} for _ in range(4))


def run(digest, path, runs):
    """One digest of `path`, its measures appended to `runs`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed_wall([digest, path])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    system = after.ru_stime - before.ru_stime
    runs.wall[path].append(wall)
    runs.cpu[path].append(after.ru_utime - before.ru_utime + system)
    runs.system[path].append(system)
    runs.faults[path].append(after.ru_minflt - before.ru_minflt)


def measure(digest, rounds, paths):
    """Each path's runs, the paths in turn each round."""
    runs = Runs(paths)
    for _ in range(rounds):
        for path in paths:
            run(digest, path, runs)
    return runs


def fault_cost(runs, path):
    """Median system seconds and page faults of `path`'s runs, and each
    run's system microseconds per fault."""
    per_fault = [t / f * 1e6 for t, f in zip(runs.system[path], runs.faults[path]) if f]
    return statistics.median(runs.system[path]), statistics.median(runs.faults[path]), per_fault


def kernel_rows(runs, names):
    """Markdown rows: per path, median system time and faults, the system
    time per fault (median and range over the runs) and its share of CPU."""
    rows = []
    for path, name in zip(runs.wall, names):
        system, faults, per_fault = fault_cost(runs, path)
        share = statistics.median(s / c for s, c in zip(runs.system[path], runs.cpu[path]) if c)
        rows.append(
            f"| {name} | {system:.3f} s | {faults:.0f} "
            f"| {statistics.median(per_fault):.2f} µs ({min(per_fault):.2f}–{max(per_fault):.2f}) "
            f"| {share * 100:.0f} % |")
    return rows


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
    runs = measure(digest, rounds, [path for path, _ in sizes])
    walls, cpus = runs.wall, runs.cpu
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
    print()
    print("| copies | system time, median | page faults, median | system time per fault | system share of CPU |")
    print("|---|---|---|---|---|")
    print("\n".join(kernel_rows(runs, [str(c) for _, c in sizes])))


if __name__ == "__main__":
    main()
