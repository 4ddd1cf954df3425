#!/usr/bin/env python
"""Build the documentation site without Quarto: nbdev's processing, executed notebooks, MkDocs Material.

With Quarto installed, `make docs` runs `nbdev-docs` (and `.github/workflows/deploy.yaml` publishes that site to
the URL in `pyproject.toml` [project.urls] Documentation, which nbdev also writes into every module's `Docs:` line).
Where Quarto cannot be installed, this script builds a real site from the same notebooks:

1. **execute** each notebook with a real kernel (nbclient, IPC sockets) and keep the executed copy under
   `BUILD/executed/`, keyed by the notebook's sha256, so only changed notebooks run again (`--execute` picks which;
   `all` means every module notebook, not the papermill job templates in `nbs/jobs/`, which need their inputs);
   a notebook that is not executed is shown with its code and without outputs;
2. **process** it with nbdev's own processors (`FilterDefaults`: frontmatter, `#| hide`, `#| export`, `show_doc`
   for every exported name, doc links...), evaluating the `show_doc` cells against the exported module;
3. **convert** the cells and outputs to Markdown pages (Plotly figures drawn by a local plotly.js, images inline),
   plus an API reference per module, a CLI reference from the Typer app and the tutorials in `nbs/tutorials/`;
4. **render** with MkDocs Material: sidebar grouped by system (from the notebook number prefix), full-text search,
   no network at build or view time (fonts off, plotly.js copied from the plotly package).

Why MkDocs Material rather than mystmd (Jupyter Book 2): mystmd fetches its site theme from GitHub at build time,
which is not one of the package registries this project may use, while MkDocs Material is one PyPI package that
builds offline and ships a client-side search index. Pages keep Quarto's names (`pcc_score.html`, plus the
Markdown copy `pcc_score.html.md`), so the `Docs:` links in the modules resolve on the local site too.

Usage: python tools/docsite.py [--out _docs] [--build _build/docs] [--execute all|none|NAME,NAME] [--no-render]
"""
from __future__ import annotations
import argparse, base64, hashlib, html, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
PLOTLY_MIME = 'application/vnd.plotly.v1+json'

# notebook number prefix -> system: the sidebar groups pages by these, in this order
SYSTEMS = {'0': 'core', '1': 'data', '2': 'train', '3': 'pcc', '4': 'api', '5': 'review', '6': 'mapper',
           '7': 'capture', '8': 'perception', '9': 'core'}
SYSTEM_ORDER = ['core', 'data', 'train', 'pcc', 'api', 'review', 'mapper', 'capture', 'perception', 'jobs']


def system_of(nb: Path) -> str:
    "The system a notebook belongs to: `jobs` for `nbs/jobs/*`, else from the first digit of its number prefix."
    if nb.parent.name == 'jobs': return 'jobs'
    m = re.match(r'(\d)\d', nb.name)
    return SYSTEMS[m.group(1)] if m else 'home'


def page_name(nb: Path) -> str:
    "The page a notebook becomes, as nbdev/Quarto name it: number prefix dropped (`33_pcc_score` -> `pcc_score.md`)."
    from nbdev.config import nbpath2html
    return nbpath2html(nb.relative_to(NBS)).with_suffix('.md').as_posix()


def source_notebooks() -> list[Path]:
    "The notebooks of the site: nbs/*.ipynb and nbs/jobs/*.ipynb (names starting with `_` or `.` skipped)."
    nbs = [*sorted(NBS.glob('*.ipynb')), *sorted((NBS/'jobs').glob('*.ipynb'))]
    return [p for p in nbs if not p.name.startswith(('_', '.'))]


def sha256(path: Path) -> str: return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- 1. execution, cached by content
def executed_copy(nb: Path, build: Path, execute: bool, timeout: int = 900) -> Path:
    """The notebook to render: a cached executed copy when its source hash matches, a fresh execution when
    `execute`, else the source notebook itself (code without outputs)."""
    import nbformat
    dest = build/'executed'/nb.relative_to(NBS)
    digest = sha256(nb)
    if dest.is_file() and nbformat.read(dest, 4).metadata.get('mlp_docs', {}).get('source_sha256') == digest: return dest
    if not execute: return nb
    from nbclient import NotebookClient
    from traitlets.config import Config
    book = nbformat.read(nb, 4)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='mlp-docs-') as tmp:
        cfg = Config({'KernelManager': {'transport': 'ipc', 'connection_file': str(Path(tmp)/'kernel.json')}})
        env_home = os.environ.get('MLP_HOME')
        os.environ['MLP_HOME'] = str(Path(tmp)/'home')  # notebooks write only to a throw-away home
        try:
            NotebookClient(book, timeout=timeout, kernel_name='python3', allow_errors=True, config=cfg,
                           resources={'metadata': {'path': str(nb.parent)}}).execute()
        finally:
            if env_home is None: os.environ.pop('MLP_HOME', None)
            else: os.environ['MLP_HOME'] = env_home
    errors = [o for c in book.cells for o in c.get('outputs', []) if o.get('output_type') == 'error']
    book.metadata['mlp_docs'] = dict(source_sha256=digest, seconds=round(time.perf_counter() - t0, 1), errors=len(errors))
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, dest)
    print(f'executed {nb.relative_to(ROOT)} in {book.metadata.mlp_docs["seconds"]}s'
          + (f' ({len(errors)} cell errors)' if errors else ''), file=sys.stderr)
    return dest


