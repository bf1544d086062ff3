"""One source of truth for settings: choices come from the registries, algorithm configs from one place,
and every user mistake is a UserError."""

import dataclasses

import pytest

from analysis.config import algorithms as settings
from analysis.config import parse as config_mod
from analysis.config.parse import load_config
from analysis.data.records import DataError
from analysis.errors import ConfigError, ModelError, UserError


def test_error_family():
    for cls in (ConfigError, DataError, ModelError):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError)
    import analysis.errors as e

    assert config_mod.ConfigError is e.ConfigError and ModelError is e.ModelError


def test_choices_are_the_registries():
    from analysis.data.tasks import TASKS
    from analysis.generation.icl import RENDERINGS, RETRIEVERS
    from analysis.rewards import FEATURE_METHODS

    c = config_mod.choices()
    assert c["retriever"] == RETRIEVERS and c["icl_rendering"] == RENDERINGS
    assert c["task"] == tuple(TASKS) and c["methods"] == FEATURE_METHODS
    assert "_CHOICES" not in vars(config_mod)  # no copied choice lists


def test_a_name_added_to_a_registry_is_accepted(monkeypatch):
    import analysis.generation.icl as icl

    with pytest.raises(ConfigError, match="'retriever'"):
        load_config(overrides={"retriever": "dense"})
    monkeypatch.setattr(icl, "RETRIEVERS", (*icl.RETRIEVERS, "dense"))
    assert load_config(overrides={"retriever": "dense"}).retriever == "dense"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"methods": ["lore", "loer"]}, r"'methods\[1\]': unknown value 'loer'; did you mean 'lore'"),
        ({"methods": ["oracle"]}, r"'methods\[0\]'"),  # the oracle is not a trainable method
        ({"task": "news_headlines"}, r"'task'.*did you mean 'news_headline'"),
        ({"icl_rendering": "html"}, "'icl_rendering'"),
        ({"preflamp_source": "reddit"}, "'preflamp_source'"),
        ({"negatives": "random"}, "'negatives'"),
    ],
)
def test_registry_choices_are_validated(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=override)


def test_algorithm_configs_are_built_from_the_study_config():
    cfg = load_config(
        overrides={
            "k": 7,
            "max_new_tokens": 9,
            "batch_size": 32,
            "rgd_w": 1.5,
            "retriever": "random",
            "icl_rendering": "lamp",
            "max_prompt_tokens": 512,
            "seed": 3,
            "best_of_n": 6,
            "w_values": [0, 2],
            "n_boot": 50,
            "device": "cpu",
            "dtype": "float16",
            "threads": 1,
        }
    )
    a = settings.args_config(cfg)
    assert (a.w, a.k, a.max_new_tokens, a.batch_size, a.mode) == (1.5, 7, 9, 32, "greedy")
    assert settings.args_config(cfg, w=0).w == 0.0
    b = settings.best_of_n_config(cfg)
    assert (b.n, b.max_new_tokens, b.seed, b.batch_size) == (6, 9, 3, 32)
    assert (b.temperature, b.top_p) == (cfg.sample_temperature, cfg.sample_top_p)
    assert settings.best_of_n_config(dataclasses.replace(cfg, best_of_n=0)) is None
    i = settings.icl_config(cfg, 2)
    assert (i.k, i.retriever, i.rendering, i.max_prompt_tokens, i.seed) == (2, "random", "lamp", 512, 3)
    g = settings.generation_config(cfg)
    assert (g.max_new_tokens, g.batch_size) == (9, 32)
    p = settings.policy_accuracy_config(cfg)
    assert (p.ws, p.n_boot, p.seed) == ((0.0, 2.0), 50, 3)
    assert settings.model_kwargs(cfg) == {
        "device": "cpu",
        "dtype": "float16",
        "threads": 1,
        "trust_remote_code": False,
    }
    from analysis.rewards import LoReConfig

    r = settings.rm_config(cfg, "lore", seed=2, budget=40)
    assert isinstance(r, LoReConfig) and (r.seed, r.steps) == (2, 40)
    with pytest.raises(ConfigError, match="'methods'"):
        settings.rm_config(dataclasses.replace(cfg, methods=["pal"]), "lore", seed=0, budget=1)


def test_user_mistakes_in_lower_layers_are_user_errors():
    from analysis.data.tasks import get_task
    from analysis.rewards import make_reward_model, method_info

    with pytest.raises(UserError, match="unknown task"):
        get_task("haiku")
    with pytest.raises(UserError, match="did you mean 'lore'"):
        method_info("lor")
    with pytest.raises(UserError, match="unknown setting"):
        make_reward_model("lore", rnak=2)


