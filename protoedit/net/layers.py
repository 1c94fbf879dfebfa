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
#: Backward neither aborts nor reads a label under ``force_backward``, every bottom takes a
#: gradient, and the input gradients are the same whether or not the parameter gradients are
#: computed: validation may skip those (:mod:`protoedit.validate.netplan`).
GATE_SAFE = "gate-safe"
#: Ties the net to one input size: its parameters fix how many values it reads or makes
#: (a fully connected weight, a fixed reshape), so the image cannot be resized before it.
SIZE_BOUND = "size-bound"
#: With a second bottom, that bottom stands for the first parameter blob (Scale's
#: multipliers, Bias's offsets), which the layer then does not have.
BOTTOM_OPERAND = "bottom-operand"
#: Runs the same on inputs of any height and width: its parameters are sized by channels only.
#: The opposite of size-bound, listed type by type so that validation shrinks only what it
#: knows (:mod:`protoedit.net.extent` also checks Scale/Bias axes and matching inputs).
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
    GATE_SAFE,
    SIZE_BOUND,
    BOTTOM_OPERAND,
    ANY_EXTENT,
)

#: Parameter roles Caffe never learns: BatchNorm's statistics, whose ``lr_mult`` it fixes at 0.
STATISTICS = frozenset(["mean", "variance", "scale_factor"])

#: Shape rules that give a value's channel count from the layer's ``num_output``.
NUM_OUTPUT_RULES = ("conv", "deconv", "inner_product")


