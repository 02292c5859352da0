"""The font installer's side of the manifest: checks, conversion and its command line.

``bash scripts/install-fonts`` fetches the packages ``ml.font_families.FAMILIES`` names and
unpacks them; this module says which are missing, keeps each font only once it passes the
checks (all 62 glyphs, the manifest's licence, no Hershey), converts npm's WOFF to TrueType,
and prints the data card's table. Run ``python -m ml.font_install --help`` for its steps.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from fontTools.ttLib import TTFont

from ml.font_families import FAMILIES, REGISTRIES, FontFamily, font_dir, missing_families, missing_glyphs


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
    parser = argparse.ArgumentParser(prog="python -m ml.font_install", description=__doc__.split("\n")[0])
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
