"""The documentation site, checked the way a reader sees it: built by tools/docsite.py (nbdev processing + MkDocs
Material), served on 127.0.0.1 and opened in headless Chromium through Selenium and /usr/bin/chromedriver.

The site is built once per session without re-executing notebooks, except `62_mapper_report` (cached by content
under `_build/docs`), whose Plotly figure must draw. Skips with a reason when Chromium, chromedriver, MkDocs
Material or Selenium is missing."""
import functools, http.server, importlib.util, json, re, shutil, sys, threading, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse, unquote

import pytest

from conftest import needs_browser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import docsite  # noqa: E402

PLOTLY_NB = '62_mapper_report'
needs_mkdocs = pytest.mark.skipif(importlib.util.find_spec('material') is None,
                                  reason='MkDocs Material not installed (pip install -e ".[docs]")')


# ---------------------------------------------------------------- pieces of the builder (no browser)
def test_links_that_cannot_resolve_keep_their_text():
    pages = {'a.md': 'see [`_stage`](train_pipeline.md#_stage), [`train_run`](train_pipeline.md#train_run), '
                     '[models](../concepts/models.md)'}
    assert docsite.drop_outside_links(docsite.drop_private_links(pages))['a.md'] == \
        'see `_stage`, [`train_run`](train_pipeline.md#train_run), models'


def test_system_and_page_names_follow_the_notebook_numbers():
    nbs = docsite.NBS
    assert [docsite.system_of(nbs/n) for n in ('00_errors.ipynb', '07a_report.ipynb', '33_pcc_score.ipynb', '45_api_serve.ipynb',
                                                '52_review_audit.ipynb', '90_cli.ipynb', 'index.ipynb')] == \
           ['core', 'core', 'pcc', 'api', 'review', 'core', 'home']
    assert docsite.system_of(nbs/'jobs'/'train.ipynb') == 'jobs'
    assert docsite.page_name(nbs/'33_pcc_score.ipynb') == 'pcc_score.md'
    assert docsite.page_name(nbs/'07a_report.ipynb') == 'report.md'
    assert docsite.page_name(nbs/'jobs'/'train.ipynb') == 'jobs/train.md'


def test_directives_outputs_and_links_become_markdown():
    assert docsite.split_directives('#| echo: false\n#| output: asis\nshow_doc(f)') == ({'echo': 'false', 'output': 'asis'}, 'show_doc(f)')
    figs = docsite.Figures('p')
    out = docsite.output_markdown({'output_type': 'display_data', 'data': {docsite.PLOTLY_MIME: {'data': [{'x': ['</script>']}]},
                                                                             'text/html': '<div>plotly</div>'}}, figs)
    assert 'class="plotly-figure" id="fig-p-1"' in out and '</script>"' not in out and '<\\/script>' in out
    assert docsite.output_markdown({'output_type': 'stream', 'text': ['\x1b[31mred\x1b[0m\n']}, figs) == '```text\nred\n```'
    html_out = docsite.output_markdown({'output_type': 'execute_result', 'data': {'text/html': '<table>\n\n<tr></tr></table>'}}, figs)
    assert '\n\n' not in html_out.strip('\n').split('\n', 1)[1]  # no blank line inside the HTML block
    assert docsite.showdoc_anchors('---\n\n### NoteStore.add\n\ntext ### x') == '---\n\n### NoteStore.add {#notestore.add}\n\ntext ### x'
    pages = docsite.fix_method_anchors({'a.md': '### Q {#q}\n### Q.b {#q.b}', 'c.md': '[x](a.md#q.edit) [y](a.md#q.b) [z](a.md#r.s)'})
    assert pages['c.md'] == '[x](a.md#q) [y](a.md#q.b) [z](a.md#r.s)'
    doc = 'https://mlportfolio.github.io/mlportfolio'
    assert docsite.local_links(f'[`f`]({doc}/pcc_score.html#score_partition) [s](https://github.com/x/y.py#LNone)', doc) == \
           '[`f`](pcc_score.md#score_partition) [s](https://github.com/x/y.py)'


