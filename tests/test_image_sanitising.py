"""DESIGN rule 9, one sanitiser (spark.photos) with one set of limits (settings) for every
upload that is a picture: proof-of-delivery and ID photos, the driver's profile photo, and
the license / insurance documents of onboarding. The same hostile file is refused with the same
code, or cleaned the same way, whichever path it comes through."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image

from drivers import onboarding_checks as onboarding
from spark import photos
from spark.errors import DomainError

# Every path an uploaded picture takes, as its caller calls it.
PATHS = {
    "delivery photo": lambda f: photos.clean_photo(f, field="file"),
    "profile photo": lambda f: onboarding.clean_profile_photo(f, field="file"),
    "document": lambda f: onboarding.clean_document(f, field="file", what="license"),
}


def image_bytes(size=(200, 100), fmt="JPEG", mode="RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 0 if mode == "1" else "red").save(buf, fmt, **save)
    return buf.getvalue()


def with_gps() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (36.0, 9.0, 36.5)
    return image_bytes(size=(3000, 2000), exif=exif, comment=b"secret comment")


def upload(data: bytes, name="file.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def outcome(path: str, data: bytes):
    try:
        content = PATHS[path](upload(data))
    except DomainError as exc:
        assert exc.status_code == 400 and list(exc.fields) == ["file"]
        return ("refused", exc.code)
    img = Image.open(io.BytesIO(content.read()))
    return ("cleaned", img.format, img.size, dict(img.getexif()), img.info.get("comment"))


HOSTILE = {
    # one byte over the cap: phones' photos fit, a raw scan does not
    "too big": lambda s: b"\xff\xd8" + b"\0" * s.SPARK_PHOTO_MAX_BYTES,
    # 9000 x 6000 = 54 MP in a few KB of PNG: refused before it is decoded
    "too many pixels": lambda s: image_bytes(size=(9000, 6000), fmt="PNG", mode="1"),
    # 7000 x 6500 = 45.5 MP: under the one pixel limit on every path
    "many pixels but allowed": lambda s: image_bytes(size=(7000, 6500), fmt="PNG", mode="1"),
    "gif": lambda s: image_bytes(fmt="GIF", mode="P"),
    "webp": lambda s: image_bytes(fmt="WEBP"),
    "svg": lambda s: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "truncated jpeg": lambda s: image_bytes(size=(400, 300))[:600],
    "text": lambda s: b"just text\n" * 50,
    "gps exif": lambda s: with_gps(),
    "png with alpha": lambda s: image_bytes(fmt="PNG", mode="RGBA"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_every_path_refuses_or_cleans_the_same_file_the_same_way(settings, name):
    data = HOSTILE[name](settings)
    results = {path: outcome(path, data) for path in PATHS}
    assert len(set(map(repr, results.values()))) == 1, results


def test_gps_is_stripped_and_the_picture_kept_upright_and_bounded_on_every_path(settings):
    for path in PATHS:
        kind, fmt, size, exif, comment = outcome(path, with_gps())
        assert (kind, fmt, exif, comment) == ("cleaned", "JPEG", {}, None)
        assert max(size) == settings.SPARK_PHOTO_MAX_SIDE_PX


def test_the_limits_are_settings_read_at_call_time(settings):
    data = image_bytes(size=(300, 300))
    settings.SPARK_PHOTO_MAX_BYTES = len(data) - 1
    for path in PATHS:
        assert outcome(path, data) == ("refused", "photo_too_large")
    settings.SPARK_PHOTO_MAX_BYTES = len(data)
    settings.SPARK_PHOTO_MAX_PIXELS = 300 * 300 - 1
    for path in PATHS:
        assert outcome(path, data) == ("refused", "image_too_big")


def test_a_document_may_still_be_a_pdf_but_a_photo_may_not():
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    assert PATHS["document"](upload(pdf, "card.pdf")).name.endswith(".pdf")
    assert outcome("delivery photo", pdf) == outcome("profile photo", pdf) == ("refused", "not_an_image")
