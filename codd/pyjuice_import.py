"""Read a pyjuice `.jpc` file (the released CoDD circuits) into our HMM.

A `.jpc` file is a pickle of pyjuice's node list (root last): dicts with `type`
(Input/Product/Sum), `num_node_blocks` and `block_size` (older pyjuice:
`num_node_groups`, `group_size`), `chs`, `edge_ids`, `params` (numpy), `scope`,
`source_node` (parameter tying), and for inputs `dist`, itself a pickled
distribution object. pyjuice needs CUDA, and a pickle can run arbitrary code, so
we read the file with an unpickler that resolves only numpy array reconstruction
and the known emission distributions (as inert stand-ins); any other global
is refused before it is called.

A homogeneous HMM over W positions is the chain

    root Sum (initial distribution) -> Product(Input_0, Sum_0) -> Product(Input_1, Sum_1)
    -> ... -> Product(Input_{W-1})

where one Input node carries the emission table (N*V floats, row h = hidden state)
and the others tie to it, and one Sum node carries the transition blocks
(`params[k]` is the block at `edge_ids[:, k] = (parent_block, child_block)`, i.e.
rows z_t, columns z_{t+1}) and the others tie to it.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from codd.hmm import HMM
from harness.errors import HarnessError


class PyjuiceDistribution:
    """Inert stand-in for a pickled pyjuice distribution: it records the constructor
    arguments (`__reduce__`-style pickles) or the state (default pickles), nothing more."""

    args: tuple = ()
    state: dict = {}

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}

    @property
    def num_cats(self):
        return self.state.get("num_cats", self.args[0] if self.args else None)


class Categorical(PyjuiceDistribution):
    pass


class ExternProductCategorical(PyjuiceDistribution):
    """Categorical whose probabilities are multiplied by external ones at inference: the CoDD input node."""


class _ArrayType:
    """What `numpy.ndarray` resolves to: a marker for `_array_shell`, not the class itself,
    so a pickle cannot call ndarray(...) with arguments of its choosing."""


_ARRAY_TYPE = _ArrayType()


def _array_shell(subtype, shape, typecode):
    """numpy's array reconstructor, limited to plain ndarrays; BUILD then sets shape, dtype and data."""
    if subtype is not _ARRAY_TYPE:
        raise HarnessError(f"refuses to rebuild an array of type {type(subtype).__name__}")
    return np.empty(0, dtype=np.uint8)


def _numeric_dtype(spec, align=False, copy=True):
    dtype = np.dtype(spec)
    if dtype.kind not in "biuf":
        raise HarnessError(f"refuses array dtype {dtype} (only numeric arrays belong in a circuit file)")
    return dtype


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _array_shell,
    ("numpy._core.multiarray", "_reconstruct"): _array_shell,
    ("numpy", "ndarray"): _ARRAY_TYPE,
    ("numpy", "dtype"): _numeric_dtype,
    ("pyjuice.nodes.distributions.categorical", "Categorical"): Categorical,
    ("pyjuice.nodes.distributions.external_categorical", "ExternProductCategorical"): ExternProductCategorical,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise HarnessError(f"refuses to load {module}.{name}: not part of a pyjuice HMM file") from None


class _NotAnHmm(Exception):
    """The file is corrupt or not a homogeneous pyjuice HMM; the message says why."""


def _check_lengths(data: bytes) -> None:
    """Walk the opcodes without building anything: a corrupt length field fails here on the bytes
    there are, where the unpickler would first allocate the gigabytes it claims (or a memo as long
    as a corrupt index)."""
    with warnings.catch_warnings():  # a corrupt protocol-0 string's escapes warn before they fail
        warnings.simplefilter("ignore", DeprecationWarning)
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > len(data):
                raise ValueError(f"memo index {arg} beyond what {len(data)} bytes can hold")


def _unpickle(data: bytes, what: str):
    try:
        _check_lengths(data)
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except HarnessError:
        raise
    except Exception as err:  # a corrupt pickle fails in many ways; all mean the same to the user
        reason = " ".join(str(err).split())
        raise _NotAnHmm(f"{what} is not a readable pickle ({type(err).__name__}: {reason})") from None


@dataclass(frozen=True)
class _Node:
    index: int
    kind: str
    num_blocks: int
    block_size: int
    chs: tuple[int, ...]
    edge_ids: np.ndarray | None
    params: np.ndarray | None
    scope: object
    dist: object
    source: int | None

    @property
    def name(self) -> str:
        return f"node {self.index} ({self.kind})"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _array(raw: dict, key: str, kinds: str, where: str):
    value = raw.get(key)
    if value is not None and not (isinstance(value, np.ndarray) and value.dtype.kind in kinds):
        raise _NotAnHmm(f"{where}: `{key}` is not a numeric array")
    return value


