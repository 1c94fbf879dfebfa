"""``upgrade`` against Caffe's own ``upgrade_net_proto_text`` on every legacy corpus file
(V0 with padding layers, V1, old transform fields, input headers, BatchNorm params)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from protoedit import ProtoeditError, load
from protoedit.caffe.build import tool_path
from protoedit.rewrites import needs_upgrade, upgrade

pytestmark = pytest.mark.caffe


def _legacy_files(corpus: Path) -> list[Path]:
    found = []
    for path in sorted(corpus.glob("*.prototxt")):
        try:
            doc = load(path)
        except ProtoeditError:
            continue  # not a file Caffe reads with the stock schema
        if doc.message_type.endswith("NetParameter") and needs_upgrade(doc):
            found.append(path)
    return found


def test_upgrade_equals_caffes_upgrader(corpus: Path, tmp_path: Path) -> None:
    tool = tool_path("upgrade_net_proto_text")
    legacy = _legacy_files(corpus)
    assert len(legacy) >= 10
    compared = 0
    for path in legacy:
        doc = load(path)
        report = upgrade(doc)
        assert report.changed, path.name
        out = tmp_path / f"{path.stem}.caffe.prototxt"
        env = dict(os.environ, GLOG_minloglevel="2")
        subprocess.run([str(tool), str(path), str(out)], check=True, env=env, capture_output=True)
        reference = load(out).message
        assert doc.message.SerializeToString(deterministic=True) == reference.SerializeToString(
            deterministic=True
        ), path.name
        assert not needs_upgrade(doc)
        # A second upgrade has nothing to do.
        assert upgrade(load(out)).changed == []
        compared += 1
    assert compared == len(legacy)


def test_upgrade_keeps_comments_and_untouched_text(corpus: Path) -> None:
    # The header's own comments (a commented-out transform_param) move to the Input layer.
    mobilenet = load(corpus / "shicai__MobileNet-Caffe__mobilenet_deploy.prototxt")
    upgrade(mobilenet)
    assert mobilenet.dumps().startswith('name: "MOBILENET"\n#  transform_param {\n')
    # Only the header changes in ResNet-50 (tabs, blank lines): the rest is byte for byte.
    path = corpus / "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt"
    text = path.read_text()
    doc = load(path)
    upgrade(doc)
    tail = text[text.index("layer {") :]
    assert doc.dumps().endswith(tail)


def test_v0_report_names_each_layer(corpus: Path) -> None:
    doc = load(corpus / "BVLC__caffe__examples__lenet__lenet_train.prototxt")
    lines = [line for line in upgrade(doc).changed if "V0 layer re-written" in line]
    assert len(lines) == len(doc.message.layer) == 9
    assert [line.split("'")[1] for line in lines] == [layer.name for layer in doc.message.layer]
    assert "" not in [layer.name for layer in doc.message.layer]
