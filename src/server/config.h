/*
 * config.h - gpucached's configuration: one INI file (parsed with libinih),
 * overridable by --set flags, checked as a whole before the daemon starts.
 * docs/operations.md ("Configuration") is the user's reference; the key
 * table in config.c is the single source of names, ranges and help text.
 *
 * Layout:
 *   [server]       listen, port, shards, metrics_addr, metrics_port,
 *                  max_inflight_conn, max_inflight_shard, data_send,
 *                  put_piece,
 *                  data_dir, log_level
 *   [store]        device = PATH (repeatable), device_size, k, m,
 *                  chunk_size, admission, drop_orphans, seal_thread,
 *                  writeback_ms,
 *                  dram_buffer
 *   [tenant NAME]  secret = TEXT | hex:HEX, quota = SIZE (0 = none)
 *
 * Every function here runs at start-up, on one thread; none keeps state
 * outside the struct it is given.
 */
#ifndef GPC_SERVER_CONFIG_H
#define GPC_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SRV_MAX_TENANTS 64
#define SRV_MAX_DEVS 64         /* == STORE_MAX_DEVS */
#define SRV_PATH_MAX 4096       /* bytes of a path, NUL included */
#define SRV_SECRET_MIN 16
#define SRV_SECRET_MAX 256
#define SRV_TENANT_MAX 64       /* bytes of a tenant name, == WIRE_MAX_TENANT */
#define SRV_CLASS_MAX 1023      /* == STORE_MAX_CLASSES - 1 */

struct srv_tenant {
	char name[65];
	uint8_t secret[256];
	size_t secret_len;
	uint64_t quota_bytes; /* 0 = none */
	uint16_t class_id;    /* engine class 1..SRV_CLASS_MAX; 0 = from name */
};

struct srv_config {
	char data_dir[4096];            /* default /var/lib/gpucache */
	unsigned ndev;
	char devices[64][4096];         /* default: data_dir/dev0.img..dev3.img */
	uint64_t device_size;           /* size of device files created on first start; default 1 GiB */
	unsigned k, m;                  /* default 2+1 */
	uint32_t chunk_size;            /* 0 = engine default */
	uint64_t dram_buffer;           /* write buffer bytes per shard; default 256 MiB */
	char listen_addr[64];           /* default 0.0.0.0 */
	uint16_t port;                  /* default 7070; shard i listens on port + i */
	char metrics_addr[64];          /* default 127.0.0.1 */
	uint16_t metrics_port;          /* default 7080, 0 = off */
	unsigned shards;                /* default 1 */
	unsigned max_inflight_conn;     /* default 64 requests per connection */
	unsigned max_inflight_shard;    /* default 1024 */
	unsigned client_timeout_s;      /* default 30 */
	unsigned ns_rows;               /* namespace_metrics: rows per shard, default 256 */
	unsigned ns_rows_tenant;        /* namespace_metrics_per_tenant: default 128 */
	unsigned poll_spin_us;          /* default 0: busy-poll before sleeping */
	unsigned io_nap_us;             /* default 50: nap while only I/O is pending */
	int data_send;                  /* 0 auto (default), 1 iovec, 2 contig */
	uint32_t put_piece;             /* default 256 KiB; 0 = whole blocks */
	int log_level;                  /* 0 err .. 3 debug, default 2 */
	int admission;                  /* enum policy_mode, default auto */
	int drop_orphans;               /* 1 (default): reclaim drops blocks
					 * whose parent is gone */
	int seal_thread;                /* 1: a sealer thread per shard */
	unsigned writeback_ms;          /* default 1000; 0 = write at once */
	double write_amp_max;           /* the policy's flash budget, default 1.5 */
	unsigned ntenants;
	struct srv_tenant tenants[SRV_MAX_TENANTS];
	/*
	 * false while devices[] is the default list derived from data_dir
	 * (setting data_dir re-derives it); true once a file or --set named
	 * devices. devices_from_set: the list came from --set, so a further
	 * --set store.device appends instead of replacing the file's list.
	 */
	bool devices_explicit;
	bool devices_from_set;
};

/* The defaults: a working single-node tier on four 1 GiB files, no tenants. */
void srv_config_defaults(struct srv_config *c);

/*
 * Parse an INI file over c (keys it names replace what c holds; the first
 * device line replaces the device list; a [tenant NAME] already in c is
 * replaced). c is written only on success. Returns 0; -GPC_ECONFIG with
 * "file:line: why" in err for bad content; a negative errno (-ENOENT,
 * -EACCES, ...) with "file: why" in err when the file cannot be read, so
 * the daemon can tell a missing file from a bad one.
 */
int srv_config_load(struct srv_config *c, const char *path, char *err,
		    size_t errlen);

/* Same from text[0..len) (NUL not needed; name is used in messages). */
int srv_config_parse(struct srv_config *c, const char *text, size_t len,
		     const char *name, char *err, size_t errlen);

/*
 * Apply one override "section.key=value" (as from --set), with the checks
 * a file gets; messages start "--set: ". Tenants: "tenant.NAME.secret=..."
 * (creates the tenant). c is written only on success. 0 or -GPC_ECONFIG.
 */
int srv_config_set(struct srv_config *c, const char *assignment, char *err,
		   size_t errlen);

/*
 * Cross-field checks once everything is applied: k + m <= ndev, distinct
 * devices, port range of the shards, metrics port, sizes that fit the
 * engine's geometry, at least one tenant, every tenant with a secret.
 * 0 or -GPC_ECONFIG with "config: why" in err.
 */
int srv_config_check(const struct srv_config *c, char *err, size_t errlen);

/* The tenant called name, or NULL. */
const struct srv_tenant *srv_config_tenant(const struct srv_config *c,
					   const char *name);

/* Print every key with its default and meaning (for gpucached --help). */
void srv_config_help(FILE *f);

/*
 * Write c as an INI file that srv_config_parse reads back to the same
 * values (secrets as hex:). For the daemon's first-start config. 0 or
 * -EIO.
 */
int srv_config_write(const struct srv_config *c, FILE *f);

/*
 * Every tenant's engine class (the top bits of its namespaces, which its
 * quota and its blocks hang on): its `class` key, or one derived from its
 * name alone, so reordering sections or adding and removing tenants never
 * moves anyone's blocks. srv_config_check refuses two tenants on one
 * class. cls[ntenants].
 */
void srv_tenant_classes(const struct srv_config *c, uint16_t *cls);

#endif
