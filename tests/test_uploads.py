"""Upload size checks (bonsai_ui/hosting/uploads.py) and the hosting settings, on real files and zips."""

from __future__ import annotations

import struct
import tracemalloc
import zipfile

import pytest

from bonsai_ui.hosting.public import exposure_warning
from bonsai_ui.core.settings import AppSettings, parse_app_settings
from bonsai_ui.hosting.uploads import (UploadRefused, check_upload, check_zip, open_zip_bounded,
                               parse_size, read_upload)

MB = 1000**2


@pytest.mark.parametrize("text,size", [("16MB", 16 * MB), ("512 kB", 512_000), ("1MiB", 2**20),
                                       ("1000", 1000), ("1.5GB", 1_500_000_000), ("2b", 2)])
def test_sizes_are_read_with_their_unit(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "12 parsecs", "0", "-5MB"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def zip_bomb(path, inflated: int, members: int = 1) -> None:
    """An XLSX-shaped zip whose sheets inflate to ``inflated`` bytes in all, written in pieces so
    that building it does not hold the content in memory either."""
    piece = b"0" * MB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        for m in range(members):
            with z.open(f"xl/worksheets/sheet{m + 1}.xml", "w", force_zip64=True) as out:
                for _ in range(inflated // members // len(piece)):
                    out.write(piece)


def lying_zip(path, real: int, declared: int) -> None:
    """A zip whose one member holds ``real`` bytes but whose headers declare ``declared``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"1" * real)
    data = bytearray(path.read_bytes())
    local, central = 0, data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)  # local header: uncompressed size
    struct.pack_into("<I", data, central + 24, declared)  # central directory: the same
    path.write_bytes(bytes(data))


def test_a_zip_bomb_is_refused_by_its_declared_size_without_inflating(tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    zip_bomb(bomb, 200 * MB)
    assert bomb.stat().st_size < 1 * MB, "small on disk: passes the upload limit"
    tracemalloc.start()
    with pytest.raises(UploadRefused, match=r"bomb.xlsx inflates to 200.0 MB .* limited to 16.0 MB"):
        check_zip(bomb, 16 * MB)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * MB


def test_a_zip_that_lies_about_its_size_is_refused_while_inflating(tmp_path):
    liar = tmp_path / "liar.xlsx"
    lying_zip(liar, real=3 * MB, declared=1000)
    with pytest.raises(UploadRefused, match="liar.xlsx is not a readable zip/XLSX file .*CRC"):
        check_zip(liar, 1 * MB)


def test_inflated_bytes_are_counted_across_members_in_pieces(tmp_path):
    """Declared sizes within the limit are still inflated and counted; memory stays at a piece."""
    archive = tmp_path / "sheets.xlsx"
    zip_bomb(archive, 40 * MB, members=4)
    tracemalloc.start()
    assert check_zip(archive, 41 * MB) == 40 * MB + len("<Types/>")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * MB
    with open_zip_bounded(archive, 41 * MB) as z:
        assert len(z.namelist()) == 5


@pytest.mark.parametrize("content,message", [
    (b"not a zip at all", "not a readable zip/XLSX file"),
    (b"x" * 2000, "is 2.0 kB \\(2,000 bytes\\); uploads are limited to 1.0 kB"),
])
def test_files_that_are_not_small_zips_are_refused(tmp_path, content, message):
    path = tmp_path / "upload.xlsx"
    path.write_bytes(content)
    with pytest.raises(UploadRefused, match=message):
        check_zip(path, 1000)


def test_plain_uploads_are_checked_before_reading(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"{}\n" * 100)
    assert read_upload(path, 300) == b"{}\n" * 100
    with pytest.raises(UploadRefused, match="history.jsonl is 300 bytes; uploads are limited to 299"):
        read_upload(path, 299)
    with pytest.raises(UploadRefused, match="missing.jsonl could not be read"):
        check_upload(tmp_path / "missing.jsonl", 300)


# -- settings ------------------------------------------------------------------------------------

def test_hosting_settings_from_flags_and_environment():
    s = parse_app_settings([], environ={})
    assert (s.max_upload, s.temp_max_age, s.temp_cleanup_every, s.credentials) == (16 * MB, 3600, 300, None)
    env = {"BONSAI_MAX_UPLOAD": "2MB", "BONSAI_TEMP_MAX_AGE": "60", "BONSAI_AUTH": "ann:s3cr:et"}
    s = parse_app_settings([], environ=env)
    assert (s.max_upload, s.temp_max_age, s.credentials) == (2 * MB, 60, ("ann", "s3cr:et"))
    s = parse_app_settings(["--max-upload", "1kB", "--auth", "bob:pw"], environ=env)
    assert (s.max_upload, s.credentials) == (1000, ("bob", "pw"))
    assert "s3cr" not in repr(s) and "pw" not in repr(parse_app_settings(["--auth", "bob:pw"], {}))


@pytest.mark.parametrize("argv,environ,message", [
    ([], {"BONSAI_MAX_UPLOAD": "lots"}, "BONSAI_MAX_UPLOAD: 'lots' is not a size"),
    (["--max-upload", "0"], {}, "--max-upload: '0' is not a positive size"),
    (["--temp-max-age", "0"], {}, "at least 1"),
    ([], {"BONSAI_TEMP_CLEANUP_EVERY": "soon"}, "BONSAI_TEMP_CLEANUP_EVERY"),
    (["--auth", "nopassword"], {}, "user:password"),
    ([], {"BONSAI_AUTH": ":pw"}, "BONSAI_AUTH: write the password as user:password"),
])
def test_bad_hosting_settings_are_refused_with_the_setting_named(capsys, argv, environ, message):
    with pytest.raises(SystemExit):
        parse_app_settings(argv, environ=environ)
    assert message in capsys.readouterr().err


def test_the_password_is_never_printed_in_help(capsys):
    with pytest.raises(SystemExit):
        parse_app_settings(["--help"], environ={"BONSAI_AUTH": "ann:hunter2"})
    out = capsys.readouterr().out
    assert "--auth" in out and "BONSAI_AUTH" in out and "hunter2" not in out


@pytest.mark.parametrize("settings,warned", [
    (AppSettings(), ""),
    (AppSettings(share="yes"), "open to anyone with the gradio.live link"),
    (AppSettings(host="0.0.0.0"), "open to anyone who can reach 0.0.0.0:7860"),
    (AppSettings(share="yes", auth="ann:pw"), ""),
    (AppSettings(host="0.0.0.0", auth="ann:pw"), ""),
])
def test_an_open_app_beyond_this_machine_is_warned_about(settings, warned):
    warning = exposure_warning(settings)
    assert (warned in warning and "--auth user:password" in warning) if warned else warning == ""
