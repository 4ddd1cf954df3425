"""Inference API benchmark: throughput and latency of `POST /predict` (one text per request) with and without
adaptive micro-batching, the gateway overhead, on a real uvicorn on loopback serving the registered champion.

Load generator: `wrk` (Debian package), with a Lua script that sends a different text in every request, and the
server's embedding cache pointed at an empty folder: every text is cold (embedded for real), as in production.
  (a) batching off: `--max-batch-size 1` (one classifier call per text);
  (b) adaptive micro-batching: `--max-batch-size 32`.
For each: requests per second and p50/p99 latency at concurrency 1, 8 and 32 (closed loop, `--duration` seconds
each, after a short warm-up); the ratio (b)/(a) is computed from the same run. Then (b) is loaded at half of its
own capacity (its requests/s at concurrency 32, halved) for the p99 at half capacity: an open loop, as real clients,
where requests arrive as a Poisson stream at that rate whether or not earlier ones were answered (64 connections;
each wrk thread draws exponential gaps and a free connection sleeps until the next send time, so answers do not
pace arrivals). `late` counts sends that found every connection busy (0: the loop stayed open). That run lasts
twice `--duration` (a p99 over ~2,500 requests, not ~1,250), and prints the CPU the server and wrk used (cores)
and where the time went on the server (its own Prometheus histograms: queue wait, classifier call, batch size).
Gateway overhead: p50 of /predict at concurrency 1 minus p50 of a direct in-process call of the same model on one
text, both cold: the call the service makes (the Python model's `predict_rows`, `api.app.Serving.predict`); the
pyfunc's own `LoadedModel.predict` (a frame in, a frame out, MLflow's input check) is printed beside it.

The machine is shared: the load average is printed beside the figures.

Usage: MLP_HOME=... python bench/api.py [--duration 8] [--model champion] [--write]
  (MLP_HOME must hold a registered champion: `mlp job run generate_data && mlp job run train -p promote=True`)
"""
import argparse, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLP = str(Path(sys.executable).parent/'mlp')
LUA = '''
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = string.format('{"text": "please delete my account %d and every record you hold about order %d", "route": "classifier"}',
                             math.random(1, 1000000000), counter)
  return wrk.format(nil, nil, nil, body)
end
'''
# Open-loop pacing (RATE requests/s in all): each wrk thread draws a Poisson schedule of send times (exponential gaps,
# LuaJIT's ffi reads the monotonic clock); a connection that is free claims the next time and sleeps until it
# (wrk calls delay() before every request, the first included). Arrivals do not wait for answers, as real clients;
# a request is `late` when no connection was free at its time (all busy): then the load is no longer open-loop.
PACED = '''
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } mlp_timespec; int clock_gettime(int, mlp_timespec *); ]]
local ts = ffi.new("mlp_timespec")
local function now_ms() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6 end
local threads = {}
function setup(thread) table.insert(threads, thread) end
local gap_ms, next_t = nil, nil
late = 0
delay = function()
  local now = now_ms()
  if next_t == nil then gap_ms = 1000 * THREADS / RATE; next_t = now end
  next_t = next_t - math.log(1 - math.random()) * gap_ms
  local wait = next_t - now
  if wait < -1 then late = late + 1 end
  return math.max(0, math.floor(wait + 0.5))
end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + (t:get("late") or 0) end
  io.write(string.format("late %d\\n", n))
end
'''


os.environ.setdefault('MLP_TORCH_THREADS', '1')   # as the Docker image: one torch thread per process on a small shared box
os.environ.setdefault('OMP_NUM_THREADS', '1')


