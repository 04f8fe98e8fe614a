"""A small ONNX graph editor for the rewrites: look up producers, consumers, constants and shapes; add nodes and
constants; replace a node by a new subgraph keeping its output name; rename; then tidy (unused nodes dropped,
topological order, shapes inferred again).

New nodes are written at the model's own opset (:attr:`Graph.opset`): :meth:`Graph.split`, :meth:`Graph.slice`
and :meth:`Graph.pad` give their sizes as an attribute or as an input, whichever that opset defines, and
:meth:`Graph.add` refuses a node the opset's schema does not accept (an opset-12 model must not get an
opset-13 ``Split``)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class Graph:
    def __init__(self, model: Any) -> None:
        from onnx import shape_inference

        try:
            model = shape_inference.infer_shapes(model)
        except Exception:  # noqa: BLE001 - shapes are a help; a model ORT runs is still edited without them
            pass
        self.model = model
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)
        self.renamed: dict[str, str] = {}  # new name -> original name
        self.declared: dict[str, list[int]] = {}  # shapes ONNX shape inference cannot find (contrib-domain ops)
        self._count = 0
        self._index()

    # ---- looking ----------------------------------------------------------------------------------------------
    def _index(self) -> None:
        from onnx import numpy_helper

        g = self.model.graph
        self._producer = {o: n for n in g.node for o in n.output if o}
        self._consumers: dict[str, list[Any]] = {}
        for n in g.node:
            for i in n.input:
                self._consumers.setdefault(i, []).append(n)
        self._consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in g.node:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self._consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self._shapes: dict[str, list[int]] = {}
        for vi in list(g.value_info) + list(g.output) + list(g.input):
            dims = vi.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                self._shapes[vi.name] = [d.dim_value for d in dims]
        self._outputs = {o.name for o in g.output}
        self._taken = self.tensor_names() | {n.name for n in g.node}

    def tensor_names(self) -> set[str]:
        g = self.model.graph
        names = {t for n in g.node for t in list(n.input) + list(n.output) if t}
        return names | {i.name for i in g.initializer} | {v.name for v in list(g.input) + list(g.output)}

    def producer(self, name: str) -> Any | None:
        return self._producer.get(name)

    def consumers(self, name: str) -> list[Any]:
        return list(self._consumers.get(name, []))

    def only_consumer(self, name: str) -> Any | None:
        """The one node reading ``name`` (None when it is read by several, or is a graph output)."""
        users = self._consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self._outputs else None

    def passthrough(self) -> dict[str, str]:
        """{output: input} for each graph output that is a graph input unchanged (itself, or through Identity)."""
        inputs = {i.name for i in self.model.graph.input}
        found = {}
        for out in self.model.graph.output:
            name = out.name
            while name not in inputs and (node := self._producer.get(name)) is not None and node.op_type == "Identity":
                name = node.input[0]
            if name in inputs:
                found[out.name] = name
        return found

    def declare(self, name: str, shape: list[int] | None) -> None:
        """Record ``name``'s float32 shape for nodes ONNX shape inference does not know (onnx2tf needs shapes)."""
        if shape is not None:
            self.declared[name] = list(shape)

    def shape(self, name: str) -> list[int] | None:
        return self._shapes.get(name) or (list(self._consts[name].shape) if name in self._consts else None)

    def const(self, value: np.ndarray, base: str = "const") -> str:
        """A new initializer holding ``value``; its name."""
        from onnx import numpy_helper

        name = self._fresh(base)
        self.model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        self._consts[name] = np.asarray(value)
        return name

    def const_value(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor: an initializer, a Constant, or an Expand/ConstantOfShape/Identity/Cast
        of constants (PyTorch exports a zero initial state as an Expand); None when it is computed from inputs."""
        if name in self._consts:
            return self._consts[name]
        node = self._producer.get(name)
        if node is None:
            return None
        ins = [self.const_value(i) if i else None for i in node.input]
        if node.op_type in ("Identity", "Cast") and ins and ins[0] is not None:
            to = self.attrs(node).get("to")
            if node.op_type == "Cast" and to is not None:
                from onnx import helper

                return ins[0].astype(helper.tensor_dtype_to_np_dtype(to))
            return ins[0]
        if node.op_type == "Expand" and len(ins) == 2 and ins[0] is not None and ins[1] is not None:
            return ins[0] * np.ones(tuple(int(v) for v in ins[1]), ins[0].dtype)
        if node.op_type == "ConstantOfShape" and ins and ins[0] is not None:
            value = self.attrs(node).get("value")
            from onnx import numpy_helper

            fill = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
            return np.full(tuple(int(v) for v in ins[0]), fill.ravel()[0], fill.dtype)
        return None

    def const_value_is(self, name: str | None, value: float, rtol: float = 1e-6) -> bool:
        v = self._consts.get(name) if name else None
        return v is not None and v.size == 1 and bool(np.isclose(float(v.ravel()[0]), value, rtol=rtol, atol=0))

    def other_input(self, node: Any, known: str | None = None) -> str | None:
        """The input of a two-input node that is not ``known`` (without ``known``: the non-constant one)."""
        ins = [i for i in node.input if i]
        if known is not None:
            rest = [i for i in ins if i != known]
        else:
            rest = [i for i in ins if i not in self._consts]
        return rest[0] if len(rest) == 1 else None

    @staticmethod
    def attrs(node: Any) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    # ---- editing ----------------------------------------------------------------------------------------------
    def add(self, op: str, inputs: Sequence[str], *, like: Any = None, domain: str | None = None,
            outputs: int = 1, **attrs: Any) -> Any:
        """Append a node (topological order is restored by :meth:`finish`); its output name (or names)."""
        from onnx import helper

        if not domain:
            self._check_schema(op, inputs, attrs)
        base = f"{like.name if like is not None and like.name else 'rewrite'}/{op}"
        names = [self._fresh(base + "_out") for _ in range(outputs)]
        node = self.model.graph.node.add()  # (append would store a copy, and edits of ``node`` would be lost)
        node.CopyFrom(helper.make_node(op, list(inputs), names, name=self._fresh(base), domain=domain, **attrs))
        for o in names:
            self._producer[o] = node
        for i in inputs:
            self._consumers.setdefault(i, []).append(node)
        return names[0] if outputs == 1 else names

    def _check_schema(self, op: str, inputs: Sequence[str], attrs: dict[str, Any]) -> None:
        """A ValueError when ``op`` with these inputs and attributes is not valid at the model's opset."""
        from onnx import defs

        try:
            schema = defs.get_schema(op, self.opset)
        except Exception:  # noqa: BLE001 - onnx raises SchemaError for an op not defined at that opset
            raise ValueError(f"op {op} does not exist at the model's opset {self.opset}") from None
        unknown = sorted(set(attrs) - set(schema.attributes))
        if not schema.min_input <= len(inputs) <= schema.max_input or unknown:
            extra = f" and attribute(s) {', '.join(unknown)}" if unknown else ""
            raise ValueError(f"{op} with {len(inputs)} input(s){extra} is not valid at the model's opset {self.opset} "
                             f"({op}-{schema.since_version} takes {schema.min_input}..{schema.max_input} inputs)")

    def split(self, x: str, sizes: Sequence[int], axis: int, *, like: Any = None) -> list[str]:
        """``x`` split into ``sizes`` along ``axis``: the sizes as an input from opset 13, an attribute before."""
        if self.opset >= 13:
            return self.add("Split", [x, self.const(np.asarray(sizes, np.int64), "split")], like=like, axis=axis,
                            outputs=len(sizes))
        return self.add("Split", [x], like=like, axis=axis, split=[int(v) for v in sizes], outputs=len(sizes))

    def slice(self, x: str, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int], *,
              like: Any = None, steps: Sequence[int] | None = None) -> str:
        """``x[starts:ends:steps]`` on ``axes``: inputs from opset 10, attributes (no steps) before."""
        if self.opset >= 10:
            ins = [self.const(np.asarray(v, np.int64), n)
                   for v, n in ((starts, "start"), (ends, "stop"), (axes, "axis"), (steps, "step")) if v is not None]
            return self.add("Slice", [x] + ins, like=like)
        return self.add("Slice", [x], like=like, starts=list(starts), ends=list(ends), axes=list(axes))

    def pad(self, x: str, pads: Sequence[int], *, like: Any = None, mode: str = "constant") -> str:
        """``x`` zero-padded by ``pads`` (ONNX order: all begins, then all ends): an input from opset 11, an
        attribute before."""
        if self.opset >= 11:
            return self.add("Pad", [x, self.const(np.asarray(pads, np.int64), "pads")], like=like, mode=mode)
        return self.add("Pad", [x], like=like, mode=mode, pads=[int(v) for v in pads])

    def replace(self, node: Any, new_output: str) -> None:
        """``node`` removed; the node making ``new_output`` now makes ``node``'s output (its name is kept)."""
        maker = self._producer[new_output]
        old = node.output[0]
        maker.output[list(maker.output).index(new_output)] = old
        self.model.graph.node.remove(node)
        self._index()

    def remove(self, node: Any) -> None:
        self.model.graph.node.remove(node)
        self._index()

    def rename(self, old: str, new: str) -> None:
        """Rename a node or a tensor everywhere (graph inputs/outputs, initializers, value infos)."""
        g = self.model.graph
        for n in g.node:
            if n.name == old:
                n.name = new
            for field in (n.input, n.output):
                for k, t in enumerate(field):
                    if t == old:
                        field[k] = new
        for v in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer):
            if v.name == old:
                v.name = new
        self.renamed[new] = self.renamed.pop(old, old)
        self._index()

    def renamed_from(self, original: str) -> str:
        return next((new for new, old in self.renamed.items() if old == original), original)

    def remove_unused(self) -> None:
        """Drop nodes and initializers no graph output depends on."""
        g = self.model.graph
        needed, stack = set(), [o.name for o in g.output]
        while stack:
            t = stack.pop()
            if t in needed:
                continue
            needed.add(t)
            n = self._producer.get(t)
            if n is not None:
                stack.extend(i for i in n.input if i)
        keep = [n for n in g.node if any(o in needed for o in n.output)]
        del g.node[:]
        g.node.extend(keep)
        inits = [i for i in g.initializer if i.name in needed]
        del g.initializer[:]
        g.initializer.extend(inits)
        self._index()

    def finish(self) -> Any:
        """Unused nodes dropped, nodes in topological order, opset of new domains declared, shapes re-inferred."""
        from onnx import helper, shape_inference

        self.remove_unused()
        g = self.model.graph
        ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
        pending, ordered = list(g.node), []
        while pending:
            progress = [n for n in pending if all(i in ready for i in n.input)]
            if not progress:
                raise ValueError(f"the rewritten graph has a cycle or a missing input near {pending[0].name}")
            for n in progress:
                ordered.append(n)
                ready.update(n.output)
            pending = [n for n in pending if n not in progress]
        del g.node[:]
        g.node.extend(ordered)
        domains = {n.domain for n in g.node if n.domain} - {o.domain for o in self.model.opset_import}
        for d in domains:
            self.model.opset_import.append(helper.make_opsetid(d, 1))
        del g.value_info[:]
        for name, dims in self.declared.items():
            g.value_info.append(helper.make_tensor_value_info(name, 1, dims))  # float32
        try:
            self.model = shape_inference.infer_shapes(self.model)
        except Exception:  # noqa: BLE001
            pass
        self._index()
        return self.model

    def _fresh(self, base: str) -> str:
        while True:
            self._count += 1
            name = f"{base}_{self._count}"
            if name not in self._taken:
                self._taken.add(name)
                return name
