"""`mlp report` over a real MLP_HOME: a small dataset (`mlp data generate`) and a job run (`mlp job run embed_corpus`)
make outputs, the page links them, and headless Chromium (Selenium + /usr/bin/chromedriver) finds that every link
resolves to a file that exists; what has not run is listed with its command."""
import functools, http.server, threading

import pytest

from conftest import run_mlp


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    import os
    home = tmp_path_factory.mktemp('report')/'home'
    env = {'MLP_HOME': str(home), 'MLP_PROGRESS': 'false'}
    run_mlp('data', 'generate', '--n', '300', '--seed', '3', env=env, check=0)
    corpus = home.parent/'corpus.txt'
    corpus.write_text('delete my account\nwhat is your refund policy\n')
    run_mlp('job', 'run', 'embed_corpus', '-p', f'input_path={corpus}', env=env, check=0)
    r = run_mlp('report', env=env, check=0)
    assert f'report: {home/"index.html"}' in r.stdout.replace('\n', ''), r.stdout
    return home


def test_report_lists_what_ran_and_what_did_not(home):
    text = (home/'index.html').read_text()
    assert 'validation passed' in text and '300 rows' in text
    assert 'embed_corpus' in text and 'succeeded in' in text
    assert text.count('not run yet') >= 4 and 'mlp job run train -p promote=True' in text and 'mlp job run perception' in text


def test_every_report_link_resolves_in_chromium(home, browser):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(home))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    drv = browser
    try:
        drv.get(f'http://127.0.0.1:{srv.server_address[1]}/index.html')
        rows = drv.execute_script("return [...document.querySelectorAll('#outputs tbody tr')].map(r => [r.className, r.cells[0].textContent])")
        assert ['ok', 'data'] in rows and ['ok', 'jobs'] in rows and ['missing', 'train'] in rows, rows
        status = drv.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const links = [...document.querySelectorAll('#outputs a')].map(a => a.href);"
            "Promise.all(links.map(h => fetch(h, {method: 'HEAD'}).then(r => [h, r.status]))).then(done);")
    finally:
        srv.shutdown()
    assert len(status) >= 4 and all(code == 200 for _, code in status), status


def test_capture_probe_reads_the_real_store_schema(tmp_path):
    "The capture row queries a database made by capture.store's own migrations (no mocked schema)."
    store = pytest.importorskip('mlportfolio.capture.store', reason='the [capture] extra is not installed')
    from mlportfolio.core.report import capture_outputs
    db = tmp_path/'capture'/'capture.sqlite'
    db.parent.mkdir()
    conn = store.connect(db)
    store.migrate(conn); conn.close()
    out = capture_outputs(tmp_path)[0]
    assert out.status == '0 notes; no routes' and out.links['stats'].is_file(), out