@pytest.mark.parametrize("preset", ["embedded", "embedded_synthetic", "paper"])
def test_the_studies_settings_equal_their_hand_mapping(preset):
    """What the studies build through :mod:`analysis.config.algorithms` equals, field for field, what they
    mapped by hand from the study config before (so routing them through it changes no number)."""
    from analysis.decoding.args import ArgsConfig
    from analysis.decoding.base import GenerationConfig
    from analysis.decoding.best_of_n import BestOfNConfig
    from analysis.evaluation.policy_accuracy import PolicyAccuracyConfig
    from analysis.generation.icl import ICLConfig
    from analysis.rewards import method_info

    cfg = load_config(preset)
    assert settings.model_kwargs(cfg) == {
        "device": cfg.device,
        "dtype": cfg.dtype,
        "threads": cfg.threads,
        "trust_remote_code": cfg.trust_remote_code,
    }
    assert settings.generation_config(cfg) == GenerationConfig(
        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size
    )
    for k in cfg.icl_k:  # studies.generations: the runner's icl method params
        i = settings.icl_config(cfg, k)
        assert i == ICLConfig(
            k=k,
            retriever=cfg.retriever,
            rendering=cfg.icl_rendering,
            max_prompt_tokens=cfg.max_prompt_tokens,
            seed=cfg.seed,
        )
    for w in (*cfg.w_values, cfg.rgd_w):  # the ARGS systems' top-k
        a = settings.args_config(cfg, w)
        assert a == ArgsConfig(
            w=float(w), k=cfg.k, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size
        )
    for n in (max(cfg.best_of_n, 1), 3):  # the shared samples of best-of-n and of the sampled base
        assert settings.best_of_n_config(cfg, n) == BestOfNConfig(
            n=n,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.sample_temperature,
            top_p=cfg.sample_top_p,
            seed=cfg.seed,
            batch_size=cfg.batch_size,
        )
    assert settings.policy_accuracy_config(cfg) == PolicyAccuracyConfig(
        ws=tuple(float(w) for w in cfg.w_values),
        variants=tuple(cfg.pa_variants),
        n_boot=cfg.n_boot,
        seed=cfg.seed,
    )
    assert settings.pa_data_kwargs(cfg) == {
        "layer": cfg.feature_layer,
        "k": cfg.k,
        "policy": "policy" in cfg.pa_variants,
        "batch_size": cfg.batch_size,
    }
    for m in cfg.methods:  # studies.rms.train_rm: make_reward_model(m, seed=, steps=, normalize_reward=)
        for norm in (True, False):
            want = method_info(m).cls(seed=1, steps=max(cfg.budgets), normalize_reward=norm).config
            assert settings.rm_config(cfg, m, 1, max(cfg.budgets), norm) == want
            assert settings.rm_config(None, m, 1, max(cfg.budgets), norm) == want


def test_every_registry_and_choice_check_reads_the_same():
    """One helper (analysis.errors.lookup) words every unknown name: what, the name, the closest
    choice, the choices; and each check keeps its own exception class."""
    import re

    from analysis.data.tasks import get_task
    from analysis.decoding.args import ArgsConfig
    from analysis.generation.methods import get_method
    from analysis.metrics.rouge import rouge_by_user
    from analysis.rewards import method_info

    cases = [
        (lambda: method_info("lor"), ConfigError, "reward method 'lor'", "lore"),
        (lambda: get_task("news_headlin"), ConfigError, "task 'news_headlin'", "news_headline"),
        (
            lambda: load_config(overrides={"methodz": ["lore"]}),
            ConfigError,
            "config key 'methodz'",
            "methods",
        ),
        (lambda: load_config("embeded"), ConfigError, "preset 'embeded'", "embedded"),
        (lambda: get_method("icll"), DataError, "generation method 'icll'", "icl"),
        (lambda: ArgsConfig(mode="sampel").validate(), ConfigError, "mode 'sampel'", "sample"),
        (lambda: rouge_by_user(["u"], ["a"], ["a"], rouge_type="rougeX"), ValueError, "ROUGE type", None),
    ]
    for call, cls, named, close in cases:
        with pytest.raises(cls) as err:
            call()
        assert type(err.value) is cls, err.value
        msg = str(err.value)
        assert f"unknown {named}" in msg, msg
        hint = f"; did you mean '{close}'? (choices: " if close else " (choices: "
        assert hint in msg, msg
        assert re.search(r"\(choices: .+\)$", msg), msg
