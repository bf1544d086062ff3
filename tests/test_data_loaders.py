"""LaMP and News Category loaders on fixtures written in the official schemas, bad input, real file."""

from __future__ import annotations

import json

import pytest

from analysis.data import load_tasks
from analysis.data.lamp import load_lamp
from analysis.data.news_category import author_key, load_news_category, split_authors
from analysis.data.records import DataError

P4 = "Generate a headline for the following article: "


def write_lamp4(folder, split="dev", *, questions=None, golds=None, task="LaMP_4"):
    folder.mkdir(parents=True, exist_ok=True)
    if questions is None:
        questions = [
            {
                "id": "310",
                "input": P4 + "The council approved the bridge.",
                "profile": [
                    {"id": "3100", "text": "Rain fell all week.", "title": "Week Of Rain"},
                    {"id": "3101", "text": "The team won the cup.", "title": "Cup Win"},
                ],
            },
            {
                "id": "311",
                "input": P4 + "A bakery opened downtown.",
                "profile": [{"id": "3110", "text": "Schools closed early.", "title": "Early Closing"}],
            },
        ]
    if golds is None:
        golds = [{"id": "310", "output": "Bridge Approved"}, {"id": "311", "output": "New Bakery"}]
    (folder / f"{split}_questions.json").write_text(json.dumps(questions), encoding="utf-8")
    (folder / f"{split}_outputs.json").write_text(
        json.dumps({"task": task, "golds": golds}), encoding="utf-8"
    )
    return folder


def test_lamp4_known_answer(tmp_path):
    write_lamp4(tmp_path)
    tasks, card = load_lamp(tmp_path)
    assert [t.user_id for t in tasks] == ["310", "311"]
    t = tasks[0]
    assert t.test_input == "The council approved the bridge." and t.test_output == "Bridge Approved"
    assert [(p.input, p.output, p.item_id) for p in t.profile] == [
        ("Rain fell all week.", "Week Of Rain", "3100"),
        ("The team won the cup.", "Cup Win", "3101"),
    ]
    assert card.source == "lamp" and card.task == "news_headline" and card.n_users == 2
    assert card.per_user == {"310": 2, "311": 1}
    # same via the questions file path and via load_tasks
    tasks2, _ = load_tasks("lamp", tmp_path / "dev_questions.json")
    assert [x.to_dict() for x in tasks2] == [x.to_dict() for x in tasks]


def test_lamp5_and_lamp7_profiles_and_split_choice(tmp_path):
    q5 = [
        {
            "id": 1,
            "input": "Generate a title for the following abstract of a paper: We study X.",
            "profile": [{"id": "a", "title": "On Y", "abstract": "We study Y.", "date": "2019-01-01"}],
        }
    ]
    write_lamp4(tmp_path / "l5", "train", questions=q5, golds=[{"id": "1", "output": "On X"}], task="LaMP_5")
    tasks, card = load_lamp(tmp_path / "l5", split="train")
    assert card.task == "scholarly_title"
    p = tasks[0].profile[0]
    assert (p.input, p.output, p.date) == ("We study Y.", "On Y", "2019-01-01")
    assert tasks[0].test_input == "We study X."

    q7 = [
        {
            "id": "7",
            "input": "Paraphrase the following tweet without any explanation before or after it: so tired",
            "profile": [{"id": "t1", "text": "coffee first"}],
        }
    ]
    write_lamp4(
        tmp_path / "l7", questions=q7, golds=[{"id": "7", "output": "exhausted today"}], task="LaMP_7"
    )
    tasks, card = load_lamp(tmp_path / "l7")
    assert (
        card.task == "tweet_paraphrase"
        and tasks[0].profile[0].input == tasks[0].profile[0].output == "coffee first"
    )
    # task inferred from profile fields when the outputs file has no task name
    tasks, card = load_lamp(tmp_path / "l5", split="train", task=None)
    assert card.task == "scholarly_title"


