"""Benchmark core.embed's backends against plain SentenceTransformer.encode.

CPU (default): 2,000 mixed-length texts (5 to 200 words), sentences/s (median of 3 runs) for plain
`SentenceTransformer.encode(batch_size=32)`, then our `encode` with a cold cache (a fresh cache folder each run) on each
backend (torch, onnx, onnx-int8), and our `encode` on a warm cache; each with its ratio to plain measured in the same
run, and the cosine of each backend's vectors to plain's (mean and minimum). Weights load (and ONNX files are
exported) before timing. The load average is printed beside the figures: on a shared machine they move with it.

GPU (`--gpu`, default 200,000 texts): sentence-transformers in fp16 with batch 1024 vs our CUDA path
(`Embedder(device='cuda')`: fp16, token-budget length buckets, tokenisation on worker threads, pinned memory),
median of 3, and the cosine of ours to sentence-transformers'. Before the runs it times our two stages apart (the CPU
producer alone, the GPU forward alone on ready batches) and after them one run per `--tokenise-processes` setting. Without a CUDA GPU it says so and exits 0.

Usage: python bench/embed.py [--n 2000] [--runs 3] [--backends torch,onnx,onnx-int8]
       python bench/embed.py --gpu [--n 200000] [--runs 3] [--tokenise-processes 0,6,12]
"""
import argparse, os, platform, statistics, sys, tempfile, time

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


def timed(fn):
    t0 = time.perf_counter(); out = fn(); return time.perf_counter() - t0, out


def loadavg() -> str:
    try: return ' '.join(open('/proc/loadavg').read().split()[:3])
    except OSError: return 'n/a'


def cosines(a, b) -> str:
    cos = np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64), axis=1)
    return f'cos to plain mean {cos.mean():.4f} min {cos.min():.4f}'


