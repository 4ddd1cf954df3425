"""QuickCapture benchmark: add-note latency with 10k notes stored, search latency per mode at 100k notes, and the
recall/latency curve of the vector index settings at 100k notes.

Every note is embedded for real: the 100k notes go through MiniLM (`core.embed`, backend `--backend`, default
`onnx-int8`) once, in batches, and their vectors stay in the embedding cache under the bench's own home (`--home`,
default /tmp/mlp-bench-capture; the int8 ONNX export is cached there too), so a re-run only looks them up. The
embedding is bounded (`--embed-budget-min`): when the budget runs out the script stops, keeping what it embedded,
and the next run goes on from there. The note store itself is rebuilt from those vectors on each run
(`<home>/store`, through `QuickCapture.add_many`, as an import does).

Prints medians and p95 over many calls, the store's size on disk, the load average, and ratios measured in the
same run:
  - add: the embedding of one new note alone (what the rest of the pipeline costs on top of it);
  - search: the embedding of the query alone (what the index, SQLite and the fusion cost on top of it), measured
    interleaved with the searches, one fresh query per call (no query embedding comes from the cache);
  - semantic search: also an exact numpy scan over every stored vector; keyword search: a SQLite `LIKE` scan.
The in-memory keyword index (`capture.bm25.LexicalIndex`, built by `NoteStore.warm_keyword_index` as the API's
start-up does, before the add-latency part so adds keep it current): its build time and memory at the search size,
its top-10 agreement with FTS5's own `bm25()` ranking (`NoteStore.fts5_search`, the SQL path) on fresh queries, and
keyword search p50/p95 from it beside FTS5's, interleaved.
The sweep (`--sweep`) builds each index setting over the same 100k vectors and reports its recall@10 against the
exact scan, its own search time, and semantic and hybrid search p95 with it swapped into the store.
ONNX Runtime, torch and FAISS use one thread (`--threads`), as `mlp capture serve` does.

Usage: python bench/capture.py [--quick] [--embed-only] [--home DIR] [--backend onnx-int8] [--sweep SPECS]
       [--add-notes 10000] [--search-notes 100000] [--queries 200]
Sweep specs, separated by spaces: `flat`, `hnsw:M:efConstruction:efSearch,efSearch,...` (the store's graph: 8-bit codes
of a PCA projection), `hnsw-full:M:efConstruction:efSearch,...` (8-bit codes of every dimension), `ivf:nlist:nprobe,...`.
"""
import argparse, os, random, re, shutil, sys, time
from pathlib import Path

import numpy as np


def _arg(name: str, default: str) -> str:
    "A command-line value needed before the library loads (environment set-up)."
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default

HOME = Path(_arg('--home', '/tmp/mlp-bench-capture')).resolve()
os.environ['MLP_HOME'] = str(HOME)
os.environ['MLP_EMBED_CACHE_DIR'] = str(HOME/'cache'/'embeddings')   # the bench's vectors stay in its own home
os.environ['MLP_EMBED_BACKEND'] = _arg('--backend', 'onnx-int8')
os.environ.setdefault('MLP_PROGRESS', 'false')
_t = _arg('--threads', '1')
os.environ['OMP_NUM_THREADS'] = _t        # before torch/FAISS load: one thread never spin-waits on a shared machine
os.environ['MLP_TORCH_THREADS'] = _t      # torch, and ONNX Runtime's intra-op threads (core.embed reads it)

DEFAULT_SWEEP = 'flat hnsw:32:200:48,64,96,128,192'   # the store's own graph at 100k: no other build


def pct(xs, q): return float(np.percentile(np.asarray(xs) * 1000, q))


def load() -> str: return '{:.1f} {:.1f} {:.1f}'.format(*os.getloadavg())


def row(name, xs, base=None, cpu=None):
    "One line: wall p50/p95 (and CPU-time p50 when given: it barely moves when other work shares the machine)."
    p50, p95 = pct(xs, 50), pct(xs, 95)
    s = f'{name:<36} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms'
    if cpu is not None: s += f'   cpu p50 {pct(cpu, 50):7.2f} ms'
    if base is not None: s += f'   p50 ratio {p50 / pct(base, 50):6.3f}   p95 ratio {p95 / pct(base, 95):6.3f}'
    print(s, flush=True)
    return p50, p95


class clock:
    "Wall and CPU time of a block, appended to two lists."
    def __init__(self, wall, cpu=None): self.wall, self.cpu = wall, [] if cpu is None else cpu
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


