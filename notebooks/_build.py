"""Write the five study notebooks (clean: no outputs) with nbformat.

    python notebooks/_build.py          # regenerate notebooks/0*.ipynb from the cells below

The notebooks are thin: a tagged ``parameters`` cell (papermill), calls into ``analysis``, figures,
tables written to ``output_dir`` and a closing "findings" table. Edit the cells here, not in the
.ipynb files, so the notebooks stay consistent.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMS_COMMON = """\
preset: str = "embedded"  # config preset: embedded (CPU: real News Category authors + synthetic users), embedded_synthetic (quick, synthetic only) or paper (Qwen2.5 0.5-7B, GPU)
overrides: dict = {}  # config overrides, e.g. {"seeds": [0], "policy_model": "/path/to/model"}
config_path: str = ""  # optional YAML/JSON config file (applied before overrides)
output_dir: str = "."  # run folder: figures/ and tables/ are written inside it
cache_dir: str = ""  # intermediate results (resumable); empty: <output_dir>/cache
"""

# Optional[...] rather than ``X | None``: papermill's parameter parser (``--help-notebook``,
# ``inspect_notebook``) reads only ``\w[\w\[\], ]*`` annotations.
PARAMS_STUDY = """\
from typing import Optional

preset: str = "embedded"  # config preset: embedded (CPU: real News Category authors + synthetic users), embedded_synthetic (quick, synthetic only) or paper (Qwen2.5 0.5-7B, GPU)
overrides: dict = {}  # config overrides, e.g. {"seeds": [0], "policy_model": "/path/to/model"}
config_path: str = ""  # optional YAML/JSON config file (applied before overrides)
output_dir: str = ""  # run folder (figures/ and tables/ inside); empty: a new reports/interactive-<timestamp>/
cache_dir: str = ""  # intermediate results (resumable); empty: the config's, else reports/cache
"""


def _setup(keys: list[str]) -> str:
    """Notebooks 01-03's set-up: imports and one :func:`analysis.report.session.open_run` call."""
    params = ", ".join(f'"{k}": {k}' for k in keys)
    return (
        "import matplotlib.pyplot as plt\n"
        "from IPython.display import display\n\n"
        "from analysis.report.plots import save_figure, settings_columns, write_table\n"
        "from analysis.report.session import open_run\n"
        "from analysis.studies import findings\n"
        "from analysis.report.timings import time_stages\n\n"
        "run = open_run(preset, overrides, config_path, output_dir, cache_dir,\n"
        f"               params={{{params}}})  # None keeps the config's value\n"
        "cfg, out, cache = run.cfg, run.out, run.cache\n"
        "time_stages(out)  # seconds per study phase -> <out>/timings/ (the report page shows them)"
    )


def _nb(cells, title: str):
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating gives identical files
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["title"] = title
    return nb


def _params(extra: str, common: str = PARAMS_COMMON) -> nbformat.NotebookNode:
    cell = new_code_cell(common + extra)
    cell.metadata["tags"] = ["parameters"]
    return cell