def _parse_node(index: int, raw, count: int) -> _Node:
    """Check one node dict's schema, accepting both pyjuice key spellings."""
    where = f"node {index}"
    if not isinstance(raw, dict) or raw.get("type") not in ("Input", "Product", "Sum"):
        raise _NotAnHmm(f"{where} is not a pyjuice node (needs type Input, Product or Sum)")
    sizes = [raw.get(new, raw.get(old)) for new, old in
             (("num_node_blocks", "num_node_groups"), ("block_size", "group_size"))]
    if not all(_is_int(size) and size > 0 for size in sizes):
        raise _NotAnHmm(f"{where} has no valid num_node_blocks/block_size")
    chs = raw.get("chs")
    if not isinstance(chs, (tuple, list)) or not all(_is_int(c) and 0 <= c < index for c in chs):
        raise _NotAnHmm(f"{where} has invalid children {chs!r}")
    source = raw.get("source_node")
    if source is not None and not (_is_int(source) and 0 <= source < count and source != index):
        raise _NotAnHmm(f"{where} ties to an invalid source node {source!r}")
    return _Node(index, raw["type"], sizes[0], sizes[1], tuple(chs),
                 _array(raw, "edge_ids", "iu", where), _array(raw, "params", "f", where),
                 raw.get("scope"), raw.get("dist"), source)


def _dense_weights(node: _Node, parent_blocks: int, parent_size: int,
                   child_blocks: int, child_size: int) -> np.ndarray:
    """The block-sparse weights of a Sum node as one dense [parents, children] matrix."""
    k = node.params.shape[0] if node.params.ndim == 3 else 0
    if k < 1 or node.params.shape != (k, parent_size, child_size) or node.edge_ids.shape != (2, k):
        raise _NotAnHmm(f"{node.name}: params {node.params.shape} do not match edge_ids "
                        f"{node.edge_ids.shape} and block sizes ({parent_size}, {child_size})")
    parents, children = node.edge_ids.astype(np.int64)
    if parents.min() < 0 or parents.max() >= parent_blocks or children.min() < 0 or children.max() >= child_blocks:
        raise _NotAnHmm(f"{node.name}: edge_ids point outside the node blocks")
    if np.unique(parents * child_blocks + children).size != k:
        raise _NotAnHmm(f"{node.name}: edge_ids list a block twice")
    dense = np.zeros((parent_blocks, parent_size, child_blocks, child_size))
    dense[parents, :, children, :] = node.params
    return dense.reshape(parent_blocks * parent_size, child_blocks * child_size)


class _Chain:
    """The positions and transitions of a pyjuice HMM, found by walking down from the root;
    every node of the chain has the same num_blocks x block_size hidden states."""

    def __init__(self, nodes: list[_Node]):
        self.nodes = nodes
        self.root = nodes[-1]
        if self.root.kind != "Sum" or self.root.params is None or self.root.edge_ids is None:
            raise _NotAnHmm("the root is not a Sum node with parameters (the initial distribution)")
        if (self.root.num_blocks, self.root.block_size) != (1, 1):
            raise _NotAnHmm("the root is a mixture of several nodes, not one distribution")
        self.inputs, self.sums, products = [], [], []
        product = self._only_child(self.root, "Product")
        while True:
            self._check_product(product)
            products.append(product)
            self.inputs.append(next(nodes[c] for c in product.chs if nodes[c].kind == "Input"))
            sums = [nodes[c] for c in product.chs if nodes[c].kind == "Sum"]
            if not sums:
                break
            self.sums.append(sums[0])
            product = self._only_child(sums[0], "Product")
        if not self.sums:
            raise _NotAnHmm("the circuit has a single position; an HMM needs at least two")
        self.num_blocks, self.block_size = product.num_blocks, product.block_size
        for node in self.inputs + self.sums + products:
            self.check_shape(node)
        for t, node in enumerate(self.inputs):
            if not (isinstance(node.scope, (list, tuple)) and list(node.scope) == [t]):
                raise _NotAnHmm(f"{node.name} has scope {node.scope!r}, expected [{t}]")

    def check_shape(self, node: _Node) -> None:
        if (node.num_blocks, node.block_size) != (self.num_blocks, self.block_size):
            raise _NotAnHmm(f"{node.name} has {node.num_blocks}x{node.block_size} nodes, "
                            f"not {self.num_blocks}x{self.block_size} like the rest of the chain")

    def _only_child(self, node: _Node, kind: str) -> _Node:
        if len(node.chs) != 1 or self.nodes[node.chs[0]].kind != kind:
            raise _NotAnHmm(f"{node.name} should have one {kind} child; not an HMM chain")
        return self.nodes[node.chs[0]]

    def _check_product(self, product: _Node) -> None:
        kinds = sorted(self.nodes[c].kind for c in product.chs)
        if kinds not in (["Input"], ["Input", "Sum"]):
            raise _NotAnHmm(f"{product.name} has children {kinds}; an HMM step is Input x Sum")
        edge_ids = product.edge_ids
        if (edge_ids is None or edge_ids.shape != (product.num_blocks, len(kinds))
                or not (edge_ids == np.arange(product.num_blocks)[:, None]).all()):
            raise _NotAnHmm(f"{product.name} does not pair its children block by block")

    def tied_source(self, chain: list[_Node], what: str) -> _Node:
        """The one node holding the parameters every node of `chain` shares."""
        sources = {node.index if node.params is not None else node.source for node in chain}
        if len(sources) != 1 or None in sources:
            raise _NotAnHmm(f"the {what} is not shared by all positions (inhomogeneous HMM); "
                            f"only homogeneous HMMs are supported")
        source = self.nodes[sources.pop()]
        if source.kind != chain[0].kind or source.params is None:
            raise _NotAnHmm(f"the {what} source {source.name} holds no parameters")
        self.check_shape(source)
        return source


