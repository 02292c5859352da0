"""The handwriting typefaces that training and evaluation data are rendered from.

``FAMILIES`` is the manifest: one entry per family, with the registry package (and, for
npm, its pinned version) it comes from, the file it is kept as in the font cache, its
licence as the package states it, its style and its split. ``bash scripts/install-fonts``
fetches exactly these into ``font_dir()``; ``installed_fonts`` hands them to the renderer.

Rules the manifest keeps (tests/ml/test_font_families.py checks them):
- No Hershey vector font, from any package: those are kept for an independent evaluation.
- Every family draws all 62 EMNIST characters 0-9 A-Z a-z (``missing_glyphs``).
- Held-out families are never trained on; each held-out style has relatives in training.
- Families whose lower case is drawn as small capitals (Amatic SC, Permanent Marker, Rock
  Salt) are left out: their "a" is an "A", and the label would teach the wrong letter.

The installer (fetching aside, which scripts/install-fonts does) is ``ml.font_install``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont

CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
STYLES = ("print", "script")  # script: joined or cursive letterforms
SPLITS = ("train", "heldout")
REGISTRIES = ("npm", "debian")
REPO = Path(__file__).resolve().parents[1]
INSTALL_HINT = "bash scripts/install-fonts"


@dataclass(frozen=True)
class FontFamily:
    """One typeface: where it comes from, what it is kept as, and how it may be used.

    ``source`` is ``@fontsource/<id>@<version>`` (npm) or ``debian:<package>``; ``origin`` is
    the file's path inside the package (npm: its latin 400-weight WOFF, converted to TrueType
    on install); ``file`` is its name in ``font_dir()``.
    """

    name: str
    source: str
    file: str
    origin: str
    licence: str
    style: str
    split: str

    @property
    def registry(self) -> str:
        return "debian" if self.source.startswith("debian:") else "npm"

    @property
    def package(self) -> str:
        """The name a registry client takes: ``@fontsource/caveat@5.3.0`` or ``fonts-bwht``."""
        return self.source.removeprefix("debian:")


@dataclass(frozen=True)
class InstalledFont:
    family: FontFamily
    path: Path

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def style(self) -> str:
        return self.family.style

    @property
    def split(self) -> str:
        return self.family.split


class FontsMissingError(RuntimeError):
    """The font cache lacks some manifest families (scripts/install-fonts has not run there)."""


def _npm(name: str, version: str, licence: str, style: str, split: str = "train") -> FontFamily:
    slug = name.lower().replace(" ", "-")
    return FontFamily(
        name=name,
        source=f"@fontsource/{slug}@{version}",
        file=f"{slug}.ttf",
        origin=f"package/files/{slug}-latin-400-normal.woff",  # WOFF (zlib), readable without brotli
        licence=licence,
        style=style,
        split=split,
    )


def _debian(name: str, package: str, font: str, licence: str, style: str, split: str = "train") -> FontFamily:
    """A family from a Debian package; ``font`` is its file's path under /usr/share/fonts."""
    return FontFamily(
        name=name,
        source=f"debian:{package}",
        file=name.lower().replace(" ", "-") + Path(font).suffix.lower(),
        origin=f"usr/share/fonts/{font}",
        licence=licence,
        style=style,
        split=split,
    )


OFL, APACHE = "OFL-1.1", "Apache-2.0"
GPL2_FONT = "GPL-2 with font exception"  # fonts-sjfonts' copyright file, which is not machine-readable
PRINT, SCRIPT = STYLES
HELDOUT = "heldout"

