"""The zero-shot ECG pipeline: scores against an independent computation, every input form, batching, bad inputs,
and identical outputs from the three ways of loading a saved model."""

import glob
import json

import numpy as np
import pytest
import torch
import transformers

import tamer_hf
from tamer_hf.testing_utils import (make_hub_cache, physionet_samples_dir, pipeline_outputs_without_tamer_hf,
                                    tiny_model_and_processor)
from tamer_hf.pipelines import TASK, pipeline, register_pipeline, save_pretrained_with_pipeline

GEORGIA = physionet_samples_dir() / "georgia"
LABELS = ["atrial fibrillation", "sinus rhythm", "left bundle branch block"]


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory):
    """One tiny model saved with `custom_pipelines` (shared by every test: loading is the slow part)."""
    model, processor = tiny_model_and_processor(texts=LABELS)
    directory = tmp_path_factory.mktemp("tamer") / "model"
    save_pretrained_with_pipeline(model.eval(), processor, directory)
    return directory


@pytest.fixture(scope="session")
def classifier(saved_model):
    return pipeline(TASK, model=str(saved_model))


@pytest.fixture(scope="session")
def ecgs():
    rng = np.random.default_rng(0)
    time = np.arange(5000) / 500
    beats = np.sin(2 * np.pi * 1.2 * time) ** 21  # spiky, ECG-like
    return [(beats * rng.uniform(0.5, 2.0, (12, 1)) + 0.05 * rng.normal(size=(12, 5000))).astype(np.float32)
            for _ in range(5)]


def independent_cosine(classifier, ecg, prompts, sampling_rate=500):
    """Feature extractor + model + tokenizer called by hand, as a user would without the pipeline."""
    model = classifier.model
    input_values = classifier.feature_extractor(ecg, sampling_rate=sampling_rate, return_tensors="pt")["input_values"]
    tokens = classifier.tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ecg_embeds = model.get_ecg_features(input_values=input_values)
        text_embeds = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    return (ecg_embeds @ text_embeds.T)[0]


def as_dict(result):
    return {entry["label"]: entry["score"] for entry in result}


def test_single_label_scores_are_the_tempered_softmax_of_cosines_sorted_and_sum_to_one(classifier, ecgs):
    result = classifier(ecgs[0], sampling_rate=500, candidate_labels=LABELS)
    scores = [entry["score"] for entry in result]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-6)
    temperature = classifier.model.config.rada_temperature
    expected = torch.softmax(independent_cosine(classifier, ecgs[0], LABELS) / temperature, dim=0)
    assert as_dict(result) == pytest.approx(dict(zip(LABELS, expected.tolist())), abs=1e-5)


def test_raw_cosines_are_returned_with_function_to_apply_none(classifier, ecgs):
    result = classifier(ecgs[0], sampling_rate=500, candidate_labels=LABELS, function_to_apply="none")
    expected = independent_cosine(classifier, ecgs[0], LABELS)
    assert as_dict(result) == pytest.approx(dict(zip(LABELS, expected.tolist())), abs=1e-5)


def test_multi_label_scores_are_independent_per_label_in_unit_interval(classifier, ecgs):
    result = as_dict(classifier(ecgs[1], sampling_rate=500, candidate_labels=LABELS, multi_label=True))
    assert all(0.0 <= score <= 1.0 for score in result.values())
    temperature = classifier.model.config.rada_temperature
    positive = independent_cosine(classifier, ecgs[1], LABELS)
    negative = independent_cosine(classifier, ecgs[1], [f"no {label}" for label in LABELS])
    expected = torch.sigmoid((positive - negative) / temperature)
    assert result == pytest.approx(dict(zip(LABELS, expected.tolist())), abs=1e-5)
    # independent: a label's score does not change when other labels are added or removed
    alone = as_dict(classifier(ecgs[1], sampling_rate=500, candidate_labels=LABELS[:1], multi_label=True))
    assert alone[LABELS[0]] == pytest.approx(result[LABELS[0]], abs=1e-6)


