"""Integration tests of the training system through the real `mlp` script and the papermill job (issue 4).

Every test gets a fresh MLP_HOME (its own sqlite MLflow store and artifacts); the embedding cache is shared
by the tests of this module (or by `make test`'s MLP_EMBED_CACHE_DIR) so the same texts are embedded once.
"""
import json, os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_mlp

N_ROWS = 300


@pytest.fixture(scope='module')
def shared_cache(tmp_path_factory):
    return os.environ.get('MLP_EMBED_CACHE_DIR') or str(tmp_path_factory.mktemp('embed-cache'))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    "The data pipeline's synthetic frame (300 rows, seed 0: the notebooks' frame, so a shared cache has its embeddings), as Parquet."
    from mlportfolio.data.generate import generate_dataset
    path = tmp_path_factory.mktemp('data')/'privacy_intent.parquet'
    generate_dataset(N_ROWS, seed=0).to_parquet(path, index=False)
    return path


@pytest.fixture
def home(mlp_home, shared_cache, monkeypatch):
    monkeypatch.setenv('MLP_EMBED_CACHE_DIR', shared_cache)
    monkeypatch.setenv('OMP_NUM_THREADS', os.environ.get('OMP_NUM_THREADS', '1'))  # 2 shared cores: 1 torch/BLAS thread is faster
    return mlp_home


def test_train_run_export_job_promote_rollback(home, dataset, tmp_path):
    """mlp train run -> v1 champion; export and load it back (alias and folder predict alike);
    the papermill job -> v2 challenger; `mlp registry promote` v2, roll back to v1."""
    r = run_mlp('train', 'run', '--data', dataset, '--n-iter', 2, '--cv', 3, '--promote', '--json', check=0)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['version'] == 1 and out['promotion']['decision'] == 'promoted'
    assert out['test_f1_macro'] > 0.6 and out['unseen_f1_macro'] is not None      # 300 rows over ~200 templates: a toy model
    assert out['realistic_cal_f1_macro'] is not None and out['calibration'] in ('heldout', 'heldout_isotonic', 'selection', 'selection_isotonic', 'none')
    from mlportfolio.core.lineage import read_events
    from mlportfolio.core.store import sha256_file
    done = [e for e in read_events(job='mlportfolio.train') if e['eventType'] == 'COMPLETE'][-1]
    assert done['inputs'][0]['facets']['contentHash']['value'] == sha256_file(dataset)   # the data pipeline's lineage hash
    assert done['outputs'][0]['name'] == 'privacy-intent/1'

    dest = tmp_path/'bucket'
    run_mlp('registry', 'export', 'champion', '--to', dest, check=0)
    versions = list((dest/'pcc-models').iterdir())
    assert len(versions) == 1 and versions[0].name.startswith('v') and len(versions[0].name) == len('v20261126_101500')
    meta = json.loads((versions[0]/'metadata.json').read_text())
    assert meta['version'] == 1 and {'label_mix', 'confidence_hist'} <= set(meta['reference'])   # + 'features' (ops input drift)
    assert meta['classes'] == ['data_deletion', 'opt_out', 'other', 'privacy_request']

    from mlportfolio.train.registry import load_model
    texts = pd.DataFrame({'case_id': ['a', 'b'], 'text': ['Please delete my account and all my data.', 'Unsubscribe me from your newsletter.']})
    by_alias, info = load_model('champion')
    by_folder, info2 = load_model(str(versions[0]))
    pd.testing.assert_frame_equal(by_alias.predict(texts), by_folder.predict(texts))
    assert info.data_hash == info2.data_hash == meta['data_hash']
    assert list(by_alias.predict(texts).predicted_label) == ['data_deletion', 'opt_out']
    assert by_alias.predict(texts)['ood_score'].notna().all()
    r = run_mlp('train', 'explain', 'Please delete my account and all my data.', check=0, env={'COLUMNS': '200'})
    assert 'predicted `data_deletion`' in r.stdout and 'nearest training examples' in r.stdout
    r = run_mlp('train', 'explain', '  ', check=2)
    assert 'is blank' in r.stderr + r.stdout and 'Traceback' not in r.stderr

    over = "overrides={'search.mode': 'none', 'evaluation.unseen_templates.enabled': False}"
    r = run_mlp('job', 'run', 'train', '-p', f'data={dataset}', '-p', over, check=0)
    assert 'succeeded' in r.stdout
    r = run_mlp('registry', 'promote', 'challenger', '--tolerance', 1.0, check=0)
    assert 'promoted' in r.stdout and 'version 2' in r.stdout
    from mlportfolio.train.registry import resolve_version, rollback
    assert int(resolve_version('champion').version) == 2
    assert rollback() == {'from': 2, 'to': 1} and int(resolve_version('champion').version) == 1


