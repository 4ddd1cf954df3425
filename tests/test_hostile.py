"""Hostile input, secrets and untrusted models (issue 21), driven through the real `mlp` script and the real
capture server on loopback:

- a scan of every `mlp` command generated from the Typer app (`--help`, then hostile values in each parameter):
  no traceback and no 'internal error' ever reaches stderr; every numeric option has documented bounds;
- the capture server: ASCII-only ids, calendar-edge times, capped tag filters, 405 with Allow, HEAD /health,
  409 for a replayed client id with another text, empty text refused by the schema, every status in OpenAPI;
  then schemathesis 4 with all checks (zero server errors, zero undocumented statuses);
- secrets masked in CLI errors and the capture spool (0600); output paths checked before work (one line, exit 2,
  no stray temporary file); decompression bombs refused; imports with repeated columns, control characters or
  missing subtypes refused before anything is written; tampered model folders refused before unpickling."""
import json, os, shutil, stat, struct, subprocess, sys, zlib
from pathlib import Path

import httpx
import pytest

from conftest import MLP, ROOT, run_mlp
from test_capture import API_KEY, HDR, Server

sys.path.insert(0, str(Path(__file__).parent))
import hostile_scan  # noqa: E402


def _one_line_error(res):
    "The command failed as a user error: exit 2, one 'error:' line, no traceback."
    assert res.returncode == 2, (res.returncode, res.stdout[-500:], res.stderr[-1500:])
    assert 'Traceback' not in res.stderr and 'internal error' not in res.stderr, res.stderr[-1500:]
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('error:'), res.stderr


# ------------------------------------------------------------------------------------------- CLI scan
def test_every_numeric_option_has_bounds():
    "Generated from the app: an int/float option without min and max lets a 20-digit value reach the code."
    unbounded = []
    for path, cmd in hostile_scan.walk_commands():
        for p in cmd.params:
            info = getattr(getattr(p, 'type_descriptor', None), 'parameter_info', None)
            if hostile_scan.param_kind(p) == 'number' and (info is None or info.min is None or info.max is None):
                unbounded.append(f"mlp {' '.join(path)} {p.opts[0]}")
    assert not unbounded, f'numeric options without min= and max=: {unbounded}'


def test_small_work_options_exist():
    "The options the scan adds to keep a case's work small are real options of those commands (else every case is a usage error)."
    commands = {tuple(path): cmd for path, cmd in hostile_scan.walk_commands()}
    for path, options in hostile_scan.SMALL_WORK.items():
        assert path in commands, f"mlp {' '.join(path)} no longer exists"
        known = {o for p in commands[path].params for o in getattr(p, 'opts', ())}
        assert set(options) <= known, f"mlp {' '.join(path)} has no option {sorted(set(options) - known)}"


