"""What a visitor sends cannot run commands or exhaust the server: the sweep command's quoting, bounded uploads, and
what a public launch says it exposes."""

from __future__ import annotations

import shlex
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import app
from conditions.images import MAX_FILE_BYTES, load_image
from guidance.errors import ImageInputError
from guidance.sweep import SweepInputs, sweep_command

EVIL = ["a; touch {canary}", "$(touch {canary})", "`touch {canary}`", "x\ntouch {canary}", 'it\'s "quoted" & | > {canary}']


def words_as_the_shell_reads_them(command: str) -> list[str]:
    """The words bash gives the program of `command`: the program replaced by printf, which prints them NUL-separated."""
    program, _, rest = command.partition(" ")
    assert program == "python"
    done = subprocess.run(["bash", "-c", f"printf '%s\\0' {rest}"], capture_output=True, text=True, check=True)
    return ["python", *done.stdout.split("\0")[:-1]]


@pytest.mark.parametrize("evil", EVIL)
def test_the_sweep_command_quotes_file_names_and_prompts(tmp_path: Path, evil: str) -> None:
    canary = tmp_path / "ran"
    text = evil.format(canary=canary)
    inputs = SweepInputs(
        "control",
        world="sd/folder",
        condition=text,
        control_map=f"/uploads/{text}.png",
        extra="face",
        reference=f"/uploads/{text}-face.png",
    )
    line = sweep_command(inputs, "scale", "0.1,0.2,0.3", ("figd",), range(0, 4), f"runs/{text}")
    words = words_as_the_shell_reads_them(line)
    assert not canary.exists()  # nothing ran
    assert words == shlex.split(line)
    assert words[words.index("--condition") + 1] == text and words[words.index("--control-map") + 1] == f"/uploads/{text}.png"
    assert (
        words[words.index("--reference") + 1] == f"/uploads/{text}-face.png" and words[words.index("--out") + 1] == f"runs/{text}"
    )


def test_the_apps_sweep_command_quotes_what_a_visitor_typed_and_uploaded(app_url: str, tmp_path: Path) -> None:  # noqa: F811
    canary = tmp_path / "ran"
    prompt = f"$(touch {canary}); `touch {canary}`\ntouch {canary}"
    upload = tmp_path / f"face $(touch {canary.name}) `x`; y.png"
    upload.write_bytes((app.EXAMPLES / "face_blond.png").read_bytes())
    command = Client(app_url, verbose=False).predict(
        condition=prompt,
        reference=handle_file(str(upload)),
        sweep_setting="scale",
        sweep_values="0.05, 0.1, 0.2",
        api_name="/face_sweep_command",
    )
    words = words_as_the_shell_reads_them(command)
    assert not canary.exists()
    assert words[words.index("--condition") + 1] == prompt
    assert Path(words[words.index("--reference") + 1]).is_file()  # the upload, as one word


def png_declaring(width: int, height: int) -> bytes:
    """A small, valid PNG header declaring width x height (8-bit RGB), with a few bytes of image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path, app_url: str) -> None:  # noqa: F811
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(50_000, 50_000))
    assert bomb.stat().st_size < 200
    started = time.monotonic()
    with pytest.raises(ImageInputError, match="declares more than .* megapixels"):
        load_image(bomb)
    with pytest.raises(ImageInputError, match="megapixels"):
        load_image(png_declaring(8000, 6000))  # under PIL's own bound, over ours: refused before decoding too
    assert time.monotonic() - started < 1  # 2.5 gigapixels were never decoded
    with pytest.raises(AppError, match="megapixels"):
        Client(app_url, verbose=False).predict(reference=handle_file(str(bomb)), steps=2, api_name="/style")


def test_an_upload_is_bounded_by_bytes(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png_declaring(64, 64) + b"\x00" * MAX_FILE_BYTES)
    with pytest.raises(ImageInputError, match=f"larger than {MAX_FILE_BYTES // 2**20} MB"):
        load_image(big)


def test_a_public_launch_prints_what_it_exposes(monkeypatch, capsys) -> None:
    launched = {}

    class Demo:
        fns = {
            0: type("Fn", (), {"api_name": "face", "api_visibility": "public"})(),
            1: type("Fn", (), {"api_name": "switch", "api_visibility": "private"})(),
        }

        def launch(self, **options):
            launched.update(options)

    monkeypatch.setattr(app, "build_app", lambda *args: Demo())
    app.main(["--host", "127.0.0.1", "--model", "none"])
    assert capsys.readouterr().out == ""  # local only: nothing to say
    app.main(["--host", "0.0.0.0", "--model", "none", "--queue-size", "3"])
    out = capsys.readouterr().out
    assert "Exposed to anyone who can reach every address of this machine, port 7860" in out
    assert "/face" in out and "/switch" not in out and "at most 3 waiting" in out
    app.main(["--share", "--model", "none"])
    assert "gradio.live" in capsys.readouterr().out and launched["share"] is True
    assert launched["max_file_size"] == MAX_FILE_BYTES
