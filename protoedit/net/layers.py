"""The catalogue of Caffe layer types: the one place that knows what each type is.

One row per type, for BVLC Caffe and for the forks whose nets we meet (SSD, py-faster-rcnn,
SegNet, DeepLab, the bundled brocolli build): its categories, its parameter blobs by role,
its ``*_param`` field, its V1 enum name and its shape rule (a rule name that
:mod:`protoedit.net.shapes` implements, ``same`` for a type whose output has its input's
shape).  Lint, shapes, the rewrites, validation, explain, draw and diff read it; adding a
type is a one-row change here.  A fork's schema adds the types its ``*_param`` fields name
(:func:`for_schema`), and :func:`registered_types` reads what a Caffe source tree registers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

# Categories.
DATA = "data"  # reads files or a database; a deploy net has an Input layer instead
LOSS = "loss"  # a loss layer (its top is a loss by default)
ACCURACY = "accuracy"  # compares predictions with labels, no gradient
SAME_SHAPE = "shape-keeping"  # every top has the first bottom's shape
SAME_CHANNELS = "channel-keeping"  # axis 1 of the output is axis 1 of the first input
NO_BACKWARD = "no-backward"  # aborts (or means nothing) in backward under force_backward
NEEDS_LABELS = "needs-labels"  # reads labels or targets: meaningless in a deploy net
IN_PLACE = "in-place-capable"  # Caffe accepts top == bottom
PYTHON = "python"  # user code (python_param module and layer)
READS_SCORES = "reads-scores"  # a final layer whose first input holds the class scores
#: Runs the same on inputs of any height and width: its parameters are sized by channels only
#: (see :mod:`protoedit.net.extent`, which also checks Scale/Bias axes and matching inputs).
ANY_EXTENT = "any-extent"
CATEGORIES = (
    DATA,
    LOSS,
    ACCURACY,
    SAME_SHAPE,
    SAME_CHANNELS,
    NO_BACKWARD,
    NEEDS_LABELS,
    IN_PLACE,
    PYTHON,
    READS_SCORES,
    ANY_EXTENT,
)

#: Shape rules that give a value's channel count from the layer's ``num_output``.
NUM_OUTPUT_RULES = ("conv", "deconv", "inner_product")


@dataclass(frozen=True)
class LayerType:
    """What Caffe does with one layer type (see the module docstring)."""

    name: str
    v1: str | None  # the V1LayerParameter.LayerType enum name
    param_field: str | None  # the LayerParameter field that holds its parameters
    categories: frozenset[str]
    roles: tuple[str, ...]  # parameter blobs in Caffe's order; a missing bias is a prefix
    shape: str | None  # a rule name of net/shapes.py, "same", or None: not inferred
    origin: str  # "BVLC" or the fork that adds it

    def has(self, category: str) -> bool:
        """Whether the type is in ``category`` (one of :data:`CATEGORIES`)."""
        return category in self.categories


# name | V1 enum | *_param field | categories | roles | shape rule, under a ``[origin]`` line.
# Short category names: same = shape-keeping (implies channel-keeping), chan =
# channel-keeping, noback, labels, inplace, scores = reads-scores, extent = any-extent.
# "-" is none.
_TABLE = """
[BVLC]
AbsVal        ABSVAL        -                   same,extent           -           same
Accuracy      ACCURACY      accuracy_param      accuracy,labels,noback,scores -           -
ArgMax        ARGMAX        argmax_param        noback,scores         -           -
BNLL          BNLL          -                   same,inplace,extent   -           same
BatchNorm - batch_norm_param same,inplace,extent mean,variance,scale_factor same
BatchReindex  -             -                   noback                -           -
Bias          -             bias_param          same,inplace,extent   bias        same
Clip          -             clip_param          same,inplace,extent   -           same
Concat        CONCAT        concat_param        extent                -           concat
ContrastiveLoss CONTRASTIVE_LOSS contrastive_loss_param loss,labels           -           -
Convolution   CONVOLUTION   convolution_param   extent                weight,bias conv
Crop          -             crop_param          chan,extent           -           crop
Data          DATA          data_param          data                  -           -
Deconvolution DECONVOLUTION convolution_param   extent                weight,bias deconv
Dropout       DROPOUT       dropout_param       same,inplace,extent   -           same
DummyData     DUMMY_DATA    dummy_data_param    -                     -           -
ELU           -             elu_param           same,inplace,extent   -           same
Eltwise       ELTWISE       eltwise_param       same,extent           -           same
Embed         -             embed_param         noback                weight,bias -
EuclideanLoss EUCLIDEAN_LOSS -                   loss,labels           -           -
Exp           EXP           exp_param           same,inplace,extent   -           same
Filter        -             -                   noback                -           -
Flatten       FLATTEN       flatten_param       extent                -           flatten
HDF5Data      HDF5_DATA     hdf5_data_param     data                  -           -
HDF5Output    HDF5_OUTPUT   hdf5_output_param   noback                -           -
HingeLoss     HINGE_LOSS    hinge_loss_param    loss,labels           -           -
Im2col        IM2COL        convolution_param   -                     -           -
ImageData     IMAGE_DATA    image_data_param    data                  -           -
InfogainLoss  INFOGAIN_LOSS infogain_loss_param loss,labels           -           -
InnerProduct  INNER_PRODUCT inner_product_param -                     weight,bias inner_product
Input         -             input_param         extent                -           input
LRN           LRN           lrn_param           same,extent           -           same
LSTM          -             recurrent_param     -                     -           -
LSTMUnit      -             -                   -                     -           -
Log           -             log_param           same,inplace,extent   -           same
MVN           MVN           mvn_param           same,extent           -           same
MemoryData    MEMORY_DATA   memory_data_param   data                  -           -
MultinomialLogisticLoss MULTINOMIAL_LOGISTIC_LOSS - loss,labels - -
PReLU         -             prelu_param         same,inplace,extent   slope       same
Parameter     -             parameter_param     -                     -           -
Pooling       POOLING       pooling_param       chan,extent           -           pool
Power         POWER         power_param         same,inplace,extent   -           same
Python        -             python_param        python                -           -
RNN           -             recurrent_param     -                     -           -
ReLU          RELU          relu_param          same,inplace,extent   -           same
Reduction     -             reduction_param     extent                -           reduction
Reshape       -             reshape_param       -                     -           reshape
SPP           -             spp_param           -                     -           -
Scale         -             scale_param         same,inplace,extent   scale,bias  same
Sigmoid       SIGMOID       sigmoid_param       same,inplace,extent   -           same
SigmoidCrossEntropyLoss SIGMOID_CROSS_ENTROPY_LOSS - loss,labels - -
Silence       SILENCE       -                   noback,extent         -           -
Slice         SLICE         slice_param         extent                -           slice
Softmax       SOFTMAX       softmax_param       same,scores,extent    -           same
SoftmaxWithLoss SOFTMAX_LOSS  softmax_param       loss,labels,scores    -           -
Split         SPLIT         -                   same,extent           -           same
Swish         -             swish_param         same,inplace,extent   -           same
TanH          TANH          tanh_param          same,inplace,extent   -           same
Threshold     THRESHOLD     threshold_param     same,noback,extent    -           same
Tile          -             tile_param          -                     -           -
WindowData    WINDOW_DATA   window_data_param   data                  -           -

