"""The web demo: upload a 12-lead ECG, see it on the clinical sheet and as the spectrogram the model sees, and get the
zero-shot scores of a model with the pipeline's input-quality flags and a downloadable JSON of the result.

    pip install "tamer-hf[demo]"
    tamer demo --model runs/tamer                 # http://127.0.0.1:7860
    tamer demo --model org/tamer-ecg --write_space space/   # app.py + requirements.txt + README.md for a Hub Space

Everything but `build_demo` and `launch` runs without gradio (the reading of uploads, the scoring, the figures, the
Space folder): the core package never imports it, and this module imports it only inside those two.

Inputs: a WFDB record (`.hea` with its `.dat` or CinC `.mat`), an original CPSC 2018 `.mat` (struct `ECG`), a CSV
(time x leads, a header row of lead names or none) or a `.npy` array with the sampling rate typed in the page, or one
of the synthetic example records (`datasets_scripts.synthetic`; no PhysioNet file ships with the demo).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .evaluation import PACKAGED_DESCRIPTIONS, load_label_descriptions, read_json_source
from .modeling.ecg_validation import ECGQualityWarning
from .pipelines import TASK, pipeline
from .plotting import plot_ecg, plot_spectrograms

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "tamer-hf[demo]"'
FREE_LABELS = "free list (type the labels)"
DEFAULT_LABEL_SET = "ptbxl_super"
DEFAULT_FREE_LABELS = "atrial fibrillation, sinus rhythm, left bundle branch block, right bundle branch block"
DEFAULT_SAMPLING_RATE = 500  # Hz of an uploaded array; CPSC 2018 .mat files are all 500 Hz
MAX_UPLOAD_SIZE = "50mb"  # a 10 s 12-lead record is ~120 kB; a day-long Holter export is not what the page is for
RESULT_FILE = "tamer-zero-shot-result.json"
RESULTS_KEPT_S = 3600  # a request's PNG and JSON files are deleted after an hour
TABLE_HEADERS = ["rank", "label", "score", "description"]

# name shown in the page -> (label codes of datasets_scripts.synthetic, seed): generated on demand, never shipped
EXAMPLE_RECORDS = {
    "synthetic: normal sinus rhythm": (("NORM", "SR"), 1),
    "synthetic: atrial fibrillation": (("AFIB",), 2),
    "synthetic: sinus bradycardia with first-degree AV block": (("SBRAD", "1AVB"), 3),
    "synthetic: complete right bundle branch block": (("SR", "CRBBB"), 4),
    "synthetic: inferior ST elevation": (("SR", "STE"), 5),
}


class DemoInputError(ValueError):
    """An upload or a form field the demo cannot use; its message is shown in the page as it is."""


def import_gradio():
    try:
        import gradio
    except ImportError:
        raise ImportError(f"The web demo needs gradio, which is not installed: {INSTALL_HINT}") from None
    return gradio


# ----------------------------------------------------------------------------------------------------------------------
# inputs


def label_sets() -> list[str]:
    """The packaged label sets with descriptions (tamer_hf/data/label_descriptions.json sections)."""
    table, _ = read_json_source(PACKAGED_DESCRIPTIONS)
    return [name for name in table if not name.startswith("_")]


def candidate_labels(label_set: str, free_labels: str) -> tuple[list[str], dict[str, str]]:
    """(labels, label -> description) of a packaged set, or the typed labels (comma or newline separated) alone."""
    if label_set and label_set != FREE_LABELS:
        descriptions = load_label_descriptions(label_set)
        return list(descriptions), descriptions
    labels = [label.strip() for line in (free_labels or "").splitlines() for label in line.split(",") if label.strip()]
    if not labels:
        raise DemoInputError("No candidate labels: type some (comma separated) or choose a label set.")
    return labels, {}


def example_record(name: str) -> dict:
    """One of `EXAMPLE_RECORDS` as the pipeline's dict input (mV, 500 Hz, the standard lead order)."""
    from datasets_scripts.common import LEADS, TARGET_FS
    from datasets_scripts.synthetic import synthesize_ecg

    if name not in EXAMPLE_RECORDS:
        raise DemoInputError(f"Unknown example record {name!r}; choose one of {list(EXAMPLE_RECORDS)}.")
    labels, seed = EXAMPLE_RECORDS[name]
    signal, _ = synthesize_ecg(list(labels), np.random.default_rng(seed))  # (12, 5000) mV
    return {"signal": signal, "sampling_rate": TARGET_FS, "lead_names": list(LEADS)}


