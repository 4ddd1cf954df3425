"""QuickCapture integration tests: the real API under uvicorn on loopback, the `mlp capture` CLI, a SIGKILL
during bulk ingest, 1,000 hostile requests, the offline spool, and a real Prometheus scrape (when installed)."""
import json, os, random, shutil, signal, socket, sqlite3, string, subprocess, sys, threading, time, uuid
from pathlib import Path

import httpx
import pytest

from conftest import MLP, run_mlp, stop_process

API_KEY = 'test-key-123'
HDR = {'X-API-Key': API_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    "`mlp capture serve` as a real subprocess on 127.0.0.1."
    def __init__(self, home: Path, db: Path, port: int | None = None, save_every: int = 1000, api_key: str | None = API_KEY):
        self.home, self.db, self.port = home, db, port or free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        env = {**os.environ, 'MLP_HOME': str(home), 'MLP_PROGRESS': 'false'}
        env.pop('MLP_API_KEY', None)
        if api_key: env['MLP_API_KEY'] = api_key
        self.log = open(home/f'server-{self.port}-{time.time_ns()}.log', 'w')
        self.proc = subprocess.Popen([MLP, 'capture', 'serve', '--port', str(self.port), '--db', str(db),
                                      '--log-level', 'warning', '--index-save-every', str(save_every)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f'server exited {self.proc.returncode}: {Path(self.log.name).read_text()[-2000:]}')
            try:
                if httpx.get(self.url + '/health', timeout=2).status_code in (200, 503): return
            except httpx.HTTPError: pass
            time.sleep(0.3)
        self.kill(); raise AssertionError('server did not start in 180 s')

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.log.close()

    def stop(self): self.kill(signal.SIGTERM)

    def alive(self) -> bool: return self.proc.poll() is None


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp('capture-home')
    srv = Server(home, home/'capture'/'capture.sqlite')
    yield srv
    srv.stop()


def _series_key(series: str):
    name, _, labels = series.partition('{')
    return name, frozenset(p for p in labels.rstrip('}').split(',') if p)


# --------------------------------------------------------------------------------------------- API
def test_api_crud_search_auth_limits(server):
    u = server.url
    with httpx.Client(base_url=u, timeout=30) as c:
        r = c.post('/notes', json={'text': 'ml, ml.nlp: read the attention paper on transformers : section 3', 'id': 'crud-1'}, headers=HDR)
        assert r.status_code == 201, r.text
        note = r.json()
        assert note['tags'] == ['ml', 'ml.nlp'] and note['comment'] == 'section 3' and note['route_tag']
        same = 'ml, ml.nlp: read the attention paper on transformers : section 3'
        assert c.post('/notes', json={'text': same, 'id': 'crud-1'}, headers=HDR).status_code == 200   # idempotent replay
        assert c.post('/notes', json={'text': 'other text', 'id': 'crud-1'}, headers=HDR).status_code == 409   # same id, other text
        assert c.get('/notes/crud-1').json()['body'] == note['body']
        assert c.get(f"/notes/{note['id']}").json()['uid'] == 'crud-1'
        # auth: writes need the key, reads do not
        r = c.post('/notes', json={'text': 'no key'})
        assert r.status_code == 401 and 'X-API-Key' in r.json()['error']
        assert c.post('/notes', json={'text': 'bad key'}, headers={'X-API-Key': 'nope'}).status_code == 401
        assert c.delete('/notes/crud-1').status_code == 401
        # edit keeps history and re-routes
        r = c.patch('/notes/crud-1', json={'text': 'todo: renew the passport before the trip'}, headers=HDR)
        assert r.status_code == 200 and r.json()['version'] == 2 and r.json()['route_tag'] == 'todo_item'
        # search in all modes, with filters
        for mode in ('keyword', 'semantic', 'hybrid'):
            r = c.get('/search', params={'q': 'renew passport', 'mode': mode, 'k': 3})
            assert r.status_code == 200 and r.json()['results'][0]['uid'] == 'crud-1', (mode, r.text)
        assert c.get('/search', params={'q': 'passport', 'tags': 'todo', 'mode': 'keyword'}).json()['results']
        assert c.get('/search', params={'q': 'passport', 'tags': 'ml', 'mode': 'keyword'}).json()['results'] == []
        # clear 4xx errors
        for bad in [c.get('/search', params={'q': 'x', 'mode': 'nope'}), c.get('/search', params={'q': 'x', 'k': 0}),
                    c.get('/search', params={'q': 'x', 'since': 'last tuesday'}), c.get('/notes/does-not-exist'),
                    c.post('/notes', json={'text': '   '}, headers=HDR), c.post('/notes', json={'txt': 'typo'}, headers=HDR)]:
            assert 400 <= bad.status_code < 500 and bad.json()['error'], bad.text
        r = c.post('/notes', content=b'{"text": "' + b'a' * 100_000 + b'"}', headers={**HDR, 'content-type': 'application/json'})
        assert r.status_code == 413 and 'limit' in r.json()['error']
        def chunks():   # no Content-Length: the limit still holds
            for _ in range(20): yield b'x' * 10_000
        r = c.post('/notes', content=chunks(), headers={**HDR, 'content-type': 'application/json'})
        assert r.status_code == 413
        # delete
        assert c.delete('/notes/crud-1', headers=HDR).json()['uid'] == 'crud-1'
        assert c.get('/notes/crud-1').status_code == 404
        assert all(x['uid'] != 'crud-1' for x in c.get('/search', params={'q': 'renew passport', 'mode': 'semantic'}).json()['results'])
        h = c.get('/health', params={'deep': 'true'}).json()
        assert h['status'] == 'ok' and h['agrees'] and h['integrity'] == 'ok'


def test_metrics_wired_into_code_paths(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        def value(text, series):
            'Value of one series, given as name{a="1",b="2"} in any label order.'
            want = _series_key(series)
            for line in text.splitlines():
                if line and not line.startswith('#') and _series_key(line.rsplit(' ', 1)[0]) == want:
                    return float(line.rsplit(' ', 1)[1])
            return 0.0
        before = c.get('/metrics').text
        c.post('/notes', json={'text': 'metrics: count this note in the ingested total please', 'id': f'm-{uuid.uuid4().hex}'}, headers=HDR)
        c.post('/notes', json={'text': '#x 123 %%%'}, headers=HDR)            # stored, invalid
        c.post('/notes', json={'text': '\x00\x01'}, headers=HDR)              # passes the schema, rejected by the parser (empty once cleaned)
        after = c.get('/metrics').text
        for series in ('quickcapture_notes_ingested_total{status="valid"}', 'quickcapture_notes_ingested_total{status="invalid"}',
                       'quickcapture_notes_ingested_total{status="rejected"}'):
            assert value(after, series) == value(before, series) + 1, series
        assert value(after, 'quickcapture_validation_failure_total{code="no_words",severity="error"}') >= 1
        for name in ('quickcapture_processing_duration_seconds_bucket{le="+Inf",stage="embed"}',
                     'quickcapture_storage_operation_duration_seconds_count{operation="insert"}',
                     'quickcapture_http_requests_total{method="POST",route="/notes",status="201"}'):
            assert value(after, name) > 0, name
        assert value(after, 'quickcapture_active_notes') == c.get('/health').json()['notes']


# ---------------------------------------------------------------------------------------- hostile
def hostile_payloads(rng: random.Random) -> list:
    "1,000 (kind, request kwargs) pairs: empty, 1 MB, binary, SQL injection, odd unicode, control characters, wrong types."
    sqli = ["'; DROP TABLE notes; --", "1 OR 1=1", "x'); DELETE FROM notes_fts; --", "\" OR \"\"=\"", "UNION SELECT * FROM sqlite_master",
            "notes_fts MATCH '*'", "NEAR(a b) AND -c OR \"", "'); PRAGMA writable_schema=1; --"]
    uni = ['\u202eevil\u202c text', 'zw\u200bsp\u200dace', 'e\u0301\u0301\u0301 combining', '🙂' * 200, '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters',
           '\ufeffbom note', 'مرحبا بالعالم note', '日本語のメモ #タグ', '\ud800 lone surrogate', 'a\udfffb']
    out = []
    for i in range(1000):
        kind = i % 10
        if kind == 0: out.append(('empty', dict(json={'text': rng.choice(['', ' ', '\n\t', '#a #b', 'tag:', '//', 'x, y: //only a comment'])})))
        elif kind == 1:
            if i % 100 == 1: out.append(('1mb', dict(content=b'{"text": "' + b'A' * (1 << 20) + b'"}', headers={'content-type': 'application/json'})))
            elif i % 50 == 11: out.append(('big', dict(json={'text': 'big: ' + 'word ' * 1_100})))   # stored, body too long
            else: out.append(('big', dict(json={'text': 'big: ' + 'word ' * rng.randint(4_001, 6_000)})))  # over 20,000 characters
        elif kind == 2: out.append(('binary', dict(content=bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))),
                                                   headers={'content-type': 'application/json'})))
        elif kind == 3: out.append(('binary-text', dict(json={'text': bytes(rng.getrandbits(8) for _ in range(200)).decode('latin-1')})))
        elif kind == 4: out.append(('sqli', dict(json={'text': f'sql, {rng.choice(sqli)}: {rng.choice(sqli)} {i}'})))
        elif kind == 5: out.append(('unicode', dict(content=json.dumps({'text': rng.choice(uni) + f' {i}'}).encode(),
                                                    headers={'content-type': 'application/json'})))
        elif kind == 6: out.append(('control', dict(json={'text': ''.join(rng.choice(['\x00', '\x07', '\x1b[31m', '\x7f', 'ok ', 'note ']) for _ in range(30))})))
        elif kind == 7: out.append(('types', dict(json=rng.choice([{'text': 123}, {'text': None}, [], 'text', {'text': ['a']}, {},
                                                                  {'text': 'x', 'id': 'bad id!'}, {'text': 'x', 'id': 'x' * 200},
                                                                  {'text': 'ok note', 'dry_run': 'maybe'}, {'text': {'$gt': ''}}]))))
        elif kind == 8: out.append(('tags', dict(json={'text': ', '.join(''.join(rng.choices(string.printable, k=60)).replace(':', '') for _ in range(30)) + ': body of many tags'})))
        else: out.append(('search', dict(params={'q': rng.choice(sqli + [u for u in uni if not any('\ud800' <= ch <= '\udfff' for ch in u)] + ['*', '"', '(', 'a' * 3000]), 'mode': rng.choice(['keyword', 'semantic', 'hybrid'])})))
    return out


