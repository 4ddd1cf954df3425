"""Benchmark of the data pipeline: generate + 26 features + validate, at 10k and 100k rows.

Prints the median seconds of each stage over several runs, rows/s, the peak resident memory of a fresh
process per size, and a ratio to a baseline measured in the same run: the same features computed row by
row (`compute_features([text])` per text, as a naive `DataFrame.apply` pipeline would).
Usage: python bench/data.py [--sizes 10000 100000] [--repeats 3] [--baseline-rows 500]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

CHILD = r'''
import json, os, resource, sys, time
os.environ['MLP_HOME'] = sys.argv[3]; os.environ['MLP_PROGRESS'] = 'false'
import pandas as pd
from mlportfolio.data.generate import generate_dataset
from mlportfolio.data.features import compute_features
from mlportfolio.data.validate import validate_dataset
n, repeats = int(sys.argv[1]), int(sys.argv[2])
runs = []
for r in range(repeats):
    t0 = time.perf_counter(); df = generate_dataset(n, seed=r, end='2026-11-20')
    t1 = time.perf_counter(); f = compute_features(df['text'])
    t2 = time.perf_counter(); validate_dataset(pd.concat([df, f], axis=1), report_path=os.path.join(sys.argv[3], 'r.json'))
    t3 = time.perf_counter()
    runs.append(dict(generate=t1 - t0, features=t2 - t1, validate=t3 - t2, total=t3 - t0))
print(json.dumps(dict(runs=runs, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
'''

BASELINE = r'''
import json, sys, time
from mlportfolio.data.generate import generate_dataset
from mlportfolio.data.features import compute_features
texts = generate_dataset(int(sys.argv[1]), seed=0, end='2026-11-20')['text'].tolist()
compute_features(texts[:5])                        # warm up (imports, VADER lexicon)
t0 = time.perf_counter(); [compute_features([t]) for t in texts]; row_s = time.perf_counter() - t0
t0 = time.perf_counter(); compute_features(texts); vec_s = time.perf_counter() - t0
print(json.dumps(dict(rows=len(texts), row_by_row=row_s, vectorised=vec_s)))
'''


def run(code, *args):
    out = subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True)
    if out.returncode: sys.exit(f'benchmark child failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[10_000, 100_000])
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--baseline-rows', type=int, default=500)
    a = ap.parse_args()
    print(f'machine: {os.cpu_count()} CPU cores, python {sys.version.split()[0]}')
    b = run(BASELINE, a.baseline_rows)
    base_rps, vec_small = b['rows'] / b['row_by_row'], b['rows'] / b['vectorised']
    print(f"baseline (row by row features, {b['rows']} rows): {base_rps:,.0f} rows/s; vectorised on the same rows: {vec_small:,.0f} rows/s")
    print(f"{'rows':>8} {'generate s':>11} {'features s':>11} {'validate s':>11} {'total s':>8} {'rows/s':>9} {'features rows/s':>16} {'vs baseline':>12} {'peak MB':>8}")
    for n in a.sizes:
        with tempfile.TemporaryDirectory() as home:
            res = run(CHILD, n, a.repeats, home)
        med = {k: statistics.median(r[k] for r in res['runs']) for k in ('generate', 'features', 'validate', 'total')}
        frps = n / med['features']
        print(f"{n:>8,} {med['generate']:>11.2f} {med['features']:>11.2f} {med['validate']:>11.2f} {med['total']:>8.2f} "
              f"{n / med['total']:>9,.0f} {frps:>16,.0f} {frps / base_rps:>11.1f}x {res['peak_rss_mb']:>8.0f}")
    print(f'(median of {a.repeats} runs per size; peak MB = max resident memory of the process that ran that size)')


if __name__ == '__main__':
    main()
