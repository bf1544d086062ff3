"""Config validation, presets, YAML/JSON round-trip, CLI/papermill overrides."""

import pytest

from analysis.config.parse import dump_config, load_config, parse_set
from analysis.config.parse import load_config as _load_config
from analysis.config.presets import PRESETS
from analysis.config.schema import StudyConfig
from analysis.errors import ConfigError


def test_default_preset_is_embedded_on_cpu():
    cfg = load_config()
    assert cfg.preset == "embedded" and cfg.device == "cpu" and cfg.policy_model == "smollm2-135m-instruct"


def test_paper_preset_has_qwen_sizes_on_cuda_bf16():
    cfg = load_config("paper")
    assert cfg.device == "cuda" and cfg.dtype == "bfloat16"
    assert [cfg.model_sizes_b[m] for m in cfg.models] == [0.5, 1.5, 3.0, 7.0]
    assert all(m.startswith("Qwen/Qwen2.5-") and m.endswith("-Instruct") for m in cfg.models)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_preset_round_trip_through_file(tmp_path, preset, suffix):
    cfg = load_config(preset, {"seeds": [3, 4]})
    path = tmp_path / f"cfg{suffix}"
    dump_config(cfg, path)
    again = load_config(path=str(path))
    assert again == cfg


def test_unknown_key_is_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'methodz'.*did you mean 'methods'"):
        load_config(overrides={"methodz": ["lore"]})


