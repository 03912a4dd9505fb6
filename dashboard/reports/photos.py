"""Photos attached to reports: verified to be real images, re-encoded, stripped of metadata.

Whatever a phone sends (JPEG with GPS and camera data in EXIF, PNG, WebP)
becomes a plain JPEG of at most ``MAX_SIDE`` pixels per side, rotated the way
it was taken, with no metadata at all: a reporter's location and device never
travel further than the pixels. Anything that is not an image Pillow can
fully decode (a renamed PDF, an SVG with scripts, a truncated file, a
decompression bomb) is refused with a reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from firmware_bridge.errors import SiagaError

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP"}
MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_SIDE = 1600
QUALITY = 82


class PhotoRefused(SiagaError, ValueError):
    """Not a photo we accept; ``reason`` is the counter name and the message key."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CleanPhoto:
    data: bytes
    width: int
    height: int
    sha256: str


def clean_photo(raw: bytes) -> CleanPhoto:
    """Verify and re-encode an uploaded photo; raises PhotoRefused."""
    if not raw:
        raise PhotoRefused("the file is empty", "photo_empty")
    if len(raw) > MAX_BYTES:
        raise PhotoRefused(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB", "photo_too_large")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(raw)) as probe:
                kind = probe.format
                width, height = probe.size
                if kind not in ALLOWED_FORMATS:
                    raise PhotoRefused(f"{kind} files are not accepted (JPEG, PNG or WebP)", "photo_format")
                if width * height > MAX_PIXELS:
                    raise PhotoRefused("the image has too many pixels", "photo_too_many_pixels")
                probe.verify()  # structure and checksums, without decoding
            with Image.open(io.BytesIO(raw)) as image:
                image.load()  # decode every pixel: a truncated file fails here
                image = ImageOps.exif_transpose(image)  # apply the camera's rotation before EXIF goes
                image = image.convert("RGB")
        except PhotoRefused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRefused("the image has too many pixels", "photo_too_many_pixels") from None
        except UnidentifiedImageError:
            raise PhotoRefused("the file is not an image we can read", "photo_not_image") from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise PhotoRefused("the image is damaged or incomplete", "photo_damaged") from None
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    clean = Image.new("RGB", image.size)
    clean.paste(image)  # pixels only: no EXIF, ICC, XMP or comments come along
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=QUALITY, optimize=True)
    data = out.getvalue()
    return CleanPhoto(data, clean.width, clean.height, hashlib.sha256(data).hexdigest())


def write_photos(photos_dir: Path, folder: Path, photos: list[bytes]) -> list[Path]:
    """Write photos as ``photos_dir/folder/<n>.jpg``, on disk (files and folder entries) when this returns."""
    if not photos:
        return []
    target = photos_dir / folder
    created = [parent for parent in (target, *target.parents) if not parent.exists()]
    target.mkdir(mode=0o750, parents=True, exist_ok=True)
    paths = []
    try:
        for position, data in enumerate(photos, start=1):
            path = target / f"{position}.jpg"
            _write_file(path, data)
            paths.append(path)
        for folder_path in [target, *(parent.parent for parent in created)]:
            _fsync_folder(folder_path)  # new names are durable only once their folder is synced
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return paths


def _write_file(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def _fsync_folder(path: Path) -> None:
    folder = os.open(path, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def writable_folder(path: Path) -> None:
    """Create ``path`` (private to the service) if needed and prove a file can be written there."""
    path.mkdir(mode=0o750, parents=True, exist_ok=True)
    probe = path / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    finally:
        probe.unlink(missing_ok=True)
