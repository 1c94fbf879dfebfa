"""`make demo`: why protoedit exists, told on a small bundled LeNet-style net.

1. Validate the deploy net as written: the gradient at the input is zero (no force_backward,
   no loss).
2. ``protoedit aux``: force_backward, truncate at ``conv2``, and a loss head whose value is the
   mean of one ``conv2`` channel; the file keeps its comments.  Validate it: the input
   gradient is now non-zero, and it is saved as a picture.
3. From the aux net to pictures, on the digits net trained in Caffe (cached): ``visualize``
   every class, a combined objective and a few ``relu2`` channels, all units of a call in
   one batch; integrated gradients of a held-out digit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protoedit import load
from protoedit.rewrites import LossHead, aux
from protoedit.validate import ValidationReport, validate_net

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test assets of the checkout: tests/assets
DEFAULT_NET = ROOT / "fixtures" / "lenet_deploy.prototxt"


def _show(title: str, report: ValidationReport) -> None:
    print(f"\n=== {title}")
    print(report.format_text())


def main(argv: list[str] | None = None) -> int:
    """Run both validations and say what changed; exit 0 when the story holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net", nargs="?", type=Path, default=DEFAULT_NET)
    parser.add_argument("--target", default="conv2", help="layer whose channel is the target")
    parser.add_argument("--channel", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "demo")
    parser.add_argument("--no-pictures", action="store_true", help="stop after the aux net")
    args = parser.parse_args(argv)

    print(f"protoedit demo: the gradient of one '{args.target}' channel with respect to the input")
    before = validate_net(args.net)
    _show(f"1. {args.net.name} as written", before)
    if before.status == "error":
        return 2

    doc = load(args.net)
    report = aux(doc, args.target, LossHead("channel", args.channel))
    args.out.mkdir(parents=True, exist_ok=True)
    aux_path = args.out / f"{args.net.stem}_aux_{args.target}_c{args.channel}.prototxt"
    doc.save(aux_path)
    print(f"\n=== 2. protoedit aux {args.net.name} --target {args.target} --channel {args.channel}")
    print("\n".join(report.lines()))
    print(f"wrote {aux_path}")
    after = validate_net(aux_path, save_gradients=args.out)
    _show(f"3. {aux_path.name}", after)

    grad_before = before.input_gradients[0]
    grad_after = after.input_gradients[0] if after.input_gradients else None
    print("\n=== summary")
    print(f"as written:  |d loss / d {grad_before.blob}| = {grad_before.norm:.6g}")
    if grad_after is not None:
        print(
            f"aux net:     |d mean({args.target}[:, {args.channel}]) / d {grad_after.blob}| = "
            f"{grad_after.norm:.6g}"
        )
        print(f"picture of that gradient: {args.out / (grad_after.blob + '.png')}")
    story_holds = (not before.ok) and after.ok
    print("the aux net delivers an input gradient" if story_holds else "UNEXPECTED RESULT")
    if not story_holds:
        return 1
    if args.no_pictures:
        return 0
    return pictures(args.out)


def pictures(out: Path) -> int:
    """Step 4: activation maximisation and a saliency map on the trained digits net; prints
    where the files are."""
    import numpy as np

    from protoedit.errors import ProtoeditError
    from protoedit.explain import IntegratedGradients, Preprocess, Settings, Unit, Visualizer
    from tests.assets.digits import trained_digits

    print("\n=== 4. pictures of the trained digits net")
    try:
        model = trained_digits()
        pixels = Preprocess(scale=1 / 255)  # the net reads pixels in [0, 1]
        with Visualizer(
            model.deploy, weights=model.weights, target="ip2", preprocess=pixels
        ) as classes:
            grid = out / "digits_classes.png"
            classes.run(range(10)).save(grid)
            print(f"protoedit visualize --class K, K = 0..9: {grid}")
            grid = out / "digits_3_not_8.png"
            classes.run([Unit(3) - Unit(8)]).save(grid)
            print(f"objectives combine: class 3 minus class 8, in the same worker: {grid}")
        with Visualizer(
            model.deploy,
            weights=model.weights,
            target="relu2",
            settings=Settings(steps=100),
            preprocess=pixels,
        ) as relu2:
            grid = out / "digits_relu2.png"
            relu2.run(range(8)).save(grid)
            print(f"protoedit visualize --target relu2 --channels 0-7: {grid}")
        print("(each grid has one .png and one .npy per unit and a .json summary beside it)")
        held_out = np.load(model.split)
        image, label = held_out["images"][0], int(held_out["labels"][0])
        # An array is the blob as fed: the digit is already in the net's [0, 1] range.
        with IntegratedGradients(
            model.deploy,
            weights=model.weights,
            head=LossHead("logit", label),
            preprocess=pixels,
        ) as integrated:
            salient = integrated.attribute(image)
        written = salient.save(out / "digits_saliency.png")
        print(
            f"protoedit saliency --class {label} --method integrated (a held-out {label}): "
            f"{written[0]} (attributions sum to f(x) - f(black) within "
            f"{abs(salient.completeness_gap or 0.0):.2g})"
        )
    except ProtoeditError as exc:
        print(f"pictures skipped: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
