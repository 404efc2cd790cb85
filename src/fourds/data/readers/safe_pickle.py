"""Loading pickles that should hold only data, without running the code a pickle can carry.

A pickle names callables to rebuild its objects (`module.name` plus arguments), and the
standard unpickler imports and calls whatever is named: a crafted file runs arbitrary code.
`load_data_pickle` admits only what numpy arrays and scalars need to rebuild themselves;
plain containers (dict, list, tuple, str, bytes, numbers) need no callables at all. Any other
name is refused before it is imported.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

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


class UnsafePickleError(ValueError):
    """A pickle that names something other than numpy's array rebuilders."""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_REBUILDERS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: only numpy arrays and plain containers are "
            "allowed in a data pickle (a pickle naming anything else can run code)"
        )


def load_data_pickle(path: str | Path) -> Any:
    """Unpickle `path`, allowing only numpy arrays, numpy scalars and plain containers.

    Raises:
        UnsafePickleError: the pickle names any other callable (nothing of it is run).
        ValueError: the file is not a readable pickle.
    """
    data = Path(path).read_bytes()
    try:
        return _DataUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a readable pickle ({error})") from None
