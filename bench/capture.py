"""QuickCapture benchmark: add-note latency with 10k notes stored, search latency per mode at 100k notes.

Prints medians and p95 over many calls, the store's size on disk, and ratios to baselines measured in the
same run:
  - add: the embedding of one new note alone (what the rest of the pipeline costs on top of it);
  - semantic search: an exact numpy scan over every stored vector (what FAISS saves);
  - keyword search: a SQLite `LIKE` scan over every body (what FTS5 saves).

The first 10k notes are embedded for real with `core.embed`. The next 90k (to reach 100k) get vectors
composed from real word embeddings (the normalised mean of their words' MiniLM vectors): embedding 90k texts
would take most of an hour on two cores, and the index and search cost do not depend on how a vector was made.
Torch and FAISS use one thread (`--threads`), as `mlp capture serve` does.

Usage: python bench/capture.py [--quick] [--add-notes 10000] [--search-notes 100000] [--queries 200]
"""
import argparse, os, random, re, sys, tempfile, time
from pathlib import Path

import numpy as np

os.environ.setdefault('MLP_HOME', tempfile.mkdtemp(prefix='capture-bench-'))
os.environ.setdefault('MLP_PROGRESS', 'false')
_t = sys.argv[sys.argv.index('--threads') + 1] if '--threads' in sys.argv else '1'
os.environ['OMP_NUM_THREADS'] = _t   # before torch loads: one thread never spin-waits on a shared machine


def pct(xs, q): return float(np.percentile(np.asarray(xs) * 1000, q))


def row(name, xs, base=None, cpu=None):
    "One line: wall p50/p95 (and CPU-time p50 when given: it barely moves when other work shares the machine)."
    p50, p95 = pct(xs, 50), pct(xs, 95)
    s = f'{name:<34} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms'
    if cpu is not None: s += f'   cpu p50 {pct(cpu, 50):7.2f} ms'
    if base is not None: s += f'   p50 ratio to baseline {p50 / pct(base, 50):6.3f}'
    print(s, flush=True)
    return p50, p95

class clock:
    "Wall and CPU time of a block, appended to two lists."
    def __init__(self, wall, cpu): self.wall, self.cpu = wall, cpu
    def __enter__(self): self.t, self.c = time.perf_counter(), time.process_time()
    def __exit__(self, *e):
        self.wall.append(time.perf_counter() - self.t); self.cpu.append(time.process_time() - self.c)


def vocabulary() -> list[str]:
    "Real words from the packaged ontology and evaluation notes."
    from mlportfolio.core.resources import resource_path
    text = resource_path('capture/ontology.yaml').read_text() + resource_path('capture/eval_notes.jsonl').read_text()
    words = sorted({w.lower() for w in re.findall(r'[A-Za-z]{3,}', text)} - {'label', 'text', 'examples', 'description', 'threshold', 'parent'})
    return words


