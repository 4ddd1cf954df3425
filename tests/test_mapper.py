"""Integration tests of the embedding mapper: `mlp map` through the installed script, the `map_embeddings`
papermill job, a warehouse query as input, and (when Chromium is installed) the report in a headless browser."""
import os, shutil, subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_mlp


@pytest.fixture(scope='module')
def embed_cache(tmp_path_factory):
    "One embedding cache for the module's subprocesses, so the model loads once (make test shares its own)."
    return os.environ.get('MLP_EMBED_CACHE_DIR') or str(tmp_path_factory.mktemp('embed-cache'))


@pytest.fixture
def env(mlp_home, embed_cache, monkeypatch):
    monkeypatch.setenv('MLP_EMBED_CACHE_DIR', embed_cache)
    return mlp_home


@pytest.fixture
def domains(tmp_path):
    "The packaged sample split into three files, each a domain, in two formats; notes have no labels."
    from mlportfolio.core.resources import resource_path
    df = pd.read_csv(resource_path('mapper/sample_domains.csv'), keep_default_na=False)
    paths = dict(train=tmp_path/'train.parquet', prod=tmp_path/'prod.csv', notes=tmp_path/'notes.csv')
    df[df.domain == 'train'][['text', 'label']].to_parquet(paths['train'])
    df[df.domain == 'prod'][['label', 'text']].to_csv(paths['prod'], index=False)
    df[df.domain == 'notes'][['text']].to_csv(paths['notes'], index=False)
    return df, paths


def _args(paths):
    return [a for name, p in paths.items() for a in ('--input', f'{name}={p}')]


def test_map_run_umap_writes_report_and_aligned_csv(env, domains, tmp_path):
    from mlportfolio.mapper.report import read_report_figures
    df, paths = domains
    out = tmp_path/'out'/'report.html'; out.parent.mkdir()         # a missing output folder is an error (issue 21)
    r = run_mlp('map', 'run', *_args(paths), '--label-col', 'label', '--reducer', 'umap', '--n-neighbors', '10',
                '--clusterer', 'hdbscan', '--n-perm', '200', '--out', out, check=0, env={'COLUMNS': '200'})
    assert 'domain shift' in r.stdout and 'train' in r.stdout, r.stdout
    figs, texts = read_report_figures(out)
    scatter = figs[0]
    assert [t['name'] for t in scatter['data'] if t['meta']['group'] == 'domain'] == ['train', 'prod', 'notes']
    assert sum(len(t['customdata']) for t in scatter['data'] if t['meta']['group'] == 'domain') == 60
    assert texts == df.text.tolist()  # every text, in input order (train, prod, notes)
    coords = pd.read_csv(out.with_suffix('.csv'), keep_default_na=False)
    assert len(coords) == 60 and set(coords.reducer) == {'umap'}
    assert coords.text.tolist() == df.text.tolist() and coords.domain.tolist() == df.domain.tolist()
    assert coords.label.tolist() == df.label.tolist()
    assert np.isfinite(coords[['x', 'y']].to_numpy()).all()
    # the same domains fed in another order land on the same coordinates, text by text
    rev = dict(reversed(list(paths.items())))
    out2 = tmp_path/'rev.html'
    run_mlp('map', 'run', *_args(rev), '--label-col', 'label', '--reducer', 'umap', '--n-neighbors', '10',
            '--clusterer', 'hdbscan', '--n-perm', '200', '--out', out2, check=0)
    c2 = pd.read_csv(out2.with_suffix('.csv'), keep_default_na=False)
    assert c2.domain.unique().tolist() == ['notes', 'prod', 'train']
    m = coords.merge(c2, on='text')
    assert len(m) == 60 and (m.domain_x == m.domain_y).all()
    np.testing.assert_allclose(m[['x_x', 'y_x']].to_numpy(), m[['x_y', 'y_y']].to_numpy(), atol=1e-5)


def test_two_models_side_by_side(env, tmp_path):
    "A second local model (MiniLM weights with CLS pooling) gets its own panel, metrics, and a model-agreement table."
    import json
    from mlportfolio.core.embed import packaged_model_path
    from mlportfolio.core.resources import resource_path
    from mlportfolio.mapper.report import read_report_figures
    src, dst = packaged_model_path(), tmp_path/'minilm-cls'
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns('model.safetensors'))
    (dst/'model.safetensors').symlink_to(src/'model.safetensors')
    pool = json.loads((dst/'1_Pooling'/'config.json').read_text())
    pool.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (dst/'1_Pooling'/'config.json').write_text(json.dumps(pool))
    out = tmp_path/'models.html'
    run_mlp('map', 'run', '--input', resource_path('mapper/sample_domains.csv'), '--model', 'all-MiniLM-L6-v2', '--model', dst,
            '--reducer', 'pca', '--n-perm', '50', '--out', out, check=0)
    figs, _ = read_report_figures(out)
    assert [f['layout']['title']['text'] for f in figs[:2]] == ['all-MiniLM-L6-v2 · pca', 'minilm-cls · pca']
    page = out.read_text()
    assert 'Metrics: all-MiniLM-L6-v2' in page and 'Metrics: minilm-cls' in page and 'Model agreement' in page
    coords = pd.read_csv(out.with_suffix('.csv'))
    assert coords.groupby('model').size().to_dict() == {'all-MiniLM-L6-v2': 60, 'minilm-cls': 60}
    a, b = (coords[coords.model == k].sort_values('row')[['x', 'y']].to_numpy() for k in ('all-MiniLM-L6-v2', 'minilm-cls'))
    assert not np.allclose(np.abs(a), np.abs(b), atol=1e-3)  # really another embedding


