/*
 * config.c - gpucached's configuration file, --set overrides and checks.
 *
 * One table (cfg_keys) names every key with its section, type, field,
 * range, default and help text; defaults, parsing, --set, the range part
 * of srv_config_check, --help and srv_config_write all walk it, so they
 * cannot drift apart.
 *
 * libinih splits "key = value" lines and strips comments; it is fed
 * through our own line reader (ini_parse_stream) because the Debian build
 * of libinih 55 falls short of what a daemon needs in three ways, each
 * covered by tests/unit/test_config.c:
 *  - the handler gets no line number (INI_HANDLER_LINENO is 0) and the
 *    return value is only the first error line inih saw itself. The reader
 *    hands inih exactly one physical line per call and counts them, so
 *    cfg_parse.line is the line the handler is looking at.
 *  - its line buffer is a fixed 200 bytes and longer lines are silently
 *    cut. The reader keeps the whole line (up to CFG_LINE_MAX), passes
 *    inih a prefix, and for a cut line takes the value from our copy at
 *    the offset where inih's value starts (full_value).
 *  - section names are cut at 50 bytes and indented lines continue the
 *    previous value (multi-line). The reader parses section headers itself
 *    (inih sees a blank line) and strips leading blanks, so inih sees
 *    neither.
 * A key line for which inih calls no handler is a syntax error, found when
 * the reader is asked for the next line; the first error stops the parse.
 *
 * Everything is parsed into a heap copy of the config, committed only on
 * success. Start-up only, one thread; no global state (libinih's runtime
 * option variables are left alone).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "coder/coder.h"
#include "common/hash.h"
#include "gpucache/gpucache.h"
#include "net/wire.h"
#include "store/format.h"

#include "config.h"

_Static_assert(SRV_MAX_DEVS == STORE_MAX_DEVS, "device table size");
_Static_assert(sizeof(((struct srv_config *)0)->devices) ==
		       SRV_MAX_DEVS * SRV_PATH_MAX, "device table layout");
_Static_assert(SRV_TENANT_MAX == WIRE_MAX_TENANT, "tenant name length");
_Static_assert(sizeof(((struct srv_tenant *)0)->name) == SRV_TENANT_MAX + 1,
	       "tenant name size");
_Static_assert(sizeof(((struct srv_tenant *)0)->secret) == SRV_SECRET_MAX,
	       "secret size");
_Static_assert(sizeof(unsigned) == 4 && sizeof(int) == 4, "field widths");

#define CFG_LINE_MAX 8192          /* longest line, NUL included */
#define CFG_FILE_MAX (1u << 20)    /* largest config file */
#define CFG_DIR_MAX 4000           /* room for "/devN.img" in a path */
#define CFG_DEFAULT_DEVS 4u
/* The engine's default chunk: 32 MiB of data per segment, whatever k. */
#define CFG_DEFAULT_SEG (32u << 20)

enum cfg_sect { SECT_NONE, SECT_SERVER, SECT_STORE, SECT_TENANT };

enum cfg_type {
	T_INT,      /* decimal integer */
	T_SIZE,     /* integer with an optional K, M, G or T suffix */
	T_ADDR,     /* numeric IPv4 or IPv6 address */
	T_DIR,      /* data directory (re-derives the default devices) */
	T_DEVICE,   /* one device path, repeatable */
	T_NAME,     /* one of the key's names, or its index (log_level: 0..3) */
	T_SECRET,   /* 16..256 bytes: plain text or hex:... */
	T_REAL,     /* a decimal number (a double field), within rmin..rmax */
};

#define KF_REPEAT 0x1u  /* may appear more than once */
#define KF_ZERO_OK 0x2u /* 0 is allowed besides [min, max] */

struct cfg_key {
	enum cfg_sect sect;
	const char *name;
	enum cfg_type type;
	size_t off, size;  /* field in srv_config, or in srv_tenant */
	uint64_t min, max; /* T_INT, T_SIZE */
	uint32_t align;    /* T_SIZE: a multiple of this (0: any) */
	unsigned flags;
	const char *def;   /* default, as a value would be written; NULL: none */
	const char *const *names; /* T_NAME: value i's name, for 0..max */
	const char *help;
	double rmin, rmax; /* T_REAL */
};

#define FIELD(type, f) offsetof(struct type, f), sizeof(((struct type *)0)->f)
#define SRV(f) FIELD(srv_config, f)
#define TEN(f) FIELD(srv_tenant, f)
#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const char *const admission_names[] = { "auto", "all", "seen",
					       "notail" };
static const char *const onoff_names[] = { "off", "on" };
static const char *const data_send_names[] = { "auto", "iovec", "contig" };

