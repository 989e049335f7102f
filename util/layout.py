"""The data set layout every command reads: which files are frames and masks, their time
order, frame identity (the stem), and where DAVIS / YouTube-VOS keep them.

Time order is by the numbers in the name ('9.jpg' before '10.jpg'; zero-padded names keep
their usual order), the same for training, inference, the merge, the evaluation and
check_dataset. A frame is identified by its stem: two files of one video with the same stem
('00002.jpg' and '00002.png') are an error, since no command could tell which one is meant.
"""
import os
import re
import stat

from util.errors import UserError

FRAME_EXTS = ('.jpg', '.jpeg', '.png')     # video frames
JPEG_EXTS = ('.jpg', '.jpeg')              # static image data sets (their masks are .png)
MASK_EXT = '.png'


def stem(name):
    """Frame identity: the file name without its extension."""
    return os.path.splitext(name)[0]


def frame_key(name):
    """Sort key of time order: digit runs compare as numbers, then the name breaks ties."""
    parts = re.split(r'(\d+)', stem(name))
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def sort_frames(names):
    return sorted(names, key=frame_key)


def _visible(name):
    """Hidden and temporary files ('.tmp_*' of the atomic writers) are never data."""
    return not name.startswith('.')


def name_problem(name):
    """Why a video or frame name read from a list (ImageSets, meta.json, a split JSON) is not
    a plain name, or None: a name never holds a path separator, is never '.', '..' or
    absolute, so that joined to its root it stays a direct entry of that root."""
    if not isinstance(name, str) or not name.strip():
        return 'is empty'
    if name in ('.', '..'):
        return 'is a relative folder reference'
    if os.path.isabs(name) or '/' in name or os.sep in name or (os.altsep and os.altsep in name):
        return 'holds a path separator'
    if '\0' in name:
        return 'holds a NUL byte'
    return None


def check_name(name, source, what='video'):
    """name, or a UserError naming `source` (the list it was read from) when it is not a plain
    name (name_problem)."""
    problem = name_problem(name)
    if problem:
        raise UserError(f'{source}: {what} name {name!r} {problem}; names in lists are folder '
                        'or file names, never paths (nothing was written)')
    return name


