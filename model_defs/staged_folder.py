"""`StagedFolder`: write a folder beside its target, then publish it without losing a file.

Everything this project writes to disk (artifacts, presets) goes through here, so that:

- a failure or a signal midway leaves nothing half-written at the target;
- an existing folder is replaced only when the caller's check says it may be, and that
  check runs again at the moment of the swap (another process may have written there);
- the swap itself is one atomic `renameat2(RENAME_EXCHANGE)` on Linux, so after a crash
  at any point the target holds a whole folder, old or new;
- a crash (kill -9) leaves at most a hidden `.tmp-<name>-*` staging folder, which the next
  write to the same target recovers or removes: its owner lock tells whether the process
  that made it is still alive.

Layout of a staging folder, beside the target `<parent>/<name>`:

    .tmp-<name>-XXXX/
        .hubonnx-staging   marker + lock, held (flock) by the writing process while it lives
        content/           the folder being written; renamed into place when complete
        old/               only in the fallback without RENAME_EXCHANGE: the replaced folder

Only folders holding the marker, with the target's name in it, are ever removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile

MARKER = ".hubonnx-staging"


class StagedFolder:
    """A staging folder for `path`; `publish()` moves its content into place.

    Args:
        path: the target folder.
        may_replace: called with the target path when it exists (at the start and again
            under the lock at the swap); raises (FileExistsError) when it must not be
            replaced. None: only an empty existing target is replaced.
        merge: instead of replacing an existing target, move each staged file into it
            (os.replace, file by file), keeping every file that was not written here.
            `may_replace(path, names)` is then asked, before any file moves, about the
            staged files that already exist there (None: none may).

    Example:
    ```python
    with StagedFolder("artifacts/x", may_replace=check) as tmp:
        write_files(tmp)          # published on a clean exit, discarded on an exception
    ```
    """

    def __init__(self, path, may_replace=None, merge=False):
        self.path = os.path.abspath(os.fspath(path))
        self.parent, self.name = os.path.split(self.path)
        self.may_replace = may_replace
        self.merge = merge
        self._lock_fd = None
        self._created = []  # parent folders this write created, removed again on failure

    # -- before writing --------------------------------------------------------------
    def check(self):
        """Refuse now (before any long work) a target that could not be published, after
        recovering what crashed writers left (so a target a crash took away is back)."""
        if os.path.isdir(self.parent):
            with _locked(self.parent):
                recover_leftovers(self.parent, self.name)
        self._check_target()

    def _check_target(self):
        if not self.merge:  # a merge deletes nothing, so "." is a fine target for it
            _refuse_working_directory(self.path)
        if os.path.lexists(self.path):
            if not os.path.isdir(self.path) or os.path.islink(self.path):
                raise FileExistsError(f"{self.path} exists and is not a folder; choose "
                                      "another path")
            if self.merge:
                return  # merging checks each file it would replace, at the merge
            if self.may_replace is not None:
                self.may_replace(self.path)
            elif os.listdir(self.path):
                raise FileExistsError(f"{self.path} exists and is not empty")

    def __enter__(self):
        self._make_parents()
        try:
            self.check()
            self._open_staging()
        except BaseException:
            self._discard(failed=True)
            raise
        return self.content

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.publish()
        except BaseException:
            self._discard(failed=True)
            raise
        self._discard(failed=exc_type is not None)
        return False

    def _open_staging(self):
        self.staging = tempfile.mkdtemp(prefix=f".tmp-{self.name}-", dir=self.parent)
        marker = os.path.join(self.staging, MARKER)
        self._lock_fd = os.open(marker, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # held until this process ends
        os.write(self._lock_fd, f"{self.name}\n{os.getpid()}\n".encode())
        self.content = os.path.join(self.staging, "content")
        os.mkdir(self.content)  # with the user's umask, unlike mkdtemp's 0700

    # -- publishing ------------------------------------------------------------------
    def publish(self):
        with _locked(self.parent):
            exists = os.path.lexists(self.path)
            if exists and self.merge:
                self._merge()
            elif exists:
                self._check_target()  # again, at the swap: it may have changed meanwhile
                self._swap()
            elif _rename_noreplace(self.content, self.path):
                pass
            elif self.merge:
                self._merge()
            else:
                raise FileExistsError(f"{self.path} appeared while this was written; "
                                      "left it as it is, run again to replace it")

    def _swap(self):
        if _exchange(self.content, self.path):
            return  # content/ now holds the old folder, removed with the staging folder
        # No RENAME_EXCHANGE (not Linux, or a file system without it): two renames; a crash
        # between them leaves old/ in the staging folder, restored by the next write.
        os.rename(self.path, os.path.join(self.staging, "old"))
        os.rename(self.content, self.path)

    def _merge(self):
        files = []
        for root, _, names in os.walk(self.content):
            rel_root = os.path.relpath(root, self.content)
            files += [os.path.normpath(os.path.join(rel_root, n)) for n in names]
        if os.path.islink(self.path) or not os.path.isdir(self.path):
            raise FileExistsError(f"{self.path} is no longer a folder; nothing written")
        root = os.path.realpath(self.path)
        for rel in files:  # a linked subfolder (assets -> ~/data) must not lead out
            parent = os.path.realpath(os.path.dirname(os.path.join(self.path, rel)))
            if os.path.commonpath([root, parent]) != root:
                raise FileExistsError(f"{os.path.join(self.path, rel)} would be written "
                                      "outside the preset (a linked folder); not written")
        existing = [rel for rel in files if os.path.lexists(os.path.join(self.path, rel))]
        for rel in existing:
            target = os.path.join(self.path, rel)
            if os.path.isdir(target) or os.path.islink(target):
                raise FileExistsError(f"{target} is a folder or a link; not replaced")
        if existing and self.may_replace is None:
            raise FileExistsError(f"{self.path} already has {existing[0]}; not replaced")
        if existing:
            self.may_replace(self.path, existing)
        for rel in sorted(files):
            target = os.path.join(self.path, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(self.content, rel), target)

    # -- cleaning up -----------------------------------------------------------------
    def _make_parents(self):
        missing = []
        parent = self.parent
        while not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder)
                self._created.append(folder)

    def _discard(self, failed):
        staging = getattr(self, "staging", None)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            self.staging = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if failed:
            for folder in reversed(self._created):
                with contextlib.suppress(OSError):
                    os.rmdir(folder)  # only if still empty
        self._created = []


def recover_leftovers(parent, name):
    """Clean the staging folders of `name` that dead writers left in `parent`.

    A dead writer's lock is free. If the target is missing and the writer was between the
    two renames of the fallback swap, its old/ folder goes back into place first.
    Call with the parent locked."""
    target = os.path.join(parent, name)
    for entry in os.listdir(parent):
        staging = os.path.join(parent, entry)
        if not entry.startswith(f".tmp-{name}-") or not _is_stale_staging(staging, name):
            continue
        old = os.path.join(staging, "old")
        if not os.path.lexists(target) and os.path.isdir(old):
            os.rename(old, target)
        shutil.rmtree(staging, ignore_errors=True)


def _is_stale_staging(staging, name):
    """True for a staging folder of `name` whose writer is gone (its lock is free)."""
    marker = os.path.join(staging, MARKER)
    if os.path.islink(staging) or not os.path.isfile(marker):
        return False  # not ours: never touched
    try:
        fd = os.open(marker, os.O_RDWR)
    except OSError:
        return False
    try:
        with open(marker, encoding="utf-8", errors="replace") as f:
            if f.readline().rstrip("\n") != name:
                return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is alive
        return True
    finally:
        os.close(fd)  # releases the lock taken above


@contextlib.contextmanager
def _locked(folder):
    """An exclusive lock on `folder` (flock on its descriptor) for the short critical
    sections: leftover recovery and the final swap. Writers to different targets in the
    same folder wait on each other only for those moments."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _refuse_working_directory(path):
    cwd = os.path.realpath(os.getcwd())
    real = os.path.realpath(path)
    if cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep):
        raise FileExistsError(f"refusing to write {path}: it holds the working directory")


# renameat2(2) flags; glibc >= 2.28 exports the call.
_RENAME_NOREPLACE, _RENAME_EXCHANGE, _AT_FDCWD = 1, 2, -100


def _renameat2(src, dst, flags):
    """True if done; False if the system has no renameat2 or the file system refuses the
    flag; OSError for any other failure."""
    libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(libc, "renameat2", None)
    if call is None:
        return False
    if call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), dst)


def _exchange(a, b):
    return _renameat2(a, b, _RENAME_EXCHANGE)


def _rename_noreplace(src, dst):
    """Rename, failing (False) when `dst` exists, even as an empty folder."""
    try:
        if _renameat2(src, dst, _RENAME_NOREPLACE):
            return True
    except FileExistsError:
        return False
    if os.path.lexists(dst):  # fallback, checked under the parent lock
        return False
    os.rename(src, dst)
    return True
