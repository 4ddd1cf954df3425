"""Benchmark the embedding mapper on 20,000 texts in three domains, with warm embeddings.

Whole run (read the input files, embeddings from the warm cache, UMAP, KMeans, every cross-domain metric, the
HTML report and the coordinates CSV; projection cache off) against umap-learn's `fit_transform` alone on the same
vectors with the same parameters, both measured in this run. Prints the median of --runs runs of each and the ratio.
Usage: python bench/mapper.py [--n 20000] [--runs 3]
"""
import argparse, os, platform, statistics, tempfile, time, warnings

import numpy as np
import pandas as pd

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MLP_PROGRESS', 'false')
warnings.filterwarnings('ignore', message='n_jobs value')

VOCAB = dict(
    train=('please delete erase remove my personal data account records information under gdpr article request access '
           'copy export rectify correct update address name date of birth consent withdraw marketing profiling kindly').split(),
    prod=('hey pls u can delete my acct stuff app wipe nuke stop spam emails texts ads sell info dont wrong fix change '
          'number phone birthday download see where how thx asap lol why again never signed up').split(),
    notes=('team sync sprint migrate billing service roadmap benchmark umap cache embeddings tls certificate deploy '
           'flaky tests dashboard timezone interview debrief docs warehouse tables nightly batch job prometheus metrics').split())
LABELS = ['deletion', 'access', 'opt_out', 'rectification']


def make_domains(n: int, seed: int = 0) -> pd.DataFrame:
    "Deterministic, unique texts: 45% train, 45% prod (both with labels), 10% notes (no labels)."
    rng = np.random.default_rng(seed)
    sizes = dict(train=int(n * 0.45), prod=int(n * 0.45)); sizes['notes'] = n - sizes['train'] - sizes['prod']
    rows = []
    for dom, k in sizes.items():
        words = VOCAB[dom]
        for i in range(k):
            label = LABELS[i % 4] if dom != 'notes' else None
            body = ' '.join(rng.choice(words, size=int(rng.integers(6, 30))))
            rows.append(dict(text=f'{label or "note"} {body} #{dom}{i}', domain=dom, label=label))
    return pd.DataFrame(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=20000)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--torch-threads', type=int, default=1, help='torch threads for the (untimed) embedding warm-up')
    args = ap.parse_args()
    os.environ.setdefault('MLP_HOME', tempfile.mkdtemp(prefix='mlp-bench-mapper-'))
    # a lasting embedding cache, so only the first run of this script pays for embedding the texts
    os.environ.setdefault('MLP_EMBED_CACHE_DIR', os.path.expanduser('~/.mlportfolio/cache/embeddings'))
    import umap
    from mlportfolio.core.config import get_settings
    from mlportfolio.core.embed import encode
    from mlportfolio.mapper.report import run_map

    df = make_domains(args.n)
    work = tempfile.mkdtemp()
    inputs = []
    for dom, part in df.groupby('domain', sort=False):
        path = f'{work}/{dom}.parquet'; part[['text', 'label']].to_parquet(path); inputs.append(f'{dom}={path}')
    import torch
    torch.set_num_threads(args.torch_threads)  # one thread is much faster than two on a loaded 2-core box
    t0 = time.perf_counter()
    X = encode(df.text.tolist(), progress=True)  # warm the embedding cache (not timed below)
    print(f'embedded {len(X)} texts in {time.perf_counter() - t0:.1f}s (cache warm-up, not part of the figures)', flush=True)
    seed = get_settings().seed
    umap.UMAP(n_neighbors=15, metric='cosine', random_state=seed).fit_transform(X[:300])  # numba compile, not timed

    base, whole, stages = [], [], []
    for run in range(args.runs):
        t0 = time.perf_counter()
        umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, metric='cosine', random_state=seed).fit_transform(X)
        base.append(time.perf_counter() - t0)
        out = f'{work}/run{run}.html'
        t0 = time.perf_counter()
        res = run_map(inputs, out=out, label_col='label', reducers=['umap'], cache=False, seed=seed, progress=False)
        whole.append(time.perf_counter() - t0)
        size = os.path.getsize(out) / 1e6
        print(f'run {run + 1}: umap alone {base[-1]:.1f}s  whole run {whole[-1]:.1f}s  ratio {whole[-1] / base[-1]:.2f}x  (report {size:.1f} MB, '
              f'{len(res["maps"][0].data_)} rows)', flush=True)
        print('   stages: ' + ', '.join(f'{k.split(": ")[-1]} {v:.1f}s' for k, v in res['timings'].items()), flush=True)
        stages.append(res['timings'])
    mb, mw = statistics.median(base), statistics.median(whole)
    print(f'\nmachine: {platform.machine()}, {os.cpu_count()} cores, no GPU; umap-learn {umap.__version__}')
    print(f'{args.n} texts, 3 domains, median of {args.runs} runs')
    print(f'  umap fit_transform alone: {mb:8.1f} s')
    print(f'  whole mapper run:         {mw:8.1f} s   ratio of medians {mw / mb:.2f}x, '
          f'median of per-run ratios {statistics.median(w / b for w, b in zip(whole, base)):.2f}x')


if __name__ == '__main__':
    main()