def entry_problem(path):
    """Why a listed folder entry that should be a regular file (a frame, a mask) is not one, or
    None: a folder, a device or pipe, a dangling link or a link loop is never skipped."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return f'cannot be read ({e.strerror or e})'
    if stat.S_ISREG(mode):
        return None
    return 'is a folder' if stat.S_ISDIR(mode) else 'is not a regular file'


NOT_A_FILE = 'a frame or mask must be a regular file'


def image_entries(folder, exts=FRAME_EXTS):
    """(time-sorted names of the regular files in folder ending in one of exts
    (case-insensitive), [(path, problem)] of the entries of such a name that are not)."""
    names, bad = [], []
    for f in os.listdir(folder):
        if _visible(f) and f.lower().endswith(exts):
            problem = entry_problem(os.path.join(folder, f))
            if problem:
                bad.append((os.path.join(folder, f), problem))
            else:
                names.append(f)
    return sort_frames(names), sorted(bad)


def image_files(folder, exts=FRAME_EXTS):
    """Time-sorted names of the files in folder ending in one of exts (case-insensitive);
    UserError naming an entry of such a name that is not a regular file (entry_problem)."""
    names, bad = image_entries(folder, exts)
    if bad:
        raise UserError(f'{bad[0][0]}: {bad[0][1]}; {NOT_A_FILE}')
    return names


def duplicate_stems(names):
    """[(stem, [names])] of the stems more than one of `names` share, in time order."""
    by_stem = {}
    for n in names:
        by_stem.setdefault(stem(n), []).append(n)
    return [(s, ns) for s, ns in by_stem.items() if len(ns) > 1]


def check_unique(folder, names):
    dup = duplicate_stems(names)
    if dup:
        s, ns = dup[0]
        raise UserError(f'{os.path.join(folder, ns[0])}: frame {s} has {len(ns)} files '
                        f'({", ".join(ns)}); keep one per frame')
    return names


def list_frames(folder, what='frame folder'):
    """Frame file names of a video folder in time order; UserError naming the folder when it
    is missing or empty, or a frame has two files."""
    if not os.path.isdir(folder):
        raise UserError(f'{folder}: {what} not found')
    names = image_files(folder)
    if not names:
        raise UserError(f'{folder}: no frames ({"/".join(FRAME_EXTS)}) in this folder')
    return check_unique(folder, names)


def list_masks(folder, what='annotation folder'):
    """Mask (.png) names of a video folder in time order (may be empty); UserError when the
    folder is missing."""
    if not os.path.isdir(folder):
        raise UserError(f'{folder}: {what} not found')
    return check_unique(folder, image_files(folder, (MASK_EXT,)))


def check_link(path):
    """UserError naming path when it is a symbolic link that leads nowhere (dangling, or a
    loop): such a video folder is an error, never silently left out."""
    if os.path.islink(path) and not os.path.exists(path):
        try:
            os.stat(path)
        except OSError as e:
            raise UserError(f'{path}: cannot be read ({e.strerror or e}); a video folder must '
                            'be a folder') from e
    return path


def list_videos(root):
    """Sorted video folder names under root (hidden folders skipped; [] when missing); a
    dangling or looping link among them is an error (check_link)."""
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root)
                  if _visible(d) and os.path.isdir(check_link(os.path.join(root, d))))


# ---------------------------------------------------------------------- DAVIS / YouTube-VOS

def davis_2017_dir(root):
    """The DAVIS 2017 folder (holding trainval/) of a DAVIS root given either way: the folder
    holding 2017/ (../DAVIS) or the 2017 folder itself (../DAVIS/2017, the original's
    --davis_path). Neither: <root>/2017, so that errors name the expected path."""
    root = str(root)
    if not os.path.isdir(os.path.join(root, '2017')) and os.path.isdir(
            os.path.join(root, 'trainval')):
        return root
    return os.path.join(root, '2017')


def davis_dirs(root):
    """(frames, annotations) of a DAVIS part (2017/trainval, 2017/test-dev, 2016): 480p."""
    return (os.path.join(root, 'JPEGImages', '480p'), os.path.join(root, 'Annotations', '480p'))


def davis_trainval(d17):
    """The training part of a DAVIS 2017 folder (davis_2017_dir)."""
    return os.path.join(d17, 'trainval')


def davis_imageset(root, year, name):
    return os.path.join(root, 'ImageSets', str(year), f'{name}.txt')


def davis_part(davis_path, year, sub):
    """The folder of a DAVIS part: <davis_path>/<year>/<sub>, or <davis_path>/<sub> when
    davis_path is the year folder itself (sub '' for 2016). None when neither has frames."""
    cands = [os.path.join(davis_path, str(year), sub), os.path.join(davis_path, sub)]
    return next((os.path.normpath(c) for c in cands if os.path.isdir(davis_dirs(c)[0])), None)


def generic_dirs(root):
    """(frames, annotations) of a folder holding JPEGImages/<video>/ and Annotations/<video>/
    (a YouTube-VOS split, BL30K, the generic layout)."""
    return os.path.join(root, 'JPEGImages'), os.path.join(root, 'Annotations')


def youtube_dirs(yv_path, split):
    """(frames, annotations) of a YouTube-VOS split folder (train_480p, valid, ...)."""
    return generic_dirs(os.path.join(yv_path, split))


def youtube_meta(yv_path, split):
    return os.path.join(yv_path, split, 'meta.json')


def youtube_all_frames(yv_path, split):
    """The every-frame folder of a YouTube-VOS valid/test split (all_frames/<split>_all_frames)."""
    return os.path.join(yv_path, 'all_frames', f'{split}_all_frames', 'JPEGImages')


PHASE2 = 'phase2'              # the sparse labels of two-shot phase 2, beside the frames


def davis_sparse_labels(d17):
    """The sparse label folder of a DAVIS 2017 folder: <2017>/phase2/davis_gt."""
    return os.path.join(d17, PHASE2, 'davis_gt')


def youtube_sparse_labels(yv_path, stored=True):
    """The sparse label folder of a YouTube folder: phase2/yv_gt_480p (labels of train_480p),
    or phase2/yv_gt (of train) when stored is False."""
    return os.path.join(yv_path, PHASE2, 'yv_gt_480p' if stored else 'yv_gt')


def sparse_label_frames(sparse_dir):
    """The frames folder of the videos of a sparse label folder at its usual place
    (<YouTube>/phase2/yv_gt_480p -> <YouTube>/train_480p/JPEGImages,
    <DAVIS>/2017/phase2/davis_gt -> <DAVIS>/2017/trainval/JPEGImages/480p), or None."""
    parent = os.path.dirname(os.path.abspath(str(sparse_dir)))
    if os.path.basename(parent) != PHASE2:
        return None
    root = os.path.dirname(parent)
    for cand in (youtube_dirs(root, 'train_480p')[0], davis_dirs(davis_trainval(root))[0]):
        if os.path.isdir(cand):
            return cand
    return None


BANK_LABELS = 'Annotations'    # a pseudo-label bank keeps <bank>/Annotations/<video>/<frame>.png


def bank_output(bank):
    """Where a pseudo-label bank's videos are written: <bank>/Annotations (the original's
    layout: the merge, eval_youtube_bank.py and the passes all write there)."""
    return os.path.join(str(bank), BANK_LABELS)


def bank_labels(bank):
    """The folder of a bank's <video>/<frame>.png when reading it: <bank>/Annotations if that
    folder exists, else <bank> itself (any tree of <video>/<frame>.png, such as a data set's
    Annotations folder)."""
    sub = bank_output(bank)
    return sub if os.path.isdir(sub) else str(bank)
