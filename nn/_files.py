"""Atomic file writes: a temporary file in the target's folder, flushed and fsynced,
then renamed over the target (and the folder fsynced), so a crash, a kill or a full
disk leaves any previous file whole and never a half-written one."""
import os
import tempfile


def atomic_write(path, write, suffix=""):
    """Call ``write(binary_file)`` on a temporary file, then rename it to ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; a saved file follows umask
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder):
    # Make the rename itself durable; not every platform can open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode(path):
    try:
        return os.stat(path).st_mode & 0o777   # replacing a file keeps its mode
    except OSError:
        mask = os.umask(0o022)   # read the umask (set it back at once)
        os.umask(mask)
        return 0o666 & ~mask