def cpu(args):
    import torch
    from sentence_transformers import SentenceTransformer
    from mlportfolio.core.embed import Embedder, packaged_model_path
    texts = make_texts(args.n)
    backends = [b for b in args.backends.split(',') if b]
    plain_model = SentenceTransformer(str(packaged_model_path()), device='cpu')
    plain_model.encode(texts[:64], batch_size=32)  # warm-up: first call allocates
    embedders = {}
    for b in backends:                              # load weights / build ONNX sessions outside the timing
        e = Embedder(cache=False, progress=False, device='cpu', batch_size=32, backend=b)
        if b == 'torch': e._model = plain_model      # same weights in memory: only the encode path differs
        e.encode(texts[:8]); embedders[b] = e
    times = {k: [] for k in ['plain', *backends, 'warm']}
    ref, vecs = None, {}
    for run in range(args.runs):
        t, ref = timed(lambda: plain_model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False))
        times['plain'].append(t)
        line = [f'plain {t:.1f}s']
        for b in backends:
            cache_dir = tempfile.mkdtemp()
            emb = Embedder(cache_dir=cache_dir, progress=False, device='cpu', batch_size=32, backend=b)
            emb._model, emb._encoder = embedders[b]._model, embedders[b]._encoder
            t, vecs[b] = timed(lambda: emb.encode(texts)); times[b].append(t); line.append(f'{b} {t:.1f}s')
            if b == backends[-1]:
                warm = Embedder(cache_dir=cache_dir, progress=False, device='cpu', batch_size=32, backend=b)
                warm._model, warm._encoder = emb._model, emb._encoder
                t, _ = timed(lambda: warm.encode(texts)); times['warm'].append(t); line.append(f'warm ({b}) {t:.3f}s')
                assert warm.stats['misses'] == 0
        print(f'run {run + 1}: ' + '  '.join(line) + f'   [load {loadavg()}]', flush=True)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    print(f'\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'cuda {torch.cuda.is_available()}, load average now {loadavg()}')
    print(f'{args.n} texts, median of {args.runs} runs')
    for k in med:
        q = f'   {cosines(vecs[k], ref)}' if k in vecs else ''
        print(f'  {k:10s}: {args.n / med[k]:10.1f} sentences/s  ({med[k]:.3f} s)   ratio to plain {med["plain"] / med[k]:8.2f}x{q}')


def gpu_stages(ours, texts) -> None:
    "Where our CUDA path spends its time: the CPU producer alone (tokenise, pad, pin) and the GPU forward alone on ready batches."
    import torch
    from mlportfolio.core.embed import mean_pool_normalise
    enc, items = ours.encoder, []
    texts = sorted(texts, key=len, reverse=True)                     # as `encode` orders them
    t_prod, _ = timed(lambda: enc._batches(texts, lambda item: items.append(item) or True, enc._tokeniser_pool()))
    ready = []
    for _, (ids, lens) in items:
        ids, lens = ids.to('cuda').long(), lens.to('cuda')
        ready.append((ids, (torch.arange(ids.shape[1], device='cuda') < lens[:, None]).long()))
    torch.cuda.synchronize()
    def forward():
        with torch.inference_mode():
            for ids, mask in ready:
                mean_pool_normalise(enc.model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state.float(), mask)
        torch.cuda.synchronize()
    forward(); t_fwd, _ = timed(forward)
    tokens = sum(int(m.sum()) for _, m in ready); cells = sum(m.numel() for _, m in ready)
    how = f'{enc.tokenise_processes} worker processes' if enc.tokenise_processes else f'{enc.tokenise_threads} threads'
    print(f'  stages: CPU producer alone (tokenise + pad + pin, {how}, chunk {enc.chunk:,}) '
          f'{len(texts) / t_prod:,.0f} sentences/s ({t_prod:.2f} s); GPU forward alone on the {len(ready)} ready batches '
          f'{len(texts) / t_fwd:,.0f} sentences/s ({t_fwd:.2f} s); {tokens:,} tokens, padding {1 - tokens / cells:.1%}', flush=True)
    del ready, items; torch.cuda.empty_cache()


def gpu(args):
    import torch
    if not torch.cuda.is_available():
        print('no CUDA GPU here: the GPU benchmark is skipped (run bench/embed.py --gpu on a machine with one)')
        return
    import tokenizers
    from sentence_transformers import SentenceTransformer
    from mlportfolio.core.embed import Embedder, packaged_model_path
    texts = make_texts(args.n)
    st = SentenceTransformer(str(packaged_model_path()), device='cuda').half()
    ours = Embedder(cache=False, progress=False, device='cuda')
    st.encode(texts[:4096], batch_size=1024); ours.encode(texts[:16384])          # warm-up: ours sizes its token budget, starts its workers
    print(f'{torch.cuda.get_device_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, tokenizers {tokenizers.__version__}; '
          f'our token budget {ours.encoder.max_tokens:,} tokens per batch; load average {loadavg()}', flush=True)
    gpu_stages(ours, texts)
    t_st, t_ours = [], []
    for run in range(args.runs):
        def st_run(): out = st.encode(texts, batch_size=1024, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False); torch.cuda.synchronize(); return out
        t, ref = timed(st_run); t_st.append(t)
        t, vec = timed(lambda: ours.encode(texts)); t_ours.append(t)
        print(f'run {run + 1}: sentence-transformers fp16 b1024 {t_st[-1]:.2f}s  ours {t_ours[-1]:.2f}s  [load {loadavg()}]', flush=True)
    a, b = statistics.median(t_st), statistics.median(t_ours)
    print(f'\n{args.n} texts, median of {args.runs} runs, torch {torch.__version__}')
    print(f'  sentence-transformers fp16 batch 1024: {args.n / a:10.0f} sentences/s ({a:.2f} s)')
    print(f'  ours (CUDA path, fp16, pipelined):     {args.n / b:10.0f} sentences/s ({b:.2f} s)   ratio {a / b:.2f}x   {cosines(vec, ref)}')
    default = ours.encoder.tokenise_processes
    for procs in args.tokenise_processes:                                          # one run each: how the producer scales
        ours.encoder.close(); ours.encoder.tokenise_processes = procs
        ours.encode(texts[:16384])                                                 # starts that many workers
        t, _ = timed(lambda: ours.encode(texts))
        how = f'{procs} tokenising processes' if procs else f'no worker process ({ours.encoder.tokenise_threads} threads)'
        print(f'  ours with {how}: {args.n / t:10.0f} sentences/s ({t:.2f} s), one run', flush=True)
    print(f'  (the default: {default} worker processes)')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--gpu', action='store_true', help='GPU benchmark (200,000 texts by default)')
    ap.add_argument('--n', type=int, default=None)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--backends', default='torch,onnx,onnx-int8', help='CPU backends to compare with plain')
    ap.add_argument('--tokenise-processes', default='0,6,12', type=lambda v: [int(x) for x in v.split(',') if x],
                    help='GPU: after the timed runs, one run of ours with each number of tokenising worker processes (0: threads)')
    args = ap.parse_args()
    args.n = args.n or (200_000 if args.gpu else 2000)
    (gpu if args.gpu else cpu)(args)


if __name__ == '__main__':
    main()