[SSD]
AnnotatedData -             annotated_data_param data                  -           -
DetectionEvaluate -             detection_evaluate_param labels,noback         -           -
DetectionOutput -             detection_output_param noback                -           -
MultiBoxLoss  -             multibox_loss_param loss,labels           -           -
Normalize     -             norm_param          same,extent           scale       same
Permute       -             permute_param       -                     -           -
PriorBox      -             prior_box_param     -                     -           -
VideoData     -             video_data_param    data                  -           -

[py-faster-rcnn]
ROIPooling    -             roi_pooling_param   chan                  -           -
SmoothL1Loss  -             smooth_l1_loss_param loss,labels           -           -

[SegNet]
BN            -             bn_param            same,extent           -           same
DenseImageData -             dense_image_data_param data                  -           -
Upsample      -             upsample_param      chan                  -           -

[DeepLab]
Interp        INTERP        interp_param        chan                  -           -
ImageSegData  IMAGE_SEG_DATA image_data_param    data                  -           -
SegAccuracy   SEG_ACCURACY  seg_accuracy_param  accuracy,labels,noback -           -
MatWrite      MAT_WRITE     mat_write_param     noback                -           -

[SENet]
Axpy          -             -                   -                     -           -

[MobileNet]
DepthwiseConvolution -             convolution_param   extent                weight,bias conv