def corpus(n: int, words: list[str]) -> list[str]:
    "The first `n` notes of one fixed corpus (seed 0): a smaller run reuses a bigger run's vectors."
    rng = random.Random(0)
    return [make_text(rng, words, i) for i in range(n)]


def embed_corpus(texts: list[str], budget_s: float, chunk: int = 5_000) -> bool:
    "Embed what the cache lacks, `chunk` notes per batch call (each one cached at once); False when the budget ran out."
    from mlportfolio.core.embed import get_embedder
    from mlportfolio.capture.parse import parse_note
    emb = get_embedder()
    t0, done = time.perf_counter(), 0
    print(f'embedding {len(texts):,} notes with {emb.kind} (cache {emb.cache_dir}); load average {load()}', flush=True)
    for i in range(0, len(texts), chunk):
        if time.perf_counter() - t0 > budget_s:
            print(f'embedding budget of {budget_s / 60:.0f} min spent after {i:,} notes; run again to go on', flush=True)
            return False
        before = emb.stats['misses']
        emb.encode([parse_note(t).text_for_embedding for t in texts[i:i + chunk]], progress=True)
        done += emb.stats['misses'] - before
    dt = time.perf_counter() - t0
    print(f'embedded {done:,} new notes in {dt:.1f} s' + (f' ({done / dt:.0f} notes/s, one thread)' if done else ' (all cached)')
          + f'; load average {load()}', flush=True)
    return True


def add_latency(qc, rng, words, n):
    "Add latency with the store as it is, and the embedding of one note alone as its baseline."
    from mlportfolio.core.embed import encode
    from mlportfolio.capture.parse import parse_note
    new = [make_text(rng, words, 10_000_000 + i) + f' unique{rng.getrandbits(40)}' for i in range(2 * n)]
    for t_ in new[:5]: qc.add(t_)                 # warm up
    add_t, emb_t, add_c, emb_c = [], [], [], []
    for a, b in zip(new[5:n + 5], new[n + 5:]):   # interleaved, so both see the same load
        with clock(add_t, add_c): qc.add(a)
        with clock(emb_t, emb_c): encode([parse_note(b).text_for_embedding], progress=False)
    print(f'\n== add with {qc.store.count():,} notes stored ({qc.store.index.kind} index); load average {load()}')
    row('baseline: embed one new note', emb_t, cpu=emb_c)
    return row('add note (parse+embed+route+store)', add_t, emb_t, cpu=add_c)


def query_set(rng, words, n):
    "`n` distinct queries: a fresh set per measurement, so no query embedding comes from the cache."
    return [' '.join(rng.sample(words, 3)) + f' {rng.choice(words)} q{rng.getrandbits(30)}' for _ in range(n)]


def search_rounds(qc, rng, words, n, modes=('keyword', 'semantic', 'hybrid')):
    "Per round: embed one query alone, then one search per mode, each with a fresh query. Wall and CPU times per name."
    from mlportfolio.core.embed import encode
    t = {m: ([], []) for m in ('embed', *modes)}
    for _ in range(n):
        qs = query_set(rng, words, 1 + len(modes))
        with clock(*t['embed']): encode([qs[0]], progress=False)
        for m, q in zip(modes, qs[1:]):
            with clock(*t[m]): qc.search(q, mode=m, k=10)
    return t


