"""PCC on the Ray Data engine (`engine="ray"`): the same output rows and monitoring row as the local engine on the
same fixture, idempotent reruns, `mlp pcc score --engine ray --ray-address`, a Ray worker killed mid-run, and a local
start whose first node times out (a slow dashboard agent) tried again.

One local Ray instance is shared by the module (2 CPUs, a 200 MB object store, no dashboard, usage stats off).
The models are toy TF-IDF pyfunc exports (`mlportfolio.pcc.testing`), so the tests measure the engine, not MiniLM."""
import datetime as dt, os, signal, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')
ray = pytest.importorskip('ray', reason="the ray extra is not installed: pip install 'mlportfolio[ray]'")

from conftest import MLP, run_mlp, stop_process

TODAY = dt.datetime.now(dt.timezone.utc).date()     # fixed once: every CLI call names it, so a run that crosses midnight UTC stays on one day
VOLATILE = ['run_id', 'inference_timestamp', 'ingestion_time']                     # differ between any two runs
VOLATILE_MON = ['run_id', 'runtime_ts', 'ingestion_time', 'processing_duration_seconds']


@pytest.fixture(scope='module')
def ray_local():
    "The one local Ray instance of this module, started as `mlp pcc score --engine ray` starts one (`init_ray`: two tries)."
    from mlportfolio.core.errors import ConfigError
    from mlportfolio.pcc.engine import init_ray
    try: started = init_ray(num_cpus=2, object_store_memory=200 * 1024**2)
    except ConfigError as e:   # Ray 2.60's raylet waits a fixed 15 s for its agents; a saturated machine can miss it twice
        pytest.skip(f'a local Ray node did not start, twice, on this machine (load average {open("/proc/loadavg").read().split()[0]}): {str(e)[:160]}')
    yield started
    started.shutdown()


@pytest.fixture(scope='module')
def exports(tmp_path_factory):
    from mlportfolio.pcc.testing import save_export
    root = tmp_path_factory.mktemp('exports')
    return dict(good=save_export(root/'good', version='1'), slow=save_export(root/'slow', version='2', delay=0.25))


def seed(n, bad=0):
    from mlportfolio.pcc.tables import seed_cases
    from mlportfolio.pcc.testing import TOY_TEXTS
    texts = [f'{t} (case {i})' for i, t in enumerate(t for _ in range(n) for ts in TOY_TEXTS.values() for t in ts)][:n]
    seed_cases(n, TODAY, texts=texts, bad=bad)


def wh():
    from mlportfolio.core.warehouse import get_warehouse
    from mlportfolio.pcc.tables import pcc_specs
    w = get_warehouse()
    for s in pcc_specs().values(): w.register(s)
    return w


def output(day=TODAY):
    return wh().query('SELECT * FROM pcc_inference_output WHERE DATE(ingestion_time) >= DATE "1970-01-01" AND partition_date = @d '
                      'ORDER BY case_id', {'d': day})


def monitoring():
    return wh().query('SELECT * FROM pcc_monitoring_logs WHERE DATE(ingestion_time) >= DATE "1970-01-01" ORDER BY runtime_ts')


def staged_count():
    return wh().scalar('SELECT COUNT(*) FROM pcc_inference_staging WHERE partition_date = @d', {'d': TODAY})


SLOW_FIRST_AGENT = """import os, time
if b'dashboard/agent.py' in open('/proc/self/cmdline', 'rb').read():
    marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'slowed')
    if not os.path.exists(marker): open(marker, 'w').close(); time.sleep(25)
"""


