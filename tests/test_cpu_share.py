"""analysis.report.schedule: the fixed thread schedule of two notebooks sharing the CPU (the runner's side
is in test_report.py)."""

import pytest
import torch

from analysis.report import schedule as cpu_share


def _reset():
    cpu_share._state.update(limit=None, before=None)


@pytest.fixture()
def two_threads():
    """A kernel on two torch threads with a fresh cpu_share state; both restored afterwards."""
    _reset()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    _reset()
    torch.set_num_threads(before)


def test_outside_the_runner_nothing_changes(monkeypatch):
    monkeypatch.delenv(cpu_share.HANDOFF_ENV, raising=False)
    monkeypatch.delenv(cpu_share.PREVIOUS_ENV, raising=False)
    monkeypatch.delenv(cpu_share.READY_ENV, raising=False)
    monkeypatch.delenv(cpu_share.PREVIOUS_READY_ENV, raising=False)
    _reset()
    before = torch.get_num_threads()
    assert not cpu_share.handoff() and not cpu_share.share_cpu()
    assert not cpu_share.inputs_ready() and not cpu_share.wait_for_inputs() and not cpu_share.claim_cpu()
    assert torch.get_num_threads() == before and cpu_share.thread_limit(2) == 2


def test_wait_for_inputs_returns_once_the_previous_notebook_is_ready_or_has_ended(
    tmp_path, monkeypatch, two_threads
):
    ready, ended = tmp_path / "01.ready", tmp_path / "01.ended"
    monkeypatch.setenv(cpu_share.PREVIOUS_READY_ENV, str(ready))
    monkeypatch.setenv(cpu_share.PREVIOUS_ENV, str(ended))
    monkeypatch.setattr(cpu_share, "POLL_SECONDS", 0.01)
    assert cpu_share.share_cpu()
    assert torch.get_num_threads() == 1 and cpu_share.thread_limit(2) == 1
    with pytest.raises(TimeoutError, match="did not cache what this one reads"):
        cpu_share.wait_for_inputs(timeout=0.1)
    monkeypatch.setenv(cpu_share.READY_ENV, str(ready))  # "notebook 01" says its inputs are cached
    assert cpu_share.inputs_ready() and ready.exists()
    assert cpu_share.wait_for_inputs(timeout=5)
    ready.unlink()
    ended.write_text("")  # ended without saying so (e.g. it failed): waiting ends too
    assert cpu_share.wait_for_inputs(timeout=5)
    assert torch.get_num_threads() == 1  # waiting never changes the thread count


def test_handoff_marks_and_keeps_this_kernel_on_one_thread(tmp_path, monkeypatch, two_threads):
    marker = tmp_path / "handoff"
    monkeypatch.setenv(cpu_share.HANDOFF_ENV, str(marker))
    assert cpu_share.handoff()
    assert marker.exists() and torch.get_num_threads() == 1 and cpu_share.thread_limit(2) == 1


def test_share_then_claim_waits_for_the_previous_notebook(tmp_path, monkeypatch, two_threads):
    ended = tmp_path / "01.ended"
    monkeypatch.setenv(cpu_share.PREVIOUS_ENV, str(ended))
    monkeypatch.setattr(cpu_share, "POLL_SECONDS", 0.01)
    assert cpu_share.share_cpu()
    assert torch.get_num_threads() == 1 and cpu_share.thread_limit(2) == 1
    try:
        cpu_share.claim_cpu(timeout=0.1)
        raise AssertionError("claim_cpu returned while the previous notebook runs")
    except TimeoutError:
        pass
    assert torch.get_num_threads() == 1  # still shared
    ended.write_text("")
    assert cpu_share.claim_cpu(timeout=5)
    assert torch.get_num_threads() == 2 and cpu_share.thread_limit(2) == 2


def test_the_studies_schedule_calls_the_report_schedule(tmp_path, monkeypatch, two_threads):
    """cpu_share.SCHEDULE (the hook the notebooks hand the studies): a study that starts on CPU
    hands off, one on a GPU does not; threads follow thread_limit; readiness is cpu_share's."""
    marker, ready = tmp_path / "handoff", tmp_path / "ready"
    monkeypatch.setenv(cpu_share.HANDOFF_ENV, str(marker))
    monkeypatch.setenv(cpu_share.READY_ENV, str(ready))
    monkeypatch.setenv(cpu_share.PREVIOUS_READY_ENV, str(ready))
    s = cpu_share.SCHEDULE
    s.started("cuda:0")
    assert not marker.exists() and s.threads(2) == 2 and torch.get_num_threads() == 2
    s.started("cpu")
    assert marker.exists() and s.threads(2) == 1 and torch.get_num_threads() == 1
    s.inputs_ready()
    assert ready.exists()
    s.wait_for_inputs()  # returns: the file it waits for exists


def test_no_study_or_data_module_imports_the_report_schedule():
    """The schedule is the report's: studies and data get it as a hook (analysis.studies.schedule)."""
    import ast
    from pathlib import Path

    root = Path(cpu_share.__file__).parent
    bad = []
    for folder in ("studies", "data", "rewards", "decoding"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                if any(n.startswith("analysis.report.schedule") for n in names):
                    bad.append(str(path.relative_to(root)))
    assert bad == []
