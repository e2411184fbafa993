/*
 * io_region.c - a store_io backend that shows a window [base, base+len) of
 * every device of another backend as a whole device: the daemon cuts each
 * device into one region per shard, so shards own disjoint segments and
 * never share an I/O context. Offsets are translated and bounds checked at
 * submit (a submitted request keeps the translated offset: the inner
 * backend reads it until completion); completions are the inner
 * backend's (same thread, same poll).
 * The wrapper owns the inner context.
 */
#include <errno.h>
#include <stdlib.h>

#include "io.h"

struct region_io {
	struct store_io base;
	struct store_io *inner;
	uint64_t off, len;
	struct store_dev_info info[STORE_IO_MAXDEV_MEM];
};

static int
region_submit(struct store_io *io, struct store_io_req *r)
{
	struct region_io *g = (struct region_io *)io;
	uint64_t len = 0;
	int rc;

	if (r->dev >= io->ndev)
		return -EINVAL;
	for (unsigned i = 0; i < r->iovcnt; i++)
		len += r->iov[i].iov_len;
	if (r->op != STORE_IO_FLUSH &&
	    (r->off > g->info[r->dev].size || len > g->info[r->dev].size - r->off))
		return -EINVAL;
	r->off += g->off; /* the inner backend may read it until completion */
	rc = store_io_submit(g->inner, r);
	if (rc < 0)
		r->off -= g->off;
	return rc;
}

static int
region_poll(struct store_io *io, unsigned min)
{
	struct region_io *g = (struct region_io *)io;
	int rc = store_io_poll(g->inner, min);

	io->inflight = g->inner->inflight;
	return rc;
}

static int
region_register(struct store_io *io, const struct iovec *bufs, unsigned n)
{
	struct region_io *g = (struct region_io *)io;

	return g->inner->ops->register_bufs(g->inner, bufs, n);
}

static int
region_dev_info(struct store_io *io, unsigned dev, struct store_dev_info *out)
{
	struct region_io *g = (struct region_io *)io;

	if (dev >= io->ndev)
		return -EINVAL;
	*out = g->info[dev];
	return 0;
}

static void
region_close(struct store_io *io)
{
	struct region_io *g = (struct region_io *)io;

	store_io_close(g->inner);
	free(g);
}

static int
region_event_fd(struct store_io *io)
{
	struct store_io *in = ((struct region_io *)io)->inner;

	return in->ops->event_fd != NULL ? in->ops->event_fd(in) : -1;
}

static const struct store_io_ops region_ops = {
	.name = "region",
	.close = region_close,
	.register_bufs = region_register,
	.submit = region_submit,
	.poll = region_poll,
	.dev_info = region_dev_info,
	.event_fd = region_event_fd,
};

int
store_io_region_open(struct store_io *inner, uint64_t off, uint64_t len,
		     struct store_io **out)
{
	struct region_io *g;

	if (off % STORE_IO_ALIGN || len % STORE_IO_ALIGN ||
	    inner->ndev > STORE_IO_MAXDEV_MEM)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	g->base.ops = &region_ops;
	g->base.ndev = inner->ndev;
	g->inner = inner;
	g->off = off;
	g->len = len;
	for (unsigned d = 0; d < inner->ndev; d++) {
		struct store_dev_info *i = &g->info[d];

		inner->ops->dev_info(inner, d, i);
		i->size = i->size > off ? i->size - off : 0;
		if (i->size > len)
			i->size = len;
	}
	*out = &g->base;
	return 0;
}
