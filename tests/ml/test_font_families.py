"""The handwriting font manifest, its data card (ml/DATA.md), the installer's checks and the fonts installed."""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont
from fontTools.ttLib.tables import _h_e_a_d
from PIL import Image, ImageDraw, ImageFont

from ml import font_families
from ml.font_families import (
    CHARACTERS,
    FAMILIES,
    INSTALL_HINT,
    FontFamily,
    FontsMissingError,
    font_dir,
    installed_fonts,
    missing_glyphs,
)
from ml.font_install import install_from, markdown_table, staging_name

REPO = Path(__file__).resolve().parents[2]
DATA_CARD = REPO / "ml" / "DATA.md"


def require_fonts(split=None, style=None):
    """The installed fonts; a skip naming the fix when they are missing, a failure under REQUIRE_SERVICES=1."""
    try:
        return installed_fonts(split=split, style=style)
    except FontsMissingError as error:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{error}; REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def fonts():
    return require_fonts()


@pytest.fixture
def fake_cache(tmp_path, monkeypatch):
    """A font cache with an (empty) file for every family: enough for the lookups, no fetching."""
    monkeypatch.setenv("EMNIST_FONT_DIR", str(tmp_path))
    for family in FAMILIES:
        (tmp_path / family.file).touch()
    return tmp_path


def build_font(path: Path, chars: str = CHARACTERS, blank: str = "", flavor: str | None = None) -> Path:
    """A tiny TrueType font with a square for each of ``chars``; those in ``blank`` mapped to an empty glyph."""
    names = [".notdef"] + [f"u{ord(c):04X}" for c in chars]
    glyphs = {}
    for name in names:
        pen = TTGlyphPen(None)
        if name == ".notdef" or chr(int(name[1:], 16)) not in blank:
            pen.moveTo((100, 0))
            pen.lineTo((100, 700))
            pen.lineTo((500, 700))
            pen.lineTo((500, 0))
            pen.closePath()
        glyphs[name] = pen.glyph()
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({ord(c): f"u{ord(c):04X}" for c in chars})
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({name: (600, 100) for name in names})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Squares", "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    builder.font.flavor = flavor
    builder.save(path)
    return path


def npm_family(name="Squares", licence="OFL-1.1") -> FontFamily:
    return font_families._npm(name, "1.0.0", licence, "print")


def stage_npm_package(staging: Path, family: FontFamily, licence="OFL-1.1", **font_options) -> None:
    """What the installer unpacks from ``npm pack``: package.json, LICENSE and the latin WOFF."""
    package = staging / staging_name(family) / "package"
    (package / "files").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": family.package.rsplit("@", 1)[0], "license": licence}))
    (package / "LICENSE").write_text("SIL Open Font License 1.1")
    build_font(staging / staging_name(family) / family.origin, flavor="woff", **font_options)


def data_card_rows() -> list[tuple[str, ...]]:
    text = DATA_CARD.read_text()
    table = text.split("## Families", 1)[1]
    rows = [tuple(cell.strip().strip("`") for cell in line.strip("|").split("|")) for line in table.splitlines()]
    return [row for row in rows if len(row) == 5 and row[0] not in ("Family", "---")]


# The manifest


def test_the_manifest_has_enough_families_of_each_style_and_split():
    by = Counter((f.split, f.style) for f in FAMILIES)
    assert len(FAMILIES) >= 40
    assert by["train", "script"] + by["heldout", "script"] >= 10
    assert by["heldout", "print"] + by["heldout", "script"] >= 10
    assert by["heldout", "script"] >= 4
    # Each held-out style is also trained on, with more families than are held out.
    assert by["train", "script"] > by["heldout", "script"] and by["train", "print"] > by["heldout", "print"]


def test_every_family_has_a_unique_name_and_file_and_valid_fields():
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)
    assert len({f.file for f in FAMILIES}) == len(FAMILIES)
    for family in FAMILIES:
        assert family.style in ("print", "script") and family.split in ("train", "heldout"), family
        assert family.licence, family
        assert Path(family.file).suffix in (".ttf", ".otf") and "/" not in family.file, family


def test_every_npm_package_is_pinned_to_an_exact_version():
    npm = [f for f in FAMILIES if f.registry == "npm"]
    assert npm
    for family in npm:
        assert re.fullmatch(r"@fontsource/[a-z0-9-]+@\d+\.\d+\.\d+", family.package), family.source


def test_no_family_is_a_hershey_font():
    for family in FAMILIES:
        for text in (family.name, family.source, family.file, family.origin):
            assert "hershey" not in text.lower(), family


def test_the_families_can_be_selected_by_split_and_style():
    heldout_script = font_families.select_families(split="heldout", style="script")
    assert heldout_script and all(f.split == "heldout" and f.style == "script" for f in heldout_script)
    assert len(font_families.select_families()) == len(FAMILIES)
    with pytest.raises(ValueError, match="split must be one of"):
        font_families.select_families(split="test")
    with pytest.raises(ValueError, match="style must be one of"):
        font_families.select_families(style="cursive")


