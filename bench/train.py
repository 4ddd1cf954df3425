"""Benchmark of the training system (issue 4): 10k synthetic rows, random search 20 trials x 5 folds.

Prints, on this machine:
  - embedding: cold (fresh cache) and warm (cache hits) wall time for every text, and the hit ratio;
  - search: wall time of the 20 x 5 random search on precomputed embeddings (median of --repeats runs);
  - baseline ratio: the same trials with a text branch refitted for every (trial, fold), as a plain
    RandomizedSearchCV over the pipeline would do, against the shared per-fold branches (on --baseline-trials
    trials, both measured in this run);
  - the whole `train_run` (embedding from the warm cache, search, fit, both evaluations, reports, MLflow
    registration) with its stage times and its quality figures (test split and unseen templates).

  - quality and confidence (issue 18): macro-F1, ECE, Brier, confident errors (>= 0.9 and wrong) and the
    out-of-distribution share on the test split, unseen templates (raw and calibrated, cross-fitted) and the
    hand-written realistic set's calibration half; its final half only with --final (take that figure once);
  - realism: the domain-classifier AUC and MMD between 800 generated messages and the realistic calibration half.

Usage: python bench/train.py [--n 10000] [--n-iter 20] [--cv 5] [--repeats 1] [--baseline-trials 3] [--final] [--quality-only]
                             [--set features.finetune.enabled=true ...] [--gen p_email=0.1 ...] [--realism-only]
Figures are recorded by hand in bench/RESULTS.md (## train).
"""
import argparse, json, os, statistics, sys, tempfile, time

os.environ.setdefault('OMP_NUM_THREADS', '1')   # see RESULTS.md: on 2 shared cores one thread per process is fastest
os.environ.setdefault('MLP_PROGRESS', 'false')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=10_000)
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--n-iter', type=int, default=20)
    ap.add_argument('--cv', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=1)
    ap.add_argument('--baseline-trials', type=int, default=3)
    ap.add_argument('--skip-cold', action='store_true', help='Reuse MLP_EMBED_CACHE_DIR instead of embedding cold')
    ap.add_argument('--final', action='store_true', help="Also score the realistic set's final half (the final figure: take it once)")
    ap.add_argument('--quality-only', action='store_true', help='Skip the embedding and search timings; only train_run and the quality figures')
    ap.add_argument('--set', dest='sets', action='append', default=[], metavar='KEY=VALUE',
                    help='Training config override for train_run, e.g. --set features.finetune.enabled=true (repeatable)')
    ap.add_argument('--gen', dest='gens', action='append', default=[], metavar='KEY=VALUE',
                    help='generate_dataset override, e.g. --gen p_context=0.2 or a shape probability --gen p_email=0.1 (repeatable)')
    ap.add_argument('--realism-only', action='store_true', help='Only generate the data and print its realism (domain AUC, MMD)')
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix='bench-train-')
    os.environ['MLP_HOME'] = home
    if not args.skip_cold: os.environ['MLP_EMBED_CACHE_DIR'] = os.path.join(home, 'embed-cache')

    import numpy as np
    from mlportfolio.core.embed import Embedder
    from mlportfolio.data.generate import generate_dataset
    from mlportfolio.train.curate import check_training_frame, curate
    from mlportfolio.train.config import load_train_config
    from mlportfolio.train.model import blas_limit, model_params
    from mlportfolio.train.search import FoldFeatures, candidate_params, make_folds, run_search, score_fold
    from mlportfolio.train.pipeline import train_run

    print(f'machine: {os.cpu_count()} CPU cores, OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}, load average {os.getloadavg()[0]:.1f}')
    from mlportfolio.data.generate import DEFAULT_SHAPE_PROBS
    gen = {k: float(v) for k, v in (g.split('=', 1) for g in args.gens)}
    shapes = {k: v for k, v in gen.items() if k in DEFAULT_SHAPE_PROBS}
    kw = {k: v for k, v in gen.items() if k not in DEFAULT_SHAPE_PROBS}
    if shapes: kw['shapes'] = {**DEFAULT_SHAPE_PROBS, **shapes}
    t = time.perf_counter(); df = generate_dataset(args.n, seed=args.seed, **kw); t_gen = time.perf_counter() - t
    data = os.path.join(home, 'privacy_intent.parquet'); df.to_parquet(data, index=False)
    print(f'data: {len(df)} rows generated in {t_gen:.1f}s' + (f' with {json.dumps(gen)}' if gen else ''))
    if args.realism_only: return realism(df)

    if args.quality_only: return quality(data, df, args)
    texts = df.text.astype(str).tolist()
    emb = Embedder(progress=False)
    t = time.perf_counter(); E = emb.encode(texts); t_cold = time.perf_counter() - t
    cold = dict(emb.stats)
    emb2 = Embedder(progress=False)
    t = time.perf_counter(); emb2.encode(texts); t_warm = time.perf_counter() - t
    hit = emb2.stats['hits'] / max(emb2.stats['hits'] + emb2.stats['misses'], 1)
    print(f'embedding: cold {t_cold:.1f}s ({cold["misses"]} new texts, {cold["misses"] / max(t_cold, 1e-9):.0f} texts/s); '
          f'warm {t_warm:.2f}s, cache hit ratio {hit:.3f}')

    cfg = load_train_config(overrides={'search.n_iter': args.n_iter, 'search.cv': args.cv})
    clean = check_training_frame(df)
    cur, Ec, rep = curate(clean, E)
    tr = (cur.split == 'train').to_numpy()
    X, y, Etr = cur.loc[tr, 'text'].tolist(), cur.loc[tr, 'intent'].to_numpy(), Ec[tr]
    groups = cur.loc[tr, 'template_id'].astype(str).to_numpy()      # as train_run does (search.group_by)
    times = []
    for r in range(args.repeats):
        t = time.perf_counter(); res = run_search(X, y, Etr, cfg, groups, progress=False); times.append(time.perf_counter() - t)
    print(f'search: {args.n_iter} trials x {args.cv} folds on {len(X)} training rows: median {statistics.median(times):.1f}s '
          f'(runs {", ".join(f"{x:.1f}" for x in times)}); text-branch fits {res.text_fits} ({res.text_fit_seconds:.1f}s); '
          f'best CV f1_macro {res.best_score:.4f} +/- {res.best_std:.4f}')

    # baseline: a text branch per (trial, fold), as RandomizedSearchCV over the whole pipeline does (embeddings still cached)
    k = min(args.baseline_trials, args.n_iter)
    cands = [model_params(cfg, **c) for c in candidate_params(cfg)[:k]]
    folds = make_folds(y, args.cv, cfg.seed, groups)
    with blas_limit():
        t = time.perf_counter()
        shared = FoldFeatures(X, Etr, folds, cfg.seed)
        for j in range(len(folds)):
            for p in cands: score_fold(shared, j, p, y)
        t_shared = time.perf_counter() - t
        t = time.perf_counter()
        for p in cands:
            for j in range(len(folds)):
                fresh = FoldFeatures(X, Etr, folds, cfg.seed)   # nothing shared between trials
                score_fold(fresh, j, p, y)
        t_naive = time.perf_counter() - t
    print(f'baseline ({k} trials x {args.cv} folds): refit per trial {t_naive:.1f}s vs shared fold branches {t_shared:.1f}s '
          f'-> {t_naive / t_shared:.2f}x')

    quality(data, df, args)


