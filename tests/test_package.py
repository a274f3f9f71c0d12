"""The package as users get it: an sdist and a wheel that install and run everywhere.

Runs only in the tox ``package`` env (``DHIS2MAINT_PACKAGE=1``): it builds with
``python -m build`` (pyproject.toml's build system, the wheel built from the
sdist), checks both with ``twine check --strict``, then installs them into
fresh virtual environments of Python 3.7 and 3.13 with the pip each brings
(3.7: pip 22, which fell back to the legacy ``setup.py install`` before
pyproject.toml existed) and runs ``dhis2maint demo`` from each.  Where an
interpreter is missing the test skips, saying so, except under CI.
"""
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("DHIS2MAINT_PACKAGE"),
                       reason="builds and installs the package: run by `tox -e package`"),
]


def run(argv, **kwargs):
    kwargs.setdefault("timeout", 600)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, stdin=subprocess.DEVNULL, **kwargs)
    assert proc.returncode == 0, "{}\n{}".format(" ".join(argv), proc.stdout[-4000:])
    return proc.stdout


def find_python(version):
    """A working ``pythonX.Y`` (pyenv shims on the PATH may not run), or None."""
    name = "python" + version
    candidates = [os.path.join(d, name) for d in os.environ.get("PATH", "").split(os.pathsep)]
    candidates += sorted(glob.glob(os.path.expanduser(
        "~/.pyenv/versions/{}*/bin/{}".format(version, name))))
    for path in candidates:
        if not os.access(path, os.X_OK):
            continue
        try:
            out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 universal_newlines=True, timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out == version:
            return path
    return None


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dist"))
    log = run([sys.executable, "-m", "build", "--outdir", out, ROOT])
    sdists = glob.glob(os.path.join(out, "dhis2maint-*.tar.gz"))
    wheels = glob.glob(os.path.join(out, "dhis2maint-*-py3-none-any.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, log
    assert "Building wheel from sdist" in log  # the sdist alone builds the wheel
    return sdists[0], wheels[0]


def test_build_makes_an_sdist_and_a_wheel_that_twine_accepts(dists):
    out = run([sys.executable, "-m", "twine", "check", "--strict"] + list(dists))
    assert out.count("PASSED") == 2, out


def test_the_sdist_carries_the_package_data_tests_and_docs(dists):
    import tarfile
    with tarfile.open(dists[0]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in ("pyproject.toml", "setup.cfg", "README.rst", "CHANGELOG.rst",
                   "dhis2maint/py.typed", "dhis2maint/checks-2.42.json",
                   "tests/conftest.py", "docs/conf.py", "docs/index.rst"):
        assert needed in names, needed
    assert not any(name.startswith("docs/_build") for name in names)


@pytest.mark.parametrize("version", ["3.7", "3.13"])
def test_the_wheel_installs_and_runs_the_demo(dists, version, tmp_path):
    python = find_python(version)
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("python{} is not on the PATH (CI must have it)".format(version))
        pytest.skip("python{} is not installed".format(version))
    venv = str(tmp_path / "venv")
    run([python, "-m", "venv", venv])
    pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "--disable-pip-version-check"]
    pip_version = run(pip + ["--version"])

    # The sdist, with the pip this Python brings: a wheel is built (PEP 517), never
    # the legacy `setup.py install` pip 22 falls back to without pyproject.toml.
    out = run(pip + ["install", "--no-cache-dir", dists[0]])
    assert "setup.py install" not in out, pip_version + out
    assert re.search(r"Building wheel for dhis2maint|Created wheel for dhis2maint", out), out

    # The wheel itself.
    out = run(pip + ["install", "--no-cache-dir", "--force-reinstall", "--no-deps", dists[1]])
    assert "Successfully installed dhis2maint" in out, out

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DHIS2_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    demo = run([os.path.join(venv, "bin", "dhis2maint"), "demo"], cwd=str(tmp_path), env=env)
    assert "ANALYTICS_TABLE" in demo and "completed" in demo, demo
    # It ran the installed copy, not this checkout.
    where = run([os.path.join(venv, "bin", "python"), "-c",
                 "import dhis2maint; print(dhis2maint.__file__)"], cwd=str(tmp_path), env=env)
    assert where.strip().startswith(venv), where