def search_latency(qc, rng, words, n, vecs):
    "Search per mode at the store's size with its default index, against the embedding alone and two scans."
    from mlportfolio.core.embed import encode
    for q in query_set(rng, words, 5): qc.search(q, mode='hybrid')
    print(f'\n== search at {qc.store.count():,} notes ({qc.store.index.kind} index), k=10, {n} rounds of distinct queries '
          f'(query embedding included)')
    base_sem, base_kw, bs_c, bk_c = [], [], [], []
    for q in query_set(rng, words, max(20, n // 5)):
        with clock(base_sem, bs_c):
            qv = encode([q], progress=False)[0]
            np.argpartition(-(vecs @ qv), 10)[:10]
    for q in query_set(rng, words, max(10, n // 20)):
        with clock(base_kw, bk_c):
            qc.store.conn.execute('SELECT id FROM notes WHERE body LIKE ? LIMIT 10', (f'%{q.split()[0]}%{q.split()[1]}%',)).fetchall()
    from mlportfolio.core.embed import get_embedder
    hits0 = get_embedder().stats['hits']
    t = search_rounds(qc, rng, words, n)
    print(f'load average {load()}; query embeddings served from the embedding cache during the rounds: '
          f"{get_embedder().stats['hits'] - hits0} (0 expected: every query is new)")
    row('baseline: numpy exact scan + embed', base_sem, cpu=bs_c)
    row('baseline: SQLite LIKE scan', base_kw, cpu=bk_c)
    row('baseline: embed the query alone', t['embed'][0], cpu=t['embed'][1])
    res = {'keyword': row('search keyword', t['keyword'][0], base_kw, cpu=t['keyword'][1])}
    for m in ('semantic', 'hybrid'): res[m] = row(f'search {m}', t[m][0], t['embed'][0], cpu=t[m][1])
    return res


def keyword_index(qc, rng, words, n):
    "The in-memory keyword index at the store's size: build time and memory, top-10 agreement with FTS5, and both latencies."
    import tracemalloc
    from mlportfolio.capture.bm25 import LexicalIndex, query_terms
    st = qc.store
    t = time.perf_counter(); LexicalIndex().build(st.conn); build_s = time.perf_counter() - t
    tracemalloc.start(); fresh = LexicalIndex().build(st.conn); held = tracemalloc.get_traced_memory()[0]; tracemalloc.stop()
    del fresh
    lex = st.warm_keyword_index()
    qs = query_set(rng, words, n)
    same = sum(st.keyword_search(q, 10) == st.fts5_search(q, 10) for q in qs)   # ids, order and scores, compared exactly
    same_ids = sum([i for i, _ in st.keyword_search(q, 10)] == [i for i, _ in st.fts5_search(q, 10)] for q in qs)
    matches = [lex.count(query_terms(q)) for q in qs[:50]]
    kw, kw_c, f5, f5_c = [], [], [], []
    for a_, b_ in zip(query_set(rng, words, n), query_set(rng, words, n)):   # interleaved, fresh queries
        with clock(kw, kw_c): st.keyword_search(a_, 10)
        with clock(f5, f5_c): st.fts5_search(b_, 10)
    print(f'\n== in-memory keyword index at {st.count():,} notes; load average {load()}')
    print(f'build {build_s:.2f} s; memory {held / 1e6:.1f} MB held after a build (tracemalloc), {lex.nbytes() / 1e6:.1f} MB by its own count; '
          f'{len(lex.terms):,} terms; matches per query p50 {np.median(matches):.0f}')
    print(f'top-10 identical to FTS5 bm25 (ids, order, scores exactly): {same}/{len(qs)} queries; same ids in the same order: {same_ids}/{len(qs)}')
    row('keyword search, FTS5 (SQL path)', f5, cpu=f5_c)
    r = row('keyword search, in-memory index', kw, f5, cpu=kw_c)
    return dict(build_s=build_s, mb=held / 1e6, same=same, n=len(qs), p50=r[0], p95=r[1], fts5_p50=pct(f5, 50), fts5_p95=pct(f5, 95))


def exact_top10(Q, ids, vecs) -> list[set]:
    "The ids of the 10 best inner products of each query row, by an exact numpy scan."
    return [set(ids[r].tolist()) for r in np.argpartition(-(Q @ vecs.T), 10, axis=1)[:, :10]]


def recall_at_10(index, Q, exact: list[set]) -> float:
    "Mean share of the exact top 10 that the index's top 10 finds."
    return float(np.mean([len(e & {i for i, _ in g}) / 10 for e, g in zip(exact, index.search(Q, 10))]))


def make_index(spec: str, ids, vecs, ef: int | None = None):
    "A `VectorIndex` over `ids`/`vecs` for one sweep setting (`flat`, `hnsw:M:efC`, `hnsw-full:M:efC`, `ivf:nlist`), and its build time."
    import faiss
    from mlportfolio.capture.store import VectorIndex
    parts, t = spec.split(':'), time.perf_counter()
    if parts[0] == 'ivf':
        nlist = int(parts[1])
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(vecs.shape[1]), vecs.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vecs)
        idx = VectorIndex(vecs.shape[1], 'flat')
        idx.kind, idx.main = 'ivf', faiss.IndexIDMap2(ivf)
    elif parts[0] in ('hnsw', 'hnsw-full'):
        idx = VectorIndex(vecs.shape[1], 'hnsw', hnsw_m=int(parts[1]), ef_construction=int(parts[2]))
        if parts[0] == 'hnsw-full': idx.main.train(vecs)   # trained before add_main: 8-bit codes of every dimension, no projection
    else: idx = VectorIndex(vecs.shape[1], 'flat')
    idx.add_main(ids, vecs)   # HNSW: trains its 8-bit codes and keeps the float copy that re-ranks
    return idx, time.perf_counter() - t


def set_search_width(idx, spec: str, w: int | None) -> str:
    "Set efSearch (HNSW) or nprobe (IVF) to `w`; returns the setting's name."
    import faiss
    if spec.startswith('hnsw'):
        idx.set_ef_search(w)
        return f'HNSW {idx.storage} M {spec.split(":")[1]}, efC {spec.split(":")[2]}, efSearch {w}'
    if spec.startswith('ivf'):
        faiss.downcast_index(idx.main.index).nprobe = w
        return f'IVF-Flat {spec.split(":")[1]} lists, nprobe {w}'
    return 'exact (IndexFlatIP)'


def sweep(qc, rng, words, ids, vecs, specs: str, n: int, n_recall: int = 300):
    "Each index setting: recall@10 against the exact scan, its own search p50/p95, and semantic/hybrid p95 in the store."
    from mlportfolio.core.embed import encode
    Q = encode(query_set(rng, words, n_recall), progress=False)
    exact = exact_top10(Q, ids, vecs)
    keep, out = qc.store.sync.index, []
    keep_ef = keep.ef_search
    print(f'\n== index sweep at {len(ids):,} vectors: recall@10 on {n_recall} queries; index search alone (k=10) and '
          f'semantic / hybrid search p95 over {n} rounds with the index in the store, ratios to the query embedding alone')
    try:
        for spec in specs.split():
            widths = [int(w) for w in spec.split(':')[-1].split(',')] if spec != 'flat' else [None]
            own = spec.startswith('hnsw:') and keep.kind == 'hnsw' and tuple(map(int, spec.split(':')[1:3])) == (keep.hnsw_m, keep.ef_construction)
            if own: idx, build_s = keep, 0.0   # the store's own graph (built as it grew)
            else: idx, build_s = make_index(spec.rsplit(':', 1)[0] if spec != 'flat' else spec, ids, vecs)
            for w in widths:
                name = set_search_width(idx, spec, w)
                recall = recall_at_10(idx, Q, exact)
                it = []
                for q in Q[:n]:
                    with clock(it): idx.search(q, 10)
                qc.store.sync.index = idx
                t = search_rounds(qc, rng, words, n, modes=('semantic', 'hybrid'))
                r = dict(setting=name, build_s=build_s, recall=recall, index_p50=pct(it, 50), index_p95=pct(it, 95),
                         embed_p95=pct(t['embed'][0], 95), semantic_p95=pct(t['semantic'][0], 95), hybrid_p95=pct(t['hybrid'][0], 95),
                         load=load())
                r.update(semantic_ratio=r['semantic_p95'] / r['embed_p95'], hybrid_ratio=r['hybrid_p95'] / r['embed_p95'])
                out.append(r)
                print(f"{name:<48} build {build_s:6.1f} s  recall@10 {recall:.3f}  index p50 {r['index_p50']:6.2f} / p95 "
                      f"{r['index_p95']:6.2f} ms  embed p95 {r['embed_p95']:6.2f}  semantic p95 {r['semantic_p95']:6.2f} "
                      f"({r['semantic_ratio']:.2f}x)  hybrid p95 {r['hybrid_p95']:6.2f} ({r['hybrid_ratio']:.2f}x)  load {r['load']}", flush=True)
    finally:
        qc.store.sync.index = keep
        if keep.kind == 'hnsw': set_search_width(keep, f'hnsw:{keep.hnsw_m}:{keep.ef_construction}', keep_ef)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--home', default=str(HOME), help='the bench home: cached vectors, the ONNX export, the store')
    ap.add_argument('--backend', default=os.environ['MLP_EMBED_BACKEND'], help='core.embed backend (MLP_EMBED_BACKEND)')
    ap.add_argument('--add-notes', type=int, default=10_000)
    ap.add_argument('--search-notes', type=int, default=100_000)
    ap.add_argument('--queries', type=int, default=200)
    ap.add_argument('--threads', type=int, default=1, help='ONNX Runtime/torch/OpenMP threads (default 1, as the server uses)')
    ap.add_argument('--embed-budget-min', type=float, default=45, help='stop embedding after this many minutes (cached so far is kept)')
    ap.add_argument('--embed-only', action='store_true', help='only embed (and cache) the corpus')
    ap.add_argument('--seed', type=int, default=None, help='seed of the added notes and queries (default: a new one per run)')
    ap.add_argument('--sweep', default=DEFAULT_SWEEP, help="index settings to sweep ('' for none)")
    ap.add_argument('--quick', action='store_true', help='1k / 5k notes, 50 queries, a small sweep: checks the script runs')
    a = ap.parse_args()
    if a.quick: a.add_notes, a.search_notes, a.queries, a.sweep = 1_000, 5_000, 50, 'flat hnsw:32:64:64 ivf:64:8'
    import faiss, torch
    from mlportfolio.capture.service import QuickCapture
    from mlportfolio.core.config import get_settings
    from mlportfolio.core.embed import encode
    print(f'machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, faiss {faiss.__version__}, '
          f'cuda {torch.cuda.is_available()}; backend {a.backend}, {a.threads} thread(s); home {HOME}', flush=True)
    words = vocabulary()
    texts = corpus(a.search_notes, words)
    if not embed_corpus(texts, a.embed_budget_min * 60): sys.exit(3)
    if a.embed_only: return
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), 'little')
    rng = random.Random(seed)   # new notes and queries: a fresh seed per run, or the cache would answer a rerun's queries
    print(f'seed of the new notes and queries: {seed}', flush=True)
    shutil.rmtree(HOME/'store', ignore_errors=True)
    qc = QuickCapture(HOME/'store'/'capture.sqlite', save_every=5_000,
                      hnsw_threshold=min(get_settings().capture_hnsw_threshold, a.search_notes // 2))
    qc.router

    t = time.perf_counter()   # 1. the first --add-notes notes through the bulk path (vectors from the cache)
    qc.add_many(texts[:a.add_notes])
    print(f'\nbulk import of {a.add_notes:,} notes (cached embeddings): {time.perf_counter() - t:.1f} s', flush=True)
    qc.store.warm_keyword_index()                  # as the API's start-up: adds below keep it current
    add = add_latency(qc, rng, words, a.queries)   # 2. add latency at --add-notes stored

    t = time.perf_counter()   # 3. the rest of the corpus, then the index the store chooses at that size
    qc.add_many(texts[a.add_notes:])
    qc.store.save_index()
    print(f'\ngrew to {qc.store.count():,} notes (cached embeddings) in {time.perf_counter() - t:.1f} s; '
          f'index {qc.store.index.kind}; store on disk {qc.size_on_disk() / 1e6:.1f} MB '
          f'({qc.size_on_disk() / qc.store.count():.0f} bytes per note)', flush=True)

    kwi = keyword_index(qc, rng, words, a.queries)   # the in-memory keyword index against FTS5
    ids, vecs = qc.store._vectors()   # 4. search per mode with the default index, queries embedded by each backend
    res = search_latency(qc, rng, words, a.queries, vecs)
    Q = encode(query_set(rng, words, 300), progress=False)
    recall = recall_at_10(qc.store.index, Q, exact_top10(Q, ids, vecs))
    print(f'default index ({qc.store.index.kind}) recall@10 against the exact scan, 300 queries: {recall:.3f}')
    print(f'\nsummary: add p50 {add[0]:.1f} ms p95 {add[1]:.1f} ms at {a.add_notes:,} notes; search p95 at {qc.store.count():,} notes: '
          + ', '.join(f'{m} {v[1]:.1f} ms' for m, v in res.items())
          + f'; recall@10 {recall:.3f}; store {qc.size_on_disk() / 1e6:.0f} MB', flush=True)
    print(f"keyword index: build {kwi['build_s']:.2f} s, {kwi['mb']:.1f} MB, top-10 identical to FTS5 in {kwi['same']}/{kwi['n']} queries, "
          f"p50/p95 {kwi['p50']:.2f}/{kwi['p95']:.2f} ms (FTS5 {kwi['fts5_p50']:.2f}/{kwi['fts5_p95']:.2f} ms)", flush=True)

    if a.sweep.strip(): sweep(qc, rng, words, ids, vecs, a.sweep, a.queries)   # 5. the recall/latency curve
    qc.close()


if __name__ == '__main__':
    main()
