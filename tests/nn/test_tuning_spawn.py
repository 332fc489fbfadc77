"""nn.tuning's local worker processes (spawn) from a script: an unguarded script, or a
worker that dies, stops the search at once with advice; it never hangs."""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADVICE = 'under `if __name__ == "__main__":`'

# 300 rows of 784 features: a pickled objective of ~1 MB, more than a pipe holds, as the
# search that once hung forever had.
SETUP = """\
import os
import numpy as np
from nn import tuning

rng = np.random.default_rng(0)
X = rng.standard_normal((300, 784)).astype(np.float32)
y = rng.integers(0, 3, 300)
objective = tuning.mlp_objective(X[:200], y[:200], X[200:], y[200:], epochs=1, hidden=4)
space = {"lr": tuning.LogUniform(1e-3, 1e-1)}
"""


def run_script(tmp_path, body, timeout=60):
    script = tmp_path / "search.py"
    script.write_text(SETUP + textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("call", [
    "tuning.random_search(objective, space, n_trials=3, n_workers=2, verbose=0)",
    "tuning.successive_halving(objective, space, 3, n_workers=2, verbose=0)",
])
def test_an_unguarded_script_fails_at_once_with_the_advice(tmp_path, call):
    result = run_script(tmp_path, f"results = {call}\nprint('finished')\n")
    assert result.returncode != 0
    assert "finished" not in result.stdout
    err = result.stderr
    # The workers say why they stop; the parent stops the search and says it again.
    assert "was called while a worker process was importing the main module" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: ") and "a worker process exited" in last, err
    assert ADVICE in last


def test_a_guarded_script_runs_its_search_in_worker_processes(tmp_path):
    result = run_script(tmp_path, """
        if __name__ == "__main__":
            results = tuning.random_search(objective, space, n_trials=3, n_workers=2,
                                           verbose=0)
            print(results.summary())
        """)
    assert result.returncode == 0, result.stderr
    assert "random search: 3 trials, 3 ok, 0 failed" in result.stdout


def test_a_worker_that_dies_stops_the_search_with_a_clear_error(tmp_path):
    result = run_script(tmp_path, """
        def crash(params):
            os._exit(3)


        if __name__ == "__main__":
            tuning.random_search(crash, space, n_trials=3, n_workers=2, verbose=0)
        """)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: random_search: a worker process exited before it "
                           "finished a trial"), result.stderr
    assert ADVICE in last and "crashed the worker" in last
