"""`python -m analysis rm train|eval` end to end on a tiny saved model and a preference file."""

from __future__ import annotations

import json

import pytest

from analysis.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from test_rewards import _opposite_style_pairs

    from analysis.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("rmcli")
    model, tok = build_tiny_model("llama")
    model.save_pretrained(root / "tiny", safe_serialization=True)
    tok.save_pretrained(root / "tiny")
    prefs = root / "prefs.jsonl"
    prefs.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in _opposite_style_pairs(60)))
    common = [
        "--dataset",
        str(prefs),
        "--model",
        str(root / "tiny"),
        "--set",
        f"cache_dir={root / 'cache'}",
        "--set",
        "threads=1",
    ]
    return root, common


def test_rm_train_then_eval_prints_table(setup, capsys):
    root, common = setup
    assert (
        main(
            [
                "rm",
                "train",
                *common,
                "--method",
                "shared_bt",
                "per_user_bt",
                "--seed",
                "0",
                "1",
                "--out",
                str(root / "rms"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "val_accuracy" in out and "per_user_bt" in out
    for name in ("shared_bt-seed0", "shared_bt-seed1", "per_user_bt-seed0", "per_user_bt-seed1"):
        assert (root / "rms" / name / "config.json").exists() and (
            root / "rms" / name / "model.safetensors"
        ).exists()
    csv = root / "table.csv"
    assert (
        main(
            [
                "rm",
                "eval",
                *common,
                "--rm",
                str(root / "rms" / "per_user_bt-seed0"),
                str(root / "rms" / "shared_bt-seed0"),
                "--method",
                "lore",
                "--param",
                "rank=2",
                "--csv",
                str(csv),
                "--per-user",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.strip().startswith("method"))
    assert header.split() == [
        "method",
        "seed",
        "rm_accuracy",
        "ci_low",
        "ci_high",
        "train_pairs",
        "n_users",
        "n_pairs",
    ]
    import pandas as pd

    table = pd.read_csv(csv).set_index("method")
    assert list(table.index) == ["per_user_bt", "shared_bt", "lore"]
    assert table.loc["per_user_bt", "rm_accuracy"] > 0.8 and table.loc["shared_bt", "rm_accuracy"] <= 0.6
    assert table.loc["per_user_bt", "train_pairs"] == 72 and table.loc["per_user_bt", "n_users"] == 2
    assert (
        table.loc["per_user_bt", "ci_low"]
        <= table.loc["per_user_bt", "rm_accuracy"]
        <= table.loc["per_user_bt", "ci_high"]
    )
    assert "per user:" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "lorre"], "did you mean 'lore'"),
        (["--method", "lore", "--param", "rnak=3"], "unknown setting 'rnak'"),
        (["--method", "oracle"], "planted styles"),
    ],
)
def test_rm_cli_user_errors_are_one_line(setup, capsys, extra, message):
    root, common = setup
    assert main(["rm", "eval", *common, *extra]) == 2
    err = capsys.readouterr().err  # may also hold the model-loading progress bar
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err


def test_rm_cli_unknown_dataset(setup, capsys):
    root, common = setup
    args = list(common)
    args[1] = "synthetic_styleswap"
    assert main(["rm", "train", *args, "--method", "lore"]) == 2
    assert (
        "unknown dataset 'synthetic_styleswap'; did you mean 'synthetic_style_swap'"
        in capsys.readouterr().err
    )


def test_rm_eval_on_two_users_prints_an_interval_of_honest_width(setup, capsys):
    """Two users with the same coin-flip labels on 60 test pairs each: each user's accuracy is the
    same, so a bootstrap over the two users alone gives a zero-width interval; the two-level
    bootstrap keeps the spread of 120 pairs (binomial half-width ~0.09)."""
    import random

    from analysis.data.records import PreferencePair
    from analysis.data.synthetic import make_items, render_headline
    from analysis.data.tasks import zero_shot_prompt

    root, common = setup
    rng = random.Random(0)
    rows = []
    for j, item in enumerate(make_items(200, seed=5).values()):
        a, b = render_headline("question", item), render_headline("listicle", item)
        if rng.random() < 0.5:
            a, b = b, a
        split = "train" if j < 120 else "validation" if j < 140 else "test"
        prompt = zero_shot_prompt("news_headline", item.input)
        for u in ("A", "B"):
            rows.append({**PreferencePair(u, prompt, a, b, f"{u}/{j}", "train").to_dict(), "split": split})
    prefs = root / "two_users.jsonl"
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [a if a != common[1] else str(prefs) for a in common]
    csv = root / "two_users.csv"
    assert main(["rm", "eval", *args, "--method", "shared_bt", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "shared_bt" in out
    import pandas as pd

    row = pd.read_csv(csv).iloc[0]
    assert row["n_users"] == 2 and row["n_pairs"] == 120
    assert (row["ci_high"] - row["ci_low"]) / 2 >= 0.07, row.to_dict()


@pytest.mark.parametrize("command", ["eval", "train"])
def test_split_check_comes_before_any_model_work(setup, capsys, monkeypatch, command):
    """A file without the needed split fails on its pairs: no model is loaded, no feature computed."""
    import analysis.features.cache
    import analysis.models.loading

    def boom(*a, **k):
        raise AssertionError("model work before the split check")

    monkeypatch.setattr(analysis.features.cache, "pair_features", boom)
    monkeypatch.setattr(analysis.models.loading, "load_model", boom)
    root, common = setup
    split = "train" if command == "eval" else "test"  # eval lacks test pairs, train lacks train pairs
    rows = [
        {"user_id": 1, "prompt": f"p{i}", "chosen": "c", "rejected": "r", "split": split} for i in range(4)
    ]
    prefs = root / f"only_{split}.jsonl"
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [a if a != common[1] else str(prefs) for a in common]
    assert main(["rm", command, *args, "--method", "shared_bt"]) == 2
    err = capsys.readouterr().err
    missing = "test" if command == "eval" else "train"
    assert f"error: {prefs}: dataset 'only_{split}' has no {missing} pairs" in err and "Traceback" not in err
