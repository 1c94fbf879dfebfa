"""The atlas pages of ``sweep report``: the net's drawing with each swept layer a link, a
page per layer (every unit with its optimised image, its top images and patches and its
statistics) and a page per unit (its settings, timing and versions, and the same pictures
large).  Static files, opened from disk; images load lazily, so a layer of thousands of
units opens at once.

The drawing needs the net: ``sweep`` keeps a copy in the store (``nets/<sha256>.prototxt``,
named by the description's ``net_sha256``) and Graphviz's ``dot``; without either the index
says so and lists the layers.  Dataset examples come from :mod:`protoedit.sweep.examples`.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from protoedit.sweep.examples import RESULT, examples_folder
from protoedit.sweep.store import Row

NETS = "nets"
#: CSS pixels of a unit's optimised image on a layer page.
THUMB = 96
#: Rows of a layer page whose images load with the page (more than a window shows).
FIRST = 12

STYLE = f"""
body {{ font: 14px system-ui, sans-serif; margin: 16px; background: #fafafa; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} a {{ color: #36c; text-decoration: none; }}
.meta {{ color: #666; font-size: 12px; margin-bottom: 8px; }}
.unit {{ display: flex; gap: 10px; align-items: flex-start; background: #fff;
  content-visibility: auto; contain-intrinsic-size: auto 140px;
  border: 1px solid #ddd; padding: 4px; margin-bottom: 6px; }}
.unit img.vis {{ width: {THUMB}px; height: {THUMB}px; object-fit: contain;
  image-rendering: pixelated; background: #000; }}
.unit img.strip {{ height: {THUMB + 30}px; image-rendering: pixelated; }}
.stats {{ font-size: 12px; min-width: 150px; }} .stats b {{ font-size: 14px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }}
code {{ white-space: pre-wrap; word-break: break-all; }}
.big {{ width: 256px; height: 256px; object-fit: contain; image-rendering: pixelated;
  background: #000; }}
"""
#: The drawing's own style (it sits in the index, whose style is the contact sheet's).
DRAWING_STYLE = (
    "<style>.drawing svg { max-height: 560px; width: auto; } "
    "a.swept path { stroke: #2563eb; stroke-width: 3; } a.swept text { fill: #1d4ed8; } "
    "a.swept { cursor: pointer; }</style>"
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def unit_name(config: str, channel: int) -> str:
    """The file stem of a unit's image, JSON and page."""
    return f"{config}_c{channel}"


def layer_page(config: str) -> str:
    """The layer page's path, relative to the atlas folder."""
    return f"layers/{config}.html"


#: Images load as they come near the window (``data-src`` becomes ``src``; the first
#: :data:`FIRST` rows have theirs from the start): a layer of thousands of units opens as
#: fast as a page of a few (Chromium's ``loading="lazy"`` measured no faster than eager
#: loading, and reading positions defeats ``content-visibility``).
_ON_SIGHT = (
    "const sight = new IntersectionObserver(seen => seen.forEach(e => {"
    " if (e.isIntersecting) { e.target.src = e.target.dataset.src;"
    " sight.unobserve(e.target); } }), {rootMargin: '1000px'});"
    "document.querySelectorAll('img[data-src]:not([src])').forEach(img => sight.observe(img));"
)

#: Each page notes how long it took to load (``data-load-ms`` on ``<body>``): what the
#: atlas's speed is measured by, without the browser's start-up.
_TIMING = (
    "<script>window.addEventListener('load', () => "
    "document.body.dataset.loadMs = Math.round(performance.now()));</script>"
)


def _page(title: str, body: str, up: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style>{_TIMING}</head>\n<body>"
        f'<div class="meta"><a href="{up}">&larr; atlas</a></div>{body}</body></html>\n'
    )


def _copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows (thousands of units), else a copy."""
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _examples(store: Path, config: str, out: Path) -> dict[int, dict[str, Any]]:
    """The layer's examples copied into ``out/examples/<config>/``: per unit its record
    and the strips (relative paths), when the store has them."""
    folder = examples_folder(store, config)
    if folder is None:
        return {}
    target = out / "examples" / config
    target.mkdir(parents=True, exist_ok=True)
    records = json.loads((folder / RESULT).read_text(encoding="utf-8"))
    units: dict[int, dict[str, Any]] = {}
    for record in records["units"]:
        unit = int(record["unit"])
        strips = {}
        for kind in ("patches", "images"):
            picture = folder / f"unit-{unit:04d}-{kind}.png"
            if picture.is_file():
                _copy(picture, target / picture.name)
                strips[kind] = f"examples/{config}/{picture.name}"
        units[unit] = {**record, "strips": strips}
    return units


def _stats(row: Row, example: dict[str, Any] | None) -> str:
    """A unit's numbers, each named for what it measures: the ascent maximises the channel's
    mean over positions, while the dataset ranking scores an image by its strongest position
    (the place its patch is cut from), so the two are not to be compared as they stand."""
    dead = " (dead at the start)" if row.dead_at_start else ""
    spatial = bool(example and example["top"] and example["top"][0].get("position"))
    lines = [
        f"<b>#{row.channel}</b>",
        f"optimised{' (mean over positions)' if spatial else ''}: "
        f"{row.activation_start:.4g} &rarr; {row.activation_end:.4g}{dead}",
    ]
    if example:
        stats, top = example.get("stats", {}), example["top"]
        scored = " (strongest position)" if spatial else ""
        lines.append(f"top image{scored}: {top[0]['value']:.4g}" if top else "no images")
        if stats:
            lines.append(
                f"over the images{scored}: mean {stats['mean']:.4g}, sd {stats['std']:.4g}"
            )
            lines.append(f"active on {stats['active']:.0%}")
    return "<br>".join(lines)


def _ranked(members: Sequence[Row], examples: dict[int, dict[str, Any]]) -> str:
    """What the layer page says of the dataset ranking: one forward pass ranks every channel
    of the layer, the page shows only the swept ones, and says so."""
    if not examples:
        return "no dataset images"
    shown = sum(row.channel in examples for row in members)
    ranked = f"{len(examples)} units ranked on dataset images"
    if shown == len(examples):
        return ranked
    return f"{ranked}, top images of the {shown} shown"


def write_layer(
    out: Path, config: str, members: Sequence[Row], description: dict[str, Any], store: Path
) -> None:
    """The layer page and its units' page."""
    examples = _examples(store, config, out)
    first = members[0]
    rows = []
    for number, row in enumerate(members):
        name = unit_name(config, row.channel)
        example = examples.get(row.channel)
        source = "src" if number < FIRST else "data-src"
        strip = ""
        if example:
            kind = "patches" if "patches" in example["strips"] else "images"
            if kind in example["strips"]:
                strip = (
                    f'<img class="strip" {source}="../{_e(example["strips"][kind])}" '
                    f'alt="top images of unit {row.channel}">'
                )
        rows.append(
            f'<div class="unit" id="u{row.channel}" data-channel="{row.channel}">'
            f'<a href="../units/{config}.html#{row.channel}">'
            f'<img class="vis" {source}="../images/{_e(name)}.png" '
            f'alt="{_e(row.layer)} channel {row.channel}"></a>'
            f'<div class="stats">{_stats(row, example)}</div>{strip}</div>'
        )
    body = (
        f"<h1>{_e(first.model)} &middot; {_e(first.layer)}</h1>"
        f'<div class="meta">config {_e(config)} &middot; {len(members)} swept units shown '
        f"&middot; {_ranked(members, examples)}</div>"
        + "\n".join(rows)
        + f"<script>{_ON_SIGHT}</script>"
    )
    (out / layer_page(config)).write_text(
        _page(f"{first.model} {first.layer}", body, "../index.html"), encoding="utf-8"
    )
    write_units(out, config, members, description, examples)


_UNIT_SCRIPT = """
function show() {
  const channel = Number((location.hash.match(/\\d+/) || [UNITS[0].channel])[0]);
  const at = UNITS.findIndex(u => u.channel === channel);
  const unit = UNITS[at < 0 ? 0 : at];
  const esc = t => String(t).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;',
    '>': '&gt;', '"': '&quot;'})[c]);
  const near = [UNITS[at - 1], UNITS[at + 1]].filter(u => u)
    .map(u => `<a href="#${u.channel}">#${u.channel}</a>`).join(' &middot; ');
  let html = `<h1>${esc(TITLE)} &middot; unit ${unit.channel}</h1>`
    + `<div class="meta"><a href="../${LAYER}#u${unit.channel}">layer</a> &middot; ${near}`
    + ` &middot; <a href="${esc(unit.name)}.json">JSON</a></div>`
    + `<img class="big" src="../images/${esc(unit.name)}.png" alt="optimised image">`
    + `<div class="stats">${unit.stats}</div>`;
  for (const [kind, path] of Object.entries(unit.strips || {}))
    html += `<h2>top ${kind}</h2><img src="../${esc(path)}" alt="top ${kind}">`;
  if (unit.top) {
    html += '<h2>ranking</h2><table><tr><th>rank</th><th>image</th><th>value</th><th>box</th></tr>';
    unit.top.forEach((e, r) => { html += `<tr><td>${r + 1}</td><td>${esc(e.image)}</td>`
      + `<td>${e.value.toPrecision(6)}</td><td>${esc(JSON.stringify(e.box))}</td></tr>`; });
    html += '</table>';
  }
  const settings = Object.assign({}, SETTINGS, {unit: unit.row});
  html += '<h2>settings</h2><table>' + Object.entries(settings).map(([k, v]) =>
    `<tr><th>${esc(k)}</th><td><code>${esc(JSON.stringify(v))}</code></td></tr>`).join('')
    + '</table>';
  document.getElementById('unit').innerHTML = html;
  document.body.dataset.unit = unit.channel;
}
window.addEventListener('hashchange', show);
window.addEventListener('DOMContentLoaded', show);
"""


def write_units(
    out: Path,
    config: str,
    members: Sequence[Row],
    description: dict[str, Any],
    examples: dict[int, dict[str, Any]],
) -> None:
    """One page for the layer's units, ``units/<config>.html#CHANNEL``: the pictures large,
    the statistics, the ranking and every setting of the unit the address names (one file
    whatever the number of units; the data is inline, so it opens from disk)."""
    units = []
    for row in members:
        example = examples.get(row.channel) or {}
        units.append(
            {
                "channel": row.channel,
                "name": unit_name(config, row.channel),
                "stats": _stats(row, example or None),
                "strips": example.get("strips", {}),
                "top": example.get("top"),
                "row": asdict(row),
            }
        )
    data = json.dumps(units).replace("</", "<\\/")
    first = members[0]
    script = (
        f"const UNITS = {data};\nconst SETTINGS = {json.dumps(description)};\n"
        f"const TITLE = {json.dumps(f'{first.model} · {first.layer}')};\n"
        f"const LAYER = {json.dumps(layer_page(config))};\n{_UNIT_SCRIPT}"
    )
    safe = script.replace("</", "<\\/")  # no "</script>" inside the script
    body = f'<div id="unit"></div><script>{safe}</script>'
    (out / "units" / f"{config}.html").write_text(
        _page(f"{first.model} {first.layer} units", body, "../index.html"), encoding="utf-8"
    )


def link_layer(svg: str, layer: str, href: str) -> str:
    """``svg`` (drawn by :mod:`protoedit.draw`) with the node of ``layer`` a link to
    ``href``: Graphviz wraps each node's shapes in an ``<a>`` (for its tooltip), which gets
    the address."""
    anchor = f'<g id="a_layer:{_e(layer)}"><a '
    return svg.replace(anchor, f'{anchor}href="{_e(href)}" class="swept" ')


def net_drawings(store: Path, configs: dict[str, dict[str, Any]], layers: dict[str, str]) -> str:
    """The drawing of each swept net (inline SVG), each swept layer a link to its page
    (``layers``: config -> layer name); a note instead when a drawing cannot be made."""
    from protoedit.document import load
    from protoedit.draw import net_graph, render
    from protoedit.errors import ProtoeditError

    by_net: dict[str, dict[str, str]] = {}
    for config, description in configs.items():
        if config in layers:
            by_net.setdefault(str(description.get("net_sha256", "")), {})[layers[config]] = config
    parts = []
    for digest, swept in by_net.items():
        net = store / NETS / f"{digest}.prototxt"
        if not net.is_file():
            parts.append('<div class="meta">no copy of the net in the store: no drawing</div>')
            continue
        try:
            svg = render(net_graph(load(net)), "svg").decode("utf-8")
        except ProtoeditError as exc:
            parts.append(f'<div class="meta">no drawing: {_e(exc.message)}</div>')
            continue
        svg = svg[svg.index("<svg") :]
        for layer, config in swept.items():
            svg = link_layer(svg, layer, layer_page(config))
        parts.append(f'<div class="drawing">{svg}</div>')
    if not parts:
        return ""
    layers_text = "swept layers are outlined in blue: click one for its page"
    return DRAWING_STYLE + f'<div class="meta">{layers_text}</div>' + "\n".join(parts)


def keep_net(store: str | os.PathLike[str], net: str, digest: str) -> None:
    """Copy a swept net into the store for the atlas's drawing (once per content)."""
    folder = Path(store) / NETS
    folder.mkdir(exist_ok=True)
    target = folder / f"{digest}.prototxt"
    if not target.is_file():
        shutil.copyfile(net, target)
