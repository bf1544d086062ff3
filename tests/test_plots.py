"""Figures and result files: PNG + PDF written atomically, tables with settings, readable panels."""

import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis.config.parse import load_config
from analysis.report.plots import (
    plot_decoupling,
    plot_scale,
    plot_tau_by_w,
    plot_tau_scatter,
    save_figure,
    settings_columns,
    write_table,
)


def _points():
    rows = []
    for ds in ("d1", "d2"):
        for i, m in enumerate(("shared_bt", "lore")):
            for b in (10, 100):
                acc = 0.5 + 0.1 * i + (0.05 if b == 100 else 0)
                for w in (0.0, 1.0):
                    rows.append(
                        {
                            "dataset": ds,
                            "rm_id": f"{m}/{b}",
                            "method": m,
                            "budget": b,
                            "rm_acc": acc,
                            "rm_acc_lo": acc - 0.1,
                            "rm_acc_hi": acc + 0.1,
                            "variant": "score",
                            "length_norm": False,
                            "w": w,
                            "policy_acc": 0.6,
                            "policy_acc_lo": 0.5,
                            "policy_acc_hi": 0.7,
                        }
                    )
    return pd.DataFrame(rows)


def _tau():
    return pd.DataFrame(
        [
            {
                "dataset": ds,
                "variant": "score",
                "length_norm": False,
                "w": w,
                "tau": 0.123,
                "tau_lo": -0.2,
                "tau_hi": 0.4,
                "p_value": 0.04,
                "n_rms": 4,
            }
            for ds in ("d1", "d2")
            for w in (0.0, 1.0)
        ]
    )


def test_save_figure_writes_png_and_pdf_atomically(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    paths = save_figure(fig, tmp_path, "demo")
    assert paths["png"] == tmp_path / "figures" / "demo.png"
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "demo.pdf",
        "demo.png",
    ]  # no temp files
    first = paths["pdf"].read_bytes()
    assert b"/CreationDate" not in first
    time.sleep(1.1)  # a creation date in seconds would now differ
    again = save_figure(fig, tmp_path / "again", "demo")
    assert again["pdf"].read_bytes() == first and again["png"].read_bytes() == paths["png"].read_bytes()
    plt.close(fig)


def test_write_table_round_trips_text_with_bare_carriage_returns(tmp_path):
    df = pd.DataFrame(
        {"text": ["a\rb", "line\nbreak", "plain"], "w": [1.0, float("nan"), 2.0], "n": [1, 2, 3]}
    )
    path = write_table(df, tmp_path, "gens")
    back = pd.read_csv(path)
    assert back["text"].tolist() == df["text"].tolist() and back["n"].tolist() == [1, 2, 3]
    assert back["w"].iloc[0] == 1.0 and math.isnan(back["w"].iloc[1])
    # a table without a bare \r keeps the minimal quoting (its bytes do not change)
    write_table(df.iloc[2:], tmp_path, "plain")
    assert (tmp_path / "tables" / "plain.csv").read_text() == "text,w,n\nplain,2.0,3\n"


def test_write_table_adds_settings_and_keeps_nan(tmp_path):
    cfg = load_config("embedded_synthetic", {"seeds": [3, 4], "rouge_stemming": False})
    df = pd.DataFrame({"method": ["a", "b"], "rm_acc": [0.75, float("nan")], "seeds": ["mine", "mine"]})
    path = write_table(df, tmp_path, "t", settings_columns(cfg, extra_list=[1, 2]))
    back = pd.read_csv(path)
    assert path == tmp_path / "tables" / "t.csv"
    assert back["rouge_stemming"].tolist() == [False, False]
    assert back["policy_model"].iloc[0] == "smollm2-135m-instruct"
    assert back["extra_list"].iloc[0] == "1;2"
    assert back["seeds"].tolist() == ["mine", "mine"]  # an existing column is not overwritten
    assert math.isnan(back["rm_acc"].iloc[1])  # missing stays NaN, never 0


