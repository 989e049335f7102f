"""Checked reads of folders, lists and JSON files, and crash-safe writes.

Every reader raises `UserError` naming the file on a missing or ill-formed input.
Every writer writes to a temporary file in the destination folder, fsyncs and renames it
into place, so readers in other processes never see a truncated file.
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from util.errors import UserError
from util.layout import check_name


class CurrentStderr:
    """A stream writing to whatever sys.stderr is at write time, for progress bars:
    progressbar swaps a given sys.stderr for the stream it saw at its own import (which
    pytest's capture, for one, has closed by the time a later test draws a bar)."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()

    def isatty(self):
        return sys.stderr.isatty()


FILE_MODE = 0o644              # mkstemp creates 0600; outputs are meant to be shared


def require_dir(path, what):
    """path, or a UserError naming it and what it should have been."""
    if not os.path.isdir(path):
        raise UserError(f'{path}: {what} not found')
    return path


def read_list(path, what='video list', folder=None):
    """Non-empty stripped lines of a text file (an image-set / video list): none twice and,
    with `folder`, each a video folder in it (UserError naming the list otherwise). Training,
    inference and evaluation read their lists with it."""
    if not os.path.isfile(path):
        raise UserError(f'{path}: {what} not found')
    try:
        with open(path) as f:
            names = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f'{path}: cannot read {what} ({e})') from e
    if not names:
        raise UserError(f'{path}: empty {what}')
    seen = set()
    for n in names:
        if n in seen:
            raise UserError(f'{path}: video {n!r} is listed twice')
        seen.add(n)
        check_name(n, path)
        if folder is not None and not os.path.isdir(os.path.join(folder, n)):
            raise UserError(f'{path}: video {n!r} has no frame folder {os.path.join(folder, n)}')
    return names


def _no_duplicate_keys(path):
    def hook(pairs):
        keys = [k for k, _ in pairs]
        dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if dup is not None:
            raise UserError(f'{path}: key {dup!r} appears twice (JSON keeps only the last)')
        return dict(pairs)
    return hook


def read_json(path, what='JSON file'):
    """A JSON file whose objects hold no key twice; UserError naming the file otherwise."""
    if not os.path.isfile(path):
        raise UserError(f'{path}: {what} not found')
    try:
        with open(path) as f:
            return json.load(f, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise UserError(f'{path}: not valid JSON ({e})') from e
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f'{path}: cannot read {what} ({e})') from e


def fsync_path(path):
    """fsync a file or a folder (a folder: so that renames inside it survive a crash);
    a no-op where the platform does not support it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write_fn, suffix=''):
    """Call write_fn(tmp_path) for a temporary file beside `path`, fsync it, rename into place.

    The temporary file ('.tmp_*', skipped by every folder listing here) gets mode 0644 before
    the rename, and the folder is fsynced after it: readers in other processes see either the
    old file or the complete new one, never a truncated file, also after a crash. On any
    error (or KeyboardInterrupt) the temporary file is removed and `path` is left as it was.
    An OSError (unwritable folder, disk full) becomes a UserError naming the path.
    """
    path = str(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.tmp_', suffix=suffix or os.path.splitext(path)[1],
                                   dir=folder)
        os.close(fd)
    except OSError as e:
        raise UserError(f'{folder}: cannot write here ({e.strerror or e})') from e
    try:
        write_fn(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileNotFoundError):
            raise UserError(f'{path}: cannot write ({e.strerror or e})') from e
        raise
    fsync_path(folder)


def _remove(path):
    """Remove a folder tree, or only the link when path is a symbolic link."""
    if os.path.islink(path):
        os.unlink(path)
    elif os.path.exists(path):
        shutil.rmtree(path)


def publish_folder(final, fill):
    """Write a whole folder atomically: fill(tmp) writes the files into `.tmp_<name>` beside
    `final`; files and folder are fsynced, then it is renamed to `final` (replacing an older
    one), so that neither a kill nor a crash leaves a half-written `final`."""
    final = Path(final)
    out = final.parent
    tmp, old = out / f'.tmp_{final.name}', out / f'.old_{final.name}'
    for stale in (tmp, old):
        _remove(stale)
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
        for f in tmp.iterdir():
            fsync_path(f)
        fsync_path(tmp)
        if os.path.lexists(final):  # replace: old (a folder or a link to one) out of the way
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):  # disk full, read-only or vanished folder
            raise UserError(f'{final}: cannot write ({e.strerror or e}); nothing of it was '
                            'written') from e
        raise
    fsync_path(out)


def ensure_writable_dir(folder, what='output folder', keep=False):
    """Check that files can be written in `folder` (UserError naming it if not).

    Scripts call this before any work so that an unwritable output (a path under a regular
    file, a read-only mount, /proc, no permission) fails at once, not after hours of compute.
    It creates the missing folders and a probe file, then removes what it created (unless
    keep=True): a run that fails later leaves no empty output folder behind. Processes that
    probe the same folder at once (the ranks of a training run) must pass keep=True.
    """
    folder = str(folder)
    missing = []
    cur = os.path.abspath(folder)
    while not os.path.lexists(cur) and os.path.dirname(cur) != cur:
        missing.append(cur)
        cur = os.path.dirname(cur)
    created = []
    try:
        for d in reversed(missing):
            try:
                os.mkdir(d)
                created.append(d)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
        fd, probe = tempfile.mkstemp(prefix='.tmp_probe_', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UserError(f'{folder}: {what} is not writable ({e.strerror or e})') from e
    finally:
        for d in ([] if keep else reversed(created)):
            try:
                os.rmdir(d)
            except OSError:
                pass
    return folder


class _WriteErrors:
    """A binary file that remembers the OSError of a failed write (torch.save turns it into
    a RuntimeError about stream positions)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data):
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self):
        self.f.flush()


def save_checkpoint(obj, path):
    """torch.save, atomically; a full disk is the OSError (ENOSPC) atomic_write reports
    naming the path."""
    import torch

    def write(tmp):
        with open(tmp, 'wb') as f:
            out = _WriteErrors(f)
            try:
                torch.save(obj, out)
            except RuntimeError:
                if out.error is not None:
                    raise out.error from None
                raise
    atomic_write(path, write)


