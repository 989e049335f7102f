"""The import rules of docs/design.md, read from the source with ast.

A command is a file with an `if __name__ == '__main__':` block; every other file is a library
module. The layers only import downward (util < dataset < model < inference < phase2 <
scripts), commands inside a layer's folder included (`python -m scripts.data.synthetic` imports only
util); no file imports a command, nothing uses sys.path, and no test module imports another
test module (shared helpers live in tests/helpers.py).
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = {'util': 0, 'dataset': 1, 'model': 2, 'inference_core': 3, 'video_runner': 3,
          'eval_driver': 3, 'phase2': 4, 'scripts': 5}
# (importer, command it imports): why it is allowed; no command imports another command
ALLOWED = {
    ('scripts.bench.bank', 'eval_youtube_phase2'): 'the benchmark times the command itself',
    ('scripts.bench.bank', 'eval_youtube_bank'): 'the benchmark times the command itself',
}


def module_name(path):
    """'util/files.py' -> 'util.files', 'phase2/__init__.py' -> 'phase2'."""
    parts = path[:-3].split('/')
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def project_sources(root=ROOT):
    """{relative path: source} of the project's Python files, tests excluded."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith(('.', '__')) and x != 'tests'
                         and not (d == root and x in ('demo_out', 'saves')))
        for f in files:
            if f.endswith('.py'):
                p = os.path.join(d, f)
                with open(p) as fh:
                    out[os.path.relpath(p, root).replace(os.sep, '/')] = fh.read()
    return out


def is_command(tree):
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.left, ast.Name) and node.test.left.id == '__name__':
            return True
    return False


def imported(tree, modules):
    """Project modules imported anywhere in `tree` (function-level imports included)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f'{node.module}.{a.name}' for a in node.names] + [node.module]
        else:
            continue
        for n in names:
            while n and n not in modules:
                n = n.rpartition('.')[0]
            if n:
                found.add(n)
    return found


def edits_sys_path(tree):
    return any(isinstance(node, ast.Attribute) and node.attr == 'path'
               and isinstance(node.value, ast.Name) and node.value.id == 'sys'
               for node in ast.walk(tree))


def violations(sources):
    """Every broken rule in {path: source}, as lines of text."""
    trees = {module_name(p): ast.parse(s, p) for p, s in sources.items()}
    commands = {m for m, t in trees.items() if is_command(t)}
    out, used = [], set()
    for m, tree in sorted(trees.items()):
        if edits_sys_path(tree):
            out.append(f'{m}: uses sys.path')
        for dep in sorted(imported(tree, trees) - {m}):
            if dep in commands:
                if (m, dep) in ALLOWED:
                    used.add((m, dep))
                else:
                    out.append(f'{m}: imports the command {dep}')
                continue
            mine, theirs = LAYERS.get(m.split('.')[0]), LAYERS.get(dep.split('.')[0])
            if mine is None and m in commands:
                continue                      # a top-level command: any library module
            if mine is None or theirs is None or theirs > mine:
                out.append(f'{m} imports {dep}, a layer above it')
    return out, used


def test_project_imports_follow_the_layers():
    out, used = violations(project_sources())
    assert out == []
    assert used == set(ALLOWED), 'an ALLOWED exception is no longer needed'


@pytest.mark.parametrize('path, source, expect', [
    ('util/x.py', 'from model.network import STCN\n', 'util.x imports model.network'),
    ('dataset/x.py', 'def f():\n    import phase2.bank\n', 'dataset.x imports phase2'),
    ('a.py', 'import b\n', 'a: imports the command b'),
    ('util/y.py', 'import sys\nsys.path.insert(0, ".")\n', 'util.y: uses sys.path'),
    ('util/z.py', "import model.network\nif __name__ == '__main__':\n    pass\n",
     'util.z imports model.network'),
])
def test_a_broken_rule_is_reported(path, source, expect):
    sources = {path: source, 'b.py': "if __name__ == '__main__':\n    pass\n",
               'model/network.py': 'STCN = 1\n', 'phase2/bank.py': ''}
    out, _ = violations(sources)
    assert any(line.startswith(expect) for line in out), out


def test_an_eval_script_importing_another_is_reported():
    main = "if __name__ == '__main__':\n    pass\n"
    out, _ = violations({'eval_davis.py': main, 'eval_davis_2016.py': 'import eval_davis\n' + main,
                         'eval_youtube.py': main,
                         'eval_youtube_phase2.py': 'from eval_youtube import main\n' + main})
    assert out == ['eval_davis_2016: imports the command eval_davis',
                   'eval_youtube_phase2: imports the command eval_youtube']


def test_no_test_module_imports_another():
    here = os.path.dirname(os.path.abspath(__file__))
    tests = {f[:-3] for f in os.listdir(here) if f.startswith('test_') and f.endswith('.py')}
    for f in sorted(tests):
        with open(os.path.join(here, f + '.py')) as fh:
            tree = ast.parse(fh.read())
        assert not imported(tree, tests) - {f}, f
