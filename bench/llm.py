"""Benchmark the local LLM of core.llm: load (cold = GGUF conversion, cached = the converted folder), free
generation tokens/s, and the latency of one constrained classification (LLMClassifier, k retrieved examples,
4 labels scored by log-probability) without and with the answer cache.

Prints medians and ratios to a baseline measured in the same run, with the load average (this machine is shared).
Uses CUDA when it is visible (LocalBackend device='auto'), else the CPU.
Usage: python bench/llm.py [--model smollm2-135m] [--runs 3] [--n 20] [--k 8] [--cold]
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

os.environ.setdefault('HF_HUB_OFFLINE', '1')

LOAD_SNIPPET = """
import time, json, sys
t0 = time.perf_counter()
from mlportfolio.core.llm import LocalBackend
b = LocalBackend(sys.argv[1]); b.load()
print(json.dumps(dict(seconds=time.perf_counter() - t0)))
"""


def load_seconds(model: str, cache_dir: str) -> float:
    "Seconds to get a ready model in a fresh process (imports included in neither case: transformers is imported lazily)."
    env = {**os.environ, 'MLP_LLM_CACHE_DIR': cache_dir}
    out = subprocess.run([sys.executable, '-c', LOAD_SNIPPET, model], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])['seconds']


def percentile_ms(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default='smollm2-135m')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--n', type=int, default=20, help='messages classified per pass')
    ap.add_argument('--k', type=int, default=8)
    ap.add_argument('--cold', action='store_true', help='also time one cold load (GGUF conversion into a temp folder)')
    args = ap.parse_args()
    import torch
    from mlportfolio.api.llm_classify import LLMClassifier
    from mlportfolio.core.config import get_settings
    from mlportfolio.core.llm import LLMChain, LocalBackend, ResponseCache, local_model_path, normalize_messages
    from mlportfolio.data.generate import generate_dataset

    print(f'loadavg before: {Path("/proc/loadavg").read_text().strip()}')
    cached_dir = str(local_model_path(args.model).parent)  # converts once if needed
    cached = [load_seconds(args.model, cached_dir) for _ in range(args.runs)]
    cold = [load_seconds(args.model, tempfile.mkdtemp())] if args.cold else []

    backend = LocalBackend(args.model)
    backend.load()
    msgs = normalize_messages('Write a short paragraph about data privacy.')
    gen = []
    for _ in range(args.runs):
        t0 = time.perf_counter(); _, _, n_out = backend.generate(msgs, max_tokens=64); gen.append(n_out / (time.perf_counter() - t0))

    data = generate_dataset(400, seed=1)
    train, test = data[data.split != 'test'], data[data.split == 'test'].head(args.n)
    with tempfile.TemporaryDirectory() as d:
        clf = LLMClassifier(k=args.k, model=args.model, subtypes=False, calibrate=False).fit(train.text.tolist(), train.intent.tolist())
        clf._own_chain = LLMChain([backend], cache=ResponseCache(Path(d)/'bench.sqlite'))
        texts = test.text.tolist()
        clf.label_scores(texts[:2])                       # warm-up (and the embeddings of the queries)
        clf._own_chain.cache = ResponseCache(Path(d)/'bench2.sqlite')
        uncached, hits = [], []
        for t in texts:
            t0 = time.perf_counter(); clf.label_scores([t]); uncached.append(time.perf_counter() - t0)
        for t in texts:
            t0 = time.perf_counter(); _, info = clf.label_scores([t]); hits.append(time.perf_counter() - t0)
            assert info[0]['cache_hit']
        tokens_in = np.mean([i['tokens_in'] for i in clf.label_scores(texts)[1]])

    dev = next(iter(LocalBackend._loaded.values()))[1].device
    print(f'\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}')
    print(f'model {args.model}; medians of {args.runs} runs; loadavg after: {Path("/proc/loadavg").read_text().strip()}')
    med_cached = statistics.median(cached)
    print(f'  load, cached folder : {med_cached:8.2f} s   (fresh process, ratio 1.00x)')
    if cold: print(f'  load, cold (convert): {cold[0]:8.2f} s   (one run; {cold[0] / med_cached:.1f}x the cached load)')
    print(f'  generation          : {statistics.median(gen):8.1f} tokens/s (64 new tokens, greedy)')
    p50u, p95u, p50h, p95h = (percentile_ms(uncached, 50), percentile_ms(uncached, 95), percentile_ms(hits, 50), percentile_ms(hits, 95))
    print(f'  classify k={args.k}, {len(texts)} msgs, {tokens_in:.0f} prompt tokens/msg:')
    print(f'    no cache  : p50 {p50u:8.1f} ms  p95 {p95u:8.1f} ms   (ratio 1.00x)')
    print(f'    cache hit : p50 {p50h:8.1f} ms  p95 {p95h:8.1f} ms   ({p50u / p50h:.0f}x faster at p50; retrieval embedding included)')


if __name__ == '__main__':
    main()