# The data card


def test_the_data_card_lists_every_family_as_the_manifest_does():
    rows = data_card_rows()
    manifest = [(f.name, f.source, f.licence, f.style, f.split) for f in FAMILIES]
    assert len(rows) == len(set(rows)), "a family is listed twice in ml/DATA.md"
    assert sorted(rows) == sorted(manifest)
    assert markdown_table() in DATA_CARD.read_text(), "ml/DATA.md's table is not `python -m ml.font_install table`"


def test_the_data_card_counts_match_the_manifest():
    counts = re.search(r"## Counts\n\n(.*?)\n\n", DATA_CARD.read_text(), re.DOTALL).group(1)
    stated = {}
    for line in counts.splitlines()[2:]:
        split, printed, script, total = (cell.strip() for cell in line.strip("|").split("|"))
        stated[split] = (int(printed), int(script), int(total))
    by = Counter((f.split, f.style) for f in FAMILIES)
    for split in ("train", "heldout"):
        assert stated[split] == (by[split, "print"], by[split, "script"], by[split, "print"] + by[split, "script"])
    assert stated["all"] == (
        by["train", "print"] + by["heldout", "print"],
        by["train", "script"] + by["heldout", "script"],
        len(FAMILIES),
    )


# Lookups and the missing-fonts message


def test_font_dir_is_var_fonts_unless_emnist_font_dir_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("EMNIST_FONT_DIR", raising=False)
    assert font_dir() == REPO / "var" / "fonts"
    monkeypatch.setenv("EMNIST_FONT_DIR", str(tmp_path))
    assert font_dir() == tmp_path


def test_installed_fonts_gives_each_family_of_the_split_and_style_with_its_path(fake_cache):
    fonts = installed_fonts(split="heldout", style="script")
    assert [f.name for f in fonts] == [f.name for f in FAMILIES if f.split == "heldout" and f.style == "script"]
    assert all(f.path == fake_cache / f.family.file and f.style == "script" and f.split == "heldout" for f in fonts)
    assert len(installed_fonts()) == len(FAMILIES)


def test_missing_fonts_raise_an_error_that_says_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv("EMNIST_FONT_DIR", str(tmp_path / "empty"))
    with pytest.raises(FontsMissingError) as raised:
        installed_fonts()
    message = str(raised.value)
    assert INSTALL_HINT == "bash scripts/install-fonts" and INSTALL_HINT in message
    assert str(tmp_path / "empty") in message and f"{len(FAMILIES)} of {len(FAMILIES)}" in message


def test_one_missing_family_is_named_and_no_partial_set_is_returned(fake_cache):
    lost = FAMILIES[3]
    (fake_cache / lost.file).unlink()
    with pytest.raises(FontsMissingError, match=re.escape(lost.name)):
        installed_fonts()
    assert installed_fonts(split="heldout" if lost.split == "train" else "train")  # the other split is whole