@pytest.mark.parametrize(
    "case, expect",
    [
        ("malformed", ["dev_questions.json", "line 1", "malformed JSON"]),
        ("missing_field", ["dev_questions.json", "record 311 profile[0]", "field 'title'", "missing field"]),
        ("gold_without_question", ["dev_outputs.json", "record 999", "gold has no question"]),
        ("question_without_gold", ["dev_outputs.json", "record 311", "question has no gold"]),
        ("empty_profile", ["dev_questions.json", "record 311", "field 'profile'", "empty profile"]),
        ("empty_string", ["dev_questions.json", "record 310 profile[1]", "field 'text'", "empty string"]),
        ("not_utf8", ["dev_questions.json", "not valid UTF-8"]),
        ("no_questions", ["dev_questions.json", "no questions in file"]),
    ],
)
def test_lamp_bad_input(tmp_path, case, expect):
    write_lamp4(tmp_path)
    q = json.loads((tmp_path / "dev_questions.json").read_text())
    o = json.loads((tmp_path / "dev_outputs.json").read_text())
    if case == "malformed":
        (tmp_path / "dev_questions.json").write_text('[{"id": "310",, }]')
    elif case == "missing_field":
        del q[1]["profile"][0]["title"]
    elif case == "gold_without_question":
        o["golds"].append({"id": "999", "output": "Orphan"})
    elif case == "question_without_gold":
        o["golds"].pop()
    elif case == "empty_profile":
        q[1]["profile"] = []
    elif case == "empty_string":
        q[0]["profile"][1]["text"] = "   "
    elif case == "no_questions":
        q = []
    elif case == "not_utf8":
        (tmp_path / "dev_questions.json").write_bytes(b'[{"id": "310", "input": "caf\xe9"}]')
    if case not in ("malformed", "not_utf8"):
        (tmp_path / "dev_questions.json").write_text(json.dumps(q))
        (tmp_path / "dev_outputs.json").write_text(json.dumps(o))
    with pytest.raises(DataError) as err:
        load_lamp(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    for part in expect:
        assert part in msg, msg


# ----------------------------------------------------------------------------- News Category
def nc(headline, desc, authors, date, link=None):
    return {
        "link": link or f"https://x/{headline.replace(' ', '-')}",
        "headline": headline,
        "category": "U.S. NEWS",
        "short_description": desc,
        "authors": authors,
        "date": date,
    }


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def news_fixture(tmp_path):
    rows = [
        nc("A4", "d a4", "Ann Lee", "2022-03-04"),
        nc("B1", "d b1", "BOB KING, AP", "2022-03-01"),
        nc("A3", "d a3", "Ann Lee", "2022-03-03"),
        nc("Joint", "d joint", "Ann Lee and Bob King, AP", "2022-03-05"),
        nc("A2", "d a2", "ANN LEE", "2022-03-02"),
        nc("B2", "d b2", "Bob King, AP", "2022-03-02"),
        nc("Anon", "d anon", "", "2022-03-06"),
        nc("A1", "d a1", "Ann Lée", "2022-03-01"),
        nc("B3", "d b3", "By Bob King", "2022-03-03"),
    ]
    return write_jsonl(tmp_path / "news.jsonl", rows)


def test_split_authors_and_keys():
    assert split_authors("Eric Tucker and Rahim Faiez, AP") == ["Eric Tucker", "Rahim Faiez"]
    assert split_authors("Elise Foley, Sara Boboltz, and Paul Blumenthal") == [
        "Elise Foley",
        "Sara Boboltz",
        "Paul Blumenthal",
    ]
    assert split_authors("By SCOTT BAUER, AP") == ["SCOTT BAUER"]
    assert split_authors("PETER SMITH and DEEPA BHARATH, AP NEWS") == ["PETER SMITH", "DEEPA BHARATH"]
    assert split_authors("  ") == []
    assert author_key("DÁNICA COTO") == author_key("Danica  Coto")


def test_news_category_grouping_known_answer(tmp_path):
    path = news_fixture(tmp_path)
    tasks, card = load_news_category(path, min_profile=2)
    by = {t.user_id: t for t in tasks}
    assert set(by) == {"Ann Lee", "Bob King"}  # most frequent spelling per case/accent-folded key
    ann = by["Ann Lee"]
    assert (ann.test_input, ann.test_output, ann.test_date) == (
        "d a4",
        "A4",
        "2022-03-04",
    )  # newest single-author
    assert [p.output for p in ann.profile] == ["A1", "A2", "A3"]  # oldest first
    assert [p.output for p in by["Bob King"].profile] == ["B1", "B2"]
    assert "1 without author dropped" in card.notes and "1 multi-author (drop)" in card.notes
    assert card.per_user == {"Ann Lee": 3, "Bob King": 2}

    # multi-author policies
    tasks, _ = load_news_category(path, min_profile=2, multi_author="each")
    by = {t.user_id: t for t in tasks}
    assert by["Ann Lee"].test_output == "Joint" and by["Bob King"].test_output == "Joint"
    tasks, _ = load_news_category(path, min_profile=2, multi_author="first")
    by = {t.user_id: t for t in tasks}
    assert by["Ann Lee"].test_output == "Joint" and by["Bob King"].test_output == "B3"
    # min_profile filters users
    tasks, _ = load_news_category(path, min_profile=3)
    assert [t.user_id for t in tasks] == ["Ann Lee"]
    with pytest.raises(ValueError, match="min_profile"):
        load_news_category(path, min_profile=0)


def test_news_category_same_date_tie_goes_to_earliest_line(tmp_path):
    rows = [
        nc("First", "d1", "Cy", "2022-01-02"),
        nc("Second", "d2", "Cy", "2022-01-02"),
        nc("Old", "d0", "Cy", "2022-01-01"),
    ]
    tasks, _ = load_news_category(write_jsonl(tmp_path / "n.jsonl", rows), min_profile=1)
    assert tasks[0].test_output == "First" and [p.output for p in tasks[0].profile] == ["Old", "Second"]


@pytest.mark.parametrize(
    "case, expect",
    [
        ("malformed", ["line 2", "malformed JSON"]),
        ("missing", ["line 2", "field 'headline'", "missing field"]),
        ("empty", ["line 2", "field 'short_description'", "empty string"]),
        ("bad_date", ["line 2", "field 'date'", "ISO date"]),
        ("not_utf8", ["line 2", "not valid UTF-8"]),
        ("not_object", ["line 2", "expected a JSON object"]),
    ],
)
def test_news_category_bad_input(tmp_path, case, expect):
    good = json.dumps(nc("H", "d", "Ann", "2022-01-01"))
    bad = {
        "malformed": b'{"headline": "H", ',
        "missing": json.dumps(
            {k: v for k, v in nc("H", "d", "Ann", "2022-01-01").items() if k != "headline"}
        ).encode(),
        "empty": json.dumps(nc("H", "", "Ann", "2022-01-01")).encode(),
        "bad_date": json.dumps(nc("H", "d", "Ann", "March 3")).encode(),
        "not_utf8": b'{"headline": "caf\xe9"}',
        "not_object": b"[1, 2]",
    }[case]
    path = tmp_path / "news.jsonl"
    path.write_bytes(good.encode() + b"\n" + bad + b"\n")
    with pytest.raises(DataError) as err:
        load_news_category(path, min_profile=1)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    for part in expect:
        assert part in msg, msg


def test_news_category_empty_file_and_no_eligible_author(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty.jsonl: no records in file"):
        load_news_category(tmp_path / "empty.jsonl")
    rows = [nc("H1", "d1", "Ann", "2022-01-01"), nc("H2", "d2", "Ann", "2022-01-02")]
    with pytest.raises(DataError, match=r"no author has >= 5 articles \(1 held out \+ 4 profile items\)"):
        load_news_category(write_jsonl(tmp_path / "n.jsonl", rows))
    # n_test raises the bar: 2 articles are enough for n_test=1, min_profile=1 but not for n_test=2
    assert len(load_news_category(tmp_path / "n.jsonl", min_profile=1)[0]) == 1
    with pytest.raises(DataError) as err:
        load_news_category(tmp_path / "n.jsonl", min_profile=1, n_test=2)
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "n.jsonl")) and "no author has >= 3 articles (2 held out + 1" in msg
    with pytest.raises(ValueError, match="n_test must be >= 1"):
        load_news_category(tmp_path / "n.jsonl", min_profile=1, n_test=0)


