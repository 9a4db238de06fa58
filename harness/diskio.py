"""Writing caches safely, and operating-system failures as one readable line.

A cache folder (a prepared corpus's manifests, a pool of features) is built by one process at a
time and published whole:

    with locked(folder, "--cache"):              # exclusive lock on the sibling `.<name>.lock`
        with staging(folder, "--cache") as tmp:  # a fresh sibling `.<name>.tmp-*`, removed on exit
            ... write everything into tmp ...
            publish(tmp, folder)                 # renames: an old folder goes, tmp becomes folder

A reader never sees a partial folder: it finds a complete one, or none (then it takes the lock,
waits for the builder and reads what it published). A failed or interrupted build leaves no
temporary folder behind; a killed one leaves it (or the renamed-away remains of a removal) until
the next build of that folder removes it under the lock. The lock files stay: removing a lock
file another process may be waiting on would let two builders in at once.

`os_failure` turns an OSError into a HarnessError naming the path, the cause (disk full, with
the free space; read-only, permission denied, a file where a folder is expected) and what to do;
`check_space` refuses a write that cannot fit before it starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import errno
import fcntl
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional

from harness.errors import HarnessError

FULL = (errno.ENOSPC, errno.EDQUOT)
DENIED = (errno.EACCES, errno.EPERM)


def _file_in_the_way(path: Path) -> Optional[Path]:
    """The first existing non-folder among `path` and its parents (None: there is none)."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


#: numpy's message for a short write (no errno): what a full disk looks like through np.save
SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")


def free_mb(path) -> float:
    """Free space (MiB) on the file system holding `path` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free / 2**20
    except OSError:
        return float("nan")


def check_space(folder, need_bytes: int, option: Optional[str] = None, what: str = "it") -> None:
    """A HarnessError "disk full at FOLDER: free N MB, need M MB" when `need_bytes` do not fit
    on `folder`'s file system: said before writing, not after a short write."""
    free = free_mb(folder)
    if need_bytes / 2**20 > free:
        alt = f", choose another {option}" if option else ""
        raise HarnessError(f"disk full at {folder}: free {free:.0f} MB, need {need_bytes / 2**20:.0f} MB for "
                           f"{what}; free some space{alt}")


def os_failure(e: OSError, path=None, option: Optional[str] = None) -> HarnessError:
    """A one-line HarnessError for an operating-system failure: the file the error names (else
    `path`), the cause and what to do. `option` is the command-line option that chose `path`;
    it is suggested only when the failing file is `path`, inside it, beside it (a cache's
    temporary sibling) or one of its parents, not for, say, an unreadable source file met while
    building a cache."""
    named = Path(e.filename) if e.filename else None
    where = named or (Path(path) if path is not None else None)
    write, use = (f"cannot write to {where}: ", f"cannot use {where}: ") if where else ("", "")
    ours = bool(option) and (named is None or path is None or _within(named, Path(path).parent)
                             or _within(Path(path), named))
    alt = f" or choose another {option}" if ours else ""
    in_the_way = _file_in_the_way(named) if named and e.errno in (errno.ENOTDIR, errno.EEXIST) else None
    short = SHORT_WRITE.search(str(e)) if e.errno is None else None
    if e.errno in FULL or short:
        need = f", need {(int(short[1]) - int(short[2])) / 2**20:.1f} MB more for one write" if short else ""
        free = free_mb(where) if where else float("nan")
        msg = f"disk full at {where}: free {free:.0f} MB{need}; free some space{alt}"
    elif e.errno == errno.EROFS:
        msg = f"{write}read-only file system" + (f"; choose another {option}" if ours else "")
    elif e.errno in DENIED:
        msg = f"{use}permission denied; fix its permissions{alt}"
    elif in_the_way is not None:
        msg = f"{in_the_way} is a file, not a folder; move it away{alt}"
    elif e.errno == errno.EISDIR:
        msg = f"{where} is a folder, not a file"
    else:
        msg = f"{use}{e.strerror or e}"
    return HarnessError(msg)


def _within(p: Path, folder: Path) -> bool:
    return p.absolute().is_relative_to(folder.absolute())


@contextlib.contextmanager
def os_errors(path, option: Optional[str] = None) -> Iterator[None]:
    """Turn OSErrors raised inside into `os_failure(e, path, option)`."""
    try:
        yield
    except OSError as e:
        raise os_failure(e, path, option) from None


def _sibling(folder: Path, tag: str) -> Path:
    return folder.parent / f".{folder.name}.{tag}"


@contextlib.contextmanager
def locked(folder: Path, option: Optional[str] = None) -> Iterator[None]:
    """Hold the exclusive lock of `folder` (the sibling file `.<name>.lock`; waits for it)."""
    folder = Path(folder)
    with os_errors(folder.parent, option):
        folder.parent.mkdir(parents=True, exist_ok=True)
        f = open(_sibling(folder, "lock"), "a")
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def current_umask() -> int:
    """This process's umask (read from /proc where there is one: setting it to read it is racy)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(folder: bool = False) -> int:
    """The mode a plain open()/mkdir() would give under the umask: temporary files and folders
    (mkstemp 0600, mkdtemp 0700) get it before they are published, so a cache or runs store made
    by one user of a group (umask 002) is readable and writable by the others."""
    return (0o777 if folder else 0o666) & ~current_umask()


@contextlib.contextmanager
def staging(folder: Path, option: Optional[str] = None) -> Iterator[Path]:
    """A fresh, empty sibling folder to build `folder` in, removed on exit unless published.
    Call it holding `locked(folder)`: leftovers of killed builds and removals of `folder` are
    removed first."""
    folder = Path(folder)
    for pattern in (f".{folder.name}.tmp-*", f".{folder.name}.old-*"):
        for old in folder.parent.glob(pattern):
            shutil.rmtree(old, ignore_errors=True)
    with os_errors(folder.parent, option):
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
        os.chmod(tmp, umask_mode(folder=True))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, folder: Path) -> None:
    """Put the finished folder `tmp` at `folder` by renames (a previous `folder` is removed)."""
    remove(folder)
    os.rename(tmp, folder)


def build_and_publish(folder: Path, build: Callable[[Path], None], option: Optional[str] = None) -> None:
    """`build(tmp)` into a staging sibling of `folder`, then publish it as `folder`; OS failures
    are one line naming `option`. Call it holding `locked(folder)`."""
    with staging(folder, option) as tmp:
        with os_errors(folder, option):
            build(tmp)
            publish(tmp, folder)


def remove(folder: Path) -> None:
    """Remove a damaged cache folder (renamed away first, so no reader meets it half-deleted)."""
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        trash = _sibling(folder, f"old-{uuid.uuid4().hex[:8]}")
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)


def index_digest(idx: dict) -> str:
    """blake2b (128-bit) of a JSON object's canonical form, its own "digest" key left out (a
    feature pool's index.json, a manifest cache's corpus.json): an edit that keeps the file valid
    JSON (an item's frame offset moved) changes it."""
    body = {k: v for k, v in idx.items() if k != "digest"}
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=16).hexdigest()


def file_digest(path) -> str:
    """blake2b (128-bit) of a file's bytes, read in 16 MiB chunks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(16 * 2**20), b""):
            h.update(chunk)
    return h.hexdigest()
