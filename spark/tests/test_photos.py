"""spark.photos.clean_photo: only real images, size- and pixel-capped, stripped of every bit
of metadata (EXIF with GPS, XMP, comments), upright, at most 1600 px, stored as JPEG."""

import io

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image

from spark.errors import DomainError
from spark.photos import clean_photo


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def gps_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (36.0, 9.0, 36.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (86.0, 46.0, 48.0)
    return exif


def image_bytes(size=(200, 100), fmt="JPEG", mode="RGB", color="red", **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt, **save)
    return buf.getvalue()


def upload(data: bytes, name="photo.jpg", content_type="image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def stored(content) -> tuple[bytes, Image.Image]:
    """Save through the storage API like the ImageFields do and read it back."""
    name = default_storage.save(f"proof/{content.name}", content)
    with default_storage.open(name) as f:
        data = f.read()
    return data, Image.open(io.BytesIO(data))


def test_jpeg_with_gps_is_stored_without_any_metadata(media_root):
    # given a phone photo carrying EXIF (maker, GPS position), XMP and a comment
    original = image_bytes(exif=gps_exif(), xmp=b"<x:xmpmeta>secret-xmp</x:xmpmeta>", comment=b"secret comment")
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the test input has GPS
    # when it is cleaned and stored
    content = clean_photo(upload(original))
    data, img = stored(content)
    # then the stored file is a JPEG with no EXIF, no GPS, no XMP, no comment
    assert (media_root / "proof" / content.name).exists()
    assert img.format == "JPEG"
    assert len(img.getexif()) == 0
    assert not img.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert "exif" not in img.info and "xmp" not in img.info and "comment" not in img.info
    for marker in (b"Exif\x00\x00", b"PhoneMaker", b"secret-xmp", b"secret comment", b"http://ns.adobe.com/xap"):
        assert marker not in data


def test_orientation_is_applied_to_the_pixels():
    # given a landscape sensor image, left half red, right half blue, tagged "rotate 90 CW"
    src = Image.new("RGB", (200, 100), "red")
    src.paste((0, 0, 255), (100, 0, 200, 100))
    buf = io.BytesIO()
    src.save(buf, "JPEG", exif=gps_exif(orientation=6), quality=95)
    # when cleaned
    _, img = stored(clean_photo(upload(buf.getvalue())))
    # then it is upright (portrait): the left half is now on top, and no orientation tag is left
    assert img.size == (100, 200)
    top, bottom = img.getpixel((50, 40)), img.getpixel((50, 160))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60
    assert ExifTags.Base.Orientation not in img.getexif()


def test_large_photo_is_downscaled_to_1600_on_the_long_side(settings):
    _, img = stored(clean_photo(upload(image_bytes(size=(4000, 3000)))))
    assert settings.SPARK_PHOTO_MAX_SIDE_PX == 1600 and img.size == (1600, 1200)


def test_png_is_accepted_and_re_encoded_as_jpeg_with_transparency_on_white():
    # given an RGBA PNG (transparent) with a text chunk
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("Comment", "secret png text")
    data = image_bytes(size=(50, 40), fmt="PNG", mode="RGBA", color=(0, 0, 0, 0), pnginfo=meta)
    content = clean_photo(upload(data, name="door.png", content_type="image/png"))
    raw, img = stored(content)
    assert content.name.endswith(".jpg")
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (50, 40)
    assert min(img.getpixel((10, 10))) > 240  # white, not black
    assert b"secret png text" not in raw


def test_webp_is_accepted():
    _, img = stored(clean_photo(upload(image_bytes(fmt="WEBP"), name="door.webp", content_type="image/webp")))
    assert img.format == "JPEG"


def test_each_photo_gets_a_random_name():
    a = clean_photo(upload(image_bytes(), name="IMG_0001.jpg"))
    b = clean_photo(upload(image_bytes(), name="IMG_0001.jpg"))
    assert a.name != b.name and "IMG" not in a.name


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (PDF, "photo.jpg"),
        (b"this is just text, renamed\n" * 20, "photo.jpg"),
        (SVG, "photo.svg"),
        (image_bytes(fmt="GIF"), "photo.gif"),
        (image_bytes(size=(400, 300))[:600], "truncated.jpg"),
        (b"", "empty.jpg"),
    ],
    ids=["pdf", "text-as-jpg", "svg", "gif", "truncated-jpeg", "empty"],
)
def test_anything_but_a_readable_photo_is_refused(data, name):
    with pytest.raises(DomainError) as err:
        clean_photo(upload(data, name=name))
    assert err.value.status_code == 400
    assert err.value.code in ("not_an_image", "photo_required")
    assert err.value.fields["photo"]


def test_error_names_the_request_field():
    with pytest.raises(DomainError) as err:
        clean_photo(upload(PDF), field="id_photo")
    assert err.value.code == "not_an_image" and list(err.value.fields) == ["id_photo"]


def test_size_cap_from_settings(settings):
    data = image_bytes(size=(300, 300))
    settings.SPARK_PHOTO_MAX_BYTES = len(data) - 1
    with pytest.raises(DomainError) as err:
        clean_photo(upload(data))
    assert err.value.code == "photo_too_large" and err.value.status_code == 400
    settings.SPARK_PHOTO_MAX_BYTES = len(data)
    assert clean_photo(upload(data)).size > 0


def test_size_cap_does_not_trust_the_declared_size():
    class Lying(io.BytesIO):
        size = 10  # says small, is not

    data = image_bytes(size=(300, 300))
    with pytest.raises(DomainError) as err:
        clean_photo(Lying(data), max_bytes=len(data) // 2)
    assert err.value.code == "photo_too_large"


def test_decompression_bomb_is_refused_before_decoding():
    # 12000 x 12000 pixels in a few KB: beyond Pillow's own limit (DecompressionBombError)
    bomb = image_bytes(size=(12_000, 12_000), fmt="PNG", mode="1", color=0)
    assert len(bomb) < 100_000
    with pytest.raises(DomainError) as err:
        clean_photo(upload(bomb, name="bomb.png", content_type="image/png"))
    assert err.value.code == "image_too_big"


def test_too_many_pixels_below_pillows_limit_is_refused_too():
    # 8000 x 8000 = 64 MP: Pillow only warns; our own check refuses it
    big = image_bytes(size=(8000, 8000), fmt="PNG", mode="1", color=0)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(DomainError) as err:
        clean_photo(upload(big, name="big.png", content_type="image/png"))
    assert err.value.code == "image_too_big"
