"""What a launched app exposes, and the settings that close it: upload limit, temporary files,
password. Gradio has the knobs; this module turns the app's settings into them.

* Upload limit: ``max_file_size`` makes Gradio refuse a bigger upload while it streams in
  (HTTP 413, partial file deleted), before any handler or parser runs.
* Temporary files: ``delete_cache=(every, age)`` on gr.Blocks. Gradio 6.31 runs it as a task of
  the server's lifespan: every ``every`` seconds it deletes the files this app put in its cache
  (uploads, and files returned by handlers; Blocks.temp_file_sets) whose ctime is older than
  ``age``, and all of them on a clean shutdown. Two gaps, measured by bench/soak_tempfiles.py:
  it iterates those live sets in a worker thread while uploads add to them, so under steady
  uploads the first "Set changed size during iteration" ends the task for good (in the soak,
  files then grew by three a step); and it deletes files only, while each upload sits in a folder
  of its own named by its hash. ``sweep`` below, run by this app's lifespan on the same
  schedule, deletes from copies of the sets and then removes folders empty for ``age`` seconds;
  delete_cache stays for the shutdown clean-up. Exports are written inside the cache
  (``export_directory``): Gradio then keeps that one copy, tracked and deleted like an upload,
  instead of copying an untracked original.
* Password: ``auth=(user, password)`` puts a login page before the page and HTTP 401 before every
  API route (/config, /gradio_api/upload, /gradio_api/queue/join …); gradio_client logs in with
  ``Client(url, auth=(user, password))``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from ..core.settings import AppSettings

EXPORTS = "bonsai-exports"


def export_directory(cache: str | Path) -> Path:
    """A fresh folder for one export inside ``cache``, the Blocks' GRADIO_CACHE (GRADIO_TEMP_DIR,
    else <tmp>/gradio, read when the Blocks was made), so that delete_cache removes it."""
    return Path(cache) / EXPORTS / uuid.uuid4().hex


def prune_empty_folders(root: Path, age: float) -> int:
    """Remove folders under ``root`` (not root) that are empty and unchanged for ``age`` seconds.

    Only empty folders, so files of other apps sharing the folder are never touched. A folder's
    mtime moves when a file in it is added or deleted, so one emptied by a sweep survives
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


def delete_old_files(blocks, age: float) -> int:
    """Delete the files Gradio tracks for ``blocks`` whose ctime is over ``age`` seconds old, as
    delete_cache does, but from copies of the sets (``list(set)`` copies under the GIL, so an
    upload adding to a set meanwhile cannot break the loop). Returns how many were deleted."""
    keep = set().union(*(getattr(b, "keep_in_cache", set()) for b in blocks.blocks.values()))
    deleted, cutoff = 0, time.time() - age
    for tracked in list(blocks.temp_file_sets):
        gone = set()
        for file in list(tracked):
            if file in keep:
                continue
            try:
                if os.lstat(file).st_ctime < cutoff:
                    os.remove(file)
                    deleted += 1
                    gone.add(file)
            except FileNotFoundError:
                gone.add(file)
            except OSError:  # not ours to delete after all: leave it tracked
                continue
        tracked.difference_update(gone)
    return deleted


def sweep(app, age: float) -> tuple[int, int]:
    """Old tracked files, then empty folders of the app's upload folder and its Blocks' cache (one
    folder unless GRADIO_TEMP_DIR changed in between): (files deleted, folders removed)."""
    blocks = app.get_blocks()
    files = delete_old_files(blocks, age)
    roots = {Path(app.uploaded_file_dir), Path(blocks.GRADIO_CACHE)}
    return files, sum(prune_empty_folders(root, age) for root in roots)


def sweep_lifespan(every: int, age: int):
    """A FastAPI lifespan that sweeps the temporary folder every ``every`` seconds."""

    @asynccontextmanager
    async def lifespan(app):
        async def loop():
            while True:
                await asyncio.sleep(every)
                try:
                    await asyncio.to_thread(sweep, app, age)
                except Exception as error:  # noqa: BLE001 - one bad sweep must not end the next
                    print(f"temporary files: sweep failed ({error!r}); next in {every} s",
                          file=sys.stderr, flush=True)

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
                app_kwargs={"lifespan": sweep_lifespan(settings.temp_cleanup_every,
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
    return (f"warning: no password is set, so the model is open to {where}. "
            "Set one with --auth user:password (or the BONSAI_AUTH variable/secret).")
