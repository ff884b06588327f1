"""Uploaded pictures: DESIGN rule 9, the one sanitiser. Every upload that is a picture comes
through here: proof-of-delivery and ID photos, the driver's profile photo, and the license and
insurance documents of onboarding (a document may also be a PDF; the caller checks that first).
One set of limits, from settings and read at call time: SPARK_PHOTO_MAX_BYTES (the file),
SPARK_PHOTO_MAX_PIXELS (width x height, checked before decoding), SPARK_PHOTO_MAX_SIDE_PX (what
is kept).

A picture is read up to the size cap, opened with Pillow and refused unless it really is a
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
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from spark.errors import DomainError

JPEG_QUALITY = 85
# A file whose header claims more than SPARK_PHOTO_MAX_PIXELS is refused before it is decoded:
# a few KB of PNG can otherwise inflate to gigabytes. Pillow's own guard is set to the same
# number, so it raises DecompressionBombError (at twice this) even for code that opens
# images elsewhere in the process.
Image.MAX_IMAGE_PIXELS = settings.SPARK_PHOTO_MAX_PIXELS

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


def _size_text(limit: int) -> str:
    return f"{limit / (1024 * 1024):.0f} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def read_upload(uploaded_file, *, field: str = "photo", max_bytes: int | None = None) -> bytes:
    """The bytes of an upload, at most SPARK_PHOTO_MAX_BYTES (or `max_bytes`); DomainError
    (400) when it is missing or larger. Never trusts the declared size."""
    limit = settings.SPARK_PHOTO_MAX_BYTES if max_bytes is None else max_bytes
    too_large = _refuse(
        _("That file is too large: the limit is %(size)s. Take the photo again or send a smaller one.")
        % {"size": _size_text(limit)},
        "photo_too_large",
        field,
    )
    if not uploaded_file:
        raise _refuse(_("A photo is required."), "photo_required", field)
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > limit:
        raise too_large
    if hasattr(uploaded_file, "seek"):
        uploaded_file.seek(0)
    # Read at most one byte past the cap.
    data = uploaded_file.read(limit + 1)
    if len(data) > limit:
        raise too_large
    return data


def clean_image(data: bytes, *, field: str = "photo") -> ContentFile:
    """Check, strip and re-encode the bytes of a picture as a JPEG at most
    SPARK_PHOTO_MAX_SIDE_PX on its long side; DomainError (400) if it is refused."""
    max_pixels, max_side = settings.SPARK_PHOTO_MAX_PIXELS, settings.SPARK_PHOTO_MAX_SIDE_PX
    not_an_image = _refuse(
        _("This file is not a photo we can read; send a JPEG, PNG or WebP picture."), "not_an_image", field
    )
    too_many_pixels = _refuse(
        _("This picture has more than %(mp)d megapixels; take it again at a lower resolution.")
        % {"mp": max_pixels // 1_000_000},
        "image_too_big",
        field,
    )
    if not data:
        raise not_an_image

    formats = _formats()
    try:
        with Image.open(io.BytesIO(data), formats=formats) as probe:
            if probe.width * probe.height > max_pixels:
                raise too_many_pixels
            probe.verify()  # structural checks (PNG chunk CRCs...) without decoding
        # verify() leaves the image unusable: open it again to decode.
        with Image.open(io.BytesIO(data), formats=formats) as img:
            # JPEG only: let libjpeg decode at 1/2..1/8 scale when the photo is much larger
            # than what we keep. Cuts memory and time on 12+ MP photos; a no-op otherwise.
            img.draft("RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(img)  # decodes; a truncated file fails here
            rgb = _to_rgb(upright)
    except DomainError:
        raise
    except Image.DecompressionBombError:
        raise too_many_pixels from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError):
        raise not_an_image from None

    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    # The JPEG encoder copies some of `info` (the comment) by itself; start from nothing.
    rgb.info = {}
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return ContentFile(out.getvalue(), name=f"{secrets.token_hex(16)}.jpg")


def clean_photo(uploaded_file, *, max_bytes: int | None = None, field: str = "photo") -> ContentFile:
    """Read, check, strip and re-encode an uploaded photo; raise DomainError (400) if it is
    refused. `field` names the request field in the error body."""
    return clean_image(read_upload(uploaded_file, field=field, max_bytes=max_bytes), field=field)