def read_upload(paths, sampling_rate, workdir) -> str | dict:
    """Uploaded files -> the pipeline's input: the `.hea` path of a WFDB record copied into `workdir` (its rate comes
    from the header), or a dict with `signal` and `sampling_rate` (the typed rate) for a CSV, `.npy` or CPSC `.mat`
    file."""
    files = {Path(path).name: Path(path) for path in paths}
    headers = sorted(name for name in files if name.lower().endswith(".hea"))
    if len(headers) > 1:
        raise DemoInputError(f"Upload one record at a time; got the headers {headers}.")
    if headers:
        return wfdb_upload(files, headers[0], workdir)
    if len(files) != 1:
        raise DemoInputError(f"Upload one ECG file (CSV, .npy, CPSC .mat) or one WFDB record (.hea with its .dat or "
                             f".mat); got {sorted(files)}.")
    (name, path), = files.items()
    suffix = path.suffix.lower()
    if suffix == ".dat":
        raise DemoInputError(f"{name} is WFDB signal data without its header: upload {path.stem}.hea together with it.")
    readers = {".csv": read_csv_signal, ".npy": read_npy_signal, ".mat": read_cpsc_mat}
    if suffix not in readers:
        raise DemoInputError(f"{name}: unsupported file type {suffix or '(none)'}; upload a WFDB record (.hea + "
                             ".dat/.mat), a CPSC 2018 .mat, a CSV or a .npy file.")
    return {"signal": readers[suffix](path), "sampling_rate": typed_rate(sampling_rate)}


def typed_rate(sampling_rate) -> float:
    if sampling_rate is None or sampling_rate == "":
        raise DemoInputError("Type the sampling rate (Hz) of the uploaded array.")
    return float(sampling_rate)  # its range is checked by the feature extractor, with the pipeline's message


def wfdb_upload(files: dict[str, Path], header: str, workdir) -> str:
    """Put the record's files side by side (each upload arrives in its own folder) and check that every signal file
    the header names was uploaded: wfdb's own error for a missing one is a bare errno."""
    import wfdb

    folder = Path(workdir)
    for name, path in files.items():
        shutil.copyfile(path, folder / name)
    record = folder / header[: -len(".hea")]
    try:
        signal_files = sorted(set(wfdb.rdheader(str(record)).file_name or []))
    except Exception as error:  # wfdb raises assorted types for a malformed header
        raise DemoInputError(f"{header} is not a readable WFDB header ({type(error).__name__}: {error}).") from None
    missing = [name for name in signal_files if not (folder / name).is_file()]
    if missing:
        raise DemoInputError(f"{header} names the signal file(s) {missing}, which were not uploaded: select the .hea "
                             "and its signal file together.")
    return str(record) + ".hea"


