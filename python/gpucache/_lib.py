"""The one module that binds libgpucache's C ABI (include/gpucache/gpucache.h).

Why ctypes and not cffi or a C extension: libgpucache's ABI is a plain C ABI
built for foreign callers (opaque handles, size-prefixed option structs, no
struct passed by value, a version script exporting only ``gpc_*``), so ctypes
binds it exactly with nothing to compile: ``pip install`` needs no compiler
and no Python headers, the same wheel-less package works for every Python
version, and the engines' venvs (which pin their own torch builds) can import
it from the source tree. ctypes releases the GIL around every foreign call,
so a blocking ``gpc_wait`` does not stall other Python threads.

Every other module of the package calls libgpucache through this one.

Finding the library, in order: ``GPUCACHE_LIB`` (a path to the .so), a copy
installed next to this package (``gpucache/lib/libgpucache.so*``), the
checkout's build directories (``build/src/client``; when this package runs
from a checkout in which nothing is built yet, ``make build`` is run once,
unless ``GPUCACHE_NO_BUILD`` is set), then the dynamic linker's search path
(``libgpucache.so.0``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import threading
from pathlib import Path

KEY_LEN = 32
PUT_DURABLE = 0x1
PUT_IF_ABSENT = 0x4  # keys name content: a key held already is not rewritten
LOOKUP_PREFETCH = 0x2

# GPUCache's own error codes (enum gpc_error); functions return them negated.
ECORRUPT = 1024
EVERSION = 1025
ENOTFOUND = 1026
ETOOBIG = 1027
EDEGRADED = 1028
EUUID = 1029
ENOSPACE = 1030
ECONFIG = 1031
EBUSY = 1032
EAUTH = 1033
ECLOSED = 1034
EQUOTA = 1035


class ConnectOpts(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("tenant", ctypes.c_char_p),
        ("secret", ctypes.c_void_p),
        ("secret_len", ctypes.c_size_t),
        ("timeout_ms", ctypes.c_uint),
        ("spin_us", ctypes.c_uint64),  # since libgpucache 0.3
    ]


SPIN_ALWAYS = 2**64 - 1  # GPC_SPIN_ALWAYS: waits poll, never sleep


PRIO_NORMAL = 0
PRIO_LOW = 1
PRIO_HIGH = 2
MAX_TTL = 10 * 366 * 86400  # GPC_MAX_TTL: ten years, in seconds
MAX_WEIGHT = 8  # GPC_MAX_WEIGHT: a namespace's weight is 0..8


class PutOpts(ctypes.Structure):
    """struct gpc_put_opts (libgpucache 0.2)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("flags", ctypes.c_uint),
        ("ttl_s", ctypes.c_uint32),
        ("priority", ctypes.c_uint),
    ]


class Iov(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("mr", ctypes.c_void_p),
    ]


class Block(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_void_p),
        ("iov", ctypes.POINTER(Iov)),
        ("iovcnt", ctypes.c_uint),
        ("status", ctypes.c_int),
    ]


EV_STORED = 1
EV_REMOVED = 2


class Event(ctypes.Structure):
    _fields_ = [
        ("ns", ctypes.c_uint64),
        ("key", ctypes.c_uint8 * KEY_LEN),
        ("type", ctypes.c_uint32),
        ("shard", ctypes.c_uint32),
    ]


_P = ctypes.c_void_p
_U = ctypes.c_uint
_I = ctypes.c_int
_SZ = ctypes.c_size_t
_U64 = ctypes.c_uint64

