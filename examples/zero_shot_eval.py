"""Zero-shot evaluation of a TAMER checkpoint, laid out like the paper's tables.

    python examples/zero_shot_eval.py --model runs/tamer --dataset data/ptbxl --task super \
        [--domain_shift data/cpsc2018 data/csn] [--linear_probe] [--prompts CKEPE_prompt.json] [--output_dir DIR]

Steps: load the model and processor -> embed the test split's ECGs -> encode one prompt per label (the packaged
clinical description, or `--prompts`) -> raw cosine scores -> per-class and macro AUC with a bootstrap 95 % CI ->
optional domain shift (the source classes' prompts scored on other datasets, target labels mapped by
`tamer_hf/data/domain_mapping.json`) -> optional linear probing on 1 % / 10 % / 100 % of the train split ->
results.json, results.md and PNG plots in `--output_dir`.
"""

import argparse
import os

import numpy as np
from datasets import load_from_disk
from transformers import AutoModel, AutoProcessor

import tamer_hf  # noqa: F401  (registers the TAMER Auto classes)
from datasets_scripts import label_names
from tamer_hf import evaluation
from tamer_hf.plotting import plot_per_class_auc, plot_roc_curves


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved TAMER folder or Hub id")
    parser.add_argument("--dataset", required=True, help="DatasetDict folder written by datasets_scripts")
    parser.add_argument("--task", default="super", help="PTB-XL task: super, sub, form or rhythm")
    parser.add_argument("--split", default="test")
    parser.add_argument("--label_set", help="description section (default: from the dataset's metadata)")
    parser.add_argument("--prompts", help="JSON {label: description} to use instead of the packaged descriptions")
    parser.add_argument("--hypothesis_template", default="{}")
    parser.add_argument("--domain_shift", nargs="*", default=[], help="target DatasetDict folders")
    parser.add_argument("--domain_mapping", help="JSON 'SOURCE->TARGET' -> {source class: [target classes]}")
    parser.add_argument("--linear_probe", action="store_true", help="also probe on 1%%/10%%/100%% of the train split")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CI (0: none)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_records", type=int, help="use at most this many records per split (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="TAMER", help="row name in the Markdown table")
    parser.add_argument("--output_dir", help="default: <model>/eval/<label_set>")
    parser.add_argument("--trust_remote_code", action="store_true")
    return parser.parse_args(argv)


def load_split(path, split, max_records):
    dataset_dict = load_from_disk(path)
    if split not in dataset_dict:
        raise SystemExit(f"{path} has no split {split!r}; it has {list(dataset_dict)}.")
    dataset = dataset_dict[split]
    if max_records is not None:
        dataset = dataset.select(range(min(max_records, len(dataset))))
    return dataset_dict, dataset


def labels_of(dataset) -> np.ndarray:
    return np.asarray(dataset.with_format("numpy")["labels"], dtype=np.int8)  # (N, C)


def zero_shot(model, processor, dataset, classes, descriptions, args):
    """Raw cosine scores (N, C) of every record against every class prompt."""
    prompts = evaluation.make_prompts(classes, args.hypothesis_template, descriptions)
    text_embeds = evaluation.embed_prompts(model, processor.tokenizer, prompts)
    ecg_embeds = evaluation.embed_ecgs(model, processor.feature_extractor, dataset, batch_size=args.batch_size)
    return evaluation.cosine_scores(ecg_embeds, text_embeds), ecg_embeds


def evaluate_and_plot(y_true, scores, classes, title, stem, args):
    result = evaluation.evaluate_scores(y_true, scores, classes, args.bootstrap, args.seed)
    plot_roc_curves(y_true, scores, classes, os.path.join(args.output_dir, f"{stem}_roc.png"), f"{title}: ROC")
    plot_per_class_auc(result, os.path.join(args.output_dir, f"{stem}_auc.png"), f"{title}: per-class AUC")
    return result


def domain_shift(model, processor, label_set, descriptions, args):
    results = {}
    for target_path in args.domain_shift:
        target_dict, target = load_split(target_path, args.split, args.max_records)
        target_set = evaluation.label_set_of(target_dict, args.task)
        mapping = evaluation.load_domain_mapping(f"{label_set}->{target_set}", args.domain_mapping)
        y_true, classes = evaluation.map_target_labels(labels_of(target), label_names(target_dict), mapping)
        scores, _ = zero_shot(model, processor, target, classes, descriptions, args)
        results[target_set] = evaluate_and_plot(y_true, scores, classes, f"{label_set} → {target_set}",
                                                f"domain_shift_{target_set}", args)
    return results


def linear_probe(model, processor, dataset_dict, test_embeds, test_labels, classes, args):
    train = dataset_dict["train"]
    if args.max_records is not None:
        train = train.select(range(min(args.max_records, len(train))))
    train_embeds = evaluation.embed_ecgs(model, processor.feature_extractor, train, batch_size=args.batch_size)
    return evaluation.linear_probe(train_embeds, labels_of(train), test_embeds, test_labels, classes,
                                   seed=args.seed, num_bootstrap=args.bootstrap)


def main(argv=None):
    args = parse_args(argv)
    model = AutoModel.from_pretrained(args.model, trust_remote_code=args.trust_remote_code).eval()
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    dataset_dict, dataset = load_split(args.dataset, args.split, args.max_records)
    classes = label_names(dataset_dict)
    label_set = args.label_set or evaluation.label_set_of(dataset_dict, args.task)
    descriptions = evaluation.load_label_descriptions(label_set, args.prompts)
    args.output_dir = args.output_dir or os.path.join(args.model, "eval", label_set)
    os.makedirs(args.output_dir, exist_ok=True)

    y_true = labels_of(dataset)
    scores, ecg_embeds = zero_shot(model, processor, dataset, classes, descriptions, args)
    results = {
        "method": args.method, "model": args.model, "dataset": args.dataset, "split": args.split,
        "label_set": label_set, "prompts": args.prompts or "packaged", "num_records": len(dataset),
        "zero_shot": evaluate_and_plot(y_true, scores, classes, f"zero-shot {label_set}", "zero_shot", args),
    }
    if args.domain_shift:
        results["domain_shift"] = domain_shift(model, processor, label_set, descriptions, args)
    if args.linear_probe:
        results["linear_probe"] = linear_probe(model, processor, dataset_dict, ecg_embeds, y_true, classes, args)
    json_path, markdown_path = evaluation.save_results(results, args.output_dir)
    print(open(markdown_path, encoding="utf-8").read())
    print(f"Results: {json_path}, {markdown_path}")
    return results


if __name__ == "__main__":
    main()
