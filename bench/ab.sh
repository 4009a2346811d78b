#!/usr/bin/env bash
# Two builds of nsys-digest side by side, runs alternating, so both see the
# same machine: this VM's speed drifts by ±20 % within an hour, more than
# most changes are worth, and which of the two runs first moves it too.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [N]
#
# Needs the inputs bench/compare.sh writes under
# ${BENCH_DIR:-/tmp/nsight-digest-bench}: the 76 MB export, the SYNTHETIC
# 1 GB export and the folder of 8 profiles. Prints, per build: best and
# median wall time at both sizes, the scaling ratio, peak RSS, page faults,
# system time, CPU time and the core time left idle (2 × wall − CPU: how
# much of the two cores' time neither used) at 1 GB; then the folder
# speed-up, 2 threads vs 1, over 3N alternating runs of each.
set -euo pipefail
OLD=$1
NEW=$2
N=${3:-5}
WORK=${BENCH_DIR:-/tmp/nsight-digest-bench}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Which build runs first swaps every round (old new, new old, ...), so that
# neither always holds the same place: in the sets of runs 242-249 the build
# that always ran first had the slower 1 GB median, whichever it was.
order() { if [ $(($1 % 2)) -eq 1 ]; then echo old new; else echo new old; fi; }
for round in $(seq "$N"); do
  for b in $(order "$round"); do
    bin=$OLD; [ "$b" = new ] && bin=$NEW
    for _ in 1 2; do
      /usr/bin/time -f "%e %M %U %S %R" -a -o "$OUT/$b.small" "$bin" "$WORK/llama32.sqlite" > /dev/null 2>&1
    done
    /usr/bin/time -f "%e %M %U %S %R" -a -o "$OUT/$b.big" "$bin" "$WORK/synthetic_1gb.sqlite" > /dev/null 2>&1
  done
done
for round in $(seq $((3 * N))); do
  for b in $(order "$round"); do
    bin=$OLD; [ "$b" = new ] && bin=$NEW
    for t in 1 2; do
      RAYON_NUM_THREADS=$t /usr/bin/time -f "%e" -a -o "$OUT/$b.folder$t" "$bin" --quiet "$WORK/batch" > /dev/null 2>&1
    done
  done
done

python3 - "$OUT" <<'PY'
import statistics, sys
out = sys.argv[1]
def rows(name):
    return [list(map(float, l.split())) for l in open(f"{out}/{name}")]
for b in ("old", "new"):
    small, big = rows(f"{b}.small"), rows(f"{b}.big")
    s = [r[0] for r in small]; g = [r[0] for r in big]
    med = lambda col: statistics.median(r[col] for r in big)
    cpu = statistics.median(r[2] + r[3] for r in big)
    idle = statistics.median(2 * r[0] - r[2] - r[3] for r in big)
    one = [r[0] for r in rows(f"{b}.folder1")]; two = [r[0] for r in rows(f"{b}.folder2")]
    print(f"{b}: 76 MB best {min(s):.3f} s (median {statistics.median(s):.3f}) | "
          f"1 GB best {min(g):.3f} s (median {statistics.median(g):.3f}), "
          f"{max(r[1] for r in big) / 1024:.0f} MB, {med(4):.0f} faults, sys {med(3):.2f} s, "
          f"CPU {cpu:.2f} s, idle {idle:.2f} s | "
          f"scaling {min(g) / min(s):.1f}× | folder 2 vs 1 thread: best {min(one) / min(two):.2f}×, "
          f"median {statistics.median(one) / statistics.median(two):.2f}×")
PY