static const struct cfg_key cfg_keys[] = {
	{ SECT_SERVER, "listen", T_ADDR, SRV(listen_addr), .def = "0.0.0.0",
	  .help = "address the shards listen on (numeric IPv4 or IPv6)" },
	{ SECT_SERVER, "port", T_INT, SRV(port), 1, 65535, .def = "7070",
	  .help = "port of shard 0; shard i listens on port + i" },
	{ SECT_SERVER, "shards", T_INT, SRV(shards), 1, 64, .def = "1",
	  .help = "shard threads (one core, one io_uring, one UCX worker each)" },
	{ SECT_SERVER, "metrics_addr", T_ADDR, SRV(metrics_addr),
	  .def = "127.0.0.1", .help = "address of the Prometheus endpoint" },
	{ SECT_SERVER, "metrics_port", T_INT, SRV(metrics_port), 0, 65535,
	  .def = "7080", .help = "port of the Prometheus endpoint; 0 = off" },
	{ SECT_SERVER, "max_inflight_conn", T_INT, SRV(max_inflight_conn), 1,
	  65536, .def = "64", .help = "requests in flight per connection" },
	{ SECT_SERVER, "max_inflight_shard", T_INT, SRV(max_inflight_shard), 1,
	  1u << 20, .def = "1024", .help = "requests in flight per shard" },
	{ SECT_SERVER, "client_timeout", T_INT, SRV(client_timeout_s), 1, 3600,
	  .def = "30", .help = "seconds a transfer may wait on its client "
	  "(and, at most 10, a connection may take to authenticate) before "
	  "the connection is dropped" },
	{ SECT_SERVER, "namespace_metrics", T_INT, SRV(ns_rows), 0, 65536,
	  .def = "256", .help = "namespaces per shard with metrics of their "
	  "own (the first seen); others count per tenant only. 0: none" },
	{ SECT_SERVER, "namespace_metrics_per_tenant", T_INT, SRV(ns_rows_tenant),
	  0, 65536, .def = "128", .help = "of those, the most one tenant's "
	  "namespaces may take (above namespace_metrics: as many; 0: none)" },
	{ SECT_SERVER, "poll_spin_us", T_INT, SRV(poll_spin_us), 0, 100000,
	  .def = "0", .help = "microseconds a shard keeps polling, while "
	  "requests are in flight, before it sleeps on its event fd" },
	{ SECT_SERVER, "io_nap_us", T_INT, SRV(io_nap_us), 0, 10000,
	  .def = "50", .help = "a shard with only engine work in flight "
	  "sleeps until the I/O completes (io_uring's event fd); where the "
	  "I/O backend has no event fd, it naps this many microseconds "
	  "between polls. 0: it polls, never sleeps" },
	{ SECT_SERVER, "data_send", T_NAME, SRV(data_send), 0, 2,
	  .names = data_send_names, .def = "auto",
	  .help = "how a GET's bytes go out: iovec (UCX moves them in "
	  "fragments over its message lane), contig (UCX's zero-copy "
	  "rendezvous write, for RDMA NICs), or auto: per connection, "
	  "iovec where its message lane is shared memory, for blocks up "
	  "to 128K where UCX writes over tcp, else contig "
	  "(docs/benchmarks.md)" },
	{ SECT_SERVER, "put_piece", T_SIZE, SRV(put_piece), 4 * KIB,
	  64 * MIB, STORE_SECTOR, KF_ZERO_OK, .def = "256K",
	  .help = "clients send a PUT's bytes in pieces of at most this "
	  "size, which the daemon checksums as each lands, still in its "
	  "CPU's caches (a multiple of 4K; 0: whole blocks; "
	  "docs/benchmarks.md)" },
	{ SECT_SERVER, "data_dir", T_DIR, SRV(data_dir),
	  .def = "/var/lib/gpucache",
	  .help = "data directory; default devices live here" },
	{ SECT_SERVER, "log_level", T_NAME, SRV(log_level), 0, 3,
	  .names = level_names,
	  .def = "info", .help = "error, warn, info or debug (or 0..3)" },
	{ SECT_STORE, "device", T_DEVICE, SRV(devices), .flags = KF_REPEAT,
	  .help = "device or file, one line each (default: data_dir/dev0.img"
		  " .. dev3.img)" },
	{ SECT_STORE, "device_size", T_SIZE, SRV(device_size), 2 * MIB,
	  1024 * TIB, .def = "1G",
	  .help = "size of device files created on first start" },
	{ SECT_STORE, "k", T_INT, SRV(k), 1, CODER_MAX_K, .def = "2",
	  .help = "data chunks per stripe" },
	{ SECT_STORE, "m", T_INT, SRV(m), 0, CODER_MAX_M, .def = "1",
	  .help = "parity chunks per stripe (devices that may fail)" },
	{ SECT_STORE, "chunk_size", T_SIZE, SRV(chunk_size), 8 * KIB, GIB,
	  STORE_SECTOR, KF_ZERO_OK, .def = "0",
	  .help = "bytes per chunk, a multiple of 4K; 0 = the engine's "
	  "default, 32M / k + 4K (16M + 4K for k = 2)" },
	{ SECT_STORE, "admission", T_NAME, SRV(admission), 0, 3,
	  .names = admission_names, .def = "auto",
	  .help = "which new blocks go to flash: auto (chosen online by "
	  "miniature simulations), all, seen (only blocks looked up "
	  "before), or notail (all but a LOOKUP chain's last block, unless "
	  "looked up before; docs/cache-policy.md)" },
	{ SECT_STORE, "drop_orphans", T_NAME, SRV(drop_orphans), 0, 1,
	  .names = onoff_names, .def = "on",
	  .help = "reclaim never rewrites a block whose parent (the key "
	  "before it in the LOOKUP chain that named it) is gone: a LOOKUP "
	  "stops before it, so it can never hit. off: only for clients whose "
	  "LOOKUP chains are not prefix chains (docs/cache-policy.md)" },
	{ SECT_STORE, "seal_thread", T_NAME, SRV(seal_thread), 0, 1,
	  .names = onoff_names, .def = "off",
	  .help = "parity and chunk checksums of full segments on a thread "
	  "of each shard's own (docs/pipeline.md); pays where the shard's "
	  "core is the bottleneck and another core is free" },
	{ SECT_STORE, "write_amp_max", T_REAL, SRV(write_amp_max),
	  .rmin = 1.0, .rmax = 10.0, .def = "1.5",
	  .help = "flash writes the cache policy may spend keeping blocks: "
	  "its rewrites stay under (this - 1) x the blocks put and read "
	  "(docs/cache-policy.md); 1: it rewrites only pinned and quota "
	  "blocks" },
	{ SECT_STORE, "writeback_ms", T_INT, SRV(writeback_ms), 0, 3600000,
	  .def = "1000", .help = "milliseconds a full segment may stay in "
	  "DRAM unwritten (bounds what a crash loses of puts not asked to "
	  "be durable; a segment whose blocks were all overwritten or "
	  "deleted by then is never written); written segments stay "
	  "readable in DRAM until their buffer is needed. 0: written at "
	  "once, buffer freed" },
	{ SECT_STORE, "dram_buffer", T_SIZE, SRV(dram_buffer), MIB, TIB,
	  .def = "256M", .help = "DRAM write buffer per shard" },
	{ SECT_TENANT, "secret", T_SECRET, TEN(secret),
	  .help = "16..256 bytes: plain text, or hex:HEX (required)" },
	{ SECT_TENANT, "quota", T_SIZE, TEN(quota_bytes), 0, UINT64_MAX,
	  .def = "0", .help = "capacity quota; 0 = none" },
	{ SECT_TENANT, "class", T_INT, TEN(class_id), 0, SRV_CLASS_MAX,
	  .def = "0", .help = "engine class 1..1023 its blocks are kept "
	  "under; 0 = derived from the name (never set it on a store in use: "
	  "the tenant's blocks stay under the old class)" },
};
#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

static const char *const sect_names[] = {
	[SECT_NONE] = "", [SECT_SERVER] = "server", [SECT_STORE] = "store",
	[SECT_TENANT] = "tenant",
};

