"""Loading pickles that should hold only data, without running the code a pickle can carry.

A pickle names callables to rebuild its objects (`module.name` plus arguments), and the
standard unpickler imports and calls whatever is named: a crafted file runs arbitrary code.
`load_data_pickle` admits only what numpy arrays and scalars need to rebuild themselves;
plain containers (dict, list, tuple, str, bytes, numbers) need no callables at all. Any other
name is refused before it is imported. numpy's rebuilders trust their state: a dtype given a
malformed state crashes the interpreter (`dtype.__setstate__` with an int where its subarray
belongs is a segmentation fault, and so is an object array's state listing fewer items than its
shape holds), so each dtype's state is admitted only when it is the one numpy itself writes for
that type, in any byte order, and each array's state only when its data fills its shape. This
needs the pure-Python unpickler,
whose BUILD step can be checked; data pickles hold few, large objects, so it costs little.

A pickle can also be small and expand without bound: its memo lets one object be referenced
any number of times, so 537 bytes of lists that each hold the previous one twice describe 2^60
elements, which `np.asarray` or any walk over the data then materialises. `PickleLimits` bound
what a loaded pickle may reach, counting shared objects once per reference (as a consumer
walking it meets them): objects, nesting depth, bytes of arrays and strings, and each array's
size. The walk stops at the first limit crossed, so checking costs at most `max_objects` steps.
"""

from __future__ import annotations

import dataclasses
import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from fourds.data.readers import ReaderError
from fourds.errors import UnsafePickleError

# (module, name) pairs numpy uses in its pickles, under numpy 1 and numpy 2 module names, and
# the one builtin that old pickle protocols need for bytes.
_NUMPY_REBUILDERS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes: a pure text-to-bytes codec
}


@dataclasses.dataclass(frozen=True)
class PickleLimits:
    """What a data pickle may hold, counting every reference to a shared object again.

    max_bytes: the file's size, and the bytes of all arrays, str and bytes reached.
    max_objects: containers, arrays, strings and scalars reached.
    max_depth: nesting of containers (TAP-Vid records nest 3 deep).
    max_array_bytes: the size of any one array.

    The defaults fit the public TAP-Vid files (at most a few GB, ~10^6 objects).
    """

    max_bytes: int = 16 << 30
    max_objects: int = 4_000_000
    max_depth: int = 32
    max_array_bytes: int = 8 << 30


_SCALARS = (int, float, complex, bool, type(None), np.generic)
_CONTAINERS = (list, tuple, set, frozenset)


