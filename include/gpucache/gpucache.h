/*
 * gpucache.h - the public ABI of GPUCache.
 *
 * Every exported symbol starts with gpc_. Functions that can fail return 0
 * or a negative error code: a negative errno (-ENOMEM, -EIO, ...) or one of
 * GPUCache's own codes below, which start at 1024. gpc_strerror() names
 * every code. This header is the only one a client needs; libgpucache (the
 * client library) extends it in a later version without breaking it.
 */
#ifndef GPUCACHE_GPUCACHE_H
#define GPUCACHE_GPUCACHE_H

#ifdef __cplusplus
extern "C" {
#endif

#define GPC_VERSION_MAJOR 0
#define GPC_VERSION_MINOR 1

/* GPUCache's own error codes; functions return them negated. */
enum gpc_error {
	GPC_EBASE = 1024,
	GPC_ECORRUPT = 1024,  /* on-disk or on-wire bytes failed a check */
	GPC_EVERSION = 1025,  /* unknown format or protocol version */
	GPC_ENOTFOUND = 1026, /* no such block (a miss) */
	GPC_ETOOBIG = 1027,   /* value larger than a segment can hold */
	GPC_EDEGRADED = 1028, /* more devices lost than the code tolerates */
	GPC_EUUID = 1029,     /* device belongs to another store */
	GPC_ENOSPACE = 1030,  /* no segment can be written (devices failed) */
	GPC_ECONFIG = 1031,   /* bad configuration value */
	GPC_EBUSY = 1032,     /* overloaded: retry later */
	GPC_EAUTH = 1033,     /* authentication failed */
	GPC_ECLOSED = 1034,   /* object is closing or closed */
	GPC_ELAST = 1035,
};

/*
 * Return a static, human-readable string for an error code. Accepts the
 * code with either sign; never returns NULL.
 */
const char *gpc_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
