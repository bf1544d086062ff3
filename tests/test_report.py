"""The report runner: papermill into reports/<run-id>/, html, provenance, latest, failure handling."""

import json

import nbformat
import pytest

from analysis.cli import main
from analysis.report import list_notebooks, run_report


def _notebook(path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'preset: str = "embedded"  # preset name\noverrides: dict = {}  # config overrides\n'
        'config_path: str = ""\noutput_dir: str = "."  # run folder\ncache_dir: str = ""'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def books(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _notebook(
        d / "01_a.ipynb",
        "import pathlib\npathlib.Path(output_dir, 'tables', 'a.csv').write_text('x\\n1\\n')\nprint(overrides)",
    )
    _notebook(d / "02_b.ipynb", "print('b', preset)")
    return d


def test_report_runs_notebooks_in_order_with_outputs(tmp_path, books):
    run = run_report(
        overrides={"seeds": [5]}, output_root=tmp_path / "reports", notebook_dir=books, progress=False
    )
    assert (run / "01_a.ipynb").exists() and (run / "02_b.ipynb").exists()
    assert (run / "01_a.html").exists() and (run / "index.html").exists()
    assert (tmp_path / "reports" / "latest").resolve() == run
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["config"]["seeds"] == [5] and "torch" in prov["versions"] and prov["git_commit"]
    executed = nbformat.read(run / "01_a.ipynb", as_version=4)
    assert "{'seeds': [5]}" in "".join(
        o.get("text", "") for c in executed.cells for o in c.get("outputs", [])
    )
    assert "a.csv" in (run / "index.html").read_text()


def test_failed_notebook_stops_run_and_keeps_earlier_outputs(tmp_path, books):
    _notebook(books / "02_b.ipynb", "raise RuntimeError('boom in notebook')")
    _notebook(books / "03_c.ipynb", "print('never')")
    with pytest.raises(RuntimeError, match="02_b.ipynb failed"):
        run_report(output_root=tmp_path / "r", notebook_dir=books, progress=False, run_id="x")
    run = tmp_path / "r" / "x"
    status = json.loads((run / "status.json").read_text())
    assert status["notebooks"]["01_a.ipynb"]["status"] == "ok"
    assert status["notebooks"]["02_b.ipynb"]["status"] == "failed"
    assert "boom in notebook" in status["notebooks"]["02_b.ipynb"]["error"]
    assert status["notebooks"]["03_c.ipynb"]["status"] == "pending" and not (run / "03_c.ipynb").exists()
    # fix the notebook and resume: 01 is skipped, 02 and 03 run
    _notebook(books / "02_b.ipynb", "print('fixed')")
    run_report(output_root=tmp_path / "r", notebook_dir=books, progress=False, run_id="x", resume=True)
    status = json.loads((run / "status.json").read_text())
    assert all(v["status"] == "ok" for v in status["notebooks"].values())


def test_only_filters_and_rejects_unknown(books):
    assert [b.name for b in list_notebooks(books, ["02"])] == ["02_b.ipynb"]
    with pytest.raises(ValueError, match="no notebook matches"):
        list_notebooks(books, ["09"])


def test_bad_override_is_one_error_line_before_any_work(tmp_path, capsys):
    rc = main(["report", "--set", "seedz=[1]", "--output", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'seedz'") and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_info_lists_presets_and_embedded_models(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "embedded:" in out and "paper:" in out and "smollm2-135m-instruct: installed" in out


def test_paper_report_without_lamp_path_is_one_error_line(tmp_path, capsys):
    rc = main(["report", "--preset", "paper", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "data_paths.lamp is not set" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())
