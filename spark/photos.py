"""Uploaded photos (proof of delivery, ID checks): DESIGN rule 9.

A photo is read up to the size cap, opened with Pillow and refused unless it really is a
JPEG, PNG or WebP (or HEIC when pillow-heif is installed), whatever its name or content type
says. It is then re-encoded as a fresh JPEG: the EXIF orientation is applied to the pixels
first, and nothing else the phone wrote (EXIF with the GPS position, XMP, ICC profile,
comments) is carried over. Re-encoding is the strip: metadata is never copied into the new
file, so there is nothing to forget to delete.

The result is a ContentFile with a random name; callers store it through Django's storage
API (an ImageField or default_storage), so S3-compatible storage is a settings change.
"""

import io
import secrets

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image, ImageOps, UnidentifiedImageError

from spark.errors import DomainError

MAX_SIDE_PX = 1600
JPEG_QUALITY = 85
# More pixels than any phone camera's default output (12-48 MP). A file whose header claims
# more is refused before it is decoded: a few KB of PNG can otherwise inflate to gigabytes.
# Pillow's own guard is set to the same number, so it raises DecompressionBombError (at twice
# this) even for callers that open images elsewhere in the process.
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

try:  # HEIC (iPhones) only when the optional plugin is installed
    import pillow_heif  # type: ignore[import-not-found]

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - depends on the environment
    pass

# MPO is how Pillow identifies a JPEG with extra frames (depth maps, as phones write them).
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "HEIF")


def _formats() -> list[str]:
    Image.init()
    return [f for f in ACCEPTED_FORMATS if f in Image.OPEN]


def _refuse(message: str, code: str, field: str) -> DomainError:
    return DomainError(message, code=code, fields={field: [message]})


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB for JPEG; transparent areas become white rather than black."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def clean_photo(uploaded_file, *, max_bytes: int | None = None, field: str = "photo") -> ContentFile:
    """Check, strip and re-encode an uploaded photo; raise DomainError (400) if it is refused.

    `max_bytes` defaults to settings.SPARK_PHOTO_MAX_BYTES (read at call time, so tests and
    deploys can change it). `field` names the request field in the error body.
    """
    limit = settings.SPARK_PHOTO_MAX_BYTES if max_bytes is None else max_bytes
    mb = f"{limit / (1024 * 1024):.0f} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    too_large = _refuse(f"The photo is larger than {mb}; take it again or send a smaller one.",
                        "photo_too_large", field)
    if not uploaded_file:
        raise _refuse("A photo is required.", "photo_required", field)
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > limit:
        raise too_large
    if hasattr(uploaded_file, "seek"):
        uploaded_file.seek(0)
    # Never trust the declared size: read at most one byte past the cap.
    data = uploaded_file.read(limit + 1)
    if len(data) > limit:
        raise too_large
    not_an_image = _refuse("This file is not a photo we can read; send a JPEG, PNG or WebP picture.",
                           "not_an_image", field)
    if not data:
        raise not_an_image

    formats = _formats()
    try:
        with Image.open(io.BytesIO(data), formats=formats) as probe:
            if probe.width * probe.height > MAX_PIXELS:
                raise _refuse("This picture has too many pixels to be a phone photo.", "image_too_big", field)
            probe.verify()  # structural checks (PNG chunk CRCs...) without decoding
        # verify() leaves the image unusable: open it again to decode.
        with Image.open(io.BytesIO(data), formats=formats) as img:
            # JPEG only: let libjpeg decode at 1/2..1/8 scale when the photo is much larger
            # than what we keep. Cuts memory and time on 12+ MP photos; a no-op otherwise.
            img.draft("RGB", (MAX_SIDE_PX, MAX_SIDE_PX))
            upright = ImageOps.exif_transpose(img)  # decodes; a truncated file fails here
            rgb = _to_rgb(upright)
    except DomainError:
        raise
    except Image.DecompressionBombError:
        raise _refuse("This picture has too many pixels to be a phone photo.", "image_too_big", field) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError):
        raise not_an_image from None

    rgb.thumbnail((MAX_SIDE_PX, MAX_SIDE_PX), Image.Resampling.LANCZOS)
    # The JPEG encoder copies some of `info` (the comment) by itself; start from nothing.
    rgb.info = {}
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return ContentFile(out.getvalue(), name=f"{secrets.token_hex(16)}.jpg")
