"""Client: a connection to gpucached (libgpucache's gpc_client) with
registered memory and batched PUT / GET / LOOKUP / DELETE / PIN.

Memory is registered once (``Client.register``: a numpy array, a torch
tensor, any writable buffer, or a raw ``(pointer, nbytes)``) and never
copied: a block's value is then any piece of registered memory (a view or
slice of a registered array, a ``(pointer, nbytes)`` pair, or a list of
them as an iovec), and the client finds the registration that holds it.

Blocking calls (``put``, ``get``) retry blocks the tier answered BUSY, as
libgpucache's blocking helpers do; ``put_async`` / ``get_async`` return a
``Request`` whose ``wait()`` (or ``result()``) completes it the same way.
A GET answers per block: the number of bytes read, or None for a miss.
"""

from __future__ import annotations

import bisect
import ctypes
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

from . import _lib
from . import config as _config
from .errors import BatchError, GpucacheError, check, error


@dataclass(frozen=True)
class KVEvent:
    """A block of a subscribed namespace was stored (a new block, not a
    touch) or removed (evicted or deleted)."""

    ns: int
    key: bytes
    stored: bool
    shard: int


Buffer = Any  # numpy array, torch tensor, writable buffer, or (ptr, nbytes)
Value = Union[Buffer, Sequence[Buffer]]
_Opts = Union[int, "_lib.PutOpts"]  # GET: 0; PUT: gpc_put_opts

_PRIORITIES = {"low": _lib.PRIO_LOW, "normal": _lib.PRIO_NORMAL, "high": _lib.PRIO_HIGH}


def buffer_address(obj: Buffer, writable: bool = True) -> tuple[int, int]:
    """(address, nbytes) of contiguous memory, without copying it."""
    if isinstance(obj, tuple) and len(obj) == 2 and all(isinstance(x, int) for x in obj):
        return obj[0], obj[1]
    if hasattr(obj, "data_ptr") and hasattr(obj, "element_size"):  # torch.Tensor
        dev = getattr(obj, "device", None)
        if dev is not None and getattr(dev, "type", "cpu") != "cpu":
            # libgpucache 0.1 registers host memory; device memory needs a
            # UCX built with CUDA (GPUDirect), which this build is not
            raise ValueError(f"tensor on {dev}: only host (CPU) memory can be registered")
        if not obj.is_contiguous():
            raise ValueError("tensor is not contiguous: a block must be one piece of memory")
        return int(obj.data_ptr()), int(obj.numel() * obj.element_size())
    ai = getattr(obj, "__array_interface__", None)
    if ai is not None:  # numpy and friends
        addr, readonly = ai["data"]
        if ai.get("strides") is not None and not obj.flags["C_CONTIGUOUS"]:
            raise ValueError("array is not C-contiguous: a block must be one piece of memory")
        if readonly and writable:
            raise ValueError("array is read-only")
        return int(addr), int(obj.nbytes)
    mv = memoryview(obj)
    if not mv.c_contiguous:
        raise ValueError("buffer is not contiguous")
    if mv.readonly:
        raise ValueError("buffer is read-only: register writable memory")
    n = mv.nbytes
    if n == 0:
        raise ValueError("empty buffer")
    cbuf = (ctypes.c_char * n).from_buffer(mv)
    return ctypes.addressof(cbuf), n


class MemoryRegion:
    """Memory registered with a connection. Holds a reference to the object
    it came from, so the memory outlives the registration."""

    def __init__(self, client: Client, handle: int, addr: int, nbytes: int, owner: Any) -> None:
        self._client = client
        self.handle = handle
        self.addr = addr
        self.nbytes = nbytes
        self.owner = owner

    def contains(self, addr: int, nbytes: int) -> bool:
        return self.addr <= addr and addr + nbytes <= self.addr + self.nbytes

    def array(self, dtype: Any = "uint8") -> Any:
        """A numpy view of the whole region (no copy)."""
        import numpy as np

        buf = (ctypes.c_char * self.nbytes).from_address(self.addr)
        return np.frombuffer(buf, dtype=dtype)

    def deregister(self) -> None:
        self._client._deregister(self)

    def __enter__(self) -> MemoryRegion:
        return self

    def __exit__(self, *exc: object) -> None:
        self.deregister()