def test_a_local_start_that_times_out_is_tried_again(tmp_path):
    """The first local node's dashboard agent sleeps 25 s before it starts (a saturated machine), past the raylet's
    fixed 15 s wait: `init_ray` starts a second node, which comes up and runs a task."""
    (tmp_path/'sitecustomize.py').write_text(SLOW_FIRST_AGENT)     # every Python process Ray starts imports it first
    code = ('import ray\nfrom mlportfolio.pcc.engine import init_ray\n'
            'init_ray(num_cpus=1, object_store_memory=100 * 1024**2)\n'
            'print(ray.get(ray.remote(lambda: "task ran").remote()))\nray.shutdown()\n')
    env = {**os.environ, 'MLP_LOG_LEVEL': 'WARNING', 'PYTHONPATH': os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')])}
    r = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0 and r.stdout.strip().endswith('task ran'), r.stderr[-3000:]
    assert (tmp_path/'slowed').exists() and 'attempt 1 of 2' in r.stderr, r.stderr[-3000:]


def test_ray_and_local_give_the_same_rows_and_monitoring_row(ray_local, mlp_home, exports):
    "Same fixture, both engines: identical output rows and monitoring rows (ids and clocks aside); reruns replace, never add."
    from mlportfolio.pcc.score import score_partition
    seed(300, bad=20)
    local = score_partition(TODAY, model=str(exports['good']), chunk_size=40, progress=False)
    out_local, mon_local = output(), monitoring().iloc[-1]
    remote = score_partition(TODAY, model=str(exports['good']), chunk_size=40, progress=False, engine='ray', workers=2)
    out_ray, mon_ray = output(), monitoring().iloc[-1]
    assert (local.engine, remote.engine, remote.status, remote.rows_written) == ('local', 'ray', 'partial', 300)
    assert set(out_ray.run_id) == {remote.run_id} and out_ray.case_id.is_unique and len(out_ray) == 300
    assert out_local.drop(columns=VOLATILE).equals(out_ray.drop(columns=VOLATILE))
    pd.testing.assert_series_equal(mon_local.drop(VOLATILE_MON), mon_ray.drop(VOLATILE_MON), check_names=False)
    again = score_partition(TODAY, model=str(exports['good']), chunk_size=40, progress=False, engine='ray', workers=2)
    out = output()
    assert len(out) == 300 and out.case_id.is_unique and set(out.run_id) == {again.run_id} and staged_count() == 0
    staging = Path(mlp_home)/'artifacts'/'pcc'/'ray-staging'/str(TODAY)
    assert not staging.exists() or not any(staging.iterdir())                   # the run's Parquet files are cleaned up


def test_cli_engine_ray_on_a_running_cluster(ray_local, mlp_home, exports):
    "`mlp pcc score --engine ray --ray-address ADDRESS` joins the running cluster as a second driver."
    seed(60)
    address = ray_local.get_runtime_context().gcs_address
    r = run_mlp('pcc', 'score', '--date', str(TODAY), '--model', exports['good'], '--engine', 'ray', '--ray-address', address, check=0, env={'COLUMNS': '200'})
    assert 'ray' in r.stdout and 'success' in r.stdout
    assert len(output()) == 60 and monitoring().status.tolist() == ['success']


def map_workers() -> list[int]:
    "PIDs of Ray Data's map actors (their process title names the operator)."
    pids = []
    for p in Path('/proc').iterdir():
        if p.name.isdigit():
            try: cmd = (p/'cmdline').read_bytes()
            except OSError: continue
            if b'MapWorker' in cmd and b'BatchScorer' in cmd: pids.append(int(p.name))
    return pids


def test_worker_killed_mid_run_leaves_one_row_per_case(ray_local, mlp_home, exports):
    """SIGKILL a map actor while `mlp pcc score --engine ray` runs: the run publishes one row per case, or fails cleanly
    and a rerun does. The run is its own driver process, so a dying run never takes this test process down with it."""
    seed(400)
    address = ray_local.get_runtime_context().gcs_address
    args = ['pcc', 'score', '--date', str(TODAY), '--model', str(exports['slow']), '--engine', 'ray', '--ray-address', address,
            '--chunk-size', '10', '--workers', '2', '--no-progress']
    proc = subprocess.Popen([MLP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'COLUMNS': '200'})
    killed, deadline = None, time.time() + 180
    while killed is None and proc.poll() is None and time.time() < deadline:
        pids = map_workers()
        if pids:
            time.sleep(1.5)                                                    # let it score a few batches first
            try: os.kill(pids[0], signal.SIGKILL); killed = pids[0]
            except ProcessLookupError: pass
        else: time.sleep(0.2)
    try: _, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        stop_process(proc); pytest.fail('the run did not end within 600 s of the kill')
    assert killed is not None, f'no Ray map worker was seen while the run was going (exit {proc.returncode}): {err[-2000:]}'
    assert 'Traceback' not in err, err[-3000:]
    mon = monitoring().iloc[-1]
    if proc.returncode != 0:                                                    # a clean failure: nothing published, one failed row
        print(f'killed worker {killed}: the run failed cleanly: {err.strip()[-300:]}')
        assert mon.status == 'failed' and mon.error_message and len(output()) == 0
        run_mlp(*args, check=0, env={'COLUMNS': '200'})
    else:
        print(f'killed worker {killed}: Ray restarted it and the run succeeded')
        assert mon.status == 'success'
    out = output()
    assert len(out) == 400 and out.case_id.is_unique and out.run_id.nunique() == 1
