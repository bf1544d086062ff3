"""Project files stay consistent: environment.yml mirrors pyproject.toml (with the notebooks, dev and ray
extras); CI runs the README's test command and `make setup` installs the ray extra that the sweep tests use."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _names(reqs):
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in ("notebooks", "dev", "ray"):
        wanted += project["optional-dependencies"][extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = [p for p in pip_block if not p.startswith("-e")]
    assert sorted(listed) == sorted(wanted), (
        "environment.yml and pyproject.toml differ (same specifiers expected)"
    )
    assert _names(listed) == _names(wanted)


def test_make_setup_installs_the_ray_extra():
    makefile = (ROOT / "Makefile").read_text()
    extras = re.search(r"^DEV_EXTRAS := \.\[([a-z,]*)\]", makefile, re.M)
    assert extras and "ray" in extras.group(1).split(","), "make setup-dev must install .[ray]"
    assert re.search(r'^\t\$\(call install,-e "\$\(DEV_EXTRAS\)"\)$', makefile, re.M)


def test_torch_range_admits_the_local_cpu_wheel():
    from packaging.specifiers import SpecifierSet

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("torch"))
    assert "2.13.0" in SpecifierSet(spec[len("torch") :])


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make report" in readme
    assert "make test" in ci


def test_tree_is_ruff_clean():
    """One formatter and linter for the whole tree (style guide point 11)."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    paths = ["analysis", "tests", "benchmarks", "notebooks/_build.py"]
    check = subprocess.run([ruff, "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-2000:]
    fmt = subprocess.run([ruff, "format", "--check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout[-2000:]
