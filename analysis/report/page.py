"""The report's ``index.html``: the answer first, then the evidence.

One static, self-contained page (inline CSS, relative links, no script), rewritten atomically
by :func:`analysis.report.runner.run_report` when the run starts and after every notebook, so it also
renders while a run is going (it then says so and reloads itself every 30 s). Top to bottom:

1. the findings table (``class="findings"``): one row per claim and dataset/setting with the
   paper's number, this run's number with its interval, the verdict and the rule that gave it,
   from the run's ``tables/study*_findings.csv`` (:func:`findings_rows`);
   a run computed on the CPU in a dtype other than float32 (``--set dtype=bfloat16``) says so in
   the header and in the table's caption (:func:`precision_note`): its numbers are not comparable
   with float32 runs, the CPU default;
2. each figure at full width with its one-line reading (:data:`analysis.report.plots.FIGURE_CAPTIONS`);
3. the notebooks (HTML and ipynb, status, seconds, sections), the tables, the settings (model,
   dtype, seeds, ROUGE stemming, code version, git commit) and where the time went.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd

from analysis.io import write_text
from analysis.report.plots import FIGURE_CAPTIONS, figure_caption

VERDICT_RE = re.compile(
    r"^(?P<name>[^:;]+?): (?P<value>.*) -> (?P<verdict>supported|not supported|inconclusive|not testable|"
    r"not measured|check passed|check failed)$"
)
SETTING_COLUMNS = ("dataset", "setting")  # a findings CSV with one of these has a row per dataset
_HEADLINE = re.compile(r"^([\w\-. ()]+=\s?-?[\w.]+ \[[^\]]*\])(.*)$", re.S)  # "tau=0.12 [-0.1, 0.3]", rest

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;
color:#1d1d1f;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.state{padding:.5em .8em;border-radius:4px;background:#f1f5f9} .state.running{background:#fff7e0}
.state.failed{background:#fde8e8}
table{border-collapse:collapse;width:100%} td,th{padding:5px 8px;border-bottom:1px solid #e3e3e3;
vertical-align:top;text-align:left} th{background:#f6f6f6;font-weight:600}
table.findings td.claim{font-weight:600;width:15%} table.findings td.rule{font-size:.82em;color:#555;width:22%}
table.findings td.paper{width:12%} table.findings td.num{width:31%} table.findings td.ds{white-space:nowrap}
nav a{margin-right:1em}
table.findings tr.claim-start td{border-top:2px solid #bbb}
.verdict{display:inline-block;padding:1px 7px;border-radius:10px;font-size:.9em;white-space:nowrap;
background:#e5e7eb} .v-supported{background:#d1fadf;color:#05603a} .v-not-supported{background:#fee4e2;
color:#912018} .v-inconclusive{background:#fef0c7;color:#93370d} .v-check-passed{background:#e0eaff;
color:#1d3a8a} .v-check-failed{background:#fee4e2;color:#912018}
.num{font-variant-numeric:tabular-nums} .muted{color:#666;font-size:.9em}
figure{margin:1.2em 0 2em 0} figure img{width:100%;height:auto;border:1px solid #eee}
figcaption{margin-top:.4em} code{background:#f3f3f3;padding:0 3px;border-radius:3px}
table.settings td:first-child{width:22%;color:#444} ul.tables{columns:3;padding-left:1.2em}
.state.precision{background:#fde8e8;margin-top:.4em} table.findings caption{caption-side:top;text-align:left;
padding:.4em .8em;margin-bottom:.3em;background:#fde8e8;border-radius:4px}
"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def precision_note(dtype: dict) -> str:
    """One sentence when the run computed on the CPU in another dtype than float32, else "".

    ``dtype`` is provenance's record (``setting``, ``used``, ``device``). float32 is what
    ``dtype: auto`` runs on every CPU; bfloat16 keeps an 8-bit significand (relative rounding up to
    2^-9 per operation), which moves taus and can flip verdicts, so such a run is labelled.

    >>> precision_note({"setting": "auto", "used": "float32", "device": "cpu"})
    ''
    >>> precision_note({"setting": "bfloat16", "used": "bfloat16", "device": "cpu"})[:58]
    'This run computed in bfloat16 on the CPU (dtype=bfloat16):'
    """
    used, device = str(dtype.get("used") or ""), str(dtype.get("device") or "")
    if device != "cpu" or used in ("", "float32"):
        return ""
    return (
        f"This run computed in {used} on the CPU (dtype={dtype.get('setting', used)}): its numbers are "
        "not comparable with float32 runs (the CPU default, dtype auto); lower precision moves the taus "
        "and can change verdicts."
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _study_number(name: str) -> int:
    m = re.match(r"study(\d+)", name)
    return int(m.group(1)) if m else 0


def _claim_datasets(tables: Path, claim: str) -> list[str]:
    """The datasets of the study behind a claim that has one row: from its summary tables."""
    m = re.match(r"\s*(\d+)\.", claim)
    if not m:
        return []
    for name in ("summary", "scale", "tau"):
        p = tables / f"study{m.group(1)}_{name}.csv"
        if p.exists():
            try:
                values = pd.read_csv(p, usecols=["dataset"])["dataset"].dropna().astype(str)
            except (ValueError, OSError):
                continue
            return list(dict.fromkeys(values))
    return []


def _named_dataset(this_run: str, names: list[str]) -> str:
    """The dataset a one-row claim was measured on: the one its ``this_run`` starts with
    (``<dataset>: ...``, e.g. claim 2 on the main study-2 setting), else all of ``names``."""
    lead = this_run.split(":", 1)[0].strip()
    return lead if lead in names else ", ".join(names)


def findings_rows(tables: str | Path) -> tuple[list[dict], list[str]]:
    """The rows of the findings table and the CSVs they came from.

    For each claim the row of the latest study's CSV wins (a later notebook reads the earlier
    ones' tables), unless it says ``not measured`` where an earlier one measured. A CSV with a
    ``dataset``/``setting`` column gives one row per value; otherwise a ``this_run`` made of
    ``<dataset>: <numbers> -> <verdict>`` parts joined by ``; `` (claim 1: one part per dataset)
    is split into one row per dataset under an "all datasets" row with the claim's verdict.
    Each row: claim, dataset, paper, this_run, verdict, rule, first (first row of its claim).
    """
    tables = Path(tables)
    csvs = sorted(tables.glob("study*_findings.csv"), key=lambda p: (_study_number(p.name), p.name))
    chosen: dict[tuple[str, str], dict] = {}
    for path in csvs:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
        by = next((c for c in SETTING_COLUMNS if c in df.columns), None)
        for r in df.to_dict("records"):
            key = (r.get("claim", ""), r.get(by, "") if by else "")
            if key in chosen and r.get("verdict") == "not measured" != chosen[key].get("verdict"):
                continue
            chosen[key] = {**r, "source": path.name}
    rows: list[dict] = []
    for (claim, ds), r in sorted(chosen.items(), key=lambda kv: _claim_key(kv[0][0])):
        base = {k: r.get(k, "") for k in ("claim", "paper", "rule", "verdict", "source")}
        parts = [p.strip() for p in str(r.get("this_run", "")).split("; ") if p.strip()]
        matches = [VERDICT_RE.match(p) for p in parts]
        if not ds and len(parts) > 1 and all(matches):
            rows.append(
                {**base, "dataset": "all datasets", "this_run": f"{len(parts)} datasets (rows below)"}
            )
            rows += [
                {**base, "dataset": m["name"], "this_run": m["value"], "verdict": m["verdict"]}
                for m in matches
            ]
        elif len(parts) == 1 and matches[0]:
            rows.append({**base, "dataset": ds or matches[0]["name"], "this_run": matches[0]["value"]})
        else:
            run = "; ".join(parts)
            rows.append(
                {
                    **base,
                    "dataset": ds or _named_dataset(run, _claim_datasets(tables, claim)),
                    "this_run": run,
                }
            )
    for i, row in enumerate(rows):
        row["first"] = i == 0 or rows[i - 1]["claim"] != row["claim"]
    return rows, [p.name for p in csvs]


def _claim_key(claim: str):
    m = re.match(r"\s*(\d+)", claim)
    return (int(m.group(1)) if m else 99, claim)


def _value_html(text: str) -> str:
    """This run's numbers: the headline number with its interval in bold, the rest after it,
    one ``; ``-separated part per line."""
    out = []
    for part in str(text).split("; "):
        m = _HEADLINE.match(part)
        out.append(f"<b>{_e(m.group(1))}</b>{_e(m.group(2))}" if m else _e(part))
    return "<br>".join(out)


def _verdict_html(v: str) -> str:
    return f'<span class="verdict v-{_e(v.replace(" ", "-"))}">{_e(v)}</span>'


def findings_html(run_dir: Path, note: str = "") -> str:
    """The findings table; ``note`` (e.g. :func:`precision_note`) becomes its caption."""
    rows, sources = findings_rows(run_dir / "tables")
    if not rows:
        return (
            '<p class="muted">No findings yet: each study notebook writes '
            "<code>tables/study&lt;n&gt;_findings.csv</code> when it finishes.</p>"
        )
    body = []
    for i, r in enumerate(rows):
        span = next((j for j in range(i + 1, len(rows)) if rows[j]["first"]), len(rows)) - i
        cells = []
        if r["first"]:
            cells += [f'<td class="claim" rowspan="{span}">{_e(r["claim"])}</td>']
        cells += [f'<td class="ds">{_e(r["dataset"])}</td>']
        if r["first"]:
            cells += [f'<td class="paper" rowspan="{span}">{_e(r["paper"])}</td>']
        cells += [
            f'<td class="num">{_value_html(r["this_run"])}</td>',
            f"<td>{_verdict_html(r['verdict'])}</td>",
        ]
        if r["first"]:
            cells += [f'<td class="rule" rowspan="{span}">{_e(r["rule"])}</td>']
        body.append(f'<tr class="{"claim-start" if r["first"] else "sub"}">{"".join(cells)}</tr>')
    links = ", ".join(f'<a href="tables/{_e(s)}">{_e(s)}</a>' for s in sources)
    return (
        '<table class="findings">'
        + (f'<caption class="precision">{_e(note)}</caption>' if note else "")
        + "<thead><tr><th>claim</th><th>dataset / setting</th><th>paper</th>"
        "<th>this run (interval)</th><th>verdict</th><th>rule</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        '<p class="muted">Verdicts come from intervals, never from point estimates; a claim\'s row is '
        f"taken from the latest study that measured it. Source: {links}.</p>"
    )


def _png_width(path: Path) -> int | None:
    head = path.read_bytes()[:24]
    return int.from_bytes(head[16:20], "big") if head[:8] == b"\x89PNG\r\n\x1a\n" else None


def _figure_order(name: str):
    keys = list(FIGURE_CAPTIONS)
    hit = [i for i, k in enumerate(keys) if name == k or name.startswith(k + "_")]
    return (_study_number(name) or 99, hit[0] if hit else len(keys), name)


def figures_html(run_dir: Path) -> str:
    folder = run_dir / "figures"
    figs = sorted(folder.glob("*.png"), key=lambda p: _figure_order(p.stem)) if folder.is_dir() else []
    out = []
    for f in figs:
        width = _png_width(f)
        style = f' style="max-width:{width}px"' if width else ""
        pdf = f' (<a href="figures/{_e(f.stem)}.pdf">pdf</a>)' if f.with_suffix(".pdf").exists() else ""
        caption = figure_caption(f.stem) or ""
        out.append(
            f'<figure id="{_e(f.stem)}"><a href="figures/{_e(f.name)}"><img src="figures/{_e(f.name)}" '
            f'alt="{_e(f.stem)}"{style}></a><figcaption><b>{_e(f.stem)}</b>{pdf}. {_e(caption)}</figcaption></figure>'
        )
    return "".join(out) or '<p class="muted">No figures yet.</p>'


def run_state(status: dict) -> tuple[str, str]:
    """(css class, sentence) saying whether the run finished, is running or failed."""
    states = {k: v.get("status", "pending") for k, v in status.get("notebooks", {}).items()}
    stem = {k: Path(k).stem for k in states}
    failed = [stem[k] for k, s in states.items() if s == "failed"]
    if failed:
        return (
            "failed",
            f"Failed in {', '.join(failed)}: outputs so far are below; see its notebook for the error.",
        )
    if states and all(s == "ok" for s in states.values()):
        total = status.get("total_seconds")
        took = f" in {total:.0f} s" if total is not None else ""
        n = len(states)
        return (
            "finished",
            f"Finished{took}: {'all ' + str(n) + ' notebooks' if n > 1 else 'the notebook'} ran.",
        )
    running = [stem[k] for k, s in states.items() if s == "running"]
    done = sum(s == "ok" for s in states.values())
    now = f"{' and '.join(running)} {'is' if len(running) == 1 else 'are'} running; " if running else ""
    return "running", (
        f"In progress: {now}{done} of {len(states)} notebooks done. This page is rewritten after each "
        "notebook (it reloads every 30 s); claims of studies not yet run show 'not measured'."
    )


def notebooks_html(run_dir: Path, status: dict) -> str:
    rows, total = [], 0.0
    for name, st in status.get("notebooks", {}).items():
        stem = Path(name).stem
        links = [f'<a href="{_e(name)}">ipynb</a>'] if (run_dir / name).exists() else []
        if (run_dir / f"{stem}.html").exists():
            links.insert(0, f'<a href="{_e(stem)}.html">html</a>')
        secs = st.get("seconds")
        total += secs or 0.0
        stages = " · ".join(f"{_e(k)} {v:.1f} s" for k, v in (st.get("stages") or {}).items())
        phases = " · ".join(f"{_e(k)} {v:.1f} s" for k, v in (st.get("phases") or {}).items())
        detail = stages + (f'<br><span class="muted">study phases: {phases}</span>' if phases else "")
        rows.append(
            f"<tr><td>{_e(stem)}</td><td>{' · '.join(links)}</td><td>{_e(st.get('status', ''))}</td>"
            f'<td class="num">{"" if secs is None else f"{secs:.1f}"}</td><td class="muted">{detail}</td></tr>'
        )
    wall = status.get("total_seconds")
    rows.append(
        f'<tr><th>total</th><th></th><th></th><th class="num">{total:.1f}</th><th class="muted">'
        f"{'' if wall is None else f'report wall time with HTML export: {wall:.1f} s'}</th></tr>"
    )
    return (
        "<table><tr><th>notebook</th><th>open</th><th>status</th><th>seconds</th>"
        f"<th>seconds per section</th></tr>{''.join(rows)}</table>"
    )


def tables_html(run_dir: Path) -> str:
    folder = run_dir / "tables"
    tables = (
        sorted(folder.glob("*.csv"), key=lambda p: (_study_number(p.name), p.name)) if folder.is_dir() else []
    )
    items = "".join(
        f'<li><a href="tables/{_e(t.name)}">{_e(t.name)}</a> <span class="muted">'
        f"{max(1, round(t.stat().st_size / 1024))} KB</span></li>"
        for t in tables
    )
    return f'<ul class="tables">{items}</ul>' if items else '<p class="muted">No tables yet.</p>'


def settings_html(status: dict, prov: dict) -> str:
    cfg = prov.get("config", {})
    dtype = prov.get("dtype", {})
    versions = prov.get("versions", {})
    rows = [
        ("preset", status.get("preset") or cfg.get("preset")),
        ("policy model", cfg.get("policy_model")),
        ("models (study 3)", ", ".join(map(str, cfg.get("models") or []))),
        (
            "dtype",
            f"{dtype.get('used', '?')} (setting: {dtype.get('setting', '?')}, device {dtype.get('device', '?')})",
        ),
        ("study-1 datasets", ", ".join(map(str, cfg.get("datasets") or []))),
        ("Pref-LaMP source", cfg.get("preflamp_source")),
        ("RM methods", ", ".join(map(str, cfg.get("methods") or []))),
        ("seeds (RMs) / data seed", f"{cfg.get('seeds')} / {cfg.get('seed')}"),
        (
            "decoding",
            f"ARGS k={cfg.get('k')}, w={cfg.get('rgd_w')}; max_new_tokens={cfg.get('max_new_tokens')}"
            + (f"; sampling temperature={cfg['sample_temperature']}" if "sample_temperature" in cfg else "")
            + (f", top-p={cfg['sample_top_p']}" if "sample_top_p" in cfg else ""),
        ),
        ("ROUGE stemming", prov.get("rouge_stemming", cfg.get("rouge_stemming"))),
        ("bootstrap resamples", cfg.get("n_boot")),
        ("code version", prov.get("code_version")),
        ("git commit", status.get("git_commit") or prov.get("git_commit")),
        (
            "packages",
            ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("torch", "transformers", "pandas")),
        ),
        ("started / finished", f"{status.get('started', '')} / {prov.get('finished', 'not yet')}"),
    ]
    body = "".join(
        f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in rows if v not in (None, "")
    )
    return (
        f'<table class="settings">{body}</table><p class="muted">Every setting, package version and '
        'the command line: <a href="provenance.json">provenance.json</a>; per-notebook state: '
        '<a href="status.json">status.json</a>.</p>'
    )


def write_index(run_dir: str | Path, status: dict) -> Path:
    """Write ``<run_dir>/index.html`` (atomically) from the run's status, provenance and files."""
    run_dir = Path(run_dir)
    prov = _read_json(run_dir / "provenance.json")
    state, sentence = run_state(status)
    note = precision_note(prov.get("dtype", {}))
    note_html = f'<p class="state precision"><b>{_e(note)}</b></p>' if note else ""
    refresh = '<meta http-equiv="refresh" content="30">' if state == "running" else ""
    title = f"Report {run_dir.name}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
{refresh}<title>{_e(title)}</title><style>{CSS}</style></head><body>
<h1>Personalized alignment analysis: run {_e(run_dir.name)}</h1>
<p class="state {state}">{_e(sentence)} Preset <b>{_e(status.get("preset", ""))}</b>, commit
<code>{_e(str(status.get("git_commit", ""))[:12])}</code>, started {_e(status.get("started", ""))}.</p>
{note_html}
<nav class="muted"><a href="#findings">Findings</a><a href="#figures">Figures</a><a href="#notebooks">Notebooks</a>
<a href="#tables">Tables</a><a href="#settings">Settings</a></nav>
<h2 id="findings">Findings: did the paper's claims hold?</h2>
{findings_html(run_dir, note)}
<h2 id="figures">Figures</h2>
{figures_html(run_dir)}
<h2 id="notebooks">Notebooks</h2>
{notebooks_html(run_dir, status)}
<h2 id="tables">Tables</h2>
{tables_html(run_dir)}
<h2 id="settings">Settings</h2>
{settings_html(status, prov)}
</body></html>
"""
    out = run_dir / "index.html"
    write_text(out, page)
    return out
