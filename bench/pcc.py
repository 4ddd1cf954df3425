#!/usr/bin/env python
"""PCC benchmark: score 5k and 50k cases end to end (warehouse read, validation, model, staging, publish, monitoring)
and compare with embedding the same texts alone (`Embedder.encode`, no cache) in the same run; peak RSS per size.

Each measurement runs in a fresh subprocess (so peak RSS is that run's), with a fresh embedding cache (so the
scoring run embeds every text, like a real day of new cases). The model is the training system's registered
champion (trained here on generated rows with `train.pipeline.train_and_register`, fixed parameters). Prints medians (5k: 3 runs each; 50k: 1 run each) and ratios.

With `--engines local,ray` each size is also scored with the Ray Data engine (a local Ray instance of `--ray-cpus`
CPUs started in the worker process, so Ray's start-up is inside the timing and printed apart), and the ratio Ray / local
is printed, with the rows per second of one Ray worker (one actor per CPU). `--backend onnx-int8` sets
MLP_EMBED_BACKEND for every measurement (training included). `--no-baseline` skips the `Embedder.encode` baseline
(half the time when only local vs Ray is wanted).

Usage: python bench/pcc.py [--small N] [--large N] [--repeats R] [--engines local,ray] [--backend onnx-int8] [--no-baseline] [--toy]
"""
import argparse, datetime as dt, json, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve()


def peak_rss_mb() -> float:
    "Peak RSS of this process image (VmHWM; ru_maxrss would include the parent's memory inherited at fork)."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args):
    "One measurement in this process; prints a JSON line."
    import pandas as pd
    if args.worker == 'encode':
        from mlportfolio.core.embed import Embedder
        texts = pd.read_parquet(args.texts).text.tolist()
        emb = Embedder(cache=False, progress=False)
        emb.encode(texts[:8])                                  # load the weights outside the timing, as scoring does at resolve time
        c0 = cpu_s(); t0 = time.perf_counter(); emb.encode(texts); secs = time.perf_counter() - t0
        print(json.dumps(dict(seconds=secs, cpu=cpu_s() - c0, rows=len(texts), rss_mb=peak_rss_mb())))
    elif args.worker == 'predict':                             # --toy baseline: the model alone, same 1,000-row chunks
        import mlflow.pyfunc
        texts = pd.read_parquet(args.texts).text.tolist()
        m = mlflow.pyfunc.load_model(str(Path(args.model)/'model'))
        c0 = cpu_s(); t0 = time.perf_counter()
        for i in range(0, len(texts), 1000): m.predict(pd.DataFrame({'text': texts[i:i + 1000]}))
        print(json.dumps(dict(seconds=time.perf_counter() - t0, cpu=cpu_s() - c0, rows=len(texts), rss_mb=peak_rss_mb())))
    else:
        from mlportfolio.pcc.score import score_partition
        ray_start = 0.0
        if args.engine == 'ray':                               # start Ray first and time it apart: a cluster would already run
            from mlportfolio.pcc.engine import init_ray
            t0 = time.perf_counter(); init_ray(num_cpus=args.ray_cpus); ray_start = time.perf_counter() - t0
        c0 = cpu_s(); t0 = time.perf_counter()
        r = score_partition(args.day, model=args.model, progress=False, engine=args.engine, workers=args.ray_cpus if args.engine == 'ray' else None)
        secs = time.perf_counter() - t0
        assert r.status == 'success' and r.rows_written == r.total_cases, r
        print(json.dumps(dict(seconds=secs, cpu=cpu_s() - c0, rows=r.rows_written, rss_mb=peak_rss_mb(), psi=r.psi_confidence,
                              drift=r.drift_flag, ray_start=ray_start)))


def cpu_s() -> float:
    "CPU seconds of this process (all threads): steadier than wall time on a shared, loaded machine."
    t = os.times(); return t.user + t.system


