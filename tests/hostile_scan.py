"""Hostile-value scan of the whole `mlp` command tree, generated from the Typer app.

Every command gets `--help`, then each of its parameters gets each hostile value (the command's other required
parameters get the same value, so the callback runs). Each invocation runs through `mlportfolio.cli.main`, the
real entry point, in a child forked from one process that imported the library and its heavy dependencies once;
each child has its own working folder and MLP_HOME. A child that runs past the per-invocation limit is killed: it
accepted the value and started real work, which counts as a timeout, not a failure.
A failure is an exception escaping `main` (the installed script would print a traceback), 'Traceback' on stderr,
or `main`'s 'internal error:' line (an unexpected exception: a bug, whose traceback went to the log).

Run as a script: `python tests/hostile_scan.py [--workers 2] [--timeout 20] [--json OUT]` prints the counts."""
from __future__ import annotations
import contextlib, io, json, os, shutil, stat, sys, tempfile, time, traceback
from pathlib import Path

LONG = 'x' * 5000
PRELOAD = ('pandas', 'sklearn.linear_model', 'duckdb', 'torch', 'mlflow', 'papermill', 'mlportfolio.core.embed', 'PIL.Image', 'plotly.graph_objects')


def hostile_values(base: Path) -> dict[str, str]:
    "The hostile values, by name; path values are created under `base` (a folder, a read-only folder); a missing parent is relative."
    folder = base/'a-folder'; folder.mkdir(parents=True, exist_ok=True)
    ro = base/'read-only'; ro.mkdir(exist_ok=True); ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return {'too-long': LONG, 'negative': '-1', 'huge': '99999999999999999999', 'unicode-digits': '١٢',
            'markup': '[/x]', 'control': 'a\x1b[31mred\x07\x7f',   # no NUL: no real argv can carry one
            'folder': str(folder),
            'read-only': str(ro/'out.csv') if os.geteuid() else '/proc/mlp-hostile-out.csv',   # root ignores mode bits
            # relative: each case runs in a folder of its own, so a command that creates it (capture serve --db makes its
            # folder) cannot turn it into an existing file for the cases after it
            'missing-parent': str(Path('missing')/'deeper'/'out.csv')}


def walk_commands():
    "Yield `(path, click command)` for every leaf command of the `mlp` app."
    import typer
    from mlportfolio.cli import app
    def walk(cmd, path):
        if hasattr(cmd, 'commands'):
            for name, sub in cmd.commands.items(): yield from walk(sub, path + [name])
        else: yield path, cmd
    yield from walk(typer.main.get_command(app), [])


def param_kind(p) -> str:
    "'number', 'path', 'choice' or 'text', from the parameter's annotation (Typer) or its click type."
    desc = getattr(p, 'type_descriptor', None)
    if desc is not None:
        if desc.is_choice: return 'choice'
        if desc.is_path or desc.is_file: return 'path'
        ann = desc.annotation
        args = getattr(ann, '__args__', None) or ()
        base = next((a for a in (ann, *args) if a in (int, float)), None)
        if base is not None: return 'number'
        return 'text'
    name = getattr(getattr(p, 'type', None), 'name', 'text')
    return {'integer': 'number', 'float': 'number', 'path': 'path', 'choice': 'choice'}.get(name, 'text')

VALUES_BY_KIND = {  # which hostile values each kind of parameter gets
    'number': ('negative', 'huge', 'unicode-digits', 'markup'),
    'choice': ('markup', 'control'),
    'path': ('folder', 'read-only', 'missing-parent', 'markup', 'control', 'too-long'),
    'text': ('too-long', 'negative', 'huge', 'unicode-digits', 'markup', 'control', 'folder'),
}

LOUDER_FLAGS = ('verbose',)   # flags that only print more: a markup-looking value is also tried with them on

# Options that keep a command's real work small, so that a case runs to its end within the per-case limit and is judged
# on its whole run, instead of being killed while the LLM reads a 5,000-character prompt or 10,000 rows are generated.
# A case whose target is one of these options gets the hostile value there instead.
SMALL_WORK = {('llm', 'complete'): {'--max-tokens': '2', '--deadline': '4'},
              ('llm', 'classify'): {'--deadline': '4'},
              ('data', 'generate'): {'--n': '200'}}

def param_spec(p) -> dict:
    "What the scan needs to know of one parameter."
    is_opt = bool(getattr(p, 'opts', None)) and p.opts[0].startswith('-')
    return dict(name=p.name, option=p.opts[0] if is_opt else None, required=bool(p.required),
                flag=bool(getattr(p, 'is_flag', False)), nargs=p.nargs, kind=param_kind(p))


def plan(values: dict[str, str]) -> list[list[str]]:
    "Every argv of the scan: `--help` per command, then each hostile value in each parameter."
    cases = []
    for path, cmd in walk_commands():
        cases.append(path + ['--help'])
        specs = [param_spec(p) for p in cmd.params if p.name != 'help' and getattr(p, 'expose_value', True)]
        targets = [s for s in specs if not s['flag']]
        louder = [s['option'] for s in specs if s['flag'] and s['name'] in LOUDER_FLAGS and s['option']]
        for target in targets:
            for kind in VALUES_BY_KIND[target['kind']]:
                argv = list(path)
                for s in specs:
                    if s is target or (s['required'] and not s['flag']):
                        argv += ([s['option']] if s['option'] else []) + [values[kind]]
                for opt, small in SMALL_WORK.get(tuple(path), {}).items():
                    if opt != target['option']: argv += [opt, small]
                cases.append(argv)
                if kind == 'markup' and louder: cases.append(argv + louder)   # the value echoed back in the longer output too
        if not targets: cases.append(list(path))
    return cases


