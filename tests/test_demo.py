"""The web demo (`tamer demo`, tamer_hf/demo.py): the page served by the console command on a free port and driven
through Gradio's Python client and, where a Chromium executable is installed, a headless browser; every upload form
read by the same code; readable errors; the Space folder written by `tamer push --space_dir` run with `python app.py`
from its own directory; and the core package without gradio."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from tamer_hf.evaluation import load_label_descriptions
from tamer_hf.pipelines import TASK, pipeline, save_pretrained_with_pipeline
from tamer_hf.testing_utils import FakeHub, free_port, tiny_cmelt_model_and_processor, tiny_model_and_processor

gradio_client = pytest.importorskip("gradio_client", reason='the demo tests need gradio: pip install "tamer-hf[demo]"')
pytest.importorskip("gradio", reason='the demo tests need gradio: pip install "tamer-hf[demo]"')
wfdb = pytest.importorskip("wfdb")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from tamer_hf import demo  # noqa: E402
from tamer_hf.commands import push  # noqa: E402

SERVER_START_S = 300  # a server not answering by then has failed to start (model loading on 2 shared cores)
ARTIFACTS = Path(os.environ.get("TAMER_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "build" / "artifacts"))
LABEL_SET = "ptbxl_super"
FREE_LABELS = "atrial fibrillation, sinus rhythm, right bundle branch block"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model, processor = tiny_model_and_processor(texts=[FREE_LABELS])
    directory = tmp_path_factory.mktemp("demo") / "model"
    save_pretrained_with_pipeline(model, processor, directory)
    return directory


@pytest.fixture(scope="module")
def classifier(saved_model):
    return pipeline(TASK, model=str(saved_model))


@pytest.fixture(scope="module")
def sinus_record():
    """A synthetic normal sinus rhythm (the demo's own example), (12, 5000) mV at 500 Hz."""
    return demo.example_record("synthetic: normal sinus rhythm")


@pytest.fixture(scope="module")
def wfdb_files(sinus_record, tmp_path_factory):
    """The record written with wfdb.wrsamp: [rec.hea, rec.dat]."""
    folder = tmp_path_factory.mktemp("wfdb")
    wfdb.wrsamp("rec", fs=sinus_record["sampling_rate"], units=["mV"] * 12, sig_name=sinus_record["lead_names"],
                p_signal=sinus_record["signal"].T.astype(np.float64), fmt=["16"] * 12, write_dir=str(folder))
    return [folder / "rec.hea", folder / "rec.dat"]


def start_server(command, port, cwd, env_extra, log_path):
    """Start a demo server process that listens on `port`; returns (process, url) once the page answers."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "GRADIO_TEMP_DIR": str(Path(log_path).parent / "gradio"), **env_extra}
    log = open(log_path, "w")
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the demo server exited ({process.returncode}):\n{Path(log_path).read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(1)
    stop(process)
    raise RuntimeError(f"the demo server did not answer within {SERVER_START_S} s:\n"
                       f"{Path(log_path).read_text()[-3000:]}")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def console_command() -> list[str]:
    """`tamer` as installed next to this Python (pip install -e .), else the same program as `python -m tamer_hf`."""
    script = Path(sys.executable).with_name("tamer")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tamer_hf"]


@pytest.fixture(scope="module")
def server(saved_model, tmp_path_factory):
    """`tamer demo --model FOLDER --port N` serving the page on localhost."""
    logs = tmp_path_factory.mktemp("server")
    port = free_port()
    process, url = start_server([*console_command(), "demo", "--model", str(saved_model), "--port", str(port)], port,
                                cwd=logs, env_extra={}, log_path=logs / "server.log")
    yield url
    stop(process)


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def ask(client, files=(), example=None, sampling_rate=500, model="", label_set=LABEL_SET, free_labels="",
        multi_label=False):
    return client.predict([handle_file(str(path)) for path in files], example, sampling_rate, model, label_set,
                          free_labels, multi_label, api_name="/analyse")


def png_size(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


# ----------------------------------------------------------------------------------------------------------------------
# the served page, through Gradio's client


def test_a_wfdb_record_uploaded_to_the_page_gets_plots_the_pipelines_scores_quality_and_json(client, saved_model,
                                                                                                wfdb_files, classifier):
    ecg_png, spectrogram_png, table, quality, json_path, spectrogram_note = ask(client, wfdb_files,
                                                                                 model=str(saved_model))
    descriptions = load_label_descriptions(LABEL_SET)
    expected = classifier(str(wfdb_files[0]), candidate_labels=list(descriptions), label_descriptions=descriptions)
    assert png_size(ecg_png)[0] > 800 and png_size(spectrogram_png)[0] > 800
    assert table["headers"] == demo.TABLE_HEADERS
    assert [row[1] for row in table["data"]] == [entry["label"] for entry in expected]
    assert [row[2] for row in table["data"]] == pytest.approx([entry["score"] for entry in expected], abs=1e-4)
    assert [row[3] for row in table["data"]] == [descriptions[entry["label"]] for entry in expected]
    assert quality == "**Input quality:** no issue found." and expected[0]["quality"] == {"ok": True, "issues": []}
    result = json.loads(Path(json_path).read_text())
    assert [entry["label"] for entry in result["scores"]] == [entry["label"] for entry in expected]
    # the server is another process: float32 forwards there agree to ~1e-7, not bit for bit
    assert [entry["score"] for entry in result["scores"]] == pytest.approx([entry["score"] for entry in expected],
                                                                           rel=1e-5, abs=1e-6)
    assert result["record"] == "rec.dat, rec.hea" and result["model"] == str(saved_model)
    assert "the model sees" in spectrogram_note


def test_a_header_without_its_signal_file_is_a_readable_error_in_the_page(client, saved_model, wfdb_files):
    with pytest.raises(AppError) as error:
        ask(client, wfdb_files[:1], model=str(saved_model))
    assert str(error.value) == ("rec.hea names the signal file(s) ['rec.dat'], which were not uploaded: select the "
                                ".hea and its signal file together.")


def test_a_broken_header_is_a_readable_error_not_a_stack_trace(client, saved_model, tmp_path):
    broken = tmp_path / "broken.hea"
    broken.write_bytes(b"\x00\x01 this is not a header\n\xff\xfe")
    with pytest.raises(AppError) as error:
        ask(client, [broken], model=str(saved_model))
    assert str(error.value).startswith("broken.hea is not a readable WFDB header")
    assert "Traceback" not in str(error.value)


def test_an_implausible_sampling_rate_of_an_uploaded_csv_is_a_readable_error(client, saved_model, sinus_record,
                                                                              tmp_path):
    import pandas as pd

    csv = tmp_path / "ecg.csv"
    pd.DataFrame(sinus_record["signal"].T, columns=sinus_record["lead_names"]).to_csv(csv, index=False)
    with pytest.raises(AppError) as error:
        ask(client, [csv], sampling_rate=5, model=str(saved_model))
    assert "sampling_rate=5.0 Hz is outside the plausible range" in str(error.value)


def test_an_example_record_with_free_labels_and_multi_label_scores_each_label_in_unit_interval(client, saved_model,
                                                                                               classifier):
    example = "synthetic: atrial fibrillation"
    _, _, table, _, _, _ = ask(client, example=example, model=str(saved_model), label_set=demo.FREE_LABELS,
                               free_labels=FREE_LABELS, multi_label=True)
    labels = [label.strip() for label in FREE_LABELS.split(",")]
    expected = classifier(demo.example_record(example), candidate_labels=labels, multi_label=True)
    assert {row[1]: row[2] for row in table["data"]} == pytest.approx(
        {entry["label"]: round(entry["score"], 4) for entry in expected})
    assert all(0.0 <= row[2] <= 1.0 for row in table["data"])
    assert sorted(row[1] for row in table["data"]) == sorted(labels)


# ----------------------------------------------------------------------------------------------------------------------
# the page's function with every upload form


def scores(result) -> dict:
    return {row[1]: row[2] for row in result[2]}


def test_csv_npy_and_cpsc_mat_uploads_score_as_the_same_array_given_to_the_pipeline(saved_model, classifier,
                                                                                     sinus_record, tmp_path):
    import pandas as pd
    from scipy.io import savemat

    signal = sinus_record["signal"]  # (12, 5000) mV, the standard lead order
    shuffled = [sinus_record["lead_names"][i] for i in np.random.default_rng(0).permutation(12)]
    order = [sinus_record["lead_names"].index(name) for name in shuffled]
    pd.DataFrame(signal[order].T, columns=shuffled).to_csv(tmp_path / "named.csv", index=False)
    pd.DataFrame(signal.T).to_csv(tmp_path / "plain.csv", index=False, header=False)
    np.save(tmp_path / "ecg.npy", signal)
    savemat(tmp_path / "A0001.mat", {"ECG": {"sex": "Male", "age": 60, "data": signal}})
    expected = classifier(signal, sampling_rate=500, candidate_labels=["sinus rhythm", "atrial fibrillation"])
    for upload in ("named.csv", "plain.csv", "ecg.npy", "A0001.mat"):
        result = demo.analyse([tmp_path / upload], None, 500, str(saved_model), demo.FREE_LABELS,
                              "sinus rhythm, atrial fibrillation", False, output_dir=tmp_path / upload[:-4])
        assert scores(result) == pytest.approx({e["label"]: round(e["score"], 4) for e in expected}, abs=1e-4), upload


def test_a_cinc_record_hea_and_mat_scores_as_the_pipeline_reads_it(saved_model, classifier, wfdb_files, tmp_path):
    from wfdb.io.convert.matlab import wfdb_to_mat

    shutil.copy(wfdb_files[0], tmp_path)
    shutil.copy(wfdb_files[1], tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # wfdb_to_mat writes <record>m.hea / <record>m.mat into the working directory
    try:
        wfdb_to_mat("rec")
    finally:
        os.chdir(cwd)
    upload = [tmp_path / "recm.hea", tmp_path / "recm.mat"]
    result = demo.analyse(upload, None, None, str(saved_model), demo.FREE_LABELS, FREE_LABELS, False,
                          output_dir=tmp_path / "out")
    expected = classifier(str(upload[0]), candidate_labels=[label.strip() for label in FREE_LABELS.split(",")])
    assert scores(result) == pytest.approx({e["label"]: round(e["score"], 4) for e in expected}, abs=1e-4)


@pytest.mark.parametrize("files, message", [
    ({"A0001.mat": "cinc"}, "A0001.mat is a PhysioNet/CinC .mat in digital units: upload A0001.hea"),
    ({"rec.dat": b"\x00" * 48}, "rec.dat is WFDB signal data without its header: upload rec.hea together with it."),
    ({"ecg.txt": b"1,2,3"}, "ecg.txt: unsupported file type .txt"),
    ({"ecg.npy": b"not numpy"}, "ecg.npy is not a NumPy .npy array"),
    ({"a.hea": b"", "b.hea": b""}, "Upload one record at a time; got the headers ['a.hea', 'b.hea']."),
])
def test_unusable_uploads_say_what_is_wrong(files, message, tmp_path, saved_model):
    from scipy.io import savemat

    paths = []
    for name, content in files.items():
        if content == "cinc":
            savemat(tmp_path / name, {"val": np.zeros((12, 5000), dtype=np.int16)})
        else:
            (tmp_path / name).write_bytes(content)
        paths.append(tmp_path / name)
    with pytest.raises(demo.DemoInputError) as error:
        demo.analyse(paths, None, 500, str(saved_model), LABEL_SET, "", False, output_dir=tmp_path / "out")
    assert str(error.value).startswith(message)


def test_the_pipelines_quality_issues_are_listed_in_the_page_and_in_the_json(saved_model, classifier, sinus_record,
                                                                            tmp_path):
    signal = sinus_record["signal"][:, :3000].copy()  # 6 s: padded to the 10 s window
    signal[8] = 0.0  # V3 flat
    np.save(tmp_path / "short.npy", signal)
    _, _, _, quality, json_path, _ = demo.analyse([tmp_path / "short.npy"], None, 500, str(saved_model), LABEL_SET, "",
                                                  False, output_dir=tmp_path / "out")
    expected = classifier(signal, sampling_rate=500, candidate_labels=["a", "b"])[0]["quality"]
    assert not expected["ok"] and len(expected["issues"]) >= 2
    assert quality.startswith("**Input quality warnings**")
    assert all(f"- {issue}" in quality for issue in expected["issues"])
    assert json.loads(Path(json_path).read_text())["quality"] == expected


def test_the_spectrogram_is_the_models_own_and_for_a_family_without_the_branch_the_input_stft_said_so(
        saved_model, classifier, sinus_record, tmp_path):
    input_values = classifier.feature_extractor(sinus_record, return_tensors="pt")["input_values"]
    spectrogram, note = demo.model_spectrogram(classifier, input_values)
    np.testing.assert_allclose(spectrogram, classifier.model.spectrogram(input_values)[0].detach().numpy(), rtol=1e-6)
    assert note == "Spectrogram the model sees (its STFT branch input)."

    model, processor = tiny_cmelt_model_and_processor(texts=[FREE_LABELS])
    save_pretrained_with_pipeline(model, processor, tmp_path / "cmelt")
    cmelt = pipeline(TASK, model=str(tmp_path / "cmelt"))
    spectrogram, note = demo.model_spectrogram(cmelt, input_values)
    np.testing.assert_allclose(spectrogram, cmelt.feature_extractor.spectrogram(input_values)[0].numpy())
    assert note.startswith("This cmelt model has no spectrogram branch: shown is the STFT of its input")


# ----------------------------------------------------------------------------------------------------------------------
# packaging: no gradio in the core, the Space folder


def test_the_core_package_never_imports_gradio_and_the_command_names_the_extra_when_it_is_missing(saved_model):
    core = "import sys, tamer_hf, tamer_hf.cli, tamer_hf.demo, tamer_hf.commands.demo, tamer_hf.commands.push\n" \
           "print('gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", core], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    without_gradio = textwrap.dedent('''
        import sys

        class BlockGradio:
            def find_spec(self, name, path=None, target=None):
                if name == "gradio" or name.startswith("gradio."):
                    raise ImportError("No module named 'gradio'")

        sys.meta_path.insert(0, BlockGradio())
        from tamer_hf.cli import main
        sys.exit(main(["demo", "--model", sys.argv[1]]))
    ''')
    run = subprocess.run([sys.executable, "-c", without_gradio, str(saved_model)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == ('tamer demo: error: The web demo needs gradio, which is not '
                                                   'installed: pip install "tamer-hf[demo]"')


def test_tamer_demo_with_a_folder_that_is_no_model_ends_with_one_error_line(tmp_path, capsys):
    from tamer_hf.cli import main

    assert main(["demo", "--model", str(tmp_path / "missing"), "--port", str(free_port())]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"tamer demo: error: Could not load the model '{tmp_path / 'missing'}'")
    assert len(error.splitlines()) == 1


def test_tamer_push_writes_a_space_that_runs_with_python_app_py_from_a_clean_directory(saved_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    hub = FakeHub(tmp_path / "hf_home")
    with mock.patch("tamer_hf.hub.HfApi", return_value=hub):
        push.main(["--model", str(folder), "--repo_id", "org/tamer-ecg", "--space_dir", str(tmp_path / "space")])
    space = tmp_path / "space"
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    readme = (space / "README.md").read_text()
    assert readme.startswith("---\n") and 'sdk: "gradio"' in readme and 'app_file: "app.py"' in readme
    assert 'models: ["org/tamer-ecg"]' in readme
    assert (space / "requirements.txt").read_text().startswith("tamer-hf[demo]")

    port = free_port()  # a Space's app.py takes its port from the environment, as on the Hub
    process, url = start_server([sys.executable, "app.py"], port, cwd=space, log_path=tmp_path / "space.log",
                                env_extra={"HF_HOME": str(hub.hf_home), "GRADIO_SERVER_PORT": str(port)})
    try:
        *_, table, quality, json_path, _ = Client(url, verbose=False).predict(
            [], "synthetic: atrial fibrillation", 500, "org/tamer-ecg", LABEL_SET, "", False, api_name="/analyse")
    finally:
        stop(process)
    assert sorted(row[1] for row in table["data"]) == sorted(load_label_descriptions(LABEL_SET))
    assert json.loads(Path(json_path).read_text())["model"] == "org/tamer-ecg"
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "requirements.txt"]


def test_tamer_demo_write_space_serves_the_given_model(tmp_path):
    from tamer_hf.commands import demo as demo_command

    demo_command.main(["--model", "org/other-ecg", "--write_space", str(tmp_path), "--requirement",
                       "tamer-hf[demo] @ git+https://example.org/tamer-hf"])
    assert "launch('org/other-ecg')" in (tmp_path / "app.py").read_text()
    assert (tmp_path / "requirements.txt").read_text() == "tamer-hf[demo] @ git+https://example.org/tamer-hf\n"


# ----------------------------------------------------------------------------------------------------------------------
# a real browser


def chromium_executable() -> str | None:
    candidates = [os.environ.get("TAMER_CHROMIUM")] + [shutil.which(name) for name in
                                                       ("chromium", "chromium-browser", "google-chrome")]
    return next((path for path in candidates if path and os.path.isfile(path)), None)


def upload_and_diagnose(playwright, page, url, files):
    """Open the page, choose `files` in the upload box, wait until they are listed (uploaded), press Diagnose."""
    page.goto(url)  # the upload box appears when the app has loaded; set_input_files waits for it
    page.locator("#ecg-files input[type=file]").set_input_files([str(path) for path in files])
    for path in files:  # the list shows name and suffix in separate elements
        playwright.expect(page.locator("#ecg-files")).to_contain_text(Path(path).suffix, timeout=60_000)
    page.locator("#diagnose").click()


def test_a_clinician_uploads_a_wfdb_record_in_headless_chromium_and_sees_plot_scores_and_errors(server, wfdb_files,
                                                                                              classifier):
    executable = chromium_executable()
    if executable is None:
        reason = ("no Chromium executable (install Debian's `chromium` package, or set TAMER_CHROMIUM); the demo is "
                  "tested through Gradio's Python client only")
        print(f"SKIPPED browser test: {reason}")
        pytest.skip(reason)
    playwright = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed: pip install playwright")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    descriptions = load_label_descriptions(LABEL_SET)
    best = classifier(str(wfdb_files[0]), candidate_labels=list(descriptions), label_descriptions=descriptions)[0]
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(120_000)  # two shared cores under load: navigation alone can exceed the 30 s default
        try:
            upload_and_diagnose(playwright, page, server, wfdb_files)
            page.locator("#ecg-plot img").wait_for(state="visible", timeout=120_000)
            page.locator("#spectrogram-plot img").wait_for(state="visible", timeout=120_000)
            page.locator("#scores").get_by_text(descriptions[best["label"]]).first.wait_for(timeout=60_000)
            playwright.expect(page.locator("#quality")).to_have_text("Input quality: no issue found.",
                                                                     timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "demo_wfdb_record.png"), full_page=True)

            upload_and_diagnose(playwright, page, server, wfdb_files[:1])
            message = page.get_by_text("which were not uploaded: select the .hea and its signal file together")
            message.first.wait_for(timeout=60_000)
            assert "Traceback" not in page.content()
            page.wait_for_timeout(1_000)  # the error toast fades in: let the screenshot show it
            page.screenshot(path=str(ARTIFACTS / "demo_missing_dat.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "demo_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    print(f"screenshots: {ARTIFACTS}")
