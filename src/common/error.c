/*
 * error.c - gpc_strerror: one table naming GPUCache's own error codes; plain
 * errno values are named by the C library. Thread-safe: returns only static
 * strings (strerror's buffer is thread-local in glibc for unknown codes).
 */
#include <string.h>

#include "gpucache/gpucache.h"

static const char *const gpc_errstr[GPC_ELAST - GPC_EBASE] = {
	[GPC_ECORRUPT - GPC_EBASE] = "data failed an integrity check",
	[GPC_EVERSION - GPC_EBASE] = "unsupported format or protocol version",
	[GPC_ENOTFOUND - GPC_EBASE] = "not found",
	[GPC_ETOOBIG - GPC_EBASE] = "value too large for a segment",
	[GPC_EDEGRADED - GPC_EBASE] = "too many devices lost to reconstruct",
	[GPC_EUUID - GPC_EBASE] = "device belongs to another store",
	[GPC_ENOSPACE - GPC_EBASE] = "no writable segment (too many devices failed)",
	[GPC_ECONFIG - GPC_EBASE] = "invalid configuration",
	[GPC_EBUSY - GPC_EBASE] = "server busy, retry",
	[GPC_EAUTH - GPC_EBASE] = "authentication failed",
	[GPC_ECLOSED - GPC_EBASE] = "closed",
	[GPC_EQUOTA - GPC_EBASE] = "over the tenant's quota",
};
_Static_assert(sizeof(gpc_errstr) / sizeof(gpc_errstr[0]) ==
		       GPC_ELAST - GPC_EBASE,
	       "every own error code has a string");

const char *
gpc_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err >= GPC_EBASE && err < GPC_ELAST && gpc_errstr[err - GPC_EBASE])
		return gpc_errstr[err - GPC_EBASE];
	if (err == 0)
		return "success";
	if (err < GPC_EBASE)
		return strerror(err);
	return "unknown error";
}
