"""PCC integration tests: the `mlp pcc` CLI and the `score_batch` job as subprocesses, on a real DuckDB file and real
MLflow models (toy TF-IDF pyfunc exports from `mlportfolio.pcc.testing`, and the training system's registered model
when it is installed). Live BigQuery runs only with MLP_BQ_TEST_PROJECT and credentials."""
import datetime as dt, json, os, signal, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import MLP, ROOT, run_mlp

TODAY = dt.datetime.now(dt.timezone.utc).date()     # fixed once: every CLI call names it, so a run that crosses midnight UTC stays on one day


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    "Model exports shared by the tests: a good one, one with a class outside the taxonomy, one with a corrupt artifact."
    from mlportfolio.pcc.testing import save_export, toy_frame
    root = tmp_path_factory.mktemp('exports')
    good = save_export(root/'good', version='1')
    wrong = save_export(root/'wrong', toy_frame(['privacy_request', 'spam', 'other']), version='2')
    corrupt = save_export(root/'corrupt', version='3')
    next((corrupt/'model').glob('*.pkl')).write_bytes(b'\x00corrupt')
    return dict(good=good, wrong=wrong, corrupt=corrupt)


def wh():
    from mlportfolio.core.warehouse import get_warehouse
    from mlportfolio.pcc.tables import pcc_specs
    w = get_warehouse()
    for s in pcc_specs().values(): w.register(s)
    return w


def seed(n, bad=0):
    "Seed today's cases in this process (short toy texts; the CLI's generator path is covered once)."
    from mlportfolio.pcc.tables import seed_cases
    from mlportfolio.pcc.testing import TOY_TEXTS
    texts = [f'{t} (case {i})' for i, t in enumerate(t for _ in range(n) for ts in TOY_TEXTS.values() for t in ts)][:n]
    seed_cases(n, TODAY, texts=texts, bad=bad)


def output_rows(day=TODAY):
    return wh().query('SELECT case_id, model_version, run_id FROM pcc_inference_output '
                      'WHERE DATE(ingestion_time) >= DATE "1970-01-01" AND partition_date = @d', {'d': day})


def monitoring_rows():
    return wh().query('SELECT * FROM pcc_monitoring_logs WHERE DATE(ingestion_time) >= DATE "1970-01-01" ORDER BY runtime_ts')


def test_seed_score_runs_with_1000_bad_rows(mlp_home, exports):
    "Generated cases plus 1,000 bad rows: every bad row is dropped with its reason, the rest is scored once."
    run_mlp('pcc', 'seed-cases', '--n', 300, '--date', str(TODAY), '--bad', 1000, check=0)
    r = run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], '--dry-run', check=0, env={'COLUMNS': '200'})
    assert 'dry run: nothing written' in ' '.join(r.stdout.split()) and 'partial' in r.stdout
    assert len(output_rows()) == 0 and len(monitoring_rows()) == 0          # a dry run writes nothing
    r = run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], check=0, env={'COLUMNS': '200'})
    assert 'partial' in r.stdout
    mon = monitoring_rows().iloc[-1]
    assert (mon.status, mon.total_cases, mon.passed_validation, mon.dropped_cases, mon.rows_written) == ('partial', 1300, 300, 1000, 300)
    assert json.loads(mon.drop_reasons) == {'null_text': 200, 'empty_text': 400, 'text_too_long': 200, 'duplicate_case_id': 200}
    assert mon.psi_confidence is not None and mon.psi_label_mix is not None
    out = output_rows()
    assert len(out) == 300 and out.case_id.is_unique and set(out.model_version) == {'1'}
    runs = run_mlp('pcc', 'runs', check=0, env={'COLUMNS': '200'})
    assert 'partial' in runs.stdout and TODAY.isoformat() in runs.stdout
    dash = mlp_home/'dash.html'
    run_mlp('pcc', 'dashboard', '--out', dash, check=0)
    assert 'Label mix per day' in dash.read_text()
    run_mlp('pcc', 'lookml', '--out', mlp_home/'lookml', '--project', 'acme', '--dataset', 'pcc', check=0)
    assert (mlp_home/'lookml'/'views'/'pcc_runs.view.lkml').exists()


def test_sigkill_mid_run_then_rerun_gives_one_row_per_case(mlp_home, exports):
    "SIGKILL the scorer after a few chunks are staged; nothing is published; a rerun leaves exactly one row per case."
    seed(400)
    env = {**os.environ, 'MLP_LOG_LEVEL': 'DEBUG'}
    p = subprocess.Popen([MLP, 'pcc', 'score', '--date', str(TODAY), '--model', str(exports['good']), '--chunk-size', '5'], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, deadline = [], time.time() + 120
    for line in p.stderr:
        seen.append(line)
        if 'chunk 4:' in line: break
        assert time.time() < deadline, ''.join(seen[-20:])
    os.kill(p.pid, signal.SIGKILL); p.wait(30)
    assert p.returncode == -signal.SIGKILL, ''.join(seen[-20:])
    assert len(output_rows()) == 0                      # killed before publishing: the output is untouched
    staged = wh().scalar('SELECT COUNT(*) FROM pcc_inference_staging WHERE partition_date = @d', {'d': TODAY})
    assert 0 < staged < 400                             # ... and the crash left partial staged rows behind
    run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], check=0)
    out = output_rows()
    assert len(out) == 400 and out.case_id.is_unique and out.run_id.nunique() == 1
    assert wh().scalar('SELECT COUNT(*) FROM pcc_inference_staging WHERE partition_date = @d', {'d': TODAY}) == 0
    run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], check=0)       # a second rerun replaces, never duplicates
    assert len(output_rows()) == 400 and output_rows().case_id.is_unique