def test_tau_scatter_one_panel_per_dataset_with_tau_in_title():
    fig = plot_tau_scatter(_points(), _tau(), variant="score", w=1.0)
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 2
    for ax, ds in zip(axes, ("d1", "d2"), strict=True):
        title = ax.get_title()
        assert title.startswith(ds) and "τ = 0.12 [-0.20, 0.40]" in title and "p=0.040" in title
        assert "RM accuracy" in ax.get_xlabel() and "policy accuracy" in ax.get_ylabel()
        # 4 RMs per panel, each drawn with x and y error bars
        assert len(ax.containers) == 4 and all(c.has_xerr and c.has_yerr for c in ax.containers)
    plt.close(fig)


def test_tau_scatter_draws_sensitivity_rms_apart_and_legends_every_panel():
    pts = _points()
    pts["sensitivity"] = False
    raw = pts[(pts["dataset"] == "d2") & (pts["rm_id"] == "lore/100")].assign(
        rm_id="lore/100/raw", sensitivity=True
    )
    fig = plot_tau_scatter(pd.concat([pts, raw], ignore_index=True), _tau(), variant="score", w=1.0)
    a1, a2 = [a for a in fig.axes if a.get_visible()]
    assert len(a1.containers) == 4 and len(a2.containers) == 5  # 4 population RMs + the raw-reward one
    sens = [c for c in a2.containers if c.get_label().startswith("raw reward")]
    assert len(sens) == 1 and sens[0].lines[0].get_markerfacecolor() == "none"
    # the only panel with a sensitivity RM is the second: its entry still reaches the figure legend
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "raw reward (sensitivity, not in τ)" in labels and len(labels) == 5
    plt.close(fig)


def test_tau_by_w_plots_each_variant():
    fig = plot_tau_by_w(_tau())
    ax = fig.axes[0]
    line = ax.containers[0].lines[0]
    assert list(line.get_xdata()) == pytest.approx([0.0, 1.0]) and list(line.get_ydata()) == [0.123, 0.123]
    plt.close(fig)


def test_tau_by_w_keeps_each_variants_colour_when_a_dataset_lacks_one():
    """d1 has the policy and score variants, d2 only score: score is the same colour and marker in
    both panels and the legend names every line."""
    t = _tau()
    t = pd.concat([t, t[t["dataset"] == "d1"].assign(variant="policy", tau=-0.3)], ignore_index=True)
    fig = plot_tau_by_w(t)
    a1, a2 = [a for a in fig.axes if a.get_visible()]
    style = {
        (i, c.get_label()): (c.lines[0].get_color(), c.lines[0].get_marker())
        for i, a in enumerate((a1, a2))
        for c in a.containers
    }
    assert style[(0, "score")] == style[(1, "score")] != style[(0, "policy")]
    assert [c.get_label() for c in a2.containers] == ["score"]
    assert sorted(x.get_text() for x in a1.get_legend().get_texts()) == ["policy", "score"]
    plt.close(fig)


def test_decoupling_reference_lines_and_error_bars():
    summ = pd.DataFrame(
        [
            {
                "kind": "base",
                "method": "",
                "label": "base",
                "rm_acc": np.nan,
                "rm_acc_lo": np.nan,
                "rm_acc_hi": np.nan,
                "rouge1": 0.20,
                "rouge1_lo": 0.15,
                "rouge1_hi": 0.25,
            },
            {
                "kind": "icl",
                "method": "icl",
                "label": "ICL k=4",
                "rm_acc": np.nan,
                "rm_acc_lo": np.nan,
                "rm_acc_hi": np.nan,
                "rouge1": 0.40,
                "rouge1_lo": 0.35,
                "rouge1_hi": 0.45,
            },
            {
                "kind": "rgd",
                "method": "lore",
                "label": "lore",
                "rm_acc": 0.8,
                "rm_acc_lo": 0.7,
                "rm_acc_hi": 0.9,
                "rouge1": 0.22,
                "rouge1_lo": 0.2,
                "rouge1_hi": 0.24,
            },
            {
                "kind": "rgd",
                "method": "shared_bt",
                "label": "shared",
                "rm_acc": 0.6,
                "rm_acc_lo": 0.5,
                "rm_acc_hi": 0.7,
                "rouge1": 0.21,
                "rouge1_lo": 0.19,
                "rouge1_hi": 0.23,
            },
        ]
    )
    bon = {
        "kind": "bon",
        "method": "lore",
        "label": "lore (best-of-4)",
        "rm_acc": 0.8,
        "rm_acc_lo": 0.7,
        "rm_acc_hi": 0.9,
        "rouge1": 0.3,
        "rouge1_lo": 0.25,
        "rouge1_hi": 0.35,
    }
    summ = pd.concat([summ, pd.DataFrame([bon])], ignore_index=True)
    fig = plot_decoupling(summ)
    ax = fig.axes[0]
    hlines = sorted(
        round(line.get_ydata()[0], 3)
        for line in ax.lines
        if len(set(line.get_ydata())) == 1 and line.get_xdata()[0] == 0
    )
    assert 0.2 in hlines and 0.4 in hlines
    assert len(ax.containers) == 3 and all(c.has_xerr and c.has_yerr for c in ax.containers)
    assert [c.lines[0].get_marker() for c in ax.containers] == ["o", "o", "s"]  # best-of-n: squares
    labels = ax.get_legend_handles_labels()[1]
    assert "ICL k=4 (reference)" in labels and "lore" in labels and "lore (best-of-4)" in labels
    plt.close(fig)


