"""`pip install .` and `pip install -e .` work in fresh environments, under namespaced import names.

The fresh environments see the current environment's dependencies (torch, transformers, ...) through a path entry,
whose own .pth files are not processed, so the current tamer_hf install is invisible to them: what they import is
what the new install put there.
"""

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent(
    """
    import importlib.resources, importlib.util, json
    import tamer_hf, tamer_hf.modeling, datasets_scripts
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoProcessor
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    print(json.dumps({
        "tamer_hf": tamer_hf.__file__,
        "modeling": tamer_hf.modeling.__file__,
        "datasets_scripts": datasets_scripts.__file__,
        "top_level_modeling": importlib.util.find_spec("modeling") is not None,
        "registered": CONFIG_MAPPING["tamer"].__name__,
        "descriptions": importlib.resources.files("tamer_hf").joinpath("data/label_descriptions.json").is_file(),
    }))
    """
)


def fresh_environment(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "dependencies_from_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.parametrize("editable", [False, True], ids=["pip install .", "pip install -e ."])
def test_package_installs_and_registers_in_a_fresh_environment(tmp_path, editable):
    python = fresh_environment(tmp_path / "env")
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
               "--no-build-isolation", *(["-e"] if editable else []), str(REPO)]
    installed = subprocess.run(command, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    probe = subprocess.run([str(python), "-c", PROBE], cwd=tmp_path, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    root = REPO if editable else tmp_path / "env"
    assert Path(found["tamer_hf"]).is_relative_to(root)
    assert Path(found["modeling"]).is_relative_to(root)
    assert Path(found["datasets_scripts"]).is_relative_to(root)
    if editable:
        assert Path(found["modeling"]).parent == REPO / "modeling"
    assert not found["top_level_modeling"], "`modeling` must not be importable as a top-level name"
    assert found["registered"] == "TamerConfig"
    assert found["descriptions"]


def test_console_script_and_module_entry_points_work_after_pip_install(tmp_path):
    """`pip install .` installs the `tamer` command; its subcommands answer --help, and one real command runs."""
    python = fresh_environment(tmp_path / "env")
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
               "--no-build-isolation", str(REPO)]
    installed = subprocess.run(command, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    tamer = tmp_path / "env" / "bin" / "tamer"
    assert tamer.is_file()

    def run(*argv):
        return subprocess.run([*map(str, argv)], cwd=tmp_path, capture_output=True, text=True, timeout=300)

    listing = run(tamer, "--help")
    assert listing.returncode == 0 and all(name in listing.stdout for name in ("pretrain", "finetune", "eval",
                                                                               "prepare", "push"))
    for name, option in [("pretrain", "--model_type"), ("finetune", "--freeze_encoder"), ("eval", "--domain_shift"),
                         ("push", "--space_dir"), ("prepare", "synthetic"), ("demo", "--write_space")]:
        helped = run(tamer, name, "--help")
        assert helped.returncode == 0 and f"usage: tamer {name}" in helped.stdout and option in helped.stdout, name
    assert "usage: tamer pretrain" in run(python, "-m", "tamer_hf", "pretrain", "--help").stdout
    assert "--write_space" in run(tmp_path / "env" / "bin" / "tamer-demo", "--help").stdout
    assert "--model_type" in run(python, "-m", "tamer_hf.commands.pretrain", "--help").stdout

    bad = run(tamer, "pretrain", "--max_steps", "-1")
    assert bad.returncode == 2 and bad.stderr.strip() == "tamer pretrain: error: --max_steps must be positive, got -1."

    prepared = run(tamer, "prepare", "synthetic", "--output_dir", tmp_path / "data", "--num_records", "30")
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    from datasets import load_from_disk

    data = load_from_disk(str(tmp_path / "data"))
    assert sum(len(split) for split in data.values()) == 30 and (tmp_path / "data" / "README.md").is_file()
