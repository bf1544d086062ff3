"""Figures and result files of the studies (design section 7; style point 6: results as files first).

Every figure goes through :func:`save_figure` (PNG + PDF, atomically, into ``<output_dir>/figures``)
and every table behind a figure through :func:`write_table` (CSV, atomically, into
``<output_dir>/tables``, with the run's settings as extra columns so a CSV read on its own says how
it was made). Missing values stay NaN (an empty CSV cell), never 0.

The three main figures read the tidy frames returned by :mod:`analysis.studies`:

- :func:`plot_tau_scatter`: RM accuracy (x) vs policy accuracy (y), one point per RM, one panel
  per dataset, error bars = each RM's bootstrap interval over users, Kendall's tau-b with its
  bootstrap interval (resampling RMs) and p-value in the panel title.
- :func:`plot_decoupling`: RM accuracy (x) vs ROUGE-1 of the method's RGD generations (y), error
  bars both ways; base and ICL as horizontal reference lines with their interval as a band.
- :func:`plot_scale`: ROUGE-1 vs model size (log x) for base, the best RGD configuration and each
  ICL k, with interval bands.
- :func:`plot_selection`: study 5, one panel per proxy: the proxy (x) vs each RM's ROUGE-1 (y),
  the selected and the best RM marked.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg; in Jupyter: inline
import numpy as np
import pandas as pd

from analysis.io import atomic_open

METHOD_COLORS = {
    "shared_bt": "#7f7f7f",
    "per_user_bt": "#1f77b4",
    "lore": "#2ca02c",
    "pal": "#9467bd",
    "vpl": "#d62728",
    "oracle": "#ff7f0e",
    "best_of_n": "#8c564b",
}
REF_COLORS = {"base": "#444444", "base_sampled": "#999999", "icl": "#e377c2"}
_MARKERS = "osD^vP*X"

# The one-line reading of each figure (the report page prints it under the figure; keyed by the
# name given to save_figure; a name that starts with a key, e.g. ``study2_decoupling_news``, uses it).
FIGURE_CAPTIONS = {
    "study1_tau_scatter": (
        "Claim 1. x: an RM's accuracy on held-out pairs; y: the policy accuracy of its ARGS scoring "
        "function (score variant, w = rgd_w); one point per RM, one panel per dataset, bars = 95% CI over "
        "users. Read: a weak link is a cloud without a rising trend; the panel title gives Kendall's tau "
        "with its 95% interval over the trained population (test set and seeds resampled; real datasets "
        "decide the claim, synthetic ones are known-answer checks)."
    ),
    "study1_tau_by_w": (
        "Claim 1 across weights. x: the RGD weight w; y: Kendall's tau between RM accuracy and policy "
        "accuracy, one line per policy-accuracy variant, bars = 95% interval (test set x seeds in cells "
        "where the tau table's interval column says so, else RMs only). Read: a weak link at a w when its "
        "interval lies inside (-0.4, 0.4)."
    ),
    "study2_decoupling": (
        "Claim 2. x: an RM method's accuracy on held-out Pref-LaMP pairs; y: ROUGE-1 of its generations "
        "against the user's real text (filled: ARGS, open: best-of-n); lines: base and ICL references with "
        "their 95% band. Read: decoupling means points far apart on x at nearly the same height."
    ),
    "study3_scale": (
        "Claim 3. x: model size (log scale); y: ROUGE-1 against the user's real text for base, the best RGD "
        "system and each ICL k, bars/bands = 95% CI over users. Read: the claim holds where the ICL "
        "curves lie above the RGD curve from 3B up."
    ),
    "study5_selection": (
        "Beyond the paper: which proxy selects the RM. One panel per proxy (x: its value on the held-out "
        "preference pairs, or the label-free reward spread over the samples); y: the RM's best-of-n ROUGE-1 "
        "on the authors' held-out targets; one point per RM of the real population, bars = 95% joint "
        "bootstrap (users, then pairs and targets). Star: the RM the proxy selects; ring: the best RM. "
        "Read: a proxy that selects well puts its star near the ring (regret near 0 in the panel title)."
    ),
}


def figure_caption(name: str) -> str | None:
    """The one-line reading of figure ``name`` (:data:`FIGURE_CAPTIONS`; longest matching prefix)."""
    keys = [k for k in FIGURE_CAPTIONS if name == k or name.startswith(k + "_")]
    return FIGURE_CAPTIONS[max(keys, key=len)] if keys else None


def method_color(method: str) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return cycle[sum(map(ord, method)) % len(cycle)]


# --------------------------------------------------------------------------- files


def save_figure(fig, output_dir: str | os.PathLike, name: str, dpi: int = 150) -> dict[str, Path]:
    """Write ``fig`` as ``<output_dir>/figures/<name>.png`` and ``.pdf`` (each atomically).

    Returns ``{"png": path, "pdf": path}``. The PDF carries no creation date, so two runs that
    draw the same figure write the same bytes.
    """
    folder = Path(output_dir) / "figures"
    out = {}
    for fmt in ("png", "pdf"):
        path = folder / f"{name}.{fmt}"
        with atomic_open(path, "wb") as fh:
            meta = {"CreationDate": None} if fmt == "pdf" else None
            fig.savefig(fh, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
        out[fmt] = path
    return out


def settings_columns(cfg=None, **extra) -> dict:
    """The run settings stamped on every table: model, seeds, ROUGE stemming, bootstrap size, ...

    ``cfg`` is a :class:`analysis.config.schema.StudyConfig` (or None); ``extra`` adds or overrides columns.
    Lists are written as ``;``-joined strings so each setting stays one CSV cell.
    """
    cols: dict = {}
    if cfg is not None:
        cols = {
            "preset": cfg.preset,
            "policy_model": cfg.policy_model,
            "seeds": ";".join(map(str, cfg.seeds)),
            "data_seed": cfg.seed,
            "rouge_stemming": cfg.rouge_stemming,
            "feature_layer": cfg.feature_layer,
            "args_k": cfg.k,
            "max_new_tokens": cfg.max_new_tokens,
            "n_boot": cfg.n_boot,
        }
    for k, v in extra.items():
        cols[k] = ";".join(map(str, v)) if isinstance(v, list | tuple) else v
    return cols


def write_table(
    df: pd.DataFrame, output_dir: str | os.PathLike, name: str, settings: dict | None = None
) -> Path:
    """Write ``df`` as ``<output_dir>/tables/<name>.csv`` atomically; ``settings`` become constant
    columns (existing columns of the same name are kept as they are). NaN is written as an empty cell.
    """
    df = df.copy()
    for key, value in (settings or {}).items():
        if key not in df.columns:
            df[key] = value
    path = Path(output_dir) / "tables" / f"{name}.csv"
    # csv quotes a field holding "\n" but not one holding a bare "\r", which read_csv then takes for
    # a line break (a generation may contain one): such a table quotes every text field instead
    has_cr = any(
        df[c].map(lambda v: isinstance(v, str) and "\r" in v).any()
        for c in df.columns
        if not pd.api.types.is_numeric_dtype(df[c])
    )
    with atomic_open(path, "w") as fh:
        df.to_csv(fh, index=False, quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL)
    return path


# --------------------------------------------------------------------------- helpers


def _err(df: pd.DataFrame, col: str) -> np.ndarray | None:
    """Asymmetric error bars (2, N) from ``col``, ``col_lo``, ``col_hi``; NaN -> 0 length."""
    lo, hi = f"{col}_lo", f"{col}_hi"
    if lo not in df or hi not in df:
        return None
    v = df[col].to_numpy(float)
    e = np.vstack([v - df[lo].to_numpy(float), df[hi].to_numpy(float) - v])
    return np.nan_to_num(np.clip(e, 0, None))


def _fmt(x: float, digits: int = 2) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p=nan"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _grid(n: int, width: float = 4.6, height: float = 4.2, max_cols: int = 3):
    cols = min(max(n, 1), max_cols)
    rows = math.ceil(max(n, 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _size_label(size_b: float) -> str:
    if size_b >= 1:
        return f"{size_b:.3g}B"
    if size_b >= 1e-3:
        return f"{size_b * 1e3:.3g}M"
    return f"{size_b * 1e6:.3g}K"


# --------------------------------------------------------------------------- study 1


def plot_tau_scatter(
    points: pd.DataFrame,
    tau: pd.DataFrame,
    *,
    variant: str = "score",
    w: float = 1.0,
    length_norm: bool = False,
    x: str = "rm_acc",
    y: str = "policy_acc",
    title: str | None = None,
):
    """RM accuracy vs policy accuracy, one point per RM, one panel per dataset.

    ``points``: one row per (dataset, rm_id, variant, length_norm, w) with ``method``, ``budget``,
    ``rm_acc[_lo,_hi]`` and ``policy_acc[_lo,_hi]`` (bootstrap over users). ``tau``: one row per
    (dataset, variant, length_norm, w) with ``tau, tau_lo, tau_hi, p_value, n_rms``. The panels
    show the slice (variant, w, length_norm); colour = RM method, marker = training budget. Rows
    with ``sensitivity`` true (RMs with raw rewards, left out of tau) are hollow grey circles.
    """
    sel = points[
        (points["variant"] == variant) & np.isclose(points["w"], w) & (points["length_norm"] == length_norm)
    ]
    datasets = list(dict.fromkeys(points["dataset"]))
    fig, axes = _grid(len(datasets))
    budgets = sorted(points["budget"].dropna().unique()) if "budget" in points else []
    for ax, ds in zip(axes, datasets, strict=True):
        d = sel[sel["dataset"] == ds]
        sens = (
            d["sensitivity"].fillna(False).astype(bool) if "sensitivity" in d else pd.Series(False, d.index)
        )
        for method, g in d[~sens].groupby("method", sort=False):
            for j, b in enumerate(budgets):
                gb = g[g["budget"] == b]
                if gb.empty:
                    continue
                ax.errorbar(
                    gb[x],
                    gb[y],
                    xerr=_err(gb, x),
                    yerr=_err(gb, y),
                    fmt=_MARKERS[j % len(_MARKERS)],
                    color=method_color(method),
                    ecolor=method_color(method),
                    elinewidth=0.8,
                    alpha=0.75,
                    capsize=2,
                    ms=6,
                    label=f"{method} ({int(b)} steps)",
                )
        if sens.any():  # the raw-reward sensitivity RMs: hollow grey, not part of tau
            gs = d[sens]
            ax.errorbar(
                gs[x],
                gs[y],
                xerr=_err(gs, x),
                yerr=_err(gs, y),
                fmt="o",
                mfc="none",
                color="0.35",
                ecolor="0.6",
                elinewidth=0.8,
                capsize=2,
                ms=7,
                label="raw reward (sensitivity, not in τ)",
            )
        t = tau[
            (tau["dataset"] == ds)
            & (tau["variant"] == variant)
            & np.isclose(tau["w"], w)
            & (tau["length_norm"] == length_norm)
        ]
        if len(t):
            r = t.iloc[0]
            ax.set_title(
                f"{ds}\nτ = {_fmt(r['tau'])} [{_fmt(r['tau_lo'])}, {_fmt(r['tau_hi'])}], "
                f"{_fmt_p(r['p_value'])}, n = {int(r['n_rms'])} RMs"
                + (
                    f"\nover methods [{_fmt(r['cluster_lo'])}, {_fmt(r['cluster_hi'])}]"
                    if "cluster_lo" in r.index and not pd.isna(r["cluster_lo"])
                    else ""
                )
                if not math.isnan(r["tau"])
                else f"{ds}\nτ undefined: all {int(r['n_rms'])} RMs tie on an axis",
                fontsize=10,
            )
        else:
            ax.set_title(ds, fontsize=10)
        ax.set_xlabel("RM accuracy (held-out pairs)")
        ax.set_ylabel(f"policy accuracy ({variant}{', len-norm' if length_norm else ''}, w = {w:g})")
        ax.axhline(0.5, color="0.8", lw=0.8, ls=":")
        ax.axvline(0.5, color="0.8", lw=0.8, ls=":")
        ax.grid(alpha=0.25)
    if axes:
        legend: dict = {}  # every panel's entries once (a panel may lack a method or the sensitivity RMs)
        for a in axes:
            for h, lab in zip(*a.get_legend_handles_labels(), strict=True):
                legend.setdefault(lab, h)
        handles, labels = list(legend.values()), list(legend)
        if handles:
            fig.legend(
                handles,
                labels,
                loc="lower center",
                ncol=min(5, len(labels)),
                fontsize=8,
                bbox_to_anchor=(0.5, -0.02),
                frameon=False,
            )
    fig.suptitle(
        title
        or "RM accuracy vs policy accuracy (Kendall τ-b, 95% interval over the trained population: "
        "test set x seeds in cells; 'over methods': whole methods resampled)",
        y=1.02,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_tau_by_w(tau: pd.DataFrame, title: str | None = None):
    """Kendall's tau (with interval) against the RGD weight w, one line per policy-accuracy
    variant, one panel per dataset."""
    datasets = list(dict.fromkeys(tau["dataset"]))
    fig, axes = _grid(len(datasets), height=3.6)
    ws = sorted(tau["w"].unique())
    span = max(ws[-1] - ws[0], 1.0) if ws else 1.0
    # one colour and marker per (variant, length_norm) in every panel: a dataset may lack a variant
    # (pa_policy_datasets: real gives the synthetic checks the score variant only)
    lines = sorted({(str(v), bool(ln)) for v, ln in tau[["variant", "length_norm"]].itertuples(index=False)})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, ds in zip(axes, datasets, strict=True):
        d = tau[tau["dataset"] == ds]
        for (variant, ln), g in d.groupby(["variant", "length_norm"], sort=True):
            i = lines.index((str(variant), bool(ln)))
            g = g.sort_values("w")
            off = (i - (len(lines) - 1) / 2) * 0.02 * span  # dodge so intervals do not hide each other
            ax.errorbar(
                g["w"] + off,
                g["tau"],
                yerr=_err(g, "tau"),
                marker=_MARKERS[i % len(_MARKERS)],
                color=colors[i % len(colors)],
                capsize=2,
                label=f"{variant}{' len-norm' if ln else ''}",
            )
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_title(
            ds
            + (
                "\n(gaps: τ undefined, every RM has the same policy accuracy)"
                if d["tau"].isna().any()
                else ""
            ),
            fontsize=10,
        )
        ax.set_xticks(ws)
        ax.set_xlim(ws[0] - 0.1 * span, ws[-1] + 0.1 * span)
        ax.set_xlabel("RGD weight w")
        ax.set_ylabel("Kendall τ-b (RM acc vs policy acc)")
        ax.set_ylim(-1.05, 1.05)
        ax.grid(alpha=0.25)
    if axes:
        legend: dict = {}  # every panel's lines once
        for a in axes:
            for h, lab in zip(*a.get_legend_handles_labels(), strict=True):
                legend.setdefault(lab, h)
        axes[0].legend(list(legend.values()), list(legend), fontsize=8)
    fig.suptitle(title or "Agreement between RM accuracy and policy accuracy across w", y=1.02)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- study 2


def plot_decoupling(summary: pd.DataFrame, *, metric: str = "rouge1", title: str | None = None):
    """RM accuracy (x) vs ROUGE of RGD generations (y) per RM method; base / ICL as reference lines.

    ``summary``: one row per system with ``kind`` in {"rgd" (ARGS: filled circles), "bon" (best-of-n:
    open squares), "base", "base_sampled" (one sample, best-of-n's settings), "icl"}, ``method``, ``label``,
    ``rm_acc[_lo,_hi]`` (NaN for base / ICL) and ``<metric>[_lo,_hi]`` (bootstrap over users).
    """
    fig, ax = plt.subplots(figsize=(6.8, 4.8))
    rgd = summary[summary["kind"].isin(["rgd", "bon"])]
    for _, r in rgd.iterrows():
        one = rgd.loc[[r.name]]
        bon = r["kind"] == "bon"
        ax.errorbar(
            one["rm_acc"],
            one[metric],
            xerr=_err(one, "rm_acc"),
            yerr=_err(one, metric),
            fmt="s" if bon else "o",
            mfc="white" if bon else None,
            color=method_color(r["method"]),
            capsize=3,
            ms=7,
            label=r["label"],
        )
    refs = summary[summary["kind"].isin(["base", "base_sampled", "icl"])]
    styles = ["--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]
    for i, (_, r) in enumerate(refs.iterrows()):
        color = REF_COLORS.get(r["kind"], "0.3")
        ls = {"base": "-", "base_sampled": (0, (1, 1))}.get(r["kind"]) or styles[i % len(styles)]
        ax.axhline(r[metric], color=color, ls=ls, lw=1.3, label=f"{r['label']} (reference)")
        if f"{metric}_lo" in r and not math.isnan(r[f"{metric}_lo"]):
            ax.axhspan(r[f"{metric}_lo"], r[f"{metric}_hi"], color=color, alpha=0.08)
    ax.set_xlabel("RM accuracy on held-out Pref-LaMP pairs")
    ax.set_ylabel(f"{metric.upper().replace('ROUGE', 'ROUGE-')} of generations vs the user's real text")
    ax.grid(alpha=0.25)
    lo = np.nanmin(rgd["rm_acc_lo"]) if len(rgd) else 0.4
    hi = np.nanmax(rgd["rm_acc_hi"]) if len(rgd) else 1.0
    if np.isfinite(lo) and np.isfinite(hi):
        ax.set_xlim(min(lo, 0.45) - 0.03, max(hi, 0.55) + 0.03)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(title or "Decoupling: RM accuracy vs generation quality (95% CI over users)", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- study 3


def plot_scale(scale: pd.DataFrame, *, metric: str = "rouge1", title: str | None = None):
    """ROUGE vs model size (log x): base, best RGD and each ICL k, with interval bands.

    ``scale``: one row per (model, system) with ``size_b`` (billions of parameters), ``system``
    (e.g. "base", "rgd_best", "icl_k4"), ``label`` and ``<metric>[_lo,_hi]``.
    """
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    systems = list(dict.fromkeys(scale["system"]))
    n_sys = len(systems)
    icl_sys = [s for s in systems if s.startswith("icl")]
    cmap = plt.get_cmap("RdPu")
    for s in systems:
        g = scale[scale["system"] == s].sort_values("size_b")
        if s in ("base", "base_sampled"):
            color, marker = REF_COLORS[s], "s" if s == "base" else "D"
        elif s.startswith("rgd"):
            color, marker = METHOD_COLORS["per_user_bt"], "o"
        else:
            color, marker = cmap(0.45 + 0.5 * (icl_sys.index(s) + 1) / max(len(icl_sys), 1)), "^"
        label = g["label"].iloc[0] if "label" in g else s
        dodge = 1.03 ** (systems.index(s) - (n_sys - 1) / 2)  # multiplicative (log x): markers stay apart
        ax.errorbar(
            g["size_b"] * dodge,
            g[metric],
            yerr=_err(g, metric),
            color=color,
            marker=marker,
            capsize=3,
            label=label,
        )
        if len(g) > 1 and f"{metric}_lo" in g:
            ax.fill_between(g["size_b"], g[f"{metric}_lo"], g[f"{metric}_hi"], color=color, alpha=0.12)
    ax.set_xscale("log")
    sizes = sorted(scale["size_b"].dropna().unique())
    if sizes:
        ax.set_xticks(sizes)
        ax.set_xticklabels([_size_label(s) for s in sizes])
        ax.minorticks_off()
        if len(sizes) == 1:
            ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
    ax.set_xlabel("model size (billions of parameters, log scale)")
    ax.set_ylabel(f"{metric.upper().replace('ROUGE', 'ROUGE-')} vs the user's real text")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(title or "ICL vs reward-guided decoding across model sizes (95% CI over users)", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- study 5

_PROXY_AXES = {
    "rm_acc": "RM accuracy (held-out pairs)",
    "policy_acc": "policy accuracy (score, w = rgd_w)",
    "policy_acc_policy": "policy accuracy (policy variant, w = rgd_w)",
    "pa_gain": "policy accuracy minus its value at w = 0",
    "reward_spread": "reward spread over the samples (label-free)",
}


def plot_selection(
    rms: pd.DataFrame, selection: pd.DataFrame, *, system: str = "bon", title: str | None = None
):
    """Study 5: one panel per proxy, the proxy (x) vs each RM's ROUGE-1 (y), one point per RM.

    ``rms``: one row per RM with ``method``, each proxy and ``rouge1`` (best-of-n; ``rouge1_args``
    for ``system="args"``), each with ``_lo``/``_hi``. ``selection``: one row per (system, proxy)
    with ``selected`` (``;``-joined rm_ids), ``best_rm``, ``tau[_lo,_hi]``, ``regret_best[_lo,_hi]``.
    The selected RM(s) get a star, the best RM a ring.
    """
    y = "rouge1" if system == "bon" else "rouge1_args"
    sel = selection[selection["system"] == system] if "system" in selection.columns else selection
    proxies = list(sel["proxy"])
    fig, axes = _grid(len(proxies), width=4.4, height=3.9)
    d = rms.dropna(subset=[y]).reset_index(drop=True)
    for ax, (_, r) in zip(axes, sel.iterrows(), strict=True):
        p = r["proxy"]
        for method, g in d.groupby("method", sort=False):
            ax.errorbar(
                g[p],
                g[y],
                xerr=_err(g, p),
                yerr=_err(g, y),
                fmt="o",
                ms=4.5,
                color=method_color(method),
                ecolor=method_color(method),
                elinewidth=0.6,
                alpha=0.55,
                capsize=1.5,
                label=method,
            )
        picked = d[d["rm_id"].isin(str(r["selected"]).split(";"))]
        ax.scatter(
            picked[p],
            picked[y],
            marker="*",
            s=260,
            color="#ffbf00",
            edgecolor="black",
            lw=0.9,
            zorder=5,
            label="selected by this proxy",
        )
        best = d[d["rm_id"] == r["best_rm"]]
        ax.scatter(
            best[p],
            best[y],
            marker="o",
            s=240,
            facecolor="none",
            edgecolor="black",
            lw=1.8,
            zorder=6,
            label="best RM (ROUGE-1)",
        )
        ax.set_title(
            f"{_PROXY_AXES.get(p, p)}\nτ = {_fmt(r['tau'])} [{_fmt(r['tau_lo'])}, {_fmt(r['tau_hi'])}], "
            f"regret {_fmt(r['regret_best'], 3)} [{_fmt(r['regret_best_lo'], 3)}, {_fmt(r['regret_best_hi'], 3)}]",
            fontsize=9,
        )
        ax.set_xlabel(_PROXY_AXES.get(p, p), fontsize=9)
        ax.set_ylabel(f"ROUGE-1 ({'best-of-n' if system == 'bon' else 'ARGS'}, held-out targets)", fontsize=9)
        ax.grid(alpha=0.25)
    if axes:
        handles, labels = axes[0].get_legend_handles_labels()
        seen = dict(zip(labels, handles, strict=True))
        fig.legend(
            list(seen.values()),
            list(seen),
            loc="lower center",
            ncol=min(7, len(seen)),
            fontsize=8,
            bbox_to_anchor=(0.5, -0.01),
            frameon=False,
        )
    n = int(sel["n_rms"].iloc[0]) if len(sel) and "n_rms" in sel else len(d)
    fig.suptitle(
        title
        or f"Which proxy selects the RM that generates best? ({n} RMs, "
        f"{'best-of-n over shared samples' if system == 'bon' else 'ARGS'}; bars: 95% joint bootstrap; "
        "regret = selected - best ROUGE-1)",
        y=1.01,
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