def test_hostile_requests_service_stays_up(server):
    payloads = hostile_payloads(random.Random(7))
    results, lock = [], threading.Lock()
    with httpx.Client(base_url=server.url, timeout=60) as c:
        n_before = c.get('/health').json()['notes']
    def worker(chunk):
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for kind, kw in chunk:
                if kind == 'search': r = c.get('/search', **kw)
                else:
                    headers = {**HDR, **kw.pop('headers', {})}
                    r = c.post('/notes', headers=headers, **kw)
                try: body = r.json()
                except ValueError: body = None
                with lock: results.append((kind, r.status_code, body))
    threads = [threading.Thread(target=worker, args=(payloads[i::3],)) for i in range(3)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert len(results) == 1000
    assert server.alive()
    codes = {}
    for kind, code, body in results:
        codes.setdefault(kind, set()).add(code)
        assert code < 500, (kind, code, body)
        assert isinstance(body, dict), (kind, code)
        if code >= 400: assert isinstance(body.get('error'), str) and body['error'] and '\n' not in body['error'], (kind, body)
        elif kind != 'search': assert 'issues' in body and 'id' in body
    assert codes['1mb'] == {413} and codes['empty'] == {422} and codes['binary'] <= {400, 422}, codes
    stored = sum(1 for kind, code, _ in results if kind != 'search' and code == 201)
    invalid = [b for kind, code, b in results if code == 201 and not b['valid']]
    assert stored > 200 and invalid, (stored, len(invalid))        # damaged notes are kept, with their issues
    with httpx.Client(base_url=server.url, timeout=60) as c:
        h = c.get('/health', params={'deep': 'true'}).json()
        assert h['status'] == 'ok' and h['integrity'] == 'ok' and h['agrees'], h
        assert h['notes'] == n_before + stored
        assert c.get('/search', params={'q': 'DROP TABLE', 'mode': 'keyword'}).status_code == 200
    con = sqlite3.connect(server.db)   # the database is intact, read by an independent connection
    assert con.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    assert con.execute('SELECT COUNT(*) FROM notes').fetchone()[0] == h['notes']
    assert con.execute("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('notes', 'notes_fts', 'note_tags', 'vectors')").fetchone()[0] == 4
    con.close()


# --------------------------------------------------------------------------------------- SIGKILL
WORDS = ('alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec '
         'romeo sierra tango uniform victor whiskey xray yankee zulu parser router index vector search review').split()


def test_sigkill_during_bulk_ingest(tmp_path):
    """Kill -9 the server in the middle of a bulk ingest (index saved every 50 changes, so the kill lands with
    the saved index behind SQLite); after a restart SQLite and FAISS agree and every acknowledged note is found.
    Uses 300 notes through HTTP rather than the issue's 10,000 to fit the test budget (the 10k scale is covered at the
    storage layer by test_sigkill_during_10k_store_ingest): the property under test (log replay
    after a kill between or during index saves) is the same at any size; bench/capture.py ingests 10k."""
    home, db = tmp_path/'home', tmp_path/'home'/'capture'/'capture.sqlite'
    home.mkdir()
    srv = Server(home, db, save_every=50)
    rng = random.Random(3)
    acked, lock, stop = {}, threading.Lock(), threading.Event()
    target = 300
    def ingest(worker: int):
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            i = 0
            while not stop.is_set():
                uid = f'w{worker}-{i}-{uuid.uuid4().hex[:8]}'
                token = f'tok{uuid.uuid4().hex[:12]}'
                text = f"{rng.choice(WORDS)}, {rng.choice(WORDS)}: {' '.join(rng.choices(WORDS, k=8))} {token}"
                try:
                    r = c.post('/notes', json={'text': text, 'id': uid}, headers=HDR)
                except httpx.HTTPError:
                    return                                         # the server is gone
                if r.status_code == 201:
                    with lock: acked[uid] = (token, text)
                i += 1
    threads = [threading.Thread(target=ingest, args=(w,)) for w in range(3)]
    for t in threads: t.start()
    while len(acked) < target and srv.alive(): time.sleep(0.02)
    srv.kill(signal.SIGKILL)                                       # mid-ingest: requests are in flight
    stop.set()
    for t in threads: t.join()
    assert len(acked) >= target
    srv2 = Server(home, db, save_every=50)
    try:
        with httpx.Client(base_url=srv2.url, timeout=60) as c:
            h = c.get('/health', params={'deep': 'true'}).json()
            assert h['status'] == 'ok' and h['agrees'] and h['integrity'] == 'ok', h
            assert h['index_vectors'] == h['notes'] == h['fts_rows'] >= len(acked)
            for uid, (token, text) in acked.items():
                res = c.get('/search', params={'q': token, 'mode': 'keyword', 'k': 1}).json()['results']
                assert res and res[0]['uid'] == uid, (uid, res)
            for uid, (token, text) in list(acked.items())[::10]:     # and by meaning, through FAISS
                res = c.get('/search', params={'q': text.split(':', 1)[1], 'mode': 'semantic', 'k': 3}).json()['results']
                assert uid in [x['uid'] for x in res], uid
    finally:
        srv2.stop()


BULK_WRITER = """
import sys, numpy as np
from mlportfolio.capture.parse import parse_note
from mlportfolio.capture.store import NoteStore
st = NoteStore(sys.argv[1], save_every=700)
rng = np.random.default_rng(0)
for b in range(100):
    items = []
    for j in range(100):
        i = b * 100 + j
        v = rng.normal(size=384).astype(np.float32); v /= np.linalg.norm(v)
        items.append((parse_note(f'bulk, b{b}: note number {i} with token tok{i}x'), None, v, f'u{i}'))
    st.add_many(items, batch=100)          # one committed transaction: these 100 are acknowledged
    print(' '.join(f'u{b * 100 + j}' for j in range(100)), flush=True)
"""


def test_sigkill_during_10k_store_ingest(tmp_path):
    """The issue's scale at the storage layer: a writer bulk-ingests 10,000 notes (100 per transaction, random
    unit vectors so no embedding time, index saved every 700 changes) and is killed with SIGKILL after 6,000
    acknowledgements, while it is writing. Reopening the store must find SQLite and FAISS in agreement and
    every acknowledged note by keyword (FTS5) and by its own vector (FAISS)."""
    import numpy as np
    from mlportfolio.capture.store import NoteStore
    db = tmp_path/'bulk.sqlite'
    script = tmp_path/'writer.py'; script.write_text(BULK_WRITER)
    p = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, 'MLP_HOME': str(tmp_path/'home')})
    acked = []
    for line in p.stdout:
        acked += line.split()
        if len(acked) >= 6000: break
    p.send_signal(signal.SIGKILL); p.wait(timeout=60)
    assert len(acked) >= 6000 and p.returncode == -signal.SIGKILL
    st = NoteStore(db)
    try:
        assert st.last_open.startswith('caught up') or st.last_open in ('loaded', 'rebuilt'), st.last_open
        print('reopened after SIGKILL:', st.last_open, '; acknowledged:', len(acked))
        chk = st.check()
        assert chk['agrees'] and chk['integrity'] == 'ok' and chk['notes'] >= len(acked), chk
        assert chk['notes'] < 10_000, 'the writer finished before the kill; the test proved nothing'
        for uid in acked:
            i = uid[1:]
            hits = st.keyword_search(f'tok{i}x', k=1)
            assert hits and st.get(hits[0][0]).uid == uid, uid
        ids, vecs = st._vectors([st.get(u).id for u in acked[::25]])
        for nid, v in zip(ids, vecs):
            assert st.vector_search(v, 1)[0][0] == nid
    finally:
        st.close()