def nb01():
    return _nb(
        [
            new_markdown_cell(
                "# 01 · RM accuracy vs policy accuracy (claim 1)\n\n"
                "For each dataset we train a **population of reward models** (methods × seeds × training budgets) "
                "and measure on held-out pairs\n\n"
                "* **RM accuracy**: `mean 1[r_u(x, y_w) > r_u(x, y_l)]`, and\n"
                "* **policy accuracy**: whether the ARGS scoring function built from the RM "
                "(`S_u(y) = Σ_t log π(y_t|x, y_<t) + w · r_u(x, y_≤t)`, *score* variant; or the likelihood under "
                "the RGD-adapted policy, *policy* variant) ranks the preferred response first.\n\n"
                "Kendall's τ-b between the two is computed across the population with a bootstrap interval "
                "over the trained population (the shared test set and the seeds within each (method, budget) "
                "cell resampled) and its p-value from the same replicates. **A population of fewer than 20 RMs gives an unstable τ** "
                "(five points can produce almost any τ); the embedded preset trains 5 methods × 4 seeds × 4 budgets "
                "= 80 RMs per dataset (the real News Category authors first, then the synthetic world; "
                "`embedded_synthetic`: 20). Error bars on each point are the RM's bootstrap interval over users."
            ),
            _params(
                "datasets: Optional[list] = None  # study-1 datasets; None: the config's (embedded: news_category_preflamp, "
                "synthetic_preflamp, synthetic_style_swap, synthetic_attributes)\n"
                "methods: Optional[list] = None  # RM methods; None: the config's (shared_bt, per_user_bt, lore, pal, vpl)\n"
                "seeds: Optional[list] = None  # RM training seeds; None: the config's\n"
                "budgets: Optional[list] = None  # RM training step budgets; None: the config's\n"
                "w_values: Optional[list] = None  # RGD weights w for policy accuracy; None: the config's\n"
                "k: Optional[int] = None  # ARGS top-k for the policy variant; None: the config's\n",
                PARAMS_STUDY,
            ),
            new_code_cell(_setup(["datasets", "methods", "seeds", "budgets", "w_values", "k"])),
            new_markdown_cell("## Train the populations and evaluate them"),
            new_code_cell(
                "from analysis.report.schedule import SCHEDULE\n"
                "from analysis.studies import rm_vs_policy_accuracy\n\n"
                "# in a report on CPU, notebook 02 starts next to this one once the study starts (SCHEDULE:\n"
                "# the report's fixed thread schedule, analysis.report.schedule); outside a report it does nothing\n"
                "res = rm_vs_policy_accuracy(cfg, cache, schedule=SCHEDULE)\n"
                "settings = settings_columns(cfg, methods=cfg.methods, budgets=cfg.budgets)\n"
                'for name in ("rms", "points", "tau", "pairs", "cards"):\n'
                '    write_table(res[name], out, f"study1_{name}", settings)\n'
                'display(res["rms"].groupby(["dataset", "method"])[["rm_acc", "steps_run"]].mean().round(3))'
            ),
            new_markdown_cell(
                "## The datasets\n\n"
                "One card per dataset: users, prompts, pairs per split, and the rows its loader dropped "
                "(e.g. pairs whose chosen and rejected responses are equal, in your own preference file)."
            ),
            new_code_cell('display(res["cards"].style.hide(axis="index"))'),
            new_markdown_cell(
                "## Kendall's τ per dataset, variant and w\n\n"
                "`tau_lo`, `tau_hi`, `p_value`: the 95% interval over the trained population (the test set "
                "resampled by users then pairs, and the seeds within each (method, budget) cell; every RM's "
                "two accuracies recomputed on each resample). `cluster_lo`, `cluster_hi` (`n_clusters` "
                "methods): whole methods resampled, would the link hold for other methods? `naive_lo`, "
                "`naive_hi`: RMs as exact points (too narrow). `pa_mid_share`: share of RMs with policy "
                "accuracy in (0.05, 0.95); claim 1 needs half, and reliabilities `rel_rm`, `rel_policy` "
                ">= 0.7. Only real datasets decide claim 1; the synthetic ones are known-answer checks."
            ),
            new_code_cell(
                'tau = res["tau"]\n'
                "display(tau.round(3))\n"
                'small = tau[~tau["stable_population"]]\n'
                "if len(small):\n"
                '    print(f"WARNING: {small.dataset.nunique()} dataset(s) have < 20 RMs: tau is unstable")'
            ),
            new_markdown_cell(
                "## Policy accuracy beside its gain over w = 0\n\n"
                "`policy_acc_gain` (in `points`): PA(w) − PA(w = 0) of the same RM, variant and length "
                "normalisation, paired on the same test pairs, with the same bootstrap (users, then pairs) as "
                "policy accuracy. Per setting: median policy accuracy and gain over the RMs, and the shares of "
                "RMs whose gain's 95% interval lies above or below 0."
            ),
            new_code_cell(
                "from analysis.studies.rm_policy import policy_acc_gain_table\n\n"
                'display(policy_acc_gain_table(res["points"]).round(3))'
            ),
            new_markdown_cell("## Figure: RM accuracy vs policy accuracy (score variant, w = `rgd_w`)"),
            new_code_cell(
                "from analysis.report.plots import plot_tau_by_w, plot_tau_scatter\n\n"
                'fig = plot_tau_scatter(res["points"], tau, variant="score", w=cfg.rgd_w)\n'
                'save_figure(fig, out, "study1_tau_scatter")\n'
                "plt.show()\n"
                "fig = plot_tau_by_w(tau)\n"
                'save_figure(fig, out, "study1_tau_by_w")\n'
                "plt.show()"
            ),
            new_markdown_cell("## Findings (claim 1; notebooks 02 and 03 add claims 2 and 3)"),
            new_code_cell(
                "# from this study alone: in a report notebook 02 runs next to this one, so whether its\n"
                "# tables exist yet would depend on timing\n"
                'table = findings(tau=tau, rms=res["rms"], points=res["points"], w=cfg.rgd_w)\n'
                'write_table(table, out, "study1_findings", settings_columns(cfg))\n'
                'display(table.style.hide(axis="index"))'
            ),
        ],
        "01 RM accuracy vs policy accuracy",
    )


