"""dtype "auto": bfloat16 on CPUs with native bf16 (AVX512-BF16 / AMX), float32 elsewhere; recorded in provenance."""

import json

import nbformat
import pytest
import torch

from analysis.config import load_config
from analysis.errors import ConfigError
from analysis.models import (
    CPU_BF16_ENV,
    ModelError,
    build_tiny_model,
    cpu_bf16_supported,
    load_model,
    model_dtype,
    resolve_dtype,
)

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


@pytest.mark.parametrize("forced, dtype", [("1", "bfloat16"), ("0", "float32")])
def test_auto_resolves_from_the_cpu(monkeypatch, forced, dtype):
    monkeypatch.setenv(CPU_BF16_ENV, forced)
    assert cpu_bf16_supported() is (forced == "1")
    assert resolve_dtype("auto", "cpu") == dtype
    assert resolve_dtype("auto", "mps") == "float32"
    for explicit in ("float32", "bfloat16", "float16"):  # an explicit setting is kept as is
        assert resolve_dtype(explicit, "cpu") == explicit
    with pytest.raises(ModelError, match="unknown dtype 'fp8'"):
        resolve_dtype("fp8")


def test_auto_is_the_config_default_and_validated():
    cfg = load_config("embedded_synthetic")
    assert cfg.dtype == "auto" and load_config("paper").dtype == "bfloat16"
    assert load_config("embedded_synthetic", {"dtype": "float32"}).dtype == "float32"
    with pytest.raises(ConfigError, match="'dtype'"):
        load_config("embedded_synthetic", {"dtype": "fp8"})


@pytest.mark.parametrize("forced, dtype", [("1", torch.bfloat16), ("0", torch.float32)])
def test_load_model_auto_uses_the_resolved_dtype(tmp_path, monkeypatch, forced, dtype):
    """Same weights in both dtypes: bf16 logits agree with float32 to bf16 precision, not bit-exactly."""
    monkeypatch.setenv(CPU_BF16_ENV, forced)
    model, tok = build_tiny_model("llama", seed=3)
    model.save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    loaded, _ = load_model(str(tmp_path))
    assert next(loaded.parameters()).dtype == dtype and model_dtype(loaded) == str(dtype).split(".")[1]
    ids = torch.tensor([tok("the city council vote on the budget").input_ids])
    with torch.no_grad():
        ref, got = model(ids).logits, loaded(ids).logits.float()
    if dtype == torch.float32:
        assert torch.equal(ref, got)
    else:
        assert not torch.equal(ref, got)
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


def test_provenance_records_the_dtype_used(tmp_path, monkeypatch):
    """On a (simulated) bf16 CPU the run records bfloat16; float32 machines are covered above."""
    from analysis.report import run_report

    monkeypatch.setenv(CPU_BF16_ENV, "1")
    run = run_report(
        output_root=tmp_path / "r",
        notebook_dir=_one_notebook(tmp_path / "nbs"),
        progress=False,
        html_export=False,
    )
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["dtype"] == {"setting": "auto", "used": "bfloat16", "device": "cpu", "cpu_native_bf16": True}