def _command_paths(cmd, ctx):
    "Every command path under `cmd` (Typer vendors its own click: groups are what have `list_commands`)."
    yield ctx.command_path
    for name in (cmd.list_commands(ctx) if hasattr(cmd, 'list_commands') else []):
        sub = cmd.get_command(ctx, name)
        yield from _command_paths(sub, ctx.__class__(sub, info_name=name, parent=ctx))


def test_nbdev_processing_applies_the_directives_and_show_doc():
    "07a_report after nbdev's processors: hidden and exported cells gone, one API entry per exported name."
    nb = docsite.processed(docsite.NBS/'07a_report.ipynb')
    sources = [c.source or '' for c in nb.cells]
    assert not any('fastcore.test import' in s or 'default_exp' in s or s.startswith('#| export') for s in sources)
    entries = docsite.api_entries(nb)
    from mlportfolio.core import report
    assert all(any(f'### {name}' in e for e in entries) for name in report.__all__ if callable(getattr(report, name))), entries
    page = docsite.notebook_page(nb, 'report.md', docsite.NBS/'07a_report.ipynb', 'https://mlportfolio.github.io/mlportfolio')
    assert page.startswith('# One report for the whole chain\n') and '```python\nroot = Path(tempfile.mkdtemp())' in page


def test_cli_reference_covers_every_command():
    import typer
    from mlportfolio.cli import app
    text = docsite.cli_reference()
    root = typer.main.get_command(app)
    every = list(_command_paths(root, root.context_class(root, info_name='mlp')))
    assert len(every) > 30 and all(f'## `{p}`' in text for p in every), [p for p in every if f'## `{p}`' not in text]
    assert '| `--out` |' in text.replace('-o, ', '').replace(' -o', '') or '`-o, --out' in text
    assert '## `mlp report`' in text and '## `mlp pcc score`' in text


def test_every_tutorial_command_parses_against_the_cli():
    "Each `mlp ...` line of the tutorials names a command that exists, with options it takes (parsed, not run)."
    import shlex, typer
    from mlportfolio.cli import app
    root = typer.main.get_command(app)
    tutorials = sorted((docsite.NBS/'tutorials').glob('*.md'))
    assert {t.stem for t in tutorials} >= {'data', 'train', 'pcc', 'mapper', 'capture', 'perception'}
    for t in tutorials:
        cmds = docsite.tutorial_commands(t.read_text())
        assert len(cmds) == 5, (t.name, cmds)
        for line in cmds:
            args, cmd, ctx = shlex.split(line)[1:], root, None
            while True:  # walk down the groups, then parse the leaf's options and arguments (raises on a bad one)
                ctx = cmd.context_class(cmd, info_name=cmd.name or 'mlp', parent=ctx)
                if not hasattr(cmd, 'list_commands'):
                    cmd.parse_args(ctx, list(args)); break
                assert args and args[0] in cmd.list_commands(ctx), f'{t.name}: {line}: no command {args[:1]}'
                cmd, args = cmd.get_command(ctx, args[0]), args[1:]


# ---------------------------------------------------------------- the built site
@pytest.fixture(scope='session')
def site(tmp_path_factory):
    if importlib.util.find_spec('material') is None: pytest.skip('MkDocs Material not installed')
    out = tmp_path_factory.mktemp('site')
    docsite.build_site(out, ROOT/'_build'/'docs', execute=(PLOTLY_NB,))
    return out


@pytest.fixture(scope='session')
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.links, self.ids = [], set()
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        for k in ('href', 'src'):
            if a.get(k) and tag in ('a', 'link', 'script', 'img'): self.links.append(a[k])


@needs_mkdocs
def test_no_broken_internal_links(site):
    "Every relative href/src of every page resolves to a file of the site, and every #anchor to an id on its page."
    pages, broken = {}, []
    for p in site.rglob('*.html'):
        if p.name == '404.html': continue  # served at any missing path, so MkDocs gives it root-relative links
        parser = _Links(); parser.feed(p.read_text(errors='replace')); pages[p] = parser
    for p, parser in pages.items():
        for link in parser.links:
            u = urlparse(link)
            if u.scheme or link.startswith(('//', 'mailto:', 'data:', 'javascript:')): continue
            target = (p.parent/unquote(u.path)).resolve() if u.path else p
            if target.is_dir(): target = target/'index.html'
            if not target.is_file(): broken.append(f'{p.relative_to(site)} -> {link}'); continue
            if u.fragment and target.suffix == '.html' and target in pages and u.fragment not in pages[target].ids:
                broken.append(f'{p.relative_to(site)} -> {link} (no such anchor)')
    assert len(pages) > 60 and not broken, broken[:20]


