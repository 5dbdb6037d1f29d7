"""Upload a model saved by examples/pretrain.py to the Hugging Face Hub: `tamer push` (`tamer_hf.commands.push`) as a
script.

    hf auth login            # once
    python examples/push_to_hub.py --model runs/tamer --repo_id org/tamer-ecg [--private]

Uploads exactly the saved model files (config, weights, processor, tokenizer, remote code) and the model card
(README.md, written from training_summary.json and results.json); checkpoints/ and logs/ stay local.
"""

import sys

from tamer_hf.commands import push, run


def main(argv=None):
    return push.main(argv)


if __name__ == "__main__":
    sys.exit(run(main, program="push_to_hub.py", user_errors=push.USER_ERRORS))
