"""Harder perception benchmark (issue 20): proposals on hard scenes, the CNN on hard held-out scenes, the CoGenT split.

- Proposals: recall and precision at box IoU 0.5 against every ground-truth instance (objects and distractors)
  of `--proposal-scenes` hard scenes with up to 2 distractors, for `propose_instances` (shape fitting, then the
  watershed), `propose_instances(shapes=False)` (watershed only) and the connected-components baseline (`propose`),
  plus images/s of each (median of 3), measured in the same run.
- Hard scenes: the CNN trained on `--train-scenes` hard scenes (all options on, no distractors), attribute and
  QA accuracy on `--test-scenes` held-out hard scenes; the material head trained on the same crops, its accuracy
  on the held-out crops, and QA of the CNN plus the material head on questions that also name and ask materials.
- CoGenT: `cogent_experiment` (baseline, colour-invariant and factorised CNN trained on condition A, tested on A and B).

`--parts proposals,hard,hard_watershed,cogent` picks what runs (`hard_watershed`: the hard-scene CNN again, with
the watershed-only proposals for training and evaluation, the state before shape fitting).

Run: `.venv/bin/python bench/perception_hard.py [--out results.json]` (one torch thread; prints JSON and the load average).
"""
import argparse, functools, json, os, statistics, tempfile, time

os.environ.setdefault('MLP_HOME', tempfile.mkdtemp(prefix='mlp-bench-perception-hard-'))
os.environ.setdefault('MLP_PROGRESS', 'false')

from mlportfolio.perception.hardscenes import HardOptions, make_hard_scenes
from mlportfolio.perception.instances import proposal_scores, propose_instances
from mlportfolio.perception.proposals import propose
from mlportfolio.perception.material import material_crops, train_material_head, material_accuracy, with_material
from mlportfolio.perception.cnn import train_cnn
from mlportfolio.perception.cogent import cogent_experiment, evaluate_hard


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
    ap.add_argument('--parts', default='proposals,hard,cogent', help='comma-separated: proposals, hard, hard_watershed, cogent')
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    res = {'loadavg_start': open('/proc/loadavg').read().split()[:3]}
    parts = set(a.parts.split(','))
    if 'proposals' in parts: res['proposals'] = proposal_figures(a.proposal_scenes)
    if 'hard' in parts: res['hard_cnn'] = hard_cnn(a.train_scenes, a.test_scenes, a.epochs)
    if 'hard_watershed' in parts:   # the same, with the proposals before shape fitting (training crops too)
        res['hard_cnn_watershed_only'] = hard_cnn(a.train_scenes, a.test_scenes, a.epochs, functools.partial(propose_instances, shapes=False), material=False)
    if 'cogent' in parts: res['cogent'] = cogent_experiment(a.train_scenes, a.test_scenes, a.epochs, device='cpu')
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


if __name__ == '__main__':
    main()
