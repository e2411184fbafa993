/*
 * main.c - gpucached: configuration, start-up, signals, shut-down.
 *
 * The main thread parses the configuration (file, then flags), makes sure
 * the device files exist, cuts every device into one region per shard,
 * starts the metrics HTTP server and the shard threads, and then only
 * waits for signals: SIGTERM/SIGINT stop (each shard stops accepting,
 * finishes its requests, seals and flushes, then exits; the process exits
 * 0), SIGHUP re-reads the tenants from the configuration file and swaps
 * them in atomically (new connections see them; established ones keep
 * their tenant). First start with no configuration writes one under the
 * data directory with a generated tenant "default" and its secret.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "gpucache/gpucache.h"
#include "net/auth.h"
#include "server.h"

struct args {
	const char *conf;
	const char *sets[64];
	unsigned nsets;
	bool help;
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: gpucached [-c FILE] [--set section.key=value]... [--data-dir DIR]\n"
"                 [--port N] [--shards N] [--help]\n"
"  -c, --config FILE   configuration (INI); default DATA_DIR/gpucached.conf,\n"
"                      written with a generated tenant on first start\n"
"  --set S.K=V         override one configuration key (repeatable)\n"
"  --data-dir, --port, --shards: shorthands for --set server.KEY=V\n"
"Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads tenants.\n\n");
	srv_config_help(f);
}

static int
parse_args(int argc, char **argv, struct args *a, char (*own)[4200])
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "set", required_argument, NULL, 's' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "port", required_argument, NULL, 'p' },
		{ "shards", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *key = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': a->conf = optarg; continue;
		case 'h': a->help = true; continue;
		case 's': key = NULL; break;
		case 'd': key = "server.data_dir"; break;
		case 'p': key = "server.port"; break;
		case 'n': key = "server.shards"; break;
		default: return -1;
		}
		if (a->nsets == 64)
			return -1;
		if (key != NULL) {
			snprintf(own[a->nsets], sizeof(own[0]), "%s=%s", key,
				 optarg);
			a->sets[a->nsets] = own[a->nsets];
		} else {
			a->sets[a->nsets] = optarg;
		}
		a->nsets++;
	}
	return optind == argc ? 0 : -1;
}

static int
apply_sets(struct srv_config *c, const struct args *a)
{
	char err[512];

	for (unsigned i = 0; i < a->nsets; i++) {
		if (srv_config_set(c, a->sets[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "gpucached: %s\n", err);
			return -1;
		}
	}
	return 0;
}

static int
mkdir_p(const char *dir)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* First start: a tenant "default" with a random secret, saved. */
static int
first_start(struct srv_config *c, const char *path)
{
	struct srv_tenant *t = &c->tenants[0];
	FILE *f;
	int rc;

	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "default");
	t->secret_len = 32;
	rc = auth_random(t->secret, t->secret_len);
	if (rc < 0)
		return rc;
	c->ntenants = 1;
	rc = mkdir_p(c->data_dir);
	if (rc < 0) {
		fprintf(stderr, "gpucached: cannot create %s: %s\n",
			c->data_dir, strerror(-rc));
		return rc;
	}
	umask(077);
	f = fopen(path, "w");
	if (f == NULL || srv_config_write(c, f) < 0) {
		fprintf(stderr, "gpucached: cannot write %s: %s\n", path,
			strerror(errno));
		if (f)
			fclose(f);
		return -EIO;
	}
	fclose(f);
	log_warn("main", "first start: wrote %s with tenant 'default' and a "
		 "generated secret", path);
	return 0;
}

/* Configuration: defaults, then the file, then flags. */
static int
load_config(struct srv_config *c, const struct args *a, char *path,
	    size_t plen)
{
	char err[512];
	struct stat sb;

	srv_config_defaults(c);
	if (apply_sets(c, a) < 0) /* to learn data_dir */
		return -1;
	if (a->conf)
		snprintf(path, plen, "%s", a->conf);
	else
		snprintf(path, plen, "%s/gpucached.conf", c->data_dir);
	if (stat(path, &sb) == 0 || a->conf != NULL) {
		srv_config_defaults(c);
		if (srv_config_load(c, path, err, sizeof(err)) < 0) {
			fprintf(stderr, "gpucached: %s\n", err);
			return -1;
		}
		if (apply_sets(c, a) < 0)
			return -1;
	} else if (first_start(c, path) < 0) {
		return -1;
	}
	if (srv_config_check(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "gpucached: %s\n", err);
		return -1;
	}
	return 0;
}

/* Create missing device files; each shard gets an equal slice of the
 * smallest device, in whole MiB. */
