"""Perception on hard scenes across processes (issue 20): `mlp perceive train --hard` trains a CNN and a material head
on instance proposals; `mlp perceive ask --hard` and `mlp perceive evaluate --hard` perceive through the instance
proposals, which separate the touching objects the connected components merge, and answer questions about materials."""
import json

from mlportfolio.perception.hardscenes import HardOptions, make_hard_scenes
from mlportfolio.perception.instances import propose_instances
from mlportfolio.perception.proposals import propose


def _merged_scene(ds):
    "Index and scene graph of a generated hard scene where the connected components miss objects and the instance proposals do not."
    graphs = json.loads((ds/'scenes.json').read_text())
    scenes = make_hard_scenes(len(graphs), seed=7, options=HardOptions(noise=0.0))   # what `generate --hard --seed 7` wrote
    for k, (sc, g) in enumerate(zip(scenes, graphs)):
        n = len(g['objects'])
        if len(propose(sc.image)) < n == len(propose_instances(sc.image)): return k, g
    raise AssertionError('no scene in the fixture where the connected components merge objects')


def test_ask_and_evaluate_hard_use_instance_proposals(mlp_home, mlp, tmp_path):
    ds = tmp_path/'ds'
    mlp('perceive', 'generate', '--hard', '--out', ds, '--scenes', '6', '--questions', '2', '--seed', '7', check=0)
    k, graph = _merged_scene(ds)
    res = mlp('perceive', 'train', '--model', 'cnn', '--hard', '--scenes', '15', '--epochs', '1', '--device', 'cpu', check=0)
    assert 'material' in res.stdout   # a material head trained beside the CNN, with its validation accuracy
    image = ds/graph['image']
    n = len(graph['objects'])
    flat = json.loads(mlp('perceive', 'ask', image, 'how many things are there?', '--json', check=0).stdout)
    hard = json.loads(mlp('perceive', 'ask', image, 'how many things are there?', '--json', '--hard', check=0).stdout)
    assert int(flat['answer']) < n and hard['answer'] == str(n), (flat['answer'], hard['answer'], n)
    shiny = json.loads(mlp('perceive', 'ask', image, 'How many shiny things are there?', '--json', '--hard', check=0).stdout)
    assert shiny['program'][1] == {'op': 'filter_material', 'arg': 'metallic', 'inputs': [0]}
    assert all(o['material'] in ('matte', 'metallic') for o in shiny['graph']['objects'])
    assert shiny['answer'] == str(sum(o['material'] == 'metallic' for o in graph['objects'])), (shiny['answer'], graph['objects'])

    report = tmp_path/'report.json'
    res = mlp('perceive', 'evaluate', '--models', 'cnn', '--hard', '--scenes', '4', '--questions', '3', '--out', report, check=0)
    rep = json.loads(report.read_text())
    assert rep['hard'] is True and rep['qa']['ground_truth']['all'] == 1.0
    assert rep['proposal_recall'] >= 0.9 and rep['proposal_precision'] >= 0.9, res.stdout
    res = mlp('perceive', 'evaluate', '--models', 'cnn', '--distractors', '2', '--scenes', '2')
    assert res.returncode == 2 and '--distractors needs --hard' in res.stderr
