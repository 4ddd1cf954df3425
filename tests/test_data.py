"""Integration tests of the data pipeline across processes: the `mlp data` commands, the generate_data papermill job,
and the OpenLineage events they leave behind."""
import json
from pathlib import Path

import pandas as pd
import pytest

from mlportfolio.core.lineage import read_events, validate_event, check_run_chain
from mlportfolio.core.store import sha256_file
from mlportfolio.data.generate import generate_dataset
from mlportfolio.data.validate import validate_dataset

END = '2026-11-20'


def _events(home: Path) -> list[dict]:
    return read_events(home/'lineage'/'events.jsonl')


def test_generate_is_deterministic_validated_and_traced(mlp_home, mlp, tmp_path):
    a, b = tmp_path/'a'/'ds.parquet', tmp_path/'b'/'ds.parquet'
    for p in (a, b): p.parent.mkdir()                             # a missing output folder is an error (issue 21)
    mlp('data', 'generate', '--n', '600', '--seed', '7', '--out', a, '--end', END, check=0)
    mlp('data', 'generate', '--n', '600', '--seed', '7', '--out', b.as_uri(), '--end', END, check=0)   # a file:// URL
    assert a.read_bytes() == b.read_bytes()                      # same seed, same bytes, in another process
    assert sorted(p.name for p in a.parent.iterdir()) == ['ds.card.md', 'ds.parquet', 'ds.validation.json']
    assert json.loads((a.parent/'ds.validation.json').read_text())['passed'] is True
    assert 'Contract **passed**' in (a.parent/'ds.card.md').read_text()
    df = pd.read_parquet(a)
    assert len(df) == 600 and {'text', 'intent', 'split', 'template_id', 'sentiment_compound'} <= set(df.columns)

    events = _events(mlp_home)
    assert all(validate_event(e) == [] for e in events), [validate_event(e) for e in events]
    assert set(check_run_chain(events).values()) == {'COMPLETE'} and len(events) == 4
    hashes = [e['outputs'][0]['facets']['contentHash']['value'] for e in events if e['eventType'] == 'COMPLETE']
    assert hashes == [sha256_file(a), sha256_file(b)]

    res = mlp('data', 'validate', a, check=0)
    assert 'valid' in res.stdout
    res = mlp('data', 'lineage', '--json', check=0)
    runs = json.loads(res.stdout)
    assert [r['job'] for r in runs] == ['data.generate'] * 2 and runs[0]['outputs'][0]['sha256'] == sha256_file(b)


@pytest.mark.parametrize('n', [200, 300, 600])
def test_small_generated_sets_meet_the_packaged_contract(n, mlp_home, tmp_path):
    "Under two rows per template a label is split per label: each split keeps its minimum share (300 rows failed with test at 4%)."
    for seed in (1, 42):
        report = validate_dataset(generate_dataset(n, seed=seed, end=END), report_path=tmp_path/f'r{n}_{seed}.json')
        assert report['passed'] and min(report['split_counts'].values()) >= 0.05 * n, report['split_counts']


def test_contract_failures_exit_2_with_one_line_and_a_report(mlp_home, mlp, tmp_path):
    d = tmp_path/'small'; d.mkdir()
    res = mlp('data', 'generate', '--n', '100', '--seed', '1', '--out', d/'small.parquet', '--end', END, check=2)
    assert 'row_count' in res.stderr and 'Traceback' not in res.stderr
    assert sorted(p.name for p in d.iterdir()) == ['small.validation.json']    # no dataset, only its report
    assert check_run_chain(_events(mlp_home)) and _events(mlp_home)[-1]['eventType'] == 'FAIL'

    df = generate_dataset(400, seed=2, end=END)
    df.loc[:4, 'intent'] = 'spam'
    df.to_parquet(tmp_path/'bad.parquet')
    res = mlp('data', 'validate', tmp_path/'bad.parquet', check=2)
    assert 'allowed_labels' in res.stderr and 'Traceback' not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    report = json.loads((tmp_path/'bad.validation.json').read_text())
    failed = {c['check']: c for c in report['checks'] if not c['passed']}
    assert failed['allowed_labels']['count'] == 5 and failed['allowed_labels']['examples'][0]['intent'] == 'spam'


