"""Reviewer benchmark: the model-free signal before and after the reference classifier, on injected label noise.

Variants, all measured in the same run on the same noisy labels (noise seed 0):
  (a) kNN only (k = 15 over MiniLM vectors of the reference set), cleanlab `prune_by_noise_rate` (the old signal);
  (b) kNN + reference classifier (logistic regressions on MiniLM and on TF-IDF, fitted on the reference set
      only), cleanlab `prune_by_noise_rate` (the reviewer's default);
  (c) as (b), cleanlab `both`.
Audited sets: the generator's test split (`mlp data generate`, seed 42) and the hand-written realistic set
(`resources/eval/realistic.csv`, all rows); the reference is the generator's train split. For each noise mode
(uniform, class-conditional) and rate (5, 10, 20%): precision, recall, F1, AUPRC of the flags; then the mean F1
per variant and its ratio to (a). Fitting and scoring seconds are medians of `--repeats` fits. The machine is
shared: the load average is printed beside the figures.

Usage: MLP_HOME=... python bench/review_model_free.py [--repeats 1] [--n 1503]
  (MLP_HOME must hold the training data: `mlp data generate`)
"""
import argparse, statistics, time
from pathlib import Path

import numpy as np
import pandas as pd

from mlportfolio.core.embed import encode
from mlportfolio.core.taxonomy import load_taxonomy
from mlportfolio.review.evaluate import NOISE_MODES, clean_set, flag_metrics, inject_noise
from mlportfolio.review.signals import ModelFreeSignal

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {'a: kNN only': dict(classifier=False), 'b: kNN + classifier (default)': dict(classifier=True),
            'c: kNN + classifier, cleanlab both': dict(classifier=True, filter_by='both')}


def loadavg() -> str: return ' / '.join(Path('/proc/loadavg').read_text().split()[:3])


def measure(name, data, split, n, repeats, tax):
    audited, ref = clean_set(data, n, 0, tax, split)
    vecs = encode(audited.text.tolist())
    rows, fit_s = [], {}
    for vname, kw in VARIANTS.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter(); sig = ModelFreeSignal(ref, tax, **kw); times.append(time.perf_counter() - t0)
        fit_s[vname] = statistics.median(times)
        for mode in NOISE_MODES:
            for rate in (0.05, 0.1, 0.2):
                noisy, err = inject_noise(audited.label.to_numpy(), rate, mode, tax.intents, seed=0)
                s = sig.score(audited.id, audited.text, noisy, vecs)
                m = flag_metrics(err, s.issue, 1 - s.quality)
                rows.append(dict(set=name, variant=vname, mode=mode, rate=rate, errors=int(err.sum()),
                                 **{k: round(m[k], 3) for k in ('precision', 'recall', 'f1', 'auprc')}))
    return pd.DataFrame(rows), fit_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=1); ap.add_argument('--n', type=int, default=1503)
    a = ap.parse_args()
    tax = load_taxonomy()
    print(f'load average at start: {loadavg()}')
    for name, data, split in (('generator test split', None, 'test'), ('realistic set', ROOT/'nbs/resources/eval/realistic.csv', None)):
        t, fit_s = measure(name, data, split, a.n, a.repeats, tax)
        print(f'\n## {name} ({len(t) // len(VARIANTS)} noise settings), load average {loadavg()}')
        print(t.drop(columns='set').to_string(index=False))
        f1 = t.groupby('variant', sort=False).f1.mean()
        base = f1.iloc[0]
        for v, f in f1.items(): print(f'mean F1 {v}: {f:.3f} (x{f / base:.2f} of a); fit {fit_s[v]:.1f} s')
    print(f'\nload average at end: {loadavg()}')


if __name__ == '__main__':
    main()
