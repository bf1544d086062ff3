"""``python -m analysis data summary`` through ``analysis.cli.main``: cards, --out, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _news(tmp_path):
    rows = []
    for a, n in (("Ann Lee", 4), ("Bob King", 3)):
        for i in range(n):
            rows.append(
                {
                    "headline": f"{a} headline {i}",
                    "short_description": f"{a.split()[0]} story {i} about town",
                    "authors": a,
                    "date": f"2022-01-0{i + 1}",
                    "category": "X",
                    "link": f"https://x/{a}/{i}",
                }
            )
    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_summary_news_category_and_out(tmp_path, capsys):
    path = _news(tmp_path)
    assert (
        main(["data", "summary", "--source", "news_category", "--path", str(path), "--min-profile", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert "users:     2" in out and "profile items per user: min 2  median 2.5  max 3" in out
    target = tmp_path / "out" / "pairs.jsonl"
    rc = main(
        [
            "data",
            "summary",
            "--source",
            "news_category",
            "--path",
            str(path),
            "--min-profile",
            "2",
            "--out",
            str(target),
            "--json",
        ]
    )
    assert rc == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["source"] for c in cards] == ["news_category", "pref_lamp"] and cards[1]["n_pairs"] == 5
    rows = [json.loads(x) for x in target.read_text().splitlines()]
    assert len(rows) == 5 and {r["user_id"] for r in rows} == {"Ann Lee", "Bob King"}
    assert all(
        r["rejected"].startswith("Bob") for r in rows if r["user_id"] == "Ann Lee"
    )  # other user's output


def test_summary_news_category_n_test(tmp_path, capsys):
    """--n-test 2: each author's 2 newest articles are targets (items), the older ones the profile."""
    path = _news(tmp_path)
    target = tmp_path / "pairs.jsonl"
    args = ["data", "summary", "--source", "news_category", "--path", str(path), "--min-profile", "1"]
    assert main([*args, "--n-test", "2", "--out", str(target), "--json"]) == 0
    card, pcard = json.loads(capsys.readouterr().out)
    assert (card["n_users"], card["n_items"], card["per_user"]) == (2, 4, {"Ann Lee": 2, "Bob King": 1})
    rows = [json.loads(x) for x in target.read_text().splitlines()]
    assert pcard["n_pairs"] == len(rows) == 3  # only the older articles make pairs
    assert sorted(r["chosen"] for r in rows) == [
        "Ann Lee headline 0",
        "Ann Lee headline 1",
        "Bob King headline 0",
    ]
    assert main([*args, "--n-test", "3"]) == 0  # Bob King (3 articles) no longer qualifies
    assert "users:     1" in capsys.readouterr().out


def test_summary_synthetic_and_preferences(tmp_path, capsys):
    target = tmp_path / "syn.jsonl"
    assert main(["data", "summary", "--source", "synthetic", "--out", str(target)]) == 0
    out = capsys.readouterr().out
    assert "[SYNTHETIC]" in out and "users:     6" in out
    assert main(["data", "summary", "--source", "preferences", "--path", str(target)]) == 0
    out = capsys.readouterr().out
    n = len(target.read_text().splitlines())
    assert (
        f"pairs: {n}" in out and "pairs per user: min 10" in out
    )  # held-out pairs repeating a training text dropped


@pytest.mark.parametrize(
    "content, expect",
    [
        (
            b'{"headline": "H", "short_description": "d", "authors": "A", "date": "2022-01-01"}\n{bad json\n',
            "line 2",
        ),
        (b'{"headline": "H", "short_description": "d", "authors": "A"}\n', "field 'date'"),
        (
            b'{"headline": "", "short_description": "d", "authors": "A", "date": "2022-01-01"}\n',
            "field 'headline'",
        ),
        (
            b'{"headline": "caf\xe9", "short_description": "d", "authors": "A", "date": "2022-01-01"}\n',
            "not valid UTF-8",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_no_output(tmp_path, capsys, content, expect):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    target = tmp_path / "never.jsonl"
    rc = main(["data", "summary", "--source", "news_category", "--path", str(path), "--out", str(target)])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and expect in lines[0]
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]  # no partial or temp output


def test_lamp_gold_without_question_via_subprocess(tmp_path):
    (tmp_path / "dev_questions.json").write_text(
        json.dumps(
            [
                {
                    "id": "1",
                    "input": "Generate a headline for the following article: x",
                    "profile": [{"id": "p", "text": "t", "title": "T"}],
                }
            ]
        )
    )
    (tmp_path / "dev_outputs.json").write_text(
        json.dumps({"task": "LaMP_4", "golds": [{"id": "1", "output": "X"}, {"id": "2", "output": "Y"}]})
    )
    res = subprocess.run(
        [sys.executable, "-m", "analysis", "data", "summary", "--source", "lamp", "--path", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert res.returncode == 2 and res.stdout == ""
    assert (
        res.stderr.strip()
        == f"error: {tmp_path / 'dev_outputs.json'}, record 2, field 'id': gold has no question in dev_questions.json (1 such golds)"
    )


def test_base_negatives_need_a_model(tmp_path, capsys):
    rc = main(
        [
            "data",
            "summary",
            "--source",
            "synthetic",
            "--out",
            str(tmp_path / "x.jsonl"),
            "--negatives",
            "base",
        ]
    )
    assert rc == 2 and "needs --model" in capsys.readouterr().err and not (tmp_path / "x.jsonl").exists()


def test_base_negatives_with_a_tiny_model_folder(tmp_path, capsys):
    """--negatives base loads the policy from a folder and caches its generations."""
    from analysis.models.tiny import build_tiny_model

    model, tok = build_tiny_model("llama", seed=0)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    cache, target = tmp_path / "gens.jsonl", tmp_path / "pairs.jsonl"
    args = [
        "data",
        "summary",
        "--source",
        "synthetic",
        "--out",
        str(target),
        "--negatives",
        "base",
        "--model",
        str(tmp_path / "tiny"),
        "--cache",
        str(cache),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "negatives: base policy generation" in out
    from analysis.data.synthetic import make_synthetic_users

    data = make_synthetic_users(seed=0)
    n_items = len({p.item_id for t in data.tasks for p in t.profile})
    assert len({json.loads(x)["prompt"] for x in cache.read_text().splitlines()}) == n_items


@pytest.mark.parametrize("kind", ["base_sample", "icl_other"])
def test_generated_negatives_kinds_from_the_cli(tmp_path, capsys, kind):
    """Every generated kind of the studies' negatives is offered by --negatives, named in the card
    and cached under its own model id."""
    from analysis.models.tiny import build_tiny_model

    model, tok = build_tiny_model("llama", seed=0)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    cache, target = tmp_path / "gens.jsonl", tmp_path / "pairs.jsonl"
    args = ["data", "summary", "--source", "synthetic", "--out", str(target), "--negatives", kind]
    args += ["--model", str(tmp_path / "tiny"), "--cache", str(cache)]
    assert main(args) == 0
    assert f"[negatives={kind}]" in capsys.readouterr().out
    ids = {json.loads(x)["model_id"] for x in cache.read_text().splitlines()}
    assert len(ids) == 1 and kind in next(iter(ids))
    assert target.read_text().strip()