/* State of one parse: the config copy, the reader and error position. */
struct cfg_parse {
	struct srv_config c;
	const char *name;
	const char *text;
	size_t len, pos;
	unsigned line;               /* physical line being handled, 1-based */
	char raw[CFG_LINE_MAX];      /* that line, NUL-terminated */
	const char *start;           /* raw after a BOM and leading blanks */
	const char *ibuf;            /* inih's line buffer, as last filled */
	size_t icopied;              /* bytes of start given to inih */
	bool trunc;                  /* inih got only a prefix */
	bool expect_pair;            /* the line is "key = value" */
	unsigned pairs;              /* handler calls for the line */
	enum cfg_sect sect;
	unsigned tenant, sect_line;
	bool devices_seen;
	unsigned key_line[CFG_NKEYS];            /* first set on, 0: not yet */
	unsigned tenant_line[SRV_MAX_TENANTS];   /* header line in this file */
	unsigned err_line;
	char why[512];
	char val[CFG_LINE_MAX];
};

/* ---- small helpers ---------------------------------------------------- */

static void
store_uint(void *f, size_t size, uint64_t v)
{
	if (size == 2) {
		uint16_t x = (uint16_t)v;
		memcpy(f, &x, 2);
	} else if (size == 4) {
		uint32_t x = (uint32_t)v;
		memcpy(f, &x, 4);
	} else {
		memcpy(f, &v, 8);
	}
}

static uint64_t
load_uint(const void *f, size_t size)
{
	uint16_t x16;
	uint32_t x32;
	uint64_t x64;

	if (size == 2) {
		memcpy(&x16, f, 2);
		return x16;
	}
	if (size == 4) {
		memcpy(&x32, f, 4);
		return x32;
	}
	memcpy(&x64, f, 8);
	return x64;
}

/* v as the shortest exact "12G", "1536K", "7". */
static const char *
fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char suf[] = "KMGT";
	int i = -1;

	while (v != 0 && i < 3 && v % 1024 == 0) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, suf[i]);
	return buf;
}

/*
 * Decimal integer, with a K/M/G/T suffix (optionally followed by "iB")
 * when sized. 0 or -1 with why.
 */
static int
parse_uint(const char *s, bool sized, uint64_t *out, char *why, size_t wl)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		goto bad;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			goto big;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (sized && *p != '\0') {
		const char *u = strchr("KMGT", toupper((unsigned char)*p));

		if (u == NULL)
			goto bad;
		mul = 1ull << (10 * (u - "KMGT" + 1));
		p++;
		if (strcmp(p, "iB") == 0 || strcmp(p, "B") == 0)
			p += strlen(p);
	}
	if (*p != '\0')
		goto bad;
	if (v > UINT64_MAX / mul)
		goto big;
	*out = v * mul;
	return 0;
bad:
	snprintf(why, wl, sized ? "'%.64s' is not a size (digits with an "
				  "optional K, M, G or T suffix)"
				: "'%.64s' is not a decimal number", s);
	return -1;
big:
	snprintf(why, wl, "'%.64s' is too large", s);
	return -1;
}

/* v as a key of k's type prints it: "12G" for sizes, decimal otherwise. */
static const char *
fmt_val(const struct cfg_key *k, uint64_t v, char *buf, size_t len)
{
	if (k->type == T_SIZE)
		return fmt_size(v, buf, len);
	snprintf(buf, len, "%" PRIu64, v);
	return buf;
}

static int
check_range(const struct cfg_key *k, uint64_t v, char *why, size_t wl)
{
	char a[32], b[32], x[32];

	if (v == 0 && (k->flags & KF_ZERO_OK))
		return 0;
	if (v < k->min || v > k->max) {
		snprintf(why, wl, "%s is out of range %s..%s%s",
			 fmt_val(k, v, x, sizeof(x)),
			 fmt_val(k, k->min, a, sizeof(a)),
			 fmt_val(k, k->max, b, sizeof(b)),
			 (k->flags & KF_ZERO_OK) ? " (or 0)" : "");
		return -1;
	}
	if (k->align && v % k->align != 0) {
		snprintf(why, wl, "%s is not a multiple of %s",
			 fmt_size(v, x, sizeof(x)),
			 fmt_size(k->align, a, sizeof(a)));
		return -1;
	}
	return 0;
}

/* A decimal number within k's range, whole string: 0 or -1 with why. */
static int
parse_real(const struct cfg_key *k, const char *v, double *out, char *why,
	   size_t wl)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	/* decimal only: no sign, hex, inf or nan (strtod takes them) */
	if (end == v || *end != '\0' || errno != 0 || !(d == d) ||
	    v[strspn(v, "0123456789.eE-")] != '\0' || v[0] == '-') {
		snprintf(why, wl, "'%s' is not a decimal number", v);
		return -1;
	}
	if (!(d >= k->rmin && d <= k->rmax)) {
		snprintf(why, wl, "%s is out of range %g..%g", v, k->rmin,
			 k->rmax);
		return -1;
	}
	*out = d;
	return 0;
}

/* A numeric IPv4 or IPv6 address; *any: the wildcard (0.0.0.0 or ::). */
static bool
addr_ok(const char *s, bool *any)
{
	uint8_t b[16] = { 0 };
	bool ok;

	ok = inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
	if (any)
		*any = ok && memcmp(b, (uint8_t[16]){ 0 }, 16) == 0;
	return ok;
}

/* 1..64 bytes of printable ASCII without spaces (as wire_hello_decode). */
static bool
tenant_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > SRV_TENANT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

static int
tenant_find(const struct srv_config *c, const char *name, size_t n)
{
	for (unsigned i = 0; i < c->ntenants && i < SRV_MAX_TENANTS; i++)
		if (strlen(c->tenants[i].name) == n &&
		    memcmp(c->tenants[i].name, name, n) == 0)
			return (int)i;
	return -1;
}

/* The tenant called name[0..n), created empty if new; -1: table full. */
static int
tenant_get(struct srv_config *c, const char *name, size_t n)
{
	int t = tenant_find(c, name, n);
	struct srv_tenant *tn;

	if (t >= 0 || c->ntenants >= SRV_MAX_TENANTS)
		return t;
	tn = &c->tenants[c->ntenants];
	memset(tn, 0, sizeof(*tn));
	memcpy(tn->name, name, n);
	return (int)c->ntenants++;
}

static const struct cfg_key *
key_find(enum cfg_sect sect, const char *name)
{
	for (size_t i = 0; i < CFG_NKEYS; i++)
		if (cfg_keys[i].sect == sect && strcmp(cfg_keys[i].name, name) == 0)
			return &cfg_keys[i];
	return NULL;
}

static void
default_devices(struct srv_config *c)
{
	size_t n = strlen(c->data_dir);
	const char *sep = n && c->data_dir[n - 1] == '/' ? "" : "/";

	c->ndev = CFG_DEFAULT_DEVS;
	for (unsigned i = 0; i < CFG_DEFAULT_DEVS; i++)
		snprintf(c->devices[i], SRV_PATH_MAX, "%.*s%sdev%u.img",
			 CFG_DIR_MAX, c->data_dir, sep, i);
}

