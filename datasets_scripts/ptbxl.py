"""PTB-XL (tasks super, sub, form, rhythm) with the official stratified folds (1-8 train, 9 validation, 10 test).

Raw layout: ptbxl_database.csv (ecg_id, patient_id, scp_codes, strat_fold, filename_hr, ...), scp_statements.csv
(first column = statement code; diagnostic, form, rhythm flags; diagnostic_class, diagnostic_subclass) and
records500/NNNNN/NNNNN_hr.{hea,dat}. Task labels follow the PTB-XL benchmark definition (Strodthoff et al. 2021):
every statement in scp_codes counts whatever its likelihood; super/sub aggregate diagnostic statements to their
class/subclass, form/rhythm keep form/rhythm statements. Records without a label of the task are dropped.
"""

from __future__ import annotations

import ast
from functools import partial
from pathlib import Path

import pandas as pd

from . import cli
from .card import SourceCard
from .common import dataset_description, ecg_features, label_indices, read_wfdb, standardize_signal
from .prepare import PreparationSummary, assign_splits, prepare
from .raw_files import raw_folder, read_csv

# Official label sets, in the column order of the MERL/MELP training CSVs (labels are stored by name anyway).
TASK_LABELS = {
    "super": ("HYP", "NORM", "MI", "CD", "STTC"),
    "sub": ("AMI", "LAFB/LPFB", "LVH", "STTC", "IMI", "SEHYP", "CRBBB", "WPW", "LAO/LAE", "NORM", "AVB", "RAO/RAE",
            "ISC", "LMI", "ISCI", "ISCA", "NST", "CLBBB", "ILBBB", "IRBBB", "PMI", "RVH", "IVCD"),
    "form": ("PAC", "DIG", "HVOLT", "STD", "LPR", "QWAVE", "VCLVH", "NDT", "TAB", "LOWT", "ABQRS", "LNGQT", "PRC(S)",
             "NT", "STE", "NST", "PVC", "INVT", "LVOLT"),
    "rhythm": ("SVARR", "BIGU", "STACH", "SARRH", "SBRAD", "TRIGU", "AFIB", "SR", "SVTAC", "PSVT", "AFLT", "PACE"),
}
CARD = SourceCard(
    pretty_name="PTB-XL (tamer-hf preparation)", license="cc-by-4.0",
    homepage="https://physionet.org/content/ptb-xl/1.0.3/",
    summary="PTB-XL: 21,799 clinical 10 s 12-lead ECGs of 18,869 patients with SCP-ECG statements, prepared as one "
            "multi-label task of the PTB-XL benchmark (Strodthoff et al. 2021) for zero-shot and linear-probe "
            "evaluation.",
    citation="""@article{wagner2020ptbxl,
  title = {{PTB-XL}, a large publicly available electrocardiography dataset},
  author = {Wagner, Patrick and Strodthoff, Nils and Bousseljot, Ralf-Dieter and Kreiseler, Dieter and
            Lunze, Fatima I. and Samek, Wojciech and Schaeffter, Tobias},
  journal = {Scientific Data}, volume = {7}, pages = {154}, year = {2020}, doi = {10.1038/s41597-020-0495-6}
}""",
    split_rule="The official stratified folds: 1-8 train, 9 validation, 10 test.",
    tags=["ptb-xl"],
)
OFFICIAL_FOLDS = {**{fold: "train" for fold in range(1, 9)}, 9: "validation", 10: "test"}
DATABASE_COLUMNS = ["ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_hr"]


def statement_map(scp_statements: pd.DataFrame, task: str) -> dict[str, str]:
    """{SCP code: task label} from scp_statements.csv (index = code)."""
    if task == "super":
        rows = scp_statements[scp_statements["diagnostic"] == 1]
        return {code: name.rstrip("_") for code, name in rows["diagnostic_class"].dropna().items()}
    if task == "sub":
        rows = scp_statements[scp_statements["diagnostic"] == 1]
        return {code: name.rstrip("_") for code, name in rows["diagnostic_subclass"].dropna().items()}
    flagged = scp_statements[scp_statements[task] == 1]
    return {code: code.rstrip("_") for code in flagged.index}  # STD_ -> STD, as in the MERL label lists