# ---------------------------------------------------------------- 2. nbdev's processing
def default_module(nb) -> str | None:
    "`mlportfolio.x.y` from the notebook's `#| default_exp x.y`, or None."
    for c in nb.cells:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', c.source or '', re.M)
        if m: return f'mlportfolio.{m.group(1)}'


def processed(path: Path):
    """The notebook at `path` after nbdev's doc processors, with the `show_doc` cells evaluated against the
    exported module (nbdev's `exec_show_docs` would re-run every cell that imports something: minutes of tests)."""
    from fastcore.nbio import read_nb
    from nbdev.processors import FilterDefaults, exec_show_docs, _is_showdoc
    from nbdev.process import Processor
    from execnb.shell import CaptureShell

    nb = read_nb(path)
    mod = default_module(nb)  # read before processing: nbdev strips the directive

    class show_docs_from_module(Processor):
        def begin(self):
            self.k = CaptureShell()
            self.k.run_cell('from nbdev.showdoc import show_doc')
            if mod: self.k.run_cell(f'import importlib as _il\nglobals().update({{k: v for k, v in vars(_il.import_module({mod!r})).items() if not k.startswith("__")}})')
        def __call__(self, cell):
            if not _is_showdoc(cell): return
            self.k.cell(cell)
            if self.k.exc: cell.outputs, self.k.exc = [], None  # names defined only in test cells: no entry

    class Procs(FilterDefaults):
        def base_procs(self): return [show_docs_from_module if p is exec_show_docs else p for p in super().base_procs()]

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        Procs()(nb)
    nb.module_ = mod
    return nb


# ---------------------------------------------------------------- 3. Markdown pages
_ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
_DIRECTIVE = re.compile(r'^#\|\s*([\w-]+)\s*:?\s*(.*)$')


def split_directives(src: str) -> tuple[dict, str]:
    "Quarto-style `#| key: value` lines at the top of a cell -> (directives, the rest of the source)."
    lines, d = src.splitlines(), {}
    while lines and (m := _DIRECTIVE.match(lines[0])):
        d[m.group(1)] = m.group(2).strip() or 'true'; lines.pop(0)
    return d, '\n'.join(lines).strip('\n')


def _text(v) -> str: return ''.join(v) if isinstance(v, list) else str(v)


def _fence(text: str, lang: str = 'text', max_lines: int = 60) -> str:
    lines = _ANSI.sub('', text).rstrip('\n').splitlines()
    if len(lines) > max_lines: lines = lines[:max_lines] + [f'... ({len(lines) - max_lines} more lines)']
    body = '\n'.join(lines)
    ticks = '````' if '```' in body else '```'
    return f'{ticks}{lang}\n{body}\n{ticks}'


class Figures:
    "Numbers the Plotly figures of a page; each becomes a div and its JSON in a script tag (drawn by plotly-figures.js)."
    def __init__(self, page: str): self.page, self.n = re.sub(r'\W', '-', page), 0
    def __call__(self, fig: dict) -> str:
        self.n += 1
        fid = f'fig-{self.page}-{self.n}'
        data = json.dumps(fig, separators=(',', ':')).replace('</', '<\\/').replace('<!--', '<\\!--')
        return (f'<div class="plotly-figure" id="{fid}"></div>\n'
                f'<script type="application/json" data-figure="{fid}">{data}</script>')


def showdoc_anchors(md: str) -> str:
    "Give `show_doc` headings Quarto's ids (`### NoteStore.add` -> `#notestore.add`), which nbdev's doc links use."
    return re.sub(r'^(#{2,4}) ([\w.]+)[ \t]*$', lambda m: f'{m[1]} {m[2]} {{#{m[2].lower()}}}', md, flags=re.M)


