"""A `.tflite` flatbuffer's first subgraph as mutable Python objects, with
the lookups the post-conversion rewrites need (LiteRT's own
`flatbuffer_utils` and schema)."""

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils


class Graph:
    """The first subgraph of a model, with producer / consumer lookups."""

    def __init__(self, model):
        self.model = model
        self.graph = model.subgraphs[0]
        self.producer, self.consumers = {}, {}
        for index, op in enumerate(self.graph.operators):
            for tensor in op.outputs:
                self.producer[tensor] = index
            for tensor in op.inputs:
                self.consumers.setdefault(tensor, []).append(index)

    def code(self, op):
        return flatbuffer_utils.get_builtin_code_from_operator_code(
            self.model.operatorCodes[op.opcodeIndex])

    def tensor(self, index):
        return self.graph.tensors[index]

    def is_constant(self, index):
        return index >= 0 and self.model.buffers[self.tensor(index).buffer].data is not None

    def values(self, index, dtype):
        data = self.model.buffers[self.tensor(index).buffer].data
        return np.frombuffer(bytes(data), dtype=dtype).reshape(self.tensor(index).shape)

    def scales(self, index):
        """The tensor's quantization scales, or None where it has none."""
        quantization = self.tensor(index).quantization
        if quantization is None or quantization.scale is None or len(quantization.scale) == 0:
            return None
        return np.asarray(quantization.scale, np.float64)

    def only_consumer(self, tensor):
        consumers = self.consumers.get(tensor, [])
        return consumers[0] if len(consumers) == 1 else None

    def add_constant(self, name, array, quantization=None):
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(array.tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.name = name
        tensor.shape = list(array.shape)
        tensor.type = {np.dtype(np.int32): schema.TensorType.INT32,
                       np.dtype(np.int8): schema.TensorType.INT8}[array.dtype]
        tensor.buffer = len(self.model.buffers) - 1
        tensor.quantization = quantization
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def opcode_index(self, builtin, version):
        for index, code in enumerate(self.model.operatorCodes):
            if flatbuffer_utils.get_builtin_code_from_operator_code(code) == builtin:
                return index
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = version
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    @classmethod
    def read(cls, content):
        """The graph of `content`, or None for a model of several subgraphs
        (none of ours: the rewrites leave such a model as it is)."""
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
        return cls(model) if len(model.subgraphs) == 1 else None

    def write(self):
        return bytes(flatbuffer_utils.convert_object_to_bytearray(self.model))


def drop_unused(model):
    """Removes tensors no operator, input or output refers to (renumbering
    the rest) and empties buffers no tensor refers to."""
    graph = model.subgraphs[0]
    used = sorted({t for op in graph.operators for t in (*op.inputs, *op.outputs) if t >= 0}
                  | set(graph.inputs) | set(graph.outputs))
    new_index = {old: new for new, old in enumerate(used)}
    graph.tensors = [graph.tensors[old] for old in used]
    for op in graph.operators:
        op.inputs = [new_index[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [new_index[t] for t in op.outputs]
    graph.inputs = [new_index[t] for t in graph.inputs]
    graph.outputs = [new_index[t] for t in graph.outputs]
    for signature in model.signatureDefs or []:
        for tensor_map in (*(signature.inputs or []), *(signature.outputs or [])):
            tensor_map.tensorIndex = new_index[tensor_map.tensorIndex]
    referenced = {t.buffer for g in model.subgraphs for t in g.tensors}
    referenced |= {m.buffer for m in model.metadata or []}
    for index, buffer in enumerate(model.buffers):
        if index not in referenced:
            buffer.data = None
