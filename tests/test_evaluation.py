"""The evaluation metrics, domain shift, linear probe, reports and plots, on synthetic arrays."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tamer_hf import evaluation
from tamer_hf.plotting import plot_ecg_with_scores, plot_per_class_auc, plot_roc_curves

# The ordered label lists of the evaluation sets (MERL split CSV headers, paper_code.md §2.9).
EVALUATION_LABELS = {
    'ptbxl_super_class': ['HYP', 'NORM', 'MI', 'CD', 'STTC'],
    'ptbxl_sub_class': ['AMI', 'LAFB/LPFB', 'LVH', 'STTC', 'IMI', 'SEHYP', 'CRBBB', 'WPW', 'LAO/LAE', 'NORM', 'AVB', 'RAO/RAE', 'ISC', 'LMI', 'ISCI', 'ISCA', 'NST', 'CLBBB', 'ILBBB', 'IRBBB', 'PMI', 'RVH', 'IVCD'],
    'ptbxl_form': ['PAC', 'DIG', 'HVOLT', 'STD', 'LPR', 'QWAVE', 'VCLVH', 'NDT', 'TAB', 'LOWT', 'ABQRS', 'LNGQT', 'PRC(S)', 'NT', 'STE', 'NST', 'PVC', 'INVT', 'LVOLT'],
    'ptbxl_rhythm': ['SVARR', 'BIGU', 'STACH', 'SARRH', 'SBRAD', 'TRIGU', 'AFIB', 'SR', 'SVTAC', 'PSVT', 'AFLT', 'PACE'],
    'icbeb': ['AFIB', 'VPC', 'NORM', '1AVB', 'CRBBB', 'STE', 'PAC', 'CLBBB', 'STD'],
    'chapman': ['AQW', 'UW', 'SR', 'WPW', '2AVB', 'AT', 'VB', 'ARS', 'STTC', 'SA', 'STE', 'VPB', 'TWO', 'STTU', 'ALS', 'APB', '2AVB1', 'PRIE', 'CCR', 'CR', 'AF', 'AVB', 'QTIE', 'LBBB', 'VEB', 'SVT', 'RBBB', '1AVB', 'STDD', 'MI', 'AFIB', 'TWC', 'PWC', 'ERV', 'RVH', 'LVH', 'ST', 'JEB'],
}


def synthetic_scores(num_records=300, num_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    y_true = (rng.random((num_records, num_classes)) < 0.3).astype(np.int8)
    scores = y_true * rng.normal(0.6, 1.0, y_true.shape) + rng.normal(0.0, 1.0, y_true.shape)
    return y_true, scores


def test_macro_auc_equals_sklearn_computed_independently():
    y_true, scores = synthetic_scores()
    names = [f"c{i}" for i in range(5)]
    result = evaluation.per_class_auc(y_true, scores, names)
    expected = [roc_auc_score(y_true[:, i], scores[:, i]) for i in range(5)]
    assert result["per_class"] == pytest.approx(dict(zip(names, expected)), abs=1e-12)
    assert result["macro_auc"] == pytest.approx(roc_auc_score(y_true, scores, average="macro"), abs=1e-12)
    assert result["excluded"] == []


def test_class_with_one_label_value_is_reported_and_excluded_from_macro():
    y_true, scores = synthetic_scores()
    y_true[:, 2] = 0  # no positives
    y_true[:, 4] = 1  # no negatives
    result = evaluation.per_class_auc(y_true, scores, list("abcde"))
    assert result["excluded"] == ["c", "e"]
    assert result["per_class"]["c"] is None and result["per_class"]["e"] is None
    kept = [0, 1, 3]
    assert result["macro_auc"] == pytest.approx(roc_auc_score(y_true[:, kept], scores[:, kept], average="macro"))


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_more_data():
    small = synthetic_scores(100, 4, seed=1)
    large = synthetic_scores(1000, 4, seed=1)
    small_ci = evaluation.bootstrap_macro_auc(*small, num_samples=100, seed=0)
    large_ci = evaluation.bootstrap_macro_auc(*large, num_samples=100, seed=0)
    for (y_true, scores), ci in [(small, small_ci), (large, large_ci)]:
        point = roc_auc_score(y_true, scores, average="macro")
        assert ci["low"] < point < ci["high"]
    assert large_ci["high"] - large_ci["low"] < small_ci["high"] - small_ci["low"]
    assert evaluation.bootstrap_macro_auc(*small, num_samples=50, seed=3) == evaluation.bootstrap_macro_auc(
        *small, num_samples=50, seed=3)


def test_cosine_scores_match_normalised_dot_product():
    rng = np.random.default_rng(0)
    ecg, text = rng.normal(size=(7, 16)), rng.normal(size=(3, 16))
    expected = [[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in text] for a in ecg]
    np.testing.assert_allclose(evaluation.cosine_scores(ecg, text), expected, atol=1e-12)


def test_domain_mapping_target_positive_is_or_of_mapped_columns():
    target_names = ["NORM", "1AVB", "CLBBB", "CRBBB", "STD", "STE"]
    target = np.array([[1, 0, 0, 0, 0, 0],
                       [0, 1, 0, 0, 0, 0],
                       [0, 0, 0, 1, 1, 0],
                       [0, 0, 0, 0, 0, 1],
                       [0, 0, 0, 0, 0, 0]])
    mapping = {"NORM": ["NORM"], "CD": ["1AVB", "CLBBB", "CRBBB"], "STTC": ["STD", "STE"]}
    labels, names = evaluation.map_target_labels(target, target_names, mapping)
    assert names == ["NORM", "CD", "STTC"]
    np.testing.assert_array_equal(labels, [[1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match="MI"):
        evaluation.map_target_labels(target, target_names, {"MI": ["MI"]})


def test_packaged_domain_mappings_only_name_existing_classes():
    sets = EVALUATION_LABELS
    names = {"ptbxl_super": sets["ptbxl_super_class"], "cpsc2018": sets["icbeb"], "csn": sets["chapman"]}
    for pair in ["ptbxl_super->cpsc2018", "ptbxl_super->csn", "cpsc2018->ptbxl_super", "cpsc2018->csn",
                 "csn->ptbxl_super", "csn->cpsc2018"]:
        source, target = pair.split("->")
        mapping = evaluation.load_domain_mapping(pair)
        assert set(mapping) <= set(names[source])
        assert {t for targets in mapping.values() for t in targets} <= set(names[target])


def test_packaged_descriptions_cover_every_evaluation_label():
    sets = EVALUATION_LABELS
    ours = {"ptbxl_super": "ptbxl_super_class", "ptbxl_sub": "ptbxl_sub_class", "ptbxl_form": "ptbxl_form",
            "ptbxl_rhythm": "ptbxl_rhythm", "cpsc2018": "icbeb", "csn": "chapman"}
    for label_set, melp_name in ours.items():
        descriptions = evaluation.load_label_descriptions(label_set)
        assert set(descriptions) == set(sets[melp_name]), label_set
        assert all(5 < len(text.split()) < 60 for text in descriptions.values())
    assert set(evaluation.load_label_descriptions("code_test")) == {"1dAVb", "RBBB", "LBBB", "SB", "AF", "ST"}
    # the same acronym means different findings in different sets
    assert "flutter" in evaluation.load_label_descriptions("csn")["AF"]
    assert "fibrillation" in evaluation.load_label_descriptions("code_test")["AF"]


def test_a_flat_prompt_file_replaces_the_packaged_descriptions(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"AFIB": "irregular rhythm", "NORM": "normal"}))
    descriptions = evaluation.load_label_descriptions("csn", path=path)
    prompts = evaluation.make_prompts(["AFIB", "NORM", "XYZ"], "{}", descriptions)
    assert prompts == ["irregular rhythm", "normal", "xyz"]
    with pytest.raises(ValueError, match="label_set"):
        evaluation.load_label_descriptions()


def test_linear_probe_learns_a_separable_signal_and_uses_the_requested_fractions():
    rng = np.random.default_rng(0)
    labels = (rng.random((1200, 3)) < 0.4).astype(np.int8)
    directions = rng.normal(size=(3, 32))
    embeds = labels @ directions * 2.0 + rng.normal(size=(1200, 32))
    result = evaluation.linear_probe(embeds[:1000], labels[:1000], embeds[1000:], labels[1000:], ["a", "b", "c"])
    assert list(result) == ["1%", "10%", "100%"]
    assert [r["num_train"] for r in result.values()] == [10, 100, 1000]
    assert result["100%"]["macro_auc"] > 0.95
    assert result["100%"]["macro_auc"] >= result["1%"]["macro_auc"] - 0.02
    # a probe on pure noise is at chance level
    noise = evaluation.linear_probe(rng.normal(size=(1000, 32)), labels[:1000], rng.normal(size=(200, 32)),
                                    labels[1000:], ["a", "b", "c"], fractions=(1.0,))
    assert abs(noise["100%"]["macro_auc"] - 0.5) < 0.1


def test_linear_probe_reports_classes_it_could_not_fit():
    rng = np.random.default_rng(0)
    train_labels = np.zeros((50, 2), dtype=np.int8)
    train_labels[::2, 0] = 1  # class "b" has no positive in training
    test_labels = (rng.random((40, 2)) < 0.5).astype(np.int8)
    result = evaluation.linear_probe(rng.normal(size=(50, 4)), train_labels, rng.normal(size=(40, 4)), test_labels,
                                     ["a", "b"], fractions=(1.0,))
    assert result["100%"]["unfitted"] == ["b"]
    assert result["100%"]["per_class"]["b"] == pytest.approx(0.5)


def test_results_are_written_as_json_and_a_paper_layout_markdown_table(tmp_path):
    y_true, scores = synthetic_scores()
    names = list("abcde")
    results = {"method": "TAMER", "label_set": "ptbxl_super",
               "zero_shot": evaluation.evaluate_scores(y_true, scores, names, num_bootstrap=50),
               "domain_shift": {"csn": evaluation.evaluate_scores(y_true, scores, names, num_bootstrap=0)},
               "linear_probe": evaluation.linear_probe(scores, y_true, scores, y_true, names, fractions=(0.1, 1.0))}
    json_path, markdown_path = evaluation.save_results(results, tmp_path)
    reloaded = json.loads(open(json_path).read())
    assert reloaded["zero_shot"]["macro_auc"] == pytest.approx(results["zero_shot"]["macro_auc"])
    markdown = open(markdown_path).read()
    assert "| Method | Training Ratio | Zero-Shot ptbxl_super | Domain Shift → csn |" in markdown
    assert f"{100 * results['zero_shot']['macro_auc']:.2f}" in markdown
    assert "Linear probe 10%" in markdown and "Linear probe 100%" in markdown


def test_plots_are_written_as_png(tmp_path):
    y_true, scores = synthetic_scores()
    y_true[:, 1] = 0
    names = list("abcde")
    result = evaluation.per_class_auc(y_true, scores, names)
    plot_roc_curves(y_true, scores, names, path=tmp_path / "roc.png")
    plot_per_class_auc(result, path=tmp_path / "auc.png")
    ecg = np.sin(np.linspace(0, 60, 5000))[None].repeat(12, 0)
    plot_ecg_with_scores(ecg, [{"label": "AFIB", "score": 0.7}, {"label": "NORM", "score": 0.3}],
                         spectrogram=np.random.default_rng(0).random((12, 63, 81)), path=tmp_path / "ecg.png")
    for name in ["roc.png", "auc.png", "ecg.png"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