def test_incompatible_model_falls_back_to_last_known_good(mlp_home, exports):
    "Wrong classes, then a corrupt artifact: each rejected before use, version 1 scores, the monitoring row says why."
    seed(40)
    run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], check=0)          # version 1 becomes last-known-good
    for bad, why in (('wrong', "['spam'] are not in the taxonomy"), ('corrupt', 'does not match the digest')):
        r = run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports[bad], '--fallback', check=0, env={'COLUMNS': '300'})
        assert 'FALLBACK' in r.stdout
        mon = monitoring_rows().iloc[-1]
        assert mon.fallback_used == True and mon.model_source == 'cache' and mon.model_version == '1', mon.to_dict()
        assert 'rejected' in mon.notes and why in mon.notes, mon.notes
        assert set(output_rows().model_version) == {'1'} and len(output_rows()) == 40
    r = run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['corrupt'])           # named explicitly, no --fallback: an error, not a swap
    assert r.returncode == 2 and 'not replaced by the last-known-good' in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_no_model_at_all_fails_with_a_monitoring_row(mlp_home, exports):
    seed(10)
    r = run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['wrong'], '--fallback')
    assert r.returncode == 2 and 'no last-known-good model is cached' in r.stderr and 'Traceback' not in r.stderr
    mon = monitoring_rows().iloc[-1]
    assert mon.status == 'failed' and 'no last-known-good' in mon.error_message and mon.processing_duration_seconds > 0


def test_write_failure_read_only_warehouse(mlp_home, exports):
    "A warehouse that refuses writes: non-zero exit, one clear line, the failed run's row kept and flushed later."
    seed(30)
    db = mlp_home/'warehouse.duckdb'
    if os.geteuid() != 0:   # a read-only file, as an ordinary user sees one
        db.chmod(0o444); env = {}
    else:                   # root ignores file modes: open the same file read-only instead
        env = {'MLP_WAREHOUSE': f'duckdb://{db}?access_mode=read_only'}
    try: r = run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], env=env)
    finally: db.chmod(0o644)
    assert r.returncode != 0 and 'read-only' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    pending = [json.loads(l) for l in (mlp_home/'pcc'/'pending_monitoring.jsonl').read_text().splitlines()]
    assert len(pending) == 1 and pending[0]['status'] == 'failed' and 'read-only' in pending[0]['error_message']
    assert 'pending' in run_mlp('pcc', 'runs', check=0, env={'COLUMNS': '200', **env}).stdout
    run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], check=0)        # writable again: the pending row is flushed
    mon = monitoring_rows()
    assert mon.status.tolist() == ['failed', 'success'] and not (mlp_home/'pcc'/'pending_monitoring.jsonl').exists()


def test_score_batch_job(mlp_home, exports):
    seed(30)
    r = run_mlp('job', 'run', 'score_batch', '-p', f'model={exports["good"]}', '-p', 'chunk_size=10', check=0)
    assert 'succeeded' in r.stdout
    assert len(output_rows()) == 30 and monitoring_rows().status.tolist() == ['success']


def test_deployment_files_are_minimal_and_correct():
    docs = list(yaml.safe_load_all((ROOT/'deploy/pcc/cronjob.yaml').read_text()))
    cron = next(d for d in docs if d['kind'] == 'CronJob')
    assert cron['spec']['concurrencyPolicy'] == 'Forbid'
    pod = cron['spec']['jobTemplate']['spec']['template']['spec']
    assert pod['restartPolicy'] == 'OnFailure' and pod['securityContext']['runAsNonRoot'] is True
    docker = (ROOT/'deploy/pcc/Dockerfile').read_text()
    assert docker.count('\nFROM ') + docker.startswith('FROM ') >= 2 and 'USER 10001' in docker
    wf = yaml.safe_load((ROOT/'.github/workflows/pcc-daily.yml').read_text())
    on = wf.get('on', wf.get(True))
    assert on['schedule'][0]['cron'] and 'secrets.' not in json.dumps(wf['jobs']['score']['steps'])


@pytest.mark.skipif(not (os.environ.get('MLP_BQ_TEST_PROJECT') and (os.environ.get('GOOGLE_APPLICATION_CREDENTIALS')
                         or Path('~/.config/gcloud/application_default_credentials.json').expanduser().exists())),
                    reason='live BigQuery test: set MLP_BQ_TEST_PROJECT and Google application-default credentials')