def nb02():
    return _nb(
        [
            new_markdown_cell(
                "# 02 · Pref-LaMP decoupling (claim 2)\n\n"
                "Pref-LaMP pairs each user's real completion (chosen) with a non-personalized base generation "
                "(rejected). Per RM method we report the **RM accuracy** on held-out pairs and the **ROUGE-1/L** of "
                "its ARGS generations for the users' held-out inputs against what the users really wrote; "
                "plain greedy decoding (base) and in-context learning (ICL, k profile examples) are reference lines. "
                "Intervals: 95% bootstrap over users. Paired tests (bootstrap + Wilcoxon) compare systems per user."
            ),
            _params(
                "methods: Optional[list] = None  # RM methods; None: the config's\n"
                "rgd_w: Optional[float] = None  # ARGS weight of the main comparison; None: the config's\n"
                "generation_w: Optional[list] = None  # extra ARGS weights generated for the inspector (notebook 04); None: the config's inspector_w\n"
                "icl_k: Optional[list] = None  # ICL example counts; None: the config's\n"
                "k: Optional[int] = None  # ARGS top-k; None: the config's\n"
                'second_settings: list = ["synthetic"]  # study 2 also on these preflamp sources, labelled by dataset\n',
                PARAMS_STUDY,
            ),
            new_code_cell(_setup(["methods", "rgd_w", "icl_k", "k"])),
            new_markdown_cell("## Train one RM per method, generate, score"),
            new_code_cell(
                "import dataclasses\n\nimport pandas as pd\n\n"
                "from analysis.report.schedule import SCHEDULE, share_cpu\n"
                "from analysis.studies import preflamp_decoupling\n\n"
                "# in a report this notebook runs next to notebook 01 from the start, both on one thread (a fixed\n"
                "# schedule, so the numbers never depend on timing: analysis.report.schedule); before it trains RMs it\n"
                "# waits for the Pref-LaMP features that 01 caches (SCHEDULE). Outside a report neither does anything.\n"
                "share_cpu()\n"
                "res = preflamp_decoupling(cfg, cache, w_values=cfg.inspector_w if generation_w is None else generation_w,\n"
                "                          schedule=SCHEDULE)\n"
                "# the same study in each second setting (e.g. the synthetic world), labelled by dataset;\n"
                "# ARGS at rgd_w only there (the inspector's extra weights are for the main setting)\n"
                "second = {s: preflamp_decoupling(dataclasses.replace(cfg, preflamp_source=s), cache, schedule=SCHEDULE)\n"
                "          for s in second_settings if s != cfg.preflamp_source}\n"
                "stamp = settings_columns(cfg, rgd_w=cfg.rgd_w, retriever=cfg.retriever,\n"
                "                         icl_rendering=cfg.icl_rendering, icl_pool=cfg.icl_pool,\n"
                "                         sample_temperature=cfg.sample_temperature, sample_top_p=cfg.sample_top_p)\n"
                'for name in ("summary", "generations", "comparisons", "profiles", "rm_pairs"):\n'
                "    frames = [res[name].assign(dataset=cfg.preflamp_source)]\n"
                "    frames += [r[name].assign(dataset=s) for s, r in second.items()]\n"
                '    write_table(pd.concat(frames, ignore_index=True), out, f"study2_{name}", stamp)\n'
                'cols = ["label", "rm_acc", "rm_acc_lo", "rm_acc_hi", "rouge1", "rouge1_lo", '
                '"rouge1_hi", "rougeL", "oracle_reward", "n_users"]\n'
                'display(res["summary"][cols].round(3))'
            ),
            new_markdown_cell("## Figure: RM accuracy vs ROUGE-1"),
            new_code_cell(
                "from analysis.report.plots import plot_decoupling\n\n"
                'fig = plot_decoupling(res["summary"])\n'
                'save_figure(fig, out, "study2_decoupling")\n'
                "plt.show()"
            ),
            new_markdown_cell("## Paired comparisons over users (ROUGE-1, A − B)"),
            new_code_cell('display(res["comparisons"].round(4))'),
            new_markdown_cell("## Findings"),
            new_code_cell(
                "from analysis.report.schedule import claim_cpu\n\n"
                "claim_cpu()  # in a report: wait until notebook 01 (running next to this one) has written its tables\n"
                'table = findings(decoupling=res["summary"], tables_dir=out / "tables", w=cfg.rgd_w)\n'
                'write_table(table, out, "study2_findings", settings_columns(cfg))\n'
                'display(table.style.hide(axis="index"))'
            ),
        ],
        "02 Pref-LaMP decoupling",
    )


