"""What another sentence encoder costs beside the packaged MiniLM, on the texts the trainer embeds (issue 18).

Generates `--n` rows as `make demo` does, keeps their unique texts, and embeds them with the packaged MiniLM and with
each `--model` folder, on each `--backends` backend, cold (no embedding cache), weights loaded and ONNX files built
before timing. Prints seconds (median of `--runs`), texts/s, the ratio to MiniLM on the same backend measured in the
same run, and the median latency of one text at a time (the online API's worst case), with the load average.

Usage: python bench/encoders.py --model /path/to/all-mpnet-base-v2 [--model ...] [--n 3000] [--runs 1] [--backends torch,onnx]
Figures are recorded by hand in bench/RESULTS.md (## train).
"""
import argparse, os, statistics, tempfile, time

os.environ.setdefault('MLP_PROGRESS', 'false')
os.environ.setdefault('HF_HUB_OFFLINE', '1')


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', dest='models', action='append', default=[], metavar='FOLDER',
                    help='a local sentence-transformers folder to compare with MiniLM (repeatable)')
    ap.add_argument('--n', type=int, default=3000, help='generated rows whose unique texts are embedded (default 3,000)')
    ap.add_argument('--runs', type=int, default=1, help='timed runs per encoder and backend (median)')
    ap.add_argument('--backends', default='torch,onnx', help='comma-separated: torch, onnx, onnx-int8')
    ap.add_argument('--one', type=int, default=20, help='texts timed one at a time for the latency figure')
    return ap.parse_args()


def timed_runs(emb, texts, runs: int) -> float:
    "Median seconds to embed `texts` (the embedder has no cache, so every run is cold)."
    out = []
    for _ in range(runs):
        t = time.perf_counter(); emb.encode(texts); out.append(time.perf_counter() - t)
    return statistics.median(out)


def one_at_a_time(emb, texts) -> float:
    "Median milliseconds to embed one text alone."
    out = []
    for t in texts:
        t0 = time.perf_counter(); emb.encode([t]); out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out)


def main():
    args = parse_args()
    os.environ.setdefault('MLP_HOME', tempfile.mkdtemp(prefix='mlp-bench-encoders-'))   # ONNX files are built here
    from mlportfolio.core.embed import DEFAULT_MODEL_NAME, Embedder
    from mlportfolio.data.generate import generate_dataset
    texts = list(dict.fromkeys(generate_dataset(args.n, seed=42)['text'].tolist()))
    words = statistics.median(len(t.split()) for t in texts)
    print(f'{len(texts)} unique texts from {args.n} generated rows (median {words:.0f} words); '
          f'{os.cpu_count()} CPU cores, MLP_TORCH_THREADS={os.environ.get("MLP_TORCH_THREADS", "(unset)")}')
    base = {}
    for model in [DEFAULT_MODEL_NAME, *args.models]:
        for backend in [b for b in args.backends.split(',') if b]:
            emb = Embedder(model, device='cpu', cache=False, progress=False, backend=backend)
            emb.encode(texts[:16])                      # load the weights, build the ONNX file
            s = timed_runs(emb, texts, args.runs)
            if model == DEFAULT_MODEL_NAME: base[backend] = s
            ms = one_at_a_time(emb, texts[:args.one])
            print(f'{emb.model_id:>22s} {backend:>9s}  dim {emb.dim:4d}  {s:7.1f} s  {len(texts) / s:6.1f} texts/s  '
                  f'x{s / base[backend]:.2f} MiniLM  one text {ms:6.1f} ms (median)  load {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    main()