# The one list of what gets installed, npm versions pinned so renders are reproducible.
# Held-out families were chosen so that training keeps relatives of each: Great Vibes
# (Allura, Alex Brush, Pinyon Script), Homemade Apple (Cedarville Cursive, La Belle Aurore),
# Mr Dafoe (Yellowtail, Kaushan Script), Sacramento (Ms Madi, Oooh Baby), Bad Script (Marck
# Script), Indie Flower (Schoolbell, Coming Soon), Patrick Hand (Handlee, Kalam), Reenie
# Beanie (Shadows Into Light, Waiting for the Sunrise), Gochi Hand (Gloria Hallelujah),
# Nanum Pen Script (Nanum Brush Script, Sue Ellen Francisco), Mali (Delius, Playpen Sans),
# Lobster (Pacifico, Damion, Leckerli One). A design and its brush or bold sibling (Caveat
# and Caveat Brush) stay in one split, so a held-out family is never half-seen.
FAMILIES: tuple[FontFamily, ...] = (
    # npm, print-style handwriting
    _npm("Annie Use Your Telescope", "5.3.0", OFL, PRINT),
    _npm("Architects Daughter", "5.3.0", OFL, PRINT),
    _npm("Caveat", "5.3.0", OFL, PRINT),
    _npm("Caveat Brush", "5.3.0", OFL, PRINT),
    _npm("Chilanka", "5.3.0", OFL, PRINT),
    _npm("Comic Neue", "5.3.0", OFL, PRINT),
    _npm("Coming Soon", "5.3.0", APACHE, PRINT),
    _npm("Covered By Your Grace", "5.3.0", OFL, PRINT),
    _npm("Delicious Handrawn", "5.3.0", OFL, PRINT),
    _npm("Delius", "5.3.0", OFL, PRINT),
    _npm("Edu SA Beginner", "5.3.0", OFL, PRINT),
    _npm("Edu VIC WA NT Beginner", "5.3.0", OFL, PRINT),
    _npm("Gaegu", "5.3.0", OFL, PRINT),
    _npm("Gloria Hallelujah", "5.3.0", OFL, PRINT),
    _npm("Gochi Hand", "5.3.0", OFL, PRINT, HELDOUT),
    _npm("Handlee", "5.3.0", OFL, PRINT),
    _npm("Hi Melody", "5.3.0", OFL, PRINT),
    _npm("Indie Flower", "5.3.0", OFL, PRINT, HELDOUT),
    _npm("Just Another Hand", "5.3.0", APACHE, PRINT),
    _npm("Kalam", "5.3.0", OFL, PRINT),
    _npm("Loved by the King", "5.3.0", OFL, PRINT),
    _npm("Mali", "5.3.0", OFL, PRINT, HELDOUT),
    _npm("Mansalva", "5.3.0", OFL, PRINT),
    _npm("Nanum Brush Script", "5.3.0", OFL, PRINT),
    _npm("Nanum Pen Script", "5.3.0", OFL, PRINT, HELDOUT),
    _npm("Neucha", "5.3.0", OFL, PRINT),
    _npm("Nothing You Could Do", "5.3.0", OFL, PRINT),
    _npm("Patrick Hand", "5.3.0", OFL, PRINT, HELDOUT),
    _npm("Playpen Sans", "5.3.0", OFL, PRINT),
    _npm("Reenie Beanie", "5.3.0", OFL, PRINT, HELDOUT),
    _npm("Schoolbell", "5.3.0", APACHE, PRINT),
    _npm("Shadows Into Light", "5.3.0", OFL, PRINT),
    _npm("Shantell Sans", "5.3.0", OFL, PRINT),
    _npm("Short Stack", "5.3.0", OFL, PRINT),
    _npm("Sriracha", "5.3.0", OFL, PRINT),
    _npm("Sue Ellen Francisco", "5.3.0", OFL, PRINT),
    _npm("Swanky and Moo Moo", "5.3.0", OFL, PRINT),
    _npm("The Girl Next Door", "5.3.0", OFL, PRINT),
    _npm("Waiting for the Sunrise", "5.3.0", OFL, PRINT),
    _npm("Yomogi", "5.3.0", OFL, PRINT),
    _npm("Yusei Magic", "5.3.0", OFL, PRINT),
    # npm, script: joined or cursive letterforms
    _npm("Alex Brush", "5.3.0", OFL, SCRIPT),
    _npm("Allura", "5.3.0", OFL, SCRIPT),
    _npm("Bad Script", "5.3.0", OFL, SCRIPT, HELDOUT),
    _npm("Cedarville Cursive", "5.3.0", OFL, SCRIPT),
    _npm("Cookie", "5.3.0", OFL, SCRIPT),
    _npm("Courgette", "5.3.0", OFL, SCRIPT),
    _npm("Damion", "5.3.0", OFL, SCRIPT),
    _npm("Dancing Script", "5.3.0", OFL, SCRIPT),
    _npm("Dawning of a New Day", "5.3.0", OFL, SCRIPT),
    _npm("Grand Hotel", "5.3.0", OFL, SCRIPT),
    _npm("Great Vibes", "5.3.0", OFL, SCRIPT, HELDOUT),
    _npm("Herr Von Muellerhoff", "5.3.0", OFL, SCRIPT),
    _npm("Homemade Apple", "5.3.0", APACHE, SCRIPT, HELDOUT),
    _npm("Italianno", "5.3.0", OFL, SCRIPT),
    _npm("Kaushan Script", "5.3.0", OFL, SCRIPT),
    _npm("Kristi", "5.3.0", OFL, SCRIPT),
    _npm("La Belle Aurore", "5.3.0", OFL, SCRIPT),
    _npm("Marck Script", "5.3.0", OFL, SCRIPT),
    _npm("Meddon", "5.3.0", OFL, SCRIPT),
    _npm("Mr Dafoe", "5.3.0", OFL, SCRIPT, HELDOUT),
    _npm("Mr De Haviland", "5.3.0", OFL, SCRIPT),
    _npm("Ms Madi", "5.3.0", OFL, SCRIPT),
    _npm("Oooh Baby", "5.3.0", OFL, SCRIPT),
    _npm("Pacifico", "5.3.0", OFL, SCRIPT),
    _npm("Parisienne", "5.3.0", OFL, SCRIPT),
    _npm("Pinyon Script", "5.3.0", OFL, SCRIPT),
    _npm("Qwigley", "5.2.8", OFL, SCRIPT),
    _npm("Rochester", "5.3.0", APACHE, SCRIPT),
    _npm("Sacramento", "5.3.0", OFL, SCRIPT, HELDOUT),
    _npm("Satisfy", "5.3.0", APACHE, SCRIPT),
    _npm("Tangerine", "5.3.0", OFL, SCRIPT),
    _npm("Yellowtail", "5.3.0", APACHE, SCRIPT),
    _npm("Zeyada", "5.3.0", OFL, SCRIPT),
    # Debian: the current package of the release (Debian keeps a font package's files
    # stable within a release). Licences as the package's copyright file states them.
    # Left out: fonts-bwht, fonts-humor-sans and fonts-tomsontalks (lower case drawn as
    # small capitals), fonts-femkeklaver (outlined capitals and digits, not pen strokes),
    # fonts-joscelyn (secretary hand, unreadable as modern letters), fonts-levien-typoscript
    # (no digits, 28 characters missing), and Debian's copies of npm families above.
    _debian("Breip", "fonts-breip", "truetype/breip/Breip.ttf", "OFL-1.0", PRINT),
    _debian("DKG Handwriting", "fonts-dkg-handwriting", "truetype/fifthhorseman/dkg.ttf", "GPL-3+", PRINT),
    _debian("Rufscript", "fonts-rufscript", "truetype/rufscript/Rufscript010.ttf", "GPL-3+FontException", PRINT),
    _debian("Delphine", "fonts-sjfonts", "truetype/sjfonts/Delphine.ttf", GPL2_FONT, PRINT),
    _debian("Steve Hand", "fonts-sjfonts", "truetype/sjfonts/SteveHand.ttf", GPL2_FONT, PRINT),
    _debian("Ecolier Court", "fonts-ecolier-court", "truetype/ecolier-court/Ecolier-court.ttf", OFL, SCRIPT),
    _debian("Havana", "fonts-havana", "opentype/havana/Havana-Regular.otf", OFL, SCRIPT),
    _debian("Leckerli One", "fonts-leckerli-one", "truetype/leckerli-one/LeckerliOne-Regular.ttf", OFL, SCRIPT),
    _debian("Lobster", "fonts-lobster", "opentype/lobster/lobster.otf", OFL, SCRIPT, HELDOUT),
)