def test_news_category_three_targets_known_answer(tmp_path):
    """n_test=3: an author's 3 newest articles are the targets (newest first; on equal dates the
    earlier line is the newer), and all three tasks share the profile of the 4 older articles."""
    rows = [
        nc("P1", "d p1", "Dee Fox", "2022-05-01", link="p1"),
        nc("T2", "d t2", "Dee Fox", "2022-05-09", link="t2"),  # line 2: newer than t3 (same date)
        nc("P4", "d p4", "Dee Fox", "2022-05-08", link="p4"),  # line 3: newer than p3 (same date)
        nc("T1", "d t1", "Dee Fox", "2022-05-10", link="t1"),
        nc("T3", "d t3", "Dee Fox", "2022-05-09", link="t3"),  # line 5
        nc("P3", "d p3", "Dee Fox", "2022-05-08", link="p3"),  # line 6: older than p4, newest profile item
        nc("P2", "d p2", "Dee Fox", "2022-05-02", link="p2"),
        nc("E1", "d e1", "Eve Ash", "2022-05-03", link="e1"),  # 6 articles: one short of 3 + 4
        nc("E2", "d e2", "Eve Ash", "2022-05-04", link="e2"),
        nc("E3", "d e3", "Eve Ash", "2022-05-05", link="e3"),
        nc("E4", "d e4", "Eve Ash", "2022-05-06", link="e4"),
        nc("E5", "d e5", "Eve Ash", "2022-05-07", link="e5"),
        nc("E6", "d e6", "Eve Ash", "2022-05-11", link="e6"),
    ]
    path = write_jsonl(tmp_path / "n.jsonl", rows)
    tasks, card = load_news_category(path, min_profile=4, n_test=3)
    assert [(t.user_id, t.test_id, t.test_output, t.test_date) for t in tasks] == [
        ("Dee Fox", "t1", "T1", "2022-05-10"),
        ("Dee Fox", "t2", "T2", "2022-05-09"),
        ("Dee Fox", "t3", "T3", "2022-05-09"),
    ]
    for t in tasks:  # one shared profile, oldest first, no target in it
        assert [p.item_id for p in t.profile] == ["p1", "p2", "p3", "p4"]
    assert (card.n_users, card.n_items, card.per_user) == (1, 3, {"Dee Fox": 4})
    assert "3 newest article(s) of each user held out" in card.notes
    # with min_profile=3 Eve Ash (6 articles) qualifies too: targets e6, e5, e4; profile e1-e3
    tasks, card = load_news_category(path, min_profile=3, n_test=3)
    eve = [t for t in tasks if t.user_id == "Eve Ash"]
    assert [t.test_id for t in eve] == ["e6", "e5", "e4"]
    assert all([p.item_id for p in t.profile] == ["e1", "e2", "e3"] for t in eve)
    assert (card.n_users, card.n_items) == (2, 6)
    # the default n_test=1 keeps the single newest article (the profile then holds t2, t3 too)
    tasks, _ = load_news_category(path, min_profile=4)
    dee = [t for t in tasks if t.user_id == "Dee Fox"]
    assert [t.test_id for t in dee] == ["t1"]
    assert [p.item_id for p in dee[0].profile] == ["p1", "p2", "p3", "p4", "t3", "t2"]


