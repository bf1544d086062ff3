"""Former home of the studies' shared blocks, kept as a re-export for existing imports.

New code imports from where things live: :mod:`analysis.studies.cache` (run cache),
:mod:`analysis.studies.datasets` (dataset registry), :mod:`analysis.studies.models` (model
holder), :mod:`analysis.studies.rms` (RM training glue) and :mod:`analysis.feature_cache` /
:mod:`analysis.features` (the feature engine).
"""

from analysis.feature_cache import TextFeatureStore
from analysis.features import shared_prompt_features, supports_prompt_sharing
from analysis.studies.cache import StudyCache, code_version, key_hash
from analysis.studies.datasets import (
    STUDY1_DATASETS,
    Dataset,
    attribute_pairs,
    base_generate_fn,
    preflamp_pairs,
    study1_dataset,
    synthetic_data,
    user_tasks,
)
from analysis.studies.models import get_model, model_key, model_size_b
from analysis.studies.rms import (
    bootstrap_by_user,
    check_splits,
    feature_key,
    feature_store,
    features,
    rm_accuracy_row,
    study_spec,
    train_rm,
)

__all__ = [
    "STUDY1_DATASETS",
    "Dataset",
    "StudyCache",
    "TextFeatureStore",
    "attribute_pairs",
    "base_generate_fn",
    "bootstrap_by_user",
    "check_splits",
    "code_version",
    "feature_key",
    "feature_store",
    "features",
    "get_model",
    "key_hash",
    "model_key",
    "model_size_b",
    "preflamp_pairs",
    "rm_accuracy_row",
    "shared_prompt_features",
    "study1_dataset",
    "study_spec",
    "supports_prompt_sharing",
    "synthetic_data",
    "train_rm",
    "user_tasks",
]
