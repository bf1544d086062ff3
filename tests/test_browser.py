"""Notebook 04 and the report's index.html in a real browser (JupyterLab + headless Chromium).

A tiny report (tiny random models) is made in a temporary folder laid out like the repository
(``notebooks/``, ``reports/<run>``), next to a second run that is still "running" and that
``reports/latest`` points at. JupyterLab serves that folder on a free 127.0.0.1 port (token set,
always shut down); Playwright drives Debian's Chromium (``executable_path``: browser downloads
are impossible here). The test runs all cells of the clean notebook 04 with its default
parameters, changes user, method and w, and checks after each change that the shown generation
row, test item and ICL prompt are the ones of the report's generation table (a stale row fails).
Screenshots go to ``test-artifacts/`` (ignored by git).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
BOOK = "04_inspect_generations.ipynb"
pytestmark = pytest.mark.browser


def find_chromium() -> str | None:
    for cand in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        path = cand and shutil.which(cand)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """<tmp>/notebooks/04 (the clean notebook) and <tmp>/reports/{tiny (finished), tiny2 (running)}."""
    from analysis.models.tiny import build_tiny_model
    from analysis.report.runner import run_report

    tmp = tmp_path_factory.mktemp("browser")
    model, tok = build_tiny_model("llama", seed=1)
    model.save_pretrained(tmp / "tiny-model")
    tok.save_pretrained(tmp / "tiny-model")
    overrides = {
        "policy_model": str(tmp / "tiny-model"),
        "models": [str(tmp / "tiny-model")],
        "n_users": 3,
        "n_test_items": 2,
        "seeds": [0],
        "budgets": [5, 30],
        "methods": ["shared_bt", "lore"],
        "w_values": [0.0, 1.0],
        "icl_k": [1],
        "max_new_tokens": 4,
        "n_boot": 50,
        "threads": 1,
        "k": 3,
        "inspector_w": [0.5, 2.0],  # ARGS at three weights: the test switches w
    }
    # notebook 02 writes the generation tables, a figure and findings; the test runs 04 itself
    run = run_report(
        "embedded_synthetic",
        overrides=overrides,
        output_root=tmp / "reports",
        run_id="tiny",
        only=["02"],
        progress=False,
    )
    # a second report still being written, which latest points at: the inspector must not open it
    second = shutil.copytree(run, tmp / "reports" / "tiny2")
    status = json.loads((second / "status.json").read_text())
    status["notebooks"]["03_icl_vs_rgd_scale.ipynb"] = {"status": "running"}
    (second / "status.json").write_text(json.dumps(status))
    (tmp / "reports" / "latest").unlink(missing_ok=True)
    (tmp / "reports" / "latest").symlink_to("tiny2")
    (tmp / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / BOOK, tmp / "notebooks" / BOOK)
    return tmp


@pytest.fixture(scope="module")
def lab(workspace):
    """JupyterLab on a free local port, token set; yields its base URL; always stopped."""
    port, token = _free_port(), "browser-test-token"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={workspace}",
        f"--LabApp.workspaces_dir={workspace / '.lab-workspaces'}",
    ]
    if os.getuid() == 0:
        cmd.append("--allow-root")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "JUPYTER_CONFIG_DIR": str(workspace / ".jupyter"),
        "JUPYTER_RUNTIME_DIR": str(workspace / ".jupyter-runtime"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    log = open(workspace / "lab.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"JupyterLab did not start: {(workspace / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium found (install Debian's `chromium`; .ci/run does) - browser test not run")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def _start_kernel(base: str, token: str, path: str) -> None:
    body = json.dumps(
        {"path": path, "name": Path(path).name, "type": "notebook", "kernel": {"name": "python3"}}
    )
    req = urllib.request.Request(
        f"{base}/api/sessions",
        data=body.encode(),
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 201, r.status


def _generations(run: Path) -> pd.DataFrame:
    gens = pd.concat([pd.read_csv(p) for p in sorted((run / "tables").glob("study*_generations.csv"))])
    return gens.drop_duplicates(["model", "test_id", "system"]).fillna({"text": "", "prompt": ""})


def _row(gens: pd.DataFrame, user: str, test_id: str, system: str) -> pd.Series:
    hit = gens[
        (gens["user_id"] == user) & (gens["test_id"].astype(str) == test_id) & (gens["system"] == system)
    ]
    assert len(hit) == 1, (user, test_id, system, len(hit))
    return hit.iloc[0]


def _dropdown(page, name: str):
    return page.locator(f".inspector .widget-dropdown:has(> label:text-is('{name}')) select")


def _expect_shown(page, gens, user: str, system: str, absent: str | None = None) -> None:
    """The inspector shows ``system``'s row of ``user``'s current item, as in the generation table."""
    from playwright.sync_api import expect

    from analysis.inspect.run_picker import item_label

    test_id = str(gens[gens["user_id"] == user]["test_id"].iloc[0])  # a new user shows its first item
    label = re.escape(f"1: {item_label(test_id)}").replace("\\ ", "\\s")  # ipywidgets: nbsp for spaces
    expect(_dropdown(page, "test item")).to_have_value(re.compile(f"^{label}$"))  # waits for the kernel
    expect(page.locator(".inspector h3[data-test-id]")).to_have_attribute("data-test-id", test_id)
    row = _row(gens, user, test_id, system)
    cell = page.locator(f".inspector tr[data-system='{system}'] td.insp-text")
    expect(cell).to_have_text(str(row["text"]))
    icl = _row(gens, user, test_id, "icl_k1")
    expect(page.locator(".inspector pre.insp-prompt")).to_have_text(str(icl["prompt"]))
    if absent is not None:
        expect(page.locator(f".inspector tr[data-system='{absent}']")).to_have_count(0)


def test_inspector_in_jupyterlab_follows_user_method_and_w(browser, workspace, lab):
    from playwright.sync_api import expect

    base, token = lab
    expect.set_options(timeout=30_000)  # one kernel round trip per change, on a loaded CI machine
    run = workspace / "reports" / "tiny"
    gens = _generations(run)
    page = browser.new_page(viewport={"width": 1200, "height": 1100})
    page.set_default_timeout(60_000)
    _start_kernel(base, token, f"notebooks/{BOOK}")  # a running session: no kernel-picker dialog
    page.goto(f"{base}/lab/tree/notebooks/{BOOK}?token={token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
    for button in ("No",):  # the "official Jupyter news?" toast covers part of the page
        if page.get_by_role("button", name=button, exact=True).is_visible():
            page.get_by_role("button", name=button, exact=True).click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    inspector = page.locator(".inspector")
    expect(inspector.locator("table.insp-gens")).to_be_visible(timeout=90_000)
    # the finished run is opened, not the running one latest points at; each run listed once by id
    assert _dropdown(page, "run").locator("option:checked").inner_text() == "tiny"
    labels = [t.replace("\xa0", " ") for t in _dropdown(page, "run").locator("option").all_inner_texts()]
    assert labels == ["tiny2  (latest, running)", "tiny"]  # ipywidgets shows spaces as nbsp
    inspector.get_by_text("ICL prompt the model saw").click()  # open the accordion: it must stay open
    expect(inspector.locator("pre.insp-prompt")).to_be_visible()

    users = sorted(gens["user_id"].astype(str).unique())
    assert _dropdown(page, "user").input_value() == users[0]
    _expect_shown(page, gens, users[0], "base")
    user = users[-1]
    _dropdown(page, "user").select_option(user)
    ws = sorted(gens.loc[(gens["kind"] == "rgd") & (gens["method"] == "lore"), "w"].unique())
    _expect_shown(page, gens, user, f"rgd_shared_bt_w{ws[0]:g}")
    _dropdown(page, "method").select_option("lore")
    _expect_shown(page, gens, user, f"rgd_lore_w{ws[0]:g}", absent=f"rgd_shared_bt_w{ws[0]:g}")
    _dropdown(page, "w").select_option(label=str(float(ws[-1])))
    _expect_shown(page, gens, user, f"rgd_lore_w{ws[-1]:g}", absent=f"rgd_lore_w{ws[0]:g}")
    expect(inspector.locator("pre.insp-prompt")).to_be_visible()  # still open after three changes
    page.screenshot(path=str(ARTIFACTS / "inspector-page.png"))
    inspector.get_by_text("Profile examples").click()  # collapse it: the rest fits one screenshot
    expect(inspector.locator(".insp-gens")).to_be_in_viewport()
    inspector.evaluate("e => e.scrollIntoView({block: 'start'})")
    box, view = inspector.bounding_box(), page.viewport_size
    clip = {
        "x": box["x"],
        "y": box["y"],
        "width": box["width"],
        "height": min(box["height"], view["height"] - box["y"]),
    }
    page.screenshot(
        path=str(ARTIFACTS / "inspector.png"), clip=clip
    )  # the README's docs/figures/inspector.png
    page.close()


def check_findings_table(page, run: Path) -> None:
    """index.html opens with the findings table: it is visible in the first screen, above every
    figure; every claim of the run's ``tables/study*_findings.csv`` is in it, and each claim's
    verdict is the one of the latest study's CSV that measured it; every figure shows its
    one-line reading (``analysis.report.plots.FIGURE_CAPTIONS``) under it."""
    from playwright.sync_api import expect

    from analysis.report.plots import figure_caption
    from analysis.studies.findings import VERDICTS

    csvs = sorted((run / "tables").glob("study*_findings.csv"))
    assert csvs, "the tiny report wrote no findings tables"
    page.evaluate("window.scrollTo(0, 0)")
    table = page.locator("table.findings")
    expect(table).to_have_count(1)
    expect(table).to_be_in_viewport()  # the answer first: no scrolling needed
    first_fig = page.locator("figure img").first
    assert table.bounding_box()["y"] < first_fig.bounding_box()["y"], "findings must come before the figures"
    text = " ".join(table.inner_text().split())
    want: dict[str, str] = {}
    for c in csvs:  # later studies read the earlier ones' tables; "not measured" never hides a verdict
        for r in pd.read_csv(c).itertuples():
            claim = " ".join(str(r.claim).split())
            if r.verdict != "not measured" or claim not in want:
                want[claim] = r.verdict
    for claim in want:
        assert claim in text, claim
    shown = {}
    for row in table.locator("tr.claim-start").all():
        claim = " ".join(row.locator("td.claim").inner_text().split())
        shown[claim] = row.locator(".verdict").first.inner_text().strip()
    assert shown == want
    assert all(v.inner_text().strip() in VERDICTS for v in table.locator(".verdict").all())
    for fig in sorted((run / "figures").glob("*.png")):
        caption = page.locator(f"figure[id='{fig.stem}'] figcaption")
        expect(caption).to_be_visible()
        reading = figure_caption(fig.stem)
        assert reading and " ".join(reading.split()) in " ".join(caption.inner_text().split()), fig.stem


def test_report_index_shows_every_figure_and_the_findings(browser, workspace):
    run = workspace / "reports" / "tiny"
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto((run / "index.html").as_uri())
    figures = sorted((run / "figures").glob("*.png"))
    assert figures, "the tiny report wrote no figures"
    for fig in figures:
        img = page.locator(f"img[src='figures/{fig.name}']")
        img.scroll_into_view_if_needed()
        assert img.is_visible(), fig.name
        assert img.evaluate("i => i.complete && i.naturalWidth > 0"), f"{fig.name} did not load"
    check_findings_table(page, run)
    page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)
    page.close()
