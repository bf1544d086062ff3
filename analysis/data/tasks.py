"""Task specifications and the single source of zero-shot prompt text (design sections 3.3, 4.4).

Every prompt ``x`` that appears in a preference pair, in base-policy generation and (with examples
prepended by :mod:`analysis.generation.icl`) in ICL is built by :func:`zero_shot_prompt`, so that a reward
model trained on pairs and a decoder generating for the same input see the *same* ``x``.

Example
-------
>>> from analysis.data.tasks import zero_shot_prompt
>>> print(zero_shot_prompt("news_headline", "The council approved a new bridge."))
Write a headline for the following news article. Reply with the headline only.
<BLANKLINE>
Article: The council approved a new bridge.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.errors import lookup


@dataclass(frozen=True)
class TaskSpec:
    """One generation task.

    Attributes
    ----------
    name: registry key, e.g. ``"news_headline"``.
    instruction: the instruction sentence(s) that open the prompt.
    input_label: label put before the input text (``"Article"``).
    output_label: what the output is called (``"Headline"``); used by ICL renderings.
    max_new_tokens: generation budget for this task (headlines: 32, design section 10).
    lamp_id: the LaMP benchmark task this corresponds to (``"LaMP-4"``), or ``""``.
    lamp_prefix: the instruction prefix LaMP puts in front of each question ``input``; the LaMP
        loader strips it so that ``UserTask.test_input`` holds the raw text only.
    """

    name: str
    instruction: str
    input_label: str
    output_label: str
    max_new_tokens: int = 32
    lamp_id: str = ""
    lamp_prefix: str = ""


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="news_headline",
            instruction="Write a headline for the following news article. Reply with the headline only.",
            input_label="Article",
            output_label="Headline",
            max_new_tokens=32,
            lamp_id="LaMP-4",
            lamp_prefix="Generate a headline for the following article:",
        ),
        TaskSpec(
            name="scholarly_title",
            instruction="Write a title for the following abstract of a research paper. Reply with the title only.",
            input_label="Abstract",
            output_label="Title",
            max_new_tokens=32,
            lamp_id="LaMP-5",
            lamp_prefix="Generate a title for the following abstract of a paper:",
        ),
        TaskSpec(
            name="tweet_paraphrase",
            instruction="Paraphrase the following tweet. Reply with the paraphrased tweet only.",
            input_label="Tweet",
            output_label="Paraphrase",
            max_new_tokens=64,
            lamp_id="LaMP-7",
            lamp_prefix="Paraphrase the following tweet without any explanation before or after it:",
        ),
    )
}


def get_task(task: str) -> TaskSpec:
    """Look up a :class:`TaskSpec` by name; unknown names raise ``ValueError`` listing known ones."""
    return lookup(TASKS, task, "task")


def zero_shot_prompt(task: str, input_text: str) -> str:
    """The zero-shot prompt text ``x`` for ``input_text``: instruction, blank line, labelled input.

    The text is *not* chat-rendered; :func:`analysis.models.tokens.render_prompt` applies the chat
    template. Leading/trailing whitespace of ``input_text`` is stripped.
    """
    spec = get_task(task)
    return f"{spec.instruction}\n\n{spec.input_label}: {input_text.strip()}"


def strip_lamp_prefix(task: str, lamp_input: str) -> str:
    """Remove LaMP's instruction prefix (if present) from a LaMP question ``input``."""
    spec = get_task(task)
    text = lamp_input.strip()
    if spec.lamp_prefix and text.lower().startswith(spec.lamp_prefix.lower()):
        text = text[len(spec.lamp_prefix) :].strip()
    return text
