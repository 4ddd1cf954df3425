"""Integration tests of the foundation: the installed `mlp` script, papermill jobs, settings, the store and the embedding cache."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_mlp


def test_help_lists_groups_and_commands():
    r = run_mlp('--help', check=0)
    for word in ('version', 'config', 'job', 'embed'):
        assert word in r.stdout
    for group in ('config', 'job', 'embed'):
        sub = run_mlp(group, '--help', check=0)
        assert 'Usage' in sub.stdout


def test_version_matches_package():
    import mlportfolio
    assert run_mlp('version', check=0).stdout.strip() == mlportfolio.__version__


def test_config_show_reflects_env_and_masks_secrets(mlp_home):
    r = run_mlp('config', 'show', check=0, env={'MLP_LLM_API_KEY': 'sk-very-secret', 'COLUMNS': '250',
                                                 'MLP_WAREHOUSE': 'bigquery://proj/ds'})
    assert str(mlp_home) in r.stdout
    assert 'bigquery://proj/ds' in r.stdout
    assert 'sk-very-secret' not in r.stdout and '**********' in r.stdout


def test_env_overrides_reach_settings(mlp_home, monkeypatch):
    from mlportfolio.core.config import get_settings
    monkeypatch.setenv('MLP_EMBED_BATCH_SIZE', '7')
    monkeypatch.setenv('MLP_TRACKING_URI', 'http://mlflow.internal:5000')
    s = get_settings()
    assert (s.home, s.embed_batch_size, s.mlflow_tracking_uri) == (mlp_home, 7, 'http://mlflow.internal:5000')


def test_bad_setting_is_one_line_exit_2(mlp_home):
    r = run_mlp('config', 'show', env={'MLP_LOG_FORMAT': 'xml'})
    assert r.returncode == 2
    assert 'MLP_LOG_FORMAT' in r.stderr and 'Traceback' not in r.stderr


def test_unwritable_home_is_one_clear_error(tmp_path):
    blocker = tmp_path/'file'
    blocker.write_text('not a folder')
    r = run_mlp('job', 'run', 'embed_corpus', env={'MLP_HOME': str(blocker/'home')})
    assert r.returncode == 2 and 'not writable' in r.stderr and 'Traceback' not in r.stderr


def test_job_list_shows_embed_corpus():
    r = run_mlp('job', 'list', check=0, env={'COLUMNS': '200'})
    assert 'embed_corpus' in r.stdout and 'input_path' in r.stdout


def test_job_run_writes_output_and_run_record(mlp_home, tmp_path):
    corpus = tmp_path/'corpus.txt'
    corpus.write_text('delete my account\nwhat is your refund policy\n')
    out = tmp_path/'vectors.npy'
    res = run_mlp('job', 'run', 'embed_corpus', '-p', f'input_path={corpus}', '-p', f'output_path={out}', check=0)
    assert np.load(out).shape == (2, 384)
    runs = list((mlp_home/'runs'/'embed_corpus').glob('*/run.json'))
    assert len(runs) == 1
    rec = json.loads(runs[0].read_text())
    assert rec['status'] == 'succeeded' and rec['params']['input_path'] == str(corpus)
    assert rec['duration_seconds'] > 0 and rec['ended_at'] >= rec['started_at']
    assert (runs[0].parent/'output.ipynb').exists()
    assert "without encryption" not in res.stderr, res.stderr  # the kernel talks over IPC sockets


def test_failing_job_records_failed_and_exits_nonzero(mlp_home, tmp_path):
    r = run_mlp('job', 'run', 'embed_corpus', '-p', f'input_path={tmp_path}/missing.txt', '-p', f'output_path={tmp_path}/v.npy')
    assert r.returncode == 1
    assert 'failed' in r.stderr and 'Traceback' not in r.stderr
    rec = json.loads(next((mlp_home/'runs'/'embed_corpus').glob('*/run.json')).read_text())
    assert rec['status'] == 'failed' and 'missing.txt' in rec['error']
    assert not (tmp_path/'v.npy').exists()


def test_unknown_job_exits_2_listing_jobs(mlp_home):
    r = run_mlp('job', 'run', 'no_such_job')
    assert r.returncode == 2
    assert "unknown job 'no_such_job'" in r.stderr and 'embed_corpus' in r.stderr


def test_malformed_and_unknown_params_exit_2(mlp_home):
    r = run_mlp('job', 'run', 'embed_corpus', '-p', 'input_path')
    assert r.returncode == 2 and "'input_path' is not key=value" in r.stderr
    r = run_mlp('job', 'run', 'embed_corpus', '-p', 'colour=red')
    assert r.returncode == 2 and 'unknown parameter(s) colour' in r.stderr
    assert not (mlp_home/'runs'/'embed_corpus').exists()


def test_embed_command_txt_and_csv(mlp_home, tmp_path):
    (tmp_path/'a.txt').write_text('one\ntwo\nthree\n')
    run_mlp('embed', tmp_path/'a.txt', '--out', tmp_path/'a.npy', check=0)
    assert np.load(tmp_path/'a.npy').shape == (3, 384)
    (tmp_path/'b.csv').write_text('id,body\n1,hello\n2,world\n')
    r = run_mlp('embed', tmp_path/'b.csv', '--out', tmp_path/'b.npy')
    assert r.returncode == 2 and "column 'text' not in b.csv; columns are: id, body" in r.stderr
    run_mlp('embed', tmp_path/'b.csv', '--text-col', 'body', '--out', tmp_path/'b.npy', check=0)
    assert np.load(tmp_path/'b.npy').shape == (2, 384)


def test_missing_input_is_one_line(mlp_home, tmp_path):
    r = run_mlp('embed', tmp_path/'nope.txt', '--out', tmp_path/'x.npy')
    assert r.returncode == 2
    assert r.stderr.strip().count('\n') == 0 and str(tmp_path/'nope.txt') in r.stderr
    assert not (tmp_path/'x.npy').exists()


def test_store_write_killed_midway_leaves_nothing_visible(tmp_path):
    "SIGKILL a process in the middle of a large atomic write: the key must not exist and nothing may be listed."
    root = tmp_path/'store'
    script = textwrap.dedent(f'''
        import sys, time
        from mlportfolio.core.store import ArtifactStore
        st = ArtifactStore('file://{root}')
        st.put_bytes('done.bin', b'ok')
        with st.open_write('models/big.bin') as f:
            for i in range(10_000):
                f.write(b'x' * 65536)
                if i == 20: print('writing', flush=True)
                time.sleep(0.001)
    ''')
    p = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'writing'
    p.send_signal(signal.SIGKILL); p.wait()
    from mlportfolio.core.store import ArtifactStore
    st = ArtifactStore(f'file://{root}')
    assert not st.exists('models/big.bin')
    assert st.list() == ['done.bin']


def test_embedding_cache_identical_vectors_and_order(tmp_path):
    from mlportfolio.core.embed import Embedder
    texts = [f'text number {i} about {"privacy" if i % 2 else "weather"}' for i in range(40)]
    cold = Embedder(cache_dir=tmp_path, progress=False)
    a = cold.encode(texts)
    warm = Embedder(cache_dir=tmp_path, progress=False)  # a new process-level object: reads the disk cache
    perm = np.random.default_rng(0).permutation(len(texts))
    b = warm.encode([texts[i] for i in perm])
    assert warm.stats == {'hits': 40, 'misses': 0}
    np.testing.assert_array_equal(b, a[perm])


def test_readme_is_generated_from_index():
    sys.path.insert(0, str(ROOT/'tools'))
    import sync
    assert (ROOT/'README.md').read_text() == sync.readme(), 'README.md is stale: run `make export`'
    text = (ROOT/'README.md').read_text()
    assert 'make demo' in text and 'make test' in text


def test_wheel_ships_jobs_and_resources(tmp_path):
    "A pip-installed package must be able to run its jobs: the notebooks and data files are in the wheel."
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    import zipfile
    names = zipfile.ZipFile(next(tmp_path.glob('mlportfolio-*.whl'))).namelist()
    assert 'mlportfolio/jobs/embed_corpus.ipynb' in names
    assert 'mlportfolio/resources/sample_corpus.txt' in names


@pytest.mark.skipif(not os.environ.get('MLP_GCS_TEST_BUCKET'), reason='live GCS test: set MLP_GCS_TEST_BUCKET (gs://bucket/prefix) and Google credentials to run it')
def test_gcs_store_round_trip_live():
    import uuid
    from mlportfolio.core.store import ArtifactStore
    st = ArtifactStore(os.environ['MLP_GCS_TEST_BUCKET'].rstrip('/') + f'/mlp-test-{uuid.uuid4().hex[:8]}')
    info = st.put_json('a/meta.json', {'x': 1})
    assert st.get_json('a/meta.json') == {'x': 1} and st.list() == ['a/meta.json'] and info.sha256 == st.sha256('a/meta.json')
    st.delete('a', recursive=True)


def test_gcs_store_url_resolves_to_gcsfs_offline():
    "The gs:// path is real code: it resolves to gcsfs and maps keys into the bucket without any network call."
    from mlportfolio.core.store import ArtifactStore
    st = ArtifactStore('gs://my-bucket/prefix', token='anon')  # anon: no credential lookup, no network
    import gcsfs
    assert isinstance(st.fs, gcsfs.GCSFileSystem) and not st.is_local
    assert st.path('pcc-models/v1/metadata.json') == 'my-bucket/prefix/pcc-models/v1/metadata.json'
