/*
 * gpucache.c - the command-line tool around the flash engine: format,
 * stat, fsck, rebuild and bench (cli_bench.c). Every error names the
 * device or file and what is wrong with it; exit status 0 on success, 1 on
 * a problem found or an operation that failed, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gpucache/gpucache.h"
#include "cli.h"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: gpucache COMMAND [options] DEVICE...\n"
"  format  [-k K] [-m M] [--chunk SIZE] [--size SIZE] DEV...\n"
"          write a new store over the devices (files are created with\n"
"          --size when missing); k data + m parity chunks per stripe\n"
"  stat    DEV...           geometry, device health, blocks, index cost\n"
"  fsck    DEV...           verify every segment, chunk and block\n"
"  rebuild --dev N DEV...   rebuild device N from the others\n"
"  bench   [options] DEV... engine throughput (gpucache bench --help)\n"
"  replay  --config FILE TRACE  drive a running gpucached with a trace\n"
"  sim     TRACE [--capacity 1M,3M] [--policy lru,belady,ours]\n"
"          hit ratio of LRU, Belady and the real store at each capacity\n"
"  stat    --server HOST:PORT   a running gpucached's metrics, summarized\n"
"  reload  --pidfile FILE       make gpucached re-read its tenants\n"
"common options: --backend uring|psync, -v (verbose logs),\n"
"  --shard I/N: the region of shard I of a gpucached with N shards\n");
}

int64_t
cli_parse_size(const char *s)
{
	char *end;
	unsigned long long v;
	int64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': mul = 1ll << 10; end++; break;
	case 'm': case 'M': mul = 1ll << 20; end++; break;
	case 'g': case 'G': mul = 1ll << 30; end++; break;
	case 't': case 'T': mul = 1ll << 40; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end != '\0' || v > (unsigned long long)(INT64_MAX / mul))
		return -1;
	return (int64_t)v * mul;
}

/*
 * The region gpucached gives shard d->shard of d->nshards (the same
 * store_io_region_len the daemon uses).
 */
static int
shard_region(const struct cli_devs *d, struct store_io *io,
	     struct store_io **out)
{
	uint64_t min = UINT64_MAX, len;
	int rc;

	for (unsigned i = 0; i < d->n; i++) {
		struct store_dev_info di;

		if (io->ops->dev_info(io, i, &di) == 0 &&
		    di.state == STORE_DEV_OK && di.size < min)
			min = di.size;
	}
	len = min == UINT64_MAX ? 0 : store_io_region_len(min, d->nshards);
	if (len == 0 || d->shard >= d->nshards) {
		fprintf(stderr, "gpucache: no region %u of %u on these devices\n",
			d->shard, d->nshards);
		store_io_close(io);
		return -EINVAL;
	}
	rc = store_io_region_open(io, d->shard * len, len, out);
	if (rc < 0)
		store_io_close(io);
	return rc;
}

int
cli_io_open(const struct cli_devs *d, bool create, struct store_io **out)
{
	struct store_io_cfg cfg = { .ndev = d->n, .paths = d->paths,
				    .create = create,
				    .create_size = d->create_size };
	struct store_io *io = NULL;
	int rc = -ENOSYS;

	if (d->backend == NULL || strcmp(d->backend, "uring") == 0)
		rc = store_io_uring_open(&cfg, &io);
	if ((rc == -ENOSYS && d->backend == NULL) ||
	    (d->backend && strcmp(d->backend, "psync") == 0))
		rc = store_io_psync_open(&cfg, &io);
	if (rc < 0) {
		fprintf(stderr, "gpucache: cannot open devices: %s\n",
			gpc_strerror(rc));
		return rc;
	}
	for (unsigned i = 0; i < d->n; i++) {
		struct store_dev_info di;

		if (io->ops->dev_info(io, i, &di) == 0 &&
		    di.state != STORE_DEV_OK)
			fprintf(stderr, "gpucache: device %u (%s): %s\n", i,
				d->paths[i], gpc_strerror(di.open_err));
	}
	if (d->nshards > 0)
		return shard_region(d, io, out);
	*out = io;
	return 0;
}

int
cli_store_open(const struct cli_devs *d, const struct store_opts *o,
	       struct store **out)
{
	struct store_io *io;
	int rc = cli_io_open(d, false, &io);

	if (rc < 0)
		return rc;
	rc = store_open(io, o, out);
	if (rc < 0) {
		fprintf(stderr, "gpucache: cannot open the store on %s%s: %s\n",
			d->paths[0], d->n > 1 ? " ..." : "", gpc_strerror(rc));
		store_io_close(io);
	}
	return rc;
}

/* Parse options common to every command; returns optind or -1. */
static int
parse_common(int argc, char **argv, struct cli_devs *d, unsigned *k,
	     unsigned *m, int64_t *chunk, long *dev)
{
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "dev", required_argument, NULL, 'd' },
		{ "shard", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "k:m:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'k': *k = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm': *m = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'v': log_set_level(LOG_INFO); break;
		case 'b': d->backend = optarg; break;
		case 'c': *chunk = cli_parse_size(optarg); break;
		case 's': d->create_size = (uint64_t)cli_parse_size(optarg); break;
		case 'd': *dev = strtol(optarg, NULL, 10); break;
		case 'S':
			if (sscanf(optarg, "%u/%u", &d->shard, &d->nshards) != 2 ||
			    d->nshards == 0 || d->shard >= d->nshards) {
				fprintf(stderr, "gpucache: --shard wants I/N, "
					"e.g. 0/2\n");
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "gpucache: no devices given\n");
		return -1;
	}
	d->n = (unsigned)(argc - optind);
	d->paths = (const char **)&argv[optind];
	return optind;
}