def loadavg() -> str: return Path('/proc/loadavg').read_text().split(' ')[0:3].__str__()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def start_server(model: str, batch: int, cache_dir: str, max_wait_ms: float = 4.0):
    port = free_port()
    env = {**os.environ, 'MLP_EMBED_CACHE_DIR': cache_dir, 'MLP_PROGRESS': 'false', 'MLP_API_LLM_BACKENDS': 'openai'}
    env.pop('MLP_API_KEY', None)
    p = subprocess.Popen([MLP, 'api', 'serve', '--port', str(port), '--model', model, '--max-batch-size', str(batch),
                          '--max-queue', '4096', '--reload-seconds', '0', '--log-level', 'warning', '--max-wait-ms', str(max_wait_ms)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import httpx
    url = f'http://127.0.0.1:{port}'
    end = time.time() + 300
    while time.time() < end:
        try:
            if httpx.get(f'{url}/ready', timeout=2).status_code == 200: return p, url
        except httpx.HTTPError: pass
        time.sleep(0.5)
    raise SystemExit('server did not become ready')


def stop(p):
    os.killpg(p.pid, signal.SIGTERM)
    try: p.wait(20)
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL)


def ms(v: str) -> float:
    m = re.fullmatch(r'([\d.]+)(us|ms|s|m)', v)
    n, u = float(m.group(1)), m.group(2)
    return n * {'us': 1e-3, 'ms': 1.0, 's': 1e3, 'm': 6e4}[u]


def wrk(url: str, conns: int, seconds: float, rate: float = 0, lua_dir: Path = None) -> dict:
    "Run wrk, closed loop (`rate` 0: every connection sends again when answered) or open loop at `rate` req/s; rps, p50, p99 (ms), errors, late."
    threads = min(conns, 2)
    script = lua_dir/f'predict_{int(rate)}.lua'
    script.write_text(LUA + (PACED.replace('RATE', f'{rate:.3f}').replace('THREADS', str(threads)) if rate else ''))
    r = subprocess.run(['wrk', '-t', str(threads), '-c', str(conns), '-d', f'{int(round(seconds))}s', '--latency', '-s', str(script),
                          f'{url}/predict'], capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode: raise SystemExit(f'wrk failed: {r.stderr.strip()[:300]}')
    out = r.stdout
    lat = dict(re.findall(r'^\s+(50|99)%\s+(\S+)\s*$', out, re.M))
    if '50' not in lat: return dict(rps=0.0, p50=float('nan'), p99=float('nan'), errors=-1, late=0)   # no request finished
    errors = sum(int(x) for x in re.findall(r'Non-2xx or 3xx responses: (\d+)', out))
    errors += sum(int(x) for x in re.findall(r'(?:connect|read|write|timeout) (\d+)', out))
    late = re.search(r'^late (\d+)$', out, re.M)
    return dict(rps=float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1)), p50=ms(lat['50']), p99=ms(lat['99']), errors=errors,
                late=int(late.group(1)) if late else 0)


def scrape(url: str) -> dict:
    "The service's own histograms (count, sum, cumulative buckets) for queue wait, batch size, inference and request time."
    import httpx
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(httpx.get(f'{url}/metrics', timeout=10).text):
        if fam.name not in ('mlp_api_queue_wait_seconds', 'mlp_api_batch_size', 'mlp_api_inference_seconds', 'mlp_api_request_duration_seconds'): continue
        for smp in fam.samples:
            if fam.name == 'mlp_api_request_duration_seconds' and smp.labels.get('route') != '/predict': continue
            key = (fam.name, smp.name.rsplit('_', 1)[-1], smp.labels.get('le'))
            out[key] = out.get(key, 0.0) + smp.value
    return out


def breakdown(before: dict, after: dict) -> str:
    "One line: where the requests of a run spent their time, from the service's histograms (differences over the run)."
    def q(name, p):
        d = {k[2]: after[k] - before.get(k, 0.0) for k in after if k[0] == name and k[1] == 'bucket'}
        n = d.get('+Inf', 0.0)
        if not n: return float('nan')
        return next(float(le) for le, c in sorted(d.items(), key=lambda kv: float(kv[0])) if c >= p * n)
    def mean(name):
        n = after.get((name, 'count', None), 0) - before.get((name, 'count', None), 0)
        return (after.get((name, 'sum', None), 0) - before.get((name, 'sum', None), 0)) / n if n else float('nan')
    qw, inf, req = 'mlp_api_queue_wait_seconds', 'mlp_api_inference_seconds', 'mlp_api_request_duration_seconds'
    return (f'server side: request mean {mean(req)*1e3:.1f} ms, p99 <= {q(req, .99)*1e3:g} ms; queue wait mean {mean(qw)*1e3:.1f} ms, '
            f'p99 <= {q(qw, .99)*1e3:g} ms; classifier call mean {mean(inf)*1e3:.1f} ms, p99 <= {q(inf, .99)*1e3:g} ms; '
            f'batch size mean {mean("mlp_api_batch_size"):.1f}, p99 <= {q("mlp_api_batch_size", .99):g}')