def font_dir() -> Path:
    """The font cache: ``$EMNIST_FONT_DIR``, else ``var/fonts`` in the repository."""
    configured = os.environ.get("EMNIST_FONT_DIR", "").strip()
    return Path(configured).expanduser() if configured else REPO / "var" / "fonts"


def select_families(split: str | None = None, style: str | None = None) -> tuple[FontFamily, ...]:
    """The manifest's families, optionally only one split and/or one style."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    if style is not None and style not in STYLES:
        raise ValueError(f"style must be one of {STYLES} or None, got {style!r}")
    return tuple(f for f in FAMILIES if split in (None, f.split) and style in (None, f.style))


def missing_families(directory: Path | None = None) -> tuple[FontFamily, ...]:
    """The manifest's families whose file is not in the font cache."""
    directory = directory or font_dir()
    return tuple(f for f in FAMILIES if not (directory / f.file).is_file())


def installed_fonts(split: str | None = None, style: str | None = None) -> list[InstalledFont]:
    """Every manifest family of this split/style, with its file in ``font_dir()``.

    Raises:
        FontsMissingError: when any of them is not installed. A partial set would change
            the rendered data without a word, so no subset is ever returned.
    """
    directory = font_dir()
    wanted = select_families(split, style)
    missing = [f.name for f in wanted if not (directory / f.file).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FontsMissingError(
            f"{len(missing)} of {len(wanted)} handwriting font families are not installed in {directory} "
            f"({shown}); run `{INSTALL_HINT}` (set EMNIST_FONT_DIR to use another folder)"
        )
    return [InstalledFont(family=f, path=directory / f.file) for f in wanted]


def missing_glyphs(path: Path) -> str:
    """The characters of 0-9 A-Z a-z that the font at ``path`` has no visible glyph for.

    A character counts as drawn when the font maps it to a glyph with an outline: a mapped
    but empty glyph (some fonts map letters they lack to a blank) counts as missing.
    """
    font = TTFont(path, lazy=True)
    cmap = font.getBestCmap() or {}
    glyphs = font.getGlyphSet()
    missing = []
    for char in CHARACTERS:
        name = cmap.get(ord(char))
        if name is None:
            missing.append(char)
            continue
        pen = BoundsPen(glyphs)
        glyphs[name].draw(pen)
        if pen.bounds is None:
            missing.append(char)
    return "".join(missing)