# ------------------------------------------------------------------------------ spool, CLI, Prometheus
def test_offline_spool_then_flush_is_idempotent(server, mlp_home):
    dead = f'http://127.0.0.1:{free_port()}'
    r1 = run_mlp('capture', 'add', 'spool: written while the server is down', '--remote', dead, '--json', check=0,
                 env={'MLP_API_KEY': API_KEY})
    r2 = run_mlp('capture', 'add', 'spool: a second offline note', '--remote', dead, '--id', 'spool-fixed', '--json', check=0,
                 env={'MLP_API_KEY': API_KEY})
    a, b = json.loads(r1.stdout), json.loads(r2.stdout)
    assert a['status'] == b['status'] == 'spooled' and b['uid'] == 'spool-fixed'
    spool = mlp_home/'capture'/'spool.jsonl'
    lines = spool.read_text().splitlines()
    assert len(lines) == 2
    spool.write_text('\n'.join(lines + [lines[1]]) + '\n')          # a replayed entry (e.g. a lost answer)
    out = run_mlp('capture', 'flush', '--url', server.url, check=0, env={'MLP_API_KEY': API_KEY}).stdout
    assert 'sent 2' in out and 'already stored 1' in out and 'still spooled 0' in out, out
    with httpx.Client(base_url=server.url) as c:
        assert c.get('/notes/spool-fixed').json()['body'] == 'a second offline note'
        assert c.get(f"/notes/{a['uid']}").status_code == 200
    assert 'sent 0' in run_mlp('capture', 'flush', '--url', server.url, check=0).stdout
    bad = run_mlp('capture', 'add', '', '--remote', server.url, env={'MLP_API_KEY': API_KEY})
    assert bad.returncode == 2 and 'rejected' in bad.stderr and 'Traceback' not in bad.stderr


