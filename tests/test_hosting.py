"""The launched app as the public meets it: upload limit, temporary files, password.

Plain HTTP (httpx) for what a script with no page can send, gradio_client as an API user.
Each app here gets a temporary folder of its own (GRADIO_TEMP_DIR, read by Gradio when the app is
made), so that what is on disk before and after can be listed exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AuthenticationError

from bonsai_ui.hosting.uploads import UploadRefused, check_zip
from conftest import LaunchedApp, free_port
from test_uploads import zip_bomb

MB = 1000**2
LIMIT = 1 * MB
AGE, EVERY = 2, 1  # seconds: a file is gone AGE + EVERY after it was written, its folder AGE later
QUESTION = "Jack has 4 pears and eats 5 of them. How many pears are left?"
GENERATE_ARGS = (QUESTION, "", "reasoning", "alpaca", "", 24, 0.0, 0.95, 50, 1.1, 0)


def launch(engine, folder: Path, *argv: str) -> LaunchedApp:
    folder.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        app = LaunchedApp(engine, list(argv))
    finally:
        if saved is None:
            del os.environ["GRADIO_TEMP_DIR"]
        else:
            os.environ["GRADIO_TEMP_DIR"] = saved
    app.folder = folder
    return app


@pytest.fixture(scope="module")
def open_app(llama_engine, tmp_path_factory):
    """No password, a 1 MB upload limit, temporary files kept 2 s and swept every second."""
    app = launch(llama_engine, tmp_path_factory.mktemp("open") / "gradio", "--max-upload", str(LIMIT),
                 "--temp-max-age", str(AGE), "--temp-cleanup-every", str(EVERY))
    yield app
    app.close()


@pytest.fixture(scope="module")
def locked_app(llama_engine, tmp_path_factory):
    app = launch(llama_engine, tmp_path_factory.mktemp("locked") / "gradio", "--auth", "ann:pear-5")
    yield app
    app.close()


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def upload(url: str, name: str, content: bytes, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}gradio_api/upload", files={"files": (name, content)}, timeout=60, **kwargs)


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


# -- upload limit --------------------------------------------------------------------------------

def test_an_upload_over_the_limit_is_refused_and_leaves_no_file(open_app):
    before = files_under(open_app.folder)
    response = upload(open_app.url, "history.jsonl", b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.text == f"File size exceeded maximum allowed size of {LIMIT} bytes."
    assert files_under(open_app.folder) == before
    accepted = upload(open_app.url, "history.jsonl", b"y" * LIMIT)
    assert accepted.status_code == 200
    [path] = accepted.json()
    assert Path(path).parent.parent == open_app.folder and Path(path).stat().st_size == LIMIT


def test_an_xlsx_that_inflates_past_the_limit_is_refused_without_exhausting_memory(open_app, tmp_path):
    """Small on disk, so the upload route takes it; the content check (which the XLSX import runs
    before openpyxl) refuses it from its headers, in bounded memory."""
    bomb = tmp_path / "debate.xlsx"
    zip_bomb(bomb, 100 * MB)
    response = upload(open_app.url, "debate.xlsx", bomb.read_bytes())
    assert response.status_code == 200
    [path] = response.json()
    tracemalloc.start()
    with pytest.raises(UploadRefused, match=r"debate.xlsx inflates to 100.0 MB .* limited to 1.0 MB"):
        check_zip(path, open_app.demo.max_file_size)
    assert tracemalloc.get_traced_memory()[1] < 2 * MB
    tracemalloc.stop()


# -- temporary files -----------------------------------------------------------------------------

def test_uploads_are_deleted_with_their_folders_after_the_bound(open_app):
    response = upload(open_app.url, "notes.jsonl", f"{time.time()}\n".encode())
    [path] = map(Path, response.json())
    assert path.exists()
    written = time.monotonic()
    assert wait_until(lambda: not path.exists()), "the upload outlived its bound"
    assert time.monotonic() - written >= AGE - 0.5, "deleted before its bound"
    assert wait_until(lambda: not path.parent.exists()), "its empty folder stayed behind"
    assert open_app.folder.exists(), "the temporary folder itself is kept"


def test_a_debate_export_is_written_inside_gradios_cache_where_the_sweep_reaches(tmp_path):
    """As the workbench's and the ablation map's: the Debate tab's files go to Gradio's cache
    (hosting.export_directory), not the system's temporary folder, which nothing sweeps."""
    from types import SimpleNamespace

    from bonsai_ui.ui.debate_tab import DebateTab
    from test_debate import two_rounds

    files, message = DebateTab.export(SimpleNamespace(cache_dir=str(tmp_path)), two_rounds().to_data())
    assert [Path(f).suffix for f in files] == [".xlsx", ".csv", ".jsonl"] and "2 round(s)" in message
    assert all(Path(f).is_relative_to(tmp_path / "bonsai-exports") for f in files)


