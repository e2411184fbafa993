"""Exceptions: every failure of libgpucache becomes a GpucacheError that
carries the code and gpc_strerror's message."""

from __future__ import annotations

import errno as _errno
from typing import Sequence

from . import _lib


class GpucacheError(Exception):
    """A libgpucache call failed. ``code`` is positive (errno or GPC_E*)."""

    def __init__(self, code: int, what: str = "") -> None:
        self.code = abs(int(code))
        self.message = _lib.strerror(self.code)
        super().__init__(f"{what}: {self.message}" if what else self.message)


class NotFoundError(GpucacheError):
    """GPC_ENOTFOUND: no such block (a miss)."""


class BusyError(GpucacheError):
    """GPC_EBUSY or EAGAIN: the tier is overloaded, retry later."""


class AuthError(GpucacheError):
    """GPC_EAUTH: the tenant or secret was refused."""


class ClosedError(GpucacheError):
    """GPC_ECLOSED: the connection is closing or closed."""


class QuotaError(GpucacheError):
    """GPC_EQUOTA: past the tenant's quota (e.g. a pin, operations.md)."""


class BatchError(GpucacheError):
    """Some blocks of a batch failed. ``statuses`` holds every block's
    result (0 or a length on success, a negative code otherwise);
    ``code`` is the first failed block's code."""

    def __init__(self, statuses: Sequence[int], what: str = "") -> None:
        self.statuses = list(statuses)
        bad = [s for s in self.statuses if s < 0]
        super().__init__(bad[0] if bad else _errno.EIO, what)
        self.failed = [i for i, s in enumerate(self.statuses) if s < 0]


_BY_CODE = {
    _lib.ENOTFOUND: NotFoundError,
    _lib.EBUSY: BusyError,
    _errno.EAGAIN: BusyError,
    _lib.EAUTH: AuthError,
    _lib.ECLOSED: ClosedError,
    _lib.EQUOTA: QuotaError,
}


def error(code: int, what: str = "") -> GpucacheError:
    """The exception for a (negative or positive) error code."""
    return _BY_CODE.get(abs(int(code)), GpucacheError)(code, what)


def check(rc: int, what: str) -> int:
    """Raise for a negative return code; pass anything else through."""
    if rc < 0:
        raise error(rc, what)
    return rc