def test_news_category_skip_empty(tmp_path):
    rows = [
        nc("H1", "d1", "Ann", "2022-01-01"),
        nc("H2", "", "Ann", "2022-01-02"),
        nc("H3", "d3", "Ann", "2022-01-03"),
    ]
    tasks, card = load_news_category(write_jsonl(tmp_path / "n.jsonl", rows), min_profile=1, skip_empty=True)
    assert [p.output for p in tasks[0].profile] == ["H1"] and "1 with an empty" in card.notes


def test_news_category_real_subset():
    """The real 1,172-record subset (vendored in the package, so the test always runs): 44 users
    at the defaults (min_profile=4, multi_author='drop')."""
    from analysis.data.vendored import news_category_path

    tasks, card = load_news_category(news_category_path())
    assert card.n_users == len(tasks) == 44
    assert "1172 records; 124 without author dropped; 114 multi-author (drop)" in card.notes
    assert min(len(t.profile) for t in tasks) >= 4
    assert max(card.per_user.values()) == 75  # Mary Papenfuss: 76 single-author articles, 1 held out
    assert len({t.user_id for t in tasks}) == 44


def test_news_category_real_subset_three_targets_never_leak():
    """The embedded preset's real users: n_test=3, min_profile=3 on the vendored file gives the 34
    authors with >= 6 articles and 102 targets; no target is a profile item of any task or the
    chosen text of any Pref-LaMP pair."""
    from analysis.data.preflamp import build_pref_lamp
    from analysis.data.tasks import zero_shot_prompt
    from analysis.data.vendored import news_category_path

    tasks, card = load_news_category(news_category_path(), min_profile=3, n_test=3)
    users = {t.user_id for t in tasks}
    assert (len(users), len(tasks), card.n_users, card.n_items) == (34, 102, 34, 102)
    assert min(len(t.profile) for t in tasks) >= 3
    assert sorted(card.per_user.values())[:5] == [3, 3, 3, 3, 3]  # the five 6-article authors
    by_user: dict = {}
    for t in tasks:
        by_user.setdefault(t.user_id, []).append(t)
    assert all(len(v) == 3 for v in by_user.values())
    for ts in by_user.values():  # one shared profile per user, older than every target
        assert all(t.profile == ts[0].profile for t in ts)
        assert max(p.date for p in ts[0].profile) <= min(t.test_date for t in ts)
        assert len({t.test_id for t in ts}) == 3  # generation rows are keyed by (user_id, test_id)
    test_ids = {t.test_id for t in tasks}
    assert not test_ids & {p.item_id for t in tasks for p in t.profile}
    pairs, _ = build_pref_lamp(tasks, task="news_headline", negatives="other_user", seed=0, test_frac=0.4)
    held_out = {(t.user_id, t.test_output) for t in tasks}
    assert pairs and not held_out & {(p.user_id, p.chosen) for p in pairs}
    assert not {t.test_output for t in tasks} & {p.chosen for p in pairs}
    assert not {f"{t.user_id}/{t.test_id}" for t in tasks} & {p.pair_id for p in pairs}
    assert not {zero_shot_prompt("news_headline", t.test_input) for t in tasks} & {p.prompt for p in pairs}