def read_csv_signal(path: Path):
    """A CSV with one column per lead: a header row of lead names gives a DataFrame (the leads are matched by name),
    a headerless table an array (the 12 leads in the standard order)."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
        if all(_is_number(column) for column in table.columns):
            return pd.read_csv(path, header=None).to_numpy()
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DemoInputError(f"{path.name} is not a readable CSV table ({error}).") from None
    return table  # its column names are checked as lead names by the feature extractor


def read_npy_signal(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DemoInputError(f"{path.name} is not a NumPy .npy array ({error}).") from None


def read_cpsc_mat(path: Path) -> np.ndarray:
    """An original CPSC 2018 .mat (struct `ECG`, data 12 x N mV, standard lead order); a CinC-2020 .mat (`val`, in
    digital units) needs its header."""
    from scipy.io import whosmat

    from datasets_scripts.common import DropRecord
    from datasets_scripts.cpsc2018 import read_original_mat

    try:
        variables = [name for name, *_ in whosmat(str(path))]
    except Exception as error:  # scipy raises assorted types for a file that is not MATLAB
        raise DemoInputError(f"{path.name} is not a readable MATLAB file ({type(error).__name__}).") from None
    if "val" in variables:
        raise DemoInputError(f"{path.name} is a PhysioNet/CinC .mat in digital units: upload {path.stem}.hea (gain, "
                             "rate, leads) together with it.")
    if "ECG" not in variables:
        raise DemoInputError(f"{path.name} holds {variables}, neither a CPSC 2018 struct `ECG` nor a CinC `val`.")
    try:
        return read_original_mat(path)  # (12, N) mV
    except DropRecord as error:
        raise DemoInputError(f"{path.name}: {error}") from None


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


# ----------------------------------------------------------------------------------------------------------------------
# scoring


@functools.lru_cache(maxsize=4)
def load_classifier(model: str):
    """The zero-shot pipeline of a folder or Hub id, loaded once per model."""
    if not model or not model.strip():
        raise DemoInputError("Give a model: a saved folder or a Hub id such as org/tamer-ecg.")
    try:
        return pipeline(TASK, model=model.strip())
    except (OSError, ValueError) as error:
        raise DemoInputError(f"Could not load the model {model!r}: {error}") from None


def diagnose(classifier, record, labels: list[str], descriptions: dict[str, str], multi_label: bool) -> dict:
    """Scores, quality flags, the record in mV as the model's window sees it, and the model's spectrogram."""
    scores = classifier(record, candidate_labels=labels, label_descriptions=descriptions or None,
                        multi_label=multi_label)  # [{"label", "score", "quality"?}, ...] best first
    extractor = classifier.feature_extractor
    with warnings.catch_warnings():  # the pipeline call above already reported the record's quality issues
        warnings.simplefilter("ignore", ECGQualityWarning)
        input_values = extractor(record, return_tensors="pt")["input_values"]  # (1, 12, 5000)
        in_millivolts = copy.copy(extractor)
        in_millivolts.normalization = "none"  # same leads, rate, window and repairs, before the min-max scaling
        ecg = in_millivolts(record)["input_values"][0]  # (12, 5000) mV
    spectrogram, spectrogram_source = model_spectrogram(classifier, input_values)
    return {
        "scores": [{"label": entry["label"], "score": entry["score"]} for entry in scores],
        "quality": scores[0].get("quality"),
        "ecg": ecg,
        "sampling_rate": extractor.sampling_rate,
        "lead_names": list(extractor.lead_names),
        "spectrogram": spectrogram,
        "spectrogram_source": spectrogram_source,
    }


def model_spectrogram(classifier, input_values) -> tuple[np.ndarray, str]:
    """(12, F, M): the model's own STFT when it has a spectrogram branch; otherwise the same function on the same
    input with the feature extractor's settings, and a note saying that this model does not see it."""
    model = classifier.model
    with torch.no_grad():
        if getattr(model.config, "use_spectrogram", False) and hasattr(model, "spectrogram"):
            spectrogram = model.spectrogram(input_values.to(model.device, model.dtype))[0]  # (12, F, M)
            return spectrogram.float().cpu().numpy(), "Spectrogram the model sees (its STFT branch input)."
        spectrogram = classifier.feature_extractor.spectrogram(input_values)[0]  # (12, F, M)
    return spectrogram.numpy(), (f"This {model.config.model_type} model has no spectrogram branch: shown is the STFT "
                                 "of its input with the same function (stft_magnitude), for reference.")


def result_record(model: str, record_name: str, result: dict, labels: list[str], multi_label: bool) -> dict:
    """What the page offers as JSON: the call and its answer, no arrays."""
    return {"model": model, "record": record_name, "task": TASK, "candidate_labels": labels,
            "multi_label": multi_label, "scores": result["scores"], "quality": result["quality"],
            "spectrogram": result["spectrogram_source"], "tamer_hf_version": __version__}


def score_rows(scores: list[dict], descriptions: dict[str, str]) -> list[list]:
    return [[rank, entry["label"], round(entry["score"], 4), descriptions.get(entry["label"], "")]
            for rank, entry in enumerate(scores, start=1)]


