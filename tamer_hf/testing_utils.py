"""Tiny models, tokenizers and processors built locally, for tests and examples that must run offline, and the Hub
stand-ins and fresh-process checks that prove a saved folder needs no tamer_hf, multi-process launches on CPU, and
where the real PhysioNet sample records are."""

import contextlib
import os
from pathlib import Path

import torch

from .modeling.feature_extraction_tamer import TamerFeatureExtractor
from .modeling.modeling_tamer import TamerModel
from .modeling.processing_tamer import TamerProcessor
from .presets import preset_config
from .text import small_text_config, train_report_tokenizer


def tiny_tokenizer(texts=(), vocab_size: int = 300):
    return train_report_tokenizer(texts, vocab_size=vocab_size)


def tiny_config(tokenizer=None, **overrides):
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    text_config = small_text_config(tokenizer, hidden_size=32, num_layers=2, num_heads=2, max_positions=128)
    return preset_config("tiny", text_config=text_config.to_dict(), **overrides)


def tiny_model_and_processor(seed: int = 0, texts=(), **overrides):
    """A randomly initialised tiny TamerModel (eval mode) and its matching processor."""
    tokenizer = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    model = TamerModel(tiny_config(tokenizer, **overrides)).eval()
    processor = TamerProcessor(TamerFeatureExtractor(), tokenizer, max_text_length=64)
    return model, processor


FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"

# Python source run in a child process to prove that a checkpoint needs no tamer_hf: it makes `import tamer_hf` fail.
BLOCK_TAMER_HF = '''
import sys

class _BlockTamerHF:
    def find_spec(self, name, path=None, target=None):
        if name == "tamer_hf" or name.startswith("tamer_hf."):
            raise ImportError("tamer_hf is blocked in this process")

sys.meta_path.insert(0, _BlockTamerHF())
'''


def hub_snapshot(hf_home, repo_id: str, commit: str = FAKE_COMMIT):
    """The folder of `repo_id`'s snapshot `commit` in the Hub cache under `hf_home` (what `from_pretrained(repo_id)`
    reads with HF_HUB_OFFLINE=1): hub/models--org--name/snapshots/<commit>/, with refs/main pointing at it."""
    from pathlib import Path

    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def make_hub_cache(hf_home, folder, repo_id: str = "org/tamer-ecg", commit: str = FAKE_COMMIT):
    """Lay out `folder` as a Hub download of `repo_id` under `hf_home`."""
    from pathlib import Path

    snapshot = hub_snapshot(hf_home, repo_id, commit)
    for file in Path(folder).iterdir():
        if file.is_file():
            (snapshot / file.name).write_bytes(file.read_bytes())
    return snapshot


class FakeHub:
    """Stands in for `huggingface_hub.HfApi` at the HTTP boundary: what would be uploaded lands in a Hub-layout cache
    under `hf_home` (one snapshot per repository), from which `from_pretrained(repo_id)` then loads offline.

    ```python
    hub = FakeHub(tmp_path / "hf_home")
    with hub.patch_transformers():
        model.push_to_hub("org/name"); processor.push_to_hub("org/name")
    ```
    """

    def __init__(self, hf_home):
        self.hf_home = hf_home
        self.commits = []

    def create_repo(self, repo_id, **kwargs):
        from huggingface_hub import RepoUrl

        hub_snapshot(self.hf_home, repo_id)
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, **kwargs):
        snapshot = hub_snapshot(self.hf_home, repo_id)
        for operation in operations:
            target = snapshot / operation.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            source = operation.path_or_fileobj
            target.write_bytes(open(source, "rb").read() if isinstance(source, (str, os.PathLike)) else source)
        self.commits.append(sorted(operation.path_in_repo for operation in operations))
        return FAKE_COMMIT

    def upload_folder(self, *, repo_id, folder_path, allow_patterns=None, **kwargs):
        from pathlib import Path

        from huggingface_hub import CommitOperationAdd

        names = allow_patterns or [str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()]
        return self.create_commit(repo_id, [CommitOperationAdd(path_in_repo=name,
                                                               path_or_fileobj=os.path.join(folder_path, name))
                                            for name in names])

    def load_card(self, repo_id, **kwargs):
        """`ModelCard.load(repo_id)` from this hub: the repository's README.md, or EntryNotFoundError."""
        from huggingface_hub import ModelCard
        from huggingface_hub.errors import EntryNotFoundError

        card = hub_snapshot(self.hf_home, repo_id) / "README.md"
        if not card.is_file():
            raise EntryNotFoundError(f"{repo_id} has no README.md")
        return ModelCard(card.read_text(encoding="utf-8"))

    def patch_transformers(self):
        """Route transformers' `push_to_hub` (its HfApi and its `ModelCard.load` of the remote card) here."""
        from contextlib import ExitStack
        from unittest import mock

        stack = ExitStack()
        stack.enter_context(mock.patch("transformers.utils.hub.hf_api", return_value=self))
        stack.enter_context(mock.patch("transformers.utils.hub.ModelCard.load", side_effect=self.load_card))
        return stack


