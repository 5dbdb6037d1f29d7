"""The evaluation metrics, prompt files (paths and URLs), reproducibility record, reports and plots."""

import hashlib
import json
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import tamer_hf
from tamer_hf import evaluation
from tamer_hf.linear_probe import linear_probe
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


def test_column_aucs_equal_sklearn_with_ties_and_one_valued_columns():
    y_true, scores = synthetic_scores(200, 5, seed=2)
    scores = np.round(scores, 1)  # many ties
    y_true[:, 3] = 1
    aucs = evaluation.column_aucs(y_true, scores)
    for i in (0, 1, 2, 4):
        assert aucs[i] == pytest.approx(roc_auc_score(y_true[:, i], scores[:, i]), abs=1e-12)
    assert np.isnan(aucs[3])


def test_cosine_scores_match_normalised_dot_product():
    rng = np.random.default_rng(0)
    ecg, text = rng.normal(size=(7, 16)), rng.normal(size=(3, 16))
    expected = [[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in text] for a in ecg]
    np.testing.assert_allclose(evaluation.cosine_scores(ecg, text), expected, atol=1e-12)


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


CKEPE_SHAPED = {"NORM": "Normal ECG, Sinus rhythm.", "AFIB": "Atrial Fibrillation, Paroxysmal Atrial Fibrillation.",
                "STE": "ST elevation, ST-segment elevation."}
MERL_CKEPE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "merl" / "CKEPE_prompt.json"


def test_ckepe_prompts_are_the_texts_verbatim_lower_cased(tmp_path):
    path = tmp_path / "CKEPE_prompt.json"
    path.write_text(json.dumps(CKEPE_SHAPED, indent=8))
    descriptions = evaluation.load_label_descriptions("cpsc2018", path=path)  # flat: the section is ignored
    assert evaluation.make_prompts(["STE", "NORM"], "{}", descriptions) == [
        "st elevation, st-segment elevation.", "normal ecg, sinus rhythm."]


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server over tmp_path (no internet needed)."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=partial(server.serve_forever, poll_interval=0.05), daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_prompt_file_is_read_from_an_http_url(http_folder):
    folder, url = http_folder
    (folder / "CKEPE_prompt.json").write_text(json.dumps(CKEPE_SHAPED))
    table, raw = evaluation.read_json_source(f"{url}/CKEPE_prompt.json")
    assert table == CKEPE_SHAPED and raw == (folder / "CKEPE_prompt.json").read_bytes()
    assert evaluation.load_label_descriptions(path=f"{url}/CKEPE_prompt.json") == CKEPE_SHAPED


def test_unreachable_prompt_url_or_missing_file_is_one_clear_line(http_folder, tmp_path):
    _, url = http_folder
    for source, message in [(f"{url}/absent.json", "cannot download"), ("http://127.0.0.1:9/p.json", "cannot download"),
                            (str(tmp_path / "absent.json"), "cannot read")]:
        with pytest.raises(ValueError, match=message) as error:
            evaluation.read_json_source(source)
        assert source in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        evaluation.read_json_source(tmp_path / "list.json")


@pytest.mark.skipif(not MERL_CKEPE.exists(), reason="MERL's CKEPE_prompt.json is not in ../shared/reference")
def test_merl_ckepe_file_as_published_covers_every_evaluation_label():
    descriptions = evaluation.load_label_descriptions(path=MERL_CKEPE)
    assert len(descriptions) == 131
    for names in EVALUATION_LABELS.values():
        assert set(names) <= set(descriptions)


def test_checkpoint_hash_is_the_sha256_of_the_weight_file_or_of_the_shard_listing(tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    (single / "model.safetensors").write_bytes(b"weights")
    (single / "config.json").write_text("{}")
    record = evaluation.checkpoint_record(str(single))
    assert record["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert list(record["files"]) == ["model.safetensors"]

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    shards = {"model-00001-of-00002.safetensors": b"a", "model-00002-of-00002.safetensors": b"b"}
    for name, data in shards.items():
        (sharded / name).write_bytes(data)
    listing = "".join(f"{hashlib.sha256(shards[name]).hexdigest()}  {name}\n" for name in sorted(shards))
    assert evaluation.checkpoint_record(str(sharded))["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert evaluation.checkpoint_record("org/not-downloaded")["sha256"] is None


def test_package_record_has_the_version_and_the_commit_of_the_source_tree():
    source_tree = Path(tamer_hf.__file__).resolve().parents[1]

    def git(*args):
        completed = subprocess.run(["git", "-C", str(source_tree), *args], capture_output=True, text=True)
        return completed.stdout.strip() if completed.returncode == 0 else None

    head_before = git("rev-parse", "HEAD")
    record = evaluation.package_record()
    assert record["version"] == tamer_hf.__version__
    if git("rev-parse", "--show-toplevel") == str(source_tree):
        # others may commit meanwhile: the recorded commit lies between the HEADs before and after the call
        assert git("merge-base", "--is-ancestor", head_before, record["git_commit"]) is not None
        assert git("merge-base", "--is-ancestor", record["git_commit"], "HEAD") is not None
    else:
        assert record["git_commit"] is None


def test_prompt_record_hashes_the_encoded_list():
    prompts = ["normal ecg", "atrial fibrillation — af"]
    record = evaluation.prompt_record("p.json", "abc", ["NORM", "AFIB"], prompts)
    assert record["sha256"] == hashlib.sha256(json.dumps(prompts, ensure_ascii=False).encode("utf-8")).hexdigest()
    assert record["prompts"] == {"NORM": "normal ecg", "AFIB": "atrial fibrillation — af"}


def test_results_are_written_as_json_and_a_paper_layout_markdown_table(tmp_path):
    y_true, scores = synthetic_scores()
    names = list("abcde")
    results = {"method": "TAMER", "label_set": "ptbxl_super",
               "zero_shot": evaluation.evaluate_scores(y_true, scores, names, num_bootstrap=50),
               "domain_shift": {"csn": evaluation.evaluate_scores(y_true, scores, names, num_bootstrap=0)},
               "linear_probe": linear_probe(scores, y_true, None, None, scores, y_true, names, recipe="sklearn",
                                            fractions=(0.1, 1.0))}
    json_path, markdown_path = evaluation.save_results(results, tmp_path)
    reloaded = json.loads(open(json_path).read())
    assert reloaded["zero_shot"]["macro_auc"] == pytest.approx(results["zero_shot"]["macro_auc"])
    markdown = open(markdown_path).read()
    assert "| Method | Training Ratio | Zero-Shot ptbxl_super | Domain Shift → csn |" in markdown
    assert f"{100 * results['zero_shot']['macro_auc']:.2f}" in markdown
    assert "| Method | Probe recipe | Linear probe 10% | Linear probe 100% |" in markdown
    assert "| TAMER | sklearn |" in markdown


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
