"""External reward models (a Python callable, a tiny random sequence-classification checkpoint with
its own tokenizer, per-user folders) in RM accuracy, policy accuracy, best-of-n, ARGS and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analysis.data.records import PreferencePair
from analysis.decoding.args import ArgsConfig
from analysis.decoding.base import GenerationConfig
from analysis.decoding.best_of_n import BestOfNConfig
from analysis.errors import ConfigError, ModelError
from analysis.evaluation.policy_accuracy import PolicyAccuracyConfig
from analysis.rewards.external import (
    CallableReward,
    HFReward,
    PerUserReward,
    RewardFunction,
    load_reward_function,
)

PROMPTS = ["Write a headline about the city council.", "Describe a sunny day.", "Why do cats purr?"]


def count_a(user_id, prompt, texts):
    """The known-answer reward: the number of 'a' characters of each text."""
    return [t.count("a") for t in texts]


def _rm_checkpoint(path, seed=0):
    """A 2-layer random GPT2ForSequenceClassification with a word-level tokenizer trained on the fly
    (unlike the policy's byte-level BPE), saved to ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = [p + " " + "a b c banana kiwi the city sunny day cats purr" for p in PROMPTS]
    raw.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]")
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=256,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    GPT2ForSequenceClassification(cfg).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _rm_checkpoint(tmp_path_factory.mktemp("rm") / "seqcls")


def _pairs(n=8):
    out = []
    for i in range(n):
        many, few = "a banana " * (1 + i % 3), "kiwi " * (1 + i % 2)
        c, r = (many, few) if i % 4 else (few, many)  # every 4th pair prefers fewer 'a': RM accuracy 0.75
        out.append(PreferencePair(f"u{i % 2}", PROMPTS[i % 3], c.strip(), r.strip(), f"p{i}", "test"))
    return out


def test_callable_reward_known_rm_accuracy():
    from analysis.features.passes import BackboneSpec, PairFeatures
    from analysis.rewards.evaluate import rm_accuracy, summarize_rm_accuracy

    pairs = _pairs(8)
    feats = PairFeatures(
        [p.user_id for p in pairs],
        torch.zeros(8, 1),
        torch.zeros(8, 1),
        [p.pair_id for p in pairs],
        [p.split for p in pairs],
        BackboneSpec("none", -1),
        [p.prompt for p in pairs],
        [p.chosen for p in pairs],
        [p.rejected for p in pairs],
    )
    rm = CallableReward(count_a)
    df = rm_accuracy(rm, feats)
    assert list(df["correct"]) == [0.0, 1, 1, 1, 0, 1, 1, 1]
    assert summarize_rm_accuracy(df, n_boot=50)["mean"] == pytest.approx(0.75)
    assert df["r_chosen"].iloc[1] == "a banana a banana".count("a")


def test_reward_text_groups_keep_the_order_and_errors_are_clear():
    calls = []

    def fn(user_id, prompt, texts):
        calls.append((user_id, prompt, list(texts)))
        return [len(t) for t in texts]

    r = CallableReward(fn).reward_text(["a", "b", "a"], ["p", "p", "p"], ["x", "yy", "zzz"])
    assert r.tolist() == [1.0, 2.0, 3.0] and calls == [("a", "p", ["x", "zzz"]), ("b", "p", ["yy"])]
    with pytest.raises(ModelError, match="returned 1 rewards for 2 texts"):
        CallableReward(lambda u, p, t: [0.0]).reward_text(["u", "u"], ["p", "p"], ["x", "y"])
    with pytest.raises(ModelError, match="non-finite reward nan"):
        CallableReward(lambda u, p, t: [float("nan")]).reward_text(["u"], ["p"], ["x"])
    with pytest.raises(ConfigError, match="not trained here"):
        CallableReward(count_a).fit(None)


def test_hf_checkpoint_scores_its_own_tokenization_and_a_user_template(checkpoint):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rm = HFReward(checkpoint, batch_size=2)
    texts = ["a banana", "kiwi kiwi the city", "cats purr"]
    got = torch.tensor(rm.score("u", PROMPTS[0], texts))
    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    with torch.no_grad():  # one text at a time, no padding: the batched scores must match
        want = torch.tensor(
            [float(model(**tok(f"{PROMPTS[0]}\n{t}", return_tensors="pt")).logits[0, 0]) for t in texts]
        )
    assert torch.allclose(got, want, atol=1e-5) and got.std() > 0
    # a template with {user_id} conditions one shared model on the user
    per_user = HFReward(checkpoint, template="{user_id} {prompt}\n{response}")
    r = per_user.reward_text(["cats", "city"], [PROMPTS[0]] * 2, ["a banana"] * 2)
    assert r[0] != r[1]
    with pytest.raises(ConfigError, match=r"must contain \{response\}"):
        HFReward(checkpoint, template="{prompt}")