def _put_opts(durable: bool, if_absent: bool, ttl: int, priority: str) -> _lib.PutOpts:
    """A PUT's flags and hints as struct gpc_put_opts; ValueError when out
    of range (libgpucache would say -EINVAL)."""
    if priority not in _PRIORITIES:
        raise ValueError(f"priority is one of {sorted(_PRIORITIES)}, not {priority!r}")
    if not isinstance(ttl, int) or not 0 <= ttl <= _lib.MAX_TTL:
        raise ValueError(f"ttl is whole seconds in [0, {_lib.MAX_TTL}], not {ttl!r}")
    flags = (_lib.PUT_DURABLE if durable else 0) | (_lib.PUT_IF_ABSENT if if_absent else 0)
    return _lib.PutOpts(ctypes.sizeof(_lib.PutOpts), flags, ttl, _PRIORITIES[priority])


def _keys_buffer(keys: Sequence[bytes] | bytes) -> tuple[ctypes.Array, int]:
    if isinstance(keys, (bytes, bytearray, memoryview)):
        raw = bytes(keys)
    else:
        for k in keys:
            if len(k) != _lib.KEY_LEN:
                raise ValueError(f"a key is {_lib.KEY_LEN} bytes, not {len(k)}")
        raw = b"".join(bytes(k) for k in keys)
    if len(raw) % _lib.KEY_LEN:
        raise ValueError(f"keys must be {_lib.KEY_LEN} bytes each")
    n = len(raw) // _lib.KEY_LEN
    if n == 0:
        raise ValueError("no keys")
    return ctypes.create_string_buffer(raw, len(raw)), n


class _Batch:
    """The C structures of one PUT or GET batch, kept alive until done."""

    def __init__(self, client: Client, keys: Sequence[bytes], values: Sequence[Value],
                 writable: bool) -> None:
        self.keybuf, n = _keys_buffer(keys)
        if n != len(values):
            raise ValueError(f"{n} keys but {len(values)} values")
        self.n = n
        self.blocks = (_lib.Block * n)()
        self.iovs = []
        base = ctypes.addressof(self.keybuf)
        for i, v in enumerate(values):
            parts = v if isinstance(v, list) else [v]
            iov = (_lib.Iov * len(parts))()
            for j, p in enumerate(parts):
                addr, nbytes = buffer_address(p, writable)
                iov[j].addr = addr
                iov[j].len = nbytes
                iov[j].mr = client._region_of(addr, nbytes).handle
            self.iovs.append(iov)
            self.blocks[i].key = base + i * _lib.KEY_LEN
            self.blocks[i].iov = iov
            self.blocks[i].iovcnt = len(parts)

    def statuses(self) -> list[int]:
        return [self.blocks[i].status for i in range(self.n)]

    def busy_subset(self) -> list[int]:
        return [i for i in range(self.n) if self.blocks[i].status == -_lib.EBUSY]


class Request:
    """An asynchronous PUT or GET in flight. ``done()`` polls (gpc_test),
    ``wait()`` completes it (gpc_wait, then re-sends blocks the tier
    answered BUSY) and returns the batch's result. Wait for every request
    you submit: its blocks' memory is in use until then."""

    def __init__(self, client: Client, op: str, batch: _Batch, handle: int,
                 flags: _Opts) -> None:
        self._client = client
        self._op = op
        self._batch = batch
        self._handle: int | None = handle
        self._flags = flags
        self._result: Any = None
        self._exc: BaseException | None = None
        self._done = False

    def done(self) -> bool:
        if self._done:
            return True
        if self._handle is None:
            return False
        rc = _lib.lib().gpc_test(self._client._c, self._handle)
        if rc < 0:
            # finished with an error: wait() reports it
            return True
        return rc == 1

    def wait(self) -> Any:
        if not self._done:
            self._finish()
        if self._exc is not None:
            raise self._exc
        return self._result

    result = wait

    def _finish(self) -> None:
        lib = _lib.lib()
        c = self._client
        try:
            rc = lib.gpc_wait(c._c, self._handle)
            lib.gpc_req_free(self._handle)
            self._handle = None
            check(rc, self._op)
            c._retry_busy(self._op, self._batch, self._flags)
            self._result = c._batch_result(self._op, self._batch)
        except GpucacheError as e:
            self._exc = e
        finally:
            self._done = True
            c._inflight.discard(self)


