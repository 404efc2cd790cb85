"""Loading pickles that should hold only data, without running the code a pickle can carry.

A pickle names callables to rebuild its objects (`module.name` plus arguments), and the
standard unpickler imports and calls whatever is named: a crafted file runs arbitrary code.
`load_data_pickle` admits only what numpy arrays and scalars need to rebuild themselves;
plain containers (dict, list, tuple, str, bytes, numbers) need no callables at all. Any other
name is refused before it is imported.

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
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from fourds.data.readers import ReaderError

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


class UnsafePickleError(ReaderError):
    """A pickle that names something other than numpy's array rebuilders, or that exceeds its
    PickleLimits."""


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


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_REBUILDERS:
            return super().find_class(module, name)
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
