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

Importing this module also works around a Numba bug (numba/numba#8578, #9938) that a
cache of kernels which call parallel builds trips (``keep_reload_hooks``).
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


def keep_reload_hooks():
    """Make code loaded from Numba's cache start the threading layer it needs.

    A parallel build's machine code calls Numba's threading layer, whose symbols its
    reload hook (``_reload_parfors``) registers before a cached copy is linked. A
    function that calls a parallel build inherits the hook when it compiles, from the
    callee's code library, but a library loaded from the cache comes back without its
    hooks (Numba 0.68 and earlier, numba/numba#9938). So a kernel compiled in a process
    that loaded its parallel build from the cache (a new signature: ``parallel=None`` or
    ``True``, another dtype, the caller's own jitted code) was cached without the hook,
    and a later process that loaded that kernel before any parallel code crashed in its
    parallel branch (the symbols resolved to null).

    Here a loaded library keeps the hooks it was cached with, so its callers inherit
    them; and code whose object calls the threading layer (``numba_parallel_for``) gets
    the hook run before it is linked even when its cache entry lacks it (entries written
    before this fix, or by code compiled elsewhere). Idempotent; a Numba whose
    ``CompileResult._rebuild`` differs is left alone.
    """
    from numba.core.compiler import CompileResult
    rebuild = CompileResult.__dict__.get("_rebuild")
    if not isinstance(rebuild, classmethod) or getattr(rebuild.__func__, "_keeps_hooks",
                                                       False):
        return
    try:
        from numba.core.typed_passes import _reload_parfors
    except ImportError:
        return
    original = rebuild.__func__

    def _rebuild(cls, target_context, libdata, *args, **kwargs):
        parallel = _calls_threading_layer(libdata)
        if parallel:
            _reload_parfors()  # before the object is linked
        result = original(cls, target_context, libdata, *args, **kwargs)
        hooks = getattr(getattr(result, "library", None), "_reload_init", None)
        if isinstance(hooks, set):
            hooks.update(getattr(result, "reload_init", None) or ())
            if parallel:
                hooks.add(_reload_parfors)
        return result

    _rebuild._keeps_hooks = True
    CompileResult._rebuild = classmethod(_rebuild)


def _calls_threading_layer(libdata):
    """Whether a cached library's object code calls Numba's parallel launcher."""
    try:
        _, kind, data = libdata
        return kind == "object" and b"numba_parallel_for" in data[0]
    except (TypeError, ValueError, IndexError):
        return False


keep_reload_hooks()