def direct_p50(model: str, n: int = 40) -> tuple[float, float]:
    """p50 (ms) on one cold text, in this process, of the call the service makes (`Serving.predict`: the Python model's
    `predict_rows`) and of the pyfunc's own `predict` (a frame in and out)."""
    import pandas as pd
    from mlportfolio.api.app import Serving
    from mlportfolio.pcc.model import resolve_scoring_model
    m = resolve_scoring_model(model)
    serving = Serving(m, model, 0.6, 'default', None)
    calls = {'service': lambda t: serving.predict([t]), 'pyfunc': lambda t: m.predict(pd.DataFrame({'text': [t]}))}
    for call in calls.values(): call('warm up the embedder')
    xs = {k: [] for k in calls}
    for i in range(n):
        for k, call in calls.items():
            t0 = time.perf_counter(); call(f'please delete my account {i} {k} {time.time()} and every record you hold')
            xs[k].append((time.perf_counter() - t0) * 1e3)
    return statistics.median(xs['service']), statistics.median(xs['pyfunc'])


def cpu_s(pid: int) -> float:
    "CPU seconds (user + system) process `pid` and its threads have used."
    f = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')


def paced(url: str, server_pid: int, rate: float, seconds: float, lua_dir: Path) -> dict:
    "(b) loaded open-loop at `rate` req/s by 64 connections; adds the CPU share of wrk and of the server, and the server's breakdown."
    import resource
    before, s0, w0 = scrape(url), cpu_s(server_pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = wrk(url, 64, seconds, rate=rate, lua_dir=lua_dir)
    wall, w1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    r['server_cpu'] = (cpu_s(server_pid) - s0) / wall
    r['wrk_cpu'] = (w1.ru_utime + w1.ru_stime - w0.ru_utime - w0.ru_stime) / wall
    r['breakdown'] = breakdown(before, scrape(url))
    return r


def show_paced(r: dict, rate: float, load: str) -> None:
    print(f'batching on, open loop at {rate:.0f} req/s: {r["rps"]:.1f} req/s  p50 {r["p50"]:.1f} ms  p99 {r["p99"]:.1f} ms  '
          f'errors {r["errors"]}  late {r["late"]}  load {load}\n  CPU (cores): server {r["server_cpu"]:.2f}, wrk {r["wrk_cpu"]:.2f}\n  {r["breakdown"]}', flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--duration', type=int, default=8)
    ap.add_argument('--model', default='champion')
    ap.add_argument('--max-wait-ms', type=float, default=4.0, help="the server's --max-wait-ms (default 4, as the service)")
    ap.add_argument('--rate', type=float, default=0, help='only the open-loop run of (b), at this many requests/s (default: the full run)')
    ap.add_argument('--batch-threads', type=int, default=0,
                    help="the server's --batch-threads, for (a) and (b) alike: threads that encode a batch of 2 texts or more at once, a part each (default: the server's, 2 on 2 CPUs or more)")
    ap.add_argument('--write', action='store_true', help='replace the ## api section of bench/RESULTS.md')
    a = ap.parse_args()
    if a.batch_threads: os.environ['MLP_EMBED_BATCH_THREADS'] = str(a.batch_threads)   # the servers inherit it
    if not shutil.which('wrk'): raise SystemExit('wrk is not installed (Debian package wrk)')
    from mlportfolio.core.embed import default_batch_threads   # what the server picks without --batch-threads
    tmp = Path(tempfile.mkdtemp(prefix='api-bench-'))
    os.environ['MLP_EMBED_CACHE_DIR'] = str(tmp/'direct-cache')
    print(f'load average before: {loadavg()}; embedding backend {os.environ.get("MLP_EMBED_BACKEND", "torch")} '
          f'(MLP_EMBED_BACKEND; the champion must have been trained with it), {os.environ["MLP_TORCH_THREADS"]} torch thread(s), '
          f'{a.batch_threads or default_batch_threads()} thread(s) encoding parts of a batch of 2 or more at once '
          f'({"--batch-threads" if a.batch_threads else "the server default"})', flush=True)
    if a.rate:
        p, url = start_server(a.model, 32, str(tmp/'cache-on'), a.max_wait_ms)
        try:
            wrk(url, 8, 4, lua_dir=tmp)
            r = paced(url, p.pid, a.rate, 2 * a.duration, tmp); show_paced(r, a.rate, loadavg())
        finally: stop(p); shutil.rmtree(tmp, ignore_errors=True)
        return
    direct, pyfunc = direct_p50(a.model)
    print(f'direct in-process call, one cold text: p50 {direct:.1f} ms as the service calls the model, {pyfunc:.1f} ms through the pyfunc', flush=True)
    res, loads = {}, {}
    for mode, batch in (('off', 1), ('on', 32)):
        p, url = start_server(a.model, batch, str(tmp/f'cache-{mode}'), a.max_wait_ms)
        try:
            wrk(url, 8, 4, lua_dir=tmp)                                   # warm-up
            for c in (1, 8, 32):
                res[mode, c] = wrk(url, c, a.duration, lua_dir=tmp); loads[mode, c] = loadavg()
                r = res[mode, c]
                print(f'batching {mode:<3} c={c:<3} {r["rps"]:8.1f} req/s  p50 {r["p50"]:7.1f} ms  p99 {r["p99"]:7.1f} ms  errors {r["errors"]}  load {loads[mode, c]}', flush=True)
            if mode == 'on':
                half = res['on', 32]['rps'] / 2
                res['half'] = paced(url, p.pid, half, 2 * a.duration, tmp); loads['half'] = loadavg()
                show_paced(res['half'], half, loads['half'])
        finally: stop(p)
    ratio = res['on', 32]['rps'] / res['off', 32]['rps']
    overhead = res['on', 1]['p50'] - direct
    print(f'throughput ratio (b)/(a) at c=32: {ratio:.2f}x;  gateway overhead p50: {overhead:.1f} ms (/predict c=1 {res["on", 1]["p50"]:.1f} ms - direct {direct:.1f} ms)')
    if a.write: write_results(res, loads, direct, ratio, overhead, a)
    shutil.rmtree(tmp, ignore_errors=True)


def write_results(res, loads, direct, ratio, overhead, a):
    import platform
    lines = ['## api', '',
             f'`python bench/api.py --duration {a.duration:g} --write`, {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, on '
             f'{platform.node() or "this machine"} ({os.cpu_count()} CPUs, shared with other '
             'engineers\' jobs: the load average is beside each figure). Real uvicorn on loopback, the registered champion '
             f'({a.model}), load from `wrk` with a different text in every request and an empty embedding cache (cold texts); '
             f'one text per request, route=classifier; embedding backend `{os.environ.get("MLP_EMBED_BACKEND", "torch")}`, '
             f'{os.environ["MLP_TORCH_THREADS"]} torch thread(s) per process. The half-capacity run is open-loop: Poisson arrivals at '
             f'the target rate from 64 connections (wrk\'s `delay()` hook sleeps each free connection until the next send time), '
             f'{2 * a.duration:g} s; `late` counts sends that found every connection busy.', '',
             '| batching | concurrency | req/s | p50 ms | p99 ms | errors | load avg (1, 5, 15 min) |', '| --- | --- | --- | --- | --- | --- | --- |']
    for mode in ('off', 'on'):
        for c in (1, 8, 32):
            r = res[mode, c]
            lines.append(f'| {"(a) off" if mode == "off" else "(b) adaptive"} | {c} | {r["rps"]:.1f} | {r["p50"]:.1f} | {r["p99"]:.1f} | {r["errors"]} | {loads[mode, c]} |')
    h = res['half']
    lines += ['', f'- (b)/(a) throughput at concurrency 32: **{ratio:.2f}x** (goal ≥ 3x).',
              f'- (b) open loop at half its capacity ({res["on", 32]["rps"] / 2:.0f} req/s): {h["rps"]:.1f} req/s, p50 {h["p50"]:.1f} ms, '
              f'**p99 {h["p99"]:.1f} ms** (goal ≤ 50 ms), errors {h["errors"]}, late {h["late"]}, load {loads["half"]}; CPU: server '
              f'{h["server_cpu"]:.2f} cores, wrk {h["wrk_cpu"]:.2f} cores; {h["breakdown"]}.',
              f'- Gateway overhead (p50 of /predict at concurrency 1 minus p50 of the same model call in process on one cold text, '
              f'{direct:.1f} ms): **{overhead:.1f} ms**.', '']
    path = ROOT/'bench/RESULTS.md'
    text = path.read_text()
    section = '\n'.join(lines)
    text = re.sub(r'## api\n.*?(?=\n## |\Z)', section.rstrip('\n') + '\n', text, flags=re.S) if '\n## api\n' in text else text.rstrip('\n') + '\n\n' + section
    tmp = path.with_suffix('.tmp'); tmp.write_text(text); os.replace(tmp, path)


if __name__ == '__main__':
    main()
