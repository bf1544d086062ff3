"""StudyConfig: every user setting of the studies, with its default and meaning."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

CONFIG_VERSION = 1
ICL_POOLS = ("train", "profile")  # icl_pool: the RMs' training items (ICL parity) or the whole profile
PA_POLICY_DATASETS = ("all", "real")  # pa_policy_datasets: which study-1 datasets get the policy variant


@dataclass
class StudyConfig:
    """Everything a study run depends on. Field comments are the documentation."""

    preset: str = "embedded"  # name of the preset this config started from
    # --- models
    policy_model: str = "smollm2-135m-instruct"  # causal LM for studies 1-2 (embedded name, folder or hub id)
    models: list[str] = field(
        default_factory=lambda: ["smollm2-135m-instruct"]
    )  # study 3: models across sizes
    model_sizes_b: dict[str, float] = field(default_factory=lambda: {"smollm2-135m-instruct": 0.135})
    device: str = "cpu"  # cpu | cuda | cuda:N
    dtype: str = "auto"  # one of analysis.models.loading.DTYPES; auto: float32 on CPU (any CPU), bfloat16 (else float16) on CUDA (models.resolve_dtype)
    threads: int = 2  # torch.set_num_threads on CPU
    trust_remote_code: bool = False  # never on unless asked for
    feature_layer: int = -1  # hidden layer giving phi(x, y) (index into hidden_states)
    # --- data
    datasets: list[str] = field(
        default_factory=lambda: ["synthetic_preflamp", "synthetic_style_swap", "synthetic_attributes"]
    )  # study 1 datasets
    preflamp_source: str = "synthetic"  # study 2-3 users: one of analysis.data.loaders.TASK_SOURCES
    data_paths: dict[str, str] = field(
        default_factory=dict
    )  # e.g. {"news_category": "...jsonl", "lamp": "dir"}; a study-1 name that is not built in: the user's preference file / folder / hub:owner/name
    data_columns: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # column mapping of a user's preference dataset, e.g. {"mine": {"user": "worker_id", "prompt": "question"}} (analysis.data.preferences.COLUMNS)
    task: str = "news_headline"  # one of analysis.data.tasks.TASKS
    n_users: int = 6  # synthetic users (or max authors/users taken from real data)
    n_test_items: int = 3  # held-out generation targets per user
    min_profile: int = 5  # real data: minimum profile size per user
    negatives: str = "base"  # Pref-LaMP rejected responses: one of analysis.data.preflamp.NEGATIVES
    # sizes of the synthetic world and of the real-author data (power of study 1: test pairs per dataset)
    synthetic_profile: list[int] = field(
        default_factory=lambda: [12, 20]
    )  # synthetic users: profile items per user, drawn uniformly from [min, max]
    synthetic_pool: int = (
        0  # synthetic news items shared by all users; 0 = max(60, max profile + n_test_items + 10)
    )
    attribute_prompts: int = 30  # synthetic_attributes: prompts (items) whose base samples users label
    attribute_samples: int = (
        4  # synthetic_attributes: base-policy samples per prompt (pairs are drawn among them)
    )
    max_real_users: int = (
        0  # real data: at most this many users, largest profiles first; 0 = every user with >= min_profile
    )
    max_real_profile: int = 40  # real data: each user's newest profile items kept (0 = all)
    real_negatives: str = (
        "base"  # Pref-LaMP negatives for real users (news_category, lamp): one of preflamp.NEGATIVES
    )
    pair_test_frac: float = (
        0.2  # Pref-LaMP pairs: share of each user's (or the shared pool's) items held out as test pairs
    )
    public_sets: dict[str, dict[str, int | float | str]] = field(
        default_factory=dict
    )  # settings of the public study-1 sets, e.g. {"personal_llm": {"alpha": 0.01}} (analysis.data.public_sets)
    # --- reward models
    methods: list[str] = field(
        default_factory=lambda: ["shared_bt", "per_user_bt", "lore", "pal", "vpl"]
    )  # trained RM methods: names in analysis.rewards.FEATURE_METHODS
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    budgets: list[int] = field(default_factory=lambda: [25, 300])  # training step budgets (RM population)
    rm_bootstrap: bool = True  # train each RM on a per-user bootstrap resample of the training pairs (seeded)
    reward_norm: str = "prefix"  # the studies' RMs centre (per user) and scale their rewards over: prefix = every prefix y_<=t of the training responses, what ARGS and policy accuracy score (one prefix pass over the training pairs, which also gives their RM features) | response = the full training responses (analysis.rewards.base.REWARD_NORMS)
    # --- decoding
    w_values: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0])
    pa_variants: list[str] = field(
        default_factory=lambda: ["score", "policy"]
    )  # study 1 policy-accuracy variants (analysis.evaluation.policy_accuracy.VARIANTS); policy needs a top-k candidate pass (~3x the cost of the rest of study 1's model work)
    pa_policy_datasets: str = "all"  # study 1 datasets whose policy accuracy includes the policy variant (when pa_variants has it): all | real (the synthetic known-answer checks then use the score variant only)
    k: int = 10  # ARGS top-k candidates
    rgd_w: float = 1.0  # w used for RGD generations in studies 2-3
    inspector_w: list[float] = field(
        default_factory=lambda: [0.5, 2.0]
    )  # study 2 (main setting): extra ARGS weights generated for the inspector (notebook 04); each costs one ARGS run per RM and user
    best_of_n: int = 4  # n for best-of-n (0 disables)
    sample_temperature: float = 0.7  # sampling temperature of best-of-n and of the sampled base
    sample_top_p: float = 0.9  # nucleus (top-p) threshold of best-of-n and of the sampled base (1 = off)
    sampled_base: bool = (
        True  # study 2: a "sampled base" system (one sample, same settings) beside base greedy
    )
    selection_n: int = 16  # study 5: base samples per generation target, drawn once; every candidate RM picks its best-of-n from them
    selection_args_cells: int = 4  # study 5: ARGS at rgd_w for one RM per (method, budget) cell (seed = first seed), at most this many cells (largest budget first); 0: best-of-n only
    icl_pool: str = (
        "train"  # ICL retrieves from: train = the items the RMs were trained on (ICL parity) | profile = all
    )
    icl_k: list[int] = field(default_factory=lambda: [1, 2, 4])
    icl_rendering: str = "chat_turns"  # one of analysis.generation.icl.RENDERINGS
    retriever: str = "bm25"  # one of analysis.generation.icl.RETRIEVERS
    max_new_tokens: int = 24
    max_prompt_tokens: int = 1024
    batch_size: int = 16
    shard_users: int = 0  # generations are computed and cached per shard of this many users (0: one shard)
    # --- evaluation
    rouge_stemming: bool = True  # LaMP's own evaluation used no stemming; both are reported
    n_boot: int = 1000
    honest_tau: str = "headline"  # study 1: honest tau interval for headline = both variants at rgd_w (claim 1) | all settings
    seed: int = 0  # data generation / bootstrap seed
    # --- output
    cache_dir: str = ""  # intermediate results; empty = <output root>/cache

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self, keys: list[str] | None = None) -> str:
        """Short hash of the config (or of ``keys`` only): names cache folders."""
        d = self.to_dict()
        if keys is not None:
            d = {k: d[k] for k in keys}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