def nb03():
    return _nb(
        [
            new_markdown_cell(
                "# 03 · ICL vs reward-guided decoding across model sizes (claim 3)\n\n"
                "For every configured model: base greedy decoding, ICL with each k, and the **best** RGD configuration "
                "(the ARGS or best-of-n system with the highest mean ROUGE-1 on one half of the users). "
                "Bands are 95% bootstrap intervals over users; the table gives paired tests per model on the "
                "*other* half of the users, so choosing the best systems does not favour them (no winner's curse). "
                "The embedded preset has one installed causal LM (SmolLM2-135M), so its figure has a single size; "
                "the paper's claim concerns models of 3B and up (`--preset paper`)."
            ),
            _params(
                "models: Optional[list] = None  # causal LMs to compare (embedded names, folders or hub ids); "
                "None: the config's\n"
                "icl_k: Optional[list] = None  # ICL example counts; None: the config's\n"
                "methods: Optional[list] = None  # RM methods competing for 'best RGD'; None: the config's\n",
                PARAMS_STUDY,
            ),
            new_code_cell(_setup(["models", "icl_k", "methods"])),
            new_markdown_cell("## Generate and score per model"),
            new_code_cell(
                "from analysis.report.schedule import SCHEDULE\n"
                "from analysis.studies import icl_vs_rgd_scale\n\n"
                "res = icl_vs_rgd_scale(cfg, cache, schedule=SCHEDULE)  # SCHEDULE: as in notebooks 01 and 02\n"
                "settings = settings_columns(cfg, dataset=cfg.preflamp_source, rgd_w=cfg.rgd_w, "
                "models=cfg.models)\n"
                'for name in ("scale", "tests", "generations"):\n'
                '    write_table(res[name], out, f"study3_{name}", settings)\n'
                'display(res["scale"].drop(columns=["method"]).round(3))'
            ),
            new_markdown_cell("## Figure: ROUGE-1 vs model size"),
            new_code_cell(
                "from analysis.report.plots import plot_scale\n\n"
                'fig = plot_scale(res["scale"])\n'
                'save_figure(fig, out, "study3_scale")\n'
                "plt.show()"
            ),
            new_markdown_cell("## Paired tests per model (ROUGE-1, A − B)"),
            new_code_cell('display(res["tests"].round(4))'),
            new_markdown_cell("## Findings (all three claims, from this run's tables)"),
            new_code_cell(
                'table = findings(scale_tests=res["tests"], tables_dir=out / "tables", w=cfg.rgd_w)\n'
                'write_table(table, out, "study3_findings", settings_columns(cfg))\n'
                'display(table.style.hide(axis="index"))'
            ),
        ],
        "03 ICL vs RGD across sizes",
    )


