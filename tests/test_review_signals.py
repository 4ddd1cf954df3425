"""Reviewer checks that need no real LLM answer: the reasoner's citations are checked against the ids that were
really retrieved (an invented id, or a real id that was not retrieved, is caught, dropped and marked in the
audit log and in the evaluation's citation validity), and a useless LLM leaves the combined flags exactly
where the model-free signal puts them.

The LLM here is a scripted function with `core.llm.complete`'s signature: the real local model cannot be made
to cite a wrong id on purpose, and these tests are about what the reviewer does with such an answer. Small
fixtures: the taxonomy's own examples as the reference set, or 1,500 generated rows (seed 3, whose MiniLM
vectors the review notebooks already put in the shared embedding cache)."""
import re
from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import pytest

from mlportfolio.core.taxonomy import load_taxonomy
from mlportfolio.review.agents import VERDICTS
from mlportfolio.review.evaluate import evaluate
from mlportfolio.review.run import Reviewer
from mlportfolio.review.store import AuditLog

NOT_RETRIEVED_BUT_REAL, INVENTED = 'real-but-not-retrieved', 'ref-does-not-exist'


def scripted_llm(verdict='Incorrect', bad_citations=(INVENTED,), known_ids=()):
    """A `complete` function: the evaluator answers `verdict` (None: `Uncertain` with equal log-probabilities for
    every verdict, i.e. no information), the proposer `none`, and the reasoner cites the first id shown in
    its prompt plus, in turn, one of `bad_citations` (an invented id, or a known id absent from the prompt)."""
    calls = {'reasoner': 0}
    def complete(messages, *, max_tokens=256, temperature=0.0, schema=None, choices=None, deadline=None, **kw):
        base = dict(text='', parsed=None, choice=None, choice_logprobs=None, backend='scripted', model='none',
                    tokens_in=10, tokens_out=1, latency_ms=1.0, cache_hit=False)
        if schema is not None:  # the reasoner
            shown = re.findall(r'\[([^\]\s]+)\]', messages[-1]['content'])
            bad = bad_citations[calls['reasoner'] % len(bad_citations)] if bad_citations else None
            if bad == NOT_RETRIEVED_BUT_REAL: bad = next(i for i in known_ids if i not in shown)
            calls['reasoner'] += 1
            return NS(**{**base, 'parsed': {'explanation': 'Like the cited example.', 'cited_ids': [shown[0]] + ([bad] if bad else [])}})
        if tuple(choices) == VERDICTS:
            if verdict is None: return NS(**{**base, 'choice_logprobs': {v: -1.0 for v in VERDICTS}})
            return NS(**{**base, 'choice': verdict})
        return NS(**{**base, 'choice': 'none'})
    return complete


@pytest.fixture(scope='module')
def small_reference():
    tax = load_taxonomy()
    rows = [(f'r{i}', t, l) for i, (l, t) in enumerate((l, t) for l in tax.intents for t in tax.examples[l])]
    return pd.DataFrame(rows, columns=['id', 'text', 'label'])


def test_reasoner_citing_an_unretrieved_id_is_caught_and_marked(mlp_home, small_reference):
    reviewer = Reviewer(small_reference, llm='always', complete=scripted_llm(), per_label=1)
    item = dict(id='x1', text='Please erase my account and every record you hold about me.', pred_label='opt_out', confidence=None)
    mf = reviewer.signal.score([item['id']], [item['text']], [item['pred_label']]).iloc[0].to_dict()
    row = reviewer.review_item(item, mf)
    assert row['verdict'] != 'Correct' and row['explanation']
    assert row['citation_valid'] is False                                    # the invented id is caught ...
    assert INVENTED not in row['cited_ids'] and row['cited_ids']              # ... and dropped; the retrieved one stays
    assert set(row['cited_ids']) <= set(row['retrieved_ids'])
    log = AuditLog()
    log.start_run('cite-1', 'file')
    log.add_reviews([dict(run_id='cite-1', **row)])
    stored = log.get('x1')
    assert stored['citation_valid'] is False and stored['cited_ids'] == row['cited_ids']


def test_reasoner_citing_only_retrieved_ids_is_valid(mlp_home, small_reference):
    reviewer = Reviewer(small_reference, llm='always', complete=scripted_llm(bad_citations=()), per_label=1)
    item = dict(id='x2', text='Stop sending me marketing emails.', pred_label='data_deletion', confidence=None)
    mf = reviewer.signal.score([item['id']], [item['text']], [item['pred_label']]).iloc[0].to_dict()
    row = reviewer.review_item(item, mf)
    assert row['citation_valid'] is True and len(row['cited_ids']) == 1


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    from mlportfolio.data.generate import generate_dataset
    d = tmp_path_factory.mktemp('review-eval')
    df = generate_dataset(1500, seed=3)
    df.to_parquet(d/'data.parquet')
    from mlportfolio.review.signals import load_reference
    return d/'data.parquet', load_reference(d/'data.parquet').id.tolist()


def test_evaluation_reports_citation_validity(mlp_home, generated):
    data, train_ids = generated
    llm = scripted_llm(bad_citations=(None, INVENTED, NOT_RETRIEVED_BUT_REAL), known_ids=train_ids)
    t = evaluate(n=30, llm_sample=6, rates=(0.2,), modes=('class_conditional',), data=data, reference=data, complete=llm)
    s = t[(t.scope == 'llm_sample') & (t.system == 'llm_only')].iloc[0]
    assert s.explanations == 6
    assert s.citation_validity == pytest.approx(2 / 6)       # only the answers citing retrieved ids alone are valid
    assert s.citation_exists == pytest.approx(4 / 6)         # the real-but-not-retrieved id exists; the invented one does not
    assert t[t.scope == 'all'].citation_validity.isna().all()  # no LLM on the full set, no citation figure


def test_useless_llm_leaves_the_model_free_flags(mlp_home, generated):
    data, _ = generated
    t = evaluate(n=40, llm_sample=40, rates=(0.2,), modes=('class_conditional',), data=data, reference=data,
                 complete=scripted_llm(verdict=None, bad_citations=()))
    s = t[t.scope == 'llm_sample'].set_index('system')
    assert s.loc['llm_only', 'llm_reliability'] == 0.0      # the same answer for every item: chance
    for k in ('precision', 'recall', 'f1', 'false_correction'):
        assert s.loc['combined', k] == s.loc['model_free', k], k
    assert 0 < s.loc['combined', 'llm_calls_per_1000'] < 1000  # confident agreements skip the LLM
