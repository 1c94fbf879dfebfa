"""Child process for the filter test: the layer names Caffe builds for each requested state."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")

import caffe


def main(net: str, states_json: str) -> int:
    caffe.set_mode_cpu()
    out = []
    for phase, level, stages in json.loads(states_json):
        built = caffe.Net(
            net, caffe.TEST if phase == "TEST" else caffe.TRAIN, level=level, stages=stages
        )
        names = [
            n
            for n, layer in zip(built._layer_names, built.layers, strict=True)
            if layer.type != "Split"
        ]
        out.append(names)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
