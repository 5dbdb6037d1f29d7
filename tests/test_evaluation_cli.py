"""examples/zero_shot_eval.py end to end on synthetic data with a tiny model: scores checked against sklearn on
cosines computed independently through the pipeline, the commands of docs/reproduction.md, and the
reproducibility record of results.json."""

import hashlib
import importlib.util
import json
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import tamer_hf
from datasets_scripts import cli, label_names, multi_hot_labels, synthetic
from tamer_hf import evaluation
from tamer_hf.pipelines import TASK, pipeline
from tamer_hf.testing_utils import tiny_model_and_processor

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "zero_shot_eval.py"
REPRODUCTION_DOC = ROOT / "docs" / "reproduction.md"


def load_script():
    spec = importlib.util.spec_from_file_location("zero_shot_eval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    model, processor = tiny_model_and_processor()
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    synthetic.generate(num_records=60, seed=0).save_to_disk(root / "source")
    synthetic.generate(num_records=40, seed=1).save_to_disk(root / "target")
    mapping = {"synthetic->synthetic": {"AFIB": ["AFIB", "AFLT"], "SR": ["SR", "SBRAD", "STACH"]}}
    (root / "mapping.json").write_text(json.dumps(mapping))
    return root


def pipeline_cosines(model_dir, dataset, classes, descriptions):
    """Raw cosines through the pipeline (a path independent of evaluation.embed_*)."""
    classifier = pipeline(TASK, model=str(model_dir))
    records = [np.asarray(ecg, dtype=np.float32) for ecg in dataset.with_format("numpy")["ecg"]]
    results = classifier(records, sampling_rate=500, candidate_labels=classes, label_descriptions=descriptions,
                         function_to_apply="none", batch_size=8)
    return np.array([[{e["label"]: e["score"] for e in result}[name] for name in classes] for result in results])


def test_eval_script_auc_domain_shift_probe_and_plots(workspace):
    from datasets import load_from_disk

    out = workspace / "out"
    load_script().main(["--model", str(workspace / "model"), "--dataset", str(workspace / "source"),
                        "--domain_shift", str(workspace / "target"),
                        "--domain_mapping", str(workspace / "mapping.json"), "--linear_probe",
                        "--probe_recipe", "sklearn", "--bootstrap", "20", "--output_dir", str(out)])
    results = json.loads((out / "results.json").read_text())
    descriptions = evaluation.load_label_descriptions("synthetic")

    source = load_from_disk(workspace / "source")
    classes = label_names(source)
    y_true = multi_hot_labels(source["test"])
    scores = pipeline_cosines(workspace / "model", source["test"], classes, descriptions)
    kept = [i for i in range(len(classes)) if 0 < y_true[:, i].sum() < len(y_true)]
    assert kept and results["zero_shot"]["excluded"] == [c for i, c in enumerate(classes) if i not in kept]
    for i in kept:
        assert results["zero_shot"]["per_class"][classes[i]] == pytest.approx(roc_auc_score(y_true[:, i], scores[:, i]),
                                                                              abs=1e-6)
    assert results["zero_shot"]["macro_auc"] == pytest.approx(
        roc_auc_score(y_true[:, kept], scores[:, kept], average="macro"), abs=1e-6)

    # domain shift = zero-shot on the target's own classes, averaged over the classes the mapping covers
    target = load_from_disk(workspace / "target")
    target_labels = multi_hot_labels(target["test"])
    target_names = label_names(target)
    target_scores = pipeline_cosines(workspace / "model", target["test"], target_names, descriptions)
    shift = results["domain_shift"]["synthetic"]
    covered = ["SR", "SBRAD", "STACH", "AFIB", "AFLT"]
    assert shift["covered"] == covered
    scored = [name for name in covered if 0 < target_labels[:, target_names.index(name)].sum() < len(target_labels)]
    columns = [target_names.index(name) for name in scored]
    assert scored and shift["macro_auc"] == pytest.approx(
        roc_auc_score(target_labels[:, columns], target_scores[:, columns], average="macro"), abs=1e-6)

    assert list(results["linear_probe"]["fractions"]) == ["1%", "10%", "100%"]
    assert results["linear_probe"]["fractions"]["100%"]["num_train"] == len(source["train"])
    markdown = (out / "results.md").read_text()
    assert "| Method | Training Ratio | Zero-Shot synthetic | Domain Shift → synthetic |" in markdown
    for name in ["zero_shot_roc.png", "zero_shot_auc.png", "domain_shift_synthetic_roc.png"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------------------------------------------------------
# docs/reproduction.md, "Check the commands offline"


def documented_block(marker: str) -> str:
    """The fenced block that follows `<!-- offline-check {marker} -->` in docs/reproduction.md."""
    text = REPRODUCTION_DOC.read_text()
    match = re.search(rf"<!-- offline-check {marker} -->\n```\w*\n(.*?)```", text, re.S)
    assert match, f"docs/reproduction.md has no offline-check {marker} block"
    return match.group(1)


def documented_commands(variables: dict) -> list[list[str]]:
    """The block's commands (continuation lines joined, $VARIABLES replaced), without its variable assignments."""
    commands = []
    for line in documented_block("commands").replace("\\\n", " ").splitlines():
        if not line.strip() or re.match(r"^\w+=", line):
            continue
        for name, value in variables.items():
            line = line.replace(f"${name}", value)
        commands.append(shlex.split(line))
    return commands


def run_documented(argv: list[str]) -> None:
    """Run `python -m datasets_scripts.synthetic ...` or `python examples/zero_shot_eval.py ...` in this process."""
    if argv[:3] == ["python", "-m", "datasets_scripts.synthetic"]:
        synthetic.main(argv[3:])
    elif argv[:2] == ["python", "examples/zero_shot_eval.py"]:
        load_script().main(argv[2:])
    else:
        raise AssertionError(f"unexpected command in docs/reproduction.md: {argv}")


def test_documented_offline_commands_run_and_record_how_to_repeat_them(workspace, tmp_path):
    from datasets import load_from_disk

    variables = {"MODEL": str(workspace / "model"), "WORK": str(tmp_path)}
    (tmp_path / "synthetic_mapping.json").write_text(documented_block("mapping"))
    commands = documented_commands(variables)
    head_before = git(["rev-parse", "HEAD"])
    assert [argv[:3] for argv in commands] == [["python", "-m", "datasets_scripts.synthetic"]] + [
        ["python", "examples/zero_shot_eval.py", "--model"]] * 2
    for argv in commands:
        run_documented(argv)

    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert_reproducibility_record(results, commands[1], workspace / "model", tmp_path / "synthetic", head_before)
    assert results["domain_shift"]["synthetic"]["covered"] == ["SR", "SBRAD", "STACH", "AFIB", "AFLT"]
    shift_dataset = results["domain_shift"]["synthetic"]["dataset"]
    assert shift_dataset["fingerprint"] == load_from_disk(tmp_path / "synthetic")["test"]._fingerprint
    assert results["domain_shift"]["synthetic"]["prompts"]["sha256"] == evaluation.prompt_list_sha256(
        list(results["domain_shift"]["synthetic"]["prompts"]["prompts"].values()))

    for folder, recipe, optimistic in [("eval", "clean", False), ("eval_merl_probe", "merl", True)]:
        probe = json.loads((tmp_path / folder / "results.json").read_text())["linear_probe"]
        assert (probe["recipe"], probe["optimistic"]) == (recipe, optimistic)
        assert set(probe["datasets"]) == {"train", "validation"}
        assert probe["datasets"]["train"]["fingerprint"] == load_from_disk(tmp_path / "synthetic")["train"]._fingerprint
        for key, result in probe["fractions"].items():
            head = json.loads((Path(result["head"]) / "head.json").read_text())
            assert (head["recipe"], f"{head['fraction'] * 100:g}%", head["selected_epoch"]) == (
                recipe, key, result["selected_epoch"])
            assert (Path(result["head"]) / "head.safetensors").exists()
            assert all(result["per_class"][name] is None for name in result["excluded"])
    assert "optimistic" in (tmp_path / "eval_merl_probe" / "results.md").read_text()


def git(args: list[str]) -> str | None:
    completed = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return completed.stdout.strip() if completed.returncode == 0 else None


def assert_reproducibility_record(results: dict, argv: list[str], model_dir: Path, dataset_dir: Path,
                                  head_before: str | None) -> None:
    from datasets import load_from_disk

    package = results["package"]
    assert package["version"] == tamer_hf.__version__
    if git(["rev-parse", "--show-toplevel"]) == str(ROOT):
        # other people may commit while the test runs: the recorded commit lies between the HEADs before and after
        assert git(["merge-base", "--is-ancestor", head_before, package["git_commit"]]) is not None
        assert git(["merge-base", "--is-ancestor", package["git_commit"], "HEAD"]) is not None
    else:
        assert package["git_commit"] is None

    weights = (model_dir / "model.safetensors").read_bytes()
    assert results["checkpoint"]["sha256"] == hashlib.sha256(weights).hexdigest()

    dataset = results["dataset"]
    assert dataset["path"] == str(dataset_dir) and dataset["split"] == results["split"] == "test"
    assert dataset["fingerprint"] == load_from_disk(dataset_dir)["test"]._fingerprint
    assert dataset["source"] == "synthetic" and "protocol" in dataset and dataset["protocol"] is None
    assert len(dataset["records_sha256"]) == 64 and dataset["num_records"] == results["num_records"]
    assert results["task"] is None and results["label_set"] == "synthetic" and results["template"] == "{}"

    prompts = results["prompts"]
    descriptions = evaluation.load_label_descriptions("synthetic")
    classes = label_names(load_from_disk(dataset_dir))
    expected = evaluation.make_prompts(classes, "{}", descriptions)
    assert prompts["prompts"] == dict(zip(classes, expected))
    assert prompts["sha256"] == hashlib.sha256(json.dumps(expected, ensure_ascii=False).encode()).hexdigest()
    assert prompts["source"] == evaluation.PACKAGED_DESCRIPTIONS and prompts["packaged"] is True
    assert prompts["source_sha256"] == hashlib.sha256(Path(evaluation.PACKAGED_DESCRIPTIONS).read_bytes()).hexdigest()

    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    assert results["bootstrap"] == {"seed": seed, "num_resamples": int(argv[argv.index("--bootstrap") + 1])}
    assert shlex.split(results["command"])[0] == "python"
    assert shlex.split(results["command"])[1].endswith("examples/zero_shot_eval.py")
    assert shlex.split(results["command"])[2:] == argv[2:]


# ----------------------------------------------------------------------------------------------------------------------
# Prompt files


def test_ckepe_shaped_prompts_are_used_as_they_are(workspace, tmp_path):
    from datasets import load_from_disk

    classes = label_names(load_from_disk(workspace / "source"))
    ckepe = {name: f"Finding {name}, Subtype One, subtype two." for name in classes}
    ckepe["UNUSED"] = "a label of another set."
    (tmp_path / "CKEPE_prompt.json").write_text(json.dumps(ckepe, indent=8))
    results = load_script().main(["--model", str(workspace / "model"), "--dataset", str(workspace / "source"),
                                  "--prompts", str(tmp_path / "CKEPE_prompt.json"), "--bootstrap", "0",
                                  "--output_dir", str(tmp_path / "out")])
    prompts = results["prompts"]
    assert prompts["prompts"] == {name: ckepe[name].lower() for name in classes}
    assert prompts["source"] == str(tmp_path / "CKEPE_prompt.json") and prompts["packaged"] is False
    assert prompts["source_sha256"] == hashlib.sha256((tmp_path / "CKEPE_prompt.json").read_bytes()).hexdigest()


def test_bad_prompt_sources_and_unmapped_pairs_end_with_one_error_line(workspace, tmp_path, capsys):
    (tmp_path / "partial.json").write_text(json.dumps({"NORM": "normal ecg"}))
    base = ["--model", str(workspace / "model"), "--dataset", str(workspace / "source"), "--output_dir", str(tmp_path)]
    for extra, message in [(["--prompts", "http://127.0.0.1:9/CKEPE_prompt.json"], "cannot download"),
                           (["--prompts", str(tmp_path / "partial.json")], "has no prompt for"),
                           (["--domain_shift", str(workspace / "target")], "No domain mapping 'synthetic->synthetic'")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.run(load_script().main, base + extra)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and message in error and error.count("\n") == 1


def test_eval_defaults_to_the_template_and_prompts_the_checkpoint_was_validated_with(tmp_path):
    """Issue 14: `tamer pretrain --zero_shot_template ... --zero_shot_prompts ...` stores them in the saved config;
    `tamer eval` without --hypothesis_template / --prompt_style uses them (printed and in results.json), flags win."""
    from datasets import load_from_disk

    from tamer_hf.commands.pretrain import main as pretrain_command
    from tamer_hf.evaluation import load_label_descriptions, make_prompts

    model_dir = tmp_path / "model"
    pretrain_command(["--output_dir", str(model_dir), "--synthetic_records", "60", "--batch_size", "8",
                      "--max_steps", "1", "--eval_steps", "0", "--checkpointing_steps", "0", "--report_to", "none",
                      "--local_text_hidden_size", "32", "--zero_shot_template", "an ecg showing {}.",
                      "--zero_shot_prompts", "name"])
    config = json.loads((model_dir / "config.json").read_text())
    assert config["zero_shot_template"] == "an ecg showing {}." and config["zero_shot_prompts"] == "name"
    synthetic.generate(num_records=30, seed=0).save_to_disk(tmp_path / "data")
    classes = label_names(load_from_disk(str(tmp_path / "data")))
    names = {label: text.split(":")[0] for label, text in load_label_descriptions("synthetic").items()}

    load_script().main(["--model", str(model_dir), "--dataset", str(tmp_path / "data"), "--bootstrap", "0",
                        "--output_dir", str(tmp_path / "stored")])
    results = json.loads((tmp_path / "stored" / "results.json").read_text())
    assert results["template"] == "an ecg showing {}."
    assert results["template_source"] == "the checkpoint's config (zero_shot_template)"
    assert results["prompts"]["style"] == "name"
    assert list(results["prompts"]["prompts"].values()) == make_prompts(classes, "an ecg showing {}.", names)

    load_script().main(["--model", str(model_dir), "--dataset", str(tmp_path / "data"), "--bootstrap", "0",
                        "--output_dir", str(tmp_path / "flags"), "--hypothesis_template", "{}",
                        "--prompt_style", "description"])
    results = json.loads((tmp_path / "flags" / "results.json").read_text())
    assert results["template"] == "{}" and results["template_source"] == "--hypothesis_template"
    assert list(results["prompts"]["prompts"].values()) == make_prompts(
        classes, "{}", load_label_descriptions("synthetic"))
