"""Safety of output folders: apart from every input, one writer at a time, no stale
temporary files.

`check_apart` is called by every command before it reads or writes anything, with the
folders (or files) it writes and those it reads: an output that is, contains or lies inside
an input would replace or mix with what the run reads (an --output pointed at the ground
truth would overwrite it and score a perfect J&F).
"""
import fcntl
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


def _first_existing(path):
    cur = os.path.abspath(str(path))
    while not os.path.lexists(cur) and os.path.dirname(cur) != cur:
        cur = os.path.dirname(cur)
    return cur


def check_file_output(path, what, inputs=()):
    """A file output (a contact sheet, a video, a split JSON, a zip, a plot): UserError before
    any work when it is a folder, lies under a file, is an input file or lies inside an input
    folder (`inputs` as for check_apart)."""
    if path is None:
        return
    if os.path.isdir(path):
        raise UserError(f'{path}: {what} is a folder; give a file name (nothing was written)')
    parent = _first_existing(os.path.dirname(os.path.abspath(str(path))))
    if not os.path.isdir(parent):
        raise UserError(f'{path}: {what} lies under {parent}, which is a file, not a folder '
                        '(nothing was written)')
    check_apart([(what, path)], inputs)


def check_folder_output(path, what):
    """A folder output: UserError before any work when it (or what it lies under) is a file."""
    existing = _first_existing(path)
    if not os.path.isdir(existing):
        if existing == os.path.abspath(str(path)):
            raise UserError(f'{path}: {what} is a file; give a folder (nothing was written)')
        raise UserError(f'{path}: {what} is not writable (Not a directory); {existing} is a '
                        'file (nothing was written)')


def refuse_links(folder, names, what):
    """UserError naming <folder>/<name> when that entry is a symbolic link: an output is never
    written through a link, which may lead into an input (the ground truth)."""
    for n in names:
        p = os.path.join(str(folder), n)
        if os.path.islink(p):
            raise UserError(f'{p}: this entry of the {what} is a symbolic link (to '
                            f'{os.readlink(p)}); outputs are never written through a link: '
                            'remove it or choose another output (nothing was written)')


def file_digest(path):
    """sha256 hex digest of a file's bytes."""
    import hashlib
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


SETTINGS_NAME = '.settings.json'


def check_settings(folder, settings):
    """--resume into `folder`: UserError naming the first of `settings` ({flag: value}) that
    differs from those recorded there by the run that wrote it (record_settings); an output
    without a record (older runs) is resumed as before."""
    from util.files import read_json
    path = os.path.join(str(folder), SETTINGS_NAME)
    if not os.path.isfile(path):
        return
    recorded = read_json(path, 'settings record')
    if not isinstance(recorded, dict):
        raise UserError(f'{path}: not a settings record (a JSON object); remove it to resume')
    for k, v in settings.items():
        if k in recorded and recorded[k] != v:
            raise UserError(f'{folder}: --resume with {k} {v}, but its outputs were made with '
                            f'{k} {recorded[k]} (recorded in {path}); resume with the same '
                            'settings or choose another output (nothing was written)')


def forget_settings(folder):
    """Remove the settings record of a run that wrote no output (it failed first), so that
    the folder made for it goes (OutputLock) and nothing of the run is left."""
    path = os.path.join(str(folder), SETTINGS_NAME)
    if os.path.isfile(path) and all(n.startswith('.') for n in os.listdir(str(folder))):
        os.unlink(path)


def record_settings(folder, settings):
    """Write `settings` to <folder>/.settings.json (atomically) for a later --resume."""
    import json
    from util.files import atomic_write
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(settings, f, indent=1, sort_keys=True)
    atomic_write(os.path.join(str(folder), SETTINGS_NAME), write)


LOCK_NAME = '.lock'


class OutputLock:
    """Exclusive right to write an output folder, held from enter to exit.

    A lock file <folder>/.lock, flock()ed (the kernel drops the lock when the process ends,
    so a killed run leaves no stale lock) and removed on exit, with the folders made for it
    when they stayed empty. A second run writing the same
    folder is refused naming it. Shards of one run (`shard=(i, n)`) share the folder: each
    holds .lock shared and .lock_<i>_of_<n> exclusive, so the same shard twice, or an
    unsharded run beside shards, is refused.
    """

    def __init__(self, folder, what='output folder', shard=None):
        self.folder, self.what, self.shard = str(folder), what, shard
        self.held = []                     # [(path, fd, exclusive)]
        self.created = []                  # folders made here, removed on exit when empty

    def __enter__(self):
        cur = os.path.abspath(self.folder)
        while not os.path.lexists(cur) and os.path.dirname(cur) != cur:
            self.created.append(cur)
            cur = os.path.dirname(cur)
        os.makedirs(self.folder, exist_ok=True)
        names = [(LOCK_NAME, self.shard is None)]
        if self.shard is not None:
            names.append((f'{LOCK_NAME}_{self.shard[0]}_of_{self.shard[1]}', True))
        try:
            for name, exclusive in names:
                self.held.append(self._take(os.path.join(self.folder, name), exclusive))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _take(self, path, exclusive):
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UserError(f'{self.folder}: {self.what} is not writable '
                                f'({e.strerror or e})') from e
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(f'{self.folder}: another run is writing this {self.what} '
                                f'(it holds {path}); wait for it to end or choose another '
                                'output') from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:                       # else removed by the run that just ended: retry
                if exclusive:
                    os.ftruncate(fd, 0)
                    os.write(fd, f'{os.getpid()}\n'.encode())
                return path, fd, exclusive
            os.close(fd)

    def __exit__(self, *exc):
        for path, fd, exclusive in reversed(self.held):
            try:
                if not exclusive:          # the last sharer removes it
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(path)
            except OSError:
                pass
            finally:
                os.close(fd)
        self.held = []
        for d in self.created:             # a run that wrote nothing leaves no empty folder
            try:
                os.rmdir(d)
            except OSError:
                break
        self.created = []


STALE_PREFIXES = ('.tmp_', '.old_')          # util.files's atomic writers


def remove_temporaries(folder, depth=0):
    """Remove the temporary files and folders ('.tmp_*', '.old_*') that a killed run left in
    folder and its subfolders down to `depth` levels; the caller holds the folder's
    OutputLock (exclusive), so no live writer owns them. Returns the removed paths."""
    import shutil
    removed = []
    if not os.path.isdir(folder):
        return removed
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(STALE_PREFIXES):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(entry.path)
        elif depth > 0 and entry.is_dir(follow_symlinks=False) and not entry.name.startswith('.'):
            removed += remove_temporaries(entry.path, depth - 1)
    return removed


def note_removed(removed, folder):
    if removed:
        print(f'note: removed {len(removed)} temporary file(s) left by an interrupted run in '
              f'{folder} (e.g. {os.path.basename(removed[0])})')