def test_cli_local_add_and_errors(mlp_home):
    "The local CLI stores a note in MLP_HOME; user errors are one line on stderr and exit code 2 (search is tested in 79_capture_cli)."
    r = run_mlp('capture', 'add', '#ml #ml.nlp read the BERT paper //skim section 3 @2026-11-26T10:00', '--json', check=0)
    n = json.loads(r.stdout)
    assert n['tags'] == ['ml', 'ml.nlp'] and n['comment'] == 'skim section 3' and n['event_time'].startswith('2026-11-26T10:00')
    assert n['created'] and n['route_tag'] and n['valid'] and (mlp_home/'capture'/'capture.sqlite').exists()
    for args, msg in [(['add', ''], 'empty note'), (['search', 'x', '--mode', 'fuzzy'], "not one of keyword, semantic, hybrid"),
                      (['tags', '--drift', 'soon'], "window 'soon'")]:
        r = run_mlp('capture', *args)
        assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr)


def test_prometheus_scrapes_metrics(server, tmp_path):
    prom = shutil.which('prometheus')
    if prom is None:
        pytest.skip('Prometheus server binary not found: install the Debian package `prometheus` to scrape /metrics for real')
    port = free_port()
    cfg = tmp_path/'prometheus.yml'
    cfg.write_text('global: {scrape_interval: 1s, evaluation_interval: 1s}\n'
                   'scrape_configs:\n  - job_name: quickcapture\n    metrics_path: /metrics\n'
                   f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n")
    with httpx.Client(base_url=server.url) as c:
        c.post('/notes', json={'text': 'prometheus: scrape me for the ingest counter'}, headers=HDR)
    p = subprocess.Popen([prom, f'--config.file={cfg}', f'--storage.tsdb.path={tmp_path/"tsdb"}',
                          f'--web.listen-address=127.0.0.1:{port}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, got = time.time() + 60, None
        while time.time() < deadline and got is None:
            time.sleep(1)
            try:
                r = httpx.get(f'http://127.0.0.1:{port}/api/v1/query', params={'query': 'sum(quickcapture_notes_ingested_total)'}, timeout=5)
                res = r.json()['data']['result']
                if res: got = float(res[0]['value'][1])
            except (httpx.HTTPError, KeyError, ValueError): pass
        assert got is not None and got >= 1, 'Prometheus never scraped quickcapture_notes_ingested_total'
        r = httpx.get(f'http://127.0.0.1:{port}/api/v1/query', params={'query': 'up{job="quickcapture"}'}, timeout=5)
        assert r.json()['data']['result'][0]['value'][1] == '1'
    finally:
        stop_process(p)


SPOOL_WORKER = """
import json, sys, time
from mlportfolio.capture.client import flush, spool
url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < start: time.sleep(0.001)        # both processes begin together
counts = []
for r in range(6):                                   # append while the other process flushes, then flush
    for j in range(5): spool(dict(uid=f'{name}-{r}-{j}', text=f'spool race: note {j} of round {r} from {name}', url=url))
    counts.append(flush(timeout=30))
print(json.dumps(counts))
"""


def test_concurrent_spool_flushes_lose_nothing(server, tmp_path):
    """Two real processes append to and flush the same spool at the same time, against the real server on
    loopback: neither raises, every spooled note reaches the server, and the spool ends empty."""
    home = tmp_path/'home'
    script = tmp_path/'spool_worker.py'; script.write_text(SPOOL_WORKER)
    env = {**os.environ, 'MLP_HOME': str(home), 'MLP_API_KEY': API_KEY, 'MLP_PROGRESS': 'false'}
    start = f'{time.time() + 3:.3f}'
    procs = [subprocess.Popen([sys.executable, str(script), server.url, name, start], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ('pa', 'pb')]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and 'Traceback' not in err, err[-3000:]
    spool = home/'capture'/'spool.jsonl'
    assert spool.read_text() == '', spool.read_text()[:500]
    assert not [f.name for f in spool.parent.iterdir() if '.tmp' in f.name]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        missing = [f'{n}-{r}-{j}' for n in ('pa', 'pb') for r in range(6) for j in range(5)
                   if c.get(f'/notes/{n}-{r}-{j}').status_code != 200]
    assert not missing, missing


def test_flush_rewrite_uses_its_own_temporary_name(mlp_home):
    """The spool rewrite writes to a temporary name of its own (unique per write), so nothing another process
    or an earlier crash left under a fixed name (`spool.jsonl.tmp`, here a folder) can break it or be clobbered."""
    from mlportfolio.capture.client import flush, read_spool, spool, spool_path
    dead = f'http://127.0.0.1:{free_port()}'
    for i in range(2): spool(dict(uid=f'keep-{i}', text=f'kept note {i}', url=dead))
    stray = spool_path().with_name('spool.jsonl.tmp'); stray.mkdir()
    (stray/'other.txt').write_text('not ours')
    counts = flush(timeout=2)
    assert counts['remaining'] == 2 and [e['uid'] for e in read_spool()] == ['keep-0', 'keep-1']
    assert (stray/'other.txt').read_text() == 'not ours'
