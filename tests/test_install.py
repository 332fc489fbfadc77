"""Installing: Numba's cache of the kernels lives in a per-user folder, never inside the
installed package, so uninstalling and reinstalling (regular or editable) leaves
nothing behind to shadow the next install."""
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
KERNELS = ROOT / "kernels"

# A kernel, compiled or loaded from the cache; where its cache is; whether it was a hit.
CALL_A_KERNEL = textwrap.dedent("""\
    import json, numba, numpy as np
    import kernels
    z = np.zeros((2, 3))
    p = np.empty_like(z)
    kernels.softmax(z, p)
    stats = kernels.softmax.stats
    print(json.dumps({"cache_dir": kernels.CACHE_DIR, "cache_path": stats.cache_path,
                      "hits": sum(stats.cache_hits.values()),
                      "misses": sum(stats.cache_misses.values()),
                      "numba_cache_dir": numba.config.CACHE_DIR}))
    """)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "NUMBA_NN_CACHE_DIR", "NUMBA_CACHE_DIR")}
    env.update(extra)
    return env


def call_a_kernel(env, cwd):
    env = dict(env, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", CALL_A_KERNEL], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def numba_files(folder):
    return sorted(p for p in pathlib.Path(folder).rglob("*") if p.suffix in (".nbi", ".nbc"))


def package_cache_files_since(start):
    return [p for p in numba_files(KERNELS) if p.stat().st_mtime >= start]


def test_kernels_are_cached_in_the_configured_folder_and_loaded_from_it(tmp_path):
    folder = tmp_path / "cache"
    env = clean_env(NUMBA_NN_CACHE_DIR=str(folder))
    start = tmp_path.stat().st_mtime
    first, _ = call_a_kernel(env, tmp_path)
    assert first["cache_dir"].startswith(str(folder))
    assert first["cache_path"].startswith(first["cache_dir"])
    assert first["misses"] == 1
    assert numba_files(first["cache_path"])
    second, _ = call_a_kernel(env, tmp_path)          # a fresh process: from the cache
    assert (second["hits"], second["misses"]) == (1, 0)
    assert package_cache_files_since(start) == []
    # Only the kernels' cache moved: the user's own cached functions go where they did.
    assert first["numba_cache_dir"] == ""


def test_numbas_own_cache_dir_is_respected(tmp_path):
    env = clean_env(NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    out, _ = call_a_kernel(env, tmp_path)
    assert out["cache_dir"] == str(tmp_path / "numba")
    assert out["cache_path"].startswith(out["cache_dir"])


def test_an_unwritable_cache_folder_warns_and_the_kernels_still_work(tmp_path):
    # Under a regular file no folder can be made, whoever the user is (root included).
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = clean_env(HOME=str(blocker / "home"), XDG_CACHE_HOME=str(blocker / "cache"),
                    LOCALAPPDATA=str(blocker / "local"))
    start = tmp_path.stat().st_mtime
    out, err = call_a_kernel(env, tmp_path)
    assert "cannot write the Numba cache folder" in err and "NUMBA_NN_CACHE_DIR" in err
    assert out["misses"] == 1
    assert not out["cache_dir"].startswith(str(blocker))
    assert not os.path.exists(out["cache_dir"])       # a private folder, removed at exit
    assert package_cache_files_since(start) == []


# -- install, run, reinstall editable, reinstall, uninstall, in a virtual environment ---------

def needed_distributions(tools):
    """The project's dependencies and theirs (extras aside), and ``tools``."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        todo = list(tomllib.load(fh)["project"]["dependencies"]) + list(tools)
    found = {}
    while todo:
        name = re.match(r"[A-Za-z0-9._-]+", todo.pop()).group(0)
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            found[key] = dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            found[key] = None
            continue
        todo += [r for r in dist.requires or () if "extra ==" not in r]
    return [dist for dist in found.values() if dist is not None]


def link_dependencies(target, tools):
    """Symlinks to this environment's numpy, numba... and ``tools`` (not to numba-nn):
    the test environment gets them without a download, and without this one's numba-nn."""
    target.mkdir()
    for dist in needed_distributions(tools):
        tops = {f.parts[0] for f in dist.files or ()} - {"..", "__pycache__"}
        for top in tops:
            source = pathlib.Path(dist.locate_file(top))
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source, target_is_directory=source.is_dir())


def builds_offline():
    """Whether setuptools here can build a wheel with no download (it has bdist_wheel,
    built in since setuptools 70.1, or the wheel package is there)."""
    try:
        setuptools = importlib.metadata.distribution("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    return (pathlib.Path(setuptools.locate_file("setuptools/command/bdist_wheel.py")).exists()
            or importlib.util.find_spec("wheel") is not None)


def test_reinstalling_after_a_run_leaves_nothing_to_shadow_the_next_install(tmp_path):
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed")
    src = tmp_path / "src"   # a copy: the builds write into the source folder
    for name in ("kernels", "nn"):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
    site = pathlib.Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    offline = builds_offline()
    # Offline, pip builds with this environment's setuptools; else with PyPI's.
    link_dependencies(tmp_path / "deps", ["pip", "setuptools", "wheel"] if offline else ["pip"])
    (site / "deps.pth").write_text(str(tmp_path / "deps") + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
                    XDG_CACHE_HOME=str(tmp_path / "user-cache"))
    if offline:
        env["PIP_NO_INDEX"] = "1"
    build = ["--no-build-isolation"] if offline else []

    def run(*args, check=True):
        result = subprocess.run([python, *args], env=env, cwd=elsewhere, capture_output=True,
                                text=True, timeout=300, check=False)
        if check:
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result

    def pip_install(*args, check=True):
        return run("-m", "pip", "install", "--no-deps", *build, *args, check=check)

    # Offline, a failed build is the project's; online, it may be the network's.
    if pip_install(str(src), check=offline).returncode != 0:
        pytest.skip("cannot build the project: no setuptools that builds wheels offline, "
                    "and none could be downloaded")
    run("-m", "nn", "--epochs", "1", "--hidden", "8", "--quiet")
    left = [p for p in (site / "kernels").rglob("*") if p.is_file()
            and p.suffix not in (".py", ".pyc")]
    assert left == []
    cache_dir = run("-c", "import kernels; print(kernels.CACHE_DIR)").stdout.strip()
    assert numba_files(cache_dir) and site not in pathlib.Path(cache_dir).parents

    pip_install("-e", str(src))
    assert not (site / "kernels").exists() and not (site / "nn").exists()
    where = run("-c", "import kernels, nn, numpy as np; "
                      "p = np.empty((2, 3)); kernels.softmax(np.zeros((2, 3)), p); "
                      "print(nn.__file__)").stdout.strip()
    assert pathlib.Path(where).parent == src / "nn"

    pip_install(str(src))
    where = run("-c", "import nn; print(nn.__file__)").stdout.strip()
    assert pathlib.Path(where).parent == site / "nn"

    run("-m", "pip", "uninstall", "-y", "numba-nn")
    gone = run("-c", "import nn", check=False)
    assert gone.returncode != 0 and "ModuleNotFoundError: No module named 'nn'" in gone.stderr
    assert not (site / "kernels").exists() and not (site / "nn").exists()
