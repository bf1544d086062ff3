"""analysis.report.warmup: the set-up step that compiles what a report imports."""

import os
import sys

from analysis.report import warmup


def test_warmup_writes_bytecode_even_where_the_environment_forbids_it(tmp_path, monkeypatch):
    for name in ("warm_probe_a", "warm_probe_b"):
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    assert warmup.main([], groups=(("warm_probe_a",), ("warm_probe_b", "no_such_module_xyz"))) == 0
    cached = sorted(p.name.split(".")[0] for p in (tmp_path / "__pycache__").glob("*.pyc"))
    assert cached == ["warm_probe_a", "warm_probe_b"]  # a missing optional module is skipped, not fatal


def test_the_report_imports_are_listed_once():
    names = [n for g in warmup.GROUPS for n in g]
    assert len(names) == len(set(names)) and "transformers" in names and "papermill" in names