# name: (restype, argtypes)
_SIGNATURES = {
    "gpc_strerror": (ctypes.c_char_p, [_I]),
    "gpc_connect": (_I, [ctypes.c_char_p, ctypes.POINTER(ConnectOpts), ctypes.POINTER(_P)]),
    "gpc_close": (None, [_P]),
    "gpc_shards": (_U, [_P]),
    "gpc_mem_register": (_I, [_P, _P, _SZ, ctypes.POINTER(_P)]),
    "gpc_mem_alloc": (_I, [_P, _SZ, ctypes.POINTER(_P), ctypes.POINTER(_P)]),
    "gpc_mem_deregister": (None, [_P, _P]),
    "gpc_put_submit": (_I, [_P, _U64, ctypes.POINTER(Block), _U, _U, ctypes.POINTER(_P)]),
    "gpc_put_submit_ex": (_I, [_P, _U64, ctypes.POINTER(Block), _U,
                               ctypes.POINTER(PutOpts), ctypes.POINTER(_P)]),
    "gpc_get_submit": (_I, [_P, _U64, ctypes.POINTER(Block), _U, ctypes.POINTER(_P)]),
    "gpc_test": (_I, [_P, _P]),
    "gpc_wait": (_I, [_P, _P]),
    "gpc_req_free": (None, [_P]),
    "gpc_put": (_I, [_P, _U64, ctypes.POINTER(Block), _U, _U]),
    "gpc_get": (_I, [_P, _U64, ctypes.POINTER(Block), _U]),
    "gpc_lookup": (_I, [_P, _U64, _P, _U, _U, ctypes.POINTER(_U)]),
    "gpc_delete": (_I, [_P, _U64, _P, _U, ctypes.POINTER(_I)]),
    "gpc_pin": (_I, [_P, _U64, _P, _U, _I, ctypes.POINTER(_I)]),
    "gpc_subscribe": (_I, [_P, _U64]),
    "gpc_confirm_used": (_I, [_P, _U64, _U64]),
    "gpc_set_weight": (_I, [_P, _U64, _U]),
    "gpc_events_poll": (_I, [_P, ctypes.POINTER(Event), _U, ctypes.POINTER(_U),
                             ctypes.POINTER(_U64)]),
    "gpc_key_chain": (_I, [_P, _P, _SZ, _P, _SZ, _P]),
    "gpc_namespace": (_U64, [_P, _SZ]),
}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_path: str | None = None


def _checkout_root() -> Path | None:
    """The repository root when this package runs from a checkout."""
    root = Path(__file__).resolve().parent.parent.parent
    if (root / "include" / "gpucache" / "gpucache.h").is_file() and (
        root / "src" / "client"
    ).is_dir():
        return root
    return None


def _candidates() -> list[str]:
    out: list[str] = []
    here = Path(__file__).resolve().parent
    out += sorted(str(p) for p in (here / "lib").glob("libgpucache.so*"))
    root = _checkout_root()
    if root is not None:
        for b in ("build", "build-asan"):
            p = root / b / "src" / "client" / "libgpucache.so"
            if p.exists():
                out.append(str(p))
    return out


def _build_in_checkout() -> str | None:
    root = _checkout_root()
    if root is None or os.environ.get("GPUCACHE_NO_BUILD"):
        return None
    subprocess.run(["make", "-C", str(root), "build"], check=True)
    p = root / "build" / "src" / "client" / "libgpucache.so"
    return str(p) if p.exists() else None


def find_library() -> str:
    """Path (or soname) of the libgpucache this package will load."""
    env = os.environ.get("GPUCACHE_LIB")
    if env:
        if not os.path.exists(env):
            raise OSError(f"GPUCACHE_LIB={env}: no such file")
        return env
    cands = _candidates()
    if cands:
        return cands[0]
    sys_lib = ctypes.util.find_library("gpucache")
    if sys_lib:
        return sys_lib
    built = _build_in_checkout()
    if built:
        return built
    raise OSError(
        "libgpucache not found: set GPUCACHE_LIB to libgpucache.so, "
        "or run `make build` in the GPUCache checkout"
    )


def lib() -> ctypes.CDLL:
    """The loaded library, its functions typed (loaded once, on first use)."""
    global _lib, _lib_path
    with _lock:
        if _lib is None:
            path = find_library()
            dll = ctypes.CDLL(path)
            for name, (res, args) in _SIGNATURES.items():
                fn = getattr(dll, name)
                fn.restype = res
                fn.argtypes = args
            _lib, _lib_path = dll, path
        return _lib


def lib_path() -> str:
    lib()
    assert _lib_path is not None
    return _lib_path


def strerror(code: int) -> str:
    """gpc_strerror's message for an error code (either sign)."""
    return lib().gpc_strerror(int(code)).decode()