def test_bad_inputs_are_one_line_errors(home, dataset, tmp_path):
    "Missing file; labels outside the taxonomy (exit 2 and a FAILED MLflow run); unreachable tracking server: one clear line each."
    r = run_mlp('train', 'run', '--data', tmp_path/'nope.parquet')
    assert r.returncode == 2 and 'training data not found' in r.stderr and 'Traceback' not in r.stderr

    bad = pd.read_parquet(dataset).assign(intent=lambda d: d.intent.astype(str).where(d.index > 4, 'complaint'))
    bad.to_parquet(tmp_path/'bad.parquet')
    r = run_mlp('train', 'run', '--data', tmp_path/'bad.parquet', '--mode', 'none')
    assert r.returncode == 2 and "'complaint'" in r.stderr and 'allowed:' in r.stderr and 'Traceback' not in r.stderr
    import mlflow
    from mlportfolio.train.registry import ensure_experiment
    runs = mlflow.search_runs([ensure_experiment()])
    assert list(runs['status']) == ['FAILED'] and 'complaint' in runs['tags.mlp.error'][0]

    r = run_mlp('train', 'run', '--data', dataset, env={'MLP_TRACKING_URI': 'http://127.0.0.1:9'}, timeout=120)
    assert r.returncode == 2 and 'unreachable' in r.stderr


def test_bad_config_is_one_line_per_field(home, tmp_path):
    "`mlp train run --config bad.yaml`: exit 2, a header and one line per bad field (path, value, what is allowed), before any data is read."
    bad = tmp_path/'bad.yaml'
    bad.write_text('search:\n  n_iters: 5\n  cv: 1\nclassifier:\n  kind: forest\nfeatures:\n  emb_weight: 12\n')
    r = run_mlp('train', 'run', '--config', bad, '--data', tmp_path/'never-read.parquet', '--set', 'curation.near_duplicate_threshold=0')
    assert r.returncode == 2 and 'Traceback' not in r.stderr and r.stdout == ''
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f'error: invalid training config {bad}: 5 problem(s)', lines
    assert sorted(l.strip() for l in lines[1:]) == sorted([
        'curation.near_duplicate_threshold=0: must be greater than 0',
        'features.emb_weight=12: must be less than or equal to 10',
        "classifier.kind='forest': must be 'logreg' or 'svm'",
        'search.cv=1: must be greater than or equal to 2',
        'search.n_iters: unknown setting; known in search: mode, n_iter, cv, scoring, group_by, space, suspicious_score'])


def test_train_from_the_warehouse(home, dataset, tmp_path):
    "`--data warehouse:TABLE` reads through core.warehouse, validates as a file would, and lineage names the warehouse table."
    from mlportfolio.core.warehouse import get_warehouse
    url = f"duckdb:///{tmp_path/'wh.duckdb'}"
    with get_warehouse(url).connect('test') as con:
        con.register('src', pd.read_parquet(dataset)); con.execute('CREATE TABLE train_rows AS SELECT * FROM src')
    env = {'MLP_WAREHOUSE': url}
    r = run_mlp('train', 'run', '--data', 'warehouse:train_rows', '--mode', 'none', '--no-register', '--json', check=0, env=env)
    assert json.loads(r.stdout.strip().splitlines()[-1])['test_f1_macro'] > 0.5
    from mlportfolio.core.lineage import read_events
    done = [e for e in read_events(job='mlportfolio.train') if e['eventType'] == 'COMPLETE'][-1]
    assert done['inputs'][0]['name'].endswith('wh.duckdb#train_rows'), done['inputs'][0]
    r = run_mlp('train', 'run', '--data', 'warehouse:missing_rows', env=env)
    assert r.returncode == 2 and "training table 'missing_rows' not found" in r.stderr and 'Traceback' not in r.stderr


