"""Zero-shot evaluation of an ECG-text checkpoint, laid out like the paper's tables, with a reproducibility record:
`tamer eval` (`tamer_hf.commands.zero_shot_eval`) as a script.

    python examples/zero_shot_eval.py --model runs/tamer --dataset data/ptbxl_super \
        [--domain_shift data/cpsc2018 data/csn] [--linear_probe [--probe_recipe clean|merl|sklearn]] \
        [--prompts CKEPE_prompt.json | --prompts https://...] [--output_dir DIR]

Steps: load the model and processor -> embed the test split's ECGs -> encode one prompt per label (the packaged
clinical description, or the `--prompts` file as it is, e.g. MERL's CKEPE_prompt.json) -> raw cosine scores ->
per-class and macro AUC with a bootstrap 95 % CI -> optional domain shift (ordinary zero-shot on each target's test
split, macro-AUC over the target classes that MERL's tables in `tamer_hf/data/domain_mapping.json` cover) -> optional
linear probing on 1 % / 10 % / 100 % of the train split (`tamer_hf.linear_probe`) -> results.json (with package
version, git commit, checkpoint and prompt hashes, dataset fingerprints, seeds and this command line), results.md and
PNG plots in `--output_dir`. The model is only asked for `get_ecg_features` and `get_text_features`.
"""

from datasets_scripts import cli
from tamer_hf.commands import zero_shot_eval


def main(argv=None):
    return zero_shot_eval.main(argv, program=__file__)  # results.json records `python examples/zero_shot_eval.py ...`


if __name__ == "__main__":
    cli.run(main)