[brocolli]
BatchNormKyle -             batch_norm_param    same,inplace,extent   -           same
BilinearInterpolate -             bilinear_interpolate_param chan                  -           -
HardSigmoid   -             hardsigmoid_param   same,inplace,extent   -           same
HardSwish     -             -                   same,inplace,extent   -           same
MaxUnPool     -             max_unpool_param    chan                  -           -
PSROIPooling  -             psroi_pooling_param noback                -           -
Pad           -             pad_param           -                     -           -
PixelShuffle  -             pixelshuffle_param  -                     -           -
Proposal      -             proposal_param      noback                -           -
ReLU6         -             relu6_param         same,inplace,extent   -           same
Resize        -             resize_param        chan                  -           -
Unsqueeze     -             unsqueeze_param     -                     -           -
"""

_SHORT = {
    "same": SAME_SHAPE,
    "chan": SAME_CHANNELS,
    "noback": NO_BACKWARD,
    "labels": NEEDS_LABELS,
    "inplace": IN_PLACE,
    "scores": READS_SCORES,
    "extent": ANY_EXTENT,
}


def _none(word: str) -> str | None:
    return None if word == "-" else word


def _rows(table: str) -> Iterator[LayerType]:
    """The entries of :data:`_TABLE`."""
    origin = "BVLC"
    for line in table.splitlines():
        if line.startswith("["):
            origin = line.strip("[]")
        elif line.strip():
            yield _row(line, origin)


def _row(line: str, origin: str) -> LayerType:
    """One :data:`_TABLE` row."""
    name, v1, param, flags, roles, shape = line.split()
    categories = {_SHORT.get(flag, flag) for flag in flags.split(",") if flag != "-"}
    if SAME_SHAPE in categories:
        categories.add(SAME_CHANNELS)
    unknown = categories - set(CATEGORIES)
    if unknown:
        raise ValueError(f"layer type {name}: unknown categories {sorted(unknown)}")
    return LayerType(
        name,
        _none(v1),
        _none(param),
        frozenset(categories),
        tuple(roles.split(",")) if roles != "-" else (),
        _none(shape),
        origin,
    )


class Catalogue:
    """Layer types by name, and by V1 enum name (``by_v1``)."""

    def __init__(self, types: Iterable[LayerType]) -> None:
        self.by_name: dict[str, LayerType] = {}
        for entry in types:
            if entry.name in self.by_name:
                raise ValueError(f"layer type {entry.name} is in the catalogue twice")
            self.by_name[entry.name] = entry
        self.by_v1 = {t.v1: t for t in self.by_name.values() if t.v1}

    def __iter__(self) -> Iterator[LayerType]:
        return iter(self.by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def get(self, name: str) -> LayerType | None:
        """The entry of type ``name`` (``None``: a type we know nothing of)."""
        return self.by_name.get(name)

    def names(self, category: str | None = None, origin: str | None = None) -> frozenset[str]:
        """The type names, of ``category`` and ``origin`` when given."""
        return frozenset(
            t.name
            for t in self
            if (category is None or t.has(category)) and (origin is None or t.origin == origin)
        )

    def extended(self, types: Iterable[LayerType]) -> Catalogue:
        """This catalogue plus ``types`` it does not hold yet."""
        return Catalogue([*self, *(t for t in types if t.name not in self)])


#: Every type we know: BVLC Caffe master's, then the forks'.
CATALOGUE = Catalogue(_rows(_TABLE))

#: The types BVLC Caffe master registers (``REGISTER_LAYER_CLASS``): lint's E205 list.
BVLC_TYPES = CATALOGUE.names(origin="BVLC")


def layer_type(name: str) -> LayerType | None:
    """The catalogue entry of ``name`` (``None`` for a type unknown to it)."""
    return CATALOGUE.get(name)


def _guess(name: str, category: str) -> bool:
    """A type the catalogue does not know is guessed from its name, as forks name them
    (``FooLoss``, and V1 enums such as ``FOO_LOSS``)."""
    suffix = {LOSS: "loss", ACCURACY: "accuracy", DATA: "data"}.get(category)
    folded = name.replace("_", "").lower()
    return suffix is not None and folded.endswith(suffix) and folded != "dummydata"


def is_a(name: str, category: str) -> bool:
    """Whether type ``name`` (or a V1 enum name) is in ``category``; an unknown ``...Loss``,
    ``...Accuracy`` or ``...Data`` type counts as a loss, an accuracy or a data layer."""
    entry = CATALOGUE.get(name) or CATALOGUE.by_v1.get(name)
    return entry.has(category) if entry is not None else _guess(name, category)


def is_loss(name: str) -> bool:
    """A loss layer (fork losses such as ``MultiBoxLoss`` included)."""
    return is_a(name, LOSS)


def is_loss_or_accuracy(name: str) -> bool:
    """A layer that compares with labels: a loss, or an accuracy."""
    return is_loss(name) or is_a(name, ACCURACY)


def no_backward(name: str) -> bool:
    """A layer that aborts in backward or needs labels: harmless to drop when not an ancestor
    of what is measured, fatal to keep on the gradient's path."""
    return is_a(name, NO_BACKWARD) or is_a(name, NEEDS_LABELS) or is_loss(name)


