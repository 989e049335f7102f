"""One error type for bad user input, and the wrapper every command-line entry point uses.

A `UserError` carries one line that names the offending file and what is wrong with it.
`run_main` prints that line (no traceback unless `--debug` is on the command line) and exits 2.

Exit statuses of every script run through `run_main`:
  0    done (or whatever integer `main` returns, e.g. train.py's 130/143 after a clean stop)
  2    bad input (a UserError), or bad flags (argparse)
  130  interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: no traceback; files are written
       atomically, so whatever was written is complete (eval scripts: rerun with --resume)
"""
import re
import signal
import sys
import threading


class UserError(Exception):
    """Bad input that the user can fix: the message names the file and the problem."""


class Interrupted(BaseException):
    """SIGTERM turned into an exception (like KeyboardInterrupt for SIGINT), so that
    `finally` blocks run and atomic writers remove their temporary files."""

    def __init__(self, signum):
        super().__init__(f'signal {signum}')
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def quiet_worker():
    """Initializer of pool worker processes: the parent reports errors and interrupts, so a
    worker ends silently on the SIGTERM with which the pool stops it and ignores Ctrl-C
    (forked workers would otherwise inherit run_main's handler and print a traceback)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def one_line(exc):
    """The one-line message of a UserError, also when a DataLoader worker re-raised it.

    torch re-raises a worker's exception as the same type with the message
    'Caught UserError in DataLoader worker process 0.\\nOriginal Traceback ...\\n
    util.errors.UserError: <message>': keep only <message>.
    """
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and 'Original Traceback' in text:
        return re.sub(r'^[A-Za-z_][\w.]*: ', '', lines[-1].strip(), count=1)
    return ' '.join(ln.strip() for ln in lines)


def run_main(main, argv=None):
    """Call `main(argv)`; a UserError becomes one line on stderr and exit status 2.

    SIGINT / SIGTERM end the script with status 130 / 143 and one line (no traceback).
    An integer returned by `main` becomes the exit status.
    """
    argv = sys.argv[1:] if argv is None else argv
    debug = '--debug' in argv
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        ret = main(argv)
    except UserError as e:
        if debug:
            raise
        print(f'error: {one_line(e)}', file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, Interrupted) as e:
        if debug:
            raise
        signum = getattr(e, 'signum', signal.SIGINT)
        print(f'interrupted by {signal.Signals(signum).name}: stopped (files already written '
              'are complete)', file=sys.stderr)
        sys.exit(128 + int(signum))
    finally:
        # main may have installed its own ending for SIGTERM (train.py after a saved stop):
        # it stays in place until the process has ended
        if previous is not None and signal.getsignal(signal.SIGTERM) is _raise_interrupted:
            signal.signal(signal.SIGTERM, previous)
    if isinstance(ret, int) and not isinstance(ret, bool):
        sys.exit(ret)
    return ret
