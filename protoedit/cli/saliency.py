"""``protoedit saliency``: where in one image the evidence for a class or a unit lies, by any
method of :mod:`protoedit.explain` (``--sanity``: the cascading randomisation check)."""

from __future__ import annotations

import argparse

from protoedit.cli.explain import _common, _explain_flags, _quiet, _rewrite_report
from protoedit.cli.options import (
    Commands,
    add_head,
    add_output,
    add_target,
    arrays_only,
    floats,
    head,
    hints,
    index,
    positive,
    preprocess,
)


def _fraction(text: str) -> float:
    value = floats(text)
    if len(value) != 1 or not value[0] >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value[0]


def add_saliency(commands: Commands) -> None:
    """``protoedit saliency``."""
    # Defaults live in protoedit.explain.saliency_maps (not imported here: numpy and the rewrites
    # would load for every command); a test checks that this help states them.
    cmd = commands.add_parser(
        "saliency",
        help="a saliency map of one image: gradient, SmoothGrad, integrated gradients, "
        "Grad-CAM, guided backpropagation",
        description="Rewrite NET in memory for a head (--class K on the net's class scores, or "
        "a head on --target), run it in Caffe in a child process, and write a picture "
        "(-o MAP.png: the input, the map, the map over the input) with the raw H x W map "
        "beside it (MAP.npy; integrated also writes the per-channel attributions, "
        "MAP-attributions.npy). The noisy copies and "
        "the integration steps run as batches of --chunk items. Exit 0, 2 on error.",
    )
    cmd.add_argument("net", metavar="NET.prototxt")
    cmd.add_argument("--image", required=True, metavar="FILE", help="an image or a .npy")
    add_target(
        cmd,
        False,
        "the layer the head measures (default with --class: the net's class scores, the input "
        "of a final Softmax)",
    )
    add_head(cmd)
    cmd.add_argument(
        "--method",
        choices=[
            "gradient",
            "smoothgrad",
            "integrated",
            "gradcam",
            "gradcam++",
            "guided",
            "deconvnet",
            "guided-gradcam",
        ],
        default="gradient",
        help="max |gradient| over channels (the default), its mean over noisy copies, "
        "integrated gradients from a baseline, Grad-CAM (++) at --layer, guided "
        "backpropagation, the deconvnet, or guided Grad-CAM",
    )
    cmd.add_argument(
        "--layer",
        metavar="LAYER",
        help="gradcam, gradcam++, guided-gradcam: the spatial layer whose maps are weighed",
    )
    cmd.add_argument(
        "--samples", type=positive, metavar="N", help="smoothgrad: noisy copies (default 50)"
    )
    cmd.add_argument(
        "--noise",
        type=_fraction,
        metavar="F",
        help="smoothgrad: noise std as a fraction of the input's range (default 0.15)",
    )
    cmd.add_argument("--seed", type=index, help="smoothgrad: noise seed (default 0)")
    cmd.add_argument(
        "--steps",
        type=positive,
        metavar="N",
        help="integrated: midpoint-rule steps (default 64); not given, they double up to 512 "
        "while the completeness gap is over 5 percent of f(image) - f(baseline)",
    )
    cmd.add_argument(
        "--baseline", metavar="FILE", help="integrated: an image or .npy (default black)"
    )
    cmd.add_argument(
        "--chunk", type=positive, metavar="N", help="batch items per forward/backward (default 32)"
    )
    cmd.add_argument(
        "--sanity",
        action="store_true",
        help="also run the cascading randomisation check (Adebayo et al. 2018): the layers' "
        "weights randomised from the top, the map's rank correlation with the original after "
        "each; exit 1 when the map stays alike with the top half random",
    )
    add_output(cmd, "MAP.png", "the heat map (the map's .npy files go beside it)", required=True)
    _quiet(cmd)
    _common(cmd)
    hints(cmd, _explain_flags)
    cmd.set_defaults(run=run_saliency)


def run_saliency(args: argparse.Namespace) -> int:
    """Compute the map, write the pictures, print what was computed and written; with
    ``--sanity`` the check's steps and verdict (exit 1: insensitive)."""
    from protoedit.errors import ProtoeditError
    from protoedit.explain.methods import method_object
    from protoedit.explain.sanity import sanity

    if args.target is None and args.logit is None:
        raise ProtoeditError("give --class K, or --target LAYER with a head")
    if not args.output.lower().endswith(".png"):
        raise ProtoeditError(f"-o names the heat map, a .png file, not {args.output!r}")
    arrays_only(args, [args.image] + ([args.baseline] if args.baseline else []))
    method = method_object(
        args.net,
        weights=args.weights,
        target=args.target,
        head=head(args),
        method=args.method,
        baseline=args.baseline,
        preprocess=preprocess(args),
        after_inplace=args.after_inplace,
        target_channels=args.channels,
        timeout=args.timeout,
        **{
            name: getattr(args, name)
            for name in ("samples", "noise", "seed", "steps", "chunk", "layer")
            if getattr(args, name) is not None
        },
        allow_python_layers=args.allow_python_layers,
        strict_weights=args.strict_weights,
    )
    with method:
        result = method.attribute(args.image)
        check = sanity(method, [args.image]) if args.sanity else None
    written = result.save(args.output)
    _rewrite_report(args, result)
    print(f"{result.method} saliency of '{result.target}': f(image) = {result.value:.6g}")
    gap = result.completeness_gap
    if gap is not None and result.baseline_value is not None:
        delta = result.value - result.baseline_value
        share = f" ({abs(gap) / abs(delta):.2%})" if delta else ""
        print(
            f"f(baseline) = {result.baseline_value:.6g}; attributions sum to "
            f"{delta + gap:.6g}, f(image) - f(baseline) = {delta:.6g}, gap {gap:.3g}{share}"
        )
    if len(result.steps_tried) > 1:
        tried = ", ".join(
            f"{steps}: {'-' if share is None else f'{share:.1%}'}"
            for steps, share in result.steps_tried
        )
        print(f"integrated gradients: {result.steps} steps (gap by steps: {tried})")
    print(f"{result.requests} forward/backward requests")
    what = ["input, map, map over the input", "map, H x W", "attributions, C x H x W"]
    for path, description in zip(written, what, strict=False):
        print(f"wrote {path} ({description})")
    if check is None:
        return 0
    for line in check.lines():
        print(f"sanity: {line}")
    return 1 if check.insensitive else 0