@needs_mkdocs
def test_every_module_docs_link_resolves_on_the_site(site):
    "The `Docs:` line nbdev writes into each module names a page (and its .html.md copy) the site has."
    base = 'https://mlportfolio.github.io/mlportfolio/'
    for py in (ROOT/'mlportfolio').rglob('*.py'):
        m = re.search(r'^Docs: (\S+?)(""")?$', py.read_text(), re.M)
        if not m: continue
        assert m.group(1).startswith(base), (py, m.group(1))
        rel = m.group(1)[len(base):]
        assert (site/rel).is_file() and (site/rel.removesuffix('.md')).is_file(), (py, rel)


def _wait(drv, js, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = drv.execute_script(js)
        if v: return v
        time.sleep(0.2)
    raise AssertionError(f'timed out waiting for: {js}')


def _console_errors(drv):
    return [e for e in drv.get_log('browser') if e['level'] == 'SEVERE']


@needs_browser
@needs_mkdocs
def test_home_sidebar_lists_every_system(browser, served):
    browser.get(served + 'index.html')
    assert browser.title.startswith('mlportfolio')
    assert 'Eight ML-engineering systems' in browser.find_element('css selector', 'article').text
    nav = browser.execute_script("return [...document.querySelectorAll('nav.md-nav--primary label.md-nav__link')]"
                                 ".map(e => e.textContent.trim())")
    present = {docsite.system_of(p) for p in docsite.source_notebooks()} - {'home'}
    assert present >= {'core', 'data', 'train', 'pcc', 'mapper', 'capture', 'perception', 'jobs'}
    assert present <= set(nav) and {'Tutorials', 'API reference'} <= set(nav), nav
    links = browser.execute_script("return [...document.querySelectorAll('nav.md-nav--primary a.md-nav__link')].map(e => e.textContent.trim())")
    assert 'CLI reference' in links and len(links) > 100, links
    assert not _console_errors(browser), _console_errors(browser)


@needs_browser
@needs_mkdocs
def test_search_finds_score_partition(browser, served):
    browser.get(served + 'index.html')
    box = browser.find_element('css selector', 'input.md-search__input')
    browser.execute_script("document.querySelector('label.md-search__icon, .md-header__button[for=__search]')?.click()")
    _wait(browser, "return document.querySelector('.md-search__form') !== null")
    box.send_keys('score_partition')
    hits = _wait(browser, "const r=[...document.querySelectorAll('.md-search-result__item a')].map(a=>a.href+' '+a.textContent);"
                          "return r.length ? r : null")
    assert any('pcc_score' in h for h in hits), hits
    assert not _console_errors(browser), _console_errors(browser)


@needs_browser
@needs_mkdocs
def test_api_page_shows_the_signature(browser, served):
    browser.get(served + 'reference_pcc_score.html')
    text = browser.find_element('css selector', 'article').text
    assert 'score_partition' in text and "def score_partition(" in text and "chunk_size:int=1000" in text.replace(' ', '')
    assert 'Score one day of `pcc_cases`'.replace('`', '') in text.replace('`', '')
    assert not _console_errors(browser), _console_errors(browser)


@needs_browser
@needs_mkdocs
def test_plotly_figure_draws(browser, served):
    page = docsite.page_name(docsite.NBS/f'{PLOTLY_NB}.ipynb').replace('.md', '.html')
    browser.get(served + page)
    n = _wait(browser, "const d=[...document.querySelectorAll('.plotly-figure')];"
                       "return d.length && d.every(x=>x.querySelector('svg.main-svg')) ? d.length : 0", timeout=60)
    traces = browser.execute_script("return document.querySelector('.plotly-figure').data.length")
    assert n >= 1 and traces >= 3
    assert not _console_errors(browser), _console_errors(browser)
