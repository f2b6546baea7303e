"""Inline vega, vega-lite and vega-embed into .dvc/plots/page.html (DVC's HTML template).

Run from the repository root with the npm tarballs of the versions you want::

    (cd /tmp && npm pack vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0)
    python .dvc/plots/vendor/update.py /tmp/vega-5.33.1.tgz /tmp/vega-lite-5.23.0.tgz \\
        /tmp/vega-embed-6.29.0.tgz

Each tarball's ``build/<name>.min.js`` becomes the body of ``<script data-bundle="<name>">``
in the page (which keeps everything else you edit there), tagged with its version; its
LICENSE, where the tarball has one, is copied to ``vendor/LICENSE.<name>``. Then update the
table in vendor/README.md. Keep the majors DVC's own templates target (vega 5, vega-lite 5,
vega-embed 6: their specs name the vega-lite v5 schema).
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "page.html"
NAMES = ("vega", "vega-lite", "vega-embed")


def bundle(tgz: Path) -> tuple[str, str, str, str | None]:
    """(name, version, minified build, licence text or None) of an npm tarball."""
    with tarfile.open(tgz) as tar:
        meta = json.load(tar.extractfile("package/package.json"))  # type: ignore[arg-type]
        name, version = meta["name"], meta["version"]
        js = tar.extractfile(f"package/build/{name}.min.js").read().decode()  # type: ignore[union-attr]
        names = tar.getnames()
        licence = (tar.extractfile("package/LICENSE").read().decode()  # type: ignore[union-attr]
                   if "package/LICENSE" in names else None)
    # a source map comment would point the browser at a file that is not there
    js = re.sub(r"^//# sourceMappingURL=.*$", "", js, flags=re.M).strip()
    if "</script" in js.lower() or "{plot_divs}" in js or "{scripts}" in js:
        sys.exit(f"{tgz}: the build cannot be inlined as is (</script> or a DVC placeholder)")
    return name, version, js, licence


def main(argv: list[str]) -> None:
    """Replace each named bundle in the page by the tarball's build."""
    page = PAGE.read_text(encoding="utf-8")
    for arg in argv:
        name, version, js, licence = bundle(Path(arg))
        if name not in NAMES:
            sys.exit(f"{arg}: {name} is not one of {', '.join(NAMES)}")
        tag = re.compile(rf'<script data-bundle="{re.escape(name)}"[^>]*>.*?</script>', re.S)
        if not tag.search(page):
            sys.exit(f"{PAGE}: no <script data-bundle=\"{name}\"> to replace")
        block = f'<script data-bundle="{name}" data-version="{version}">\n{js}\n</script>'
        page = tag.sub(lambda _m, b=block: b, page, count=1)
        if licence is not None:
            (HERE / f"LICENSE.{name}").write_text(licence, encoding="utf-8")
        print(f"{name} {version}: {len(js):,} bytes")
    PAGE.write_text(page, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
