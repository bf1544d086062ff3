"""The functions each study notebook calls; each returns tidy pandas DataFrames (design section 7).

- :func:`rm_vs_policy_accuracy` (notebook 01, claim 1): RM population per dataset, RM accuracy vs
  policy accuracy, Kendall's tau with bootstrap CI and p-value.
- :func:`preflamp_decoupling` (notebook 02, claim 2): per RM method, RM accuracy and ROUGE of its
  ARGS generations against the users' real completions, with base and ICL as references.
- :func:`icl_vs_rgd_scale` (notebook 03, claim 3): base vs ICL (each k) vs the best RGD method
  across model sizes, paired tests per model.
- :func:`rm_selection` (notebook 05, beyond the paper): which proxy (RM accuracy, policy accuracy,
  a label-free one) selects the RM of the real population whose best-of-n / ARGS generations are best.
- :func:`findings`: the closing table of every notebook (did each claim hold in this run).

Example
-------
>>> from analysis.config.parse import load_config
>>> from analysis.studies import preflamp_decoupling
>>> res = preflamp_decoupling(load_config("embedded"), cache_dir="reports/cache")  # doctest: +SKIP
>>> res["summary"][["label", "rm_acc", "rouge1"]]  # doctest: +SKIP


The building blocks live by concern: :mod:`~analysis.studies.cache` (run cache),
:mod:`~analysis.studies.datasets` (dataset registry), :mod:`~analysis.studies.models` (model
holder), :mod:`~analysis.studies.rms` (RM training glue), :mod:`~analysis.studies.generations`
(the systems as methods of :mod:`analysis.generation.runner`, ROUGE scoring, summaries).
"""

from analysis.studies.cache import StudyCache, code_version
from analysis.studies.datasets import STUDY1_DATASETS, study1_dataset, synthetic_data, user_tasks
from analysis.studies.findings import findings
from analysis.studies.models import get_model
from analysis.studies.preflamp import icl_vs_rgd_scale, preflamp_decoupling
from analysis.studies.rm_policy import rm_vs_policy_accuracy, tau_table
from analysis.studies.rm_selection import rm_selection

__all__ = [
    "STUDY1_DATASETS",
    "StudyCache",
    "code_version",
    "findings",
    "get_model",
    "icl_vs_rgd_scale",
    "preflamp_decoupling",
    "rm_selection",
    "rm_vs_policy_accuracy",
    "study1_dataset",
    "synthetic_data",
    "tau_table",
    "user_tasks",
]
