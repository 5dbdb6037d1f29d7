"""`tamer eval`: zero-shot evaluation of an ECG-text checkpoint, laid out like the paper's tables, with a
reproducibility record.

    tamer eval --model runs/tamer --dataset data/ptbxl_super \
        [--domain_shift data/cpsc2018 data/csn] [--linear_probe [--probe_recipe clean|merl|sklearn]] \
        [--prompts CKEPE_prompt.json | --prompts https://...] [--output_dir DIR]

Steps: load the model and processor -> embed the test split's ECGs -> encode one prompt per label (the packaged
clinical description or name, or the `--prompts` file as it is, e.g. MERL's CKEPE_prompt.json) -> raw cosine scores ->
per-class and macro AUC with a bootstrap 95 % CI -> optional domain shift (ordinary zero-shot on each target's test
split, macro-AUC over the target classes that MERL's tables in `tamer_hf/data/domain_mapping.json` cover) -> optional
linear probing on 1 % / 10 % / 100 % of the train split (`tamer_hf.linear_probe`) -> results.json (with package
version, git commit, checkpoint and prompt hashes, dataset fingerprints, seeds and this command line), results.md and
PNG plots in `--output_dir`. The model is only asked for `get_ecg_features` and `get_text_features`.

The template and the prompt style default to those the checkpoint was validated with during pre-training (its
config's `zero_shot_template` / `zero_shot_prompts`, written by `tamer pretrain`), else '{}' and the descriptions;
`--hypothesis_template` and `--prompt_style` win; the template used and where it came from are printed and recorded.

Every argument, file and split is checked before the model is loaded. An output folder that already holds results is
refused unless `--overwrite_output_dir`. results.json is written atomically after the zero-shot stage and rewritten
after each later stage; if the linear probe fails, the file keeps the zero-shot (and domain-shift) results and records
the probe's error, and the command exits with an error.
"""

import argparse
import os
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
from datasets import load_from_disk
from transformers import AutoConfig, AutoModel, AutoProcessor

from datasets_scripts import label_names, multi_hot_labels

from .. import evaluation
from .. import linear_probe as probe
from ..plotting import plot_per_class_auc, plot_roc_curves
from . import ArgumentParser, run