def nb04():
    return _nb(
        [
            new_markdown_cell(
                "# 04 · Inspect generations\n\n"
                "Pick a run, dataset/model, user, test item, RM method and w: the user's profile examples, the input, "
                "the real completion, every system's generation with ROUGE and reward side by side, and the ICL "
                "prompt the model saw. Reads the generation tables written by notebooks 02 and 03. "
                "(Interactive widgets need a live kernel: open this notebook in JupyterLab; the exported HTML shows "
                "one static view below.)"
            ),
            _params(
                'run_dir: str = ""  # run folder to inspect; empty: this run (in a report), else reports/latest '
                "if finished, else the newest finished run\n"
                'reports_root: str = ""  # folder of runs listed in the run picker; empty: the parent of the run\n'
                'user: str = ""  # user shown in the static view; empty: the first\n'
            ),
            new_code_cell(
                "from IPython.display import HTML, display\n\n"
                "from analysis.inspect.widgets import Inspector, InspectorWidget, pick_run\n\n"
                "run = pick_run(run_dir, output_dir, reports_root)  # never a run that is still being written\n"
                "ins = Inspector(run)\n"
                'print(f"{run.name}: {len(ins.gens)} generations, datasets: {ins.datasets()}")'
            ),
            new_markdown_cell(
                "## Interactive inspector\n\n"
                "The run picker lists every run of the reports folder once by its run id (unfinished runs are "
                "marked). Open *ICL prompt the model saw* to read the exact prompt; it stays open while you change "
                "the selection. `n/a` cells do not apply to that row or dataset (the note under the table says why)."
            ),
            new_code_cell(
                "widget = InspectorWidget(run_dir=run, reports_root=reports_root or run.parent)\n"
                "display(widget.box)"
            ),
            new_markdown_cell(
                "## A static view (first dataset, first user, their first target, all methods)\n\n"
                "A real author has several held-out targets (`n_test_items`); the widget's item picker "
                "shows the others."
            ),
            new_code_cell(
                "ds = ins.datasets()[0]\n"
                "who = user or ins.users(ds)[0]\n"
                "targets = ins.test_items(ds, who)\n"
                'print(f"{who}: {len(targets)} generation target(s); shown: {targets[0]}")\n'
                'view = ins.view(ds, who, test_id=targets[0], method="all")\n'
                "display(HTML(Inspector.to_html(view)))"
            ),
        ],
        "04 Inspect generations",
    )


