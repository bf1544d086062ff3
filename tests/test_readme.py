"""The README's "Use it from Python" example runs as written, on a small preference file."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    section = README.read_text().split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_example_is_short():
    lines = [x for x in _example().splitlines() if x.strip()]
    assert len(lines) <= 15, len(lines)


@pytest.mark.embedded
def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    from analysis.data.preferences import write_preferences
    from analysis.data.synthetic import make_synthetic_users, style_swap_pairs

    pairs = style_swap_pairs(make_synthetic_users(n_users=3, n_profile=(8, 8), n_test=1, seed=0))
    assert {p.split for p in pairs} >= {"train", "test"}
    write_preferences(tmp_path / "prefs.jsonl", pairs)
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "'mean'" in out and "ci_low" in out  # RM accuracy with its interval
    assert "variant" in out and "score" in out  # the policy-accuracy summary
    assert out.strip().splitlines()[-1].strip()  # the ARGS generation (one non-empty line)