def make_text(rng: random.Random, words: list[str], i: int) -> str:
    tags = ', '.join(rng.sample(words[:80], 2))
    return f"{tags}: {' '.join(rng.choices(words, k=rng.randint(6, 14)))} n{i}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--add-notes', type=int, default=10_000)
    ap.add_argument('--search-notes', type=int, default=100_000)
    ap.add_argument('--queries', type=int, default=200)
    ap.add_argument('--threads', type=int, default=1, help='torch/OpenMP threads (default 1, as the server uses)')
    ap.add_argument('--quick', action='store_true', help='1k / 5k notes, 50 queries: checks the script runs')
    a = ap.parse_args()
    if a.quick: a.add_notes, a.search_notes, a.queries = 1_000, 5_000, 50
    import torch
    from mlportfolio.core.embed import encode
    from mlportfolio.capture.parse import parse_note
    from mlportfolio.capture.service import QuickCapture, set_torch_threads
    print(f'machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, cuda {torch.cuda.is_available()}; '
          f'MLP_HOME={os.environ["MLP_HOME"]}', flush=True)
    rng = random.Random(0)
    words = vocabulary()
    qc = QuickCapture(save_every=5_000, hnsw_threshold=min(50_000, a.search_notes // 2))
    qc.router

    # --- 1. fill to --add-notes with real embeddings (bulk path)
    t = time.perf_counter()
    texts = [make_text(rng, words, i) for i in range(a.add_notes)]
    qc.add_many(texts)
    print(f'bulk import of {a.add_notes:,} notes (real embeddings): {time.perf_counter() - t:.1f} s '
          f'({a.add_notes / (time.perf_counter() - t):.0f} notes/s)', flush=True)

    # --- 2. add latency at --add-notes stored, embedding included, one torch thread
    n = a.queries
    new = [make_text(rng, words, 10_000_000 + i) + f' unique{rng.getrandbits(40)}' for i in range(2 * n)]
    for t_ in new[:5]: qc.add(t_)                 # warm up
    add_t, emb_t, add_c, emb_c = [], [], [], []
    for t_ in new[5:n + 5]:
        with clock(add_t, add_c): qc.add(t_)
    for t_ in new[n + 5:]:
        with clock(emb_t, emb_c): encode([parse_note(t_).text_for_embedding], progress=False)
    print(f'\n== add with {qc.store.count():,} notes stored ({qc.store.index.kind} index); load average {os.getloadavg()[0]:.1f}')
    row('baseline: embed one new note', emb_t, cpu=emb_c)
    add = row('add note (parse+embed+route+store)', add_t, emb_t, cpu=add_c)

    # --- 3. grow to --search-notes with composed vectors
    extra = a.search_notes - qc.store.count()
    t = time.perf_counter()
    wv = dict(zip(words, encode(words, progress=False)))
    items = []
    for i in range(extra):
        txt = make_text(rng, words, 20_000_000 + i)
        note = parse_note(txt)
        v = np.mean([wv[w] for w in note.body.split() if w in wv], axis=0)
        v /= np.linalg.norm(v)
        items.append((note, None, v.astype(np.float32), None))
    qc.store.add_many(items, batch=5_000)
    qc.store.save_index()
    print(f'\ngrew to {qc.store.count():,} notes with composed vectors in {time.perf_counter() - t:.1f} s; '
          f'index {qc.store.index.kind}; store on disk {qc.size_on_disk() / 1e6:.1f} MB '
          f'({qc.size_on_disk() / qc.store.count():.0f} bytes per note)', flush=True)

    # --- 4. search latency per mode at --search-notes
    def qset(): return [' '.join(rng.sample(words, 3)) + f' {rng.choice(words)} q{rng.getrandbits(30)}' for _ in range(n)]
    queries = qset()   # a fresh set per measurement, so no query embedding comes from the cache
    for q in qset()[:5]: qc.search(q, mode='hybrid')
    res = {}
    print(f'\n== search at {qc.store.count():,} notes, k=10, {n} distinct queries (query embedding included)')
    ids, vecs = qc.store._vectors()
    base_sem, base_kw, bs_c, bk_c = [], [], [], []
    for q in qset()[:max(20, n // 5)]:
        with clock(base_sem, bs_c):
            qv = encode([q], progress=False)[0]
            np.argpartition(-(vecs @ qv), 10)[:10]
    for q in queries[:max(10, n // 20)]:
        with clock(base_kw, bk_c):
            qc.store.conn.execute('SELECT id FROM notes WHERE body LIKE ? LIMIT 10', (f'%{q.split()[0]}%{q.split()[1]}%',)).fetchall()
    print(f'load average {os.getloadavg()[0]:.1f}')
    row('baseline: numpy exact scan + embed', base_sem, cpu=bs_c)
    row('baseline: SQLite LIKE scan', base_kw, cpu=bk_c)
    for mode, base in (('keyword', base_kw), ('semantic', base_sem), ('hybrid', base_sem)):
        ts, cs = [], []
        for q in qset():
            with clock(ts, cs): qc.search(q, mode=mode, k=10)
        res[mode] = row(f'search {mode}', ts, base, cpu=cs)
    queries = qset()
    # recall of the (HNSW) index against the exact scan
    hits = 0
    for q in queries[:50]:
        qv = encode([q], progress=False)[0]
        exact = set(ids[np.argsort(-(vecs @ qv))[:10]].tolist())
        got = {i for i, _ in qc.store.index.search(qv, 10)[0]}
        hits += len(exact & got)
    print(f'{qc.store.index.kind} recall@10 against the exact scan: {hits / (50 * 10):.3f}')
    print(f'\nsummary: add p50 {add[0]:.1f} ms p95 {add[1]:.1f} ms at {a.add_notes:,} notes; search p95 at {qc.store.count():,} notes: '
          + ', '.join(f'{m} {v[1]:.1f} ms' for m, v in res.items()) + f'; store {qc.size_on_disk() / 1e6:.0f} MB')
    qc.close()


if __name__ == '__main__':
    main()
