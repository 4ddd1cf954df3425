"""Shared fixtures for the integration tests: an isolated MLP_HOME and a runner for the real `mlp` script."""
import importlib.util, os, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MLP = str(Path(sys.executable).parent/'mlp')
CHROMIUM = next((shutil.which(b) for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)
CHROMEDRIVER = shutil.which('chromedriver')
HAVE_BROWSER = CHROMIUM is not None and CHROMEDRIVER is not None and importlib.util.find_spec('selenium') is not None
needs_browser = pytest.mark.skipif(not HAVE_BROWSER, reason='needs chromium and chromium-driver (apt-get install chromium '
                                                            'chromium-driver) and selenium')


@pytest.fixture
def mlp_home(tmp_path, monkeypatch):
    "A fresh MLP_HOME for one test, visible to this process and to every subprocess it starts."
    home = tmp_path/'mlp-home'
    monkeypatch.setenv('MLP_HOME', str(home))
    monkeypatch.setenv('MLP_PROGRESS', 'false')
    return home


def run_mlp(*args, timeout=600, check=None, env=None, input=None):
    "Run the installed `mlp` script as a subprocess; returns CompletedProcess (text). `check=0` asserts the exit code."
    res = subprocess.run([MLP, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})}, input=input)
    if check is not None:
        assert res.returncode == check, f'mlp {" ".join(map(str, args))} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}'
    return res


def stop_process(proc: subprocess.Popen, grace: float = 15):
    "Stop a server started by a test: SIGTERM, then SIGKILL when it has not exited after `grace` seconds."
    if proc.poll() is not None: return
    proc.terminate()
    try: proc.wait(grace)
    except subprocess.TimeoutExpired: proc.kill(); proc.wait(grace)


@pytest.fixture
def mlp():
    return run_mlp


@pytest.fixture(scope='session')
def chromium_session():
    "One headless Chromium (Selenium + chromedriver) for the whole run, with the browser console log captured."
    if not HAVE_BROWSER: pytest.skip('needs chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in ('--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
              '--disable-component-update', '--disable-sync', '--window-size=1400,1000'):
        opts.add_argument(f)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(120); drv.set_script_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture
def browser(chromium_session):
    "The shared Chromium on a blank page with its console log emptied: a test sees only the messages of the pages it opens."
    chromium_session.get('about:blank')           # leaving the last test's page may log (JupyterLab's blocked beforeunload)
    chromium_session.get_log('browser')
    return chromium_session
