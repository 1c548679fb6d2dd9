"""Files the tests write: PNGs PIL cannot write (byte by byte, PNG spec: https://www.w3.org/TR/png/), JPEG bytes,
and webdataset shards."""
import io
import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(pixels: np.ndarray, width: int = 0, height: int = 0) -> bytes:
    """A PNG of uint8 or uint16 pixels (H, W) gray or (H, W, 3) RGB; PIL can write 16-bit gray but not 16-bit RGB.

    width, height: if given, the size the header declares instead (a cheap "decompression bomb": PIL reads the
    header, not the pixels, when it decides a file is too large).
    """
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    H, W, C = pixels.shape
    depth, colour_type = 8 * pixels.dtype.itemsize, {1: 0, 3: 2}[C]  # PNG colour types: 0 gray, 2 RGB
    samples = pixels.astype(">u2" if depth == 16 else "u1").reshape(H, W * C)  # PNG stores samples big-endian
    raw = b"".join(b"\x00" + row.tobytes() for row in samples)  # each row starts with its filter type, 0 = none
    header = struct.pack(">IIBBBBB", width or W, height or H, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def jpeg_bytes(pixels: np.ndarray, quality: int = 90, **save) -> bytes:
    """uint8 (H, W, 3) or (H, W) pixels as JPEG bytes (save: PIL's options, e.g. exif=...)."""
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality, **save)
    return out.getvalue()


def write_shard(path, samples) -> None:
    """A webdataset shard as img2dataset writes it: samples = [(key, {"jpg": bytes, "txt": bytes, ...}), ...],
    each file named KEY.EXT, a sample's files next to each other in the tar."""
    import tarfile
    with tarfile.open(path, "w") as tar:
        for key, files in samples:
            for ext, payload in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
