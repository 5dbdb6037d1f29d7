"""`tamer demo`: serve the web demo of a model on this machine, or write it as a Hub Space folder.

    pip install "tamer-hf[demo]"
    tamer demo --model runs/tamer [--port 7860] [--host 0.0.0.0]
    tamer demo --model org/tamer-ecg --write_space space/     # app.py + requirements.txt + README.md; push it with
                                                             # hf upload org/tamer-ecg-demo space/ --repo-type space

The page: upload a record (WFDB, CPSC .mat, CSV, .npy) or pick a synthetic example, choose candidate labels (a free
list or a packaged label set with descriptions) and get the clinical 12-lead plot, the spectrogram, the ranked
zero-shot scores, the pipeline's input-quality warnings and the result as JSON (tamer_hf/demo.py).
"""

import argparse
import sys

from . import ArgumentParser, run

USER_ERRORS = (ImportError, FileNotFoundError, ValueError)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved model folder or Hub id (e.g. org/tamer-ecg)")
    parser.add_argument("--port", type=int, help="default: $GRADIO_SERVER_PORT, else 7860")
    parser.add_argument("--host", help="address to listen on, e.g. 0.0.0.0 for every interface (default: "
                                       "$GRADIO_SERVER_NAME, else 127.0.0.1)")
    parser.add_argument("--write_space", metavar="DIR", help="write a Hub Space folder for --model into DIR and exit")
    parser.add_argument("--requirement", help="with --write_space: the requirements.txt line that installs tamer-hf "
                                              "(default: tamer-hf[demo]==VERSION; a git+https:// spec also works)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.write_space:
        from ..demo import write_space

        written = write_space(args.write_space, args.model, requirement=args.requirement)
        print(f"Wrote the Space for {args.model}: {', '.join(str(path) for path in written)}")
        return written
    from ..demo import import_gradio, launch

    import_gradio()  # the missing-gradio error before the model is loaded
    return launch(args.model, port=args.port, host=args.host)


def console_main() -> int:
    """The `tamer-demo` console script."""
    return run(main, program="tamer-demo", user_errors=USER_ERRORS)


if __name__ == "__main__":
    sys.exit(run(main, program="python -m tamer_hf.commands.demo", user_errors=USER_ERRORS))
