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

Run ``python -m ml.font_families --help`` for the installer's steps (scripts/install-fonts
calls them) and the data card's table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
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


def _is_hershey(family: FontFamily) -> bool:
    return any("hershey" in text.lower() for text in (family.name, family.source, family.file, family.origin))


def _package_licence(package_dir: Path, family: FontFamily) -> str | None:
    """The licence the package itself states; None where it states none that can be read.

    npm: package.json's ``license``. Debian: the ``License:`` of the ``Files: *`` paragraph
    of a machine-readable copyright file (older packages have free text: None).
    """
    if family.registry == "npm":
        return json.loads((package_dir / "package" / "package.json").read_text())["license"]
    copyright_file = _licence_file(package_dir, family)
    if copyright_file is None:
        return None
    text = copyright_file.read_text(errors="replace")
    if not text.startswith("Format:"):
        return None
    for paragraph in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in paragraph.splitlines() if line[:1].isalpha() and ":" in line)
        if fields.get("Files", "").strip() == "*":
            return fields.get("License", "").strip() or None
    return None


def install_from(staging: Path, directory: Path, families: tuple[FontFamily, ...] = FAMILIES) -> list[str]:
    """Copy the missing families out of unpacked packages into the font cache.

    ``staging`` holds one folder per package of ``families``, named as ``staging_name`` says (the installer
    unpacks npm tarballs and Debian .deb files there). npm's WOFF is converted to TrueType.
    Each font is checked before it is kept: all 62 glyphs drawn, the package's licence the
    manifest's, no Hershey. Files are written under a temporary name and renamed, so an
    interrupted run never leaves a half-written font that ``installed_fonts`` would accept.

    Returns:
        One line per problem (an empty list when every missing family got installed).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "licences").mkdir(exist_ok=True)
    problems = []
    for family in families:
        if (directory / family.file).is_file():
            continue
        if _is_hershey(family):  # never reached from the shipped manifest; a guard for edits to it
            problems.append(f"{family.name}: Hershey fonts are reserved for an independent evaluation")
            continue
        package_dir = staging / staging_name(family)
        source = package_dir / family.origin
        if not source.is_file():
            problems.append(f"{family.name}: {family.origin} not found in {family.package}")
            continue
        licence = _package_licence(package_dir, family)
        if licence is not None and licence != family.licence:
            problems.append(f"{family.name}: {family.package} states licence {licence}, the manifest {family.licence}")
            continue
        target = directory / family.file
        partial = target.with_name(target.name + ".partial")
        if family.registry == "npm":
            font = TTFont(source, recalcTimestamp=False)  # same bytes on every install
            font.flavor = None  # WOFF -> plain TrueType, which every renderer opens
            font.save(partial)
        else:
            shutil.copyfile(source, partial)
        missing = missing_glyphs(partial)
        if missing:
            partial.unlink()
            problems.append(f"{family.name}: no glyph for {missing!r}")
            continue
        licence_text = _licence_file(package_dir, family)
        if licence_text is not None:
            shutil.copyfile(licence_text, directory / "licences" / f"{Path(family.file).stem}.txt")
        partial.replace(target)
    return problems


def _licence_file(package_dir: Path, family: FontFamily) -> Path | None:
    if family.registry == "npm":
        candidate = package_dir / "package" / "LICENSE"
    else:
        candidate = package_dir / "usr" / "share" / "doc" / family.package / "copyright"
    return candidate if candidate.is_file() else None


def staging_name(family: FontFamily) -> str:
    """The folder a family's package is unpacked into: ``@fontsource/caveat@5.3.0`` -> ``fontsource-caveat-5.3.0``."""
    if family.registry == "debian":
        return family.package
    scoped, version = family.package.rsplit("@", 1)
    return f"{scoped.lstrip('@').replace('/', '-')}-{version}"


def markdown_table() -> str:
    """The data card's table of families (ml/DATA.md), one row per manifest entry."""
    lines = ["| Family | Source | Licence | Style | Split |", "| --- | --- | --- | --- | --- |"]
    for f in sorted(FAMILIES, key=lambda f: (f.split != "train", f.style, f.name.lower())):
        lines.append(f"| {f.name} | `{f.source}` | {f.licence} | {f.style} | {f.split} |")
    return "\n".join(lines)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.font_families", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    missing = commands.add_parser("missing", help="print the packages of families not yet in the font cache")
    missing.add_argument("--registry", choices=REGISTRIES, required=True)
    install = commands.add_parser("install", help="copy the missing families out of unpacked packages")
    install.add_argument("staging", type=Path)
    commands.add_parser("table", help="print the data card's table of families")
    commands.add_parser("status", help="say how many families are installed, and where")
    args = parser.parse_args(argv)
    # fontTools logs harmless quirks of old fonts (odd timestamps, padding): not news to the installer.
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    directory = font_dir()
    if args.command == "missing":
        packages = dict.fromkeys(f.package for f in missing_families(directory) if f.registry == args.registry)
        print("\n".join(packages))
    elif args.command == "install":
        problems = install_from(args.staging, directory)
        for problem in problems:
            print(f"install-fonts: {problem}", file=sys.stderr)
        return 1 if problems else 0
    elif args.command == "table":
        print(markdown_table())
    else:
        absent = missing_families(directory)
        print(f"{len(FAMILIES) - len(absent)} of {len(FAMILIES)} handwriting font families installed in {directory}")
        return 1 if absent else 0
    return 0


if __name__ == "__main__":
    sys.exit(_main())
