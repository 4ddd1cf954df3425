"""JupyterLab as a user meets it: the server on 127.0.0.1 in nbs/, `33_pcc_score.ipynb` opened in headless Chromium on
the `Python (mlportfolio)` kernel (registered by `make install` as `mlportfolio`), its first cells run and their
output seen; then the server is stopped. Skips with a reason when Chromium, chromedriver, selenium, JupyterLab or
the kernel is missing."""
import json, os, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

from conftest import HAVE_BROWSER, stop_process

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NOTEBOOK = '33_pcc_score.ipynb'


def _kernels() -> dict:
    try: out = subprocess.run([str(BIN/'jupyter'), 'kernelspec', 'list', '--json'], capture_output=True, text=True, timeout=60)
    except OSError: return {}
    return json.loads(out.stdout or '{}').get('kernelspecs', {}) if out.returncode == 0 else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _api(base, token, path, data=None, method='GET'):
    req = urllib.request.Request(f'{base}{path}', method=method, data=json.dumps(data).encode() if data else None,
                                 headers={'Authorization': f'token {token}', 'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=30) as r: return json.loads(r.read() or b'null')


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    if not HAVE_BROWSER:
        pytest.skip('needs chromium, chromium-driver (apt-get install chromium chromium-driver) and selenium')
    if not (BIN/'jupyter-lab').exists(): pytest.skip('JupyterLab not installed (pip install -e ".[jupyter]")')
    if 'mlportfolio' not in _kernels(): pytest.skip('kernel "mlportfolio" not registered (make install registers it)')
    port, token = _free_port(), secrets.token_hex(16)
    work = tmp_path_factory.mktemp('lab')
    shutil.copy2(ROOT/'nbs'/NOTEBOOK, work/NOTEBOOK)  # a copy: the run must not write outputs into nbs/
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(work/'runtime'), 'MLP_PROGRESS': 'false', 'PYTHONPATH': str(ROOT)}
    proc = subprocess.Popen([str(BIN/'jupyter-lab'), '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={work}', '--LabApp.expose_app_in_browser=True',
                             '--ServerApp.port_retries=0', '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                             *(['--allow-root'] if os.geteuid() == 0 else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    base = f'http://127.0.0.1:{port}'
    try:
        t0 = time.time()
        while True:
            try: _api(base, token, '/api/status'); break
            except OSError:
                if proc.poll() is not None or time.time() - t0 > 120:
                    raise AssertionError(f'JupyterLab did not start:\n{proc.stdout.read() if proc.poll() is not None else ""}')
                time.sleep(0.5)
        # the notebook's session on the project kernel: Lab attaches the opened notebook to it
        sess = _api(base, token, '/api/sessions', dict(path=NOTEBOOK, type='notebook', name=NOTEBOOK, kernel=dict(name='mlportfolio')), 'POST')
        yield base, token, sess, work
    finally:
        stop_process(proc)
    assert proc.returncode is not None


def _wait(drv, js, timeout=90):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = drv.execute_script(js)
        if v: return v
        time.sleep(0.3)
    raise AssertionError(f'timed out waiting for: {js}')


def test_lab_runs_the_first_cells_on_the_project_kernel(lab, browser):
    base, token, sess, work = lab
    assert sess['kernel']['name'] == 'mlportfolio'
    drv = browser
    drv.get(f'{base}/lab/tree/{NOTEBOOK}?token={token}')
    nb = ("const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
          "const ok = w && w.content && w.content.widgets && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;")
    _wait(drv, nb + "return ok && w.content.widgets.length > 8 && w.sessionContext.session.kernel.status === 'idle';", 180)
    kernel = drv.execute_script(nb + "return [w.sessionContext.session.kernel.name, w.sessionContext.kernelDisplayName];")
    assert kernel == ['mlportfolio', 'Python (mlportfolio)'], kernel
    # run the first seven cells (title, default_exp, set-up, imports, validate_cases and its test), one by one
    drv.execute_script(nb + "w.content.activeCellIndex = 0;")
    for _ in range(7):
        drv.execute_script("return window.jupyterapp.commands.execute('notebook:run-cell-and-select-next')")
    _wait(drv, nb + "return w.content.widgets.slice(1, 7).every(c => c.model.type !== 'code' || c.model.executionCount > 0)"
                    " && w.sessionContext.session.kernel.status === 'idle';", 120)
    errors = drv.execute_script(nb + "return w.content.widgets.slice(0, 7).flatMap(c => c.model.type === 'code' ? "
                                     "c.model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue) : []);")
    assert errors == [], errors
    # a new cell below uses what those cells defined, and its output shows in the page
    drv.execute_script(nb + "window.jupyterapp.commands.execute('notebook:insert-cell-below');"
                            "w.content.activeCell.model.sharedModel.setSource('ok.case_id.tolist(), dict(why)');"
                            "window.jupyterapp.commands.execute('notebook:run-cell');")
    shown = _wait(drv, nb + "const t = w.content.activeCell.node.querySelector('.jp-OutputArea-output');"
                            "return t && t.textContent.includes('text_too_long') ? t.textContent : null;", 60)
    assert "(['a'], {'null_text': 1, 'empty_text': 2, 'text_too_long': 1})" in shown, shown