def test_finetuned_branch_travels_with_the_model(home, dataset, tmp_path):
    """`features.finetune` on (a few steps on the toy set): the fine-tuned MiniLM folder is logged with the version, so after the
    training home's copy is deleted `mlp train explain` still loads it, and an exported copy predicts alike in a fresh MLP_HOME."""
    tiny = ['enabled=true', 'per_class=4', 'n_pairs=8', 'batch_size=4', 'max_seq_length=32']
    sets = [a for s in tiny for a in ('--set', f'features.finetune.{s}')]
    r = run_mlp('train', 'run', '--data', dataset, '--mode', 'none', *sets, '--promote', '--json', check=0)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['version'] == 1 and out['unseen_f1_macro'] is not None
    folders = sorted((home/'models'/'finetuned').iterdir())
    assert len(folders) == 2            # the model's (training split) and the unseen-template model's (held-in templates only)
    from mlportfolio.train.registry import load_model
    texts = pd.DataFrame({'text': ['Please delete my account and all my data.', 'Unsubscribe me from your newsletter.', 'Where is my refund?']})
    pyfunc, info = load_model('champion')
    before = pyfunc.predict(texts)
    assert info.finetuned_embedding['folder'] in {f.name for f in folders} and info.finetuned_embedding['steps'] == 2
    dest = tmp_path/'bucket'
    run_mlp('registry', 'export', 'champion', '--to', dest, check=0)
    exported = next((dest/'pcc-models').iterdir())
    assert (exported/'model'/'artifacts'/info.finetuned_embedding['folder']/'finetune.json').is_file()

    import shutil
    shutil.rmtree(home/'models'/'finetuned')           # only the copies inside the MLflow artifacts remain
    r = run_mlp('train', 'explain', texts.text[0], check=0, env={'COLUMNS': '200'})
    assert f"predicted `{before.predicted_label[0]}`" in r.stdout
    code = ('import sys, pandas as pd; from mlportfolio.train.registry import load_model; '
            'm, _ = load_model(sys.argv[1]); print(m.predict(pd.read_json(sys.stdin)).to_json())')
    import subprocess, sys
    res = subprocess.run([sys.executable, '-c', code, str(exported)], input=texts.to_json(), capture_output=True, text=True,
                         env={**os.environ, 'MLP_HOME': str(tmp_path/'fresh-home')}, timeout=300)
    assert res.returncode == 0, res.stderr
    after = pd.read_json(__import__('io').StringIO(res.stdout.strip().splitlines()[-1]))
    assert list(after.predicted_label) == list(before.predicted_label)
    assert np.allclose(after.confidence.to_numpy(), before.confidence.to_numpy(), atol=1e-6)


def test_char_ngram_branch_through_the_registry(home, dataset, tmp_path):
    """`features.char_weight` > 0 (issue 18): the registered version carries the character n-gram branch (metadata, model card), the
    champion loaded back predicts as the fitted model does, and `mlp train explain` names the branch's share and its grams."""
    r = run_mlp('train', 'run', '--data', dataset, '--mode', 'none', '--set', 'features.char_weight=0.3', '--promote', '--json', check=0)
    assert json.loads(r.stdout.strip().splitlines()[-1])['version'] == 1
    from mlportfolio.train.registry import load_model
    pyfunc, info = load_model('champion')
    dims = info.feature_dims
    assert set(dims) == {'embedding', 'tfidf_svd', 'char_svd', 'clauses', 'words', 'total'} and dims['total'] == sum(v for k, v in dims.items() if k != 'total')
    assert 'character 3-5 gram TF-IDF/SVD' in info.card and 'clause intents' in info.card and 'bag-of-words intents' in info.card
    assert info.params['char_weight'] == 0.3
    texts = pd.DataFrame({'text': ['Please delete my account and all my data.', 'pls delte my acount', 'Where is my refund?']})
    model = pyfunc.unwrap_python_model().model
    pd.testing.assert_frame_equal(pyfunc.predict(texts), model.predict_frame(texts.text.tolist()))
    assert model.feature_slices()['char'].stop == model.feature_slices()['clauses'].start and model.feature_slices()['words'].stop == dims['total']
    r = run_mlp('train', 'explain', 'pls delte my acount', check=0, env={'COLUMNS': '200'})
    assert 'push by feature block: embedding' in r.stdout and ', char ' in r.stdout and ', clauses ' in r.stdout and 'character n-grams pushing' in r.stdout