@pytest.mark.parametrize(
    "override, key",
    [
        ({"k": "ten"}, "'k'"),
        ({"seeds": 3}, "'seeds'"),
        ({"w_values": ["a"]}, "w_values"),
        ({"threads": True}, "'threads'"),
        ({"data_paths": ["x"]}, "'data_paths'"),
    ],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(overrides=override)


@pytest.mark.parametrize(
    "override, key",
    [
        ({"k": 0}, "'k'"),
        ({"dtype": "fp8"}, "'dtype'"),
        ({"w_values": [-1.0]}, "w_values"),
        ({"device": "tpu"}, "'device'"),
        ({"methods": []}, "'methods'"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(overrides=override)


def test_int_is_accepted_for_float_fields():
    assert load_config(overrides={"rgd_w": 2}).rgd_w == 2.0


def test_unknown_preset_and_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'papr'.*paper"):
        load_config("papr")
    bad = tmp_path / "bad.yaml"
    bad.write_text("k: [1,\n")
    with pytest.raises(ConfigError, match=str(bad)):
        load_config(path=str(bad))


def test_parse_set_reads_yaml_values():
    assert parse_set(["seeds=[0,1]", "device=cuda", "rgd_w=1.5"]) == {
        "seeds": [0, 1],
        "device": "cuda",
        "rgd_w": 1.5,
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["seeds"])


def test_fingerprint_changes_with_values():
    a, b = StudyConfig(), load_config(overrides={"seeds": [9]})
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint(["k"]) == b.fingerprint(["k"])


def test_paper_preset_needs_a_lamp_path_before_running(tmp_path):
    from analysis.config.parse import check_runnable

    with pytest.raises(ConfigError, match=r"data_paths.lamp is not set"):
        check_runnable(load_config("paper"))
    with pytest.raises(ConfigError, match="does not exist"):
        check_runnable(load_config("paper", {"data_paths": {"lamp": str(tmp_path / "missing")}}))
    check_runnable(load_config("paper", {"data_paths": {"lamp": str(tmp_path)}}))
    check_runnable(load_config("embedded"))  # the vendored authors ship with the package
    check_runnable(load_config("embedded_synthetic"))  # synthetic users need no files


def test_embedded_preset_real_authors_and_power():
    """The embedded preset: real authors first, 80 RMs per dataset, fair sampling, ICL parity."""
    from analysis.decoding.best_of_n import DEFAULT_TEMPERATURE, DEFAULT_TOP_P

    cfg = load_config("embedded")
    assert cfg.preflamp_source == "news_category" and cfg.datasets[0] == "news_category_preflamp"
    assert "synthetic_preflamp" in cfg.datasets  # the synthetic world stays as a second setting
    assert len(cfg.methods) * len(cfg.seeds) * len(cfg.budgets) >= 80
    assert cfg.max_real_profile == 0 and cfg.max_real_users == 0 and cfg.real_negatives == "base_sample"
    assert (cfg.sample_temperature, cfg.sample_top_p) == (DEFAULT_TEMPERATURE, DEFAULT_TOP_P) == (0.7, 0.9)
    assert cfg.sampled_base is True and cfg.icl_pool == "train"
    assert cfg.pair_test_frac == 0.4 and cfg.pa_variants == ["score", "policy"]
    assert cfg.pa_policy_datasets == "real"  # the policy variant on the real dataset only
    assert load_config("paper").pa_variants == ["score", "policy"]
    quick = load_config("embedded_synthetic")
    assert quick.preflamp_source == "synthetic" and "news_category_preflamp" not in quick.datasets
    assert load_config("paper").max_real_users == 200
    with pytest.raises(ConfigError, match="icl_pool"):
        load_config("embedded", {"icl_pool": "everything"})
    with pytest.raises(ConfigError, match="pair_test_frac"):
        load_config("embedded", {"pair_test_frac": 0.9})


@pytest.mark.parametrize(
    "override, message",
    [
        ({"synthetic_profile": [20, 12]}, "'synthetic_profile'"),
        ({"synthetic_profile": [5]}, "'synthetic_profile'"),
        ({"synthetic_pool": 10}, "'synthetic_pool': 10 items cannot give a user 20 profile"),
        ({"max_real_users": -1}, "'max_real_users'"),
        ({"attribute_samples": 1}, "'attribute_samples'"),
        ({"attribute_prompts": 0}, "'attribute_prompts'"),
        ({"sample_temperature": 0}, "'sample_temperature'"),
        ({"sample_top_p": 1.5}, "'sample_top_p'"),
        ({"real_negatives": "random"}, "'real_negatives'"),
    ],
)
def test_bad_sizes_and_sampling_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("embedded", override)
    ok = load_config(overrides={"synthetic_profile": [150, 200], "synthetic_pool": 0, "sample_top_p": 1})
    assert ok.synthetic_profile == [150, 200] and ok.sample_top_p == 1.0


def test_a_users_own_dataset_name_needs_data_paths(tmp_path, monkeypatch):
    from analysis.config.parse import absolute_data_paths
    from analysis.studies.datasets import check_datasets

    def load_config(preset, overrides):  # the dataset names are checked by the studies' registry
        return check_datasets(_load_config(preset, overrides))

    monkeypatch.chdir(tmp_path)
    (tmp_path / "prefs.jsonl").write_text("")
    (tmp_path / "x.csv").write_text("")

    cfg = load_config("embedded", {"datasets": ["mine"], "data_paths": {"mine": "prefs.jsonl"}})
    assert cfg.datasets == ["mine"]
    with pytest.raises(
        ConfigError,
        match=r"'datasets\[1\]': unknown study-1 dataset 'lamp_preflam'; did you mean 'lamp_preflamp'",
    ):
        load_config("embedded", {"datasets": ["synthetic_preflamp", "lamp_preflam"]})
    with pytest.raises(ConfigError, match=r"unknown study-1 dataset 'mine'.*data_paths='\{mine: FILE\}'"):
        load_config("embedded", {"datasets": ["mine"]})
    with pytest.raises(
        ConfigError, match=r"data_columns.mine': unknown column mapping key 'usr'; did you mean 'user'"
    ):
        load_config(
            "embedded",
            {
                "datasets": ["mine"],
                "data_paths": {"mine": "x.csv"},
                "data_columns": {"mine": {"usr": "worker"}},
            },
        )
    got = absolute_data_paths(
        {"data_paths": {"mine": "prefs.jsonl", "hub": "hub:me/prefs", "none": ""}, "seed": 1}
    )
    assert got == {
        "data_paths": {"mine": str(tmp_path / "prefs.jsonl"), "hub": "hub:me/prefs", "none": ""},
        "seed": 1,
    }


def test_set_values_with_spaces_as_make_passes_them():
    """``make report ARGS="--set data_paths={mine: FILE}"`` reaches argparse as two words."""
    from analysis.cli.main import build_parser

    args = build_parser().parse_args(
        ["report", "--only", "01", "--set", "datasets=[mine]", "--set", "data_paths={mine:", "prefs.jsonl}"]
    )
    assert parse_set(args.overrides) == {"datasets": ["mine"], "data_paths": {"mine": "prefs.jsonl"}}
    args = build_parser().parse_args(["report", "--set", "seeds=[0,1]", "--set", "device=cpu"])
    assert parse_set(args.overrides) == {"seeds": [0, 1], "device": "cpu"}