# ------------------------------------------------------------------------------------------- runner side
def run_one(argv: list[str]) -> dict:
    "Run `mlp ARGV` in this process through `mlportfolio.cli.main`; report exit code, escaped exception, stderr tail."
    from mlportfolio.cli import main
    out, err = io.StringIO(), io.StringIO()
    code, escaped = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: main(argv)
        except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # noqa: BLE001 - anything escaping main is what the scan looks for
            code, escaped = 1, ''.join(traceback.format_exception(e))[-3000:]
    stderr = err.getvalue()
    return dict(argv=argv, code=code, escaped=escaped, stderr=stderr[-600:],
                traceback_on_stderr='Traceback' in stderr or 'internal error:' in stderr)


WARM_UP = (['registry', 'list'], ['capture', 'stats'])   # create the MLflow and capture stores once, in the template home

def _child(argv: list[str], result: Path, cwd: Path, template: Path | None = None):
    "In a forked child: own working folder and MLP_HOME (a copy of the warmed-up template), run one case, write its result, exit."
    try:
        os.chdir(cwd); os.environ['MLP_HOME'] = str(cwd/'home')
        if template is not None and template.exists(): shutil.copytree(template, cwd/'home', symlinks=True)
        res = run_one(argv)
        result.write_text(json.dumps(res))
    finally: os._exit(0)


def fork_scan(cases: list[list[str]], base: Path, workers: int, timeout: float, log=None) -> list[dict]:
    "Run `cases` in children forked from this preloaded process, `workers` at a time; a child past `timeout` is killed."
    import signal
    import mlportfolio.cli  # noqa: F401 - import once; every child starts from here
    for heavy in PRELOAD:   # what many commands import: paid once, shared by every forked child
        try: __import__(heavy)
        except Exception: pass
    import gc
    gc.collect(); gc.freeze()   # the preloaded heap is never scanned by a child's collector: fewer copy-on-write page copies per fork
    template = base/'template'/'home'; template.parent.mkdir(parents=True, exist_ok=True)
    for i, argv in enumerate(WARM_UP):   # serially, before the timed cases; their results are not counted
        pid = os.fork()
        if pid == 0: _child(argv, base/'template'/f'warm-{i}.json', base/'template')
        os.waitpid(pid, 0)
    results, running, todo = [], {}, list(enumerate(cases))
    while todo or running:
        while todo and len(running) < workers:
            i, argv = todo.pop(0)
            cwd = base/f'case-{i}'; cwd.mkdir(parents=True, exist_ok=True)
            pid = os.fork()
            if pid == 0: _child(argv, cwd/'result.json', cwd, template)
            running[pid] = (i, argv, cwd, time.time())
        time.sleep(0.01)
        for pid, (i, argv, cwd, t0) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            late = not done and time.time() - t0 > timeout
            if late:
                os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
            if not done and not late: continue
            del running[pid]
            f = cwd/'result.json'
            if f.exists(): res = json.loads(f.read_text())
            else: res = dict(argv=argv, code=None, escaped=None if late else f'child died (status {status})',
                             traceback_on_stderr=False, stderr='', timeout=late)
            res['seconds'] = round(time.time() - t0, 2)
            results.append(res)
            if log: print(f"{len(results):5d}/{len(cases)} {res['seconds']:6.2f}s code={res['code']} "
                          f"{'TIMEOUT ' if res.get('timeout') else ''}{'TRACEBACK ' if res.get('escaped') or res.get('traceback_on_stderr') else ''}"
                          f"{' '.join(a[:30] for a in argv)!r}", file=log, flush=True)
    return results


def scan(base: Path, workers: int = 2, timeout: float = 20.0, log=None, only: list[str] | None = None) -> dict:
    "Run the whole scan under folder `base` (in this process and its forked children); `only`: command prefixes such as 'capture serve'."
    values = hostile_values(base/'values')
    cases = [c for c in plan(values) if not only or any(' '.join(c).startswith(o) for o in only)]
    t0 = time.time()
    results = fork_scan(cases, base/'cases', workers, timeout, log)
    failures = [r for r in results if r.get('escaped') or r.get('traceback_on_stderr')]
    return dict(commands=len([c for c in cases if c[-1] == '--help']), invocations=len(results),
                timeouts=sum(bool(r.get('timeout')) for r in results), failures=failures,
                timed_out=[r['argv'] for r in results if r.get('timeout')], seconds=round(time.time() - t0, 1))


if __name__ == '__main__':
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument('--workers', type=int, default=2); ap.add_argument('--timeout', type=float, default=20.0)
    ap.add_argument('--log', action='store_true', help='one line per case on stderr')
    ap.add_argument('--json', type=Path)
    ap.add_argument('--only', action='append', help="only commands starting with this, e.g. 'capture serve' (repeatable)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rep = scan(Path(d), a.workers, a.timeout, log=sys.stderr if a.log else None, only=a.only)
        ro = Path(d)/'values'/'read-only'; ro.chmod(0o700)
    print(f"commands {rep['commands']}, invocations {rep['invocations']}, timeouts {rep['timeouts']}, "
          f"tracebacks {len(rep['failures'])}, {rep['seconds']} s")
    for f in rep['failures']:
        print('FAIL mlp', ' '.join(a if len(a) < 40 else a[:37] + '...' for a in f['argv']).encode('unicode_escape').decode())
        print('   ', (f['escaped'] or f['stderr']).strip().splitlines()[-1][:300])
    if a.json: a.json.write_text(json.dumps(rep, indent=1))