# -- password ------------------------------------------------------------------------------------

def test_with_a_password_anonymous_clients_are_refused(locked_app):
    url = locked_app.url
    page = httpx.get(url, timeout=30)
    config = page.text.split("window.gradio_config = ", 1)[1].split(";</script>", 1)[0]
    assert page.status_code == 200 and config.startswith('{"auth_required":true')
    assert '"components":[],"dependencies":[]' in config and '"elem_id":"question"' not in page.text
    assert httpx.get(f"{url}config", timeout=30).status_code == 401
    assert httpx.post(f"{url}gradio_api/call/generate", json={"data": list(GENERATE_ARGS)},
                      timeout=30).status_code == 401
    before = files_under(locked_app.folder)
    assert upload(url, "history.jsonl", b"{}\n").status_code == 401
    assert files_under(locked_app.folder) == before
    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        Client(url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=("ann", "wrong"), verbose=False)


def test_with_a_password_the_right_credentials_reach_the_page_and_generate(locked_app):
    with httpx.Client(base_url=locked_app.url, timeout=30) as browser_like:
        assert browser_like.post("login", data={"username": "ann", "password": "pear-5"}).status_code == 200
        assert browser_like.get("config").status_code == 200
    client = Client(locked_app.url, auth=("ann", "pear-5"), verbose=False)
    reasoning, response, stats, prompt = client.predict(*GENERATE_ARGS, api_name="/generate")
    assert reasoning.strip() and "✅ done" in stats and QUESTION in prompt


def test_without_a_password_everything_is_open_as_before(open_app):
    assert httpx.get(f"{open_app.url}config", timeout=30).status_code == 200
    client = Client(open_app.url, verbose=False)
    _, _, stats, _ = client.predict(*GENERATE_ARGS, api_name="/generate")
    assert "✅ done" in stats


# -- the start-up warning ------------------------------------------------------------------------

@pytest.mark.parametrize("environ,warned", [({}, True), ({"BONSAI_AUTH": "ann:pear-5"}, False)])
def test_app_py_warns_at_start_up_when_open_beyond_this_machine(environ, warned, tmp_path):
    """``python app.py`` with a non-local host (127.0.0.2: another address, still loopback) says on
    stderr that the model is open, unless a password is set; either way it goes on to serve."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "BONSAI_AUTH"} | {"GRADIO_TEMP_DIR": str(tmp_path),
                                                                         **environ}
    log = tmp_path / "stderr.txt"  # a file, not a pipe: the model's loading logs could fill a pipe
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.2", "--port", str(port)],
                                cwd=Path(__file__).resolve().parents[1], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            assert wait_until(lambda: _answers(f"http://127.0.0.2:{port}/"), 120), "the app never served"
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    stderr = log.read_text(errors="replace")
    expected = f"warning: no password is set, so the model is open to anyone who can reach 127.0.0.2:{port}"
    assert (expected in stderr) == warned, stderr[-2000:]
    assert "pear-5" not in stderr, "the password is never printed"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code in (200, 401)
    except httpx.HTTPError:
        return False