def test_live_bigquery(mlp_home, exports):
    "The same seed + score + rerun against a real BigQuery dataset (created, then deleted)."
    from google.cloud import bigquery
    project = os.environ['MLP_BQ_TEST_PROJECT']
    dataset = f'mlp_pcc_test_{int(time.time())}'
    client = bigquery.Client(project=project)
    client.create_dataset(dataset)
    try:
        env = {'MLP_WAREHOUSE': f'bigquery://{project}/{dataset}'}
        run_mlp('pcc', 'seed-cases', '--n', 50, '--date', str(TODAY), '--bad', 5, check=0, env=env)
        run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], check=0, env=env)
        run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], check=0, env=env)
        n = client.query(f'SELECT COUNT(*) n, COUNT(DISTINCT case_id) d FROM `{project}.{dataset}.pcc_inference_output` '
                         f'WHERE DATE(ingestion_time) >= "1970-01-01"').result().to_dataframe().iloc[0]
        assert (n['n'], n['d']) == (50, 50)
    finally:
        client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)


def register_champion(n=240, seed=3):
    "Train the real privacy-intent model on a small generated frame and make it champion (training system's API)."
    try:
        from mlportfolio.train.pipeline import train_and_register
    except ImportError:
        train_and_register = None
    from mlportfolio.train.model import sample_frame
    df = sample_frame(n, seed=seed)
    if train_and_register is not None:
        return train_and_register(df, promote=True)
    import mlflow
    from mlportfolio.train import registry
    from mlportfolio.train.evaluate import predictions_frame, reference_distributions
    from mlportfolio.train.model import fit_intent_model, model_params
    train, test = df[df.split == 'train'], df[df.split == 'test']
    model = fit_intent_model(train.text, train.intent, train.subtype, model_params())
    pred = predictions_frame(model, test)
    registry.ensure_experiment()
    with mlflow.start_run(run_name='pcc-test'):
        import tempfile as _tf
        _p = Path(_tf.mkdtemp())/'predictions_test.parquet'; pred.to_parquet(_p)
        mlflow.log_artifact(str(_p), 'evaluation')   # the promotion gate reads the test predictions
        v = registry.register_model(model, dict(embedding_model='all-MiniLM-L6-v2', data_hash='pcc-test',
                                                reference=reference_distributions(pred, model.classes)), test.text.tolist())
    registry.promote('challenger', force=True)
    return v


def test_end_to_end_with_the_registered_champion(mlp_home):
    """The training system's champion from the MLflow registry via the CLI; then (in-process, to load torch once) a missing
    version falls back to it, and its export scores too."""
    pytest.importorskip('mlportfolio.train.registry', reason='the training registry is not installed')
    from mlportfolio.pcc.score import score_partition
    from mlportfolio.pcc.tables import seed_cases
    from mlportfolio.train.registry import export_model
    register_champion()
    seed_cases(150, TODAY)                                   # the data generator's texts
    run_mlp('pcc', 'score', '--date', str(TODAY), check=0, env={'COLUMNS': '300'})
    mon = monitoring_rows().iloc[-1]
    assert (mon.status, mon.model_source, mon.fallback_used, mon.rows_written) == ('success', 'registry', False, 150), mon.to_dict()
    assert mon.embedding_model == 'all-MiniLM-L6-v2' and mon.psi_confidence is not None and mon.psi_label_mix is not None
    assert 0 <= mon.ood_share <= 1, mon.ood_share                # the champion returns an ood_score per case (issue 18)
    out = output_rows()
    assert len(out) == 150 and out.case_id.is_unique and set(out.model_version) == {str(mon.model_version)}
    r = score_partition(TODAY, model_version=99, fallback=True)   # no such version: the last-known-good model scores
    assert r.fallback_used and r.model_version == str(mon.model_version) and 'no version 99' in ' '.join(r.notes), r.notes
    export_model('champion', to_url=(mlp_home/'exports').as_uri())
    r = score_partition(TODAY, model=str(mlp_home/'exports'))
    assert (r.model_source, r.fallback_used, r.status) == ('export', False, 'success')
    assert len(output_rows()) == 150 and monitoring_rows().fallback_used.tolist() == [False, True, False]


def test_rayjob_manifest_runs_the_ray_engine():
    "deploy/pcc/rayjob.yaml: a KubeRay RayJob whose entrypoint is the Ray engine of `mlp pcc score`, torn down after the run."
    job = yaml.safe_load((ROOT/'deploy/pcc/rayjob.yaml').read_text())
    assert (job['apiVersion'], job['kind']) == ('ray.io/v1', 'RayJob')
    assert '--engine ray' in job['spec']['entrypoint'] and '--ray-address auto' in job['spec']['entrypoint']
    assert job['spec']['shutdownAfterJobFinishes'] is True
    assert job['spec']['rayClusterSpec']['headGroupSpec']['rayStartParams']['num-cpus'] == '0'
