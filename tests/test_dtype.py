"""dtype "auto": float32 on every CPU (with or without native bf16), bfloat16 only when asked; the
CPU's bf16 support and the dtype used are recorded in provenance, a bfloat16 CPU run is labelled."""

import json

import nbformat
import pytest
import torch

from analysis.config.parse import load_config
from analysis.errors import ConfigError, ModelError
from analysis.models.loading import CPU_BF16_ENV, cpu_bf16_supported, load_model, model_dtype, resolve_dtype
from analysis.models.tiny import build_tiny_model

SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512dq avx512bw avx512vl\n"  # no native bf16
COOPER_LAKE = "flags\t\t: fpu avx2 avx512f avx512bw avx512_bf16\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
GRAVITON3 = "Features\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize(
    "cpuinfo, expect",
    [(SKYLAKE, False), (COOPER_LAKE, True), (SAPPHIRE_RAPIDS, True), (GRAVITON3, True), ("", False)],
)
def test_cpu_bf16_detection_from_cpuinfo_flags(cpuinfo, expect):
    assert cpu_bf16_supported(cpuinfo) is expect


def test_cpu_bf16_detection_does_not_match_substrings():
    assert not cpu_bf16_supported("flags : avx512_bf16x amx_bf16_foo\nmodel name : bf16 inside\n")


@pytest.mark.parametrize("forced", ["1", "0"])
def test_auto_is_float32_on_every_cpu(monkeypatch, forced):
    """$ANALYSIS_CPU_BF16 forces the detection (what provenance records), not the dtype."""
    monkeypatch.setenv(CPU_BF16_ENV, forced)
    assert cpu_bf16_supported() is (forced == "1")
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "mps") == "float32"
    for explicit in ("float32", "bfloat16", "float16"):  # an explicit setting is kept as is
        assert resolve_dtype(explicit, "cpu") == explicit
    with pytest.raises(ModelError, match="unknown dtype 'fp8'"):
        resolve_dtype("fp8")


def test_auto_is_the_config_default_and_validated():
    cfg = load_config("embedded_synthetic")
    assert cfg.dtype == "auto" and load_config("paper").dtype == "bfloat16"  # paper: CUDA, bf16 asked
    assert load_config("embedded_synthetic", {"dtype": "bfloat16"}).dtype == "bfloat16"
    with pytest.raises(ConfigError, match="'dtype'"):
        load_config("embedded_synthetic", {"dtype": "fp8"})


def _saved_tiny(path):
    model, tok = build_tiny_model("llama", seed=3)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return model, tok, torch.tensor([tok("the city council vote on the budget").input_ids])


@pytest.mark.parametrize("forced", ["1", "0"])
def test_load_model_auto_is_float32_and_bit_identical(tmp_path, monkeypatch, forced):
    monkeypatch.setenv(CPU_BF16_ENV, forced)
    model, _, ids = _saved_tiny(tmp_path)
    loaded, _ = load_model(str(tmp_path))
    assert all(p.dtype == torch.float32 for p in loaded.parameters()) and model_dtype(loaded) == "float32"
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


@pytest.mark.bf16
def test_bf16_only_when_asked_and_close_to_float32(tmp_path, monkeypatch):
    """On a CPU reporting native bf16, auto still loads float32; dtype="bfloat16" gives bf16 weights
    whose logits agree with float32 to bf16 precision, not bit for bit."""
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    model, _, ids = _saved_tiny(tmp_path)
    assert model_dtype(load_model(str(tmp_path))[0]) == "float32"
    loaded, _ = load_model(str(tmp_path), dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in loaded.parameters()) and model_dtype(loaded) == "bfloat16"
    with torch.no_grad():
        ref, got = model(ids).logits, loaded(ids).logits.float()
    assert not torch.equal(ref, got)
    # bf16 keeps 8 significant bits: every weight and activation is rounded by up to 2^-9 relative;
    # through two layers of a hidden-64 model that stays within a few percent of the logit scale.
    # 10% of the largest logit is tight enough to catch wrong weights (O(1) relative error).
    assert torch.allclose(ref, got, atol=0.1 * ref.abs().max().item())


def _one_notebook(folder):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'preset: str = "embedded"\noverrides: dict = {}\nconfig_path: str = ""\noutput_dir: str = "."\ncache_dir: str = ""'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print('ok')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir()
    nbformat.write(nb, folder / "01_a.ipynb")
    return folder


def test_provenance_records_float32_on_a_bf16_cpu_and_a_bf16_run_is_labelled(tmp_path, monkeypatch):
    """On a (simulated) native-bf16 CPU a default run records float32 and has no precision note;
    `--set dtype=bfloat16` records bfloat16, and the page's header and findings table say that its
    numbers are not comparable with float32 runs."""
    import pandas as pd

    from analysis.report.runner import run_report

    monkeypatch.setenv(CPU_BF16_ENV, "1")
    books = _one_notebook(tmp_path / "nbs")
    row = {"claim": "1. RM accuracy predicts policy accuracy", "paper": "tau ~ 0", "rule": "r"}
    pd.DataFrame(
        [{**row, "this_run": "d: tau=0.10 [-0.1, 0.3] -> inconclusive", "verdict": "inconclusive"}]
    ).to_csv(tmp_path / "findings.csv", index=False)
    src = str(tmp_path / "findings.csv")
    write = f"import shutil\nshutil.copy({src!r}, output_dir + '/tables/study1_findings.csv')"
    nb = nbformat.read(books / "01_a.ipynb", as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell("import os\nos.makedirs(output_dir + '/tables', exist_ok=True)\n" + write)
    )
    nbformat.write(nb, books / "01_a.ipynb")
    runs = {}
    for name, overrides in (("auto", None), ("bf16", {"dtype": "bfloat16"})):
        run = run_report(
            overrides=overrides,
            output_root=tmp_path / name,
            notebook_dir=books,
            progress=False,
            html_export=False,
        )
        runs[name] = (json.loads((run / "provenance.json").read_text()), (run / "index.html").read_text())
    prov, page = runs["auto"]
    assert prov["dtype"] == {"setting": "auto", "used": "float32", "device": "cpu", "cpu_native_bf16": True}
    assert "not comparable" not in page and "tau=0.10" in page
    prov, page = runs["bf16"]
    assert prov["dtype"] == {
        "setting": "bfloat16",
        "used": "bfloat16",
        "device": "cpu",
        "cpu_native_bf16": True,
    }
    note = (
        "This run computed in bfloat16 on the CPU (dtype=bfloat16): "
        "its numbers are not comparable with float32 runs"
    )
    header, findings = page.split('<h2 id="findings">', 1)
    assert note in header and note in findings.split('<h2 id="figures">')[0]
    assert '<caption class="precision">' in findings and "tau=0.10" in findings