PROBE_RECIPES = ("clean", "merl", "sklearn")
USER_ERRORS = (FileNotFoundError, FileExistsError, ValueError, KeyError)  # as `datasets_scripts.cli.run`


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved model folder or Hub id")
    parser.add_argument("--dataset", required=True, help="DatasetDict folder written by datasets_scripts")
    parser.add_argument("--task", help="PTB-XL task (super, sub, form, rhythm) for a dataset that does not record it")
    parser.add_argument("--split", default="test")
    parser.add_argument("--label_set", help="description section (default: from the dataset's metadata)")
    parser.add_argument("--prompts", metavar="PATH_OR_URL",
                        help="JSON {label: text} (e.g. MERL's CKEPE_prompt.json, used as it is) or sectioned like the "
                             "packaged file; a local path or an http(s) URL. Default: the packaged descriptions")
    parser.add_argument("--hypothesis_template",
                        help="'{}' = the prompt text as it is (MERL). Default: the checkpoint's zero_shot_template "
                             "(what pre-training validated it with), else '{}'")
    parser.add_argument("--prompt_style", choices=evaluation.PROMPT_STYLES,
                        help="each label's packaged text: its whole clinical description, or its clinical name. "
                             "Default: the checkpoint's zero_shot_prompts, else description; with --prompts: "
                             "description (the file as it is)")
    parser.add_argument("--domain_shift", nargs="*", default=[], help="target DatasetDict folders")
    parser.add_argument("--domain_mapping", help="JSON 'SOURCE->TARGET' -> {source class: [target classes]} "
                                                 "(default: MERL's tables, packaged)")
    parser.add_argument("--linear_probe", action="store_true", help="also probe on 1%%/10%%/100%% of the train split")
    parser.add_argument("--probe_recipe", choices=PROBE_RECIPES, default="clean",
                        help="clean: validation-selected Adam probe; merl: MERL's recipe with its optimistic "
                             "test-best epoch; sklearn: logistic regression")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CI (0: none)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_records", type=int, help="use at most this many records per split (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed and the clean/sklearn probe's seed")
    parser.add_argument("--method", help="row name in the Markdown table (default: the model's model_type)")
    parser.add_argument("--output_dir", help="default: <model>/eval/<label_set>")
    parser.add_argument("--overwrite_output_dir", action="store_true",
                        help="replace the results of an earlier run in --output_dir (refused otherwise)")
    parser.add_argument("--trust_remote_code", action="store_true")
    args = parser.parse_args(argv)
    for name in ("batch_size", "max_records"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}.")
    if args.bootstrap < 0:
        parser.error(f"--bootstrap must not be negative, got {args.bootstrap}.")
    if args.linear_probe is False and args.probe_recipe != "clean":
        parser.error("--probe_recipe needs --linear_probe.")
    if args.hypothesis_template is not None:
        try:
            evaluation.make_prompts(["x"], args.hypothesis_template)
        except ValueError as error:
            parser.error(str(error))
    if args.domain_mapping and not args.domain_shift:
        parser.error("--domain_mapping needs --domain_shift targets.")
    return args


RESULT_FILES = ("results.json", "results.md")


def check_output_dir(path, overwrite: bool) -> None:
    """An output folder holding an earlier run's results is only reused with --overwrite_output_dir."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"--output_dir {path} is a file, not a folder.")
    found = [name for name in RESULT_FILES if os.path.exists(os.path.join(path, name))]
    if found and not overwrite:
        raise FileExistsError(f"--output_dir {path} already holds results ({', '.join(found)}); pass "
                              "--overwrite_output_dir to replace them, or choose another folder.")


def check_model_source(model: str) -> None:
    """A local folder must hold a config.json; anything else must look like a Hub id (`org/name`)."""
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise FileNotFoundError(f"--model {model} has no config.json; is it a saved model folder?")
        return
    looks_local = os.path.isabs(model) or model.startswith((".", "~")) or model.count("/") > 1 or os.path.exists(model)
    if looks_local:
        raise FileNotFoundError(f"--model {model}: no such model folder.")


def checkpoint_prompting(args) -> tuple[str, str]:
    """The template and prompt style of this run: the flags, else what the checkpoint was validated with (its
    config's zero_shot_template / zero_shot_prompts), else '{}' and 'description'. Sets them on `args` and returns
    where the template came from."""
    try:
        config = AutoConfig.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    except OSError as error:  # missing Hub repository, no network, unreadable files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileNotFoundError(f"cannot load --model {args.model}: {first_line}") from None
    stored_template = getattr(config, "zero_shot_template", None)
    stored_style = None if args.prompts else getattr(config, "zero_shot_prompts", None)  # a file is used as it is
    if args.hypothesis_template is not None:
        template_source = "--hypothesis_template"
    elif stored_template is not None:
        args.hypothesis_template, template_source = stored_template, "the checkpoint's config (zero_shot_template)"
    else:
        args.hypothesis_template, template_source = "{}", "the default"
    args.prompt_style = args.prompt_style or stored_style or "description"
    return template_source


def load_model_and_processor(args):
    try:
        model = AutoModel.from_pretrained(args.model, trust_remote_code=args.trust_remote_code).eval()
        processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    except OSError as error:  # missing Hub repository, no network, unreadable files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileNotFoundError(f"cannot load --model {args.model}: {first_line}") from None
    return model, processor


def load_split(path, split, max_records):
    try:
        dataset_dict = load_from_disk(path)
    except IndexError:  # datasets cannot load a saved split of no records (it concatenates zero Arrow tables)
        empty = sorted(folder.name for folder in Path(path).iterdir()
                       if (folder / "state.json").is_file() and not any(folder.glob("*.arrow")))
        raise ValueError(f"{path}: the split(s) {empty} hold no records, and datasets cannot load a folder saved with "
                         "an empty split; leave empty splits out of the DatasetDict.") from None
    if split not in dataset_dict:
        raise ValueError(f"{path} has no split {split!r}; it has {list(dataset_dict)}.")
    dataset = dataset_dict[split]
    if max_records is not None:
        dataset = dataset.select(range(min(max_records, len(dataset))))
    return dataset_dict, dataset


def labels_of(dataset) -> np.ndarray:
    return multi_hot_labels(dataset)  # (N, C)


class PromptSource:
    """The prompt file, read once: the packaged descriptions, or `--prompts` as it is (path or URL)."""

    def __init__(self, path_or_url, style: str = "description"):
        self.user_file = path_or_url is not None
        self.style = style
        self.source = path_or_url if self.user_file else evaluation.PACKAGED_DESCRIPTIONS
        self.table, raw = evaluation.read_json_source(self.source)
        self.sha256 = evaluation.sha256_bytes(raw)

    def prompts(self, label_set, classes, template):
        """One text per class; a user file must cover every class (MERL indexes its dictionary by class name)."""
        descriptions = evaluation.prompt_texts(evaluation.descriptions_from_table(self.table, label_set), self.style)
        missing = [name for name in classes if name not in descriptions]
        if self.user_file and missing:
            raise ValueError(f"--prompts {self.source} has no prompt for {missing} ({label_set}).")
        if missing:
            warnings.warn(f"the packaged descriptions have no text for {missing} ({label_set}); their class names are "
                          "encoded as they are. Pass --prompts to give them one.", stacklevel=2)
        return evaluation.make_prompts(classes, template, descriptions)

    def record(self, classes, prompts):
        result = evaluation.prompt_record(self.source, self.sha256, classes, prompts)
        result["packaged"] = not self.user_file
        result["style"] = self.style
        return result


def zero_shot(model, processor, dataset, prompts, args):
    """Raw cosine scores (N, C) of every record against every class prompt, and the ECG embeddings (N, D)."""
    text_embeds = evaluation.embed_prompts(model, processor.tokenizer, prompts)
    ecg_embeds = evaluation.embed_ecgs(model, processor.feature_extractor, dataset, batch_size=args.batch_size)
    return evaluation.cosine_scores(ecg_embeds, text_embeds), ecg_embeds


def plot(y_true, scores, classes, result, title, stem, args):
    plot_roc_curves(y_true, scores, classes, os.path.join(args.output_dir, f"{stem}_roc.png"), f"{title}: ROC")
    plot_per_class_auc(result, os.path.join(args.output_dir, f"{stem}_auc.png"), f"{title}: per-class AUC")


def domain_shift_targets(label_set, prompt_source, args) -> list[dict]:
    """Each `--domain_shift` target with its test split, class names, mapping and prompts (checked before any model
    work, so that a missing pair or prompt fails at once)."""
    targets = []
    for target_path in args.domain_shift:
        target_dict, dataset = load_split(target_path, args.split, args.max_records)
        target_set = evaluation.label_set_of(target_dict)
        names = label_names(target_dict)
        mapping = evaluation.load_domain_mapping(f"{label_set}->{target_set}", args.domain_mapping)
        evaluation.covered_target_classes(mapping, names)  # every mapped class must be a column of the target
        prompts = prompt_source.prompts(target_set, names, args.hypothesis_template)
        targets.append({"path": target_path, "label_set": target_set, "dataset": dataset, "names": names,
                        "mapping": mapping, "prompts": prompts})
    return targets


def domain_shift(model, processor, label_set, targets, prompt_source, args):
    """Per target: ordinary zero-shot on its test split, scored over the target classes the mapping covers."""
    results = {}
    for target in targets:
        scores, _ = zero_shot(model, processor, target["dataset"], target["prompts"], args)
        y_true = labels_of(target["dataset"])
        result = evaluation.domain_shift_score(y_true, scores, target["names"], target["mapping"], args.bootstrap,
                                               args.seed)
        columns = [target["names"].index(name) for name in result["covered"]]
        plot(y_true[:, columns], scores[:, columns], result["covered"], result, f"{label_set} → {target['label_set']}",
             f"domain_shift_{target['label_set']}", args)
        record = evaluation.dataset_record(target["dataset"], target["path"], args.split, args.max_records)
        result.update(pair=f"{label_set}->{target['label_set']}", mapping=target["mapping"], dataset=record,
                      prompts=prompt_source.record(target["names"], target["prompts"]))
        results[target["label_set"]] = result
    return results


def linear_probe(model, processor, dataset_dict, test_embeds, test_labels, classes, args):
    """Embed train (and validation) once with the frozen encoder, then probe each fraction."""
    splits = {"train": dataset_dict["train"]}
    if args.probe_recipe != "sklearn":
        splits["validation"] = dataset_dict["validation"]
    embeds, labels, records = {}, {}, {}
    for name, split in splits.items():
        if args.max_records is not None:
            split = split.select(range(min(args.max_records, len(split))))
        embeds[name] = evaluation.embed_ecgs(model, processor.feature_extractor, split, batch_size=args.batch_size)
        labels[name] = labels_of(split)
        records[name] = evaluation.dataset_record(split, args.dataset, name, args.max_records)
    result = probe.linear_probe(embeds["train"], labels["train"], embeds.get("validation"), labels.get("validation"),
                                test_embeds, test_labels, classes, recipe=args.probe_recipe, seed=args.seed,
                                num_bootstrap=args.bootstrap, output_dir=os.path.join(args.output_dir, "linear_probe"))
    result["datasets"] = records
    return result


def check_probe_splits(dataset_dict, args) -> None:
    needed = ["train"] + (["validation"] if args.probe_recipe != "sklearn" else [])
    missing = [split for split in needed if split not in dataset_dict or len(dataset_dict[split]) == 0]
    if missing:
        raise ValueError(f"--linear_probe --probe_recipe {args.probe_recipe} needs the {' and '.join(needed)} splits; "
                         f"{args.dataset} has no (or an empty) {' and '.join(missing)}.")


def resolve_task(dataset_dict, args):
    """The PTB-XL task the dataset was built for; `--task` may only confirm it, and means nothing for another source
    (whose classes are fixed), so it is an error there rather than silently ignored."""
    from datasets_scripts.common import dataset_metadata

    metadata = dataset_metadata(dataset_dict)
    built_for, source = metadata.get("task"), metadata.get("tamer_source")
    if args.task and source and source != "ptbxl":
        raise ValueError(f"--task {args.task} only applies to PTB-XL; {args.dataset} holds {source!r}, whose classes "
                         "are fixed. Drop --task.")
    if args.task and built_for and args.task != built_for:
        raise ValueError(f"--task {args.task}, but {args.dataset} was built for task {built_for!r}.")
    return built_for or args.task


def main(argv=None, program: str | None = None):
    """`program`: the command recorded with the arguments in results.json: a script path (recorded as `python
    <path>`, relative to the working directory) or a command such as "tamer eval" (default: `sys.argv[0]`, which
    `tamer` sets to its subcommand)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    program = program or sys.argv[0]
    if os.path.isfile(program):
        command = evaluation.command_record(os.path.relpath(os.path.abspath(program)), argv)
    else:
        command = shlex.join([*shlex.split(program), *argv])
    args = parse_args(argv)
    check_model_source(args.model)
    if args.output_dir:
        check_output_dir(args.output_dir, args.overwrite_output_dir)
    dataset_dict, dataset = load_split(args.dataset, args.split, args.max_records)
    classes = label_names(dataset_dict)
    task = resolve_task(dataset_dict, args)
    label_set = args.label_set or evaluation.label_set_of(dataset_dict, task)
    template_source = checkpoint_prompting(args)
    print(f"Template {args.hypothesis_template!r} (from {template_source}); prompts: "
          f"{'--prompts ' + args.prompts if args.prompts else 'the packaged texts'}, {args.prompt_style} style")
    prompt_source = PromptSource(args.prompts, args.prompt_style)
    prompts = prompt_source.prompts(label_set, classes, args.hypothesis_template)
    targets = domain_shift_targets(label_set, prompt_source, args)
    if args.linear_probe:
        check_probe_splits(dataset_dict, args)
    args.output_dir = args.output_dir or os.path.join(args.model, "eval", label_set)
    check_output_dir(args.output_dir, args.overwrite_output_dir)
    os.makedirs(args.output_dir, exist_ok=True)

    model, processor = load_model_and_processor(args)
    y_true = labels_of(dataset)
    scores, ecg_embeds = zero_shot(model, processor, dataset, prompts, args)
    zero_shot_result = evaluation.evaluate_scores(y_true, scores, classes, args.bootstrap, args.seed)
    plot(y_true, scores, classes, zero_shot_result, f"zero-shot {label_set}", "zero_shot", args)
    results = {
        "method": args.method or model.config.model_type.upper(), "model": args.model, "label_set": label_set,
        "task": task, "split": args.split,
        "template": args.hypothesis_template, "template_source": template_source, "num_records": len(dataset),
        "package": evaluation.package_record(),
        "checkpoint": evaluation.checkpoint_record(args.model),
        "dataset": evaluation.dataset_record(dataset, args.dataset, args.split, args.max_records),
        "prompts": prompt_source.record(classes, prompts),
        "bootstrap": {"seed": args.seed, "num_resamples": args.bootstrap},
        "command": command, "working_directory": os.getcwd(),
        "zero_shot": zero_shot_result,
    }
    evaluation.save_results(results, args.output_dir)  # kept whatever happens in the later stages
    if args.domain_shift:
        results["domain_shift"] = domain_shift(model, processor, label_set, targets, prompt_source, args)
        evaluation.save_results(results, args.output_dir)
    if args.linear_probe:
        try:
            results["linear_probe"] = linear_probe(model, processor, dataset_dict, ecg_embeds, y_true, classes, args)
        except Exception as error:
            results["linear_probe"] = {"error": f"{type(error).__name__}: {error}"}
            json_path, _ = evaluation.save_results(results, args.output_dir)
            raise RuntimeError(f"the linear probe failed ({type(error).__name__}: {error}); the zero-shot results "
                               f"are kept in {json_path}.") from error
    json_path, markdown_path = evaluation.save_results(results, args.output_dir)
    print(open(markdown_path, encoding="utf-8").read())
    print(f"Results: {json_path}, {markdown_path}")
    return results


if __name__ == "__main__":
    sys.argv[0] = "python -m tamer_hf.commands.zero_shot_eval"
    sys.exit(run(main, program=sys.argv[0], user_errors=USER_ERRORS))
