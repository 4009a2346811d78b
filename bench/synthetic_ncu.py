#!/usr/bin/env python3
"""Make a SYNTHETIC, larger ncu details-page CSV by replicating a real one.

    synthetic_ncu.py SOURCE.csv[.gz] OUT.csv TARGET_MB

The launch rows are repeated with shifted IDs until the file reaches
TARGET_MB. Not a real profile: it exists to measure streaming speed and
memory.
"""
import gzip, os, sys

src, out, target_mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
opener = gzip.open if src.endswith(".gz") else open
with opener(src, "rt", encoding="utf-8", errors="replace") as f:
    lines = f.read().splitlines()
header, body = lines[0], lines[1:]
ids = sorted({int(l.split('","', 1)[0].strip('"').replace(",", "")) for l in body})
stride = ids[-1] + 1
target = target_mb * 1e6
with open(out, "w") as g:
    g.write(header + "\n")
    k = 0
    while g.tell() < target:
        for l in body:
            head, rest = l.split('","', 1)
            g.write(f'"{int(head.strip(chr(34)).replace(",", "")) + k * stride}","{rest}\n')
        k += 1
print(f"{out}: {os.path.getsize(out) / 1e6:.0f} MB (SYNTHETIC: {k} copies of {src})")