def test_scale_plot_log_x_with_bands():
    rows = []
    for size in (0.5, 7.0):
        for s, v in (("base", 0.2), ("rgd_best", 0.25), ("icl_k1", 0.3), ("icl_k4", 0.35)):
            rows.append(
                {
                    "model": f"m{size}",
                    "size_b": size,
                    "system": s,
                    "label": s,
                    "rouge1": v,
                    "rouge1_lo": v - 0.02,
                    "rouge1_hi": v + 0.02,
                }
            )
    fig = plot_scale(pd.DataFrame(rows))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["500M", "7B"]
    assert len(ax.collections) >= 4  # one band per system (plus error-bar line collections)
    assert len(ax.containers) == 4
    plt.close(fig)


def test_tau_scatter_says_when_tau_is_undefined():
    tau = _tau()
    tau.loc[tau["dataset"] == "d2", ["tau", "tau_lo", "tau_hi", "p_value"]] = float("nan")
    fig = plot_tau_scatter(_points(), tau, w=1.0)
    assert fig.axes[1].get_title() == "d2\nτ undefined: all 4 RMs tie on an axis"
    plt.close(fig)


def test_selection_plot_one_panel_per_proxy_marks_the_selected_and_the_best_rm():
    from analysis.report.plots import plot_selection

    rng = np.random.default_rng(0)
    n = 12
    rms = pd.DataFrame({"rm_id": [f"r{i}" for i in range(n)], "method": ["lore", "pal", "vpl"] * 4})
    for c in ("rm_acc", "policy_acc", "rouge1"):
        rms[c] = rng.uniform(0.3, 0.7, n)
        rms[f"{c}_lo"], rms[f"{c}_hi"] = rms[c] - 0.05, rms[c] + 0.05
    best = rms.loc[rms["rouge1"].idxmax(), "rm_id"]
    sel = pd.DataFrame(
        [
            {"system": "bon", "proxy": p, "selected": rms.loc[rms[p].idxmax(), "rm_id"], "best_rm": best}
            | {"tau": 0.1, "tau_lo": -0.2, "tau_hi": 0.4, "regret_best": -0.05, "n_rms": n}
            | {"regret_best_lo": -0.1, "regret_best_hi": 0.0}
            for p in ("rm_acc", "policy_acc")
        ]
    )
    fig = plot_selection(rms, sel)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 and [ax.get_xlabel() for ax in axes][0].startswith("RM accuracy")
    for ax, p in zip(axes, ("rm_acc", "policy_acc"), strict=True):
        assert "ROUGE-1" in ax.get_ylabel() and "regret -0.050" in ax.get_title()
        star = next(c for c in ax.collections if c.get_label() == "selected by this proxy")
        ring = next(c for c in ax.collections if c.get_label() == "best RM (ROUGE-1)")
        r = rms.set_index("rm_id")
        picked = sel.set_index("proxy").loc[p, "selected"]
        assert star.get_offsets().tolist() == [[r.loc[picked, p], r.loc[picked, "rouge1"]]]
        assert ring.get_offsets().tolist() == [[r.loc[best, p], r.loc[best, "rouge1"]]]
    plt.close(fig)