class Client:
    """A connection to gpucached, authenticated as one tenant."""

    def __init__(self, url: str = "gpc://127.0.0.1:7070", tenant: str = "default",
                 secret: bytes | str | None = None, timeout_ms: int = 0,
                 spin_us: int = 0) -> None:
        """spin_us: how long a wait polls after the last news before it
        sleeps on the transport's event fd (0: libgpucache's default,
        50 us; ``gpucache._lib.SPIN_ALWAYS``: never sleep)."""
        if secret is None:
            raise ValueError("a secret is needed (or use Client.from_config)")
        if not 0 <= spin_us <= _lib.SPIN_ALWAYS:
            raise ValueError(f"spin_us {spin_us}: 0 .. 2**64 - 1")
        if isinstance(secret, str):
            secret = secret.encode()
        lib = _lib.lib()
        self._c: int | None = None
        self._regions: list[MemoryRegion] = []  # sorted by addr
        self._rlock = threading.Lock()
        self._inflight: set[Request] = set()
        self.url = url
        self.tenant = tenant
        sbuf = ctypes.create_string_buffer(secret, len(secret))
        opts = _lib.ConnectOpts(ctypes.sizeof(_lib.ConnectOpts), tenant.encode(),
                                ctypes.addressof(sbuf), len(secret), timeout_ms,
                                spin_us)
        out = ctypes.c_void_p()
        check(lib.gpc_connect(url.encode(), ctypes.byref(opts), ctypes.byref(out)),
              f"connect {url} as tenant '{tenant}'")
        self._c = out.value

    @classmethod
    def from_config(cls, path: str | Path, tenant: str | None = None, host: str | None = None,
                    timeout_ms: int = 0, spin_us: int = 0) -> Client:
        """Connect with the port and a tenant's secret from a gpucached.conf
        (the only tenant, or ``tenant``)."""
        cfg = _config.load(path)
        if tenant is None:
            if len(cfg.tenants) != 1:
                raise ValueError(f"{path}: {len(cfg.tenants)} tenants: name one")
            tenant = next(iter(cfg.tenants))
        if tenant not in cfg.tenants:
            raise ValueError(f"{path}: no tenant '{tenant}'")
        return cls(cfg.url(host), tenant, cfg.tenants[tenant], timeout_ms, spin_us)

    # ---- lifecycle ----

    def close(self) -> None:
        if self._c is None:
            return
        for r in list(self._inflight):
            try:
                r.wait()
            except GpucacheError:
                pass
        for reg in list(self._regions):
            self._deregister(reg)
        _lib.lib().gpc_close(self._c)
        self._c = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def handle(self) -> int:
        if self._c is None:
            raise error(-_lib.ECLOSED, "client")
        return self._c

    @property
    def shards(self) -> int:
        return int(_lib.lib().gpc_shards(self.handle))

    # ---- memory ----

    def register(self, obj: Buffer) -> MemoryRegion:
        """Register memory for transfers, in place (no copy): a numpy array,
        a torch tensor (its data_ptr), a writable buffer, or (ptr, nbytes)."""
        addr, nbytes = buffer_address(obj)
        if nbytes == 0:
            raise ValueError("cannot register 0 bytes")
        out = ctypes.c_void_p()
        check(_lib.lib().gpc_mem_register(self.handle, addr, nbytes, ctypes.byref(out)),
              "register memory")
        reg = MemoryRegion(self, out.value, addr, nbytes, obj)
        self._add_region(reg)
        return reg

    def alloc(self, nbytes: int) -> MemoryRegion:
        """Memory that the transport allocates and registers (gpc_mem_alloc:
        a true one-sided copy over shared memory); ``.array()`` views it."""
        out = ctypes.c_void_p()
        addr = ctypes.c_void_p()
        check(_lib.lib().gpc_mem_alloc(self.handle, nbytes, ctypes.byref(addr),
                                       ctypes.byref(out)), "allocate memory")
        reg = MemoryRegion(self, out.value, addr.value, nbytes, None)
        self._add_region(reg)
        return reg

    def _add_region(self, reg: MemoryRegion) -> None:
        with self._rlock:
            i = bisect.bisect([r.addr for r in self._regions], reg.addr)
            self._regions.insert(i, reg)

    def _deregister(self, reg: MemoryRegion) -> None:
        with self._rlock:
            if reg not in self._regions:
                return
            self._regions.remove(reg)
        if self._c is not None:
            _lib.lib().gpc_mem_deregister(self._c, reg.handle)

    def _region_of(self, addr: int, nbytes: int) -> MemoryRegion:
        with self._rlock:
            i = bisect.bisect([r.addr for r in self._regions], addr)
            for r in reversed(self._regions[:i]):
                if r.contains(addr, nbytes):
                    return r
        raise ValueError(f"memory {addr:#x}+{nbytes} is not inside a registered region")

    # ---- PUT / GET ----

    def put(self, ns: int, keys: Sequence[bytes], values: Sequence[Value],
            durable: bool = False, if_absent: bool = False, ttl: int = 0,
            priority: str = "normal") -> None:
        """Store values[i] under keys[i]; raise BatchError if any block failed.
        ``durable``: acknowledged once on flash; ``if_absent``: the keys name
        their content (an engine's block hash), so a key the tier holds
        already is not rewritten, only marked used, nor one another client
        is putting (readable once that put ends). Hints for the blocks
        (docs/cache-policy.md): ``ttl``, seconds after which they expire
        (0: never); ``priority``: "low" (the first to go), "normal" or
        "high" (kept by reclaim whether read or not). ValueError for a
        value out of range."""
        return self.put_async(ns, keys, values, durable, if_absent, ttl,
                              priority).wait()

    def get(self, ns: int, keys: Sequence[bytes], values: Sequence[Value]) -> list[int | None]:
        """Read keys[i] into values[i]: per block the bytes read, or None for
        a miss; raise BatchError if a block failed otherwise."""
        return self.get_async(ns, keys, values).wait()

    def put_async(self, ns: int, keys: Sequence[bytes], values: Sequence[Value],
                  durable: bool = False, if_absent: bool = False, ttl: int = 0,
                  priority: str = "normal") -> Request:
        return self._submit("put", ns, keys, values,
                            _put_opts(durable, if_absent, ttl, priority))

    def get_async(self, ns: int, keys: Sequence[bytes], values: Sequence[Value]) -> Request:
        return self._submit("get", ns, keys, values, 0)

    def _submit(self, op: str, ns: int, keys: Sequence[bytes], values: Sequence[Value],
                flags: _Opts) -> Request:
        batch = _Batch(self, keys, values, writable=(op == "get"))
        handle = self._submit_blocks(op, ns, batch.blocks, batch.n, flags)
        req = Request(self, op, batch, handle, flags)
        req._ns = ns  # type: ignore[attr-defined]
        batch.ns = ns  # type: ignore[attr-defined]
        self._inflight.add(req)
        return req

    def _submit_blocks(self, op: str, ns: int, blocks: Any, n: int, flags: _Opts) -> int:
        lib = _lib.lib()
        out = ctypes.c_void_p()
        if op == "put" and isinstance(flags, _lib.PutOpts):
            rc = lib.gpc_put_submit_ex(self.handle, ns, blocks, n, ctypes.byref(flags),
                                       ctypes.byref(out))
        elif op == "put":
            rc = lib.gpc_put_submit(self.handle, ns, blocks, n, flags, ctypes.byref(out))
        else:
            rc = lib.gpc_get_submit(self.handle, ns, blocks, n, ctypes.byref(out))
        check(rc, op)
        return out.value

    def _retry_busy(self, op: str, batch: _Batch, flags: _Opts) -> None:
        """Re-send the blocks answered BUSY, with backoff, like gpc_put/gpc_get."""
        lib = _lib.lib()
        for tries in range(1000):
            busy = batch.busy_subset()
            if not busy:
                return
            time.sleep(0.0001 if tries < 10 else 0.001)
            sub = (_lib.Block * len(busy))()
            for j, i in enumerate(busy):
                sub[j] = batch.blocks[i]
            handle = self._submit_blocks(op, batch.ns, sub, len(busy), flags)
            rc = lib.gpc_wait(self.handle, handle)
            lib.gpc_req_free(handle)
            check(rc, op)
            for j, i in enumerate(busy):
                batch.blocks[i].status = sub[j].status

    @staticmethod
    def _batch_result(op: str, batch: _Batch) -> Any:
        st = batch.statuses()
        if op == "put":
            if any(s < 0 for s in st):
                raise BatchError(st, "put")
            return None
        out: list[int | None] = []
        for s in st:
            if s == -_lib.ENOTFOUND:
                out.append(None)
            elif s < 0:
                raise BatchError(st, "get")
            else:
                out.append(s)
        return out

    # ---- key operations ----

    def lookup(self, ns: int, keys: Sequence[bytes], prefetch: bool = False) -> int:
        """How many leading keys of the chain are present."""
        buf, n = _keys_buffer(keys)
        present = ctypes.c_uint()
        check(_lib.lib().gpc_lookup(self.handle, ns, buf, n,
                                    _lib.LOOKUP_PREFETCH if prefetch else 0,
                                    ctypes.byref(present)), "lookup")
        return int(present.value)

    def delete(self, ns: int, keys: Sequence[bytes]) -> list[int]:
        """Delete keys; per key 0 or a negative code (e.g. a miss)."""
        buf, n = _keys_buffer(keys)
        st = (ctypes.c_int * n)()
        check(_lib.lib().gpc_delete(self.handle, ns, buf, n, st), "delete")
        return list(st)

    def pin(self, ns: int, keys: Sequence[bytes], pin: bool = True) -> list[int]:
        """Pin (or unpin) keys against eviction; per key 0 or a negative code
        (-ENOTFOUND; -EQUOTA: past the tenant's quota, nothing pinned)."""
        buf, n = _keys_buffer(keys)
        st = (ctypes.c_int * n)()
        check(_lib.lib().gpc_pin(self.handle, ns, buf, n, 1 if pin else 0, st),
              "pin" if pin else "unpin")
        return list(st)

    def unpin(self, ns: int, keys: Sequence[bytes]) -> list[int]:
        return self.pin(ns, keys, False)

    def confirm_used(self, ns: int, nblocks: int) -> None:
        """Tell the tier the engine used ``nblocks`` of the blocks it fetched
        from namespace ``ns`` (the hit funnel's last stage: looked up ->
        found -> fetched -> used, per tenant; docs/metrics.md). Count in the
        tier's units, one per key per namespace, like the GETs that fetched
        them. One small blocking message; 0 sends nothing."""
        if not isinstance(nblocks, int) or nblocks < 0:
            raise ValueError(f"nblocks is a count >= 0, not {nblocks!r}")
        check(_lib.lib().gpc_confirm_used(self.handle, ns, nblocks), "confirm used")

    def set_weight(self, ns: int, weight: int) -> None:
        """Set what namespace ``ns``'s blocks are worth a flash rewrite when
        the tier reclaims room (docs/cache-policy.md): 1, the default, keeps
        a block read since it was written; 0 keeps none that way (cheap to
        recompute; pins still hold); 2..MAX_WEIGHT also keep a block unread,
        up to ``weight - 1`` times in a row (costly to recompute). For all of
        the tenant's clients, until the daemon restarts: set it again after
        a reconnect."""
        if isinstance(weight, bool) or not isinstance(weight, int) or \
                not 0 <= weight <= _lib.MAX_WEIGHT:
            raise ValueError(f"weight is an int in [0, {_lib.MAX_WEIGHT}], not {weight!r}")
        check(_lib.lib().gpc_set_weight(self.handle, ns, weight), "set weight")

    # ---- KV events (for routers) ----

    def subscribe(self, ns: int) -> None:
        """Receive KV events of namespace ns (up to 16 per client)."""
        check(_lib.lib().gpc_subscribe(self.handle, ns), "subscribe")

    def events(self, max_events: int = 256) -> tuple[list[KVEvent], int]:
        """Drive the connection once; the events that arrived (oldest
        first) and how many were lost since the last call because this
        client did not keep up (after a loss, LOOKUP what matters)."""
        ev = (_lib.Event * max_events)()
        n = ctypes.c_uint()
        lost = ctypes.c_uint64()
        check(_lib.lib().gpc_events_poll(self.handle, ev, max_events, ctypes.byref(n),
                                         ctypes.byref(lost)), "events")
        out = [KVEvent(int(e.ns), bytes(e.key), e.type == _lib.EV_STORED, int(e.shard))
               for e in ev[: n.value]]
        return out, int(lost.value)
