"""Run a phase2_scripts command started as a file again as its module, `python -m
phase2_scripts.<name>`, with the repository root on PYTHONPATH: the project's packages then
import from anywhere (also from inside phase2_scripts/, as the original is run) without
editing sys.path."""
import os
import sys


def rerun(file):
    """Replace this process by `python -m phase2_scripts.<name of file> <the same arguments>`."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(file)))
    name = 'phase2_scripts.' + os.path.splitext(os.path.basename(file))[0]
    path = os.pathsep.join(p for p in (root, os.environ.get('PYTHONPATH')) if p)
    os.execve(sys.executable, [sys.executable, '-m', name] + sys.argv[1:],
              dict(os.environ, PYTHONPATH=path))
