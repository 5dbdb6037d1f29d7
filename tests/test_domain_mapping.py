"""The packaged domain-shift mapping is MERL's published tables, and the score follows the documented rule."""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tamer_hf import evaluation

# MERL appendix Tables 11-13 as transcribed in reference/protocols.md §1 (typed here from that text, independently of
# tamer_hf/data/domain_mapping.json): source class -> target classes, [] where the table says "none".
MERL_TABLE_11 = {  # PTBXL-Super -> CPSC2018
    "HYP": [], "NORM": ["NORM"], "CD": ["1AVB", "CRBBB", "CLBBB"], "MI": [], "STTC": ["STE", "STD"],
}
MERL_TABLE_12 = {  # PTBXL-Super -> CSN
    "HYP": ["RVH", "LVH"], "NORM": ["SR"], "CD": ["2AVB", "2AVB1", "1AVB", "AVB", "LBBB", "RBBB", "STDD"],
    "MI": ["MI"], "STTC": ["STTC", "STE", "TWO", "STTU", "QTIE", "TWC"],
}
MERL_TABLE_13 = {  # CPSC2018 -> CSN
    "AFIB": ["AFIB"], "VPC": ["VPB"], "NORM": ["SR"], "1AVB": ["1AVB"], "CRBBB": ["RBBB"], "STE": ["STE"],
    "PAC": ["APB"], "CLBBB": ["LBBB"], "STD": ["STE", "STTC", "STTU", "STDD"],
}
# Label columns of MERL's test CSVs (reference/paper_code.md §2.9).
TARGET_NAMES = {
    "ptbxl_super": ["HYP", "NORM", "MI", "CD", "STTC"],
    "cpsc2018": ["AFIB", "VPC", "NORM", "1AVB", "CRBBB", "STE", "PAC", "CLBBB", "STD"],
    "csn": ["AQW", "UW", "SR", "WPW", "2AVB", "AT", "VB", "ARS", "STTC", "SA", "STE", "VPB", "TWO", "STTU", "ALS",
            "APB", "2AVB1", "PRIE", "CCR", "CR", "AF", "AVB", "QTIE", "LBBB", "VEB", "SVT", "RBBB", "1AVB", "STDD",
            "MI", "AFIB", "TWC", "PWC", "ERV", "RVH", "LVH", "ST", "JEB"],
}
# Covered target classes per pair, as listed in reference/protocols.md §1.
COVERED = {
    "ptbxl_super->cpsc2018": {"NORM", "1AVB", "CRBBB", "CLBBB", "STE", "STD"},
    "ptbxl_super->csn": {"RVH", "LVH", "SR", "2AVB", "2AVB1", "1AVB", "AVB", "LBBB", "RBBB", "STDD", "MI", "STTC",
                         "STE", "TWO", "STTU", "QTIE", "TWC"},
    "cpsc2018->csn": {"AFIB", "VPB", "SR", "1AVB", "RBBB", "STE", "APB", "LBBB", "STTC", "STTU", "STDD"},
    "cpsc2018->ptbxl_super": {"NORM", "CD", "STTC"},
    "csn->ptbxl_super": {"HYP", "NORM", "MI", "CD", "STTC"},
    "csn->cpsc2018": set(TARGET_NAMES["cpsc2018"]),
}


def test_packaged_mapping_equals_merl_tables_entry_by_entry():
    assert evaluation.load_domain_mapping("ptbxl_super->cpsc2018") == MERL_TABLE_11
    assert evaluation.load_domain_mapping("ptbxl_super->csn") == MERL_TABLE_12
    assert evaluation.load_domain_mapping("cpsc2018->csn") == MERL_TABLE_13
    packaged = json.loads(open(evaluation.PACKAGED_DOMAIN_MAPPING, encoding="utf-8").read())
    assert sorted(key for key in packaged if not key.startswith("_")) == [
        "cpsc2018->csn", "ptbxl_super->cpsc2018", "ptbxl_super->csn"]  # only the published forward tables
    assert "Tables 11, 12 and 13" in packaged["_source"]
    assert packaged["_merl_tables"] == {"ptbxl_super->cpsc2018": "Table 11", "ptbxl_super->csn": "Table 12",
                                        "cpsc2018->csn": "Table 13"}


def test_reverse_pairs_read_the_tables_right_to_left():
    for forward, table in [("ptbxl_super->cpsc2018", MERL_TABLE_11), ("ptbxl_super->csn", MERL_TABLE_12),
                           ("cpsc2018->csn", MERL_TABLE_13)]:
        source, target = forward.split("->")
        reverse = evaluation.load_domain_mapping(f"{target}->{source}")
        expected_pairs = {(t, s) for s, targets in table.items() for t in targets}
        assert {(s, t) for s, targets in reverse.items() for t in targets} == expected_pairs
    assert evaluation.load_domain_mapping("cpsc2018->ptbxl_super")["CRBBB"] == ["CD"]
    assert evaluation.load_domain_mapping("csn->cpsc2018")["STE"] == ["STE", "STD"]
    with pytest.raises(ValueError, match="code_test"):
        evaluation.load_domain_mapping("code_test->csn")


def test_covered_target_classes_match_the_published_lists():
    for pair, covered in COVERED.items():
        target = pair.split("->")[1]
        mapping = evaluation.load_domain_mapping(pair)
        assert set(evaluation.covered_target_classes(mapping, TARGET_NAMES[target])) == covered, pair


def test_domain_shift_score_is_zero_shot_auc_over_covered_target_classes():
    rng = np.random.default_rng(0)
    names = TARGET_NAMES["cpsc2018"]
    y_true = (rng.random((400, len(names))) < 0.3).astype(np.int8)
    scores = y_true * rng.normal(0.5, 1.0, y_true.shape) + rng.normal(size=y_true.shape)
    result = evaluation.domain_shift_score(y_true, scores, names, MERL_TABLE_11, num_bootstrap=0)

    covered = [i for i, name in enumerate(names) if name in {"NORM", "1AVB", "CRBBB", "CLBBB", "STE", "STD"}]
    expected = roc_auc_score(y_true[:, covered], scores[:, covered], average="macro")
    assert result["macro_auc"] == pytest.approx(expected, abs=1e-12)
    assert result["covered"] == [names[i] for i in covered]
    assert result["not_covered"] == ["AFIB", "VPC", "PAC"]
    assert set(result["per_class"]) == set(result["covered"])


def test_domain_shift_score_excludes_a_covered_class_without_positives():
    rng = np.random.default_rng(1)
    names = TARGET_NAMES["ptbxl_super"]
    y_true = (rng.random((200, 5)) < 0.4).astype(np.int8)
    y_true[:, names.index("CD")] = 0
    scores = rng.normal(size=y_true.shape)
    mapping = evaluation.load_domain_mapping("cpsc2018->ptbxl_super")
    result = evaluation.domain_shift_score(y_true, scores, names, mapping, num_bootstrap=0)
    assert result["excluded"] == ["CD"] and result["per_class"]["CD"] is None
    kept = [names.index("NORM"), names.index("STTC")]
    assert result["macro_auc"] == pytest.approx(roc_auc_score(y_true[:, kept], scores[:, kept], average="macro"))


def test_mapping_naming_a_class_the_target_lacks_is_refused():
    with pytest.raises(ValueError, match="MI"):
        evaluation.covered_target_classes({"MI": ["MI"]}, TARGET_NAMES["cpsc2018"])
