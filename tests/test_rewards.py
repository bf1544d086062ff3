"""Reward models: known answers (opposite users, oracle), VPL non-collapse, save/load, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from analysis.data.records import DataError, PreferencePair
from analysis.features.cache import pair_features
from analysis.features.passes import BackboneSpec, PairFeatures, prefix_features
from analysis.metrics.intervals import pairwise_accuracy
from analysis.rewards import (
    FEATURE_METHODS,
    REGISTRY,
    OracleRM,
    load_reward_model,
    make_reward_model,
)
from analysis.rewards.evaluate import (
    pairs_per_user_table,
    per_user_accuracy,
    rm_accuracy,
    summarize_rm_accuracy,
)

PERSONALIZED = ["per_user_bt", "lore", "pal", "vpl"]


def opposite_users(n: int, dim: int = 16, seed: int = 0, split: str = "train") -> PairFeatures:
    """Two users on the SAME pairs with opposite planted preferences along direction e_0.

    User A prefers the response with the larger phi_0, user B the smaller: a shared reward
    sees every pair once in each orientation and cannot beat 50%.
    """
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    chosen, rejected, users = [], [], []
    for user, sign in (("A", 1.0), ("B", -1.0)):
        pref = (sign * (a[:, 0] - b[:, 0]) > 0)[:, None]
        chosen.append(torch.where(pref, a, b))
        rejected.append(torch.where(pref, b, a))
        users += [user] * n
    return PairFeatures(
        users,
        torch.cat(chosen),
        torch.cat(rejected),
        [f"{split}{i}" for i in range(2 * n)],
        [split] * (2 * n),
        BackboneSpec("synthetic-features"),
    )


@pytest.fixture(scope="module")
def opp():
    return (
        opposite_users(100, seed=0),
        opposite_users(30, seed=1, split="val"),
        opposite_users(100, seed=2, split="test"),
    )


@pytest.fixture(scope="module")
def fitted(opp):
    train, val, _ = opp
    return {m: make_reward_model(m, seed=0).fit(train, val) for m in FEATURE_METHODS}


def _acc_by_user(rm, feats):
    df = rm_accuracy(rm, feats)
    return df.groupby("user_id")["correct"].mean().to_dict(), df


@pytest.mark.parametrize("method", PERSONALIZED)
def test_personalized_methods_learn_opposite_users(fitted, opp, method):
    acc, _ = _acc_by_user(fitted[method], opp[2])
    assert acc["A"] > 0.75 and acc["B"] > 0.75, acc


def test_shared_bt_cannot_beat_chance_on_opposite_users(fitted, opp):
    acc, df = _acc_by_user(fitted["shared_bt"], opp[2])
    assert 0.35 < df["correct"].mean() < 0.6
    # it has no user input: the same pair gets the same margin for both users
    m = (df["r_chosen"] - df["r_rejected"]).to_numpy()
    assert torch.allclose(torch.tensor(m[:100]), -torch.tensor(m[100:]), atol=1e-5)


def test_vpl_does_not_collapse(fitted, opp):
    rm = fitted["vpl"]
    x = opp[2].chosen
    ra, rb = rm.reward(["A"] * len(x), x), rm.reward(["B"] * len(x), x)
    assert float((ra - rb).abs().mean()) > 0.5
    assert float(torch.corrcoef(torch.stack([ra, rb]))[0, 1]) < 0  # opposite users, opposite rewards
    assert not torch.allclose(rm.module_.z_mean[0], rm.module_.z_mean[1], atol=1e-3)
    assert rm.fit_log_["user_reward_spread"] > 0.1 and rm.fit_log_["kl"] > 0


def test_vpl_context_draws_each_users_own_pairs_without_replacement():
    """The vectorised context sampler: per user, ``min(context_size, n_u)`` distinct train pairs
    of that user (mask marks them), standardized features gathered from those rows."""
    from analysis.rewards.base import PairTensors

    rm = make_reward_model("vpl", context_size=4, max_context=5, seed=0)
    uidx = torch.tensor([0, 1, 0, 1, 0, 1, 0, 0, 2, 0])  # user 0: 6 pairs, user 1: 3, user 2: 1
    chosen = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 3)  # row id in every column
    rm.users_ = ["a", "b", "c"]
    rm.module_ = rm._build(3, 3)
    rm.module_.feat_mean = torch.zeros(3)
    rm.module_.feat_std = torch.ones(3)
    rm._setup(PairTensors(uidx, chosen, -chosen))
    for _ in range(20):
        xc, xr, mask = rm._context(torch.tensor([0, 1, 2]), sample=True)
        assert xc.shape == (3, 4, 3) and mask.sum(1).tolist() == [4, 3, 1]
        for g in range(3):
            rows = xc[g, mask[g], 0].long().tolist()
            assert len(set(rows)) == len(rows)  # without replacement
            assert all(int(uidx[r]) == g for r in rows)  # the user's own pairs
            assert torch.equal(xr[g, mask[g]], -xc[g, mask[g]])  # chosen and rejected of one pair
            assert (xc[g, ~mask[g]] == 0).all()
    xc, _, mask = rm._context(torch.tensor([0]), sample=False)  # posterior: the first max_context
    assert xc[0, mask[0], 0].long().tolist() == [0, 2, 4, 6, 7]


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_save_load_identical_rewards(fitted, opp, tmp_path, method):
    rm = fitted[method]
    folder = rm.save(tmp_path / method)
    meta = json.loads((folder / "config.json").read_text())
    assert (
        meta["method"] == method and meta["users"] == ["A", "B"] and (folder / "model.safetensors").exists()
    )
    assert meta["backbone"]["model_id"] == "synthetic-features"
    loaded = load_reward_model(folder)
    assert type(loaded) is type(rm) and loaded.config == rm.config
    users = ["A", "B", "nobody"] * 10
    x = opp[2].chosen[: len(users)]
    assert torch.equal(loaded.reward(users, x), rm.reward(users, x))


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_unknown_user_fallback_is_finite_or_clear_error(fitted, opp, method):
    x = opp[2].chosen[:5]
    r = fitted[method].reward(["stranger"] * 5, x)
    assert torch.isfinite(r).all() and not fitted[method].knows_user("stranger")
    if method != "shared_bt":  # population-mean fallback sits between the opposite users
        ra, rb = fitted[method].reward(["A"] * 5, x), fitted[method].reward(["B"] * 5, x)
        assert not torch.allclose(r, ra) and not torch.allclose(r, rb)
    strict = make_reward_model(method, seed=0, steps=5, unknown_user="error").fit(opp[0])
    with pytest.raises(DataError, match="no training pairs for user"):
        strict.reward(["stranger"], x[:1])


def test_rm_accuracy_table_and_summary(fitted, opp, two_level_sd):
    test = opp[2]
    test_mixed = PairFeatures(
        test.user_ids + ["C"] * 4,
        torch.cat([test.chosen, test.chosen[:4]]),
        torch.cat([test.rejected, test.chosen[:4]]),  # C: chosen == rejected -> ties
        test.pair_ids + ["c0", "c1", "c2", "c3"],
        test.splits + ["test"] * 4,
        test.backbone,
    )
    df = rm_accuracy(fitted["lore"], test_mixed)
    assert list(df.columns) == ["user_id", "pair_id", "r_chosen", "r_rejected", "correct", "known_user"]
    assert (df[df.user_id == "C"]["correct"] == 0.5).all() and not df[df.user_id == "C"]["known_user"].any()
    s = summarize_rm_accuracy(df)
    by_user = df.groupby("user_id")["correct"].mean()
    assert s["n_users"] == 3 and s["n"] == 204 and abs(s["mean"] - by_user.mean()) < 1e-12
    mean, sd = two_level_sd(df["user_id"], df["correct"])  # 3 users: a lumpy replicate distribution
    assert s["ci_low"] < s["mean"] < s["ci_high"] and s["mean"] == pytest.approx(mean)
    assert 0.6 < (s["ci_high"] - s["ci_low"]) / (2 * 1.96 * sd) < 1.4
    pu = per_user_accuracy(df, opp[0].pairs_per_user())
    assert (
        pu.set_index("user_id").loc["C", "train_pairs"] == 0
        and pu.set_index("user_id").loc["A", "train_pairs"] == 100
    )


def test_pairs_per_user_table():
    f = opposite_users(3)
    f.splits[:] = ["train", "train", "val", "train", "test", "test"]
    t = pairs_per_user_table(f).set_index("user_id")
    assert t.loc["A"].tolist() == [2, 1, 0, 3] and t.loc["B"].tolist() == [1, 0, 2, 3]


def test_registry_typos_and_unknown_settings():
    assert set(REGISTRY) == {"shared_bt", "per_user_bt", "lore", "pal", "vpl", "oracle"}
    with pytest.raises(ValueError, match="did you mean 'lore'"):
        make_reward_model("loree")
    with pytest.raises(ValueError, match="unknown setting"):
        make_reward_model("lore", rnak=3)
    with pytest.raises(ValueError, match="rank must be"):
        make_reward_model("lore", rank=0).fit(opposite_users(4))


def test_fit_rejects_bad_features():
    f = opposite_users(4)
    f.chosen[0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        make_reward_model("shared_bt").fit(f)
    with pytest.raises(DataError, match="no train pairs"):
        make_reward_model("shared_bt").fit(opposite_users(4).subset("val"))
    with pytest.raises(RuntimeError, match="call fit"):
        make_reward_model("pal").reward(["A"], torch.zeros(1, 16))


def test_lore_adapt_new_user_fits_only_weights(fitted, opp):
    import copy

    rm = copy.deepcopy(fitted["lore"])
    V = rm.module_.V.detach().clone()
    newbie = opposite_users(40, seed=5)
    newbie = newbie.select(range(40, 80))  # user B's preferences under a new id
    newbie.user_ids[:] = ["new"] * 40
    rm.adapt_users(newbie)
    assert rm.knows_user("new") and torch.equal(rm.module_.V, V)
    test = opp[2].subset("test").select(range(100, 200))
    acc = pairwise_accuracy(rm.reward(["new"] * 100, test.chosen), rm.reward(["new"] * 100, test.rejected))
    assert acc.mean() > 0.75


# --------------------------------------------------------------------------- oracle


def test_oracle_accuracy_one_on_oracle_labelled_pairs(tmp_path):
    from analysis.data.attributes import attribute_preference_pairs
    from analysis.data.synthetic import make_synthetic_users, style_swap_pairs

    data = make_synthetic_users(n_users=6, seed=0)
    pairs = style_swap_pairs(data)
    feats = PairFeatures(
        [p.user_id for p in pairs],
        torch.zeros(len(pairs), 1),
        torch.zeros(len(pairs), 1),
        [p.pair_id for p in pairs],
        [p.split for p in pairs],
        BackboneSpec("none"),
        [p.prompt for p in pairs],
        [p.chosen for p in pairs],
        [p.rejected for p in pairs],
    )
    oracle = make_reward_model("oracle", styles=data.styles).fit(feats)
    s = summarize_rm_accuracy(rm_accuracy(oracle, feats))
    assert s["mean"] == 1.0 and s["n_users"] == 6
    # attribute users: labels come from the planted attribute reward
    samples = {
        f"p{i}": ["Why now?", "5 THINGS to know!", "a quiet day in town", "City: Vote 12 passes"]
        for i in range(12)
    }
    ap = attribute_preference_pairs(list(samples), samples, n_users=4, seed=0)
    afeats = PairFeatures(
        [p.user_id for p in ap.pairs],
        torch.zeros(len(ap.pairs), 1),
        torch.zeros(len(ap.pairs), 1),
        [p.pair_id for p in ap.pairs],
        [p.split for p in ap.pairs],
        BackboneSpec("none"),
        [p.prompt for p in ap.pairs],
        [p.chosen for p in ap.pairs],
        [p.rejected for p in ap.pairs],
    )
    aor = OracleRM.from_synthetic(attribute_weights=ap.weights)
    assert rm_accuracy(aor, afeats)["correct"].mean() == 1.0
    # save -> load -> identical rewards; unknown user is a clear error
    loaded = load_reward_model(oracle.save(tmp_path / "oracle"))
    assert torch.equal(
        loaded.reward_text(feats.user_ids, feats.prompts, feats.chosen_text),
        oracle.reward_text(feats.user_ids, feats.prompts, feats.chosen_text),
    )
    with pytest.raises(DataError, match="no planted style"):
        oracle.reward_text(["stranger"], ["x"], ["y"])
    with pytest.raises(TypeError, match="text reward model"):
        oracle.reward(["user00"], torch.zeros(1, 1))


# --------------------------------------------------------------------------- end to end through a backbone


def _opposite_style_pairs(n_items: int = 60):
    """Same items, two users: A prefers the question headline, B the listicle."""
    from analysis.data.synthetic import make_items, render_headline
    from analysis.data.tasks import zero_shot_prompt

    pairs = []
    for j, item in enumerate(make_items(n_items, seed=3).values()):
        q, li = render_headline("question", item), render_headline("listicle", item)
        split = "train" if j < n_items * 0.6 else "val" if j < n_items * 0.75 else "test"
        prompt = zero_shot_prompt("news_headline", item.input)
        pairs.append(PreferencePair("A", prompt, q, li, f"A/{j}", split))
        pairs.append(PreferencePair("B", prompt, li, q, f"B/{j}", split))
    return pairs


def test_end_to_end_tiny_backbone_features(tiny_lm, tmp_path):
    """Real (tiny random llama) features: personalized RMs separate the opposite users, shared_bt
    cannot; and a reward alone equals the same reward inside a left/right padded batch."""
    model, tok = tiny_lm
    pf = pair_features(model, tok, _opposite_style_pairs(), cache_dir=tmp_path, progress=False)
    train, val, test = pf.subset("train"), pf.subset("val"), pf.subset("test")
    shared = make_reward_model("shared_bt").fit(train, val)
    assert rm_accuracy(shared, test)["correct"].mean() <= 0.55
    per_user = make_reward_model("per_user_bt").fit(train, val)
    acc = rm_accuracy(per_user, test).groupby("user_id")["correct"].mean()
    assert acc["A"] > 0.8 and acc["B"] > 0.8, acc.to_dict()

    prompts, responses = (
        test.prompts[:4],
        [test.chosen_text[0], test.rejected_text[1], "why", test.chosen_text[3]],
    )
    users = ["A", "B", "A", "B"]
    for side in ("left", "right"):
        batch = prefix_features(model, tok, prompts, responses, padding_side=side, batch_size=4)
        for i in range(4):
            alone = prefix_features(model, tok, prompts[i : i + 1], responses[i : i + 1])
            r_alone = per_user.reward([users[i]] * len(alone.features[0]), alone.features[0])
            r_batch = per_user.reward([users[i]] * len(batch.features[i]), batch.features[i])
            assert float((r_alone - r_batch).abs().max()) < 1e-5


def test_rewards_are_normalised_to_unit_std_on_training_responses():
    """normalize_reward divides by a positive constant: unit std on training responses, same ranking."""
    import torch

    from analysis.features.passes import BackboneSpec, PairFeatures
    from analysis.rewards import make_reward_model

    g = torch.Generator().manual_seed(0)
    direction = torch.randn(8, generator=g)
    x = torch.randn(64, 2, 8, generator=g)
    better = (x @ direction)[:, 0] > (x @ direction)[:, 1]
    chosen = torch.where(better[:, None], x[:, 0], x[:, 1])
    rejected = torch.where(better[:, None], x[:, 1], x[:, 0])
    users = [f"u{i % 2}" for i in range(64)]
    feats = PairFeatures(
        users, chosen, rejected, [str(i) for i in range(64)], ["train"] * 64, BackboneSpec("synthetic")
    )
    norm = make_reward_model("per_user_bt", seed=0, steps=200).fit(feats)
    raw = make_reward_model("per_user_bt", seed=0, steps=200, normalize_reward=False).fit(feats)
    r_norm = torch.cat([norm.reward(users, chosen), norm.reward(users, rejected)])
    r_raw = torch.cat([raw.reward(users, chosen), raw.reward(users, rejected)])
    assert r_norm.std().item() == pytest.approx(1.0, rel=1e-4)
    assert torch.allclose(r_norm * norm.fit_log_["reward_scale"], r_raw, atol=1e-4)


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_fit_budgets_equals_separate_fits(method, tmp_path):
    """One run of the largest budget yields every budget's model: bit-identical rewards, logs and
    configs to separate fits (with early stopping on val and budgets off the eval grid)."""
    train, val = opposite_users(60, seed=0), opposite_users(20, seed=1, split="val")
    budgets = [7, 20, 33, 60]
    x = torch.randn(8, train.dim, generator=torch.Generator().manual_seed(2))
    users = ["A", "B", "A", "B", "A", "B", "A", "nobody"]
    kw = {"seed": 3, "eval_every": 5, "patience": 2, "batch_size": 16}
    multi = make_reward_model(method, **kw).fit_budgets(train, val, budgets)
    assert sorted(multi) == budgets
    for b in budgets:
        alone = make_reward_model(method, steps=b, **kw).fit(train, val)
        assert torch.equal(alone.reward(users, x), multi[b].reward(users, x)), b
        assert alone.fit_log_ == multi[b].fit_log_ and alone.config == multi[b].config
    assert len({multi[b].fit_log_["steps_run"] for b in budgets}) > 1


def test_train_rm_trains_sibling_budgets_once(tmp_path):
    """studies.rms.train_rm with ``budgets``: one miss trains and caches every budget, and each
    cached RM equals a separately trained one."""
    from analysis.studies.cache import StudyCache
    from analysis.studies.rms import train_rm

    train = opposite_users(40, seed=0)
    val = opposite_users(12, seed=1, split="val")
    feats = PairFeatures(
        user_ids=train.user_ids + val.user_ids,
        chosen=torch.cat([train.chosen, val.chosen]),
        rejected=torch.cat([train.rejected, val.rejected]),
        pair_ids=[f"p{i}" for i in range(len(train) + len(val))],
        splits=["train"] * len(train) + ["val"] * len(val),
        backbone=train.backbone,
    )
    cache = StudyCache(str(tmp_path / "c1"))
    first = train_rm(feats, "per_user_bt", 0, 30, cache, "k", budgets=[10, 30])
    assert len(list((cache.root / "rms").iterdir())) == 2  # budget 10 cached too
    again = train_rm(feats, "per_user_bt", 0, 10, cache, "k", budgets=[10, 30])
    alone = train_rm(feats, "per_user_bt", 0, 10, StudyCache(str(tmp_path / "c2")), "k")
    x = torch.randn(4, feats.dim)
    assert torch.equal(again.reward(["A"] * 4, x), alone.reward(["A"] * 4, x))
    assert first.config.steps == 30 and again.config.steps == 10


def _study_sized_pairs():
    g = torch.Generator().manual_seed(0)
    n, dim = 1024, 576
    users = [f"u{i % 34}" for i in range(n)]
    a, b = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    return PairFeatures(users, a, b, [str(i) for i in range(n)], ["train"] * n, BackboneSpec("synthetic"))


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_training_is_bit_identical_across_runs_with_two_threads(method, monkeypatch):
    """Two fits on the same data give bit-identical parameters with 2 training threads at study
    sizes (34 users x 576 features: large enough for torch to split a kernel across threads). The
    CPU backward of ``table[uidx]`` accumulates with atomic adds, so per-user tables indexed that
    way came out different in the last bits from run to run (seen on per_user_bt in two embedded
    reports). Fits now pin one thread (next test); this keeps the gather right at two."""
    import analysis.rewards.base as rm_base

    monkeypatch.setattr(rm_base, "TRAIN_THREADS", 2)
    feats = _study_sized_pairs()
    fits = [make_reward_model(method, seed=0, steps=30, batch_size=256).fit(feats) for _ in range(3)]
    states = [rm.module_.state_dict() for rm in fits]
    for s in states[1:]:
        assert all(torch.equal(states[0][k], s[k]) for k in states[0]), method


@pytest.mark.parametrize("method", FEATURE_METHODS)
def test_fit_does_not_depend_on_the_callers_thread_count(method):
    """Fits run on TRAIN_THREADS whatever torch's setting: with 2 threads shared_bt and vpl
    came out different in the last bits from 1-thread fits (backward reductions split across
    threads), so an RM depended on cfg.threads and, under the report runner, on when a notebook
    moved between one and two threads. The caller's setting is restored afterwards."""
    feats = _study_sized_pairs()
    before = torch.get_num_threads()
    states = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            rm = make_reward_model(method, seed=0, steps=30, batch_size=256)
            (fit,) = rm.fit_budgets(feats, None, [30]).values()
            assert torch.get_num_threads() == threads
            states.append(fit.module_.state_dict())
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0]), method
