"""LSTM and GRU layers unrolled into plain ops, so they quantize to full-integer int8 like any CNN.

TFLite has no GRU kernel at all and an int8 LSTM kernel the TF calibrator handles only for Keras-made LSTMs; a
recurrent loop (WHILE) crashes it.  With a fixed sequence length the recurrence is a fixed graph: per time step
``t`` and direction, ``x_t`` is taken from the sequence (Gather), the gates are two fully-connected layers
(``x_t W^T + b_W`` and ``h_{t-1} R^T + b_R``, kept apart so the input and the state keep their own int8 scales), split,
and combined with Sigmoid/Tanh/Mul/Add exactly as the ONNX operator defines (LSTM gates i, o, f, c; GRU gates
z, r, h, ``linear_before_reset`` either way); the outputs Y, Y_h (and Y_c) are concatenated from the steps.

Refused, naming the node and why: peephole weights, a ``clip``, ``input_forget``, activations other than the
defaults, per-sample sequence lengths, weights that are not constants, and an unknown sequence length.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedOpError
from .graph import Graph

RNN_OPS = ("LSTM", "GRU")
GATES = {"LSTM": 4, "GRU": 3}
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def unroll(g: Graph, node: Any) -> int:
    """Replace ``node`` (LSTM or GRU) by its unrolled time steps; the number of steps."""
    a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs(node).items()}
    x_shape = g.shape(node.input[0])
    _refuse_unsupported(g, node, a, x_shape)
    layout = int(a.get("layout", 0))
    steps, batch = (x_shape[0], x_shape[1]) if layout == 0 else (x_shape[1], x_shape[0])
    hidden = int(a["hidden_size"])
    n_gates = GATES[node.op_type]
    w, r = g.const_value(node.input[1]), g.const_value(node.input[2])
    b = g.const_value(node.input[3]) if len(node.input) > 3 and node.input[3] else \
        np.zeros((w.shape[0], 2 * n_gates * hidden), np.float32)
    directions = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[a.get("direction", "forward")]
    x = node.input[0]
    if layout == 1:
        x = g.add("Transpose", [x], like=node, perm=[1, 0, 2])
    outs = []
    for d, backwards in enumerate(directions):
        h0 = _state(g, node, 5, d, batch, hidden)
        c0 = _state(g, node, 6, d, batch, hidden) if node.op_type == "LSTM" else None
        step = _lstm_step if node.op_type == "LSTM" else _gru_step
        weights = (g.const(w[d].T.astype(np.float32), "W_t"), g.const(r[d].T.astype(np.float32), "R_t"),
                   b[d, :n_gates * hidden].astype(np.float32), b[d, n_gates * hidden:].astype(np.float32), r[d])
        hs: list[str] = [""] * steps
        h, c = h0, c0
        for t in (reversed(range(steps)) if backwards else range(steps)):
            x_t = g.add("Gather", [x, g.const(np.array(t, np.int64), "t")], like=node, axis=0)
            h, c = step(g, node, x_t, h, c, weights, hidden, int(a.get("linear_before_reset", 0)))
            hs[t] = h
        outs.append((hs, h, c))
    _outputs(g, node, outs, layout, batch, hidden)
    return steps


def _refuse_unsupported(g: Graph, node: Any, a: dict, x_shape: list[int] | None) -> None:
    def refuse(why: str) -> None:
        raise UnsupportedOpError(f"{node.op_type} node '{node.name}' cannot be made full-integer: {why}",
                                 ops=[node.op_type], stage="rewrite")

    if x_shape is None or len(x_shape) != 3:
        refuse("its input's sequence length is not known; fix the input shape (a static ONNX export, or --size) so "
               "the recurrence can be unrolled")
    if a.get("activations") and [s.decode() if isinstance(s, bytes) else s for s in a["activations"]] != \
            DEFAULT_ACTIVATIONS[node.op_type] * (2 if a.get("direction") == "bidirectional" else 1):
        refuse(f"activations {a['activations']} (only the defaults {DEFAULT_ACTIVATIONS[node.op_type]} are unrolled)")
    if a.get("clip") is not None:
        refuse("it clips its cell input ('clip' attribute), which is not unrolled")
    if a.get("input_forget"):
        refuse("it couples the input and forget gates ('input_forget'), which is not unrolled")
    if len(node.input) > 7 and node.input[7]:
        refuse("it has peephole weights (input P), which are not unrolled")
    if len(node.input) > 4 and node.input[4]:
        lens = g.const_value(node.input[4])
        steps = x_shape[0] if int(a.get("layout", 0)) == 0 else x_shape[1]
        if lens is None or not np.all(lens == steps):
            refuse("its sequences have per-sample lengths (sequence_lens), so the number of steps is not fixed")
    for k in (1, 2) + ((3,) if len(node.input) > 3 and node.input[3] else ()):
        if g.const_value(node.input[k]) is None:
            refuse(f"its weights '{node.input[k]}' are computed, not constants")


def _state(g: Graph, node: Any, index: int, d: int, batch: int, hidden: int) -> str | np.ndarray:
    """Initial state of direction ``d``: a constant ([B, H] array; zeros when not given: PyTorch's default) or the
    given tensor's slice.  Constant states are folded into biases, so no op works on a constant."""
    if len(node.input) > index and node.input[index]:
        value = g.const_value(node.input[index])
        if value is None:
            return g.add("Gather", [node.input[index], g.const(np.array(d, np.int64), "dir")], like=node, axis=0)
        return np.broadcast_to(value[d], (batch, hidden)).astype(np.float32)
    return np.zeros((batch, hidden), np.float32)


def _dense(g: Graph, node: Any, x: str, w_t: str, bias: np.ndarray) -> str:
    return g.add("Gemm", [x, w_t, g.const(bias.astype(np.float32), "bias")], like=node)


def _split(g: Graph, node: Any, x: str, parts: int, hidden: int) -> list[str]:
    return g.split(x, [hidden] * parts, 1, like=node)


def _lstm_step(g: Graph, node: Any, x_t: str, h: str | np.ndarray, c: str | np.ndarray, weights: tuple,
               hidden: int, _lbr: int) -> tuple[str, str]:
    w_t, r_t, wb, rb, r = weights
    if isinstance(h, np.ndarray):  # a constant state: its recurrent term is a bias
        gates = _dense(g, node, x_t, w_t, wb + rb + h @ r.T)
    else:
        gates = g.add("Add", [_dense(g, node, x_t, w_t, wb), _dense(g, node, h, r_t, rb)], like=node)
    i, o, f, cc = _split(g, node, gates, 4, hidden)
    i, o, f = (g.add("Sigmoid", [v], like=node) for v in (i, o, f))
    new_c = g.add("Mul", [i, g.add("Tanh", [cc], like=node)], like=node)
    if not (isinstance(c, np.ndarray) and not c.any()):
        kept = g.add("Mul", [f, g.const(c, "c0") if isinstance(c, np.ndarray) else c], like=node)
        new_c = g.add("Add", [kept, new_c], like=node)
    return g.add("Mul", [o, g.add("Tanh", [new_c], like=node)], like=node), new_c


def _gru_step(g: Graph, node: Any, x_t: str, h: str | np.ndarray, c: None, weights: tuple, hidden: int, lbr: int
              ) -> tuple[str, None]:
    w_t, r_t, wb, rb, r = weights
    if isinstance(h, np.ndarray):
        cand, z = _gru_constant_state(g, node, x_t, h, weights, hidden, lbr)
    else:
        xz, xr, xh = _split(g, node, _dense(g, node, x_t, w_t, wb), 3, hidden)
        if lbr:
            hz, hr, hh = _split(g, node, _dense(g, node, h, r_t, rb), 3, hidden)
        else:
            rzr = g.const(r[:2 * hidden].T.astype(np.float32), "R_zr_t")
            hz, hr = _split(g, node, _dense(g, node, h, rzr, rb[:2 * hidden]), 2, hidden)
        z = g.add("Sigmoid", [g.add("Add", [xz, hz], like=node)], like=node)
        rg = g.add("Sigmoid", [g.add("Add", [xr, hr], like=node)], like=node)
        if lbr:
            cand = g.add("Add", [xh, g.add("Mul", [rg, hh], like=node)], like=node)
        else:
            rh = g.const(r[2 * hidden:].T.astype(np.float32), "R_h_t")
            cand = g.add("Add", [xh, _dense(g, node, g.add("Mul", [rg, h], like=node), rh, rb[2 * hidden:])],
                         like=node)
        cand = g.add("Tanh", [cand], like=node)
    if isinstance(h, np.ndarray) and not h.any():  # h_t = (1 - z) * cand
        keep = g.add("Sub", [g.const(np.ones(1, np.float32), "one"), z], like=node)
        return g.add("Mul", [keep, cand], like=node), None
    # h_t = (1 - z) * cand + z * h_{t-1} = cand + z * (h_{t-1} - cand)
    prev = g.const(h, "h0") if isinstance(h, np.ndarray) else h
    return g.add("Add", [cand, g.add("Mul", [z, g.add("Sub", [prev, cand], like=node)], like=node)], like=node), None


def _gru_constant_state(g: Graph, node: Any, x_t: str, h: np.ndarray, weights: tuple, hidden: int, lbr: int
                        ) -> tuple[str, str]:
    """(candidate, z) of a GRU step whose previous state ``h`` is a constant: its recurrent terms become biases."""
    w_t, _, wb, rb, r = weights
    rec = h @ r.T + rb  # [B, 3H]: h R^T + b_R, per gate
    bias = wb + np.concatenate([rec[:, :2 * hidden], np.zeros_like(rec[:, 2 * hidden:])], axis=1)
    if not lbr and not h.any():  # r * (0 R_h^T) = 0: only the bias of the h gate is left
        bias[:, 2 * hidden:] += rb[2 * hidden:]
    xz, xr, xh = _split(g, node, _dense(g, node, x_t, w_t, bias), 3, hidden)
    z = g.add("Sigmoid", [xz], like=node)
    cand = xh
    if lbr and rec[:, 2 * hidden:].any():
        rg = g.add("Sigmoid", [xr], like=node)
        cand = g.add("Add", [xh, g.add("Mul", [rg, g.const(rec[:, 2 * hidden:], "R_h_term")], like=node)], like=node)
    elif not lbr and h.any():
        rg = g.add("Sigmoid", [xr], like=node)
        rh = g.const(r[2 * hidden:].T.astype(np.float32), "R_h_t")
        gated = g.add("Mul", [rg, g.const(h, "h0")], like=node)
        cand = g.add("Add", [xh, _dense(g, node, gated, rh, rb[2 * hidden:])], like=node)
    return g.add("Tanh", [cand], like=node), z


def _outputs(g: Graph, node: Any, outs: list[tuple], layout: int, batch: int, hidden: int) -> None:
    """Y [T, dirs, B, H] (layout 1: [B, T, dirs, H]), Y_h and Y_c [dirs, B, H] (layout 1: [B, dirs, H]) under the
    node's own output names; then the node is removed.

    PyTorch reads Y as [T, B, dirs*H] (a Squeeze of the direction axis, or a Transpose and Reshape when
    bidirectional), with batch_first then as [B, T, dirs*H] (a Transpose): that tensor is made directly from the
    steps, so no rank-4 tensor and no transpose appears (onnx2tf would take the first for an image and move its
    axes, and can mistranslate the second when T equals H)."""
    names = {o.name for o in g.model.graph.output}
    wanted = [k < len(node.output) and bool(node.output[k]) and
              (bool(g.consumers(node.output[k])) or node.output[k] in names) for k in range(3)]
    made: dict[str, str] = {}
    if wanted[0]:
        merged, readers = _merged_sequence_reader(g, node.output[0], len(outs)) if layout == 0 else (None, [])
        if merged is not None:
            batch_first = g.only_consumer(merged)  # PyTorch's batch_first: a Transpose(1, 0, 2) follows
            if batch_first is not None and batch_first.op_type == "Transpose" and \
                    list(g.attrs(batch_first).get("perm", [])) == [1, 0, 2]:
                readers.append(batch_first)
                merged = batch_first.output[0]
            else:
                batch_first = None
            for reader in readers:
                g.remove(reader)
            steps = [g.add("Concat", [o[0][t] for o in outs], like=node, axis=1) if len(outs) > 1 else outs[0][0][t]
                     for t in range(len(outs[0][0]))]
            picks = _step_picks(g, merged, 1 if batch_first else 0, len(steps))
            if picks is not None:  # y[:, k] of single steps (the last one, typically): those steps, no sequence
                for gather, k in picks:
                    g.remove(gather)
                    made[gather.output[0]] = steps[k]
            else:
                shape, axis = (([batch, 1, len(outs) * hidden], 1) if batch_first else
                               ([1, batch, len(outs) * hidden], 0))
                made[merged] = g.add("Concat", [_reshape(g, node, h, shape) for h in steps], like=node, axis=axis)
        else:
            seq_shape, t_axis, d_axis = ([1, 1, batch, hidden], 0, 1) if layout == 0 else ([batch, 1, 1, hidden], 1, 2)
            per_dir = [g.add("Concat", [_reshape(g, node, h, seq_shape) for h in hs], like=node, axis=t_axis)
                       for hs, _, _ in outs]
            made[node.output[0]] = per_dir[0] if len(per_dir) == 1 else g.add("Concat", per_dir, like=node,
                                                                                axis=d_axis)
    last_shape, l_axis = ([1, batch, hidden], 0) if layout == 0 else ([batch, 1, hidden], 1)
    for k in (1, 2):
        if wanted[k]:
            finals = [_reshape(g, node, o[k], last_shape) for o in outs]
            made[node.output[k]] = finals[0] if len(finals) == 1 else g.add("Concat", finals, like=node, axis=l_axis)
    for name, tensor in made.items():  # the new tensors take the names the rest of the graph reads
        g.producer(g.add("Identity", [tensor], like=node)).output[0] = name
    g.remove(node)
    g.remove_unused()


def _step_picks(g: Graph, seq: str, axis: int, steps: int) -> list[tuple[Any, int]] | None:
    """When every reader of ``seq`` is a Gather of one time step (a constant scalar index on ``axis``): those
    (node, step) pairs; else None."""
    users = g.consumers(seq)
    if not users or seq in {o.name for o in g.model.graph.output}:
        return None
    picks = []
    for user in users:
        index = g.const_value(user.input[1]) if user.op_type == "Gather" else None
        if index is None or index.ndim != 0 or int(g.attrs(user).get("axis", 0)) % 3 != axis:
            return None
        picks.append((user, int(index) % steps))
    return picks


def _merged_sequence_reader(g: Graph, y: str, dirs: int) -> tuple[str | None, list[Any]]:
    """(the tensor PyTorch makes from Y as [T, B, dirs*H], the nodes that make it): Squeeze(axis 1) when one
    direction, Transpose(0, 2, 1, 3) then Reshape to [T, B, 2H] when two; (None, []) for any other use of Y."""
    users = g.consumers(y)
    if len(users) != 1 or y in {o.name for o in g.model.graph.output}:
        return None, []
    user = users[0]
    if dirs == 1 and user.op_type == "Squeeze":
        axes = g.const_value(user.input[1]) if len(user.input) > 1 else g.attrs(user).get("axes")
        if axes is not None and list(np.ravel(axes)) == [1]:
            return user.output[0], [user]
    if dirs == 2 and user.op_type == "Transpose" and list(g.attrs(user).get("perm", [])) == [0, 2, 1, 3]:
        nxt = g.only_consumer(user.output[0])
        shape = g.shape(nxt.output[0]) if nxt is not None and nxt.op_type == "Reshape" else None
        y_shape = g.shape(y)
        if shape is not None and y_shape is not None and len(shape) == 3 and shape[2] == 2 * y_shape[3]:
            return nxt.output[0], [user, nxt]
    return None, []


def _reshape(g: Graph, node: Any, x: str, shape: list[int]) -> str:
    return g.add("Reshape", [x, g.const(np.array(shape, np.int64), "shape")], like=node)