@dataclass(frozen=True)
class LayerType:
    """What Caffe does with one layer type (see the module docstring)."""

    name: str
    v1: str | None  # the V1LayerParameter.LayerType enum name
    v0: str | None  # the V0 type string (``layers { layer { type: "conv" } }``)
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
# channel-keeping, noback, labels, inplace, scores = reads-scores, gate = gate-safe, sized =
# size-bound, operand = bottom-operand, extent = any-extent.  "-" is none.
_TABLE = """
[BVLC]
AbsVal        ABSVAL        -                   same,gate,extent      -           same
Accuracy      ACCURACY      accuracy_param      accuracy,labels,noback,scores -   -
ArgMax        ARGMAX        argmax_param        noback,scores         -           -
BNLL          BNLL          -                   same,inplace,gate,extent -           same
BatchNorm - batch_norm_param same,inplace,gate,extent mean,variance,scale_factor same
BatchReindex  -             -                   noback                -           -
Bias          -             bias_param          same,inplace,gate,operand,extent bias    same
Clip          -             clip_param          same,inplace,gate,extent -           same
Concat        CONCAT        concat_param        gate,extent           -           concat
ContrastiveLoss CONTRASTIVE_LOSS contrastive_loss_param loss,labels   -           -
Convolution   CONVOLUTION   convolution_param   gate,extent           weight,bias conv
Crop          -             crop_param          chan,gate,extent      -           crop
Data          DATA          data_param          data                  -           -
Deconvolution DECONVOLUTION convolution_param   gate,extent           weight,bias deconv
Dropout       DROPOUT       dropout_param       same,inplace,gate,extent -           same
DummyData     DUMMY_DATA    dummy_data_param    -                     -           -
ELU           -             elu_param           same,inplace,gate,extent -           same
Eltwise       ELTWISE       eltwise_param       same,gate,extent      -           same
Embed         -             embed_param         noback                weight,bias -
EuclideanLoss EUCLIDEAN_LOSS -                  loss,labels,gate      -           -
Exp           EXP           exp_param           same,inplace,gate,extent -           same
Filter        -             -                   noback                -           -
Flatten       FLATTEN       flatten_param       gate,sized,extent     -           flatten
HDF5Data      HDF5_DATA     hdf5_data_param     data                  -           -
HDF5Output    HDF5_OUTPUT   hdf5_output_param   noback                -           -
HingeLoss     HINGE_LOSS    hinge_loss_param    loss,labels           -           -
Im2col        IM2COL        convolution_param   -                     -           -
ImageData     IMAGE_DATA    image_data_param    data                  -           -
InfogainLoss  INFOGAIN_LOSS infogain_loss_param loss,labels           -           -
InnerProduct  INNER_PRODUCT inner_product_param gate,sized            weight,bias inner_product
Input         -             input_param         gate,extent           -           input
LRN           LRN           lrn_param           same,gate,extent      -           same
LSTM          -             recurrent_param     -                     -           -
LSTMUnit      -             -                   -                     -           -
Log           -             log_param           same,inplace,gate,extent -           same
MVN           MVN           mvn_param           same,gate,extent      -           same
MemoryData    MEMORY_DATA   memory_data_param   data                  -           -
MultinomialLogisticLoss MULTINOMIAL_LOGISTIC_LOSS - loss,labels       -           -
PReLU         -             prelu_param         same,inplace,gate,extent slope       same
Parameter     -             parameter_param     -                     -           -
Pooling       POOLING       pooling_param       chan,gate,extent      -           pool
Power         POWER         power_param         same,inplace,gate,extent -           same
Python        -             python_param        python                -           -
RNN           -             recurrent_param     -                     -           -
ReLU          RELU          relu_param          same,inplace,gate,extent -           same
Reduction     -             reduction_param     gate,extent           -           reduction
Reshape       -             reshape_param       gate,sized            -           reshape
SPP           -             spp_param           -                     -           -
Scale         -             scale_param         same,inplace,gate,operand,extent scale,bias same
Sigmoid       SIGMOID       sigmoid_param       same,inplace,gate,extent -           same
SigmoidCrossEntropyLoss SIGMOID_CROSS_ENTROPY_LOSS - loss,labels      -           -
Silence       SILENCE       -                   noback,gate,extent    -           -
Slice         SLICE         slice_param         gate,extent           -           slice
Softmax       SOFTMAX       softmax_param       same,scores,gate,extent -           same
SoftmaxWithLoss SOFTMAX_LOSS softmax_param      loss,labels,scores    -           -
Split         SPLIT         -                   same,gate,extent      -           same
Swish         -             swish_param         same,inplace,gate,extent -           same
TanH          TANH          tanh_param          same,inplace,gate,extent -           same
Threshold     THRESHOLD     threshold_param     same,noback,extent    -           same
Tile          -             tile_param          gate                  -           -
WindowData    WINDOW_DATA   window_data_param   data                  -           -

[SSD]
AnnotatedData -             annotated_data_param data                 -           -
DetectionEvaluate -         detection_evaluate_param labels,noback    -           -
DetectionOutput -           detection_output_param noback             -           -
MultiBoxLoss  -             multibox_loss_param loss,labels           -           -
Normalize     -             norm_param          same,extent           scale       same
Permute       -             permute_param       -                     -           permute
PriorBox      -             prior_box_param     -                     -           prior_box
VideoData     -             video_data_param    data                  -           -

[py-faster-rcnn]
ROIPooling    -             roi_pooling_param   chan                  -           -
SmoothL1Loss  -             smooth_l1_loss_param loss,labels          -           -

[SegNet]
BN            -             bn_param            same,extent           scale,shift same
DenseImageData -            dense_image_data_param data               -           -
Upsample      -             upsample_param      chan                  -           -

[DeepLab]
Interp        INTERP        interp_param        chan                  -           -
ImageSegData  IMAGE_SEG_DATA image_data_param   data                  -           -
SegAccuracy   SEG_ACCURACY  seg_accuracy_param  accuracy,labels,noback -          -
MatWrite      MAT_WRITE     mat_write_param     noback                -           -

[SENet]
Axpy          -             -                   -                     -           second

[MobileNet]
DepthwiseConvolution -      convolution_param   extent                weight,bias conv

[brocolli]
BatchNormKyle -             batch_norm_param    same,inplace,extent   -           same
BilinearInterpolate -       bilinear_interpolate_param chan           -           -
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

#: V0 type string -> V1 enum name, for the types V0 had (Caffe's ``UpgradeV0LayerType``).
_V0_TABLE = """
accuracy ACCURACY          bnll BNLL                  concat CONCAT        conv CONVOLUTION
data DATA                  dropout DROPOUT            euclidean_loss EUCLIDEAN_LOSS
flatten FLATTEN            hdf5_data HDF5_DATA        hdf5_output HDF5_OUTPUT
im2col IM2COL              images IMAGE_DATA          infogain_loss INFOGAIN_LOSS
innerproduct INNER_PRODUCT lrn LRN                    pool POOLING         relu RELU
multinomial_logistic_loss MULTINOMIAL_LOGISTIC_LOSS   sigmoid SIGMOID      softmax SOFTMAX
softmax_loss SOFTMAX_LOSS  split SPLIT                tanh TANH            window_data WINDOW_DATA
"""

#: What ``protoedit summary`` counts per type: type | FLOPs formula | receptive-field rule.
#: The formulas (:mod:`protoedit.net.costs`, per output element unless said; MAC =
#: multiply-add = 2 FLOPs, ``op`` = 1 FLOP): conv = (C_in/group)·k_h·k_w MACs + 1 op (bias);
#: deconv = the same per input element, the bias per output; inner_product = K MACs + 1 op;
#: pool = k_h·k_w ops (global: the input's size); elementwise = 1 op; batchnorm = 2 ops;
#: scale = 1 MAC (1 op without a bias); axpy = 1 MAC; eltwise = (inputs-1) ops (SUM with
#: coefficients: inputs more); lrn = local_size MACs (WITHIN_CHANNEL: local_size²) + 2 ops;
#: softmax = 3 ops; normalize = 1 MAC + 2 ops; reduction = 1 op per input element; free = 0.
#: Field rules (:mod:`protoedit.net.receptive`): window (a kernel, stride, pad, dilation),
#: deconv, point (each output position sees the same positions of its inputs), crop, global
#: (every input position), axis (point when its axis is 0 or 1), lrn, normalize.  A type
#: without a row (or a "-") has no rule: its summary says "unknown", never a guess.
_SUMMARY_TABLE = """
AbsVal elementwise point            Accuracy - -              ArgMax - -
BNLL elementwise point              BatchNorm batchnorm point Bias elementwise point
Clip elementwise point              Concat free axis          Convolution conv window
Crop free crop                      Deconvolution deconv deconv Dropout free point
ELU elementwise point               Eltwise eltwise point     Embed free -
Exp elementwise point               Flatten free global       InnerProduct inner_product global
Input free -                        LRN lrn lrn               Log elementwise point
MVN - global                        PReLU elementwise point   Pooling pool window
Power elementwise point             ReLU elementwise point    Reduction reduction global
Reshape free global                 Scale scale point         Sigmoid elementwise point
Silence free -                      Slice free axis           Softmax softmax axis
Split free point                    Swish elementwise point   TanH elementwise point
Threshold elementwise point         Normalize normalize normalize Permute free -
BN scale point                      Axpy axpy point           DepthwiseConvolution conv window
BatchNormKyle batchnorm point       HardSigmoid elementwise point HardSwish elementwise point
ReLU6 elementwise point             Upsample free -           Interp - -
PriorBox free -                     DetectionOutput - -
"""


def _summary_rules(table: str) -> dict[str, tuple[str | None, str | None]]:
    """:data:`_SUMMARY_TABLE` as type -> (FLOPs formula, receptive-field rule)."""
    words = table.split()
    return {
        name: (_none(cost), _none(field))
        for name, cost, field in zip(words[::3], words[1::3], words[2::3], strict=True)
    }


def summary_rules(name: str) -> tuple[str | None, str | None]:
    """A type's FLOPs formula and receptive-field rule (``None``: it has none)."""
    return _SUMMARY_RULES.get(name, (None, None))


