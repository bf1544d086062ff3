"""The News Category subset vendored as package data: present, unchanged, in a built wheel and sdist,
and loaded from an installed copy of the package (not from ../shared)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from analysis.config.parse import check_runnable, load_config
from analysis.data import default_data_path, load_tasks
from analysis.data.news_category import load_news_category
from analysis.data.vendored import NEWS_CATEGORY_SUBSET, news_category_path, vendored_path

REPO = Path(__file__).resolve().parents[1]
SHA256 = "5a381cf9d7a439dcd4ebe00ac8716db290871439a396a294f5d404f7abc1a241"
MEMBER = "analysis/data/vendored/news_category_subset.jsonl"


def test_vendored_file_is_package_data_unchanged_with_attribution():
    res = files("analysis.data.vendored") / NEWS_CATEGORY_SUBSET
    assert res.is_file()
    data = res.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256
    lines = data.decode().splitlines()
    assert len(lines) == 1172
    assert set(json.loads(lines[0])) == {
        "link",
        "headline",
        "category",
        "short_description",
        "authors",
        "date",
    }
    readme = (files("analysis.data.vendored") / "README.md").read_text()
    for needle in ("CC BY 4.0", "creativecommons.org/licenses/by/4.0", "Rishabh Misra", SHA256):
        assert needle in readme
    assert news_category_path() == vendored_path() == Path(str(res))
    with pytest.raises(ValueError, match="no vendored data file 'x.jsonl'"):
        vendored_path("x.jsonl")


def test_loader_and_embedded_preset_default_to_the_vendored_subset():
    """No path: the vendored file (44 authors at min_profile=4, 34 at 5); a given path still wins."""
    tasks, card = load_news_category()
    assert card.n_users == len(tasks) == 44 and card.name == "news_category:news_category_subset"
    assert "1172 records; 124 without author dropped; 114 multi-author (drop)" in card.notes
    tasks5, _ = load_tasks("news_category", min_profile=5)
    assert len(tasks5) == 34 and min(len(t.profile) for t in tasks5) >= 5
    cfg = load_config("embedded", {"preflamp_source": "news_category"})
    assert "news_category" not in cfg.data_paths  # no path given: the vendored subset is read
    assert default_data_path("news_category") == str(news_category_path())
    check_runnable(cfg)  # the real-data path check passes with no user file
    assert default_data_path("lamp") is None
    assert load_config("paper").data_paths == {"lamp": ""}  # the paper preset still asks for LaMP


def test_a_users_own_file_is_read_the_same_way(tmp_path):
    rows = [
        {"headline": f"H{i}", "short_description": f"d{i}", "authors": "Ann Lee", "date": f"2022-01-0{i}"}
        for i in range(1, 4)
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks, _ = load_tasks("news_category", path, min_profile=2)
    assert [(t.user_id, t.test_output, len(t.profile)) for t in tasks] == [("Ann Lee", "H3", 2)]


def _build(tmp_path: Path) -> tuple[Path, Path]:
    """Wheel and sdist of a copy of the project (the checkout is left untouched)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "analysis", src / "analysis", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    for hook in ("build_wheel", "build_sdist"):  # PEP 517 hooks, one process each (as pip runs them)
        code = f"import sys; from setuptools import build_meta as b; print(b.{hook}(sys.argv[1]))"
        subprocess.run(
            [sys.executable, "-c", code, str(out)],
            cwd=src,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def test_wheel_and_sdist_ship_the_data_and_an_installed_copy_loads_it(tmp_path):
    wheel, sdist = _build(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert MEMBER in names and "analysis/data/vendored/README.md" in names
        assert hashlib.sha256(zf.read(MEMBER)).hexdigest() == SHA256
        site = tmp_path / "site"
        zf.extractall(site)  # a pure-Python wheel installs by unpacking
    with tarfile.open(sdist) as tf:
        assert any(n.endswith("/" + MEMBER) for n in tf.getnames())
    probe = (
        "import json, analysis; from analysis.data import load_tasks; "
        "from analysis.data.vendored import news_category_path; "
        "t, c = load_tasks('news_category', min_profile=5); "
        "print(json.dumps([analysis.__file__, str(news_category_path()), len(t)]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    pkg_file, data_path, n_users = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(pkg_file).is_relative_to(site) and Path(data_path).is_relative_to(site)
    assert n_users == 34


def test_preflamp_on_real_authors_with_base_negatives_generated_once(tmp_path):
    """Pref-LaMP on the vendored authors: chosen = the author's real headline, rejected = the base
    policy's headline for the same article (zero-shot prompt), generated once and then read from the cache."""
    from analysis.data.preflamp import build_pref_lamp
    from analysis.data.tasks import zero_shot_prompt

    tasks, card = load_tasks("news_category", min_profile=5)
    calls: list[str] = []

    def fake_policy(prompts: list[str]) -> list[str]:  # deterministic stand-in for the base model
        calls.extend(prompts)
        return [f"BASE {len(p)}" for p in prompts]

    cache = tmp_path / "base.jsonl"
    pairs, pcard = build_pref_lamp(
        tasks, negatives="base", generate_fn=fake_policy, cache_path=cache, model_id="m", source_card=card
    )
    n_items = sum(len(t.profile) for t in tasks)
    assert len(calls) == len(set(calls)) == len({p.prompt for p in pairs}) and len(pairs) == n_items
    by_id = {f"{t.user_id}/{it.item_id}": (t, it) for t in tasks for it in t.profile}
    for p in pairs:
        t, it = by_id[p.pair_id]
        assert p.user_id == t.user_id and p.chosen == it.output  # the author's real headline
        assert p.prompt == zero_shot_prompt("news_headline", it.input)
        assert p.rejected == f"BASE {len(p.prompt)}"  # the base policy's headline for that article
    assert {p.split for p in pairs} == {"train", "val", "test"} and not pcard.synthetic
    targets = {zero_shot_prompt("news_headline", t.test_input) for t in tasks}
    assert not targets & {p.prompt for p in pairs}  # the held-out generation targets never enter a pair
    again, _ = build_pref_lamp(tasks, negatives="base", generate_fn=None, cache_path=cache, model_id="m")
    assert again == pairs  # read back from the cache, no generation