# Run by `pipeline_outputs_without_tamer_hf` in a child process.
_PIPELINE_CHILD = BLOCK_TAMER_HF + '''
import json

import numpy as np

try:
    import tamer_hf
    sys.exit("tamer_hf was importable")
except ImportError:
    pass
from transformers import pipeline

request = json.load(open(sys.argv[1]))
ecg = np.load(request["ecg"])
outputs = {}
for source in request["sources"]:
    named = pipeline(request["task"], model=source, trust_remote_code=True)
    inferred = pipeline(model=source, trust_remote_code=True)
    outputs[source] = {
        "inferred_task": inferred.task,
        "modules": sorted({type(named).__module__, type(inferred).__module__, type(named.model).__module__}),
        "named": [named(ecg, **call) for call in request["calls"]],
        "inferred": [inferred(ecg, **call) for call in request["calls"]],
    }
print(json.dumps(outputs))
'''


def pipeline_outputs_without_tamer_hf(sources, ecg, calls, workdir, hf_home=None, timeout: int = 600) -> dict:
    """Serve `sources` (folders or Hub ids) with plain `transformers.pipeline` in a fresh Python process where
    `tamer_hf` cannot be imported, as on a machine without it: isolated mode (`-I`, no PYTHONPATH), the import blocked,
    offline (HF_HUB_OFFLINE=1), Hub cache and remote-code modules under `hf_home` (default: a new folder in `workdir`).

    For each source, `pipeline(TASK, model=source, trust_remote_code=True)` ("named") and `pipeline(model=source,
    trust_remote_code=True)` ("inferred": the task comes from config.json) score `ecg` once per kwargs dict of
    `calls`. Returns `{source: {"named": [...], "inferred": [...], "inferred_task": ..., "modules": [...]}}`, the
    modules being those of the pipeline and model classes that ran.
    """
    import json
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from .modeling.pipeline_zero_shot_ecg import TASK

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    np.save(workdir / "ecg.npy", np.asarray(ecg))
    request = {"ecg": str(workdir / "ecg.npy"), "sources": [str(s) for s in sources], "calls": calls, "task": TASK}
    (workdir / "request.json").write_text(json.dumps(request))
    (workdir / "child.py").write_text(_PIPELINE_CHILD)
    env = {**os.environ, "HF_HOME": str(hf_home or workdir / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-I", "child.py", "request.json"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the child process failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def tiny_cmelt_model_and_processor(seed: int = 0, texts=(), tokenizer=None, **overrides):
    """A randomly initialised `cmelt-tiny` CmeltModel (eval mode) with a local T5 tokenizer and its processor.

    `tokenizer`: reuse one (Unigram training is not bit-reproducible from run to run); else one is trained on `texts`.
    """
    from .families.cmelt import MODEL_PRESETS, make_processor
    from .modeling.configuration_cmelt import CmeltConfig
    from .modeling.modeling_cmelt import CmeltModel
    from .text import small_t5_config, train_t5_tokenizer

    tokenizer = tokenizer if tokenizer is not None else train_t5_tokenizer(texts, vocab_size=300)
    text_config = small_t5_config(tokenizer, d_model=32, num_layers=1, num_heads=2)
    torch.manual_seed(seed)
    config = CmeltConfig(text_config=text_config.to_dict(), **{**MODEL_PRESETS["cmelt-tiny"], **overrides})
    return CmeltModel(config).eval(), make_processor(tokenizer, max_text_length=64)


def tiny_cgdmer_model_and_processor(seed: int = 0, texts=(), tokenizer=None, **overrides):
    """A randomly initialised `cgdmer-tiny` CgdmerModel (eval mode) with a local WordPiece tokenizer and its processor.

    `tokenizer`: reuse one (WordPiece training is not bit-reproducible from run to run); else one is trained on `texts`.
    """
    from .families.cgdmer import MODEL_PRESETS, local_text_config, make_processor
    from .modeling.configuration_cgdmer import CgdmerConfig
    from .modeling.modeling_cgdmer import CgdmerModel

    tokenizer = tokenizer if tokenizer is not None else train_report_tokenizer(texts, vocab_size=300)
    text_config = local_text_config(tokenizer, "tiny", max_text_length=64)
    torch.manual_seed(seed)
    fields = {"mlm_mask_token_id": tokenizer.mask_token_id, **MODEL_PRESETS["cgdmer-tiny"], **overrides}
    config = CgdmerConfig(text_config=text_config.to_dict(), **fields)
    return CgdmerModel(config).eval(), make_processor(tokenizer, max_text_length=64)


TINY_BUILDERS = {"tamer": tiny_model_and_processor, "cmelt": tiny_cmelt_model_and_processor,
                 "cgdmer": tiny_cgdmer_model_and_processor}
TINY_REPORTS = ("sinus rhythm. normal ecg.", "atrial fibrillation with rapid ventricular response.")


def tiny_model_and_batch(model_type: str, reports=TINY_REPORTS):
    """A tiny model of `model_type` (eval mode, seed 0) and its processor's batch of one ECG per report: the inputs
    of the tests that call a family's forward directly."""
    model, processor = TINY_BUILDERS[model_type](seed=0, texts=list(reports))
    torch.manual_seed(0)
    ecg = torch.randn(len(reports), model.config.num_leads, model.config.num_samples).numpy() * 0.3
    batch = dict(processor(ecg=ecg, text=list(reports), sampling_rate=model.config.sampling_rate))
    return model.eval(), batch


# ----------------------------------------------------------------------------------------------------------------------
# Multi-process runs on CPU (the distributed tests)

LAUNCH_TIMEOUT_S = 300  # a launch that takes longer has hung
WORKER_HANG_S = 120  # a worker process stuck this long dumps its stacks and exits (arm_hang_timeout)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_process_trees(pids: list[int]) -> None:
    """SIGKILL each process and all its descendants (torchrun starts its workers in sessions of their own, so a
    process-group kill would leave them running, holding the test's pipes)."""
    import psutil

    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(pid)
            processes += [parent, *parent.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=30)


def accelerate_launch(num_processes: int, script_and_args: list, cwd: str, timeout: int = LAUNCH_TIMEOUT_S,
                      num_machines: int = 1):
    """`accelerate launch` of `script_and_args` on `num_processes` CPU processes of this machine: gloo over the
    loopback interface on a free port, one thread per process (hf_conventions pitfall 24: ACCELERATE_USE_CPU=1).
    With `num_machines` > 1, one launch per "machine" (`--machine_rank`), all on localhost, `num_processes` in all
    (a multi-node run in miniature); the result is machine 0's.

    A launch that outlives `timeout` is killed with all its processes, and a failure reports every machine's stderr
    (workers armed with `arm_hang_timeout` print their stacks). Two-process launches used to stall about once in ten
    at exit, in a torch deadlock between DDP's reducer and gloo (fixed by `tamer_hf.distributed.end_training`); a
    stalled launch is still retried once on a new port, with a warning that shows the stacks, so that a new stall is
    visible in the test report without failing the run. Returns the CompletedProcess."""
    import subprocess
    import sys
    import time
    import warnings

    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": cwd,
           "GLOO_SOCKET_IFNAME": "lo"}

    def command(port: int, machine_rank: int) -> list[str]:
        parts = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
                 "--num_machines", str(num_machines), "--machine_rank", str(machine_rank), "--main_process_ip",
                 "127.0.0.1", "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no"]
        if num_processes > 1:
            parts.insert(3, "--multi_gpu")
        return parts + [str(part) for part in script_and_args]

    def run(port: int):
        machines = [subprocess.Popen(command(port, rank), env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                    for rank in range(num_machines)]
        deadline = time.monotonic() + timeout
        done = []
        for machine in machines:
            try:
                out, err = machine.communicate(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                kill_process_trees([launch.pid for launch in machines])
                out, err = machine.communicate()
                err += f"\n[accelerate_launch] killed: the launch did not finish within {timeout} s\n"
            done.append(subprocess.CompletedProcess(machine.args, machine.returncode, out, err))
        failed = [result for result in done if result.returncode != 0]
        if not failed:
            return done[0]
        # the first failure, with every machine's stderr: a hang on one machine shows as a wait on the other
        report = "\n".join(f"--- machine {rank} (status {result.returncode}) ---\n{result.stderr[-3000:]}"
                           for rank, result in enumerate(done)) if num_machines > 1 else failed[0].stderr
        return subprocess.CompletedProcess(failed[0].args, failed[0].returncode, failed[0].stdout, report)

    done = run(free_port())
    if done.returncode != 0 and ("Timeout (0:" in done.stderr or "[accelerate_launch] killed" in done.stderr):
        warnings.warn("distributed worker stalled; retried once. Stacks:\n" + done.stderr[-3000:])
        done = run(free_port())
    return done


def arm_hang_timeout() -> None:
    """In a worker process: a hang ends the process with its stacks instead of blocking the test run."""
    import faulthandler

    faulthandler.dump_traceback_later(float(os.environ.get("TAMER_TEST_HANG_S", WORKER_HANG_S)), exit=True)


# ----------------------------------------------------------------------------------------------------------------------
# Real PhysioNet records (tests skip when they are absent)


def physionet_samples_dir() -> Path:
    """Where the tests find real PhysioNet records: `$TAMER_PHYSIONET_SAMPLES`, else ../shared/data/physionet-samples
    beside the repository."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet-samples"
    return Path(os.environ.get("TAMER_PHYSIONET_SAMPLES", default))


# ----------------------------------------------------------------------------------------------------------------------
# Pre-training runs in a child process (kill-and-resume tests: SIGKILL ends the child)


def pretrain_subprocess(argv: list, cwd: str, expect_kill: bool = False, timeout: int = 600):
    """`python examples/pretrain.py argv` under `cwd` (the repository) on one thread; asserts that it ended normally
    (or by SIGKILL with `expect_kill`, the `--simulate_kill_*` options). Returns the CompletedProcess."""
    import signal
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": cwd}
    done = subprocess.run([sys.executable, os.path.join(cwd, "examples", "pretrain.py"), *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    expected = -signal.SIGKILL if expect_kill else 0
    assert done.returncode == expected, (done.returncode, done.stderr[-3000:])
    return done


def step_losses(path) -> dict[int, float]:
    """step -> global loss from a `--save_every_loss` file (a step run again after a resume overwrites)."""
    import json

    with open(path, encoding="utf-8") as handle:
        return {row["step"]: row["loss"] for row in map(json.loads, handle)}