def quality_markdown(quality: dict | None) -> str:
    if quality is None:
        return "The pipeline of this model reports no input-quality flags."
    if quality.get("ok", True) and not quality.get("issues"):
        return "**Input quality:** no issue found."
    issues = "\n".join(f"- {issue}" for issue in quality.get("issues", []))
    return f"**Input quality warnings** (scores on this record are not to be trusted):\n{issues}"


def analyse(files, example, sampling_rate, model, label_set, free_labels, multi_label, output_dir=None):
    """The page's one action: inputs of the form -> (ECG sheet PNG, spectrogram PNG, score rows, quality markdown,
    result JSON path, spectrogram note). Raises `DemoInputError` (and the pipeline's ValueError) for bad input."""
    paths = [os.fspath(file) if isinstance(file, (str, os.PathLike)) else file.name for file in (files or [])]
    labels, descriptions = candidate_labels(label_set, free_labels)
    with tempfile.TemporaryDirectory(prefix="tamer-demo-upload-") as workdir:
        if paths:
            record = read_upload(paths, sampling_rate, workdir)
            record_name = ", ".join(sorted(Path(path).name for path in paths))
        elif example:
            record, record_name = example_record(example), example
        else:
            raise DemoInputError("Upload an ECG file or choose an example record.")
        result = diagnose(load_classifier(model), record, labels, descriptions, bool(multi_label))
    output_dir = Path(output_dir) if output_dir else new_results_dir()
    output_dir.mkdir(parents=True, exist_ok=True)
    ecg_png, spectrogram_png, json_path = (output_dir / "ecg.png", output_dir / "spectrogram.png",
                                           output_dir / RESULT_FILE)
    plot_ecg(result["ecg"], result["sampling_rate"], result["lead_names"], title=record_name, path=str(ecg_png))
    plot_spectrograms(result["spectrogram"], result["lead_names"], title=result["spectrogram_source"],
                      path=str(spectrogram_png))
    json_path.write_text(json.dumps(result_record(model, record_name, result, labels, bool(multi_label)), indent=2))
    _close_figures()
    return (str(ecg_png), str(spectrogram_png), score_rows(result["scores"], descriptions),
            quality_markdown(result["quality"]), str(json_path), result["spectrogram_source"])


def new_results_dir() -> Path:
    """A fresh folder for one request's files under the system's temporary folder; those of requests older than
    `RESULTS_KEPT_S` are removed (the page has long shown them, and gradio serves its own copies)."""
    root = Path(tempfile.gettempdir()) / "tamer-demo-results"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > RESULTS_KEPT_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))


def _close_figures():
    import matplotlib.pyplot as plt

    plt.close("all")  # a server draws two figures per request


# ----------------------------------------------------------------------------------------------------------------------
# the page