def output_markdown(o: dict, figures: Figures) -> str:
    "One cell output as Markdown/HTML: Plotly figure, markdown, HTML, image, or text."
    kind = o.get('output_type')
    if kind == 'stream': return _fence(_text(o.get('text', '')))
    if kind == 'error': return _fence(f"{o.get('ename')}: {o.get('evalue')}")
    data = o.get('data', {})
    if PLOTLY_MIME in data: return figures(data[PLOTLY_MIME])
    if 'text/markdown' in data: return showdoc_anchors(_text(data['text/markdown']))
    if 'image/png' in data: return f'<img class="nb-image" alt="figure" src="data:image/png;base64,{_text(data["image/png"]).strip()}">'
    if 'image/svg+xml' in data: return f'<div class="nb-image">{_text(data["image/svg+xml"])}</div>'
    if 'text/html' in data:
        body = re.sub(r'\n\s*\n', '\n', _text(data['text/html']).strip())  # a blank line would end the HTML block
        if '<script' in body and 'plotly' in body.lower(): return ''  # plotly's own notebook renderer: drawn above
        return f'<div class="nb-output">\n{body}\n</div>'
    if 'text/plain' in data: return _fence(_text(data['text/plain']))
    return ''


def cell_markdown(cell, figures: Figures) -> str:
    "One processed cell as Markdown: markdown as is; code fenced (unless `echo: false`) followed by its outputs."
    if cell.cell_type == 'markdown': return (cell.source or '').strip()
    if cell.cell_type == 'raw': return ''
    d, src = split_directives(cell.source or '')
    if d.get('include') == 'false': return ''
    parts = [] if d.get('echo') == 'false' or not src.strip() else [_fence(src, 'python')]
    if d.get('output') != 'false':
        parts += [output_markdown(o, figures) for o in cell.get('outputs', [])]
    return '\n\n'.join(p for p in parts if p)


def frontmatter(nb) -> dict:
    "Title and description from the processed notebook's frontmatter (nbdev turns `# Title` + `> desc` into it)."
    import yaml
    for c in nb.cells:
        if c.cell_type == 'raw' and (c.source or '').startswith('---'):
            return yaml.safe_load(c.source.strip().strip('-')) or {}
    return getattr(nb, 'frontmatter_', {}) or {}


def local_links(text: str, doc_url: str) -> str:
    "Links to the published site (`doc_url/page.html#x`) become links to the local page (`page.md#x`)."
    base = re.escape(doc_url.rstrip('/'))
    text = text.replace('#LNone)', ')')  # a source link whose line nbdev could not find: link the file
    return re.sub(base + r'/([\w./-]+?)\.html', lambda m: m.group(1) + '.md', text)


def notebook_page(nb, page: str, source: Path, doc_url: str) -> str:
    "A whole Markdown page for a processed notebook."
    fm = frontmatter(nb)
    figures = Figures(page)
    title = fm.get('title') or source.stem
    head = [f'# {title}'] + ([f"*{fm['description']}*"] if fm.get('description') else [])
    body = [cell_markdown(c, figures) for c in nb.cells]
    body = [b for b in body if b and not b.startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED')]
    text = '\n\n'.join(head + body) + f'\n\n<small>Source: `nbs/{source.relative_to(NBS)}`</small>\n'
    return local_links(text, doc_url)


def api_entries(nb) -> list[str]:
    "The rendered `show_doc` entries (signature, docstring, parameters) of a processed notebook."
    out = []
    for c in nb.cells:
        if c.cell_type != 'code' or not re.search(r'^show_doc', c.source or '', re.M): continue
        out += [showdoc_anchors(_text(o['data']['text/markdown'])) for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})]
    return out


# ---------------------------------------------------------------- CLI reference from the Typer app
def cli_reference() -> str:
    """Markdown for every `mlp` command: usage, help and each parameter, from the Typer app (the `--help` text).
    Typer >= 0.20 vendors its own click, so groups and arguments are recognised by what they do, not by class."""
    import typer
    from mlportfolio.cli import app
    root = typer.main.get_command(app)
    parts = ['# CLI reference', '*Every `mlp` command, generated from the Typer app (the same text as `--help`).*']

    def walk(cmd, ctx):
        name = ctx.command_path
        usage = ' '.join(cmd.collect_usage_pieces(ctx))
        parts.append(f'## `{name}`\n\n{html.escape(cmd.help or "").strip()}\n\n```text\nUsage: {name} {usage}\n```')
        rows = []
        for p in cmd.get_params(ctx):
            rec = p.get_help_record(ctx)
            if rec is None and p.param_type_name == 'argument': rec = (p.human_readable_name, getattr(p, 'help', '') or '')
            if rec: rows.append(f'| `{rec[0]}` | {html.escape(rec[1]).replace("|", "&#124;")} |')
        if rows: parts.append('| parameter | description |\n|---|---|\n' + '\n'.join(rows))
        for sub in (cmd.list_commands(ctx) if hasattr(cmd, 'list_commands') else []):
            c = cmd.get_command(ctx, sub)
            walk(c, ctx.__class__(c, info_name=sub, parent=ctx))

    walk(root, root.context_class(root, info_name='mlp'))
    return '\n\n'.join(parts) + '\n'


