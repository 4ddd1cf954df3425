"""The pip-installed package: every import declared for its module, the extras table in step with pyproject,
and the wheel installed into fresh virtualenvs (with every extra, and bare) used from outside the source tree."""
import ast, importlib.metadata as md, os, re, subprocess, sys, tomllib, venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT/'mlportfolio'

# module prefix -> the extras it may import from (besides the core dependencies); the longest prefix wins
MODULE_EXTRAS = {
    'mlportfolio.core.embed': ['embed', 'onnx'],
    'mlportfolio.core.embed_tokens': ['embed'],
    'mlportfolio.core.finetune': ['embed'],
    'mlportfolio.core.warehouse': ['gcp'],
    'mlportfolio.core.store': ['gcp'],
    'mlportfolio.core.llm': ['llm', 'embed'],
    'mlportfolio.core.http': ['serve', 'capture', 'review'],
    'mlportfolio.train': ['train'],
    'mlportfolio.pcc': ['pcc', 'ray', 'gcp'],
    'mlportfolio.mapper': ['mapper'],
    'mlportfolio.capture': ['capture'],
    'mlportfolio.perception': ['perception'],
    'mlportfolio.api': ['serve', 'llm'],
    'mlportfolio.review': ['review', 'llm'],
}

def _norm(name: str) -> str: return re.sub(r'[-_.]+', '-', name).lower()

def _req_name(req: str) -> str: return _norm(re.split(r'[<>=!~;\[ ]', req.strip(), maxsplit=1)[0])

def declared() -> tuple[set[str], dict[str, set[str]]]:
    "Core distributions, and each extra's distributions with the extras it includes expanded."
    proj = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
    core = {_req_name(r) for r in proj['dependencies']}
    raw = proj['optional-dependencies']
    def expand(extra, seen=()):
        out = set()
        for r in raw[extra]:
            m = re.match(r'mlportfolio\[([^\]]+)\]', r.strip())
            if m: out |= set().union(*(expand(e.strip(), seen + (extra,)) for e in m.group(1).split(',') if e.strip() not in seen))
            else: out.add(_req_name(r))
        return out
    return core, {e: expand(e) for e in raw}

def module_imports(path: Path) -> set[str]:
    "Top-level names of every absolute import in a module, at module level or inside functions."
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import): names |= {a.name.split('.')[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module: names.add(node.module.split('.')[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ('mlportfolio', '__future__')}

def module_name(path: Path) -> str: return '.'.join(path.relative_to(ROOT).with_suffix('').parts)

def allowed_extras(module: str) -> list[str]:
    best = max((p for p in MODULE_EXTRAS if module == p or module.startswith(p + '.')), key=len, default=None)
    return MODULE_EXTRAS.get(best, [])


def test_every_import_is_declared_for_its_module():
    core, extras = declared()
    dists = {k: {_norm(d) for d in v} for k, v in md.packages_distributions().items()}
    problems = []
    for path in sorted(PKG.rglob('*.py')):
        if path.name == '_modidx.py': continue
        mod = module_name(path)
        ok = set(core).union(*(extras.get(e, set()) for e in allowed_extras(mod)))
        for name in sorted(module_imports(path)):
            provided = dists.get(name)
            if not provided: problems.append(f'{mod}: imports {name!r}, which no installed distribution provides'); continue
            if not provided & ok:
                problems.append(f"{mod}: imports {name!r} ({', '.join(sorted(provided))}) declared neither in the core dependencies "
                                f"nor in its extras {allowed_extras(mod) or '(none)'}")
    assert not problems, '\n'.join(problems)


def test_extras_table_agrees_with_pyproject():
    from mlportfolio.core.extras import EXTRAS, extra_modules
    _, extras = declared()
    for extra in EXTRAS:
        assert extra in extras, f'core.extras names [{extra}], which pyproject.toml does not define'
        missing = {_norm(d) for d in extra_modules(extra).values()} - extras[extra]
        assert not missing, f'[{extra}] in core.extras needs {missing}, which pyproject.toml does not install with it'
    assert set(extras['all']) >= set().union(*(v for k, v in extras.items() if k not in ('all', 'dev')))


# ---- the wheel, installed from outside the source tree ----

@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation', '-w', str(out), str(ROOT)],
                   check=True, cwd=out, timeout=600)
    (whl,) = out.glob('mlportfolio-*.whl')
    return whl

def fresh_venv(where: Path, spec: str) -> Path:
    "A new virtualenv at `where` with `spec` (the wheel, maybe with extras) installed; returns its bin folder."
    venv.EnvBuilder(with_pip=True).create(where)
    bin_ = where/'bin'
    pins = ['torch==2.14.1', 'torchvision==0.29.1'] if '[' in spec else []  # the torch this project is tested with
    # --no-compile: a module is byte-compiled when it is first imported, as a user's would be; the install skips
    # compiling the many modules of torch, transformers and ray that no test imports
    r = subprocess.run([str(bin_/'python'), '-m', 'pip', 'install', '--quiet', '--no-compile', spec, *pins],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    return bin_

def run_in(bin_: Path, cwd: Path, *args, env=None, timeout=600) -> subprocess.CompletedProcess:
    # PYTHONDONTWRITEBYTECODE dropped too: the venv is installed --no-compile, so its first imports write the byte code
    clean = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'PYTHONDONTWRITEBYTECODE')}
    return subprocess.run([*args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**clean, 'PATH': f"{bin_}:{clean.get('PATH', '')}", **(env or {})})

@pytest.mark.timeout(3600)  # installs torch and every extra into a new virtualenv: minutes on a busy machine
def test_wheel_with_every_extra_works_outside_the_source_tree(wheel, tmp_path):
    bin_ = fresh_venv(tmp_path/'venv', f'{wheel}[all]')
    home, work = tmp_path/'home', tmp_path/'work'; work.mkdir()
    env = {'MLP_HOME': str(home), 'MLP_PROGRESS': 'false'}
    for args in (['mlp', '--help'], ['mlp', 'job', 'list'], ['mlp', '--version'], ['python', '-m', 'mlportfolio', '--version']):
        r = run_in(bin_, work, *args, env=env)
        assert r.returncode == 0 and 'Traceback' not in r.stderr, (args, r.stderr)
    r = run_in(bin_, work, 'python', '-c', 'import mlportfolio, pathlib; print(pathlib.Path(mlportfolio.__file__).parent)')
    pkg = Path(r.stdout.strip())
    assert str(tmp_path/'venv') in str(pkg) and (pkg/'py.typed').exists(), r.stdout + r.stderr
    r = run_in(bin_, work, 'mlp', 'job', 'run', 'generate_data', '-p', 'n=300', '-p', f'out={work}/d.parquet', env=env)
    assert r.returncode == 0 and (work/'d.parquet').exists(), r.stdout + r.stderr
    importer = ("import importlib, pkgutil, mlportfolio\n"
                "mods = [m.name for m in pkgutil.walk_packages(mlportfolio.__path__, 'mlportfolio.') if not m.name.endswith('__main__')]\n"
                "for m in mods: importlib.import_module(m)\n"
                "print(len(mods))")
    r = run_in(bin_, work, 'python', '-c', importer, env=env)
    assert r.returncode == 0 and int(r.stdout.strip()) > 40, r.stderr[-3000:]


def own_imports(name: str, path: Path, modules: dict) -> set[str]:
    "The package's modules that module `name` imports anywhere (module level or inside a function)."
    parts = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = '.'.join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else [])) if node.level else (node.module or '')
            out |= {c for c in (base, *(f'{base}.{a.name}' for a in node.names)) if c in modules}
        elif isinstance(node, ast.Import): out |= {a.name for a in node.names if a.name in modules}
    return out - {name, 'mlportfolio'}

