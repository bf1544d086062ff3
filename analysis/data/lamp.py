"""Loader for the official LaMP files (Salemi et al. 2023): LaMP-4, LaMP-5 and LaMP-7.

Layout of a download (user-based split), for ``split`` in ``train`` / ``dev``::

    <dir>/{split}_questions.json   [{"id", "input", "profile": [{...}, ...]}, ...]
    <dir>/{split}_outputs.json     {"task": "LaMP_4", "golds": [{"id", "output"}, ...]}

Profile item schemas: LaMP-4 ``{id, text, title}`` (article -> headline), LaMP-5
``{id, title, abstract}`` (abstract -> title), LaMP-7 ``{id, text}`` (the user's own tweets: no
paired output exists, so ``input == output == text``). An optional ``date`` is kept.

In the user-based split each question belongs to one user, so each question becomes one
:class:`UserTask` with ``user_id = test_id = question id``. LaMP's instruction prefix
("Generate a headline for the following article: ") is stripped from the question input so
``test_input`` holds the raw text; prompts are rebuilt with :func:`analysis.data.tasks.zero_shot_prompt`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from analysis.data.readers import get_field, read_json_file
from analysis.data.records import DataError, DatasetCard, ProfileItem, UserTask
from analysis.data.tasks import strip_lamp_prefix

# LaMP number -> (task name, profile input field, profile output field)
LAMP_TASKS = {
    "4": ("news_headline", "text", "title"),
    "5": ("scholarly_title", "abstract", "title"),
    "7": ("tweet_paraphrase", "text", "text"),
}
_TASK_TO_NUM = {v[0]: k for k, v in LAMP_TASKS.items()}


def _lamp_number(task: str | None) -> str | None:
    """'LaMP_4', 'LaMP-4', '4', 'news_headline' -> '4'."""
    if task is None:
        return None
    if task in _TASK_TO_NUM:
        return _TASK_TO_NUM[task]
    m = re.fullmatch(r"(?:lamp[-_ ]?)?(\d+)", str(task).strip().lower())
    if not m or m.group(1) not in LAMP_TASKS:
        known = ", ".join([f"LaMP-{n}" for n in LAMP_TASKS] + list(_TASK_TO_NUM))
        raise DataError(f"unsupported LaMP task {task!r}; supported: {known}")
    return m.group(1)


def find_lamp_files(path: str | os.PathLike, split: str | None = None) -> tuple[Path, Path]:
    """``(questions, outputs)`` paths from a folder (+ split) or a ``*_questions.json`` file."""
    p = Path(path)
    if p.is_dir():
        splits = [split] if split else ["dev", "train", "test"]
        for s in splits:
            q = p / f"{s}_questions.json"
            if q.exists():
                return q, p / f"{s}_outputs.json"
        raise DataError(f"no {'/'.join(f'{s}_questions.json' for s in splits)} in this folder", path=str(p))
    if not p.exists():
        raise DataError("file not found", path=str(p))
    if "questions" not in p.name:
        raise DataError("expected a LaMP '*_questions.json' file or a folder holding one", path=str(p))
    return p, p.with_name(p.name.replace("questions", "outputs"))


def load_lamp(
    path: str | os.PathLike,
    *,
    task: str | None = None,
    split: str | None = None,
    outputs_path: str | os.PathLike | None = None,
    require_outputs: bool = True,
) -> tuple[list[UserTask], DatasetCard]:
    """Read LaMP questions + golds into one :class:`UserTask` per question.

    Parameters
    ----------
    path: a folder with ``{split}_questions.json`` (+ ``_outputs.json``) or the questions file.
    task: ``"LaMP-4"``, ``"LaMP_5"``, ``"news_headline"``, ...; default: the outputs file's
        ``task`` field, else inferred from the profile fields.
    split: ``train`` / ``dev`` / ``test`` when ``path`` is a folder (default: first found).
    require_outputs: without an outputs file, raise (default) or leave ``test_output=None``.

    Errors (:class:`DataError`): malformed JSON, non-UTF-8, missing or empty fields, duplicate
    ids, a gold whose id has no question, a question with no gold, an empty profile.
    """
    q_path, o_default = find_lamp_files(path, split)
    o_path = Path(outputs_path) if outputs_path else o_default
    questions = read_json_file(q_path)
    if not isinstance(questions, list):
        raise DataError(
            f"expected a JSON list of questions, got {type(questions).__name__}", path=str(q_path)
        )
    if not questions:
        raise DataError("no questions in file", path=str(q_path))

    golds: dict[str, str] | None = None
    file_task = None
    if o_path.exists():
        golds, file_task = _read_golds(o_path)
    elif require_outputs:
        raise DataError(
            "outputs file not found (pass require_outputs=False for unlabelled questions)", path=str(o_path)
        )

    num = _lamp_number(task) or _lamp_number(file_task) or _infer_number(questions, q_path)
    task_name, in_field, out_field = LAMP_TASKS[num]

    tasks: list[UserTask] = []
    seen: set[str] = set()
    for i, q in enumerate(questions):
        if not isinstance(q, dict):
            raise DataError(f"expected a JSON object, got {type(q).__name__}", path=str(q_path), record=i)
        qid = str(get_field(q, "id", path=q_path, record=i, kind=(str, int)))
        if qid in seen:
            raise DataError("duplicate question id", path=str(q_path), record=qid, field="id")
        seen.add(qid)
        text = strip_lamp_prefix(task_name, get_field(q, "input", path=q_path, record=qid))
        if not text:
            raise DataError(
                "is empty after removing the LaMP instruction", path=str(q_path), record=qid, field="input"
            )
        raw_profile = get_field(q, "profile", path=q_path, record=qid, kind=list)
        if not raw_profile:
            raise DataError("user has an empty profile", path=str(q_path), record=qid, field="profile")
        profile = []
        for j, item in enumerate(raw_profile):
            rec = f"{qid} profile[{j}]"
            if not isinstance(item, dict):
                raise DataError("expected a JSON object", path=str(q_path), record=rec)
            pid = str(get_field(item, "id", path=q_path, record=rec, kind=(str, int), default=f"{qid}-p{j}"))
            date = get_field(item, "date", path=q_path, record=rec, default=None)
            profile.append(
                ProfileItem(
                    input=get_field(item, in_field, path=q_path, record=rec),
                    output=get_field(item, out_field, path=q_path, record=rec),
                    item_id=pid,
                    date=date,
                )
            )
        gold = None
        if golds is not None:
            if qid not in golds:
                raise DataError("question has no gold output", path=str(o_path), record=qid, field="golds")
            gold = golds[qid]
        tasks.append(UserTask(user_id=qid, profile=profile, test_input=text, test_output=gold, test_id=qid))

    if golds is not None:
        orphans = sorted(set(golds) - seen)
        if orphans:
            raise DataError(
                f"gold has no question in {q_path.name} ({len(orphans)} such golds)",
                path=str(o_path),
                record=orphans[0],
                field="id",
            )
    card = DatasetCard(
        name=f"LaMP-{num}:{q_path.stem.replace('_questions', '')}",
        source="lamp",
        task=task_name,
        n_users=len(tasks),
        n_items=len(tasks),
        notes=(
            f"LaMP-{num} user-based split from {q_path.name}: one question per user; "
            f"profile {in_field} -> {out_field}; per_user counts profile items."
            + (" LaMP-7 profiles are unpaired tweets (input == output)." if num == "7" else "")
        ),
        per_user={t.user_id: len(t.profile) for t in tasks},
    )
    return tasks, card


def _read_golds(o_path: Path) -> tuple[dict[str, str], str | None]:
    obj = read_json_file(o_path)
    if isinstance(obj, dict):
        raw, file_task = get_field(obj, "golds", path=o_path, kind=list), obj.get("task")
    elif isinstance(obj, list):  # some mirrors store the golds list directly
        raw, file_task = obj, None
    else:
        raise DataError(f"expected an object with 'golds', got {type(obj).__name__}", path=str(o_path))
    golds: dict[str, str] = {}
    for i, g in enumerate(raw):
        if not isinstance(g, dict):
            raise DataError("expected a JSON object", path=str(o_path), record=i, field="golds")
        gid = str(get_field(g, "id", path=o_path, record=i, kind=(str, int)))
        if gid in golds:
            raise DataError("duplicate gold id", path=str(o_path), record=gid, field="id")
        golds[gid] = get_field(g, "output", path=o_path, record=gid)
    return golds, file_task if isinstance(file_task, str) else None


def _infer_number(questions: list, q_path: Path) -> str:
    for q in questions:
        prof = q.get("profile") if isinstance(q, dict) else None
        if prof and isinstance(prof[0], dict):
            keys = set(prof[0])
            if "abstract" in keys:
                return "5"
            if "title" in keys:
                return "4"
            if "text" in keys:
                return "7"
    raise DataError("cannot infer the LaMP task from the profile fields; pass task=", path=str(q_path))