@pytest.mark.timeout(1800)   # about 1,400 cases, each in a forked child: minutes on a quiet 2-core box, far more on a busy one
def test_hostile_scan_no_traceback(tmp_path):
    "Every command, --help, then each hostile value in each parameter: never a traceback or an internal error."
    out = tmp_path/'scan.json'
    env = {**os.environ, 'MLP_PROGRESS': 'false', 'PYTHONPATH': os.environ.get('PYTHONPATH', str(ROOT))}
    res = subprocess.run([sys.executable, str(Path(__file__).parent/'hostile_scan.py'), '--workers', '3', '--timeout', '10',
                          '--json', str(out)], capture_output=True, text=True, timeout=1750, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads(out.read_text())
    print(res.stdout.splitlines()[0])
    assert rep['commands'] >= 40 and rep['invocations'] > 10 * rep['commands']
    assert not rep['failures'], res.stdout[-6000:]


# ------------------------------------------------------------------------------------------- capture over HTTP
@pytest.fixture(scope='module')
def capture(tmp_path_factory):
    home = tmp_path_factory.mktemp('hostile-capture')
    srv = Server(home, home/'capture'/'capture.sqlite')
    yield srv
    srv.stop()


def test_capture_http_hostile(capture):
    with httpx.Client(base_url=capture.url, timeout=180) as c:
        r = c.post('/notes', json={'text': 'ml: read the attention paper today', 'id': 'h-1'}, headers=HDR)
        assert r.status_code == 201, r.text
        nid = r.json()['id']
        assert c.get('/notes/²').status_code == 404                              # int('²') used to be a 500
        assert c.delete('/notes/١', headers=HDR).status_code == 404              # not note 1
        assert c.get(f'/notes/{nid}').status_code == 200
        for since in ('9999-12-31T23:59-01:00', '0001-01-01T00:00+01:00'):
            r = c.get('/search', params={'q': 'paper', 'since': since})
            assert r.status_code == 422 and 'calendar' in r.json()['error'], r.text
        r = c.get('/search', params={'q': 'paper', 'tags': ','.join(['t'] * 991)})   # 991 filters, under the 2,000-character limit
        assert r.status_code == 422 and 'at most 20' in r.json()['error'], r.text
        r = c.post('/notes', json={'text': 'ml: a note from year one @0001-01-01T00:00+01:00 about calendars'}, headers=HDR)
        assert r.status_code == 201 and any(i['code'] == 'bad_timestamp' for i in r.json()['issues']), r.text
        r = c.post('/notes', json={'text': 'home: something else entirely', 'id': 'h-1'}, headers=HDR)
        assert r.status_code == 409 and r.json()['type'] == 'ConflictError', r.text
        assert c.post('/notes', json={'text': 'ml: read the attention paper today', 'id': 'h-1'}, headers=HDR).status_code == 200
        assert c.post('/notes', json={'text': ''}, headers=HDR).status_code == 422
        r = c.put(f'/notes/{nid}', json={'text': 'x'}, headers=HDR)
        assert r.status_code == 405 and set(r.headers['allow'].split(', ')) == {'GET', 'PATCH', 'DELETE'}, r.headers
        r = c.head('/health')
        assert r.status_code == 200 and r.content == b''
        paths = c.get('/openapi.json').json()['paths']
        assert {'401', '409', '413', '422', '503'} <= set(paths['/notes']['post']['responses'])
        assert {'404', '422'} <= set(paths['/notes/{key}']['get']['responses'])
        assert paths['/notes']['post']['requestBody']['content']['application/json']['schema']['$ref']
    assert capture.alive()


def test_capture_schemathesis_all_checks(capture, tmp_path):
    "schemathesis 4, every check, bounded: no 5xx and no status the schema does not list."
    st = Path(sys.executable).parent/'schemathesis'
    if not st.exists(): pytest.skip('schemathesis is not installed (the dev extra)')
    cfg = tmp_path/'schemathesis.toml'
    # A note can be well-formed JSON and still not a note (only tags, no words): 422 is a correct answer to
    # schema-valid data here, as are 404 (unknown id) and 409 (a replayed id with another text).
    cfg.write_text('[checks]\nmax_response_time = 120.0\n'
                   '[checks.positive_data_acceptance]\nexpected-statuses = ["2xx", "401", "404", "409", "422"]\n')   # a busy shared machine; time is measured by the benchmarks
    res = subprocess.run([str(st), '--config-file', str(cfg), 'run', f'{capture.url}/openapi.json', '--checks', 'all',
                          '--max-examples', '15', '--max-time', '75', '--seed', '21', '--workers', '1',
                          '-H', f'X-API-Key: {API_KEY}', '--request-timeout', '120'],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)   # its cache stays out of the repository
    tail = res.stdout[-5000:] + res.stderr[-2000:]
    print(tail)
    assert res.returncode == 0, tail
    assert 'Server error' not in res.stdout and 'Undocumented HTTP status' not in res.stdout, tail
    assert capture.alive()


# ------------------------------------------------------------------------------------------- secrets
def test_secrets_masked_in_errors_and_spool(mlp_home, tmp_path):
    env = {'MLP_TRACKING_URI': 'http://alice:hunter2@127.0.0.1:9/'}
    res = run_mlp('registry', 'list', env=env, timeout=300)
    assert res.returncode == 2 and 'hunter2' not in res.stdout + res.stderr and 'alice:****@' in res.stderr, res.stderr
    res = run_mlp('config', 'show', env={**env, 'MLP_LINEAGE_URL': 'https://TOKEN123@marquez.example/api/v1/lineage?api_key=k3y'})
    assert res.returncode == 0 and not {'hunter2', 'TOKEN123', 'k3y'} & set(res.stdout.replace('@', ' ').replace('=', ' ').replace('/', ' ').split())
    assert 'hunter2' not in res.stdout and 'TOKEN123' not in res.stdout and 'k3y' not in res.stdout
    # the offline spool: a credentialed --remote is used, never written down, and the spool is 0600
    res = run_mlp('capture', 'add', 'ml: read the paper on spools', '--remote', 'http://bob:s3cr3t@127.0.0.1:9', timeout=300)
    assert res.returncode == 0, res.stderr
    spool = mlp_home/'capture'/'spool.jsonl'
    assert 's3cr3t' not in spool.read_text() and 'bob:****@' in spool.read_text()
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    assert 's3cr3t' not in res.stdout + res.stderr


# ------------------------------------------------------------------------------------------- output paths
@pytest.mark.parametrize('kind', ['folder', 'missing-parent', 'read-only'])
def test_output_paths_one_line(mlp_home, tmp_path, kind):
    folder = tmp_path/'a-folder'; folder.mkdir()
    target = {'folder': folder, 'missing-parent': tmp_path/'no'/'such'/'out.x',
              'read-only': Path('/proc/mlp-out.x') if os.geteuid() == 0 else tmp_path/'ro'/'out.x'}[kind]
    if kind == 'read-only' and os.geteuid() != 0:
        target.parent.mkdir(); target.parent.chmod(0o500)
    txt = tmp_path/'in.txt'; txt.write_text('one text\nanother text\n')
    img = tmp_path/'scene.png'
    from PIL import Image
    Image.new('RGB', (64, 64), 'white').save(img)
    for args in (['embed', txt, '--out', target], ['data', 'generate', '--n', '50', '--out', target],
                 ['pcc', 'dashboard', '--out', target], ['capture', 'export', '--out', target],
                 ['perceive', 'ask', img, 'how many red circles are there?', '--out', target],
                 ['train', 'config', '--out', target]):
        _one_line_error(run_mlp(*args, timeout=300))
    left = [p.name for p in tmp_path.rglob('*') if '.tmp' in p.name]
    assert not left, f'stray temporary files: {left}'


# ------------------------------------------------------------------------------------------- images
def _png_claiming(w, h) -> bytes:
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def test_image_bomb_is_one_line(mlp_home, tmp_path):
    for w in (30000, 9000):
        bomb = tmp_path/f'bomb{w}.png'; bomb.write_bytes(_png_claiming(w, w))
        res = run_mlp('perceive', 'ask', bomb, 'how many red circles are there?', '--out', tmp_path/'a.png', timeout=300)
        _one_line_error(res)
        assert 'pixels' in res.stderr


# ------------------------------------------------------------------------------------------- imports
def test_import_refuses_hostile_csv(mlp_home, tmp_path):
    cases = {'dup.csv': ('text,intent,subtype,text\nDelete my data,privacy_request,deletion,again\n', 'repeats column'),
             'ctrl.csv': ('text,intent\nplease delete\x1b[31m my data,opt_out\nhello there friend,opt_out\n', 'control characters at line(s) [2]'),
             'nosub.csv': ('text,intent\nDelete my account please,privacy_request\n', 'no subtype column')}
    for name, (body, says) in cases.items():
        (tmp_path/name).write_text(body)
        res = run_mlp('data', 'import', tmp_path/name, '--out', tmp_path/'x.parquet', timeout=300)
        assert res.returncode == 2 and says in res.stderr and 'Traceback' not in res.stderr, res.stderr
        assert '\x1b' not in res.stderr
    assert not (tmp_path/'x.parquet').exists()
    assert not (mlp_home/'lineage').exists() or 'data.import' not in ''.join(p.read_text() for p in (mlp_home/'lineage').glob('*.jsonl'))


def test_csv_outputs_neutralise_formulas():
    from mlportfolio.core.guard import csv_safe_frame
    import pandas as pd
    out = csv_safe_frame(pd.DataFrame({'text': ['=cmd|"/c calc"!A1', '@SUM(1)', 'fine'], 'x': [-1.0, 2.0, 3.0]}))
    assert out.text.tolist() == ["'=cmd|\"/c calc\"!A1", "'@SUM(1)", 'fine'] and out.x.tolist() == [-1.0, 2.0, 3.0]


# ------------------------------------------------------------------------------------------- untrusted models
def test_tampered_model_folder_is_refused_before_unpickling(mlp_home, tmp_path):
    "A pickle that would write a marker file when loaded: refused (exit 2) unless --trust-model, and never run."
    from mlportfolio.pcc.testing import save_export
    good = save_export(tmp_path/'exports', version='1', stamp='20261128_000000')
    marker = tmp_path/'pwned'
    pkl = next((good/'model').rglob('*.pkl'))
    import pickle
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    pkl.write_bytes(pickle.dumps(Evil()))
    res = run_mlp('pcc', 'score', '--model', good, timeout=600)
    assert res.returncode == 2 and 'does not match the digest' in res.stderr, res.stderr[-2000:]
    assert 'Traceback' not in res.stderr and not marker.exists()