def run_worker(*a, env):
    out = subprocess.run([sys.executable, str(HERE), *map(str, a)], capture_output=True, text=True, env=env)
    if out.returncode: sys.exit(f'worker {a} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare_model(train_rows: int) -> str:
    "Train on generated rows and make the model champion through the training system; returns the reference to score with."
    from mlportfolio.train.model import sample_frame
    from mlportfolio.train.pipeline import train_and_register
    train_and_register(sample_frame(train_rows, seed=1), promote=True)
    return 'champion'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--worker'); ap.add_argument('--texts'); ap.add_argument('--day'); ap.add_argument('--model')
    ap.add_argument('--small', type=int, default=5000); ap.add_argument('--large', type=int, default=50000)
    ap.add_argument('--repeats', type=int, default=3); ap.add_argument('--train-rows', type=int, default=2000)
    ap.add_argument('--engine', default='local'); ap.add_argument('--engines', default='local', help='local, or local,ray')
    ap.add_argument('--ray-cpus', type=int, default=2); ap.add_argument('--backend', default=None, help='MLP_EMBED_BACKEND for every run')
    ap.add_argument('--no-baseline', action='store_true', help='skip the Embedder.encode (or --toy: model alone) baseline')
    ap.add_argument('--toy', action='store_true', help='TF-IDF toy model (pcc.testing) instead of the registered MiniLM model; '
                    'baseline = the model alone: measures the pipeline overhead and memory without embedding cost')
    args = ap.parse_args()
    if args.worker: return worker(args)

    home = Path(tempfile.mkdtemp(prefix='bench-pcc-'))
    os.environ.update(MLP_HOME=str(home), MLP_PROGRESS='false', MLP_LOG_LEVEL='WARNING', RAY_USAGE_STATS_ENABLED='0')
    if args.backend: os.environ['MLP_EMBED_BACKEND'] = args.backend
    print(f'load average at start: {open("/proc/loadavg").read().split()[:3]}; backend {os.environ.get("MLP_EMBED_BACKEND", "torch")}')
    from mlportfolio.data.generate import generate_dataset
    from mlportfolio.pcc.tables import seed_cases
    t0 = time.perf_counter()
    if args.toy:
        from mlportfolio.pcc.testing import save_export
        model_ref, base = str(save_export(home/'exports')), 'predict'
        print('model: TF-IDF toy export (no embeddings); baseline: the same model predicting alone')
    else:
        model_ref, base = prepare_model(args.train_rows), 'encode'
        print(f'model registered and promoted in {time.perf_counter() - t0:.0f}s (train rows {args.train_rows}); baseline: Embedder.encode, no cache')
    today = dt.datetime.now(dt.timezone.utc).date()
    days = {args.small: today, args.large: today - dt.timedelta(days=1)}
    t0 = time.perf_counter()
    texts = generate_dataset(args.large, seed=7).text.tolist()
    files = {}
    for n, day in days.items():
        seed_cases(n, day, texts=texts[:n])
        files[n] = home/f'texts_{n}.parquet'
        import pandas as pd
        pd.DataFrame({'text': texts[:n]}).to_parquet(files[n])
    print(f'generated and seeded {args.large} + {args.small} cases in {time.perf_counter() - t0:.0f}s')

    res, engines = {}, {}
    for n in (args.small, args.large):
        reps = args.repeats if n == args.small else 1
        enc, sc = [], []
        for i in range(reps):
            if not args.no_baseline:
                env = {**os.environ, 'MLP_EMBED_CACHE_DIR': tempfile.mkdtemp(prefix='bench-cache-')}
                enc.append(run_worker('--worker', base, '--texts', files[n], '--model', model_ref, env=env))
            env = {**os.environ, 'MLP_EMBED_CACHE_DIR': tempfile.mkdtemp(prefix='bench-cache-')}
            sc.append(run_worker('--worker', 'score', '--day', days[n], '--model', model_ref, env=env))
            print(f"{n:>6} cases, local engine: {sc[-1]['seconds']:.1f}s = {n / sc[-1]['seconds']:.0f} rows/s; CPU {sc[-1]['cpu']:.1f}s; "
                  f"peak RSS {sc[-1]['rss_mb']:.0f} MB; load {open('/proc/loadavg').read().split()[0]}", flush=True)
            for eng in [e for e in args.engines.split(',') if e != 'local']:
                env = {**os.environ, 'MLP_EMBED_CACHE_DIR': tempfile.mkdtemp(prefix='bench-cache-')}
                r = run_worker('--worker', 'score', '--day', days[n], '--model', model_ref, '--engine', eng, '--ray-cpus', args.ray_cpus, env=env)
                engines.setdefault((n, eng), []).append(r)
                print(f"{n:>6} cases, {eng} engine ({args.ray_cpus} CPUs): {r['seconds']:.1f}s = {n / r['seconds']:.0f} rows/s "
                      f"= {n / r['seconds'] / args.ray_cpus:.0f} rows/s per worker (local {sc[-1]['seconds']:.1f}s: ratio {r['seconds'] / sc[-1]['seconds']:.2f}); "
                      f"Ray start-up {r['ray_start']:.1f}s apart; driver CPU {r['cpu']:.1f}s, driver peak RSS {r['rss_mb']:.0f} MB; "
                      f"load {open('/proc/loadavg').read().split()[0]}", flush=True)
        med = lambda rs, k: statistics.median(r[k] for r in rs) if rs else float('nan')   # nan: baseline skipped
        e, s, ec, sc_cpu = med(enc, 'seconds'), med(sc, 'seconds'), med(enc, 'cpu'), med(sc, 'cpu')
        res[n] = dict(encode_s=e, score_s=s, encode_cpu_s=ec, score_cpu_s=sc_cpu, cpu_ratio=sc_cpu / ec, rows_per_s=n / s, encode_rows_per_s=n / e, overhead=s / e - 1,
                      rss_mb=max(r['rss_mb'] for r in sc), encode_rss_mb=max((r['rss_mb'] for r in enc), default=float('nan')), runs=reps,
                      psi=sc[-1]['psi'], drift=sc[-1]['drift'])
        r = res[n]
        base = (f"; {'model alone' if args.toy else 'Embedder.encode alone'} {r['encode_s']:.1f}s = {r['encode_rows_per_s']:.0f} rows/s; "
                f"ratio {r['score_s'] / r['encode_s']:.3f} (overhead {100 * r['overhead']:+.1f}%); "
                f"CPU seconds {r['score_cpu_s']:.1f} vs {r['encode_cpu_s']:.1f}: ratio {r['cpu_ratio']:.3f}") if enc else \
               f" (no baseline); CPU seconds {r['score_cpu_s']:.1f}"
        base_rss = f" (baseline {r['encode_rss_mb']:.0f} MB)" if enc else ''
        print(f"{n:>6} cases ({reps} run(s), median): score end to end {r['score_s']:.1f}s = {r['rows_per_s']:.0f} rows/s{base}; "
              f"peak RSS scoring {r['rss_mb']:.0f} MB{base_rss}; PSI conf {r['psi']}, drift {r['drift']}")
    a, b = res[args.small], res[args.large]
    print(f"peak RSS {args.large} / {args.small}: {b['rss_mb'] / a['rss_mb']:.2f}x (expect <= 1.3x: memory is flat in the partition size)")
    extra = args.large - args.small
    print(f"marginal CPU per extra case, local scoring: {1000 * (b['score_cpu_s'] - a['score_cpu_s']) / extra:.2f} ms "
          f"(= {extra / max(b['score_cpu_s'] - a['score_cpu_s'], 1e-9):.0f} cases per CPU second; fixed start-up costs cancel)")
    if not args.no_baseline:
        marg = (b['score_cpu_s'] - a['score_cpu_s']) / max(b['encode_cpu_s'] - a['encode_cpu_s'], 1e-9)
        print(f"marginal CPU per extra case, scoring / encoding alone: {marg:.3f} (fixed start-up costs cancel: imports, model "
              f"resolution and smoke test, table set-up)")
    for eng in sorted({e for _, e in engines}):
        ta, tb = (statistics.median(r['seconds'] for r in engines.get((n, eng), [{'seconds': float('nan')}])) for n in (args.small, args.large))
        print(f"{eng} engine, marginal wall time per extra case: {1000 * (tb - ta) / extra:.2f} ms = {extra / (tb - ta):.0f} cases/s "
              f"({extra / (tb - ta) / args.ray_cpus:.0f} per worker); local {extra / (b['score_s'] - a['score_s']):.0f} cases/s")
    for (n, eng), rs in engines.items():
        e = statistics.median(r['seconds'] for r in rs)
        print(f"{eng} engine, {n} cases: median {e:.1f}s = {n / e:.0f} rows/s ({n / e / args.ray_cpus:.0f} per worker); "
              f"local {res[n]['score_s']:.1f}s = {res[n]['rows_per_s']:.0f} rows/s; ratio {eng}/local {e / res[n]['score_s']:.2f}")
    print(json.dumps({str(k): v for k, v in res.items()}))
    print(f'load average at end: {open("/proc/loadavg").read().split()[:3]}')


if __name__ == '__main__':
    main()
