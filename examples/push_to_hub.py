"""Upload a model saved by examples/pretrain.py to the Hugging Face Hub.

    hf auth login            # once
    python examples/push_to_hub.py --model runs/tamer --repo_id org/tamer-ecg [--private]

Uploads exactly the saved model files (config, weights, processor, tokenizer, remote code) and the model card
(README.md, written from training_summary.json when absent); checkpoints/ and logs/ stay local.
"""

import argparse
import sys

from tamer_hf.hub import push_folder_to_hub


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="folder written by examples/pretrain.py (--output_dir)")
    parser.add_argument("--repo_id", required=True, help="e.g. org/tamer-ecg")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token", help="default: the token of `hf auth login` / HF_TOKEN")
    parser.add_argument("--commit_message", default="Upload TAMER model")
    parser.add_argument("--revision")
    args = parser.parse_args(argv)
    files = push_folder_to_hub(args.model, args.repo_id, private=args.private or None, token=args.token,
                               commit_message=args.commit_message, revision=args.revision)
    print(f"Uploaded {len(files)} files to https://huggingface.co/{args.repo_id}: {', '.join(files)}")
    return files


if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as error:
        print(f"push_to_hub.py: error: {error}", file=sys.stderr)
        sys.exit(2)
