"""What ``import nn`` loads: not the optional heavy dependencies (scikit-learn, Dask,
matplotlib) nor ``nn.tuning``, which come on first use; and the module paths that
pickles of the moved classes name, old and new, all load; and every package is
installed."""
import importlib.util
import json
import pathlib
import pickle
import subprocess
import sys
import tomllib

import numpy as np
import pytest

import nn
import nn.callbacks
import nn.training
import nn.tuning

ROOT = pathlib.Path(__file__).resolve().parents[2]

LAZY = ["sklearn", "distributed", "dask", "matplotlib", "nn.tuning", "nn.sklearn"]

IMPORT_NN = f"""\
import importlib.util, json, sys
import nn
loaded = [m for m in {LAZY!r} if m in sys.modules]
names = dir(nn)
search = nn.tuning.random_search
after_tuning = [m for m in ("sklearn", "distributed", "matplotlib") if m in sys.modules]
classifier = None
if importlib.util.find_spec("sklearn") is not None:
    classifier = nn.sklearn.MLPClassifier.__name__
from nn import *
print(json.dumps({{"loaded": loaded, "dir": names, "search": search.__name__,
                  "after_tuning": after_tuning, "classifier": classifier}}))
"""


@pytest.fixture(scope="module")
def fresh_import():
    result = subprocess.run([sys.executable, "-c", IMPORT_NN], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_nn_loads_neither_tuning_nor_the_optional_dependencies(fresh_import):
    assert fresh_import["loaded"] == []


def test_tuning_and_sklearn_are_attributes_imported_on_first_use(fresh_import):
    assert {"tuning", "sklearn", "callbacks", "Sequential"} <= set(fresh_import["dir"])
    assert fresh_import["search"] == "random_search"
    assert fresh_import["after_tuning"] == []   # tuning itself stays light
    if importlib.util.find_spec("sklearn") is not None:
        assert fresh_import["classifier"] == "MLPClassifier"


def test_an_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'nn' has no attribute 'nope'"):
        nn.nope  # noqa: B018


@pytest.mark.parametrize("name", nn.tuning.__all__)
def test_each_tuning_name_pickles_by_a_path_that_imports(name):
    obj = getattr(nn.tuning, name)
    home = importlib.import_module(obj.__module__)
    assert getattr(home, obj.__qualname__) is obj


def test_the_callbacks_are_one_set_of_classes_under_every_old_name():
    assert nn.tuning.Babysitter is nn.callbacks.Babysitter
    for name in ("Callback", "EarlyStopping", "ModelCheckpoint"):
        assert getattr(nn, name) is getattr(nn.callbacks, name) is getattr(nn.training, name)
        assert getattr(nn, name).__module__ == "nn.callbacks"


def old_path(obj, new, old):
    """A pickle of ``obj`` as one made when its class lived in module ``old``."""
    data = pickle.dumps(obj, protocol=2)   # protocol 2 names a class as "module\\nname\\n"
    assert f"{new}\n".encode() in data
    return data.replace(f"{new}\n".encode(), f"{old}\n".encode())


@pytest.mark.parametrize("obj, new, old", [
    (nn.tuning.LogUniform(1e-3, 1.0), "nn.tuning.spaces", "nn.tuning"),
    (nn.tuning.Trial(0, {"lr": 0.1}, 7, "ok"), "nn.tuning.results", "nn.tuning"),
    (nn.EarlyStopping(patience=3), "nn.callbacks", "nn.training"),
])
def test_pickles_made_before_the_move_still_load(obj, new, old):
    clone = pickle.loads(old_path(obj, new, old))
    assert type(clone) is type(obj)
    assert vars(clone) == vars(obj)


def test_the_mlp_objective_pickles_under_its_old_name_too():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)).astype(np.float32), rng.integers(0, 2, 20)
    objective = nn.tuning.mlp_objective(X[:12], y[:12], X[12:], y[12:], epochs=1, hidden=2)
    clone = pickle.loads(old_path(objective, "nn.tuning.objective", "nn.tuning"))
    assert type(clone) is nn.tuning.MLPObjective and repr(clone) == repr(objective)


def test_every_package_of_the_project_is_installed():
    # pyproject.toml lists the packages by name: a subpackage left out is missing from
    # the wheel, and only an editable install would import it.
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]
    found = sorted(".".join(p.parent.relative_to(ROOT).parts)
                   for top in ("kernels", "nn") for p in (ROOT / top).rglob("__init__.py"))
    assert [name for name in found if name not in listed] == []
