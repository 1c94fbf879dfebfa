"""The contact sheet and atlas: static HTML pages of a store's results, opened from disk.

``index.html`` has one section per (model, layer, config): a grid of unit images with their
final activations, sortable by channel or activation (a few lines of JavaScript;
``#sort=activation`` in the address sorts on load), each linking to the full-size image
and a JSON file with the unit's settings, timing and versions.  The images are copied
beside the page, so the folder can be moved or shared.  On load the page counts the images
that decoded and shows the count (``data-images`` on ``<body>``: ``loaded/total``), so a
broken sheet says so.  Above the grids, the drawing of each net links its swept layers to
their pages, and each unit to its own (:mod:`protoedit.sweep.atlas`).
"""

from __future__ import annotations

import html
import json
import os
import shutil
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from protoedit.errors import InputError, Location
from protoedit.sweep.atlas import layer_page, net_drawings, write_layer
from protoedit.sweep.store import Row, open_store

#: CSS pixels of one tile's image (small images are scaled up without smoothing).
TILE = 112

_STYLE = f"""
body {{ font: 14px system-ui, sans-serif; margin: 16px; background: #fafafa; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 24px 0 4px; }}
.meta {{ color: #666; font-size: 12px; margin-bottom: 6px; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 6px; }}
figure {{ margin: 0; width: {TILE}px; background: #fff; border: 1px solid #ddd; padding: 3px; }}
figure img {{ width: {TILE}px; height: {TILE}px; object-fit: contain; display: block;
  image-rendering: pixelated; background: #000; }}
figcaption {{ font-size: 11px; display: flex; justify-content: space-between; }}
figcaption a {{ color: #36c; text-decoration: none; }}
.dead {{ color: #c33; }} button {{ font-size: 12px; margin-right: 4px; }}
#status.bad {{ color: #c33; font-weight: bold; }}
"""

_SCRIPT = """
function sortGrid(button, key) {
  const grid = button.closest('section').querySelector('.grid');
  const cells = Array.from(grid.children);
  cells.sort((a, b) => key === 'activation'
    ? Number(b.dataset.activation) - Number(a.dataset.activation)
    : Number(a.dataset.channel) - Number(b.dataset.channel));
  cells.forEach(cell => grid.appendChild(cell));
}
window.addEventListener('load', () => {
  if (location.hash === '#sort=activation')
    document.querySelectorAll('button.by-activation')
      .forEach(b => sortGrid(b, 'activation'));
  const images = Array.from(document.images);
  const good = images.filter(img => img.complete && img.naturalWidth > 0);
  images.forEach(img => {
    img.dataset.natural = img.naturalWidth + 'x' + img.naturalHeight;
    img.dataset.shown = img.clientWidth + 'x' + img.clientHeight;
  });
  document.body.dataset.images = good.length + '/' + images.length;
  const status = document.getElementById('status');
  status.textContent = good.length + ' of ' + images.length + ' images loaded';
  if (good.length !== images.length) status.className = 'bad';
});
"""


_BY_ACTIVATION = (
    '<button class="by-activation" onclick="sortGrid(this, \'activation\')">activation</button>'
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def write_report(store: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """Write the contact sheet of ``store`` into the folder ``output``; the index's path."""
    out = Path(output)
    with open_store(store) as db:
        rows = db.rows()
        configs = db.configs()
        failures = db.failures()
    if not rows:
        raise InputError("the store holds no results yet", Location(str(store)))
    try:
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / "units").mkdir(exist_ok=True)
        (out / "layers").mkdir(exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the report folder: {exc.strerror}", Location(str(out))
        ) from None
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row.config].append(row)
    sections = []
    for config, members in groups.items():
        description = configs.get(config, {})
        cells = []
        for row in members:
            name = f"{config}_c{row.channel}"
            image = Path("images") / f"{name}.png"
            shutil.copyfile(Path(store) / row.image, out / image)
            unit = {"unit": asdict(row), "config": config, **description}
            (out / "units" / f"{name}.json").write_text(
                json.dumps(unit, indent=1) + "\n", encoding="utf-8"
            )
            dead = (
                ' <span class="dead" title="dead at the start">&#8224;</span>'
                if row.dead_at_start
                else ""
            )
            cells.append(
                f'<figure data-channel="{row.channel}" data-activation="{row.activation_end:.9g}">'
                f'<a href="{_e(image.as_posix())}"><img src="{_e(image.as_posix())}" '
                f'alt="{_e(row.layer)} channel {row.channel}" loading="eager"></a>'
                f"<figcaption><span>#{row.channel}{dead}</span>"
                f'<span title="final activation">{row.activation_end:.4g}</span>'
                f'<a href="units/{config}.html#{row.channel}" title="settings">&#9881;</a>'
                "</figcaption>"
                "</figure>"
            )
        first = members[0]
        write_layer(out, config, members, description, Path(store))
        settings = description.get("settings", {})
        meta = (
            f"config {config} &middot; {len(members)} units &middot; "
            f"{settings.get('steps', '?')} steps &middot; batch {description.get('batch')} "
            f"&middot; {first.width}x{first.height} px &middot; "
            f"{sum(r.seconds for r in members) / len(members):.2f} s/unit &middot; "
            f"protoedit {_e(first.protoedit_version)}, {_e(first.caffe_version)}"
        )
        sections.append(
            f'<section data-config="{config}"><h2><a href="{layer_page(config)}">'
            f"{_e(first.model)} &middot; {_e(first.layer)}</a></h2>"
            f'<div class="meta">{meta}</div>'
            "<div>sort by <button onclick=\"sortGrid(this, 'channel')\">channel</button>"
            f"{_BY_ACTIVATION}</div>"
            f'<div class="grid">{"".join(cells)}</div></section>'
        )
    failed = f" &middot; {len(failures)} failed attempts recorded" if failures else ""
    layers = len({(r.model, r.layer) for r in rows})
    counted = f"{len(rows)} units in {layers} layer{'s' if layers != 1 else ''}"
    if len(groups) != layers:  # a layer swept under several settings
        counted += f" ({len(groups)} configurations)"
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>protoedit sweep: {len(rows)} units</title><style>{_STYLE}</style>"
        f"<script>{_SCRIPT}</script></head>\n<body><h1>protoedit sweep</h1>"
        f'<div class="meta">{counted}{failed} &middot; '
        '<span id="status">images loading</span></div>\n'
        + net_drawings(Path(store), configs, {c: m[0].layer for c, m in groups.items()})
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