def test_label_descriptions_and_template_change_the_encoded_text_not_the_returned_label(classifier, ecgs):
    descriptions = {"AFIB": "atrial fibrillation", "SR": "sinus rhythm"}
    described = classifier(ecgs[0], sampling_rate=500, candidate_labels=["AFIB", "SR"], label_descriptions=descriptions)
    plain = classifier(ecgs[0], sampling_rate=500, candidate_labels=["atrial fibrillation", "sinus rhythm"])
    assert {entry["label"] for entry in described} == {"AFIB", "SR"}
    assert as_dict(described)["AFIB"] == pytest.approx(as_dict(plain)["atrial fibrillation"], abs=1e-6)
    templated = as_dict(classifier(ecgs[0], sampling_rate=500, candidate_labels=LABELS, hypothesis_template="ecg: {}",
                                   function_to_apply="none"))
    expected = independent_cosine(classifier, ecgs[0], [f"ecg: {label}" for label in LABELS])
    assert templated == pytest.approx(dict(zip(LABELS, expected.tolist())), abs=1e-5)


def test_top_k_keeps_the_best_labels(classifier, ecgs):
    full = classifier(ecgs[0], sampling_rate=500, candidate_labels=LABELS)
    assert classifier(ecgs[0], sampling_rate=500, candidate_labels=LABELS, top_k=2) == full[:2]


def test_every_input_form_gives_the_same_scores(classifier, ecgs, tmp_path):
    wfdb = pytest.importorskip("wfdb")
    ecg = ecgs[2]
    reference = as_dict(classifier(ecg, sampling_rate=500, candidate_labels=LABELS))
    leads = list(tamer_hf.CANONICAL_LEADS)
    shuffled = [11, 0, 5, 3, 1, 2, 4, 6, 7, 8, 9, 10]
    forms = {
        "time-major array": (ecg.T, {"sampling_rate": 500}),
        "torch tensor": (torch.from_numpy(ecg), {"sampling_rate": 500}),
        "dict": ({"signal": ecg, "sampling_rate": 500}, {}),
        "dict with reordered leads": (
            {"signal": ecg[shuffled], "sampling_rate": 500, "lead_names": [leads[i] for i in shuffled]}, {}),
    }
    for name, (inputs, kwargs) in forms.items():
        assert as_dict(classifier(inputs, candidate_labels=LABELS, **kwargs)) == pytest.approx(reference, abs=1e-5), name
    # WFDB: the header's gain quantises the signal, so compare with the values read back from the file
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=leads, p_signal=ecg.T.astype(np.float64), fmt=["16"] * 12,
                write_dir=str(tmp_path))
    stored, _ = wfdb.rdsamp(str(tmp_path / "rec"))
    from_file = as_dict(classifier(str(tmp_path / "rec.hea"), candidate_labels=LABELS))
    assert from_file == pytest.approx(as_dict(classifier(stored, sampling_rate=500, candidate_labels=LABELS)), abs=1e-5)
    # a 250 Hz record is resampled by the feature extractor
    assert len(classifier(ecg[:, ::2], sampling_rate=250, candidate_labels=LABELS)) == len(LABELS)


def test_a_batch_gives_the_same_scores_as_one_by_one_calls(classifier, ecgs):
    batched = classifier(ecgs, sampling_rate=500, candidate_labels=LABELS, batch_size=2)  # 2 + 2 + 1
    assert len(batched) == len(ecgs)
    for ecg, result in zip(ecgs, batched):
        single = classifier(ecg, sampling_rate=500, candidate_labels=LABELS)
        assert [entry["label"] for entry in result] == [entry["label"] for entry in single]
        assert as_dict(result) == pytest.approx(as_dict(single), abs=1e-5)
    multi = classifier(ecgs[:3], sampling_rate=500, candidate_labels=LABELS, batch_size=3, multi_label=True)
    assert as_dict(multi[2]) == pytest.approx(
        as_dict(classifier(ecgs[2], sampling_rate=500, candidate_labels=LABELS, multi_label=True)), abs=1e-5)


