"""Where trials run: ``SerialExecutor`` (this process), the local pool of spawned worker
processes that a search starts when given no executor, or any
``concurrent.futures.Executor`` (``_Runner``), and what runs in the worker: its thread
cap, the objective read from the pickle file the search wrote, one trial that never
raises. Also the checks that stop a search with advice: an unguarded script (the
``if __name__ == "__main__"`` guard), an objective that cannot be pickled, a worker
that died (a broken pool).
"""
import concurrent.futures as cf
import contextlib
import multiprocessing
import numbers
import os
import pickle
import tempfile
import time
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from .spaces import _plain


class SerialExecutor(cf.Executor):
    """Runs each submitted call at once, in this process: for debugging, for objectives
    that cannot be pickled (lambdas, closures), and for tiny searches."""

    def submit(self, fn, /, *args, **kwargs):
        future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller via the future)
            future.set_exception(exc)
        return future


_WORKER = {"path": None, "objective": None}

_GUARD_ADVICE = ('put the code that starts the search under `if __name__ == "__main__":` '
                 'so that only the main process runs it (worker processes are started with '
                 'spawn, and each one imports the main module)')


def _check_not_importing_main(where):
    """Raise in a worker process that is importing the main module and meets a search:
    the script starts it unguarded, and every worker would start it again."""
    # ``_inheriting`` is what multiprocessing's own check reads; that check fires only
    # later, when the worker starts a process, with advice that does not name the search.
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(f"{where} was called while a worker process was importing the "
                           f"main module, so the script starts a search at import: "
                           f"{_GUARD_ADVICE}.")


def _init_worker(threads, path):
    """Initializer of the local worker processes: cap the threads, note the path of
    the objective's pickle."""
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        from .._threads import set_num_threads
        import numba
        set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    _WORKER["path"] = path


def _worker_objective():
    if _WORKER["objective"] is None:
        try:
            with open(_WORKER["path"], "rb") as fh:
                _WORKER["objective"] = pickle.load(fh)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"the worker process could not load the objective "
                               f"({type(exc).__name__}: {exc}); define it in an importable "
                               f"module, or in a script guarded by "
                               f"if __name__ == '__main__'") from None
    return _WORKER["objective"]


@contextlib.contextmanager
def _thread_cap(threads):
    """Numba and BLAS threads capped at ``threads`` for the block, then restored."""
    if threads is None:
        yield
        return
    import numba
    import threadpoolctl
    from .. import _threads  # noqa: F401  (loads SciPy's BLAS so threadpoolctl sees it)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)


def _clean_metrics(metrics):
    if not isinstance(metrics, dict):
        raise TypeError(f"the objective must return a dict of metrics; got "
                        f"{type(metrics).__name__}")
    out = {}
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise TypeError(f"metric names must be strings; got {name!r}")
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            value = float(value)
        out[name] = _plain(value)
    return out


def _run_trial(objective, index, params, kwargs, threads):
    """Run one trial (in a worker): never raises, returns a plain dict."""
    start = time.perf_counter()
    result = {"index": index, "status": "ok", "metrics": {}, "error": None}
    try:
        if objective is None:
            objective = _worker_objective()
        with _thread_cap(threads):
            metrics = objective(dict(params), **kwargs)
        result["metrics"] = _clean_metrics(metrics)
    except Exception as exc:  # noqa: BLE001  (a failed trial, recorded, not fatal)
        result["status"] = "failed"
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["metrics"].setdefault("time", time.perf_counter() - start)
    return result


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _check_picklable(objective, where):
    try:
        return pickle.dumps(objective)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(
            f"{where}: objective must be picklable to run in worker processes (a "
            f"module-level function, or an instance of a module-level class such as "
            f"nn.tuning.mlp_objective(...)); pickling {objective!r} failed "
            f"({type(exc).__name__}: {exc}). To run it in this process, pass "
            f"executor=nn.tuning.SerialExecutor().") from None


class _Runner:
    """Owns the executor of a search (a local spawn pool unless one is given) and runs
    batches of trials on it, reporting each as it finishes."""

    def __init__(self, objective, executor, n_workers, threads, n_tasks, where):
        self.threads, self.where = threads, where
        self.own = executor is None
        if executor is None:
            payload = _check_picklable(objective, where)
            n = min(n_workers or _cpu_count(), max(1, n_tasks))
            # The objective (its data included) goes to the workers in a file: spawn
            # writes the initializer's arguments down a pipe and keeps its own copy of
            # the read end open until the write returns, so if the worker dies before
            # reading them (an unguarded script), a write larger than the pipe's buffer
            # never returns.
            fd, self.payload = tempfile.mkstemp(prefix="nn-search-", suffix=".pickle")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                self.executor = cf.ProcessPoolExecutor(
                    max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(threads, self.payload))
            except BaseException:
                os.unlink(self.payload)
                raise
            self.send = None          # the workers load the objective
        else:
            if not isinstance(executor, cf.Executor):
                raise TypeError(f"{where}: executor must be a concurrent.futures.Executor "
                                f"(e.g. a Dask client's client.get_executor()) or None; got "
                                f"{executor!r}.")
            if isinstance(executor, cf.ProcessPoolExecutor):
                _check_picklable(objective, where)
            self.executor = executor
            self.send = objective

    def run(self, tasks, on_done):
        """``tasks``: (index, params, kwargs); returns {index: result dict}."""
        futures = {}
        results = {}

        def collect(fut):
            index = futures[fut]
            try:
                result = fut.result()
            except BrokenProcessPool:
                raise                 # no trial can run any more: the search stops
            except Exception as exc:  # noqa: BLE001  (a task was lost)
                result = {"index": index, "status": "failed", "metrics": {},
                          "error": f"{type(exc).__name__}: {exc}"}
            results[index] = result
            on_done(result, len(results))

        try:
            pending = []
            for index, params, kwargs in tasks:
                # Positional arguments only: Dask's submit takes keywords of its own.
                fut = self.executor.submit(_run_trial, self.send, index, params, kwargs,
                                           self.threads)
                futures[fut] = index
                if fut.done():      # SerialExecutor: report as it goes
                    collect(fut)
                else:
                    pending.append(fut)
            for fut in cf.as_completed(pending):
                collect(fut)
            return results
        except BrokenProcessPool as exc:
            for fut in futures:
                fut.cancel()
            raise RuntimeError(
                f"{self.where}: a worker process exited before it finished a trial "
                f"({str(exc).rstrip('.')}). The usual cause is a script without a main guard: "
                f"{_GUARD_ADVICE}; the worker's own error is printed above. Otherwise "
                f"the objective crashed the worker (a segfault, or out of memory).") from None
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def close(self):
        if self.own:
            self.executor.shutdown(wait=True, cancel_futures=True)
            os.unlink(self.payload)
