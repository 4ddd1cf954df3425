"""Harder perception benchmark (issue 20): proposals on hard scenes, the CNN on hard held-out scenes, the CoGenT split.

- Proposals: recall and precision at box IoU 0.5 against every ground-truth instance (objects and distractors)
  of `--proposal-scenes` hard scenes with up to 2 distractors, for `propose_instances` (shape fitting, then the
  watershed), `propose_instances(shapes=False)` (watershed only) and the connected-components baseline (`propose`),
  plus images/s of each (median of 3), measured in the same run.
- Hard scenes: the CNN trained on `--train-scenes` hard scenes (all options on, no distractors), attribute and
  QA accuracy on `--test-scenes` held-out hard scenes; the material head trained on the same crops, its accuracy
  on the held-out crops, and QA of the CNN plus the material head on questions that also name and ask materials.
- CoGenT: `cogent_experiment` (baseline, colour-invariant and factorised CNN trained on condition A, tested on A and B).
- CLIP (`train_clip`, the tiny CLIP trained from scratch, used zero-shot through its 36 prompts): `clip_hard` trains
  it on the same crops as the CNN's hard row and scores the same held-out scenes and questions; `clip_cogent` trains
  it on the same condition-A crops as `cogent_experiment` and scores the same A and B scenes. The epochs of each are
  chosen among `--clip-epoch-grid` on `--val-scenes` validation scenes (seed 2000; condition A for CoGenT), never on
  the test scenes; the model trained with the chosen epochs is the one scored on the test scenes.
  `clip_cogent_permuted`: the same, trained with `augment='color_permutation'` (colour-permuted crops with
  colour-free captions; shape and size read from the colour-free prompts).

`--parts proposals,hard,hard_watershed,cogent,clip_hard,clip_cogent,clip_cogent_permuted` picks what runs (`hard_watershed`: the
hard-scene CNN again, with the watershed-only proposals for training and evaluation, the state before shape fitting).

Run: `.venv/bin/python bench/perception_hard.py [--out results.json]` (one torch thread; prints JSON and the load average).
"""
import argparse, functools, json, os, statistics, tempfile, time
from dataclasses import replace

os.environ.setdefault('MLP_HOME', tempfile.mkdtemp(prefix='mlp-bench-perception-hard-'))
os.environ.setdefault('MLP_PROGRESS', 'false')

from mlportfolio.perception.hardscenes import HardOptions, make_hard_scenes
from mlportfolio.perception.instances import proposal_scores, propose_instances
from mlportfolio.perception.proposals import propose
from mlportfolio.perception.material import material_crops, train_material_head, material_accuracy, with_material
from mlportfolio.perception.cnn import train_cnn
from mlportfolio.perception.cogent import cogent_experiment, evaluate_hard
from mlportfolio.perception.instances import labelled_instance_crops
from mlportfolio.perception.clip import train_clip


