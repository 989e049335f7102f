"""One error type for bad user input, and the wrapper every command-line entry point uses.

A `UserError` carries one line that names the offending file and what is wrong with it.
`run_main` prints that line (no traceback unless `--debug` is on the command line) and exits 2.
"""
import sys


class UserError(Exception):
    """Bad input that the user can fix: the message names the file and the problem."""


def run_main(main, argv=None):
    """Call `main(argv)`; turn a UserError into one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except UserError as e:
        if '--debug' in argv:
            raise
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