@pytest.mark.parametrize(
    "inputs, kwargs, error, match",
    [
        ("ecg", {"candidate_labels": LABELS}, ValueError, "sampling_rate"),
        ("ecg", {"sampling_rate": 500, "candidate_labels": []}, ValueError, "empty"),
        ("ecg", {"sampling_rate": 500}, ValueError, "candidate_labels"),
        ("ecg", {"sampling_rate": 500, "candidate_labels": ["a", "a"]}, ValueError, "duplicates"),
        ("3d", {"sampling_rate": 500, "candidate_labels": LABELS}, ValueError, "list of ECGs"),
        ("1d", {"sampling_rate": 500, "candidate_labels": LABELS}, ValueError, "2 dimensions"),
        ("nan", {"sampling_rate": 500, "candidate_labels": LABELS}, ValueError, "NaN"),
        ("missing.hea", {"candidate_labels": LABELS}, FileNotFoundError, "missing.hea"),
        ("corrupt.hea", {"candidate_labels": LABELS}, ValueError, "Could not read"),
        (3.5, {"sampling_rate": 500, "candidate_labels": LABELS}, TypeError, "numpy array"),
        ("ecg", {"sampling_rate": 500, "candidate_labels": LABELS, "top_k": 0}, ValueError, "top_k"),
        ("ecg", {"sampling_rate": 500, "candidate_labels": LABELS, "hypothesis_template": "an ecg"}, ValueError,
         r"hypothesis_template 'an ecg' must contain '\{\}' exactly once"),
        ("ecg", {"sampling_rate": 500, "candidate_labels": LABELS, "hypothesis_template": "{label}"}, ValueError,
         "hypothesis_template '{label}' is not a template"),
        ("ecg", {"sampling_rate": 500, "candidate_labels": LABELS, "multi_label": True, "negative_template": "no"},
         ValueError, "negative_template 'no' must contain"),
    ],
)
def test_bad_inputs_give_clear_errors(classifier, ecgs, tmp_path, inputs, kwargs, error, match):
    (tmp_path / "corrupt.hea").write_text("this is not a wfdb header\n")
    (tmp_path / "corrupt.dat").write_bytes(b"\x00\x01")
    examples = {
        "ecg": ecgs[0],
        "3d": np.stack(ecgs[:2]),
        "1d": ecgs[0][0],
        "nan": np.full((12, 5000), np.nan, dtype=np.float32),
        "missing.hea": str(tmp_path / "missing.hea"),
        "corrupt.hea": str(tmp_path / "corrupt.hea"),
    }
    with pytest.raises(error, match=match):
        classifier(examples.get(inputs, inputs), **kwargs)


@pytest.mark.skipif(not GEORGIA.is_dir(), reason="PhysioNet samples not available")
def test_real_georgia_records_go_through_the_pipeline(classifier):
    paths = sorted(glob.glob(str(GEORGIA / "*.hea")))
    assert paths
    results = classifier(paths, candidate_labels=LABELS, batch_size=8)
    assert len(results) == len(paths)
    for result in results:
        assert sum(entry["score"] for entry in result) == pytest.approx(1.0, abs=1e-5)
        assert all(np.isfinite(entry["score"]) for entry in result)


def test_task_name_alone_works_after_import_on_a_checkpoint_with_custom_pipelines(saved_model, classifier, ecgs):
    """SPEC §1: `pipeline(task, model=...)` after `import tamer_hf`, on the same folder that carries custom_pipelines
    for remote use; the local classes serve it and no remote code runs."""
    assert "zero-shot-ecg-classification" in json.loads((saved_model / "config.json").read_text())["custom_pipelines"]
    plain = transformers.pipeline(TASK, model=str(saved_model))
    assert type(plain) is tamer_hf.ZeroShotECGClassificationPipeline
    assert type(plain.model) is tamer_hf.TamerModel
    expected = classifier(ecgs[0], sampling_rate=500, candidate_labels=LABELS)
    assert as_dict(plain(ecgs[0], sampling_rate=500, candidate_labels=LABELS)) == pytest.approx(as_dict(expected))


def test_same_outputs_via_import_folder_remote_code_and_offline_hub_cache(saved_model, ecgs, tmp_path):
    in_process = pipeline(TASK, model=str(saved_model))
    calls = [{"sampling_rate": 500, "candidate_labels": LABELS},
             {"sampling_rate": 500, "candidate_labels": LABELS, "multi_label": True}]
    expected = [in_process(ecgs[3], **call) for call in calls]
    mixed = transformers.pipeline(TASK, model=str(saved_model), trust_remote_code=True)
    assert as_dict(mixed(ecgs[3], **calls[0])) == pytest.approx(as_dict(expected[0]))

    make_hub_cache(tmp_path / "hf_home", saved_model)
    outputs = pipeline_outputs_without_tamer_hf([saved_model, "org/tamer-ecg"], ecgs[3], calls, tmp_path / "child",
                                                hf_home=tmp_path / "hf_home")
    for name, output in outputs.items():
        assert all("tamer_hf" not in module for module in output["modules"]), output["modules"]
        for got, want in zip(output["named"], expected):
            assert [entry["label"] for entry in got] == [entry["label"] for entry in want], name
            assert as_dict(got) == pytest.approx(as_dict(want), abs=1e-6), name