def nb05():
    return _nb(
        [
            new_markdown_cell(
                "# 05 · Beyond the paper: which proxy selects the reward model?\n\n"
                "A practitioner holding many candidate RMs picks one by a proxy measured on validation data. "
                "Here **every RM of study 1's population on the real authors** (methods × seeds × budgets) "
                "generates for the authors' held-out articles: **best-of-n** over one shared set of `selection_n` "
                "base samples per target (drawn once, features computed once; each RM keeps its highest-reward "
                "sample) and, for one RM per (method, budget) cell as far as `selection_args_cells` allows, "
                "**ARGS** at `rgd_w`; ROUGE-1 against the real headline. The proxies come from notebook 01's "
                "cached per-pair outcomes on the held-out preference pairs: RM accuracy, policy accuracy, policy "
                "accuracy minus its value at w = 0, and a label-free one (the spread of the RM's rewards over the "
                "samples). One **joint bootstrap** resamples authors, then each author's pairs and targets: "
                "Kendall's τ between proxy and ROUGE-1, and the **selection regret** (ROUGE-1 of the RM the "
                "proxy picks minus the best RM's, and minus a random pick's), each with a 95% interval."
            ),
            _params(
                "selection_n: Optional[int] = None  # base samples per target shared by every RM; None: the config's\n"
                "selection_args_cells: Optional[int] = None  # (method, budget) cells that also run ARGS; None: the config's\n",
                PARAMS_STUDY,
            ),
            new_code_cell(_setup(["selection_n", "selection_args_cells"])),
            new_markdown_cell("## Generate with every RM, then select"),
            new_code_cell(
                "from analysis.report.schedule import SCHEDULE\n"
                "from analysis.studies import rm_selection\n\n"
                "res = rm_selection(cfg, cache, schedule=SCHEDULE)  # reads notebook 01's cached RM population\n"
                'settings = settings_columns(cfg, dataset=f"{cfg.preflamp_source}_preflamp", rgd_w=cfg.rgd_w,\n'
                "                            selection_n=cfg.selection_n, selection_args_cells=cfg.selection_args_cells,\n"
                "                            sample_temperature=cfg.sample_temperature, sample_top_p=cfg.sample_top_p,\n"
                "                            methods=cfg.methods, budgets=cfg.budgets)\n"
                'for name in ("rms", "generations", "selection", "comparisons"):\n'
                '    write_table(res[name], out, f"study5_{name}", settings)\n'
                'gens = res["generations"]\n'
                'n_args = gens.loc[gens["system"] == "args", "rm_id"].nunique()\n'
                "print(f\"{len(res['rms'])} RMs x {gens[['user_id', 'test_id']].drop_duplicates().shape[0]} targets \"\n"
                '      f"(best-of-{cfg.selection_n}); ARGS for {n_args} RMs (selection_args_cells={cfg.selection_args_cells})")\n'
                'cols = ["system", "proxy", "tau", "tau_lo", "tau_hi", "selected", "rouge1_selected", "rouge1_best",\n'
                '        "regret_best", "regret_best_lo", "regret_best_hi", "regret_random", "regret_random_lo",\n'
                '        "regret_random_hi"]\n'
                'display(res["selection"][cols].round(3))'
            ),
            new_markdown_cell(
                "## Figure: proxy vs ROUGE-1, the selected and the best RM\n\n"
                "Star: the RM the proxy selects (ties: all tied RMs); ring: the RM with the best ROUGE-1. "
                "The panel title gives τ and the regret with their 95% intervals."
            ),
            new_code_cell(
                "from analysis.report.plots import plot_selection\n\n"
                'fig = plot_selection(res["rms"], res["selection"], system="bon")\n'
                'save_figure(fig, out, "study5_selection")\n'
                "plt.show()\n"
                'if (res["selection"]["system"] == "args").any():\n'
                '    fig = plot_selection(res["rms"], res["selection"], system="args")\n'
                '    save_figure(fig, out, "study5_selection_args")\n'
                "    plt.show()"
            ),
            new_markdown_cell(
                "## Paired differences between proxies\n\n"
                "`diff`: ROUGE-1 of proxy a's pick minus proxy b's pick, 95% interval from the same joint replicates."
            ),
            new_code_cell('display(res["comparisons"].round(4))'),
            new_markdown_cell("## Findings (row 4; rows 1-3 from this run's earlier tables)"),
            new_code_cell(
                'table = findings(selection=res["selection"], selection_comparisons=res["comparisons"],\n'
                '                 tables_dir=out / "tables", w=cfg.rgd_w)\n'
                'write_table(table, out, "study5_findings", settings_columns(cfg))\n'
                'display(table.style.hide(axis="index"))'
            ),
        ],
        "05 Which proxy selects the RM",
    )


BOOKS = {
    "01_rm_vs_policy_accuracy.ipynb": nb01,
    "02_preflamp_decoupling.ipynb": nb02,
    "03_icl_vs_rgd_scale.ipynb": nb03,
    "04_inspect_generations.ipynb": nb04,
    "05_rm_selection.ipynb": nb05,
}


def main() -> None:
    for name, make in BOOKS.items():
        nb = make()
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote notebooks/{name}")


if __name__ == "__main__":
    main()