def images_per_second(proposer, images, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for im in images: proposer(im)
        times.append(time.perf_counter() - t0)
    return len(images)/statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--proposal-scenes', type=int, default=100)
    ap.add_argument('--train-scenes', type=int, default=300)
    ap.add_argument('--test-scenes', type=int, default=80)
    ap.add_argument('--epochs', type=int, default=8)
    ap.add_argument('--parts', default='proposals,hard,cogent', help='comma-separated: proposals, hard, hard_watershed, cogent, clip_hard, clip_cogent, clip_cogent_permuted')
    ap.add_argument('--val-scenes', type=int, default=60)
    ap.add_argument('--clip-epoch-grid', default='10,20', help='comma-separated CLIP epoch counts tried on the validation scenes')
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    res = {'loadavg_start': open('/proc/loadavg').read().split()[:3]}
    parts = set(a.parts.split(','))
    if 'proposals' in parts: res['proposals'] = proposal_figures(a.proposal_scenes)
    if 'hard' in parts: res['hard_cnn'] = hard_cnn(a.train_scenes, a.test_scenes, a.epochs)
    if 'hard_watershed' in parts:   # the same, with the proposals before shape fitting (training crops too)
        res['hard_cnn_watershed_only'] = hard_cnn(a.train_scenes, a.test_scenes, a.epochs, functools.partial(propose_instances, shapes=False), material=False)
    if 'cogent' in parts: res['cogent'] = cogent_experiment(a.train_scenes, a.test_scenes, a.epochs, device='cpu')
    grid = [int(e) for e in a.clip_epoch_grid.split(',')]
    if 'clip_hard' in parts: res['hard_clip'] = hard_clip(a.train_scenes, a.test_scenes, a.val_scenes, grid)
    if 'clip_cogent' in parts: res['cogent_clip'] = cogent_clip(a.train_scenes, a.test_scenes, a.val_scenes, grid)
    if 'clip_cogent_permuted' in parts:
        res['cogent_clip_permuted'] = cogent_clip(a.train_scenes, a.test_scenes, a.val_scenes, grid, augment='color_permutation')
    res['loadavg_end'] = open('/proc/loadavg').read().split()[:3]
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        with open(a.out + '.tmp', 'w') as f: f.write(text)
        os.replace(a.out + '.tmp', a.out)


def proposal_figures(n_scenes):
    scenes = make_hard_scenes(n_scenes, seed=500, options=HardOptions(distractors=2))
    images = [sc.image for sc in scenes[:30]]
    proposers = (('instances', propose_instances), ('instances_watershed_only', functools.partial(propose_instances, shapes=False)),
                 ('connected_components', propose))
    return {name: {**proposal_scores(scenes, fn), 'images_per_s': round(images_per_second(fn, images), 1)} for name, fn in proposers}


def hard_cnn(n_train, n_test, epochs, proposer=propose_instances, material=True):
    x, y = material_crops(make_hard_scenes(n_train, seed=0), proposer=proposer)
    t0 = time.perf_counter()
    cnn, _ = train_cnn(x, y, epochs=epochs, seed=0, device='cpu')
    tests = make_hard_scenes(n_test, seed=1000)
    res = {'train_seconds': round(time.perf_counter() - t0, 1), 'n_crops': len(x), **evaluate_hard(cnn, tests, proposer=proposer)}
    if material:   # the material head (perception.material) on the same crops, scored on the held-out scenes' crops
        xt, yt = material_crops(tests, proposer=proposer)
        head = train_material_head(x, y['material'])
        res['material_accuracy'] = material_accuracy(head, xt, yt['material'])
        res['qa_with_material_questions'] = evaluate_hard(with_material(cnn, head), tests, proposer=proposer, materials=True)['qa']
    return res


def clip_chosen_on_validation(x, y, val_scenes, grid, augment=None):
    "Train the CLIP with each epoch count of `grid` (seed 0); the one with the best validation QA, and every validation figure."
    tried = []
    for epochs in grid:
        t0 = time.perf_counter()
        clip, _ = train_clip(x, y, epochs=epochs, seed=0, device='cpu', augment=augment)
        seconds = round(time.perf_counter() - t0, 1)
        tried.append((clip, seconds, {'epochs': epochs, 'train_seconds': seconds, **evaluate_hard(clip, val_scenes)}))
        print('clip validation', tried[-1][2], open('/proc/loadavg').read().split()[:3], flush=True)
    best = max(tried, key=lambda t: (t[2]['qa'], t[2]['attributes']['all'], -t[2]['epochs']))
    return best[0], {'epochs': best[2]['epochs'], 'train_seconds': best[1], 'validation': [t[2] for t in tried]}


def hard_clip(n_train, n_test, n_val, grid):
    "The CLIP on the CNN's hard-scene training crops (seed 0, `propose_instances`), scored on the same held-out scenes."
    x, y = material_crops(make_hard_scenes(n_train, seed=0))
    clip, chosen = clip_chosen_on_validation(x, y, make_hard_scenes(n_val, seed=2000), grid)
    return {'n_crops': len(x), **chosen, **evaluate_hard(clip, make_hard_scenes(n_test, seed=1000))}


def cogent_clip(n_train, n_test, n_val, grid, seed=0, augment=None):
    "The CLIP on `cogent_experiment`'s condition-A crops, scored on the same A and B held-out scenes; epochs chosen on A only."
    opts = {c: replace(HardOptions(), cogent=c) for c in 'AB'}
    x, y = labelled_instance_crops(make_hard_scenes(n_train, seed, opts['A']))
    clip, chosen = clip_chosen_on_validation(x, y, make_hard_scenes(n_val, seed + 2000, opts['A']), grid, augment)
    res = {c: evaluate_hard(clip, make_hard_scenes(n_test, seed + 1000, opts[c]), seed=seed) for c in 'AB'}
    return {'n_train_crops': len(x), **chosen, **res, 'gap_qa': res['A']['qa'] - res['B']['qa'],
            'gap_shape': res['A']['attributes']['shape'] - res['B']['attributes']['shape']}


if __name__ == '__main__':
    main()