def test_per_user_folders_and_spec_forms(checkpoint, tmp_path):
    root = tmp_path / "per_user"
    root.mkdir()
    _rm_checkpoint(root / "u0", seed=1)
    _rm_checkpoint(root / "default", seed=2)
    rm = load_reward_function(root)
    assert isinstance(rm, PerUserReward) and rm.knows_user("u0") and not rm.knows_user("u9")
    own = HFReward(root / "u0").score("u0", "p", ["a banana"])
    other = HFReward(root / "default").score("u9", "p", ["a banana"])
    assert rm.reward_text(["u0", "u9"], ["p", "p"], ["a banana"] * 2).tolist() == pytest.approx(own + other)
    strict = PerUserReward({"u0": CallableReward(count_a)})
    with pytest.raises(ModelError, match="no model for user 'u9'"):
        strict.reward_text(["u9"], ["p"], ["a"])
    assert isinstance(load_reward_function(checkpoint), HFReward)
    mod = tmp_path / "my_rewards.py"
    mod.write_text("def score(user_id, prompt, texts):\n    return [t.count('a') for t in texts]\n")
    fn = load_reward_function(f"{mod}:score")
    assert isinstance(fn, RewardFunction) and fn.reward_text(["u"], ["p"], ["aaa"]).tolist() == [3.0]
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        load_reward_function(f"{mod}:nope")
    with pytest.raises(ConfigError, match="neither a checkpoint"):
        load_reward_function(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_reward_function(tmp_path / "missing")


def _logprob(model, tok, prompt, response) -> float:
    """sum_t log pi(y_t | x, y_{<t}) from one plain forward pass."""
    from analysis.models.tokens import encode_prompt, encode_response

    p, r = encode_prompt(tok, prompt), encode_response(tok, response)
    with torch.no_grad():
        logits = model(torch.tensor([p + r])).logits[0].float()
    lp = torch.log_softmax(logits[len(p) - 1 : len(p) + len(r) - 1], -1)
    return float(lp.gather(-1, torch.tensor(r)[:, None]).sum())


@pytest.mark.parametrize("kind", ["callable", "checkpoint"])
def test_policy_accuracy_both_variants_with_an_external_rm(tiny_lm, checkpoint, kind):
    """The text path decodes the policy's prefixes and the RM scores them with its own tokenizer:
    w = 0 is the base ranking, and the score variant's per-step rewards are the RM's rewards of the
    decoded prefixes."""
    from analysis.evaluation.policy_accuracy import policy_accuracy, prepare_pa_data, step_rewards
    from analysis.metrics.intervals import pairwise_accuracy

    model, tok = tiny_lm
    rm = CallableReward(count_a) if kind == "callable" else HFReward(checkpoint)
    pairs = _pairs(8)
    data = prepare_pa_data(model, tok, pairs, k=3, policy=True, batch_size=4, progress=False)
    res = policy_accuracy(rm, data, PolicyAccuracyConfig(ws=[0.0, 1.0, 1000.0], n_boot=50), tok=tok)
    assert set(res.summary["variant"]) == {"score", "policy"}
    base = {  # the base ranking from one plain forward pass per response (no project scoring code)
        side: [_logprob(model, tok, p.prompt, getattr(p, side)) for p in pairs]
        for side in ("chosen", "rejected")
    }
    base_pp = res.per_pair.query("variant == 'score' and w == 0 and not length_norm")["correct"].to_numpy()
    np.testing.assert_array_equal(base_pp, pairwise_accuracy(base["chosen"], base["rejected"]))
    own, _ = step_rewards(rm, data, tok, need_candidates=False)["chosen"]
    ids = data.chosen.token_lists()[0]
    prefix = tok.decode(ids[:2], skip_special_tokens=True)
    assert float(own[1]) == pytest.approx(rm.score("u0", pairs[0].prompt, [prefix])[0], abs=1e-5)
    if kind == "callable":  # known RM accuracy; at a large w the count of 'a' over the prefixes decides
        assert res.rm_accuracy["mean"] == pytest.approx(0.75)
        pp = res.per_pair
        big = pp[(pp.variant == "score") & (pp.w == 1000.0) & ~pp.length_norm]
        assert list(big["correct"]) == [0.0, 1, 1, 1, 0, 1, 1, 1]


def test_best_of_n_keeps_the_highest_external_reward(tiny_lm, checkpoint):
    from analysis.decoding.best_of_n import best_of_n

    model, tok = tiny_lm
    for rm in (CallableReward(count_a), HFReward(checkpoint)):
        outs = best_of_n(
            model, tok, rm, PROMPTS[:2], ["u0", "u1"], BestOfNConfig(n=4, max_new_tokens=6, seed=0)
        )
        for o in outs:
            assert len(o.candidates) == 4 and o.reward == max(r for r in o.rewards if r == r)
            again = rm.reward_text([o.user_id], [o.prompt], [o.text])
            assert float(again[0]) == pytest.approx(o.reward, abs=1e-5)


def test_reference_args_with_a_callable_reward(tiny_lm):
    """w = 0 is greedy; a large w picks, at each step, the candidate whose prefix has the most 'a'."""
    from analysis.decoding.args import args_generate
    from analysis.decoding.base import generate_greedy
    from analysis.decoding.reference import reference_args

    model, tok = tiny_lm
    rm = CallableReward(count_a)
    users = ["u0", "u1"]
    w0 = reference_args(model, tok, rm, PROMPTS[:2], users, ArgsConfig(w=0.0, k=5, max_new_tokens=6))
    assert [o.text for o in w0] == generate_greedy(
        model, tok, PROMPTS[:2], GenerationConfig(max_new_tokens=6)
    )
    big = reference_args(model, tok, rm, PROMPTS[:2], users, ArgsConfig(w=1e4, k=5, max_new_tokens=6))
    from analysis.models.tokens import encode_prompt

    for o, p in zip(big, PROMPTS[:2], strict=True):
        ids: list[int] = []
        for v in o.tokens:  # replay: the kept token has the most 'a' among the step's top-k
            with torch.no_grad():
                x = torch.tensor([encode_prompt(tok, p) + ids])
                top = model(input_ids=x).logits[0, -1].topk(5).indices.tolist()
            counts = [tok.decode(ids + [c], skip_special_tokens=True).count("a") for c in top]
            assert tok.decode(ids + [v], skip_special_tokens=True).count("a") == max(counts)
            ids.append(v)
    assert sum(o.text.count("a") for o in big) > sum(o.text.count("a") for o in w0)
    cached = args_generate(
        model, tok, rm, PROMPTS[:2], users, ArgsConfig(w=1e4, k=5, max_new_tokens=6, batch_size=2)
    )
    assert [o.tokens for o in cached] == [o.tokens for o in big]


def test_cli_policy_acc_and_generate_with_reward_model(tmp_path, checkpoint, capsys):
    from analysis.cli import main
    from analysis.data.preferences import write_preferences
    from analysis.models.tiny import build_tiny_model

    model, tok = build_tiny_model("llama", seed=3)
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    write_preferences(tmp_path / "prefs.jsonl", _pairs(8))
    mod = tmp_path / "my_rewards.py"
    mod.write_text("def score(user_id, prompt, texts):\n    return [t.count('a') for t in texts]\n")
    common = ["--model", str(tmp_path / "lm"), "--threads", "1"]
    pa = ["policy-acc", "--pairs", str(tmp_path / "prefs.jsonl"), "--ws", "0,1", "--k", "3", "--n-boot", "50"]
    assert main([*pa, *common, "--reward-model", f"{mod}:score", "--out", str(tmp_path / "pa")]) == 0
    out = capsys.readouterr().out
    assert "RM accuracy: 0.750" in out and "policy accuracy (policy, per-token)" in out
    saved = json.loads((tmp_path / "pa" / "policy_accuracy.json").read_text())
    assert saved["rm"] == f"external:{mod}:score"
    assert main([*pa, *common, "--reward-model", str(checkpoint)]) == 0
    assert "RM accuracy:" in capsys.readouterr().out
    inp = tmp_path / "prompts.jsonl"
    inp.write_text(
        "".join(
            json.dumps({"user_id": u, "prompt": p}) + "\n" for u, p in zip("ab", PROMPTS[:2], strict=True)
        )
    )
    for method, extra in (("best_of_n", ["--n", "3"]), ("args", ["--w", "0,5", "--k", "4"])):
        gens = tmp_path / f"{method}.jsonl"
        rc = main(
            [
                "generate",
                "--method",
                method,
                "--reward-model",
                str(checkpoint),
                "--input",
                str(inp),
                "--out",
                str(gens),
                "--max-new-tokens",
                "4",
                *extra,
                *common,
            ]
        )
        assert rc == 0
        rows = [json.loads(x) for x in gens.read_text().splitlines()]
        assert rows and all(r["params"]["rm"] == f"external:{checkpoint}" for r in rows)
    capsys.readouterr()
    bad = [
        "generate",
        "--rm",
        "x",
        "--reward-model",
        str(checkpoint),
        "--input",
        str(inp),
        "--out",
        "o.jsonl",
    ]
    assert main(bad) == 2 and "not both" in capsys.readouterr().err