def test_missing_fonts_skip_with_the_message_or_fail_under_require_services(tmp_path, monkeypatch):
    monkeypatch.setenv("EMNIST_FONT_DIR", str(tmp_path))
    monkeypatch.delenv("REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match=re.escape(INSTALL_HINT)):
        require_fonts()
    monkeypatch.setenv("REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_SERVICES=1 forbids skipping"):
        require_fonts()


def test_the_installer_lists_only_the_packages_not_yet_installed(fake_cache):
    lost = [f for f in FAMILIES if f.registry == "npm"][:2]
    for family in lost:
        (fake_cache / family.file).unlink()
    env = {**os.environ, "EMNIST_FONT_DIR": str(fake_cache)}

    def missing(registry):
        command = [sys.executable, "-m", "ml.font_install", "missing", "--registry", registry]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.split()

    assert missing("npm") == [f.package for f in lost]
    assert missing("debian") == []


# The installer's checks, on a font built for the test


def test_missing_glyphs_names_unmapped_and_empty_characters(tmp_path):
    assert missing_glyphs(build_font(tmp_path / "all.ttf")) == ""
    assert missing_glyphs(build_font(tmp_path / "no-z.ttf", chars=CHARACTERS[:-1])) == "z"
    assert missing_glyphs(build_font(tmp_path / "blank-q.ttf", blank="Q7")) == "7Q"


def test_install_converts_the_woff_to_truetype_and_keeps_the_licence(tmp_path):
    family = npm_family()
    stage_npm_package(tmp_path / "staging", family)
    cache = tmp_path / "cache"
    assert install_from(tmp_path / "staging", cache, (family,)) == []
    installed = cache / family.file
    assert TTFont(installed).flavor is None
    assert ImageFont.truetype(str(installed), 40).getbbox("a")[2] > 0
    assert (cache / "licences" / "squares.txt").read_text() == "SIL Open Font License 1.1"
    assert sorted(p.name for p in cache.iterdir()) == ["licences", "squares.ttf"]


def test_two_installs_of_one_package_give_the_same_bytes(tmp_path, monkeypatch):
    family = npm_family()
    stage_npm_package(tmp_path / "staging", family)
    for cache, now in (("one", 3_000_000_000), ("two", 3_000_086_400)):  # a day apart
        monkeypatch.setattr(_h_e_a_d, "timestampNow", lambda now=now: now)
        assert install_from(tmp_path / "staging", tmp_path / cache, (family,)) == []
    assert (tmp_path / "one" / family.file).read_bytes() == (tmp_path / "two" / family.file).read_bytes()


def test_install_refuses_a_font_without_all_62_glyphs(tmp_path):
    family = npm_family()
    stage_npm_package(tmp_path / "staging", family, chars=CHARACTERS.replace("g", ""))
    problems = install_from(tmp_path / "staging", tmp_path / "cache", (family,))
    assert problems == ["Squares: no glyph for 'g'"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["licences"]  # no font, no .partial


def test_install_refuses_a_package_whose_licence_differs_from_the_manifest(tmp_path):
    family = npm_family(licence="OFL-1.1")
    stage_npm_package(tmp_path / "staging", family, licence="GPL-3.0")
    problems = install_from(tmp_path / "staging", tmp_path / "cache", (family,))
    assert problems == [f"Squares: {family.package} states licence GPL-3.0, the manifest OFL-1.1"]
    assert not (tmp_path / "cache" / family.file).exists()


def test_install_reads_the_licence_of_a_debian_machine_readable_copyright(tmp_path):
    family = font_families._debian("Squares", "fonts-squares", "truetype/sq/Squares.ttf", "OFL-1.1", "script")
    package = tmp_path / "staging" / "fonts-squares"
    (package / family.origin).parent.mkdir(parents=True)
    build_font(package / family.origin)
    doc = package / "usr" / "share" / "doc" / "fonts-squares"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2020 Someone\nLicense: GPL-2+\n\nFiles: debian/*\nLicense: OFL-1.1\n"
    )
    assert install_from(tmp_path / "staging", tmp_path / "cache", (family,)) == [
        "Squares: fonts-squares states licence GPL-2+, the manifest OFL-1.1"
    ]
    (doc / "copyright").write_text((doc / "copyright").read_text().replace("GPL-2+", "OFL-1.1"))
    assert install_from(tmp_path / "staging", tmp_path / "cache", (family,)) == []
    assert missing_glyphs(tmp_path / "cache" / "squares.ttf") == ""


def test_install_refuses_a_hershey_font_whatever_the_manifest_says(tmp_path):
    family = npm_family(name="Hershey Script")
    stage_npm_package(tmp_path / "staging", family)
    problems = install_from(tmp_path / "staging", tmp_path / "cache", (family,))
    assert problems == ["Hershey Script: Hershey fonts are reserved for an independent evaluation"]
    assert not (tmp_path / "cache" / family.file).exists()


# The fonts installed by scripts/install-fonts


def test_every_family_is_installed_with_all_62_glyphs_and_pillow_opens_it(fonts):
    assert len(fonts) == len(FAMILIES)
    for font in fonts:
        assert missing_glyphs(font.path) == "", font.name
        left, top, right, bottom = ImageFont.truetype(str(font.path), 40).getbbox("g")
        assert right > left and bottom > top, font.name


def glyph_shape(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    """The glyph cropped to its ink and scaled to 24x24, zero-mean, unit norm (float32)."""
    left, top, right, bottom = font.getbbox(char)
    image = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(image).text((2 - left, 2 - top), char, font=font, fill=255)
    shape = np.asarray(image.resize((24, 24)), dtype=np.float32)
    shape -= shape.mean()
    return shape / (np.linalg.norm(shape) + 1e-6)


def test_no_installed_family_draws_its_lower_case_as_small_capitals(fonts):
    # Letters whose lower case differs from the capital in ordinary hands. Measured: kept
    # families have at most 1 of them shaped like the capital (correlation > 0.8); the fonts
    # left out for small capitals (Amatic SC, Permanent Marker, fonts-bwht) have 6 to 15.
    letters = "abdefghijlmnqrty"
    for font in fonts:
        face = ImageFont.truetype(str(font.path), 64)
        alike = [c for c in letters if float((glyph_shape(face, c) * glyph_shape(face, c.upper())).sum()) > 0.8]
        assert len(alike) <= 3, f"{font.name} draws {alike} like capitals"


def test_no_installed_file_is_a_hershey_font(fonts):
    for path in font_dir().rglob("*"):
        assert "hershey" not in str(path.relative_to(font_dir())).lower(), path