def build_demo(model: str):
    """The Gradio Blocks of the page, with the model field preset to `model` (a folder or Hub id)."""
    gr = import_gradio()

    def on_click(files, example, sampling_rate, model_name, label_set, free_labels, multi_label):
        try:
            return analyse(files, example, sampling_rate, model_name, label_set, free_labels, multi_label)
        except (ValueError, TypeError, OSError) as error:  # bad input, in the words of the reader or the pipeline
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:  # never a stack trace in the page; the server log keeps it
            logger.exception("demo request failed")
            raise gr.Error(f"Unexpected error ({type(error).__name__}): {error}", print_exception=False) from None

    # delete_cache: gradio's copies of uploads and results, every hour those older than an hour
    with gr.Blocks(title="TAMER zero-shot ECG diagnosis", analytics_enabled=False,
                   delete_cache=(RESULTS_KEPT_S, RESULTS_KEPT_S)) as demo:
        gr.Markdown("# Zero-shot 12-lead ECG diagnosis\nUpload a record (WFDB `.hea` + `.dat`/`.mat`, CPSC `.mat`, "
                    "CSV or `.npy`) or pick a synthetic example, choose the candidate labels and press **Diagnose**. "
                    "Research software: not for clinical decisions.")
        with gr.Row():
            with gr.Column():
                files = gr.File(label="ECG file(s)", file_count="multiple", elem_id="ecg-files")
                example = gr.Dropdown(list(EXAMPLE_RECORDS), value=None, label="or an example record")
                sampling_rate = gr.Number(DEFAULT_SAMPLING_RATE, label="Sampling rate (Hz) of a CSV / .npy / CPSC "
                                          ".mat upload (WFDB headers carry their own)")
                model_name = gr.Textbox(model, label="Model (saved folder or Hub id)")
                label_set = gr.Dropdown([FREE_LABELS, *label_sets()], value=DEFAULT_LABEL_SET,
                                        label="Candidate labels: a label set (with descriptions) or a free list")
                free_labels = gr.Textbox(DEFAULT_FREE_LABELS, label="Free labels (comma separated)", lines=2)
                multi_label = gr.Checkbox(False, label="Multi-label: score each label on its own (not a "
                                                       "calibrated probability)")
                button = gr.Button("Diagnose", variant="primary", elem_id="diagnose")
            with gr.Column():
                quality = gr.Markdown(elem_id="quality")
                table = gr.Dataframe(headers=TABLE_HEADERS, label="Zero-shot scores", elem_id="scores",
                                     interactive=False)
                download = gr.File(label="Result (JSON)")
        ecg_image = gr.Image(label="12-lead ECG (25 mm/s, 10 mm/mV)", type="filepath", elem_id="ecg-plot")
        spectrogram_note = gr.Markdown()
        spectrogram_image = gr.Image(label="Spectrogram", type="filepath", elem_id="spectrogram-plot")
        button.click(on_click, [files, example, sampling_rate, model_name, label_set, free_labels, multi_label],
                     [ecg_image, spectrogram_image, table, quality, download, spectrogram_note], api_name="analyse")
    return demo


def launch(model: str, port: int | None = None, host: str | None = None, **kwargs):
    """Serve the page (blocks until stopped). `port`/`host` default to gradio's (GRADIO_SERVER_PORT/NAME, else
    7860 on 127.0.0.1)."""
    load_classifier(model)  # a wrong folder or id is an error here, not in the first request
    demo = build_demo(model)
    return demo.launch(server_name=host, server_port=port, ssr_mode=False, max_file_size=MAX_UPLOAD_SIZE, **kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# Hub Space


SPACE_APP = '''"""Hub Space: zero-shot 12-lead ECG diagnosis with {model} (written by tamer_hf.demo.write_space)."""

from tamer_hf.demo import launch

if __name__ == "__main__":
    launch({model!r})
'''


def write_space(directory, model: str, requirement: str | None = None, title: str | None = None) -> list[Path]:
    """Write a Gradio Space for `model` (a Hub id; a folder works locally) into `directory`: app.py,
    requirements.txt (`requirement`, default `tamer-hf[demo]==VERSION`; pass a `git+https://...` spec while the
    package is not on PyPI) and README.md with the Space's YAML header. Returns the written paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    requirement = requirement or f"tamer-hf[demo]=={__version__}"
    header = {"title": title or "TAMER zero-shot ECG diagnosis", "emoji": "🫀", "colorFrom": "red",
              "colorTo": "gray", "sdk": "gradio", "app_file": "app.py", "pinned": False, "license": "apache-2.0",
              "tags": ["ecg", "zero-shot-ecg-classification", "tamer-hf"]}
    gradio_version = _installed_version("gradio")
    if gradio_version:
        header["sdk_version"] = gradio_version
    if not os.path.isdir(model):
        header["models"] = [model]
    yaml = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in header.items())
    readme = (f"---\n{yaml}\n---\n\n# {header['title']}\n\nUpload a 12-lead ECG and get the zero-shot scores of "
              f"`{model}` with the input-quality flags of the pipeline (tamer-hf {__version__}). Research software: "
              "not for clinical decisions.\n\nRun it locally: `pip install -r requirements.txt && python app.py`.\n")
    written = {"app.py": SPACE_APP.format(model=model), "requirements.txt": requirement + "\n", "README.md": readme}
    for name, text in written.items():
        (directory / name).write_text(text, encoding="utf-8")
    return [directory / name for name in written]


def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


__all__ = ["build_demo", "launch", "write_space", "analyse", "diagnose", "read_upload", "example_record",
           "candidate_labels", "label_sets", "DemoInputError", "EXAMPLE_RECORDS"]
