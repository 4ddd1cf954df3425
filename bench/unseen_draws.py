"""Unseen-template macro-F1 over many held-out draws (issue 18).

One `train_run` holds out one random draw of templates (`evaluation.unseen_templates`), and which templates it draws
moves the figure by several points. This runs the pipeline's own stages once (validate, embed, curate, search, fit),
then repeats only the unseen-template evaluation (`train.pipeline.unseen_template_eval`: refit without a share of each
intent's templates, score their rows) for `--draws` seeds with the searched parameters fixed, and prints each draw and
the mean, standard deviation, median and range. It also scores the fixed-parameter model on the hand-written realistic
set's calibration half (never the final half), so a change to the generator or the model can be judged on both, and on
the messages of `bench/data/written_checks.csv`: 123 messages written by hand on 2026-12-01 in three sets (`first`,
`design`, `sealed`) and 20 on 2026-12-02 (`fresh`), none a near-duplicate of the realistic set or of a template
(bench/RESULTS.md, issue 18, ninth and fourteenth sessions). They are a check beside the calibration half, which the
model nearly saturates; they are not part of the realistic set, and no kept template was written from them.

Usage: python bench/unseen_draws.py [--n 10000] [--seed 42] [--draws 20] [--no-search] [--set KEY=VALUE ...]
Figures are recorded by hand in bench/RESULTS.md (## train).
"""
import argparse, json, os, statistics, tempfile, time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MLP_PROGRESS', 'false')


WRITTEN = Path(__file__).parent/'data'/'written_checks.csv'


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=10_000, help='generated rows (default 10,000, as `make demo`)')
    ap.add_argument('--seed', type=int, default=42, help='seed of the generated data and of the search')
    ap.add_argument('--draws', type=int, default=20, help='held-out template draws (seeds seed*1000 .. +draws-1)')
    ap.add_argument('--no-search', action='store_true', help="use the config's default parameters instead of searching once")
    ap.add_argument('--written', default=str(WRITTEN), metavar='CSV',
                    help="messages to score per set (columns set, intent, text); '' to skip (default: bench/data/written_checks.csv)")
    ap.add_argument('--set', dest='sets', action='append', default=[], metavar='KEY=VALUE',
                    help='training config override, e.g. --set classifier.C=0.5 (repeatable)')
    return ap.parse_args()


def line(name, m):
    return (f"{name:>26s}  n={m['n']:5d}  macro-F1 {m['f1_macro']:.4f}  ECE {m['ece']:.4f}  "
            f"confident errors {m['confident_errors']} ({m['confident_error_rate']:.1%})")


def written_lines(model, path: str) -> list[str]:
    "Per set of the written messages: how many the model gets right, macro-F1 and confident errors (>= 0.9 and wrong)."
    import pandas as pd
    from sklearn.metrics import f1_score
    if not path: return []
    checks = pd.read_csv(path, dtype=str, keep_default_na=False)
    pred = model.predict_frame(checks['text'].tolist())
    checks['pred'], checks['conf'] = pred['predicted_label'].to_numpy(), pred['confidence'].to_numpy()
    out = []
    for name, g in checks.groupby('set', sort=False):
        wrong = g['pred'] != g['intent']
        out.append(f"{'written: ' + name:>26s}  n={len(g):5d}  right {int((~wrong).sum())}  macro-F1 "
                   f"{f1_score(g['intent'], g['pred'], average='macro'):.4f}  confident errors {int((wrong & (g['conf'] >= 0.9)).sum())}")
    return out


def main():
    args = parse_args()
    os.environ.setdefault('MLP_HOME', tempfile.mkdtemp(prefix='bench-unseen-'))
    import yaml
    from mlportfolio.data.generate import generate_dataset
    from mlportfolio.train.config import load_train_config
    from mlportfolio.train.curate import check_training_frame
    from mlportfolio.train.model import model_params
    from mlportfolio.train.pipeline import (curate_rows, embed_texts, fit_model, prediction_metrics, realistic_predictions,
                                            search_params, unseen_template_eval)

    over = {k: yaml.safe_load(v) for k, v in (s.split('=', 1) for s in args.sets)}
    cfg = load_train_config(None, {**over, 'seed': args.seed})
    print(f'machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; overrides {json.dumps(over)}')
    t0 = time.perf_counter()
    df = check_training_frame(generate_dataset(args.n, seed=args.seed), seed=args.seed)
    emb, _, stats = embed_texts(df, cfg)
    cur, emb, _, train = curate_rows(df, emb, cfg)
    params = model_params(cfg) if args.no_search else search_params(cur, emb, train, cfg).best_params
    model, fit_df = fit_model(cur, params, cfg)
    print(f'{len(df)} rows (seed {args.seed}), {len(fit_df)} fitted on; embedding cache hits {stats["hits"]}/{stats["hits"] + stats["misses"]}; '
          f'params {json.dumps(params)}; {time.perf_counter() - t0:.0f}s')
    real = realistic_predictions(model, 'calibration')
    if real is not None: print(line('realistic calibration half', prediction_metrics(real, model.classes)))
    for text in written_lines(model, args.written): print(text)

    f1s = []
    for d in range(args.draws):
        _, m, held = unseen_template_eval(fit_df, load_train_config(None, {**over, 'seed': args.seed * 1000 + d}), params)
        if m is None: raise SystemExit('no templates could be held out: the data has no template_id column or too few templates')
        f1s.append(m['f1_macro'])
        print(line(f'draw {d + 1} ({len(held)} templates)', m), flush=True)
    sd = statistics.stdev(f1s) if len(f1s) > 1 else 0.0
    print(f'unseen templates, {len(f1s)} draws: macro-F1 mean {statistics.mean(f1s):.4f} +/- {sd:.4f} (sd), '
          f'median {statistics.median(f1s):.4f}, range {min(f1s):.4f}-{max(f1s):.4f}; {time.perf_counter() - t0:.0f}s in all')


if __name__ == '__main__':
    main()
