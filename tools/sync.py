#!/usr/bin/env python
"""Keep generated files in step with the notebooks.

Without flags: copy nbs/jobs/*.ipynb and nbs/resources/** into the package and write README.md from
nbs/index.ipynb. With --check: additionally run nbdev-clean and nbdev-export, and fail (exit 1) if any
of that changed a file, naming the files; the tree is left fixed, so commit the changes.
"""
import filecmp, hashlib, json, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS, PKG = ROOT/'nbs', ROOT/'mlportfolio'

def copy_tree(src: Path, dest: Path, pattern: str) -> None:
    "Mirror the files matching `pattern` from src into dest (removing stale copies)."
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {p.relative_to(src) for p in src.glob(pattern) if p.is_file() and not p.name.startswith('.')}
    for rel in wanted:
        (dest/rel).parent.mkdir(parents=True, exist_ok=True)
        if not (dest/rel).exists() or not filecmp.cmp(src/rel, dest/rel, shallow=False): shutil.copy2(src/rel, dest/rel)
    for p in dest.glob(pattern):
        if p.is_file() and p.relative_to(dest) not in wanted and p.name != '__init__.py': p.unlink()

def readme() -> str:
    "README.md text from nbs/index.ipynb: markdown cells as they are, code cells fenced, in order."
    nb = json.loads((NBS/'index.ipynb').read_text())
    parts = ['<!-- Generated from nbs/index.ipynb by `make export`; edit the notebook, not this file. -->']
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#|'): continue
        parts.append(src if c['cell_type'] == 'markdown' else f'```python\n{src}\n```')
    return '\n\n'.join(parts) + '\n'

def sync() -> None:
    copy_tree(NBS/'jobs', PKG/'jobs', '*.ipynb')
    copy_tree(NBS/'resources', PKG/'resources', '**/*')
    (ROOT/'README.md').write_text(readme())

def snapshot() -> dict:
    files = [*NBS.rglob('*.ipynb'), *PKG.rglob('*'), ROOT/'README.md']
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts}

def main() -> int:
    if '--check' not in sys.argv:
        sync(); return 0
    before = snapshot()
    bindir = Path(sys.executable).parent
    for cmd in ('nbdev-clean', 'nbdev-export'):
        subprocess.run([str(bindir/cmd)], cwd=ROOT, check=True)
    sync()
    after = snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        print('Out of sync with the notebooks (now fixed in the tree; commit them):', *changed, sep='\n  ')
        return 1
    print('notebooks clean; modules, package data and README in sync')
    return 0

if __name__ == '__main__':
    sys.exit(main())
