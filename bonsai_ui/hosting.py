"""What a launched app exposes, and the settings that close it: upload limit, temporary files,
password. Gradio has the knobs; this module turns the app's settings into them.

* Upload limit: ``max_file_size`` makes Gradio refuse a bigger upload while it streams in
  (HTTP 413, partial file deleted), before any handler or parser runs.
* Temporary files: ``delete_cache=(every, age)`` on gr.Blocks. Gradio 6.31 runs it as a task of
  the server's lifespan: every ``every`` seconds it deletes the files this app put in its cache
  (uploads, and files returned by handlers) whose ctime is older than ``age``, and all of them on
  a clean shutdown. It deletes files only, and each upload sits in a folder of its own named by
  its hash, so the folders stay behind; the lifespan task here removes those once empty for
  ``age`` seconds. Exports are written inside the cache (``export_directory``): Gradio then keeps
  that one copy, tracked and deleted like an upload, instead of copying an untracked original.
* Password: ``auth=(user, password)`` puts a login page before the page and HTTP 401 before every
  API route (/config, /gradio_api/upload, /gradio_api/queue/join …); gradio_client logs in with
  ``Client(url, auth=(user, password))``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from .settings import AppSettings

EXPORTS = "bonsai-exports"


def export_directory(cache: str | Path) -> Path:
    """A fresh folder for one export inside ``cache``, the Blocks' GRADIO_CACHE (GRADIO_TEMP_DIR,
    else <tmp>/gradio, read when the Blocks was made), so that delete_cache removes it."""
    return Path(cache) / EXPORTS / uuid.uuid4().hex


def prune_empty_folders(root: Path, age: float) -> int:
    """Remove folders under ``root`` (not root) that are empty and unchanged for ``age`` seconds.

    Only empty folders, so files of other apps sharing the folder are never touched. A folder's
    mtime moves when a file in it is added or deleted, so one emptied by delete_cache survives
    another ``age`` seconds: an upload of the same content in between finds it and refills it.
    Returns how many were removed.
    """
    removed, cutoff = 0, time.time() - age
    for folder, subfolders, files in os.walk(root, topdown=False):
        path = Path(folder)
        if path == root or files:
            continue
        try:
            if path.stat().st_mtime < cutoff and not any(path.iterdir()):
                path.rmdir()
                removed += 1
        except OSError:  # refilled or removed meanwhile: leave it
            continue
    return removed


def folder_lifespan(every: int, age: int):
    """A FastAPI lifespan that prunes empty folders of the app's upload folder and of its Blocks'
    cache (the same folder unless GRADIO_TEMP_DIR changed in between) every ``every`` seconds."""

    @asynccontextmanager
    async def lifespan(app):
        roots = {Path(app.uploaded_file_dir), Path(app.get_blocks().GRADIO_CACHE)}

        async def loop():
            while True:
                await asyncio.sleep(every)
                for root in roots:
                    await asyncio.to_thread(prune_empty_folders, root, age)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()

    return lifespan


def blocks_kwargs(settings: AppSettings) -> dict:
    return dict(delete_cache=(settings.temp_cleanup_every, settings.temp_max_age))


def launch_kwargs(settings: AppSettings) -> dict:
    return dict(max_file_size=settings.max_upload, auth=settings.credentials,
                auth_message="BONSAI Reasoning Editor: this app is password-protected. / "
                             "パスワードで保護されています。",
                app_kwargs={"lifespan": folder_lifespan(settings.temp_cleanup_every,
                                                        settings.temp_max_age)})


def exposure_warning(settings: AppSettings) -> str:
    """A warning for an app reachable beyond this machine without a password; "" otherwise."""
    if settings.credentials:
        return ""
    if settings.share == "yes":
        where = "anyone with the gradio.live link"
    elif settings.host not in ("127.0.0.1", "localhost", "::1"):
        where = f"anyone who can reach {settings.host}:{settings.port}"
    else:
        return ""
    return (f"warning: no password is set, so the model and its GPU are open to {where}. "
            "Set one with --auth user:password (or the BONSAI_AUTH variable/secret).")