def tutorial_commands(text: str) -> list[str]:
    "The `mlp ...` commands of a tutorial's ```sh blocks, one per line (comments dropped)."
    cmds = []
    for block in re.findall(r'```sh\n(.*?)```', text, re.S):
        for line in block.splitlines():
            line = line.split('  #')[0].strip()
            if line.startswith('mlp '): cmds.append(line)
    return cmds


# ---------------------------------------------------------------- 4. the MkDocs project
EXTRA_JS = '''document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("script[data-figure]").forEach(function (s) {
    var fig = JSON.parse(s.textContent), div = document.getElementById(s.dataset.figure);
    if (div && window.Plotly) Plotly.newPlot(div, fig.data || [], fig.layout || {}, {responsive: true});
  });
});
'''
EXTRA_CSS = '''.plotly-figure{min-height:420px}.nb-output{overflow-x:auto;font-size:.7rem}.nb-image{max-width:100%}
.md-typeset table:not([class]){font-size:.7rem}
'''


def mkdocs_config(nav: list, site_dir: Path, docs_dir: Path) -> dict:
    "The mkdocs.yml settings: Material, offline (no web fonts), search, Quarto-style page names."
    import tomllib
    proj = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
    return dict(site_name='mlportfolio', site_description=proj.get('description', ''), docs_dir=str(docs_dir),
                site_dir=str(site_dir), use_directory_urls=False, strict=False, nav=nav,
                theme=dict(name='material', font=False, features=['navigation.sections', 'navigation.top', 'search.highlight',
                                                                  'content.code.copy', 'toc.follow']),
                plugins=['search'], extra=dict(generator=False),
                extra_javascript=['assets/plotly.min.js', 'assets/plotly-figures.js'], extra_css=['assets/site.css'],
                markdown_extensions=['tables', 'attr_list', 'md_in_html', 'admonition', 'pymdownx.superfences',
                                     dict(toc=dict(permalink=True)), dict(**{'pymdownx.highlight': dict(use_pygments=True)})],
                validation=dict(links=dict(not_found='warn', anchors='info', unrecognized_links='info')))


def fix_method_anchors(pages: dict[str, str]) -> dict[str, str]:
    """A link to `page.md#class.method` whose page has no entry of its own for the method points at `#class`
    (nbdev links every method it knows; only patched methods get a `show_doc` entry of their own)."""
    ids = {p: set(re.findall(r'\{#([\w.]+)\}', t)) for p, t in pages.items()}
    def fix(m):
        page, anchor = m[1], m[2]
        owner = anchor.split('.')[0]
        if page in ids and anchor not in ids[page] and owner in ids[page]: return f'({page}#{owner})'
        return m[0]
    return {p: re.sub(r'\(([\w/]+\.md)#([\w]+\.[\w.]+)\)', fix, t) for p, t in pages.items()}


def drop_private_links(pages: dict[str, str]) -> dict[str, str]:
    """A link to a private name (`page.md#_stage`) keeps only its text: nbdev links every name its index knows, private
    helpers included, but `show_doc` gives them no entry, so the anchor would not exist."""
    return {p: re.sub(r'\[([^\]]*)\]\((?:[\w/]+\.md)?#_[\w.]*\)', r'\1', t) for p, t in pages.items()}


def drop_outside_links(pages: dict[str, str]) -> dict[str, str]:
    """A relative link that climbs out of the site (pydantic's inherited docstrings link `../concepts/models.md` of
    pydantic's own docs) keeps only its text: it can never resolve here."""
    import posixpath
    def fix(page):
        def one(m):
            target = m[2].split('#')[0]
            if not target or '://' in target or target.startswith(('/', 'mailto:')): return m[0]
            return m[1] if posixpath.normpath(posixpath.join(posixpath.dirname(page), target)).startswith('..') else m[0]
        return one
    return {p: re.sub(r'\[([^\]]*)\]\(([^)\s]+)\)', fix(p), t) for p, t in pages.items()}