def test_import_reports_every_problem_and_writes_nothing(mlp_home, mlp, tmp_path):
    bad = tmp_path/'broken.csv'
    bad.write_bytes(b'message,label\n'
                    b'Please delete my account,data_deletion\n'
                    b',opt_out\n'
                    + 'Unsubscribe me caf\xe9,opt_out\n'.encode('latin-1')
                    + b'What is your refund policy?,question\n')
    out = tmp_path/'out'/'mine.parquet'; out.parent.mkdir()
    res = mlp('data', 'import', bad, '--text-col', 'message', '--label-col', 'label', '--out', out, check=2)
    err = res.stderr
    for expected in ('undecodable bytes on line(s) [4]', "empty text(s) in column 'message' at line(s) [3]",
                     "unknown label(s) {'question': 1} at line(s) [5]", 'nothing was written'):
        assert expected in err, err
    assert list(out.parent.iterdir()) == []                       # nothing written, not even a temporary file
    assert not [e for e in _events(mlp_home) if e['job']['name'] == 'data.import']
    res = mlp('data', 'import', bad, '--text-col', 'body', '--label-col', 'label', '--encoding', 'latin-1', check=2)
    assert "missing column(s) ['body']; the file has: message, label" in res.stderr

    src = generate_dataset(400, seed=4, end=END)[['text', 'intent', 'subtype']].rename(columns={'text': 'body'})
    src.to_csv(tmp_path/'clean.csv', index=False)
    mlp('data', 'import', tmp_path/'clean.csv', '--text-col', 'body', '--subtype-col', 'subtype', '--out', out, check=0)
    cur = pd.read_parquet(out)
    assert len(cur) == 400 and cur.groupby('template_id')['split'].nunique().max() == 1
    ev = [e for e in _events(mlp_home) if e['job']['name'] == 'data.import'][-1]
    assert ev['eventType'] == 'COMPLETE' and ev['inputs'][0]['facets']['contentHash']['value'] == sha256_file(tmp_path/'clean.csv')


def test_generate_data_job(mlp_home, mlp, tmp_path):
    out = tmp_path/'job'/'ds.parquet'
    res = mlp('job', 'run', 'generate_data', '-p', 'n=500', '-p', 'seed=3', '-p', f'out={out}', check=0)
    assert 'succeeded generate_data' in res.stdout
    done = [e for e in _events(mlp_home) if e['eventType'] == 'COMPLETE']
    assert done[-1]['outputs'][0]['facets']['contentHash']['value'] == sha256_file(out)
    assert len(pd.read_parquet(out)) == 500


def test_realistic_set_not_in_generated_data():
    "No message of the hand-written realistic set, nor a near-duplicate of one, is produced by the generator."
    from mlportfolio.data.realistic import load_realistic_eval, find_near_duplicates
    from mlportfolio.data.generate import load_templates, unbrand, contract
    ev = load_realistic_eval()
    assert len(ev) >= 200 and set(ev['split']) == {'calibration', 'final'}
    texts = [t.text for t in load_templates().templates]
    templates = texts + [contract(unbrand(t)) for t in texts]         # the phrasings themselves, slots unfilled, as written and as sent
    assert find_near_duplicates(templates, ev['text'], ids=ev['id']).empty
    for seed in (1, 2):
        gen = generate_dataset(n=20000, seed=seed, end=END)
        leaks = find_near_duplicates(gen['text'], ev['text'], ids=ev['id'])
        assert leaks.empty, leaks.assign(text=gen['text'].iloc[leaks['row']].to_numpy()).head().to_string()