static int
plan_regions(struct srv *s)
{
	const char *paths[64];
	struct store_io_cfg cfg = { .ndev = s->cfg.ndev, .paths = paths,
				    .create = true,
				    .create_size = s->cfg.device_size };
	struct store_io *io;
	uint64_t min = UINT64_MAX;
	int rc;

	for (unsigned i = 0; i < s->cfg.ndev; i++) {
		paths[i] = s->cfg.devices[i];
		if (strchr(paths[i], '/') != NULL) {
			char dir[4096];

			snprintf(dir, sizeof(dir), "%s", paths[i]);
			*strrchr(dir, '/') = '\0';
			if (dir[0] != '\0' && strncmp(paths[i], "/dev/", 5) != 0)
				mkdir_p(dir);
		}
	}
	rc = store_io_psync_open(&cfg, &io);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < s->cfg.ndev; i++) {
		struct store_dev_info di;

		io->ops->dev_info(io, i, &di);
		if (di.state != STORE_DEV_OK)
			log_warn("main", "device %s: %s", paths[i],
				 gpc_strerror(di.open_err));
		else if (di.size < min)
			min = di.size;
	}
	store_io_close(io);
	if (min == UINT64_MAX)
		return -ENODEV;
	s->region_len = store_io_region_len(min, s->nsh);
	return s->region_len >= (16ull << 20) ? 0 : -ENOSPC;
}

static const char *
src_tenant_name(void *ctx, unsigned t)
{
	struct srv *s = ctx;
	const struct srv_config *c = atomic_load(&s->tenants);

	return t < c->ntenants && c->tenants[t].name[0] ? c->tenants[t].name
							 : NULL;
}

static uint64_t
src_tenant_quota(void *ctx, unsigned t)
{
	struct srv *s = ctx;
	const struct srv_config *c = atomic_load(&s->tenants);

	return t < c->ntenants ? c->tenants[t].quota_bytes : 0;
}

/*
 * Put c's tenants at the index each name has had since start-up (the
 * index keys their metrics and STAT counters); a new name takes the next
 * index never used. Indices of tenants no longer configured stay, as
 * placeholders with an empty name that nobody can authenticate as.
 * -ENOSPC once SRV_MAX_TENANTS names have been used.
 */
static int
slot_order(struct srv *s, struct srv_config *c)
{
	struct srv_tenant *t = calloc(SRV_MAX_TENANTS, sizeof(*t));
	char (*names)[SRV_TENANT_MAX + 1] = calloc(SRV_MAX_TENANTS,
						   sizeof(*names));
	unsigned n = s->nslots;

	if (t == NULL || names == NULL) {
		free(t);
		free(names);
		return -ENOMEM;
	}
	memcpy(names, s->slots, sizeof(s->slots));
	for (unsigned i = 0; i < c->ntenants; i++) {
		unsigned k = 0;

		while (k < n && strcmp(names[k], c->tenants[i].name) != 0)
			k++;
		if (k == n) {
			if (n == SRV_MAX_TENANTS) {
				free(t);
				free(names);
				return -ENOSPC;
			}
			snprintf(names[n++], SRV_TENANT_MAX + 1, "%s",
				 c->tenants[i].name);
		}
		t[k] = c->tenants[i];
	}
	memcpy(c->tenants, t, SRV_MAX_TENANTS * sizeof(*t));
	c->ntenants = n;
	memcpy(s->slots, names, sizeof(s->slots));
	s->nslots = n;
	free(t);
	free(names);
	return 0;
}

/* SIGHUP: a new tenant table from the file; the old one stays allocated
 * (readers may hold it) until exit. */
static void
reload(struct srv *s, const char *path, struct srv_config **old,
       unsigned *nold)
{
	struct srv_config *c = malloc(sizeof(*c));
	char err[512];

	if (c == NULL)
		return;
	if (*nold == 64) { /* old tables are kept for readers: bounded */
		log_err("main", "reload refused: 64 reloads already; restart "
			"gpucached");
		free(c);
		return;
	}
	srv_config_defaults(c);
	if (srv_config_load(c, path, err, sizeof(err)) < 0 ||
	    srv_config_check(c, err, sizeof(err)) < 0) {
		log_err("main", "reload refused: %s", err);
		free(c);
		return;
	}
	if (slot_order(s, c) < 0) {
		log_err("main", "reload refused: %d tenant names used since "
			"start-up; restart gpucached", SRV_MAX_TENANTS);
		free(c);
		return;
	}
	old[(*nold)++] = atomic_exchange(&s->tenants, c);
	atomic_fetch_add(&s->tenants_gen, 1);
	log_warn("main", "reloaded %u tenants from %s", c->ntenants, path);
}

