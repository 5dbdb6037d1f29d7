"""CODE-test (Ribeiro et al. 2020): 827 exams, 400 Hz, 6 labels, resampled to 500 Hz.

Raw layout: ecg_tracings.hdf5 (dataset `tracings`, shape (827, 4096, 12), time-major, leads DI, DII, DIII, AVR, AVL,
AVF, V1-V6, zero-padded on both sides to 4096 samples) and annotations/gold_standard.csv (or gold_standard.csv) with
the columns 1dAVb, RBBB, LBBB, SB, AF, ST, one row per exam in HDF5 order. The exams carry no id in this release, so
record_id is the row index ("code-test-0000"); an `exam_id` dataset in the HDF5 is used when present.
Labels are renamed to the project's short codes: 1dAVb->1AVB, RBBB->CRBBB, LBBB->CLBBB, SB->SBRAD, AF->AFIB,
ST->STACH. 4096 samples at 400 Hz become 5120 at 500 Hz; the central 5000 are kept (the padding is symmetric).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from . import cli
from .card import SourceCard
from .common import DropRecord, LEADS, dataset_description, ecg_features, label_indices, standardize_signal
from .prepare import PreparationSummary, assign_splits, prepare
from .raw_files import raw_folder, read_csv

CODE_COLUMNS = {"1dAVb": "1AVB", "RBBB": "CRBBB", "LBBB": "CLBBB", "SB": "SBRAD", "AF": "AFIB", "ST": "STACH"}
CODE_LABELS = tuple(CODE_COLUMNS.values())
CODE_FS = 400.0
CARD = SourceCard(
    pretty_name="CODE-test (tamer-hf preparation)", license="cc-by-4.0",
    homepage="https://doi.org/10.5281/zenodo.3765780",
    summary="CODE-test: 827 12-lead ECGs (400 Hz, up to 10 s) annotated by cardiologists for 6 abnormalities, the "
            "test set of Ribeiro et al. 2020.",
    citation=r"""@article{ribeiro2020code,
  title = {Automatic diagnosis of the 12-lead {ECG} using a deep neural network},
  author = {Ribeiro, Ant{\^o}nio H. and Ribeiro, Manoel Horta and Paix{\~a}o, Gabriela M. M. and
            Oliveira, Derick M. and Gomes, Paulo R. and Canazart, J{\'e}ssica A. and Ferreira, Milton P. S. and
            Andersson, Carl R. and Macfarlane, Peter W. and Meira Jr., Wagner and Sch{\"o}n, Thomas B. and
            Ribeiro, Antonio Luiz P.},
  journal = {Nature Communications}, volume = {11}, pages = {1760}, year = {2020},
  doi = {10.1038/s41467-020-15432-4}
}""",
    split_rule="Every record in test (a test set); --project_split uses the project split instead.",
    tags=["code-test"],
)


def _load_code(task: dict, hdf5_path: str, units_per_mv: float) -> dict:
    import h5py

    with h5py.File(hdf5_path, "r") as handle:
        tracing = np.asarray(handle["tracings"][task["row"]], dtype=np.float32)  # (4096, 12)
    if tracing.ndim != 2 or tracing.shape[1] != len(LEADS):
        raise DropRecord(f"unexpected tracing shape {tracing.shape}")
    ecg = standardize_signal(tracing.T / units_per_mv, LEADS, CODE_FS, anchor="center")  # (12, 5000)
    return {"ecg": ecg, "record_id": task["record_id"], "patient_id": "",
            "labels": label_indices(task["label_names"].split("|"), list(CODE_LABELS))}


def _find_labels(raw_dir: Path) -> Path:
    for candidate in (raw_dir / "annotations" / "gold_standard.csv", raw_dir / "gold_standard.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"gold_standard.csv not found in {raw_dir} or {raw_dir / 'annotations'}")


def build(raw_dir, output_dir=None, split_files=None, units_per_mv: float = 1.0, all_test: bool = True,
          num_workers: int = 2, shard_size: int = 1000, overwrite: bool = False):
    """CODE-test as a DatasetDict. It is a test set: by default every record goes to `test` (all_test=True)."""
    import h5py

    raw_dir = raw_folder(raw_dir)
    hdf5_path = raw_dir / "ecg_tracings.hdf5"
    if not hdf5_path.is_file():
        raise FileNotFoundError(f"ecg_tracings.hdf5 not found in {raw_dir}")
    labels = read_csv(_find_labels(raw_dir))
    missing = [c for c in CODE_COLUMNS if c not in labels.columns]
    if missing:
        raise ValueError(f"gold_standard.csv lacks column(s) {', '.join(missing)}")
    with h5py.File(hdf5_path, "r") as handle:
        if "tracings" not in handle:
            raise ValueError("ecg_tracings.hdf5 has no 'tracings' dataset")
        num_rows = handle["tracings"].shape[0]
        exam_ids = [str(int(i)) for i in handle["exam_id"][:]] if "exam_id" in handle else None
    if num_rows != len(labels):
        raise ValueError(f"ecg_tracings.hdf5 has {num_rows} exams but gold_standard.csv has {len(labels)} rows")
    names = ["|".join(CODE_COLUMNS[c] for c in CODE_COLUMNS if row[c] == 1) for row in labels.to_dict("records")]
    table = pd.DataFrame({"row": np.arange(num_rows), "label_names": names, "patient_id": "",
                          "record_id": exam_ids or [f"code-test-{i:04d}" for i in range(num_rows)]})
    summary = PreparationSummary()
    table = assign_splits(table, summary, split_files, fixed_split="test" if all_test and not split_files else None)
    loader = partial(_load_code, hdf5_path=str(hdf5_path), units_per_mv=units_per_mv)
    return prepare(table, loader, ecg_features(CODE_LABELS), output_dir, source="code_test",
                   description=dataset_description("code_test", list(CODE_LABELS), source_columns=list(CODE_COLUMNS)),
                   config={"source": "code_test", "raw_dir": str(raw_dir), "units_per_mv": units_per_mv,
                           "all_test": all_test, "split_files": split_files},
                   card=CARD, num_workers=num_workers, shard_size=shard_size, pre_dropped=summary,
                   overwrite=overwrite)


def main(argv=None):
    parser = cli.base_parser("Prepare CODE-test (827 exams, 400 Hz -> 500 Hz) as a DatasetDict.")
    parser.add_argument("--split_files", nargs="+", metavar="SPLIT=CSV", help="external split by record id")
    parser.add_argument("--units_per_mv", type=float, default=1.0, help="HDF5 value of 1 mV (default 1.0)")
    parser.add_argument("--project_split", action="store_true",
                        help="use the project's 80/10/10 split instead of putting every record in test")
    args = cli.parse_args(parser, argv)
    build(args.raw_dir, args.output_dir, cli.split_files_from(args), args.units_per_mv, not args.project_split,
          args.num_workers, args.shard_size, args.overwrite)


if __name__ == "__main__":
    cli.run(main)