def check_limits(root: Any, limits: PickleLimits) -> None:
    """Walk what `root` reaches, every reference counted, and raise at the first limit crossed.

    Raises:
        UnsafePickleError: naming the limit and how to raise it.
    """
    objects, total = 1, 0
    stack = [(root, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += len(item)
            children = ()
        elif isinstance(item, np.ndarray):
            if item.nbytes > limits.max_array_bytes:
                raise UnsafePickleError(
                    f"holds a {item.shape} {item.dtype} array of {item.nbytes} bytes, over "
                    f"PickleLimits.max_array_bytes={limits.max_array_bytes}"
                )
            total += item.nbytes
            children = item.flat if item.dtype.hasobject else ()
            objects += item.size if item.dtype.hasobject else 0
        elif isinstance(item, dict):
            children = (child for pair in item.items() for child in pair)
            objects += 2 * len(item)
        elif isinstance(item, _CONTAINERS):
            children = item
            objects += len(item)
        else:
            continue
        if total > limits.max_bytes:
            raise UnsafePickleError(
                f"reaches more than {limits.max_bytes} bytes of arrays and strings (shared "
                "references count each time)"
            )
        if objects > limits.max_objects:
            raise UnsafePickleError(
                f"reaches more than {limits.max_objects} objects (shared references count "
                "each time; raise PickleLimits.max_objects for a larger file)"
            )
        nested = [child for child in children if not isinstance(child, _SCALARS)]
        if nested and depth >= limits.max_depth:
            raise UnsafePickleError(f"nests deeper than {limits.max_depth} levels")
        stack.extend((child, depth + 1) for child in nested)


def _check_dtype_state(dtype: np.dtype, state: Any) -> None:
    """Admit `state` for `dtype` only if it is numpy's own state for that type, in any byte
    order; structured and datetime types (which no data pickle here holds) are refused.

    Raises:
        UnsafePickleError: naming the dtype.
    """
    own = dtype.__reduce__()[2]
    plain = (
        type(state) is tuple
        and len(state) == len(own) == 8
        and all(type(item) in (int, str, type(None)) for item in state)
        and state[0] == own[0]
        and state[1] in ("<", ">", "|", "=")
        and state[2:] == own[2:]
    )
    if not plain:
        raise UnsafePickleError(
            f"refusing a numpy dtype {dtype.str!r} with the state {str(state)[:80]}: only "
            "numpy's own states of plain (not structured, not datetime) types are allowed"
        )


def _check_array_state(state: Any) -> None:
    """Admit an ndarray's `state` only in numpy's own form, `(1, shape, dtype, fortran, data)`,
    with data that fills the shape exactly: a list of items for object arrays, bytes otherwise.

    Raises:
        UnsafePickleError: saying what is wrong.
    """
    well_formed = (
        type(state) is tuple
        and len(state) == 5
        and state[0] == 1
        and type(state[1]) is tuple
        and all(type(size) is int and size >= 0 for size in state[1])
        and isinstance(state[2], np.dtype)
        and type(state[3]) is bool
    )
    if not well_formed:
        raise UnsafePickleError(f"refusing an array with the state {str(state)[:80]}")
    _, shape, dtype, _, data = state
    count = math.prod(shape)
    if dtype.hasobject:
        fills = type(data) is list and len(data) == count
    else:
        fills = isinstance(data, bytes) and len(data) == count * dtype.itemsize
    if not fills:
        raise UnsafePickleError(
            f"refusing a {shape} {dtype} array whose data ({type(data).__name__}) does not "
            "fill its shape"
        )


def _empty_bytes(*args: Any) -> bytes:
    """How protocol-2 pickles store empty bytes (an empty array's data): `bytes()`. Any
    argument is refused: `bytes(n)` would allocate n bytes."""
    if args:
        raise UnsafePickleError("refusing builtins.bytes called with arguments")
    return b""


class _DataUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, with `find_class` limited to numpy's rebuilders and every
    BUILD of a numpy dtype or array checked before numpy sees its state."""

    def _checked_build(self) -> None:
        state, target = self.stack[-1], self.stack[-2]
        if isinstance(target, np.dtype):
            _check_dtype_state(target, state)
        elif isinstance(target, np.ndarray):
            _check_array_state(state)
        pickle._Unpickler.load_build(self)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _checked_build

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_REBUILDERS:
            return super().find_class(module, name)
        if (module, name) in (("__builtin__", "bytes"), ("builtins", "bytes")):
            return _empty_bytes
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: only numpy arrays and plain containers are "
            "allowed in a data pickle (a pickle naming anything else can run code)"
        )


def load_data_pickle(path: str | Path, limits: PickleLimits = PickleLimits()) -> Any:
    """Unpickle `path`, allowing only numpy arrays, numpy scalars and plain containers, within
    `limits`.

    Raises:
        UnsafePickleError: the pickle names any other callable (nothing of it is run), or what
            it holds exceeds `limits`.
        ReaderError: the file is not a readable pickle.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise UnsafePickleError(
            f"{path}: {size} bytes, over PickleLimits.max_bytes={limits.max_bytes}"
        )
    data = path.read_bytes()
    try:
        loaded = _DataUnpickler(io.BytesIO(data), encoding="latin1").load()
        check_limits(loaded, limits)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    # LookupError: an index or a key missing, or a text codec `_codecs.encode` does not know;
    # SystemError: numpy's dtype rebuilder given a malformed state
    except (
        pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, LookupError,
        MemoryError, OverflowError, RecursionError, UnicodeDecodeError, SystemError,
    ) as error:  # fmt: skip
        reason = " ".join(str(error).split())  # on one line
        raise ReaderError(
            f"{path}: not a readable pickle ({type(error).__name__}: {reason})"
        ) from None
    return loaded
