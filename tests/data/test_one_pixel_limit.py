"""An image bomb's message names one pixel limit (ours), never PIL's own threshold beside it."""

from __future__ import annotations

import re
import struct
import zlib

import pytest

from mobilenetv2.data.images import MAX_IMAGE_PIXELS, BadImageError, load_image


def png_claiming(path, side: int):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [10_000, 30_000])  # PIL warns above the limit, raises above twice it
def test_the_bomb_message_names_one_limit(tmp_path, side):
    with pytest.raises(BadImageError) as info:
        load_image(png_claiming(tmp_path / "bomb.png", side))
    numbers = {int(n.replace(",", "")) for n in re.findall(r"\d[\d,]{6,}", str(info.value))}
    assert numbers == {side * side, MAX_IMAGE_PIXELS}, str(info.value)
    assert str(info.value).count("limit") == 1
