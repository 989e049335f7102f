"""Safety of output folders: apart from every input, one writer at a time, no stale
temporary files.

`check_apart` is called by every command before it reads or writes anything, with the
folders (or files) it writes and those it reads: an output that is, contains or lies inside
an input would replace or mix with what the run reads (an --output pointed at the ground
truth would overwrite it and score a perfect J&F).
"""
import os

from util.errors import UserError


def _real(path):
    return os.path.realpath(os.path.abspath(str(path)))


def _inside(child, parent):
    """True when child (a real path) lies inside or is parent."""
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


OVERWRITE = ('the run would overwrite what it reads; choose an output folder apart from the '
             'inputs (nothing was written)')


def check_apart(outputs, inputs, reason=OVERWRITE):
    """UserError naming the output when one of `outputs` is, contains or lies inside one of
    `inputs`. Both are [(what, path)]; paths that are None are skipped, symlinks resolved."""
    for out_what, out in outputs:
        if out is None:
            continue
        o = _real(out)
        for in_what, inp in inputs:
            if inp is None:
                continue
            i = _real(inp)
            if o == i:
                how = 'is'
            elif _inside(i, o):
                how = 'contains'
            elif _inside(o, i):
                how = 'lies inside'
            else:
                continue
            raise UserError(f'{out}: {out_what} {how} the {in_what} {inp}: {reason}')