@pytest.mark.parametrize('args, message', [
    (['--input', '{train}', '--text-col', 'body'], "text column 'body' not in train.parquet; columns are: text, label"),
    (['--input', 'train={train}'], "only one domain ('train')"),
    (['--input', 'train={train}', '--input', 'prod={prod}', '--reducer', 'tsne', '--max-points', '20'],
     't-SNE with perplexity=30 needs more than 30 rows, got 20; lower --perplexity (below 20) or use --reducer pca'),
    (['--input', 'train={train}', '--input', 'prod={holes}'], "1 empty or missing text(s), first at row 22 (domain 'prod')"),
])
def test_bad_input_is_one_line_and_exit_2(env, domains, tmp_path, args, message):
    df, paths = domains
    holes = pd.read_csv(paths['prod']); holes.loc[2, 'text'] = ''
    holes.to_csv(tmp_path/'holes.csv', index=False)
    fmt = dict(train=paths['train'], prod=paths['prod'], holes=tmp_path/'holes.csv')
    r = run_mlp('map', 'run', *[a.format(**fmt) for a in args], '--out', tmp_path/'x.html')
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) <= 3, r.stderr
    assert message in ' '.join(r.stderr.split()), r.stderr
    assert not (tmp_path/'x.html').exists()


def test_map_embeddings_job(env, domains, tmp_path):
    from mlportfolio.core.jobs import run_job
    df, paths = domains
    out = tmp_path/'job.html'
    rec = run_job('map_embeddings', reducers=['pca'], n_clusters=4, n_perm=100, out=str(out), progress=False)  # the packaged sample
    assert rec.status == 'succeeded'
    coords = pd.read_csv(out.with_suffix('.csv'))
    assert len(coords) == 60 and coords.reducer.unique().tolist() == ['pca']
    assert coords.domain.unique().tolist() == ['train', 'prod', 'notes'] and coords.label.notna().sum() == 40
    assert 'classifier AUC' in out.read_text()


def test_query_input_through_the_warehouse(env, domains, tmp_path):
    wh_mod = pytest.importorskip('mlportfolio.core.warehouse', reason='core.warehouse has not landed in this checkout')
    from mlportfolio.core.resources import resource_path
    wh = wh_mod.get_warehouse()
    wh.execute(f"CREATE TABLE cases AS SELECT * FROM read_csv('{resource_path('mapper/sample_domains.csv')}', all_varchar=true)")
    out = tmp_path/'q.html'
    run_mlp('map', 'run', '--query', "SELECT text, domain FROM cases WHERE domain <> 'notes'", '--reducer', 'pca',
            '--n-perm', '100', '--out', out, check=0)
    coords = pd.read_csv(out.with_suffix('.csv'))
    assert coords.domain.value_counts().to_dict() == {'train': 20, 'prod': 20}
    r = run_mlp('map', 'run', '--query', 'SELECT nope FROM cases', '--out', tmp_path/'bad.html')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr


def _chromium():
    return next((shutil.which(b) for b in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(b)), None)


@pytest.mark.skipif(_chromium() is None, reason='no Chromium installed (apt-get install chromium) for the headless-browser check')
def test_report_renders_in_headless_chromium(tmp_path):
    "The page's own script runs offline: plotly draws every panel and heatmap, and the search highlights matches."
    from mlportfolio.mapper.map import EmbeddingMap, load_inputs
    from mlportfolio.mapper.report import write_report
    from mlportfolio.core.resources import resource_path
    df = load_inputs(str(resource_path('mapper/sample_domains.csv')), label_col='label')
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(df), 16)).astype(np.float32) + (df.domain == 'notes').to_numpy()[:, None] * 2
    m = EmbeddingMap(reducer='pca', n_clusters=3, seed=0, cache=False).fit(df, embeddings=vecs, model_id='random')
    page = write_report([m], tmp_path/'r.html', n_perm=50)
    # a probe appended to the page types into the search box and records what the plot shows
    probe = ("<script>setTimeout(()=>{const s=document.getElementById('search');s.value='delete';"
             "s.dispatchEvent(new Event('input'));setTimeout(()=>{const d=document.getElementById('fig-0');"
             "const sel=d.data.filter(t=>t.meta&&t.meta.kind==='points'&&t.visible!==false).map(t=>(t.selectedpoints||[]).length);"
             "document.body.setAttribute('data-probe', JSON.stringify({ready: !!window.mlpReady, plots: document.querySelectorAll('.js-plotly-plot').length,"
             "matches: document.getElementById('matches').textContent, selected: sel}));},400);},300);</script>")
    page.write_text(page.read_text().replace('</body>', probe + '</body>'))
    r = subprocess.run([_chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--virtual-time-budget=8000',
                        '--dump-dom', page.as_uri()], capture_output=True, text=True, timeout=120)
    import json, re, html
    m_ = re.search(r'data-probe="([^"]*)"', r.stdout)
    assert m_, r.stderr[-2000:]
    probe = json.loads(html.unescape(m_.group(1)))
    assert probe['ready'] and probe['plots'] == 1 + 4, probe
    n = int(df.text.str.lower().str.contains('delete').sum())
    assert probe['matches'] == f'{n} matching texts' and sum(probe['selected']) == n, probe
