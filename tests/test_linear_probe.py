"""Linear probing on embeddings: the three recipes, subsets, exclusions, a saved head reloaded in a fresh process."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from tamer_hf import linear_probe as probe

NAMES = ["a", "b", "c"]


def separable(num_records=600, seed=0, noise=1.0):
    """Embeddings (N, 32) carrying a linear signal of multi-hot labels (N, 3)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((num_records, 3)) < 0.4).astype(np.int8)
    directions = np.random.default_rng(100).normal(size=(3, 32))
    embeds = labels @ directions * 2.0 + noise * rng.normal(size=(num_records, 32))
    return embeds.astype(np.float32), labels


def splits(num_train=400):
    train, val, test = separable(num_train, 0), separable(100, 1), separable(200, 2)
    return (*train, *val, *test)


SELECTION = {"clean": ("validation", False), "merl": ("test", True), "sklearn": ("fit", False)}


@pytest.mark.parametrize("recipe", ["clean", "merl", "sklearn"])
def test_every_recipe_learns_a_separable_signal_on_the_requested_fractions(recipe):
    result = probe.linear_probe(*splits(200), NAMES, recipe=recipe, fractions=(0.1, 1.0))
    assert result["recipe"] == recipe
    assert list(result["fractions"]) == ["10%", "100%"]
    assert [r["num_train"] for r in result["fractions"].values()] == [20, 200]
    full = result["fractions"]["100%"]
    assert full["macro_auc"] > 0.95 and full["excluded"] == []
    selected_on, optimistic = SELECTION[recipe]
    assert result["optimistic"] is optimistic and result["selection"] == probe.SELECTION_TEXT[selected_on]
    if recipe != "sklearn":
        assert 1 <= full["selected_epoch"] <= 100 and full["validation_macro_auc"] > 0.9


def test_merl_recipe_settings_are_merls_as_shipped():
    assert probe.RECIPES["merl"] == probe.ProbeRecipe(
        "merl", learning_rate=1e-3, weight_decay=1e-4, batch_size=16, epochs=100, selection="test", subset="merl",
        torch_seed=42, lr_drop_after_calls=40, lr_drop_factor=0.1)
    assert "optimistic" in probe.SELECTION_TEXT["test"]


def test_noise_embeddings_probe_at_chance_level():
    rng = np.random.default_rng(3)
    _, train_y, _, val_y, _, test_y = splits()
    result = probe.linear_probe(rng.normal(size=(400, 32)), train_y, rng.normal(size=(100, 32)), val_y,
                                rng.normal(size=(200, 32)), test_y, NAMES, recipe="clean", fractions=(1.0,))
    assert abs(result["fractions"]["100%"]["macro_auc"] - 0.5) < 0.1


def test_subsets_are_seeded_and_merl_subset_is_sklearn_split_with_seed_42():
    assert np.array_equal(probe.subsample_indices(1000, 0.1, seed=3), probe.subsample_indices(1000, 0.1, seed=3))
    assert len(probe.subsample_indices(1000, 0.01)) == 10
    expected, _ = train_test_split(np.arange(1000), train_size=0.1, random_state=42)
    assert np.array_equal(probe.merl_subset_indices(1000, 0.1), expected)
    assert np.array_equal(probe.merl_subset_indices(1000, 1.0), np.arange(1000))
    with pytest.raises(ValueError, match="fraction"):
        probe.subsample_indices(10, 0.0)


@pytest.mark.parametrize("recipe", ["clean", "sklearn"])
def test_classes_with_one_label_value_are_excluded_not_scored_half(recipe):
    train_x, train_y, val_x, val_y, test_x, test_y = splits()
    train_y = train_y.copy()
    test_y = test_y.copy()
    train_y[:, 1] = 0  # "b": no positive in training
    test_y[:, 2] = 1  # "c": no negative in test
    result = probe.linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, NAMES, recipe=recipe,
                                fractions=(1.0,))["fractions"]["100%"]
    assert result["excluded"] == ["b", "c"]
    assert result["excluded_reasons"] == {"b": "no positive in the train subset", "c": "no negative in the test split"}
    assert result["per_class"]["b"] is None and result["per_class"]["c"] is None
    assert result["macro_auc"] == pytest.approx(result["per_class"]["a"])


# Reads a saved head with safetensors + torch alone (no tamer_hf) and prints its test logits and metadata.
RELOAD_IN_A_FRESH_PROCESS = """
import json, sys
import numpy as np
import torch
from safetensors.torch import load_file

embeds = torch.from_numpy(np.load(sys.argv[1]))
reloaded = []
for folder in sys.argv[2:]:
    head = load_file(folder + "/head.safetensors")
    logits = torch.nn.functional.linear(embeds, head["weight"], head["bias"]).double()
    reloaded.append({"scores": logits.tolist(), "metadata": json.load(open(folder + "/head.json"))})
print(json.dumps(reloaded))
"""


def test_saved_heads_reproduce_the_test_scores_in_a_fresh_process(tmp_path):
    train_x, train_y, val_x, val_y, test_x, test_y = splits()
    test_y = test_y.copy()
    test_y[:, 2] = 0  # one excluded class travels with the head
    np.save(tmp_path / "embeds.npy", test_x)
    scored = {recipe: probe.linear_probe(train_x, train_y, val_x, val_y, test_x, test_y, NAMES, recipe=recipe,
                                         fractions=(0.1,), seed=7, output_dir=tmp_path / recipe)["fractions"]["10%"]
              for recipe in ("clean", "sklearn")}
    heads = [scored[recipe]["head"] for recipe in scored]
    assert heads[0] == str(tmp_path / "clean" / "10pct")
    completed = subprocess.run([sys.executable, "-c", RELOAD_IN_A_FRESH_PROCESS, str(tmp_path / "embeds.npy"), *heads],
                               capture_output=True, text=True, check=True)
    for recipe, reloaded in zip(scored, json.loads(completed.stdout)):
        scores = np.array(reloaded["scores"])
        np.testing.assert_array_equal(scores, probe.head_scores(*probe.load_head(scored[recipe]["head"])[:2], test_x))
        for i, name in enumerate(NAMES[:2]):
            assert roc_auc_score(test_y[:, i], scores[:, i]) == scored[recipe]["per_class"][name]
        metadata = reloaded["metadata"]
        assert (metadata["recipe"], metadata["fraction"], metadata["seed"]) == (recipe, 0.1, 7)
        assert metadata["selected_epoch"] == scored[recipe]["selected_epoch"] and metadata["excluded"] == ["c"]
        assert metadata["label_names"] == NAMES and metadata["test_macro_auc"] == scored[recipe]["macro_auc"]


def test_unknown_recipe_and_missing_validation_are_refused():
    train_x, train_y, _, _, test_x, test_y = splits()
    with pytest.raises(ValueError, match="recipe"):
        probe.linear_probe(train_x, train_y, None, None, test_x, test_y, NAMES, recipe="adamw")
    with pytest.raises(ValueError, match="validation"):
        probe.linear_probe(train_x, train_y, None, None, test_x, test_y, NAMES, recipe="clean")
