"""core.llm across processes: the real OpenAI-compatible client against a loopback server (answers from the local
model, or faults: 429 with Retry-After, 500, a hang, invalid JSON), retries, fallback, the breaker, the deadline,
and the `mlp llm` commands."""
import json, os, socket, subprocess, sys, time
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, run_mlp, stop_process

os.environ.setdefault('MLP_LLM_CACHE_DIR', str(ROOT/'.test-cache'/'llm'))  # convert the local model once per machine

from mlportfolio.core.errors import LLMUnavailableError
from mlportfolio.core.llm import LLMChain, OpenAIBackend, llm_metrics

CHOICES = ['blue', 'green', 'purple']
SKY = 'Which colour is the sky on a clear day? Answer with one word.'


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    "tests/llm_fault_server.py as a real uvicorn subprocess on 127.0.0.1; its local model is loaded before tests start."
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
    home = tmp_path_factory.mktemp('llm-server-home')
    env = {**os.environ, 'MLP_HOME': str(home), 'PYTHONPATH': f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log = open(home/'server.log', 'w')
    proc = subprocess.Popen([sys.executable, str(ROOT/'tests'/'llm_fault_server.py'), str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(600):
            try:
                if httpx.get(f'{base}/v1/models', timeout=1).status_code == 200: break
            except httpx.TransportError: pass
            assert proc.poll() is None, (home/'server.log').read_text()
            time.sleep(0.2)
        warm = OpenAIBackend(f'{base}/v1', 'local', timeout=600).complete([dict(role='user', content=SKY)], choices=CHOICES)
        assert warm['choice'] == 'blue', warm   # the real local model behind the real protocol
        yield base
    finally:
        stop_process(proc); log.close()


def chain(*backends, **kw):
    kw.setdefault('cache', False); kw.setdefault('backoff', 0.05); kw.setdefault('seed', 0)
    return LLMChain(list(backends), **kw)

def fault(base, mode, name='openai', **kw):
    return OpenAIBackend(f'{base}/fault/{mode}/v1', 'local', api_key='sk-test-secret', name=name, **kw)

def hits(base):
    return httpx.get(f'{base}/control/stats').json()


def test_success_with_choices_and_schema(server):
    from pydantic import BaseModel
    class Answer(BaseModel):
        colour: str
    r = chain(OpenAIBackend(f'{server}/v1', 'local')).complete(SKY, choices=CHOICES)
    assert (r.backend, r.choice, r.text) == ('openai', 'blue', 'blue') and r.tokens_in > 0
    r = chain(OpenAIBackend(f'{server}/v1', 'local')).complete('Give the colour of the sky as JSON.', schema=Answer, max_tokens=20)
    assert isinstance(r.parsed, Answer)   # enforced by the server's local model, validated again by the client


def test_429_retry_after_is_honoured(server):
    before = hits(server)['hits'].get('429once', 0)
    t0 = time.monotonic()
    r = chain(fault(server, '429once')).complete(SKY, choices=CHOICES)
    assert r.choice == 'blue' and time.monotonic() - t0 >= 1.0          # waited the server's Retry-After: 1
    assert hits(server)['hits']['429once'] - before == 2
    assert hits(server)['auth']['429once'] >= 2                           # the key went as a bearer token


def test_500s_are_retried_then_the_next_backend_answers(server):
    m = llm_metrics()
    before = m['failures'].labels('primary', 'server_error')._value.get()
    r = chain(fault(server, '500', 'primary'), OpenAIBackend(f'{server}/v1', 'local', name='secondary'), retries=2).complete(SKY, choices=CHOICES)
    assert (r.backend, r.choice) == ('secondary', 'blue')
    assert hits(server)['hits']['500'] >= 3
    assert m['failures'].labels('primary', 'server_error')._value.get() - before == 3   # first try + 2 retries


def test_invalid_json_is_a_backend_failure_not_a_crash(server):
    with pytest.raises(LLMUnavailableError, match='invalid_json'):
        chain(fault(server, 'badjson'), retries=1).complete(SKY, choices=CHOICES)
    assert hits(server)['hits']['badjson'] == 2


@pytest.mark.parametrize('mode,deadline', [('hang', 2.0), ('429', 2.5)])
def test_the_deadline_is_never_exceeded(server, mode, deadline):
    t0 = time.monotonic()
    with pytest.raises(LLMUnavailableError) as e:
        chain(fault(server, mode, timeout=30), retries=5).complete(SKY, choices=CHOICES, deadline=deadline)
    took = time.monotonic() - t0
    assert took <= deadline + 0.5, f'{mode}: {took:.2f}s for a {deadline}s deadline ({e.value})'


def test_breaker_opens_and_recovers(server):
    from prometheus_client import REGISTRY
    httpx.post(f'{server}/control/switch', params=dict(fail=True))
    c = chain(fault(server, 'switch', 'flaky'), retries=0, breaker_threshold=2, breaker_cooldown=1.0)
    for _ in range(2):
        with pytest.raises(LLMUnavailableError, match='server_error'): c.complete(SKY, choices=CHOICES)
    assert c.status()[0]['breaker_state'] == 'open'
    assert REGISTRY.get_sample_value('mlp_llm_breaker_state', {'backend': 'flaky'}) == 2
    n = hits(server)['hits']['switch']
    with pytest.raises(LLMUnavailableError, match='circuit open'): c.complete(SKY, choices=CHOICES)
    assert hits(server)['hits']['switch'] == n                      # an open breaker sends nothing
    httpx.post(f'{server}/control/switch', params=dict(fail=False))
    time.sleep(1.1)
    assert c.status()[0]['breaker_state'] == 'half_open'
    assert c.complete(SKY, choices=CHOICES).choice == 'blue'        # the probe succeeds
    assert c.status()[0]['breaker_state'] == 'closed'
    assert REGISTRY.get_sample_value('mlp_llm_breaker_state', {'backend': 'flaky'}) == 0


def test_mlp_llm_commands_against_the_server(server, mlp_home):
    env = dict(MLP_LLM_URL=f'{server}/v1', MLP_LLM_MODEL='local', MLP_LLM_API_KEY='sk-test-secret')
    r = run_mlp('llm', 'backends', '--json', env=env, check=0)
    assert [b['name'] for b in json.loads(r.stdout)] == ['openai', 'local'] and 'sk-test' not in r.stdout
    r = run_mlp('llm', 'complete', SKY, '--choice', 'blue', '--choice', 'green', '--json', env=env, check=0)
    out = json.loads(r.stdout)
    assert (out['backend'], out['choice']) == ('openai', 'blue') and 'sk-test' not in r.stdout + r.stderr
    r = run_mlp('llm', 'classify', 'Please erase my account and all data you hold on me.', '--k', '4', '--json', env=env, check=0)
    out = json.loads(r.stdout)
    assert set(out) == {'label', 'subtype', 'confidence', 'backend', 'latency_ms'} and out['backend'] == 'openai'
    assert out['label'] in ('privacy_request', 'data_deletion', 'opt_out', 'other') and 0 < out['confidence'] <= 1
    r = run_mlp('config', 'show', env=env, check=0)
    assert 'sk-test-secret' not in r.stdout and '*****' in r.stdout


def test_over_long_text_is_truncated_with_a_warning(server, mlp_home):
    from mlportfolio.core.llm import MAX_CONTENT_CHARS
    env = dict(MLP_LLM_URL=f'{server}/fault/echo/v1', MLP_LLM_MODEL='local')
    r = run_mlp('llm', 'complete', 'word ' * 3000 + SKY, '--choice', 'blue', '--choice', 'green', '--json', env=env, check=0)
    assert json.loads(r.stdout)['choice'] == 'blue' and 'truncated to 8000' in r.stderr
    assert hits(server)['longest']['echo'] == MAX_CONTENT_CHARS   # what reached the endpoint was cut


@pytest.mark.parametrize('args,words', [
    (['llm', 'complete', ''], 'no user text'),
    (['llm', 'complete', 'hi', '--choice', 'only'], 'at least two distinct'),
    (['llm', 'classify', 'hi', '--data', 'missing.parquet'], 'data file not found'),
])
def test_bad_input_is_one_line_and_exit_2(mlp_home, args, words):
    r = run_mlp(*args)
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'Traceback' not in r.stderr


def test_out_of_range_option_is_a_usage_error():
    "Numeric options carry their bounds (the hostile scan's rule): Typer names the option and the bound, exit 2."
    r = run_mlp('llm', 'complete', 'hi', '--max-tokens', '0')
    assert r.returncode == 2 and '--max-tokens' in r.stderr and 'greater than or equal to 1' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr


def test_no_backend_answers_is_exit_1(mlp_home):
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()   # nothing listens there
    # MLP_LOG_LEVEL: the local model may start its one-time conversion within the deadline, and its INFO progress line
    # would go to stderr beside the error; the error is what this test reads
    env = dict(MLP_LLM_URL=f'http://127.0.0.1:{port}/v1', MLP_LLM_MODEL='x', MLP_LLM_CACHE_DIR=str(mlp_home/'empty-llm-cache'),
               MLP_LOG_LEVEL='WARNING')
    r = run_mlp('llm', 'complete', 'hi', '--deadline', '3', env=env)
    assert r.returncode == 1 and 'no LLM backend answered' in r.stderr and len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
