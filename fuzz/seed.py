#!/usr/bin/env python3
"""Seed corpora for the fuzz targets from the committed samples.

nsys_sqlite: a committed export trimmed to a few rows per table and vacuumed
(about 100 KB), so mutations reach the reports quickly. ncu_csv: the first
rows of each committed ncu CSV. names: real NVTX range names.
"""
import gzip, os, shutil, sqlite3, sys, tempfile

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
corpus = os.path.join(root, "fuzz", "corpus")

def trimmed_export():
    out = os.path.join(corpus, "nsys_sqlite")
    os.makedirs(out, exist_ok=True)
    src = os.path.join(root, "samples", "h200_llama8_graphs_node_1step.sqlite.gz")
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "s.sqlite")
        with gzip.open(src) as f, open(db, "wb") as g:
            shutil.copyfileobj(f, g)
        con = sqlite3.connect(db)
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        for t in tables:
            if t.startswith("ENUM_") or t in ("META_DATA_EXPORT", "META_DATA_CAPTURE", "TARGET_INFO_GPU"):
                continue
            con.execute(f'DELETE FROM "{t}" WHERE rowid > 40')
        con.commit()
        con.execute("VACUUM")
        con.close()
        shutil.copy(db, os.path.join(out, "trimmed.sqlite"))

def csv_heads():
    out = os.path.join(corpus, "ncu_csv")
    os.makedirs(out, exist_ok=True)
    d = os.path.join(root, "samples", "ncu")
    for name in sorted(os.listdir(d)):
        with gzip.open(os.path.join(d, name), "rt", errors="replace") as f:
            lines = [next(f, "") for _ in range(40)]
        with open(os.path.join(out, name.replace(".gz", "")), "w") as g:
            g.write("".join(lines)[:20000])

def names():
    out = os.path.join(corpus, "names")
    os.makedirs(out, exist_ok=True)
    for i, text in enumerate([
        "execute_context_8(4096)_generation_0(0)", "model.layers.17.self_attn",
        "[Executor] _forward_step 3: 0 ctx reqs, 8 gen reqs", "execute_new_2_cached_6",
        "{'Module': 'model.layers.0.mlp', 'Inputs': []}", "blocks[7].ffn", "layer_12",
        '13221  "<default domain>:step:none:none:none:none:none:none" ',
    ]):
        with open(os.path.join(out, f"seed{i}"), "w") as g:
            g.write(text)

trimmed_export(); csv_heads(); names()
print("seeded", corpus)
