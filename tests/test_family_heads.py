"""Every family's fine-tuning head (`<Family>ForECGClassification`, registered in `FAMILY.extra_auto_models`) goes
through the shared code: it loads a pre-trained folder of its family with the encoder weights unchanged, reads the
same ECG embedding as the pre-trained model's `ecg_embedding` (the unnormalised zero-shot feature), fine-tunes through
`examples/finetune.py` (which names no family) and reloads through `AutoModelForAudioClassification` with the same
logits. TAMER's head has its own, longer end-to-end test in tests/test_finetuning.py."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForAudioClassification

import tamer_hf  # noqa: F401 (registers every family with the Auto classes)
from datasets_scripts import synthetic
from tamer_hf.families import family_names, get_family
from tamer_hf.finetuning import head_class_for
from tamer_hf.training import parse_args

REPO = Path(__file__).resolve().parents[1]
# the families with a `<name>-tiny` preset (TAMER names its presets without prefix; its head: test_finetuning.py)
FAMILIES = [name for name in family_names() if f"{name}-tiny" in get_family(name).presets]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic") / "data"
    synthetic.generate(num_records=160, seed=1).save_to_disk(folder)
    return folder


def pretrained_folder(model_type: str, folder: Path) -> Path:
    """A tiny model of the family as `examples/pretrain.py` builds it (local text encoder), every weight moved off
    its initial value, saved with its processor."""
    family = get_family(model_type)
    args = parse_args(["--model_type", model_type, "--model_preset", f"{model_type}-tiny",
                       f"--{model_type}_local_vocab_size", "300"])
    torch.manual_seed(0)
    model, processor = family.build(args, synthetic.generate(num_records=60, seed=1)["train"]["report"])
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model_type", FAMILIES)
def test_the_head_loads_the_pretrained_encoder_and_reads_its_ecg_embedding(model_type, tmp_path):
    folder = pretrained_folder(model_type, tmp_path / "pretrained")
    head_class = head_class_for(model_type)
    assert head_class.__name__.lower() == f"{model_type}forecgclassification"
    head = AutoModelForAudioClassification.from_pretrained(folder, num_labels=3, id2label={0: "A", 1: "B", 2: "C"})
    assert type(head) is head_class
    pretrained = get_family(model_type).model_class.from_pretrained(folder).eval()
    expected = pretrained.state_dict()
    encoder = getattr(head, head.base_model_prefix).state_dict()
    assert encoder and all(torch.equal(value, expected[key]) for key, value in encoder.items())
    assert not [key for key in head.state_dict() if "text_model" in key]  # the report side is not built
    head.eval()
    input_values = torch.randn(4, pretrained.config.num_leads, pretrained.config.num_samples) * 0.3
    with torch.no_grad():
        embeds = head.ecg_embedding(input_values)
        torch.testing.assert_close(embeds, pretrained.ecg_embedding(input_values), rtol=0, atol=1e-6)
        torch.testing.assert_close(F.normalize(embeds, dim=-1), F.normalize(pretrained.get_ecg_features(input_values),
                                                                           dim=-1), rtol=0, atol=1e-6)
        labels = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
        output = head(input_values=input_values, labels=labels)
    assert output.logits.shape == (4, 3)
    torch.testing.assert_close(output.loss, F.binary_cross_entropy_with_logits(output.logits, labels.float()))


def run_finetune(argv):
    spec = importlib.util.spec_from_file_location("finetune_example", REPO / "examples" / "finetune.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.main([str(arg) for arg in argv])


@pytest.mark.parametrize("model_type", FAMILIES)
def test_the_head_fine_tunes_through_the_shared_script_and_reloads(model_type, dataset, tmp_path):
    folder = pretrained_folder(model_type, tmp_path / "pretrained")
    output_dir = tmp_path / "finetuned"
    results = run_finetune(["--model", folder, "--dataset", dataset, "--output_dir", output_dir,
                            "--num_train_epochs", 3, "--batch_size", 16, "--learning_rate", 1e-3, "--bootstrap", 0,
                            "--report_to", "none"])
    assert results["model"]["head_class"] == head_class_for(model_type).__name__
    losses = [epoch["train_loss"] for epoch in results["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0], losses  # it trains
    assert 0.0 <= results["test"]["macro_auc"] <= 1.0
    config = json.loads((output_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForAudioClassification"].endswith(f"{head_class_for(model_type).__name__}")
    reloaded = AutoModelForAudioClassification.from_pretrained(output_dir).eval()
    assert type(reloaded) is head_class_for(model_type)
    assert set(reloaded.config.id2label.values()) == set(results["label_names"])
