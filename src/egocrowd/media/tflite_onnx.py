"""A TFLite model (the ops of MediaPipe's palm detector) read into an ONNX graph, run by onnxruntime.

Why by hand: OpenCV's DNN module runs the palm model's 5x5 depthwise convolutions on a slow generic
path (~50 ms a picture on one core, as much as decoding 10 frames of 720p), while onnxruntime, which
the de-identifiers already use, runs the same graph in a few milliseconds. The converters that
exist (tf2onnx, tflite2onnx) pull TensorFlow or are unmaintained; a float32 TFLite graph of a dozen
op kinds maps onto ONNX one op to one op, so this reads the flatbuffer with the ``flatbuffers``
runtime (an onnxruntime dependency) and TFLite's published schema field numbers.

Only what the palm model uses is supported; any other op raises ``NotImplementedError`` and the
caller falls back to OpenCV. Activations are kept channels-first (NCHW, as ``cv2.dnn.blobFromImage``
gives them); weights are transposed once at load.
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np
import onnx
from flatbuffers import number_types as nt
from flatbuffers.table import Table
from onnx import TensorProto, helper, numpy_helper

# BuiltinOperator codes (tensorflow/lite/schema/schema.fbs).
_ADD, _CONCAT, _CONV, _DWCONV, _DEQUANTIZE, _MAX_POOL = 0, 2, 3, 4, 6, 17
_RESHAPE, _RESIZE_BILINEAR, _PAD, _PRELU = 22, 23, 34, 54
# TensorType -> numpy.
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _field(t: Table, i: int) -> int:
    return int(t.Offset(4 + 2 * i))


def _scalar(t: Table, i: int, flags: Any, default: int = 0) -> int:
    o = _field(t, i)
    return int(t.Get(flags, t.Pos + o)) if o else default


def _tables(t: Table, i: int) -> list[Table]:
    o = _field(t, i)
    if not o:
        return []
    start = t.Vector(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * k)) for k in range(t.VectorLen(o))]


def _ints(t: Table, i: int) -> list[int]:
    o = _field(t, i)
    return [int(x) for x in t.GetVectorAsNumpy(nt.Int32Flags, o)] if o else []


def _table(t: Table, i: int) -> Table | None:
    o = _field(t, i)
    return Table(t.Bytes, t.Indirect(t.Pos + o)) if o else None


def _same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    # TensorFlow's SAME: output ceil(size / stride), the odd pixel of padding at the end.
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def to_onnx(data: bytes) -> onnx.ModelProto:
    """The first subgraph of the TFLite model ``data`` as an ONNX model with input ``input`` (NCHW)."""
    buf = bytearray(data)
    model = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    codes = [
        max(_scalar(c, 3, nt.Int32Flags), _scalar(c, 0, nt.Int8Flags)) for c in _tables(model, 1)
    ]  # builtin_code, or the deprecated byte field in old files
    buffers = _tables(model, 4)
    graph = _tables(model, 2)[0]
    tensors = _tables(graph, 0)
    shapes = [_ints(t, 0) for t in tensors]
    consts: dict[int, np.ndarray] = {}
    for k, t in enumerate(tensors):
        b = buffers[_scalar(t, 2, nt.Uint32Flags)]
        o = _field(b, 0)
        if o and b.VectorLen(o):
            raw = b.GetVectorAsNumpy(nt.Uint8Flags, o).tobytes()
            consts[k] = np.frombuffer(raw, _DTYPES[_scalar(t, 1, nt.Int8Flags)]).reshape(shapes[k])

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    nchw: set[int] = set(_ints(graph, 1))  # the input is fed channels-first

    def name(k: int) -> str:
        return f"t{k}"

    def const(label: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, label))
        return label

    def activation(out: str, fused: int) -> str:
        if fused == 0:
            return out
        pre = out + "_pre"
        if fused == 1:
            nodes.append(helper.make_node("Relu", [pre], [out]))
        elif fused == 3:
            nodes.append(
                helper.make_node(
                    "Clip",
                    [pre, const(out + "_lo", np.array(0, np.float32)), const(out + "_hi", np.array(6, np.float32))],
                    [out],
                )
            )
        else:
            raise NotImplementedError(f"fused activation {fused}")
        return pre

    inputs = _ints(graph, 1)
    outputs = _ints(graph, 2)
    for op in _tables(graph, 3):
        code = codes[_scalar(op, 0, nt.Uint32Flags)]
        ins, outs = _ints(op, 1), _ints(op, 2)
        opts = _table(op, 4)
        out = outs[0]
        if code == _DEQUANTIZE:  # float16 weights: widen them once here
            consts[out] = consts[ins[0]].astype(np.float32)
            continue
        x = name(ins[0])
        if code in (_CONV, _DWCONV):
            assert opts is not None
            n, h, w, c = shapes[ins[0]]
            weight = consts[ins[1]].astype(np.float32)
            depthwise = code == _DWCONV
            # OHWI -> OIHW; depthwise 1HWC -> C1HW
            weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
            kh, kw = weight.shape[2:]
            sw, sh = _scalar(opts, 1, nt.Int32Flags, 1), _scalar(opts, 2, nt.Int32Flags, 1)
            fused = _scalar(opts, 4 if depthwise else 3, nt.Int8Flags)
            dw = _scalar(opts, 5 if depthwise else 4, nt.Int32Flags, 1)
            dh = _scalar(opts, 6 if depthwise else 5, nt.Int32Flags, 1)
            if _scalar(opts, 0, nt.Int8Flags) == 0:  # SAME
                (pt, pb), (pl, pr) = _same_pads(h, kh, sh, dh), _same_pads(w, kw, sw, dw)
            else:
                pt = pb = pl = pr = 0
            args = [x, const(f"w{out}", weight)]
            if len(ins) > 2 and ins[2] >= 0:
                args.append(const(f"b{out}", consts[ins[2]].astype(np.float32).ravel()))
            target = activation(name(out), fused)
            nodes.append(
                helper.make_node(
                    "Conv",
                    args,
                    [target],
                    kernel_shape=[kh, kw],
                    strides=[sh, sw],
                    dilations=[dh, dw],
                    pads=[pt, pl, pb, pr],
                    group=c if depthwise else 1,
                )
            )
        elif code == _MAX_POOL:
            assert opts is not None
            n, h, w, c = shapes[ins[0]]
            sw, sh = _scalar(opts, 1, nt.Int32Flags, 1), _scalar(opts, 2, nt.Int32Flags, 1)
            fw, fh = _scalar(opts, 3, nt.Int32Flags, 1), _scalar(opts, 4, nt.Int32Flags, 1)
            if _scalar(opts, 0, nt.Int8Flags) == 0:
                (pt, pb), (pl, pr) = _same_pads(h, fh, sh), _same_pads(w, fw, sw)
            else:
                pt = pb = pl = pr = 0
            target = activation(name(out), _scalar(opts, 5, nt.Int8Flags))
            nodes.append(
                helper.make_node(
                    "MaxPool", [x], [target], kernel_shape=[fh, fw], strides=[sh, sw], pads=[pt, pl, pb, pr]
                )
            )
        elif code == _ADD:
            if ins[1] in consts:
                raise NotImplementedError("ADD of a constant")
            target = activation(name(out), _scalar(opts, 0, nt.Int8Flags) if opts else 0)
            nodes.append(helper.make_node("Add", [x, name(ins[1])], [target]))
        elif code == _PRELU:
            slope = consts[ins[1]].astype(np.float32)
            slope = slope.reshape(-1, 1, 1) if len(shapes[ins[0]]) == 4 else slope
            nodes.append(helper.make_node("PRelu", [x, const(f"a{out}", slope)], [name(out)]))
        elif code == _PAD:
            p = consts[ins[1]].astype(np.int64)  # [[before, after]] per NHWC axis
            order = [0, 3, 1, 2]
            pads = np.array([p[a, 0] for a in order] + [p[a, 1] for a in order], np.int64)
            nodes.append(helper.make_node("Pad", [x, const(f"p{out}", pads)], [name(out)], mode="constant"))
        elif code == _RESIZE_BILINEAR:
            assert opts is not None
            n, h, w, c = shapes[out]
            if _scalar(opts, 2, nt.BoolFlags):
                mode = "align_corners"
            elif _scalar(opts, 3, nt.BoolFlags):
                mode = "half_pixel"
            else:
                mode = "asymmetric"
            sizes = const(f"s{out}", np.array([n, c, h, w], np.int64))
            nodes.append(
                helper.make_node(
                    "Resize", [x, "", "", sizes], [name(out)], mode="linear", coordinate_transformation_mode=mode
                )
            )
        elif code == _RESHAPE:
            src = x
            if ins[0] in nchw:  # TFLite flattens channels-last
                src = x + "_nhwc"
                nodes.append(helper.make_node("Transpose", [x], [src], perm=[0, 2, 3, 1]))
            shape = const(f"r{out}", np.array(shapes[out], np.int64))
            nodes.append(helper.make_node("Reshape", [src, shape], [name(out)]))
        elif code == _CONCAT:
            assert opts is not None
            axis = _scalar(opts, 0, nt.Int32Flags)
            rank = len(shapes[out])
            axis %= rank
            if ins[0] in nchw:
                axis = _NHWC_TO_NCHW_AXIS[axis]
            target = activation(name(out), _scalar(opts, 1, nt.Int8Flags))
            nodes.append(helper.make_node("Concat", [name(i) for i in ins], [target], axis=axis))
        else:
            raise NotImplementedError(f"TFLite builtin op {code}")
        if len(shapes[out]) == 4 and code != _RESHAPE:
            nchw.add(out)

    (inp,) = inputs
    n, h, w, c = shapes[inp]
    graph_proto = helper.make_graph(
        nodes,
        "tflite",
        [helper.make_tensor_value_info(name(inp), TensorProto.FLOAT, [n, c, h, w])],
        [helper.make_tensor_value_info(name(k), TensorProto.FLOAT, shapes[k]) for k in outputs],
        inits,
    )
    onnx_model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 8
    return onnx_model
