"""The shared code knows no model family: the pre-training loop, the evaluation harness, the probe and fine-tuning,
the pipeline, the model card and the Hub code never name one, and every family in `tamer_hf.families` plugs in
through the same contract (Auto classes, loss-term switches, zero-shot temperature, command-line options)."""

import ast
import os
import re

import pytest

from tamer_hf.families import all_families, family_names, get_family
from tamer_hf.training import build_arg_parser, parse_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_FILES = ["tamer_hf/training.py", "tamer_hf/evaluation.py", "tamer_hf/linear_probe.py", "tamer_hf/pipelines.py",
                "tamer_hf/model_card.py", "tamer_hf/hub.py", "modeling/pipeline_zero_shot_ecg.py",
                "modeling/configuration_ecg.py", "examples/pretrain.py", "examples/zero_shot_eval.py",
                "examples/finetune.py", "tamer_hf/cli.py", "tamer_hf/commands/__init__.py",
                "tamer_hf/commands/pretrain.py", "tamer_hf/commands/finetune.py",
                "tamer_hf/commands/zero_shot_eval.py", "tamer_hf/commands/prepare.py", "tamer_hf/commands/push.py"]
# Fine-tuning names the papers' recipes (`--recipe cmelt`: C-MELT's published schedule, usable with any family); it
# must still never branch on a family.
RECIPE_FILES = ["tamer_hf/finetuning.py"]


def family_words() -> re.Pattern:
    """Family names and their class prefixes (tamer/Tamer, cmelt/Cmelt, ...), except inside the package name
    `tamer_hf` / `tamer-hf` and the shared feature extractor's file and class (`feature_extraction_tamer`,
    `TamerFeatureExtractor`: one ECG feature extractor for every family)."""
    names = "|".join(family_names())
    return re.compile(rf"(?<![\w-])({names})(?![\w-])|\b({names.title().replace('|', '|')})[A-Z]\w*", re.IGNORECASE)


def code_without_docs(source: str) -> str:
    """The code as Python sees it: comments and docstrings dropped (they may show examples such as
    `--model_type cmelt`); every other string stays, so a branch like `if model_type == "cmelt"` is found."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return ast.unparse(tree)


@pytest.mark.parametrize("path", SHARED_FILES)
def test_shared_code_names_no_family(path):
    full = os.path.join(REPO, path)
    if not os.path.isfile(full):
        pytest.skip(f"{path} does not exist")
    text = code_without_docs(open(full, encoding="utf-8").read())
    # the package, the shared feature extractor, and the console command's name (tamer_hf.commands.PROGRAM)
    text = re.sub(r"tamer[_-]hf|feature_extraction_tamer|TamerFeatureExtractor|PROGRAM = 'tamer'", "", text)
    found = sorted({match.group(0) for match in family_words().finditer(text)})
    assert not found, f"{path} names model families: {found}"


@pytest.mark.parametrize("path", SHARED_FILES + RECIPE_FILES)
def test_shared_code_never_branches_on_a_family(path):
    full = os.path.join(REPO, path)
    if not os.path.isfile(full):
        pytest.skip(f"{path} does not exist")
    code = code_without_docs(open(full, encoding="utf-8").read())
    assert not re.search(r"model_type\s*(==|!=|in\b|not in\b)|isinstance\([^)]*, *\(?\w*(Tamer|Cmelt|Cgdmer)", code), path


@pytest.mark.parametrize("model_type", family_names())
def test_every_family_plugs_in(model_type):
    import tamer_hf  # noqa: F401  (registers every family)
    from transformers import AutoConfig, AutoModel

    family = get_family(model_type)
    assert family.model_type == model_type == family.config_class.model_type
    assert family.presets and family.loss_terms and family.paper
    config = AutoConfig.for_model(model_type)
    assert isinstance(config, family.config_class)
    for term in family.loss_terms:
        assert isinstance(getattr(config, f"use_{term}"), bool), term
    assert config.zero_shot_temperature > 0
    assert AutoModel._model_mapping[type(config)] is family.model_class
    # the loop's command line gets the family's presets and one --no_<term> switch per loss term
    parser = build_arg_parser(family)
    options = {option for action in parser._actions for option in action.option_strings}
    assert {f"--no_{term}" for term in family.loss_terms} <= options
    args = parse_args(["--model_type", model_type])  # the family's quick-start defaults fill every loop option
    assert args.model_preset in family.presets and args.learning_rate > 0 and args.output_dir.startswith("runs/")


def test_every_family_is_registered_on_import():
    import tamer_hf  # noqa: F401
    from transformers import AutoConfig

    assert {family.model_type for family in all_families()} >= {"tamer", "cmelt"}
    for family in all_families():
        assert type(AutoConfig.for_model(family.model_type)) is family.config_class


def test_unknown_model_type_is_named():
    with pytest.raises(ValueError, match="Unknown model_type 'clip'"):
        parse_args(["--model_type", "clip"])