def _fig(name, m):
    if not m: return
    print(f"  {name:42s} n={m['n']:5d} macro-F1 {m['f1_macro']:.4f} acc {m['accuracy']:.4f} ECE {m['ece']:.4f} Brier {m['brier']:.4f} "
          f"confident errors {m['confident_errors']} ({m['confident_error_rate']:.1%}) risk@80% {m.get('risk_at_80', float('nan')):.4f}"
          + (f" ood share {m['ood_share']:.3f}" if 'ood_share' in m else ''))


def quality(data, df, args):
    import os, time, json
    from mlportfolio.train.pipeline import train_run
    from mlportfolio.data.realistic import realism_scores
    t = time.perf_counter()
    import yaml
    over = {'search.n_iter': args.n_iter, 'search.cv': args.cv, 'evaluation.realistic.report_final': bool(args.final),
            **{k: yaml.safe_load(v) for k, v in (s.split('=', 1) for s in args.sets)}}
    print('overrides:', json.dumps(over))
    out = train_run(data, overrides=over, promote=True, progress=False)
    t_run = time.perf_counter() - t
    u = out.unseen_metrics or {}
    print(f'train_run: {t_run:.1f}s total; stages {json.dumps(out.timings)}; embed cache hit ratio {out.embed_stats["hit_ratio"]:.3f}')
    print(f'quality: CV f1_macro {out.cv["best_score"]:.4f}; test split f1_macro {out.test_metrics["f1_macro"]:.4f} '
          f'(accuracy {out.test_metrics["accuracy"]:.4f}, n={out.test_metrics["n"]}, ECE {out.test_metrics["ece"]:.4f}); '
          f'unseen templates f1_macro {u.get("f1_macro", float("nan")):.4f} (n={u.get("n")}, {u.get("templates_held_out")} templates); '
          f'subtype f1_macro {out.subtype_metrics.get("f1_macro", float("nan")):.4f}')
    print('best params:', json.dumps(out.params))
    if out.test_metrics.get('composition'): print('test split composition:', json.dumps(out.test_metrics['composition']))
    folder = out.model.embed_folder() if out.model is not None else None
    if folder is not None and (folder/'finetune.json').is_file():
        rec = json.loads((folder/'finetune.json').read_text())
        print(f"fine-tuned embedding: {folder.name}, {rec['steps']} steps in {rec['seconds']}s, loss {rec['loss_first']:.3f} -> {rec['loss_last']:.3f}")
    elif folder is not None: print(f'embedding model folder: {folder} (copied into the registered version)')
    print('per class (test):', json.dumps({c: round(v['f1'], 4) for c, v in out.test_metrics['per_class'].items()}))
    print('curation:', json.dumps({k: v for k, v in out.curation.items() if k != 'balance'}))
    print('warnings:', out.warnings)
    print(f"calibration: {json.dumps(out.calibration)}; ood: {json.dumps(out.ood)}")
    print('confidence and quality:')
    _fig('test split', out.test_metrics); _fig('unseen templates (raw)', out.unseen_metrics)
    _fig('unseen templates (calibrated, cross-fitted)', out.unseen_calibrated_metrics)
    for k, v in out.realistic_metrics.items(): _fig(f'realistic {k} half', v)
    realism(df)


def realism(df):
    from mlportfolio.data.realistic import realism_scores
    r = realism_scores(df['text'])
    print(f"realism: domain-classifier AUC {r['domain_auc']:.3f} (goal <= {r['goal_auc']}), MMD2 {r['mmd2']:.4f} p {r['mmd_p_value']:.3f} "
          f"({r['n_generated']} generated vs {r['n_real']} realistic {r['split']}); load average {os.getloadavg()[0]:.1f}")


if __name__ == '__main__':
    sys.exit(main())
