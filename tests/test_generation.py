"""The generation runner: rows, cache, method registry, resume after a kill (analysis.generation.runner)."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.data.records import DataError
from analysis.data.synthetic import make_synthetic_users
from analysis.data.tasks import zero_shot_prompt
from analysis.decoding.base import GenerationConfig, generate_greedy
from analysis.generation.icl import ICLConfig, build_icl_prompt
from analysis.generation.methods import METHODS, MethodSpec, register_method
from analysis.generation.runner import read_rows, run_generations
from analysis.models.tokens import render_prompt

ROOT = Path(__file__).resolve().parents[1]

# The killed run executes this script in a subprocess; the other runs import it in-process, so
# both register the same "slow_base" method (base generation + a sleep that only the killed
# run uses, to be killable between batches; the sleep is not a parameter, so keys match).
SCRIPT = """
import sys, time
from analysis.data.synthetic import make_synthetic_users
from analysis.generation.methods import METHODS, register_method
from analysis.generation.runner import run_generations
from analysis.models.tiny import build_tiny_model

DELAY = [0.0]

def slow_base(model, tok, tasks, params):
    time.sleep(DELAY[0])
    return METHODS["base"].fn(model, tok, tasks, params)

register_method("slow_base", slow_base, defaults={}, replace=True)

def run(out, delay=0.0):
    DELAY[0] = delay
    data = make_synthetic_users(n_users=4, n_test=2, n_profile=(3, 4), seed=1)
    model, tok = build_tiny_model("llama", seed=0)
    methods = ["slow_base", "icl:k=2,max_prompt_tokens=700"]
    return run_generations(model, tok, data.tasks, methods, out, batch_size=2, max_new_tokens=6, progress=False)

if __name__ == "__main__":
    run(sys.argv[1], float(sys.argv[2]))