def test_no_import_cycle():
    "No import cycle among our modules, counting function-local imports (they only hide a cycle, they do not break it)."
    modules = {}
    for p in (ROOT/'mlportfolio').rglob('*.py'):
        name = module_name(p)
        modules[name[:-len('.__init__')] if name.endswith('.__init__') else name] = p
    graph = {m: own_imports(m, p, modules) for m, p in modules.items()}
    state, cycles = {}, []
    def visit(m, stack):
        state[m] = 'open'; stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 'open': cycles.append(' -> '.join(stack[stack.index(t):] + [t]))
            elif t not in state: visit(t, stack)
        stack.pop(); state[m] = 'done'
    for m in sorted(graph):
        if m not in state: visit(m, [])
    assert sum(len(v) for v in graph.values()) > 100 and not cycles, cycles

# a command of each system, and the extra its one-line error must name when installed bare
SYSTEM_COMMANDS = {
    'embed': ['embed', '{work}/texts.txt', '--out', '{work}/v.npy'],
    'train': ['train', 'run', '--data', '{work}/none.parquet'],
    'pcc': ['pcc', 'score', '--date', 'today'],
    'mapper': ['map', 'neighbours', '--input', '{work}/texts.txt', '--text', 'hello'],
    'capture': ['capture', 'add', 'a note'],
    'perception': ['perceive', 'generate', '--scenes', '2', '--out', '{work}/scenes'],
    'serve': ['api', 'serve', '--port', '8765'],
    'review': ['review', 'stats'],
}

@pytest.mark.timeout(1800)
def test_bare_wheel_names_the_missing_extra(wheel, tmp_path):
    bin_ = fresh_venv(tmp_path/'venv', str(wheel))
    work = tmp_path/'work'; work.mkdir(); (work/'texts.txt').write_text('hello\nworld\n')
    env = {'MLP_HOME': str(tmp_path/'home'), 'MLP_PROGRESS': 'false'}
    r = run_in(bin_, work, 'mlp', 'data', 'generate', '--n', '300', '--out', str(work/'d.parquet'), env=env)
    assert r.returncode == 0, r.stderr                        # the data system needs no extra
    for extra, args in SYSTEM_COMMANDS.items():
        r = run_in(bin_, work, 'mlp', *[a.format(work=work) for a in args], env=env)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.returncode == 2 and len(lines) == 1 and f'pip install "mlportfolio[{extra}]"' in lines[0] \
            and 'Traceback' not in r.stderr, (extra, r.returncode, r.stdout, r.stderr)
    r = run_in(bin_, work, 'mlp', 'llm', 'complete', 'hello', env=env)   # no endpoint set, no local model: the chain says why
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and 'pip install "mlportfolio[llm]"' in r.stderr, r.stderr
    r = run_in(bin_, work, 'python', '-c', 'import mlportfolio.mapper.map', env=env)
    assert 'pip install "mlportfolio[mapper]"' in r.stderr.splitlines()[-1]
