"""Where Numba's on-disk cache of the kernels lives: a per-user folder, not the package.

By default Numba caches a ``cache=True`` function in the ``__pycache__`` next to its
source, that is inside site-packages. pip's uninstall then leaves those files behind,
and the leftover ``kernels`` folder becomes a namespace package that hides a later
editable install; and a system-wide install its users can write shares one cache among
them. Numba picks a function's cache folder once, when ``@njit(cache=True)`` decorates
it, from ``numba.config.CACHE_DIR`` when that is set: ``kernels/__init__`` sets it
around the import of its submodules only (``caching_in``), so the user's own Numba
functions cache where they did before.

The folder (``folder()``):

- ``$NUMBA_NN_CACHE_DIR`` if set, else the per-user cache folder:
  ``$XDG_CACHE_HOME/numba-nn`` or ``~/.cache/numba-nn`` (``~/Library/Caches/numba-nn``
  on macOS, ``%LOCALAPPDATA%\\numba-nn`` on Windows); in both, a subfolder per Python
  and Numba version (``py3.11-numba0.68.1``), whose caches no other version can use.
- ``$NUMBA_CACHE_DIR`` (Numba's own setting for every cached function) is respected
  when ``NUMBA_NN_CACHE_DIR`` is not set: the kernels cache there, as Numba lays out.
- A folder that cannot be created or written (a read-only home) gives way, with a
  warning, to a private temporary folder removed at exit: the kernels still work, but
  each process compiles them again. With no temporary folder either, Numba's own
  choice applies (``folder()`` returns ``""``).
"""
import atexit
import contextlib
import os
import shutil
import sys
import tempfile
import warnings

import numba
from numba.core import config


def _user_cache_root():
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME", "")
        if not os.path.isabs(base):   # the XDG spec ignores a relative path
            base = os.path.expanduser("~/.cache")
    return os.path.join(base, "numba-nn")


def folder():
    """The folder Numba caches the kernels in (created)."""
    root = os.environ.get("NUMBA_NN_CACHE_DIR", "")
    if not root and config.CACHE_DIR:
        return config.CACHE_DIR
    root = root or _user_cache_root()
    version = f"py{sys.version_info[0]}.{sys.version_info[1]}-numba{numba.__version__}"
    path = os.path.join(os.path.abspath(os.path.expanduser(root)), version)
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()   # the test Numba's locators make
        return path
    except OSError as exc:
        reason = exc
    try:
        temp = tempfile.mkdtemp(prefix="numba-nn-cache-")
    except OSError:
        # Nowhere to write: Numba's own choice (next to the sources, or its user folder).
        warnings.warn(f"kernels: cannot write the Numba cache folder {path} ({reason}) nor "
                      f"a temporary one; set NUMBA_NN_CACHE_DIR to a writable folder.",
                      RuntimeWarning, stacklevel=2)
        return config.CACHE_DIR
    atexit.register(shutil.rmtree, temp, ignore_errors=True)
    warnings.warn(f"kernels: cannot write the Numba cache folder {path} ({reason}); the "
                  f"kernels are cached in {temp} for this process only, and compiled again "
                  f"by the next one. Set NUMBA_NN_CACHE_DIR to a writable folder.",
                  RuntimeWarning, stacklevel=2)
    return temp


@contextlib.contextmanager
def caching_in(path):
    """``@njit(cache=True)`` functions decorated in the block cache in ``path`` (``""``:
    where Numba would); the user's ``numba.config.CACHE_DIR`` is restored after."""
    previous = config.CACHE_DIR
    config.CACHE_DIR = path
    try:
        yield
    finally:
        config.CACHE_DIR = previous
