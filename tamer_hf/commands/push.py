"""`tamer push`: upload a model folder saved by `tamer pretrain` (or `save_pretrained`) to the Hugging Face Hub.

    hf auth login            # once
    tamer push --model runs/tamer --repo_id org/tamer-ecg [--private]

Uploads exactly the saved model files (config, weights, processor, tokenizer, remote code) and the model card
(README.md with a `model-index`, rewritten from training_summary.json and the `tamer eval` results.json files under
<model>/eval/ unless you wrote your own); checkpoints/ and logs/ stay local.
"""

import argparse
import sys

from ..hub import push_folder_to_hub
from . import ArgumentParser, run

USER_ERRORS = (FileNotFoundError,)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved model folder (the --output_dir of pretrain)")
    parser.add_argument("--repo_id", required=True, help="e.g. org/tamer-ecg")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", help="default: the token of `hf auth login` / HF_TOKEN")
    parser.add_argument("--commit_message", default="Upload ECG model")
    parser.add_argument("--revision")
    parser.add_argument("--license", help="the card's licence (Hub licence id); default: apache-2.0, the code's")
    parser.add_argument("--space_dir", metavar="DIR", help="also write a Gradio Space serving --repo_id into DIR "
                        "(app.py, requirements.txt, README.md; tamer_hf.demo.write_space); upload it with "
                        "`hf upload ORG/NAME DIR --repo-type space`")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    files = push_folder_to_hub(args.model, args.repo_id, private=args.private or None, token=args.token,
                               commit_message=args.commit_message, revision=args.revision, license=args.license)
    print(f"Uploaded {len(files)} files to https://huggingface.co/{args.repo_id}: {', '.join(files)}")
    if args.space_dir:
        from ..demo import write_space

        written = write_space(args.space_dir, args.repo_id)
        print(f"Wrote the demo Space for {args.repo_id}: {', '.join(str(path) for path in written)}")
    return files


if __name__ == "__main__":
    sys.exit(run(main, program="python -m tamer_hf.commands.push", user_errors=USER_ERRORS))