def _distribution(node: _Node) -> PyjuiceDistribution:
    dist = _unpickle(node.dist, f"the distribution of {node.name}") if isinstance(node.dist, bytes) else node.dist
    if not isinstance(dist, PyjuiceDistribution):
        raise _NotAnHmm(f"{node.name} has an unsupported input distribution {type(dist).__name__}")
    if not (_is_int(dist.num_cats) and dist.num_cats > 0):
        raise _NotAnHmm(f"{node.name} has no valid num_cats")
    return dist


def _emission_size(chain: _Chain) -> tuple[int, str]:
    """V and the distribution name, the same for every position."""
    found = {(dist.num_cats, type(dist).__name__) for dist in map(_distribution, chain.inputs)}
    if len(found) != 1:
        raise _NotAnHmm(f"the positions use different input distributions {sorted(found)}")
    return found.pop()


def _hmm_from_nodes(raw_nodes, name: str) -> HMM:
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise _NotAnHmm("the pickle is not a list of pyjuice nodes")
    nodes = [_parse_node(i, raw, len(raw_nodes)) for i, raw in enumerate(raw_nodes)]
    chain = _Chain(nodes)
    vocab_size, dist_name = _emission_size(chain)
    emission = chain.tied_source(chain.inputs, "emission table")
    transition = chain.tied_source(chain.sums, "transition table")
    if any(node.edge_ids is None or not np.array_equal(node.edge_ids, transition.edge_ids)
           for node in chain.sums):
        raise _NotAnHmm("the transition nodes are tied but differ in structure")
    num_blocks, block_size = chain.num_blocks, chain.block_size
    num_states = num_blocks * block_size
    if emission.params.shape != (num_states * vocab_size,):
        raise _NotAnHmm(f"{emission.name}: {emission.params.size} emission parameters, "
                        f"expected {num_states} states x {vocab_size} categories")
    pi = _dense_weights(chain.root, 1, 1, num_blocks, block_size)[0]
    alpha = _dense_weights(transition, num_blocks, block_size, num_blocks, block_size)
    beta = emission.params.reshape(num_states, vocab_size)
    metadata = {"source": "pyjuice", "file": name, "input_dist": dist_name}
    tables = [torch.from_numpy(np.asarray(table, np.float32)) for table in (pi, alpha, beta)]
    try:
        return HMM.from_probabilities(*tables, window=len(chain.inputs), metadata=metadata)
    except ValueError as err:
        raise _NotAnHmm(str(err)) from None


def load_pyjuice_hmm(path: str | Path) -> HMM:
    """The homogeneous HMM in a pyjuice `.jpc` file; HarnessError naming the file and the
    problem if it is corrupt, references anything but arrays and known distributions,
    or is not a homogeneous HMM."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise HarnessError(f"{path}: cannot read the file ({err.strerror})") from None
    try:
        return _hmm_from_nodes(_unpickle(data, "the file"), path.name)
    except (HarnessError, _NotAnHmm) as err:
        raise HarnessError(f"{path}: {err}") from None
