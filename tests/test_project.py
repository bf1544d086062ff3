"""Project files stay consistent: environment.yml mirrors pyproject.toml (with the notebooks, dev and ray
extras); CI runs the README's test command and `make setup` installs the ray extra that the sweep tests use."""

import re
from pathlib import Path

import pytest
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


FAKE_PYTEST = """#!/bin/sh
# stands in for `python -m pytest`: logs its environment and -m, exits with $FAKE_<the -m run>
m=""; prev=""
for x in "$@"; do [ "$prev" = -m ] && [ "$x" != pytest ] && m="$x"; prev="$x"; done
echo "ANALYSIS_CPU_BF16=$ANALYSIS_CPU_BF16 HF_HUB_OFFLINE=$HF_HUB_OFFLINE -m=$m args=$*" >> "$FAKE_LOG"
case "$m" in *"not bf16"*) exit "$FAKE_REST";; *) exit "$FAKE_BF16";; esac
"""


def _make_test(tmp_path, rest: int, bf16: int, *make_vars: str):
    """Run `make test` with a fake python; return (the process, the log of pytest calls)."""
    import os
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make on PATH")
    tmp_path.mkdir(parents=True, exist_ok=True)
    fake, log = tmp_path / "python", tmp_path / "log"
    fake.write_text(FAKE_PYTEST)
    fake.chmod(0o755)
    venv = tmp_path / "venv"  # the set-up is not remade (-o): only the test recipe runs
    cmd = ["make", "-s", "-o", f"{venv}/.installed", "-o", f"{venv}/.installed-dev", "test"]
    cmd += [f"VENV={venv}", f"PY={fake}", *make_vars]
    env = {**os.environ, "FAKE_LOG": str(log), "FAKE_REST": str(rest), "FAKE_BF16": str(bf16)}
    env.pop("ANALYSIS_CPU_BF16", None)
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return run, log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize(
    "rest, bf16, args, ok",
    [
        (0, 0, "", True),
        (1, 0, "", False),
        (0, 1, "", False),
        (5, 0, "", False),  # the whole suite collecting nothing is a failure, in either run
        (0, 5, "", False),
        (5, 0, "tests/test_metrics.py", True),  # a subset without bf16 tests
        (0, 5, "-k args", True),
        (5, 5, "-k nothing", False),
        (1, 5, "-x", False),
    ],
)
def test_make_test_runs_the_bf16_set_apart_and_fails_on_failures_and_no_tests(tmp_path, rest, bf16, args, ok):
    """`make test` (CI's command): the suite without the bf16 tests with ANALYSIS_CPU_BF16=0, then
    the bf16 tests with ANALYSIS_CPU_BF16=1, ARGS passed to both; a failure or exit 5 fails it."""
    run, calls = _make_test(tmp_path, rest, bf16, f"ARGS={args}")
    assert (run.returncode == 0) is ok, run.stdout + run.stderr
    tail = f" {args}" if args else ""
    assert calls == [
        f"ANALYSIS_CPU_BF16=0 HF_HUB_OFFLINE=1 -m=not bf16 args=-m pytest -q -m not bf16{tail}",
        f"ANALYSIS_CPU_BF16=1 HF_HUB_OFFLINE=1 -m=bf16 args=-m pytest -q -m bf16{tail}",
    ]


def test_make_test_mark_narrows_both_runs_and_rejects_m_in_args(tmp_path):
    run, calls = _make_test(tmp_path, 0, 0, "MARK=embedded")
    assert run.returncode == 0 and [c.split(" args=")[0].split(" -m=")[1] for c in calls] == [
        "(embedded) and not bf16",
        "(embedded) and bf16",
    ]
    run, calls = _make_test(tmp_path / "m", 0, 0, "ARGS=-m embedded")
    assert run.returncode != 0 and "MARK=" in run.stderr and calls == []


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
