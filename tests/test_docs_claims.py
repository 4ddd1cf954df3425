"""The docs describe only what exists: every `mlp GROUP` the README or the index names is a real command."""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def cli_names() -> set[str]:
    "Top-level commands and groups of the `mlp` app, as `mlp --help` lists them."
    import typer.main
    from mlportfolio.cli import app
    return set(typer.main.get_command(app).commands)

def named_commands(text: str) -> set[str]:
    "Every word that follows `mlp ` in the text (options and placeholders excluded)."
    return {m for m in re.findall(r'(?<![\w-])mlp ([a-z][a-z-]*)', text)}

def test_readme_and_index_name_only_existing_commands():
    names = cli_names()
    index = ''.join(''.join(c['source']) for c in json.loads((ROOT/'nbs/index.ipynb').read_text())['cells'])
    for where, text in (('README.md', (ROOT/'README.md').read_text()), ('nbs/index.ipynb', index)):
        unknown = named_commands(text) - names
        assert not unknown, f"{where} names `mlp {', '.join(sorted(unknown))}`, which `mlp --help` does not list"

def test_every_registered_group_has_its_module():
    from mlportfolio.cli import SYSTEM_GROUPS
    import importlib.util
    names = cli_names()
    for group, module in SYSTEM_GROUPS.items():
        assert importlib.util.find_spec(module) is not None and group in names, f'`mlp {group}` is registered but {module} does not exist'