def is_data_layer(layer: Any) -> bool:
    """A layer that feeds the net from files: a data type, or a Python layer with tops and no
    bottoms (FCN's and LRCN's readers are Python layers)."""
    if is_a(layer.type, DATA):
        return True
    return is_a(layer.type, PYTHON) and not len(layer.bottom) and bool(len(layer.top))


def data_param(layer: Any, catalogue: Catalogue | None = None) -> Any:
    """A data layer's own ``*_param`` message (``None`` when its type has none we know);
    ``catalogue`` may be a fork schema's (:func:`for_schema`)."""
    entry = (catalogue or CATALOGUE).get(layer.type)
    if entry is None or entry.param_field is None or not is_data_layer(layer):
        return None
    return getattr(layer, entry.param_field, None)


def param_roles(layer_type: str, count: int, bottoms: int = 1) -> list[str]:
    """The role of each of a layer's ``count`` parameter blobs (``blobK`` when unknown).

    A Scale layer with two bottoms takes its multipliers from the second bottom, so its only
    parameter is the bias.
    """
    entry = CATALOGUE.get(layer_type)
    roles = entry.roles if entry is not None else ()
    if layer_type == "Scale" and bottoms > 1:
        roles = ("bias",)
    if count > len(roles):
        return [*roles, *(f"blob{k}" for k in range(len(roles), count))]
    return list(roles[:count])


def param_key(layer: str, role: str) -> str:
    """The flat key of one parameter, ``LAYER/ROLE`` (e.g. ``conv1/weight``)."""
    return f"{layer}/{role}"


#: ``*_param`` fields of LayerParameter that every layer may carry: no layer type of their own.
GENERAL_PARAMS = ("transform_param", "loss_param")


def schema_types(schema: Any) -> list[LayerType]:
    """The types a schema's ``LayerParameter`` declares ``*_param`` fields for: known ones as
    catalogued, others named after the field's message (``UpsampleParameter`` ->
    ``Upsample``), with the categories their names imply."""
    by_field = {t.param_field: t for t in CATALOGUE if t.param_field}
    found: list[LayerType] = []
    for field in schema.descriptor("LayerParameter").fields:
        if not field.name.endswith("_param") or field.name in GENERAL_PARAMS:
            continue
        if field.name in by_field:
            found.append(by_field[field.name])
            continue
        message = field.message_type.name if field.message_type is not None else ""
        name = message.removesuffix("Parameter") or field.name.removesuffix("_param")
        categories = frozenset(c for c in (DATA, LOSS, ACCURACY) if _guess(name, c))
        found.append(LayerType(name, None, field.name, categories, (), None, schema.path))
    return found


@lru_cache(maxsize=8)
def _for_schema(schema: Any) -> Catalogue:
    return CATALOGUE.extended(schema_types(schema))


def for_schema(schema: Any) -> Catalogue:
    """The catalogue with the types a (fork's) schema adds (see :func:`schema_types`)."""
    return _for_schema(schema)


def source_of(proto: str | Path) -> Path | None:
    """The Caffe source tree a ``caffe.proto`` belongs to (``SRC/src/caffe/proto/``), if any."""
    path = Path(proto).resolve()
    source = path.parents[3] if len(path.parents) > 3 else None
    if source is None or path != source / "src" / "caffe" / "proto" / path.name:
        return None
    return source if (source / "src" / "caffe" / "layers").is_dir() else None


def known_types(schema: Any, builtin: bool) -> frozenset[str] | None:
    """The layer types a net for ``schema`` may use: BVLC's for the built-in schema, what the
    source tree registers for the ``caffe.proto`` of a Caffe checkout, else ``None`` (a lone
    fork schema: its types cannot be told, so none is refused)."""
    if builtin:
        return BVLC_TYPES
    source = source_of(schema.path)
    return registered_types(source) if source is not None else None


_REGISTERED = re.compile(r"^[ \t]*REGISTER_LAYER_(?:CLASS|CREATOR)\(\s*(\w+)", re.MULTILINE)


def registered_types(source: Path) -> frozenset[str]:
    """The layer types a Caffe source tree registers (``REGISTER_LAYER_CLASS``/``_CREATOR``
    lines, commented-out ones excluded): what ``type:`` names its layer factory accepts."""
    types: set[str] = set()
    for path in sorted((source / "src" / "caffe").rglob("*.c[pu]*")):
        if path.suffix in (".cpp", ".cu"):
            types.update(_REGISTERED.findall(path.read_text(encoding="utf-8", errors="replace")))
    return frozenset(types)
