"""Perception benchmark (issue 8): training time to the QA target, and images/s at inference.

- Training time to target: train on `--train-scenes` generated scenes, after each epoch answer the held-out
  questions with the perceiver's scene graphs; stop at QA >= `--target` (0.98). Reported: seconds of training
  (evaluation time excluded) and epochs, median over `--repeats` seeds, for the CNN and the CLIP.
- Inference: images/s of the whole perception pass (proposals, crops, model, scene graph) over `--infer-images`
  images, median of `--repeats` runs. Baseline measured in the same run: proposals and crops only (no model),
  so the ratio is the cost of the model on top of the model-free part.
- GPU: the same on CUDA when a GPU is visible; otherwise skipped with a message (no test needs a GPU).

Run: `.venv/bin/python bench/perception.py` (MLP_TORCH_THREADS sets torch's CPU threads, 1 by default).
"""
import argparse, os, platform, statistics, sys, tempfile, time

os.environ.setdefault('MLP_HOME', tempfile.mkdtemp(prefix='mlp-bench-perception-'))
os.environ.setdefault('MLP_PROGRESS', 'false')

import numpy as np
import torch

from mlportfolio.perception.scenes import make_scenes
from mlportfolio.perception.programs import make_questions, qa_accuracy
from mlportfolio.perception.proposals import labelled_crops, propose, crops_of
from mlportfolio.perception.eval import perceive_many
from mlportfolio.perception.cnn import train_cnn
from mlportfolio.perception.clip import train_clip


def time_to_target(fit, x, y, val_images, items, target, max_epochs, seed, device):
    "Train with `fit` until QA on the held-out questions reaches `target`; returns (train seconds, epochs, qa)."
    state = dict(eval_s=0.0, last=(0.0, None, 0.0))
    def on_epoch(ep, per, stats):
        train_s = stats['seconds'] - state['eval_s']   # the clock of fit() also ran during earlier evaluations
        t = time.perf_counter()
        qa = qa_accuracy(items, perceive_many(val_images, per))['all']
        state['eval_s'] += time.perf_counter() - t
        state['last'] = (train_s, ep if qa >= target else None, qa)
        return qa >= target
    fit(x, y, epochs=max_epochs, seed=seed, device=device, on_epoch=on_epoch)
    return state['last']


def images_per_second(images, per, repeats):
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        if per is None:
            for im in images: crops_of(im, propose(im))
        else: perceive_many(images, per)
        rates.append(len(images)/(time.perf_counter() - t))
    return statistics.median(rates)


def run(device, args):
    print(f'\n== device: {device}' + (f' ({torch.cuda.get_device_name(0)})' if device == 'cuda' else
                                        f' ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
                                        f"torch threads {os.environ.get('MLP_TORCH_THREADS', '1')})"))
    t = time.perf_counter()
    x, y = labelled_crops(make_scenes(args.train_scenes, 0))
    data_s = time.perf_counter() - t
    val = make_scenes(args.val_scenes, 1)
    items = make_questions([s.graph for s in val], 10, 1)
    val_images = [s.image for s in val]
    print(f'data: {args.train_scenes} scenes -> {len(x)} crops in {data_s:.1f}s; held-out: {len(val)} scenes, {len(items)} questions')
    results = {}
    for name, fit, max_ep in (('cnn', train_cnn, args.max_epochs_cnn), ('clip', train_clip, args.max_epochs_clip)):
        runs = [time_to_target(fit, x, y, val_images, items, args.target, max_ep, seed, device) for seed in range(args.repeats)]
        secs = [r[0] for r in runs]; eps = [r[1] for r in runs]
        reached = sum(e is not None for e in eps)
        results[name] = statistics.median(secs)
        print(f'{name}: time to QA >= {args.target}: median {statistics.median(secs):.1f}s '
              f'(runs {", ".join(f"{s:.1f}s/{e or (chr(62) + str(max_ep))}ep" for s, e in zip(secs, eps))}; reached {reached}/{len(runs)}), '
              f'final QA {", ".join(f"{r[2]:.3f}" for r in runs)}')
    print(f"ratio clip/cnn training time to target: {results['clip']/results['cnn']:.1f}x")
    cnn, _ = train_cnn(x, y, epochs=args.max_epochs_cnn, seed=0, device=device)
    clip, _ = train_clip(x, y, epochs=args.max_epochs_clip, seed=0, device=device)
    images = [s.image for s in make_scenes(args.infer_images, 7)]
    base = images_per_second(images, None, args.repeats)
    print(f'inference, images/s (median of {args.repeats}): proposals+crops only (baseline) {base:.0f}')
    for name, per in (('cnn', cnn), ('clip', clip)):
        r = images_per_second(images, per, args.repeats)
        print(f'  {name} perception {r:.0f} images/s = {r/base:.2f}x the baseline rate')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--train-scenes', type=int, default=400)
    ap.add_argument('--val-scenes', type=int, default=50)
    ap.add_argument('--target', type=float, default=0.98)
    ap.add_argument('--max-epochs-cnn', type=int, default=8)
    ap.add_argument('--max-epochs-clip', type=int, default=10)
    ap.add_argument('--infer-images', type=int, default=200)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--device', choices=['cpu', 'cuda', 'both'], default='both')
    args = ap.parse_args()
    if args.device in ('cpu', 'both'): run('cpu', args)
    if args.device in ('cuda', 'both'):
        if torch.cuda.is_available(): run('cuda', args)
        else: print('\n== cuda: no CUDA GPU visible; skipping the GPU part')


if __name__ == '__main__':
    sys.exit(main())