/* ---- applying one value ------------------------------------------------ */

static int
hex_nibble(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* A secret value into t (never echoed in messages). */
static int
apply_secret(struct srv_tenant *t, const char *v, char *why, size_t wl)
{
	uint8_t buf[SRV_SECRET_MAX];
	size_t n = strlen(v);

	if (strncmp(v, "hex:", 4) == 0) {
		v += 4;
		n -= 4;
		if (n % 2) {
			snprintf(why, wl, "hex secret has an odd number of digits");
			return -1;
		}
		n /= 2;
		for (size_t i = 0; i < n && i < sizeof(buf); i++) {
			int hi = hex_nibble((unsigned char)v[2 * i]);
			int lo = hex_nibble((unsigned char)v[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				snprintf(why, wl, "hex secret has a non-hex "
					 "character near digit %zu", 2 * i + 1);
				return -1;
			}
			buf[i] = (uint8_t)(hi << 4 | lo);
		}
	} else if (n <= sizeof(buf)) {
		memcpy(buf, v, n);
	}
	if (n < SRV_SECRET_MIN || n > SRV_SECRET_MAX) {
		snprintf(why, wl, "secret is %zu bytes; it must be %d..%d",
			 n, SRV_SECRET_MIN, SRV_SECRET_MAX);
		return -1;
	}
	memset(t->secret, 0, sizeof(t->secret)); /* no stale tail */
	memcpy(t->secret, buf, n);
	t->secret_len = n;
	return 0;
}

static int
apply_device(struct srv_config *c, const char *v, bool replace, char *why,
	     size_t wl)
{
	size_t n = strlen(v);
	unsigned ndev = replace ? 0 : c->ndev;

	if (n == 0 || n >= SRV_PATH_MAX) {
		snprintf(why, wl, "device path must be 1..%d bytes",
			 SRV_PATH_MAX - 1);
		return -1;
	}
	for (unsigned i = 0; i < ndev; i++)
		if (strcmp(c->devices[i], v) == 0) {
			snprintf(why, wl, "device '%.256s' is listed twice", v);
			return -1;
		}
	if (ndev >= SRV_MAX_DEVS) {
		snprintf(why, wl, "more than %d devices", SRV_MAX_DEVS);
		return -1;
	}
	memcpy(c->devices[ndev], v, n + 1);
	c->ndev = ndev + 1;
	c->devices_explicit = true;
	return 0;
}

static int
apply_name(const struct cfg_key *k, void *f, const char *v, char *why,
	   size_t wl)
{
	size_t n = 0;

	for (uint64_t i = 0; i <= k->max; i++)
		if (strcmp(v, k->names[i]) == 0 ||
		    (v[0] == (char)('0' + i) && v[1] == '\0')) {
			store_uint(f, k->size, i);
			return 0;
		}
	n += (size_t)snprintf(why, wl, "'%.64s' is not one of", v);
	for (uint64_t i = 0; i <= k->max && n < wl; i++)
		n += (size_t)snprintf(why + n, wl - n, "%s %s", i ? "," : "",
				      k->names[i]);
	if (n < wl)
		snprintf(why + n, wl - n, " (or 0..%" PRIu64 ")", k->max);
	return -1;
}

static int
apply_string(const struct cfg_key *k, void *f, const char *v, char *why,
	     size_t wl)
{
	size_t n = strlen(v), max = k->type == T_DIR ? CFG_DIR_MAX : k->size - 1;

	if (k->type == T_ADDR && !addr_ok(v, NULL)) {
		snprintf(why, wl, "'%.64s' is not a numeric IPv4 or IPv6 "
			 "address", v);
		return -1;
	}
	if (n == 0 || n > max) {
		snprintf(why, wl, "must be 1..%zu bytes", max);
		return -1;
	}
	memcpy(f, v, n + 1);
	return 0;
}

/*
 * Apply value v of key k to c (t: the tenant, for tenant keys). Nothing
 * is written unless the value is good; -1 with why otherwise.
 * replace_devs: a device value starts a new list.
 */
static int
apply(struct srv_config *c, const struct cfg_key *k, struct srv_tenant *t,
      const char *v, bool replace_devs, char *why, size_t wl)
{
	void *f = k->sect == SECT_TENANT ? (char *)t + k->off
					 : (char *)c + k->off;
	uint64_t n;

	switch (k->type) {
	case T_INT:
	case T_SIZE:
		if (parse_uint(v, k->type == T_SIZE, &n, why, wl) < 0 ||
		    check_range(k, n, why, wl) < 0)
			return -1;
		store_uint(f, k->size, n);
		return 0;
	case T_ADDR:
		return apply_string(k, f, v, why, wl);
	case T_DIR:
		if (apply_string(k, f, v, why, wl) < 0)
			return -1;
		if (!c->devices_explicit)
			default_devices(c);
		return 0;
	case T_DEVICE:
		return apply_device(c, v, replace_devs, why, wl);
	case T_NAME:
		return apply_name(k, f, v, why, wl);
	case T_SECRET:
		return apply_secret(t, v, why, wl);
	case T_REAL: {
		double d;

		if (parse_real(k, v, &d, why, wl) < 0)
			return -1;
		memcpy(f, &d, sizeof(d));
		return 0;
	}
	}
	snprintf(why, wl, "internal error: key type %d", (int)k->type);
	return -1;
}

void
srv_config_defaults(struct srv_config *c)
{
	char why[256];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		int rc;

		if (k->sect == SECT_TENANT || k->def == NULL)
			continue;
		assert(k->type != T_REAL || k->size == sizeof(double));
		rc = apply(c, k, NULL, k->def, false, why, sizeof(why));
		assert(rc == 0); /* the table's defaults are valid */
		(void)rc;
	}
	default_devices(c);
	c->devices_explicit = false;
	c->devices_from_set = false;
}

/* ---- the file parser --------------------------------------------------- */

static int
fail(struct cfg_parse *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the first error (at line) and stop the parse. Returns -1. */
static int
fail(struct cfg_parse *p, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (p->err_line)
		return -1;
	p->err_line = line ? line : 1;
	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	return -1;
}

static const char *
lskip(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	return s;
}

/* Trim s[0..n) on both sides; returns the start, *n the new length. */
static const char *
trim(const char *s, size_t *n)
{
	while (*n && isspace((unsigned char)*s)) {
		s++;
		(*n)--;
	}
	while (*n && isspace((unsigned char)s[*n - 1]))
		(*n)--;
	return s;
}

/* The tenant whose section just ended must have a secret. */
static int
end_section(struct cfg_parse *p)
{
	const struct srv_tenant *t;

	if (p->sect != SECT_TENANT)
		return 0;
	t = &p->c.tenants[p->tenant];
	if (t->secret_len == 0)
		return fail(p, p->sect_line, "[tenant %s] has no secret", t->name);
	return 0;
}

static int
tenant_section(struct cfg_parse *p, const char *s, size_t n)
{
	int t;

	s = trim(s, &n);
	if (!tenant_name_ok(s, n))
		return fail(p, p->line, "bad tenant name '%.*s' (1..%d printable "
			    "ASCII characters, no spaces)", (int)(n > 80 ? 80 : n),
			    s, SRV_TENANT_MAX);
	t = tenant_find(&p->c, s, n);
	if (t >= 0 && p->tenant_line[t])
		return fail(p, p->line, "duplicate section [tenant %.*s] (first "
			    "on line %u)", (int)n, s, p->tenant_line[t]);
	if (t >= 0) { /* replace a tenant that came from elsewhere */
		struct srv_tenant *tn = &p->c.tenants[t];

		memset(tn->secret, 0, sizeof(tn->secret));
		tn->secret_len = 0;
		tn->quota_bytes = 0;
		tn->class_id = 0;
	} else if ((t = tenant_get(&p->c, s, n)) < 0) {
		return fail(p, p->line, "more than %d tenants", SRV_MAX_TENANTS);
	}
	p->tenant = (unsigned)t;
	p->tenant_line[t] = p->line;
	for (size_t i = 0; i < CFG_NKEYS; i++)
		if (cfg_keys[i].sect == SECT_TENANT)
			p->key_line[i] = 0;
	p->sect = SECT_TENANT;
	return 0;
}

/* "[server]", "[store]", "[tenant NAME]", then blanks or a comment. */
static int
section_line(struct cfg_parse *p)
{
	const char *s = p->start + 1, *e = strchr(s, ']'), *rest;
	size_t n;

	if (e == NULL)
		return fail(p, p->line, "section header without ']'");
	rest = lskip(e + 1);
	if (*rest && *rest != ';' && *rest != '#')
		return fail(p, p->line, "unexpected text after ']'");
	if (end_section(p) < 0)
		return -1;
	n = (size_t)(e - s);
	s = trim(s, &n);
	p->sect_line = p->line;
	if (n == 6 && memcmp(s, "server", 6) == 0) {
		p->sect = SECT_SERVER;
	} else if (n == 5 && memcmp(s, "store", 5) == 0) {
		p->sect = SECT_STORE;
	} else if (n > 6 && memcmp(s, "tenant", 6) == 0 &&
		   isspace((unsigned char)s[6])) {
		return tenant_section(p, s + 6, n - 6);
	} else {
		return fail(p, p->line, "unknown section [%.*s] (expected "
			    "[server], [store] or [tenant NAME])",
			    (int)(n > 80 ? 80 : n), s);
	}
	return 0;
}

/* The previous line was "key = value": did inih see one? */
static int
end_line(struct cfg_parse *p)
{
	if (p->expect_pair && p->pairs == 0 && p->trunc)
		return fail(p, p->line, "no '=' in the first %zu bytes of a "
			    "long line", p->icopied);
	if (p->expect_pair && p->pairs == 0)
		return fail(p, p->line, "expected 'key = value', '[section]' "
			    "or a comment");
	p->expect_pair = false;
	return 0;
}

/* Read the next physical line into raw; -1 at the end or on error. */
static int
next_line(struct cfg_parse *p)
{
	const char *s = p->text + p->pos, *nl;
	size_t n;

	if (p->pos >= p->len)
		return -1;
	nl = memchr(s, '\n', p->len - p->pos);
	n = nl ? (size_t)(nl - s) : p->len - p->pos;
	p->pos += n + (nl != NULL);
	p->line++;
	p->pairs = 0;
	p->trunc = false;
	if (memchr(s, '\0', n))
		return fail(p, p->line, "NUL byte in line");
	if (n >= CFG_LINE_MAX)
		return fail(p, p->line, "line longer than %d bytes",
			    CFG_LINE_MAX - 1);
	memcpy(p->raw, s, n);
	p->raw[n] = '\0';
	p->start = p->raw;
	if (p->line == 1 && memcmp(p->raw, "\xEF\xBB\xBF", 3) == 0)
		p->start += 3;
	p->start = lskip(p->start);
	return 0;
}

/* ini_reader: one physical line per call (see the comment at the top). */
static char *
cfg_reader(char *str, int num, void *stream)
{
	struct cfg_parse *p = stream;
	size_t n;

	if (end_line(p) < 0 || p->err_line || next_line(p) < 0 || num < 3)
		return NULL;
	str[0] = '\n';
	str[1] = '\0';
	if (*p->start == '[')
		return section_line(p) < 0 ? NULL : str;
	if (*p->start == '\0' || *p->start == ';' || *p->start == '#')
		return str;
	n = strlen(p->start);
	p->trunc = n > (size_t)num - 2;
	if (p->trunc)
		n = (size_t)num - 2;
	memcpy(str, p->start, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	p->ibuf = str;
	p->icopied = n;
	p->expect_pair = true;
	return str;
}

/*
 * The value of the current line: inih's own unless inih got a cut line;
 * then the same rules (an inline comment starts at ';' after a blank,
 * trailing blanks go) applied to our whole copy, from where inih's value
 * starts. NULL if that cannot be located.
 */
static const char *
full_value(struct cfg_parse *p, const char *value)
{
	uintptr_t v = (uintptr_t)value, b = (uintptr_t)p->ibuf;
	size_t off, n;
	bool was_space;
	char *s;

	if (!p->trunc)
		return value;
	if (v < b || v > b + p->icopied)
		return NULL;
	off = (size_t)(v - b);
	was_space = off > 0 && isspace((unsigned char)p->start[off - 1]);
	s = p->val;
	memcpy(s, p->start + off, strlen(p->start + off) + 1);
	for (n = 0; s[n]; n++) {
		if (was_space && s[n] == ';')
			break;
		was_space = isspace((unsigned char)s[n]);
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	s[n] = '\0';
	return lskip(s);
}

/* One "key = value" line of the current section. */
static int
cfg_pair(struct cfg_parse *p, const char *name, const char *value)
{
	const struct cfg_key *k;
	struct srv_tenant *t = &p->c.tenants[p->tenant];
	char sect[96], why[384];
	size_t ki;
	bool first_dev;

	if (p->sect == SECT_NONE)
		return fail(p, p->line, "'%.64s' outside any section (put "
			    "[server], [store] or [tenant NAME] above it)", name);
	if (p->sect == SECT_TENANT)
		snprintf(sect, sizeof(sect), "[tenant %s]", t->name);
	else
		snprintf(sect, sizeof(sect), "[%s]", sect_names[p->sect]);
	k = key_find(p->sect, name);
	if (k == NULL)
		return fail(p, p->line, "%s unknown key '%.64s'", sect, name);
	ki = (size_t)(k - cfg_keys);
	if (!(k->flags & KF_REPEAT) && p->key_line[ki])
		return fail(p, p->line, "%s %s set twice (first on line %u)",
			    sect, k->name, p->key_line[ki]);
	first_dev = k->type == T_DEVICE && !p->devices_seen;
	if (apply(&p->c, k, t, value, first_dev, why, sizeof(why)) < 0)
		return fail(p, p->line, "%s %s: %s", sect, k->name, why);
	if (k->type == T_DEVICE) {
		p->devices_seen = true;
		p->c.devices_from_set = false;
	}
	if (!p->key_line[ki])
		p->key_line[ki] = p->line;
	return 0;
}

#if INI_HANDLER_LINENO
static int
cfg_handler(void *user, const char *section, const char *name,
	    const char *value, int lineno)
#else
static int
cfg_handler(void *user, const char *section, const char *name,
	    const char *value)
#endif
{
	struct cfg_parse *p = user;

	(void)section; /* always "": the reader keeps section lines from inih */
#if INI_HANDLER_LINENO
	(void)lineno;
#endif
	if (++p->pairs > 1)
		return fail(p, p->line, "continuation lines are not supported"),
		       0;
	if (value == NULL)
		return fail(p, p->line, "'%.64s' has no value", name), 0;
	value = full_value(p, value);
	if (value == NULL)
		return fail(p, p->line, "line too long for the INI parser"), 0;
	return cfg_pair(p, name, value) == 0;
}

static int
parse_run(struct cfg_parse *p)
{
	int ret = ini_parse_stream(cfg_reader, p, cfg_handler, p);

	if (ret == -2)
		return -ENOMEM;
	if (!p->err_line)
		(void)end_line(p);
	if (!p->err_line)
		(void)end_section(p);
	/* inih found a syntax error our reader did not (should not happen) */
	if (ret > 0 && (!p->err_line || (unsigned)ret < p->err_line)) {
		p->err_line = 0;
		fail(p, (unsigned)ret, "syntax error");
	}
	return p->err_line ? -GPC_ECONFIG : 0;
}

int
srv_config_parse(struct srv_config *c, const char *text, size_t len,
		 const char *name, char *err, size_t errlen)
{
	struct cfg_parse *p;
	int rc;

	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		snprintf(err, errlen, "%s: out of memory", name ? name : "config");
		return -ENOMEM;
	}
	memcpy(&p->c, c, sizeof(*c)); /* memcpy: padding too, for memcmp */
	p->name = name ? name : "config";
	p->text = text;
	p->len = text ? len : 0;
	rc = parse_run(p);
	if (rc == 0)
		memcpy(c, &p->c, sizeof(*c));
	else if (rc == -GPC_ECONFIG)
		snprintf(err, errlen, "%s:%u: %s", p->name, p->err_line, p->why);
	else
		snprintf(err, errlen, "%s: %s", p->name, strerror(-rc));
	free(p);
	return rc;
}

/* Read all of path into a malloc'd buffer; negative errno. */
static int
read_file(const char *path, char **out, size_t *outlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	int rc = 0;

	if (f == NULL)
		return -errno;
	buf = malloc(CFG_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, CFG_FILE_MAX + 1, f);
	if (ferror(f))
		rc = -EIO;
	else if (n > CFG_FILE_MAX)
		rc = -EFBIG;
	fclose(f);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

int
srv_config_load(struct srv_config *c, const char *path, char *err,
		size_t errlen)
{
	char *buf = NULL;
	size_t n = 0;
	int rc;

	rc = read_file(path, &buf, &n);
	if (rc < 0) {
		snprintf(err, errlen, "%s: cannot read: %s%s", path,
			 strerror(-rc), rc == -EFBIG ? " (max 1 MiB)" : "");
		return rc;
	}
	rc = srv_config_parse(c, buf, n, path, err, errlen);
	free(buf);
	return rc;
}

/* ---- --set --------------------------------------------------------------- */

/*
 * Split "section.key" (lhs[0..n)): the key, its section, and for a tenant
 * key "tenant.NAME.key" the name (the key is after the last dot).
 */
static const struct cfg_key *
set_split(const char *lhs, size_t n, const char **tname, size_t *tlen,
	  char *why, size_t wl)
{
	const char *dot = memchr(lhs, '.', n), *last;
	char key[32], sect[16];
	size_t sl, kl;

	if (dot == NULL || (sl = (size_t)(dot - lhs)) >= sizeof(sect)) {
		snprintf(why, wl, "expected section.key=value");
		return NULL;
	}
	memcpy(sect, lhs, sl);
	sect[sl] = '\0';
	last = dot;
	if (strcmp(sect, "tenant") == 0) {
		for (const char *q = dot + 1; q < lhs + n; q++)
			if (*q == '.')
				last = q;
		*tname = dot + 1;
		*tlen = (size_t)(last - dot - 1);
		if (last == dot || !tenant_name_ok(*tname, *tlen)) {
			snprintf(why, wl, "expected tenant.NAME.key=value with "
				 "a valid tenant name");
			return NULL;
		}
	}
	kl = (size_t)(lhs + n - last - 1);
	if (kl >= sizeof(key))
		kl = sizeof(key) - 1;
	memcpy(key, last + 1, kl);
	key[kl] = '\0';
	for (int s = SECT_SERVER; s <= SECT_TENANT; s++)
		if (strcmp(sect, sect_names[s]) == 0) {
			const struct cfg_key *k = key_find((enum cfg_sect)s, key);

			if (k == NULL)
				snprintf(why, wl, "unknown key '%s' in [%s]", key,
					 sect);
			return k;
		}
	snprintf(why, wl, "unknown section '%s' (server, store or tenant)",
		 sect);
	return NULL;
}


int
srv_config_set(struct srv_config *c, const char *a, char *err, size_t errlen)
{
	const char *eq = strchr(a, '='), *lhs = a, *tname = NULL, *v;
	const struct cfg_key *k = NULL;
	struct srv_tenant tn;
	char why[384], *val = NULL;
	size_t n = 0, vn, tlen = 0;
	int t = -1, rc = -GPC_ECONFIG;

	snprintf(why, sizeof(why), "expected section.key=value");
	if (eq != NULL) {
		n = (size_t)(eq - a);
		lhs = trim(a, &n);
		k = set_split(lhs, n, &tname, &tlen, why, sizeof(why));
	}
	if (k == NULL)
		goto out;
	vn = strlen(eq + 1);
	v = trim(eq + 1, &vn);
	val = strndup(v, vn);
	if (val == NULL) {
		snprintf(why, sizeof(why), "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	memset(&tn, 0, sizeof(tn));
	if (k->sect == SECT_TENANT) {
		t = tenant_find(c, tname, tlen);
		if (t < 0 && c->ntenants >= SRV_MAX_TENANTS) {
			snprintf(why, sizeof(why), "more than %d tenants",
				 SRV_MAX_TENANTS);
			goto out;
		}
		if (t >= 0)
			memcpy(&tn, &c->tenants[t], sizeof(tn));
		else
			memcpy(tn.name, tname, tlen);
	}
	if (apply(c, k, &tn, val, !c->devices_from_set, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "--set: %.*s: %s", (int)n, lhs, why);
		free(val);
		return -GPC_ECONFIG;
	}
	if (k->type == T_DEVICE)
		c->devices_from_set = true;
	if (k->sect == SECT_TENANT) {
		if (t < 0)
			t = tenant_get(c, tname, tlen);
		memcpy(&c->tenants[t], &tn, sizeof(tn));
	}
	rc = 0;
out:
	free(val);
	if (rc < 0)
		snprintf(err, errlen, "--set: %s", why);
	return rc;
}

/* ---- whole-config checks ------------------------------------------------ */

static int
check_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
check_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "config: ");

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -GPC_ECONFIG;
}

/* Every [server] and [store] field within the range its key allows. */
static int
check_fields(const struct srv_config *c, char *err, size_t errlen)
{
	char why[256];

	for (size_t i = 0; i < CFG_NKEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		const char *f = (const char *)c + k->off;
		bool bad = false;

		if (k->sect == SECT_TENANT)
			continue; /* a tenant's fields are in its struct
				   * srv_tenant: check_tenants, check_classes */
		if (k->type == T_INT || k->type == T_SIZE ||
		    k->type == T_NAME) {
			bad = check_range(k, load_uint(f, k->size), why,
					  sizeof(why)) < 0;
		} else if (k->type == T_ADDR || k->type == T_DIR) {
			bad = memchr(f, '\0', k->size) == NULL || f[0] == '\0' ||
			      (k->type == T_ADDR && !addr_ok(f, NULL));
			snprintf(why, sizeof(why), "not a valid value");
		} else if (k->type == T_REAL) {
			double d;

			memcpy(&d, f, sizeof(d));
			bad = !(d >= k->rmin && d <= k->rmax);
			snprintf(why, sizeof(why), "%g is out of range %g..%g",
				 d, k->rmin, k->rmax);
		}
		if (bad)
			return check_fail(err, errlen, "[%s] %s: %s",
					  sect_names[k->sect], k->name, why);
	}
	return 0;
}

static int
check_devices(const struct srv_config *c, char *err, size_t errlen)
{
	if (c->ndev == 0 || c->ndev > SRV_MAX_DEVS)
		return check_fail(err, errlen, "%u devices; 1..%d are needed",
				  c->ndev, SRV_MAX_DEVS);
	for (unsigned i = 0; i < c->ndev; i++) {
		if (memchr(c->devices[i], '\0', SRV_PATH_MAX) == NULL ||
		    c->devices[i][0] == '\0')
			return check_fail(err, errlen, "device %u has no valid "
					  "path", i);
		for (unsigned j = 0; j < i; j++)
			if (strcmp(c->devices[i], c->devices[j]) == 0)
				return check_fail(err, errlen, "device '%.256s' "
						  "is listed twice",
						  c->devices[i]);
	}
	if (c->k + c->m > c->ndev)
		return check_fail(err, errlen, "k + m = %u needs at least %u "
				  "devices; %u configured", c->k + c->m,
				  c->k + c->m, c->ndev);
	return 0;
}

/* Sizes that fit the engine's geometry (format.h, store_format). */
static int
check_sizes(const struct srv_config *c, char *err, size_t errlen)
{
	uint64_t chunk = c->chunk_size ? c->chunk_size
				       : CFG_DEFAULT_SEG / (c->k ? c->k : 1) + 4096;
	uint64_t seg = (uint64_t)c->k * chunk;
	char a[32], b[32];

	if (c->device_size < STORE_DATA_OFF + 2 * chunk)
		return check_fail(err, errlen, "device_size %s is too small "
				  "for 2 chunks of %s after the 1M header",
				  fmt_size(c->device_size, a, sizeof(a)),
				  fmt_size(chunk, b, sizeof(b)));
	if (c->dram_buffer < 2 * seg)
		return check_fail(err, errlen, "dram_buffer %s holds fewer than "
				  "2 segments of k * chunk_size = %s",
				  fmt_size(c->dram_buffer, a, sizeof(a)),
				  fmt_size(seg, b, sizeof(b)));
	return 0;
}

static int
check_ports(const struct srv_config *c, char *err, size_t errlen)
{
	unsigned last = (unsigned)c->port + c->shards - 1;
	bool any1, any2;

	if (last > 65535)
		return check_fail(err, errlen, "port %u + %u shards runs past "
				  "65535", c->port, c->shards);
	(void)addr_ok(c->listen_addr, &any1);
	(void)addr_ok(c->metrics_addr, &any2);
	if (c->metrics_port >= c->port && c->metrics_port <= last &&
	    (any1 || any2 || strcmp(c->listen_addr, c->metrics_addr) == 0))
		return check_fail(err, errlen, "metrics_port %u is one of the "
				  "shard ports %u..%u", c->metrics_port, c->port,
				  last);
	return 0;
}

static unsigned name_class(const char *name);

/* No two tenants on one class: a class is where a tenant's blocks and
 * quota live, so a collision is refused rather than resolved in a way
 * that could move someone when the tenant list changes. */
static int
check_classes(const struct srv_config *c, char *err, size_t errlen)
{
	uint16_t cls[SRV_MAX_TENANTS];

	srv_tenant_classes(c, cls);
	for (unsigned i = 0; i < c->ntenants; i++)
		for (unsigned j = 0; j < i; j++)
			if (cls[i] == cls[j])
				return check_fail(err, errlen, "[tenant %s] and "
						  "[tenant %s] both have class "
						  "%u (%s); give one a 'class' "
						  "of its own", c->tenants[j].name,
						  c->tenants[i].name, cls[i],
						  c->tenants[i].class_id ||
						  c->tenants[j].class_id
						  ? "set by 'class'"
						  : "derived from the names");
	return 0;
}

static int
check_tenants(const struct srv_config *c, char *err, size_t errlen)
{
	if (c->ntenants == 0)
		return check_fail(err, errlen, "at least one [tenant NAME] "
				  "section is needed");
	if (c->ntenants > SRV_MAX_TENANTS)
		return check_fail(err, errlen, "more than %d tenants",
				  SRV_MAX_TENANTS);
	for (unsigned i = 0; i < c->ntenants; i++) {
		const struct srv_tenant *t = &c->tenants[i];
		size_t n = strnlen(t->name, sizeof(t->name));

		if (n == sizeof(t->name) || !tenant_name_ok(t->name, n))
			return check_fail(err, errlen, "tenant %u has a bad "
					  "name", i);
		if (t->secret_len < SRV_SECRET_MIN ||
		    t->secret_len > SRV_SECRET_MAX)
			return check_fail(err, errlen, "[tenant %s] needs a "
					  "secret of %d..%d bytes", t->name,
					  SRV_SECRET_MIN, SRV_SECRET_MAX);
		if (tenant_find(c, t->name, n) != (int)i)
			return check_fail(err, errlen, "tenant %s is defined "
					  "twice", t->name);
	}
	return check_classes(c, err, errlen);
}

/* The class a tenant gets from its name when it has no `class` key. */
static unsigned
name_class(const char *name)
{
	return 1 + (unsigned)(XXH3_64bits(name, strlen(name)) % SRV_CLASS_MAX);
}

void
srv_tenant_classes(const struct srv_config *c, uint16_t *cls)
{
	for (unsigned i = 0; i < c->ntenants && i < SRV_MAX_TENANTS; i++)
		cls[i] = c->tenants[i].class_id
				 ? c->tenants[i].class_id
				 : (uint16_t)name_class(c->tenants[i].name);
}

int
srv_config_check(const struct srv_config *c, char *err, size_t errlen)
{
	int rc;

	rc = check_fields(c, err, errlen);
	if (rc == 0)
		rc = check_devices(c, err, errlen);
	if (rc == 0)
		rc = check_sizes(c, err, errlen);
	if (rc == 0)
		rc = check_ports(c, err, errlen);
	if (rc == 0)
		rc = check_tenants(c, err, errlen);
	return rc;
}

const struct srv_tenant *
srv_config_tenant(const struct srv_config *c, const char *name)
{
	int t = tenant_find(c, name, strlen(name));

	return t < 0 ? NULL : &c->tenants[t];
}

/* ---- help and writing ---------------------------------------------------- */

void
srv_config_help(FILE *f)
{
	fprintf(f, "Configuration keys ([section] key = value in the file, or "
		"--set section.key=value):\n");
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		char key[48];

		snprintf(key, sizeof(key), "%s.%s%s", sect_names[k->sect],
			 k->sect == SECT_TENANT ? "NAME." : "", k->name);
		fprintf(f, "  %-26s %-18s %s\n", key, k->def ? k->def : "-",
			k->help);
	}
	fprintf(f, "Sizes take K, M, G or T (powers of 1024).\n");
}

/* Can s be written as a value and read back the same? */
static bool
value_writable(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || isspace((unsigned char)s[0]) ||
	    isspace((unsigned char)s[n - 1]) || strpbrk(s, "\r\n"))
		return false;
	for (size_t i = 0; i < n; i++) /* written after "= ": blank before */
		if (s[i] == ';' && (i == 0 || isspace((unsigned char)s[i - 1])))
			return false;
	return true;
}

static int
write_key(const struct srv_config *c, const struct cfg_key *k,
	  const struct srv_tenant *t, FILE *f)
{
	const char *fld = k->sect == SECT_TENANT ? (const char *)t + k->off
						 : (const char *)c + k->off;
	uint64_t v = 0;
	char b[32];

	if (k->type == T_INT || k->type == T_SIZE || k->type == T_NAME)
		v = load_uint(fld, k->size);
	switch (k->type) {
	case T_REAL: {
		double d;

		memcpy(&d, fld, sizeof(d));
		return fprintf(f, "%s = %.17g\n", k->name, d) < 0 ? -EIO : 0;
	}
	case T_INT:
		return fprintf(f, "%s = %" PRIu64 "\n", k->name, v) < 0 ? -EIO : 0;
	case T_SIZE:
		return fprintf(f, "%s = %s\n", k->name,
			       fmt_size(v, b, sizeof(b))) < 0 ? -EIO : 0;
	case T_NAME:
		return fprintf(f, "%s = %s\n", k->name,
			       k->names[v <= k->max ? v : 0]) < 0 ? -EIO : 0;
	case T_ADDR:
	case T_DIR:
		if (!value_writable(fld))
			return -EINVAL;
		return fprintf(f, "%s = %s\n", k->name, fld) < 0 ? -EIO : 0;
	case T_DEVICE:
		for (unsigned i = 0; c->devices_explicit && i < c->ndev; i++) {
			if (!value_writable(c->devices[i]))
				return -EINVAL;
			if (fprintf(f, "device = %s\n", c->devices[i]) < 0)
				return -EIO;
		}
		return 0;
	case T_SECRET:
		if (fprintf(f, "secret = hex:") < 0)
			return -EIO;
		for (size_t i = 0; i < t->secret_len; i++)
			if (fprintf(f, "%02x", t->secret[i]) < 0)
				return -EIO;
		return fputc('\n', f) == EOF ? -EIO : 0;
	}
	return -EINVAL;
}

static int
write_section(const struct srv_config *c, enum cfg_sect s,
	      const struct srv_tenant *t, FILE *f)
{
	int rc;

	if (s == SECT_TENANT) {
		if (strchr(t->name, ']') || strchr(t->name, ';'))
			return -EINVAL;
		rc = fprintf(f, "\n[tenant %s]\n", t->name);
	} else {
		rc = fprintf(f, "\n[%s]\n", sect_names[s]);
	}
	if (rc < 0)
		return -EIO;
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		if (cfg_keys[i].sect != s)
			continue;
		rc = write_key(c, &cfg_keys[i], t, f);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
srv_config_write(const struct srv_config *c, FILE *f)
{
	int rc;

	if (fprintf(f, "; gpucached configuration (docs/operations.md, "
		    "gpucached --help)\n") < 0)
		return -EIO;
	rc = write_section(c, SECT_SERVER, NULL, f);
	if (rc == 0)
		rc = write_section(c, SECT_STORE, NULL, f);
	for (unsigned i = 0; rc == 0 && i < c->ntenants; i++)
		rc = write_section(c, SECT_TENANT, &c->tenants[i], f);
	if (rc == 0 && fflush(f) != 0)
		rc = -EIO;
	return rc;
}