def task_labels(scp_codes: str, code_map: dict) -> list[str]:
    """'{"NORM": 100.0, "SR": 0.0}' -> sorted unique task labels of the record's statements (likelihood ignored)."""
    return sorted({code_map[code] for code in ast.literal_eval(scp_codes) if code in code_map})


def _load_ptbxl(task: dict, label_list: tuple) -> dict:
    signal, names, fs = read_wfdb(task["path"])
    return {"ecg": standardize_signal(signal, names, fs), "record_id": task["record_id"],
            "patient_id": task["patient_id"], "labels": label_indices(task["label_names"].split("|"), label_list)}


def read_tables(raw_dir: Path):
    database_csv, statements_csv = raw_dir / "ptbxl_database.csv", raw_dir / "scp_statements.csv"
    for path in (database_csv, statements_csv):
        if not path.is_file():
            raise FileNotFoundError(f"{path.name} not found in raw_dir {raw_dir}")
    database = read_csv(database_csv)
    missing = [c for c in DATABASE_COLUMNS if c not in database.columns]
    if missing:
        raise ValueError(f"ptbxl_database.csv lacks column(s) {', '.join(missing)}")
    statements = read_csv(statements_csv, index_col=0)
    missing = [c for c in ("diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass")
               if c not in statements.columns]
    if missing:
        raise ValueError(f"scp_statements.csv lacks column(s) {', '.join(missing)}")
    return database, statements


def build(raw_dir, output_dir=None, task: str = "super", split_files=None, num_workers: int = 2,
          shard_size: int = 1000, overwrite: bool = False):
    """PTB-XL task as a DatasetDict; official folds unless `split_files` (e.g. MERL's ptbxl_<task>_*.csv)."""
    if task not in TASK_LABELS:
        raise ValueError(f"unknown PTB-XL task {task!r}; choose one of {', '.join(TASK_LABELS)}")
    raw_dir = raw_folder(raw_dir)
    database, statements = read_tables(raw_dir)
    code_map = statement_map(statements, task)
    summary = PreparationSummary()
    labels = [task_labels(codes, code_map) for codes in database["scp_codes"]]
    table = pd.DataFrame({
        "record_id": database["ecg_id"].astype(int).astype(str),
        "patient_id": [str(int(p)) if pd.notna(p) else "" for p in database["patient_id"]],
        "path": [str(raw_dir / f) for f in database["filename_hr"]],
        "label_names": ["|".join(names) for names in labels],
    })
    for name in sorted({n for names in labels for n in names} - set(TASK_LABELS[task])):
        summary.notes[f"label {name} is not in the official {task} label set (ignored)"] += 1
    unlabeled = table["label_names"] == ""
    for record_id in table.loc[unlabeled, "record_id"]:
        summary.drop(f"no {task} label", record_id)
    folds = database.loc[~unlabeled, "strat_fold"].astype(int).map(OFFICIAL_FOLDS)
    table = assign_splits(table[~unlabeled], summary, split_files,
                          fixed_split=None if split_files else folds.to_numpy())
    features = ecg_features(TASK_LABELS[task])
    return prepare(table, partial(_load_ptbxl, label_list=TASK_LABELS[task]), features, output_dir,
                   source=f"ptbxl_{task}", description=dataset_description("ptbxl", list(TASK_LABELS[task]),
                                                                           task=task),
                   config={"source": "ptbxl", "task": task, "raw_dir": str(raw_dir), "split_files": split_files},
                   card=CARD, num_workers=num_workers, shard_size=shard_size, pre_dropped=summary,
                   overwrite=overwrite)


def main(argv=None):
    parser = cli.base_parser("Prepare a PTB-XL task (super, sub, form, rhythm) as a DatasetDict.")
    parser.add_argument("--task", default="super", help="super | sub | form | rhythm")
    parser.add_argument("--split_files", nargs="+", metavar="SPLIT=CSV",
                        help="external split, e.g. MERL's ptbxl_super_class_{train,val,test}.csv")
    args = cli.parse_args(parser, argv)
    build(args.raw_dir, args.output_dir, args.task, cli.split_files_from(args), args.num_workers,
          args.shard_size, args.overwrite)


if __name__ == "__main__":
    cli.run(main)
