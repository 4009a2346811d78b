#!/usr/bin/env python3
"""Make a SYNTHETIC, larger nsys export by replicating a real one.

    synthetic_nsys.py SOURCE.sqlite[.gz] OUT.sqlite TARGET_MB

Every row of the kernel, runtime, NVTX, memcpy and memset tables is copied
k times, each copy shifted by k x the capture span in time and by
k x (max correlationId + 1) in correlation id, so copies never overlap and
every kernel still joins its own launch. The result is not a real profile:
it exists only to measure how cost grows with rows. Tables are written
without indexes, as nsys writes them.
"""
import gzip, os, shutil, sqlite3, sys

src, out, target_mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
if src.endswith(".gz"):
    with gzip.open(src) as f, open(out, "wb") as g:
        shutil.copyfileobj(f, g)
else:
    shutil.copy(src, out)

con = sqlite3.connect(out)
tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
grow = [t for t in ["CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_RUNTIME", "NVTX_EVENTS",
                    "CUPTI_ACTIVITY_KIND_MEMCPY", "CUPTI_ACTIVITY_KIND_MEMSET"] if t in tables]
lo, hi = con.execute("select min(start), max(end) from CUPTI_ACTIVITY_KIND_RUNTIME").fetchone()
span = hi - lo + 1_000_000
corr = con.execute("select max(correlationId) from CUPTI_ACTIVITY_KIND_RUNTIME").fetchone()[0] + 1
cols = {t: [r[1] for r in con.execute(f'pragma table_info("{t}")')] for t in grow}
base_rows = {t: con.execute(f'select max(rowid) from "{t}"').fetchone()[0] for t in grow}
size_mb = os.path.getsize(out) / 1e6
copies = max(0, int(round(target_mb / size_mb)) - 1)
for k in range(1, copies + 1):
    for t in grow:
        exprs = []
        for c in cols[t]:
            if c in ("start", "end"):
                exprs.append(f'"{c}" + {k * span}')
            elif c == "correlationId":
                exprs.append(f'"{c}" + {k * corr}')
            else:
                exprs.append(f'"{c}"')
        con.execute(f'insert into "{t}" ({",".join(chr(34) + c + chr(34) for c in cols[t])}) '
                    f'select {",".join(exprs)} from "{t}" where rowid <= {base_rows[t]}')
    con.commit()
    print(f"copy {k}/{copies}", file=sys.stderr)
con.execute("update ANALYSIS_DETAILS set stopTime = stopTime + ?", ((copies) * span,)) if "ANALYSIS_DETAILS" in tables else None
con.commit()
con.close()
print(f"{out}: {os.path.getsize(out) / 1e6:.0f} MB (SYNTHETIC: {copies + 1} copies of {src})")