_SHORT = {
    "same": SAME_SHAPE,
    "chan": SAME_CHANNELS,
    "noback": NO_BACKWARD,
    "labels": NEEDS_LABELS,
    "inplace": IN_PLACE,
    "scores": READS_SCORES,
    "gate": GATE_SAFE,
    "sized": SIZE_BOUND,
    "operand": BOTTOM_OPERAND,
    "extent": ANY_EXTENT,
}


def _none(word: str) -> str | None:
    return None if word == "-" else word


def _rows(table: str, v0_table: str) -> Iterator[LayerType]:
    """The entries of :data:`_TABLE`, with their V0 names from :data:`_V0_TABLE`."""
    words = v0_table.split()
    v0_of = dict(zip(words[1::2], words[::2], strict=True))
    origin = "BVLC"
    for line in table.splitlines():
        if line.startswith("["):
            origin = line.strip("[]")
        elif line.strip():
            yield _row(line, origin, v0_of)


def _row(line: str, origin: str, v0_of: dict[str, str]) -> LayerType:
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
        v0_of.get(v1),
        _none(param),
        frozenset(categories),
        tuple(roles.split(",")) if roles != "-" else (),
        _none(shape),
        origin,
    )


class Catalogue:
    """Layer types by name, by V1 enum name (``by_v1``) and by V0 type string (``by_v0``)."""

    def __init__(self, types: Iterable[LayerType]) -> None:
        self.by_name: dict[str, LayerType] = {}
        for entry in types:
            if entry.name in self.by_name:
                raise ValueError(f"layer type {entry.name} is in the catalogue twice")
            self.by_name[entry.name] = entry
        self.by_v1 = {t.v1: t for t in self.by_name.values() if t.v1}
        self.by_v0 = {t.v0: t for t in self.by_name.values() if t.v0}

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