static int
cmd_format(struct cli_devs *d, unsigned k, unsigned m, int64_t chunk)
{
	struct store_format_opts fo = { .k = k, .m = m };
	struct store_io *io;
	int rc;

	if (chunk < 0 || k < 1 || k + m > d->n) {
		fprintf(stderr, "gpucache format: need 1 <= k and k + m <= %u "
			"devices, and a valid --chunk\n", d->n);
		return 2;
	}
	fo.chunk_size = (uint32_t)chunk;
	if (cli_io_open(d, d->create_size > 0, &io) < 0)
		return 1;
	rc = store_format(io, &fo);
	store_io_close(io);
	if (rc < 0) {
		fprintf(stderr, "gpucache format: %s\n", gpc_strerror(rc));
		return 1;
	}
	printf("formatted %u devices as %u+%u\n", d->n, k, m);
	return 0;
}

static int
cmd_stat(struct cli_devs *d)
{
	struct store_opts o = { .read_only = true };
	struct store_stats s;
	struct store *st;

	if (cli_store_open(d, &o, &st) < 0)
		return 1;
	store_get_stats(st, &s);
	printf("geometry     %u+%u over %u devices, chunk %u bytes, segment "
	       "%u bytes of data\n", s.k, s.m, s.ndev, s.chunk_size, s.seg_cap);
	for (unsigned i = 0; i < s.ndev; i++)
		printf("device %-5u %s %s\n", i, i < d->n ? d->paths[i] : "-",
		       store_dev_health(st, i) == STORE_DEV_HEALTHY ? "healthy"
								    : "FAILED");
	printf("segments     %" PRIu64 " of %" PRIu64 " slots in use\n",
	       s.slots_used, s.nslots);
	printf("blocks       %" PRIu64 "\n", s.index_blocks);
	printf("index        %" PRIu64 " bytes, %.1f bytes per block\n",
	       s.index_bytes,
	       s.index_blocks ? (double)s.index_bytes / s.index_blocks : 0.0);
	printf("recovery     %.3f s, %" PRIu64 " segments, %" PRIu64
	       " torn or unverifiable skipped\n", s.recovery_ns / 1e9,
	       s.recovered_segs, s.torn_segs);
	store_abandon(st);
	return 0;
}

static void
fsck_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("  %s\n", line);
}

static int
cmd_fsck(struct cli_devs *d)
{
	struct store_opts o = { .read_only = true };
	struct store_fsck_report r;
	struct store *st;
	int rc;

	if (cli_store_open(d, &o, &st) < 0)
		return 1;
	printf("fsck: checking %u devices\n", d->n);
	rc = store_fsck(st, fsck_line, NULL, &r);
	for (unsigned i = 0; i < d->n; i++)
		if (store_dev_health(st, i) != STORE_DEV_HEALTHY)
			printf("  device %u (%s): failed or not of this store\n",
			       i, d->paths[i]);
	store_abandon(st);
	if (rc < 0) {
		fprintf(stderr, "gpucache fsck: %s\n", gpc_strerror(rc));
		return 1;
	}
	printf("fsck: %" PRIu64 " segments (%" PRIu64 " beyond repair), %"
	       PRIu64 " bad chunks, %" PRIu64 " blocks, %" PRIu64
	       " damaged (%" PRIu64 " repairable from parity)\n", r.segs,
	       r.segs_bad, r.chunks_bad, r.blocks, r.blocks_bad,
	       r.blocks_repairable);
	return (r.segs_bad || r.chunks_bad || r.blocks_bad) ? 1 : 0;
}

static int
cmd_rebuild(struct cli_devs *d, long dev)
{
	struct store *st;
	long n;

	if (dev < 0 || (unsigned long)dev >= d->n) {
		fprintf(stderr, "gpucache rebuild: --dev must name one of the "
			"%u devices (0..%u)\n", d->n, d->n - 1);
		return 2;
	}
	if (cli_store_open(d, NULL, &st) < 0)
		return 1;
	n = store_rebuild(st, (unsigned)dev);
	if (n < 0) {
		fprintf(stderr, "gpucache rebuild: device %ld (%s): %s\n", dev,
			d->paths[dev], gpc_strerror((int)n));
		store_abandon(st);
		return 1;
	}
	store_close(st);
	printf("rebuilt device %ld (%s): %ld chunks\n", dev, d->paths[dev], n);
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli_devs d = { 0 };
	unsigned k = 1, m = 0;
	int64_t chunk = 0;
	long dev = -1;
	const char *cmd;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "bench") == 0)
		return cli_bench(argc - 1, argv + 1);
	if (strcmp(cmd, "replay") == 0)
		return cli_replay(argc - 1, argv + 1);
	if (strcmp(cmd, "sim") == 0)
		return cli_sim(argc - 1, argv + 1);
	if (strcmp(cmd, "stat") == 0 && argc > 2 && strncmp(argv[2], "--server", 8) == 0)
		return cli_stat_server(argc - 1, argv + 1);
	if (strcmp(cmd, "reload") == 0)
		return cli_stat_server(argc - 1, argv + 1);
	if (parse_common(argc - 1, argv + 1, &d, &k, &m, &chunk, &dev) < 0) {
		usage(stderr);
		return 2;
	}
	if (strcmp(cmd, "format") == 0)
		return cmd_format(&d, k, m, chunk);
	if (strcmp(cmd, "stat") == 0)
		return cmd_stat(&d);
	if (strcmp(cmd, "fsck") == 0)
		return cmd_fsck(&d);
	if (strcmp(cmd, "rebuild") == 0)
		return cmd_rebuild(&d, dev);
	fprintf(stderr, "gpucache: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
