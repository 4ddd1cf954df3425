"""Benchmark core.embed against plain SentenceTransformer.encode on 2,000 mixed-length texts (5 to 200 words).

Prints sentences/s (median of 3 runs) for: plain `SentenceTransformer.encode(batch_size=32)`, our `encode` with a
cold cache (a fresh cache folder each run), and our `encode` again on a warm cache; and the ratios to plain.
Usage: python bench/embed.py [--n 2000] [--runs 3]
"""
import argparse, os, platform, statistics, tempfile, time

import numpy as np

os.environ.setdefault('HF_HUB_OFFLINE', '1')


def make_texts(n: int, seed: int = 0) -> list[str]:
    "Deterministic texts of 5 to 200 words drawn from a privacy/support vocabulary."
    words = ('please delete my account data personal information request access copy export stop sending emails '
             'marketing opt out privacy policy gdpr article erase remove phone number address order history refund '
             'password reset login security report newsletter unsubscribe processing restrict correct wrong date birth '
             'customer service team thanks regards urgent immediately today week month legal right consent cookie').split()
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 201, size=n)
    return [' '.join(rng.choice(words, size=k)) + f' #{i}' for i, k in enumerate(lengths)]


def timed(fn) -> float:
    t0 = time.perf_counter(); fn(); return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=2000)
    ap.add_argument('--runs', type=int, default=3)
    args = ap.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer
    from mlportfolio.core.embed import Embedder, packaged_model_path

    texts = make_texts(args.n)
    plain_model = SentenceTransformer(str(packaged_model_path()), device='cpu')
    plain_model.encode(texts[:64], batch_size=32)  # warm-up: first call allocates
    plain, cold, warm = [], [], []
    for run in range(args.runs):
        plain.append(timed(lambda: plain_model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)))
        cache_dir = tempfile.mkdtemp()
        emb = Embedder(cache_dir=cache_dir, progress=False, device='cpu', batch_size=32)
        emb._model = plain_model  # same weights in memory: we measure our encode path, not a second model load
        cold.append(timed(lambda: emb.encode(texts)))
        warm_emb = Embedder(cache_dir=cache_dir, progress=False, device='cpu', batch_size=32)
        warm_emb._model = plain_model
        warm.append(timed(lambda: warm_emb.encode(texts)))
        assert warm_emb.stats['misses'] == 0
        print(f'run {run + 1}: plain {plain[-1]:.2f}s  cold {cold[-1]:.2f}s  warm {warm[-1]:.4f}s', flush=True)
    med = {k: statistics.median(v) for k, v in dict(plain=plain, cold=cold, warm=warm).items()}
    print(f'\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'cuda {torch.cuda.is_available()}')
    print(f'{args.n} texts, median of {args.runs} runs')
    for k in ('plain', 'cold', 'warm'):
        print(f'  {k:5s}: {args.n / med[k]:10.1f} sentences/s  ({med[k]:.4f} s)   ratio to plain {med["plain"] / med[k]:8.2f}x')


if __name__ == '__main__':
    main()