/* DATA_DIR/gpucached.pid, for `gpucache reload --pidfile`. */
static void
write_pidfile(const struct srv *s, bool create)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/gpucached.pid", s->cfg.data_dir);
	if (!create) {
		unlink(path);
		return;
	}
	f = fopen(path, "w");
	if (f == NULL) {
		log_warn("main", "cannot write %s: %s", path, strerror(errno));
		return;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

static int
run(struct srv *s, const char *path)
{
	struct srv_metrics_src src = { .ctx = s, .tenant_name = src_tenant_name,
				       .tenant_quota = src_tenant_quota };
	struct srv_metrics_http *http = NULL;
	struct srv_config *old[64];
	unsigned nold = 0, started = 0;
	sigset_t set;
	int rc, sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it */
	rc = srv_metrics_create(s->nsh, SRV_MAX_TENANTS, s->cfg.ns_rows,
				s->cfg.ns_rows_tenant < s->cfg.ns_rows
					? s->cfg.ns_rows_tenant : s->cfg.ns_rows,
				&s->metrics);
	if (rc == 0 && s->cfg.metrics_port != 0)
		rc = srv_metrics_http_start(s->metrics, &src, s->cfg.metrics_addr,
					    s->cfg.metrics_port, &http);
	if (rc < 0)
		fprintf(stderr, "gpucached: metrics on %s:%u: %s\n",
			s->cfg.metrics_addr, s->cfg.metrics_port, gpc_strerror(rc));
	for (; rc == 0 && started < s->nsh; started++)
		rc = srv_shard_start(s, started);
	if (rc == 0)
		write_pidfile(s, true);
	if (rc == 0) {
		log_warn("main", "gpucached ready: %u shards on %s:%u-%u, %u "
			 "devices as %u+%u", s->nsh, s->cfg.listen_addr,
			 s->cfg.port, s->cfg.port + s->nsh - 1, s->cfg.ndev,
			 s->cfg.k, s->cfg.m);
		printf("gpucached: ready\n");
		fflush(stdout);
	}
	while (rc == 0 && sigwait(&set, &sig) == 0) {
		if (sig == SIGHUP)
			reload(s, path, old, &nold);
		else
			break;
	}
	for (unsigned i = 0; i < started; i++) /* all drain at once */
		if (atomic_load(&s->sh[i].ready) > 0)
			srv_shard_stop(&s->sh[i]);
	for (unsigned i = 0; i < started; i++)
		if (atomic_load(&s->sh[i].ready) > 0)
			srv_shard_join(&s->sh[i]);
	write_pidfile(s, false);
	srv_metrics_http_stop(http);
	srv_metrics_destroy(s->metrics);
	for (unsigned i = 0; i < nold; i++)
		if (old[i] != &s->cfg)
			free(old[i]);
	if (atomic_load(&s->tenants) != &s->cfg)
		free(atomic_load(&s->tenants));
	return rc;
}

/* server.data_send: how GET data parts go out (net.h, NET_CTX_SEND_*). */
static unsigned
data_send_flag(const struct srv_config *cfg)
{
	static const unsigned flag[] = { NET_CTX_SEND_AUTO, NET_CTX_SEND_IOV,
					 0 };

	return flag[cfg->data_send];
}

int
main(int argc, char **argv)
{
	static char own[64][4200];
	static struct srv s;
	struct args a = { 0 };
	static char path[8192];
	int rc;

	if (parse_args(argc, argv, &a, own) < 0) {
		usage(stderr);
		return 2;
	}
	if (a.help) {
		usage(stdout);
		return 0;
	}
	if (load_config(&s.cfg, &a, path, sizeof(path)) < 0)
		return 2;
	log_set_level((enum log_level)s.cfg.log_level);
	s.nsh = s.cfg.shards;
	(void)slot_order(&s, &s.cfg); /* fresh: every name fits, in order */
	atomic_store(&s.tenants, &s.cfg);
	s.sh = calloc(s.nsh, sizeof(*s.sh));
	rc = s.sh ? plan_regions(&s) : -ENOMEM;
	if (rc < 0) {
		fprintf(stderr, "gpucached: devices: %s\n", gpc_strerror(rc));
		return 1;
	}
	rc = net_ctx_create(true, NET_CTX_PRIVATE | data_send_flag(&s.cfg),
			    &s.net);
	if (rc == 0)
		rc = run(&s, path);
	net_ctx_destroy(s.net);
	free(s.sh);
	if (rc < 0) {
		fprintf(stderr, "gpucached: %s\n", gpc_strerror(rc));
		return 1;
	}
	return 0;
}