def write_pages(docs: Path, build: Path, execute) -> list:
    "Write every Markdown page under `docs`; return the MkDocs nav (sidebar)."
    import tomllib
    doc_url = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['urls']['Documentation']
    groups: dict[str, list] = {s: [] for s in SYSTEM_ORDER}
    api: dict[str, list] = {s: [] for s in SYSTEM_ORDER}
    pages: dict[str, str] = {}
    for src in source_notebooks():
        name = src.stem if src.parent == NBS else f'jobs/{src.stem}'
        page = page_name(src)
        run = (execute is True and src.parent == NBS) or (execute is not True and name in execute)  # `all`: not the job templates
        nb = processed(executed_copy(src, build, run))
        pages[page] = notebook_page(nb, page, src, doc_url)
        title = frontmatter(nb).get('title') or src.stem
        if system_of(src) == 'home': continue
        groups[system_of(src)].append({title: page})
        entries, mod = api_entries(nb), nb.module_
        if entries and mod:
            apage = f'reference_{Path(page).stem}.md'
            text = f'# `{mod}`\n\n*{title}: the exported names, from `show_doc`. Narrative and examples: [{title}]({page}).*\n\n'
            pages[apage] = local_links(text + '\n\n'.join(entries), doc_url)
            api[system_of(src)].append({mod: apage})
    for page, text in drop_outside_links(drop_private_links(fix_method_anchors(pages))).items():
        (docs/page).parent.mkdir(parents=True, exist_ok=True)
        (docs/page).write_text(text)
    tutorials = []
    (docs/'tutorials').mkdir(exist_ok=True)
    for t in sorted((NBS/'tutorials').glob('*.md')):
        shutil.copy2(t, docs/'tutorials'/t.name)
        tutorials.append({t.read_text().splitlines()[0].lstrip('# ').strip(): f'tutorials/{t.name}'})
    (docs/'cli_reference.md').write_text(cli_reference())
    nav = [{'Home': 'index.md'}, {'Tutorials': tutorials}]
    nav += [{s: groups[s]} for s in SYSTEM_ORDER if groups[s]]
    nav += [{'API reference': [{s: api[s]} for s in SYSTEM_ORDER if api[s]]}, {'CLI reference': 'cli_reference.md'}]
    return nav


def build_site(out: Path, build: Path, execute=(), render: bool = True) -> Path:
    "Build the whole site into `out` (the MkDocs project itself goes to `build/site-src`)."
    import yaml, plotly
    src = build/'site-src'; docs = src/'docs'
    if docs.exists(): shutil.rmtree(docs)
    (docs/'assets').mkdir(parents=True)
    shutil.copy2(Path(plotly.__file__).parent/'package_data'/'plotly.min.js', docs/'assets'/'plotly.min.js')
    (docs/'assets'/'plotly-figures.js').write_text(EXTRA_JS)
    (docs/'assets'/'site.css').write_text(EXTRA_CSS)
    nav = write_pages(docs, build, execute)
    cfg = src/'mkdocs.yml'
    cfg.write_text(yaml.safe_dump(mkdocs_config(nav, Path(out).absolute(), docs.absolute()), sort_keys=False))
    if not render: return cfg
    mkdocs = Path(sys.executable).parent/'mkdocs'
    r = subprocess.run([str(mkdocs), 'build', '--clean', '--quiet', '-f', str(cfg)], capture_output=True, text=True)
    if r.returncode: raise SystemExit(f'mkdocs build failed:\n{r.stdout}\n{r.stderr}')
    for md in docs.rglob('*.md'):  # the Markdown copy beside each page, as Quarto publishes it (`Docs:` links)
        rel = md.relative_to(docs)
        dest = Path(out)/rel.with_suffix('.html.md')
        if dest.with_suffix('').is_file(): shutil.copy2(md, dest)
    return Path(out)/'index.html'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT/'_docs'), help='site folder (default _docs)')
    ap.add_argument('--build', default=str(ROOT/'_build'/'docs'), help='cache of executed notebooks and the MkDocs project')
    ap.add_argument('--execute', default='all', help='all, none, or notebook names (33_pcc_score,jobs/train) to run when changed')
    ap.add_argument('--no-render', action='store_true', help='write the Markdown pages and mkdocs.yml only')
    a = ap.parse_args(argv)
    execute = True if a.execute == 'all' else () if a.execute == 'none' else tuple(a.execute.split(','))
    t0 = time.perf_counter()
    page = build_site(Path(a.out), Path(a.build), execute, render=not a.no_render)
    print(f'{page} ({time.perf_counter() - t0:.0f}s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