"""
N_ROWS = 16  # 4 users x 2 test items x 2 methods


@pytest.fixture(scope="module")
def data():
    return make_synthetic_users(n_users=3, n_test=2, n_profile=(3, 5), seed=0)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "gen_script.py"
    path.write_text(SCRIPT)
    return path


def test_rows_hold_prompt_text_and_reference(tiny_lm, data, tmp_path):
    model, tok = tiny_lm
    out = tmp_path / "gen.jsonl"
    rows = run_generations(
        model, tok, data.tasks, ["base", "icl:k=2"], out, max_new_tokens=6, batch_size=4, progress=False
    )
    assert len(rows) == 12 and read_rows(out) == rows
    assert [r["method"] for r in rows] == ["base"] * 6 + ["icl"] * 6
    t = data.tasks[0]
    base, icl = rows[0], rows[6]
    assert base["prompt"] == render_prompt(tok, zero_shot_prompt("news_headline", t.test_input))
    assert (
        base["text"]
        == generate_greedy(
            model, tok, [zero_shot_prompt("news_headline", t.test_input)], GenerationConfig(max_new_tokens=6)
        )[0]
    )
    assert (base["user_id"], base["test_id"], base["reference"]) == (t.user_id, t.test_id, t.test_output)
    assert base["params"] == {"max_new_tokens": 6} and base["model"] == "tiny-llama-seed0"
    expected = build_icl_prompt(tok, "news_headline", t, ICLConfig(k=2))
    assert icl["prompt"] == expected.text and icl["info"]["example_ids"] == expected.example_ids
    assert icl["params"]["rendering"] == "chat_turns" and icl["params"]["k"] == 2
    assert (
        icl["text"] == generate_greedy(model, tok, [expected.messages], GenerationConfig(max_new_tokens=6))[0]
    )
    assert len({r["key"] for r in rows}) == 12


def test_rerun_skips_finished_work_and_new_params_add_rows(tiny_lm, data, tmp_path):
    model, tok = tiny_lm
    calls = []

    def counting(model, tok, tasks, params):
        calls.append(len(tasks))
        return [{"text": f"headline {params['w']}", "reward": [1.5, 2.0]} for _ in tasks]

    register_method("counting", counting, defaults={"w": 1.0}, replace=True)
    try:
        out = tmp_path / "gen.jsonl"
        first = run_generations(model, tok, data.tasks, ["counting"], out, batch_size=4, progress=False)
        assert calls == [4, 2] and first[0]["info"] == {"reward": [1.5, 2.0]}
        before = out.read_bytes()
        again = run_generations(model, tok, data.tasks, ["counting"], out, batch_size=4, progress=False)
        assert calls == [4, 2] and again == first and out.read_bytes() == before
        more = run_generations(
            model, tok, data.tasks, ["counting", MethodSpec("counting", {"w": 2.0})], out, progress=False
        )
        assert calls == [4, 2, 6] and len(read_rows(out)) == 12
        assert [r["text"] for r in more[6:]] == ["headline 2.0"] * 6
        # a run for only the new setting keeps the other cached rows in the file, after its own
        only = run_generations(model, tok, data.tasks, ["counting:w=2.0"], out, progress=False)
        assert calls == [4, 2, 6] and [r["key"] for r in read_rows(out)][:6] == [r["key"] for r in only]
    finally:
        METHODS.pop("counting", None)


def test_registry_errors(tiny_lm, data, tmp_path):
    model, tok = tiny_lm
    with pytest.raises(DataError, match="unknown generation method 'icll'; did you mean 'icl'"):
        run_generations(model, tok, data.tasks, ["icll"], tmp_path / "g.jsonl", progress=False)
    with pytest.raises(
        DataError, match="method 'icl': unknown parameter 'retriver'; did you mean 'retriever'"
    ):
        run_generations(model, tok, data.tasks, ["icl:retriver=bm25"], tmp_path / "g.jsonl", progress=False)
    with pytest.raises(ValueError, match="already registered"):
        register_method("base", lambda *a: [])
    assert MethodSpec.parse("icl:k=4,retriever=random") == MethodSpec("icl", {"k": 4, "retriever": "random"})


def test_torn_last_line_resume_gives_identical_file(script, tmp_path):
    run = runpy.run_path(str(script))["run"]
    clean, resumed = tmp_path / "clean.jsonl", tmp_path / "resumed.jsonl"
    run(clean)
    lines = clean.read_bytes().splitlines(keepends=True)
    assert len(lines) == N_ROWS
    resumed.write_bytes(b"".join(lines[:5]) + lines[5][: len(lines[5]) // 2])  # killed mid-line
    assert len(read_rows(resumed)) == 5
    run(resumed)
    assert resumed.read_bytes() == clean.read_bytes()
    # a duplicated row (two runners without the lock, a manual concat) is written once
    resumed.write_bytes(clean.read_bytes() + lines[3])
    run(resumed)
    assert resumed.read_bytes() == clean.read_bytes()
    # a corrupt line that is not the last one is an error, not silently dropped
    resumed.write_bytes(b"".join(lines[:3]) + b"{not json\n" + b"".join(lines[3:]))
    with pytest.raises(DataError, match="line 4"):
        read_rows(resumed)


def test_kill_halfway_and_rerun_yields_identical_jsonl(script, tmp_path):
    run = runpy.run_path(str(script))["run"]
    clean, killed = tmp_path / "clean.jsonl", tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0.4"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if killed.exists() and killed.read_bytes().count(b"\n") >= 4:  # two batches appended
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    written = len(read_rows(killed))
    assert 4 <= written < N_ROWS, f"the run was not killed halfway ({written} rows)"
    run(clean)
    rows = run(killed)
    assert len(rows) == N_ROWS
    assert killed.read_bytes() == clean.read_bytes()
    assert len({json.loads(x)["key"] for x in killed.read_bytes().splitlines()}) == N_ROWS


def test_rgd_hook_args_w0_equals_base_and_rewards_are_recorded(tiny_lm, data, tmp_path):
    from analysis.data.synthetic import oracle_reward
    from analysis.generation.methods import register_rgd_method
    from analysis.rewards.oracle import OracleRM

    model, tok = tiny_lm
    rm = OracleRM.from_synthetic(data)
    register_rgd_method("args_oracle", rm, rm_id="oracle", replace=True)
    register_rgd_method("bon_oracle", rm, rm_id="oracle", decoder="best_of_n", n=3, replace=True)
    try:
        methods = ["base", "args_oracle:w=0", "args_oracle:w=1.0", "bon_oracle"]
        rows = run_generations(
            model, tok, data.tasks, methods, tmp_path / "g.jsonl", max_new_tokens=6, progress=False
        )
        base = [r["text"] for r in rows if r["method"] == "base"]
        args0 = [r["text"] for r in rows if r["method"] == "args_oracle" and r["params"]["w"] == 0]
        assert args0 == base  # ARGS with w = 0 is greedy decoding of the base policy
        bon = [r for r in rows if r["method"] == "bon_oracle"]
        assert bon[0]["params"]["n"] == 3 and bon[0]["params"]["rm"] == "oracle"
        assert bon[0]["params"]["max_new_tokens"] == 6
        for r in bon:
            assert r["reward"] == pytest.approx(oracle_reward(data.styles[r["user_id"]], r["text"]), abs=1e-6)
    finally:
        METHODS.pop("args_oracle", None)
        METHODS.pop("bon_oracle", None)


def test_cli_generate_then_evaluate_round_trip(tmp_path, capsys):
    """`generate --input` passes `reference` through; `evaluate` then scores the file (issue 10)."""
    import pandas as pd

    from analysis.cli import main
    from analysis.generation.runner import ROW_FIELDS
    from analysis.metrics.rouge import rouge_scores
    from analysis.models.loading import load_model
    from analysis.models.tiny import build_tiny_model

    model, tok = build_tiny_model("llama", seed=3)
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    model, tok = load_model(str(tmp_path / "lm"), dtype="float32")  # the CLI's `auto`: float32 on CPU
    recs = [
        {"user_id": "u1", "prompt": "city council vote", "reference": "council votes on budget"},
        {"user_id": "u1", "prompt": "river bridge opens", "reference": "new bridge opens"},
        {"user_id": "u2", "prompt": "school wins prize", "reference": "school wins science prize"},
    ]
    inp, gen, csv = tmp_path / "in.jsonl", tmp_path / "g.jsonl", tmp_path / "table.csv"
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    argv = ["generate", "--method", "base", "--model", str(tmp_path / "lm"), "--input", str(inp)]
    assert main([*argv, "--out", str(gen), "--max-new-tokens", "5"]) == 0
    rows = read_rows(gen)
    assert [r["reference"] for r in rows] == [r["reference"] for r in recs]
    assert [r["test_id"] for r in rows] == ["u1:0", "u1:1", "u2:0"]  # the one test_id rule
    assert all(set(ROW_FIELDS) <= set(r) and r["seconds"] >= 0 for r in rows)
    expected = generate_greedy(model, tok, [r["prompt"] for r in recs], GenerationConfig(max_new_tokens=5))
    assert [r["text"] for r in rows] == expected
    assert rows[0]["prompt"] == render_prompt(tok, "city council vote") and rows[0]["task"] is None
    capsys.readouterr()

    assert main(["evaluate", "--generations", str(gen), "--csv", str(csv), "--n-boot", "50"]) == 0
    assert "ROUGE-1" in capsys.readouterr().out
    table = pd.read_csv(csv)
    assert table["method"].tolist() == ["base"] and table["users"].tolist() == [2]
    r1 = rouge_scores(expected, [r["reference"] for r in recs], use_stemmer=True)["rouge1"]
    assert table["rouge1"].iloc[0] == pytest.approx((((r1[0] + r1[1]) / 2) + r1[2]) / 2)

    no_ref = tmp_path / "noref.jsonl"
    no_ref.write_text(
        "".join(json.dumps({"user_id": r["user_id"], "prompt": r["prompt"]}) + "\n" for r in recs)
    )
    assert main([*argv[:-1], str(no_ref), "--out", str(tmp_path / "g2.jsonl"), "--max-new-tokens", "5"]) == 0
    assert main(["evaluate", "--generations", str(tmp_path / "g2.jsonl")]) == 2
    assert "reference" in capsys.readouterr().err


def test_chunks_are_length_bucketed_and_the_file_keeps_job_order(tiny_lm, tmp_path):
    """Prompts of one setting spanning several chunks are sorted by length into the chunks;
    rows still come back (and are stored) in job order."""
    from analysis.generation.methods import PromptTask

    model, tok = tiny_lm
    words = [5, 1, 4, 2, 6, 3]
    tasks = [PromptTask("u", " ".join(["word"] * n)) for n in words]
    seen = []

    def lengths(model, tok, batch, params):
        seen.append([len(t.test_input.split()) for t in batch])
        return [t.test_input for t in batch]

    register_method("lengths", lengths, defaults={}, replace=True)
    try:
        out = tmp_path / "g.jsonl"
        rows = run_generations(model, tok, tasks, ["lengths"], out, task=None, batch_size=2, progress=False)
        assert seen == [[1, 2], [3, 4], [5, 6]]
        assert [len(r["text"].split()) for r in rows] == words
        assert [len(r["text"].split()) for r in read_rows(out)] == words
        seen.clear()
        run_generations(
            model, tok, tasks, ["lengths"], tmp_path / "h.jsonl", task=None, batch_size=6, progress=False
        )
        assert seen == [words]  # one chunk: the method gets the tasks in their order
    finally:
        METHODS.pop("lengths", None)
