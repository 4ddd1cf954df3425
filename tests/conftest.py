"""Shared fixtures for the integration tests: an isolated MLP_HOME and a runner for the real `mlp` script."""
import os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MLP = str(Path(sys.executable).parent/'mlp')


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