_SUMMARY_RULES = _summary_rules(_SUMMARY_TABLE)

#: Every type we know: BVLC Caffe master's, then the forks'.
CATALOGUE = Catalogue(_rows(_TABLE, _V0_TABLE))

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


def type_name(layer: Any) -> str:
    """A layer's type as the catalogue looks it up: a ``LayerParameter``'s ``type``, or the
    enum name of a V1 layer's (``DATA``, ``IMAGE_DATA``: found through ``by_v1``)."""
    kind = layer.type
    if isinstance(kind, str):
        return kind
    value = layer.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number.get(kind)
    return str(value.name) if value is not None else str(kind)


def is_data_layer(layer: Any) -> bool:
    """A layer that feeds the net from files: a data type, or a Python layer with tops and no
    bottoms (FCN's and LRCN's readers are Python layers).  V1 ``layers`` count too."""
    kind = type_name(layer)
    if is_a(kind, DATA):
        return True
    return is_a(kind, PYTHON) and not len(layer.bottom) and bool(len(layer.top))


def data_param(layer: Any, catalogue: Catalogue | None = None) -> Any:
    """A data layer's own ``*_param`` message (``None`` when its type has none we know);
    ``catalogue`` may be a fork schema's (:func:`for_schema`)."""
    entry = (catalogue or CATALOGUE).get(layer.type)
    if entry is None or entry.param_field is None or not is_data_layer(layer):
        return None
    return getattr(layer, entry.param_field, None)


def param_roles(layer_type: str, count: int, bottoms: int = 1) -> list[str]:
    """The role of each of a layer's ``count`` parameter blobs (``blobK`` when unknown).

    A Scale (or Bias) layer with two bottoms takes its multipliers (offsets) from the second
    bottom, so its first role is not a parameter (:data:`BOTTOM_OPERAND`).
    """
    entry = CATALOGUE.get(layer_type)
    roles = entry.roles if entry is not None else ()
    if entry is not None and entry.has(BOTTOM_OPERAND) and bottoms > 1:
        roles = roles[1:]
    if count > len(roles):
        return [*roles, *(f"blob{k}" for k in range(len(roles), count))]
    return list(roles[:count])


def param_blobs(layer: Any) -> tuple[str, ...] | None:
    """The roles of the parameter blobs Caffe gives ``layer`` (a ``LayerParameter``), in order:
    the bias is left out when the layer's ``*_param`` sets ``bias_term: false`` (Scale's
    default), the first role when a second bottom stands for it.  ``None`` for a type the
    catalogue does not know; a type whose roles it does not list gets ``()``."""
    entry = CATALOGUE.get(layer.type)
    if entry is None:
        return None
    roles = entry.roles
    if entry.has(BOTTOM_OPERAND) and len(layer.bottom) > 1:
        roles = roles[1:]
    message = getattr(layer, entry.param_field, None) if entry.param_field else None
    if "bias" in roles and not getattr(message, "bias_term", True):
        roles = tuple(role for role in roles if role != "bias")
    return roles


def learnt_param_count(layer: Any) -> int | None:
    """How many of ``layer``'s parameter blobs, from the first, Caffe learns (``lr_mult``
    applies to them; :data:`STATISTICS` it never learns); ``None`` for an unknown type."""
    roles = param_blobs(layer)
    if roles is None:
        return None
    return next((k for k, role in enumerate(roles) if role in STATISTICS), len(roles))


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
        found.append(LayerType(name, None, None, field.name, categories, (), None, schema.path))
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
