/*
 * io_mem.c - in-memory devices for tests and tools: a store_memdisk holds
 * ndev zero-filled images (anonymous mappings, so untouched space costs
 * nothing) that outlive the I/O contexts opened on them, which is what
 * crash tests need to reopen a store on the same "disks".
 *
 * Requests are executed at submit time (memcpy) and completed on the next
 * poll, never inside submit, to honour the async contract. A missing
 * device answers -ENODEV. One thread per context.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io.h"

struct store_memdisk {
	unsigned ndev;
	uint64_t size;
	uint8_t *data[STORE_IO_MAXDEV_MEM];
	bool missing[STORE_IO_MAXDEV_MEM];
};

struct mem_io {
	struct store_io base;
	struct store_memdisk *md;
	struct store_io_req *head, *tail; /* done, callback pending */
};

int
store_memdisk_create(unsigned ndev, uint64_t size, struct store_memdisk **out)
{
	struct store_memdisk *md;

	if (ndev == 0 || ndev > STORE_IO_MAXDEV_MEM || size % STORE_IO_ALIGN)
		return -EINVAL;
	md = calloc(1, sizeof(*md));
	if (md == NULL)
		return -ENOMEM;
	md->ndev = ndev;
	md->size = size;
	for (unsigned i = 0; i < ndev; i++) {
		md->data[i] = mmap(NULL, size, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				   -1, 0);
		if (md->data[i] == MAP_FAILED) {
			md->data[i] = NULL;
			store_memdisk_destroy(md);
			return -ENOMEM;
		}
	}
	*out = md;
	return 0;
}

void
store_memdisk_destroy(struct store_memdisk *md)
{
	if (md == NULL)
		return;
	for (unsigned i = 0; i < md->ndev; i++)
		if (md->data[i] != NULL)
			munmap(md->data[i], md->size);
	free(md);
}

uint8_t *
store_memdisk_data(struct store_memdisk *md, unsigned dev)
{
	if (dev >= md->ndev || md->missing[dev])
		return NULL;
	return md->data[dev];
}

void
store_memdisk_set_missing(struct store_memdisk *md, unsigned dev, bool missing)
{
	if (dev < md->ndev)
		md->missing[dev] = missing;
}

void
store_memdisk_wipe(struct store_memdisk *md, unsigned dev)
{
	if (dev < md->ndev)
		madvise(md->data[dev], md->size, MADV_DONTNEED); /* zeroes */
}

/* Copy between the device image and the request's buffers. */
static int
mem_xfer(struct store_memdisk *md, struct store_io_req *r)
{
	uint8_t *p = md->data[r->dev] + r->off;
	uint64_t len = 0;

	for (unsigned i = 0; i < r->iovcnt; i++) {
		if ((uintptr_t)r->iov[i].iov_base % STORE_IO_ALIGN ||
		    r->iov[i].iov_len % STORE_IO_ALIGN)
			return -EINVAL;
		len += r->iov[i].iov_len;
	}
	if (r->off % STORE_IO_ALIGN || r->off > md->size ||
	    len > md->size - r->off)
		return -EINVAL;
	for (unsigned i = 0; i < r->iovcnt; i++) {
		if (r->op == STORE_IO_READ)
			memcpy(r->iov[i].iov_base, p, r->iov[i].iov_len);
		else
			memcpy(p, r->iov[i].iov_base, r->iov[i].iov_len);
		p += r->iov[i].iov_len;
	}
	return (int)len;
}

static int
mem_submit(struct store_io *io, struct store_io_req *r)
{
	struct mem_io *m = (struct mem_io *)io;
	int res;

	if (r->dev >= io->ndev || r->op > STORE_IO_FLUSH)
		return -EINVAL;
	if (m->md->missing[r->dev])
		res = -ENODEV;
	else if (r->op == STORE_IO_FLUSH)
		res = 0;
	else
		res = mem_xfer(m->md, r);
	if (res == -EINVAL)
		return res;
	r->res = res;
	r->next = NULL;
	if (m->tail)
		m->tail->next = r;
	else
		m->head = r;
	m->tail = r;
	io->inflight++;
	return 0;
}

static int
mem_poll(struct store_io *io, unsigned min_complete)
{
	struct mem_io *m = (struct mem_io *)io;
	struct store_io_req *r, *list = m->head;
	int n = 0;

	(void)min_complete; /* everything submitted is already done */
	m->head = m->tail = NULL;
	while ((r = list) != NULL) {
		list = r->next;
		io->inflight--;
		n++;
		r->cb(r);
	}
	return n;
}

static int
mem_register_bufs(struct store_io *io, const struct iovec *bufs, unsigned n)
{
	(void)io;
	(void)bufs;
	(void)n;
	return 0;
}

static int
mem_dev_info(struct store_io *io, unsigned dev, struct store_dev_info *out)
{
	struct mem_io *m = (struct mem_io *)io;

	if (dev >= io->ndev)
		return -EINVAL;
	out->size = m->md->size;
	out->state = m->md->missing[dev] ? STORE_DEV_MISSING : STORE_DEV_OK;
	out->open_err = m->md->missing[dev] ? -ENODEV : 0;
	out->path = "mem";
	return 0;
}

static void
mem_close(struct store_io *io)
{
	free(io);
}

static const struct store_io_ops mem_ops = {
	.name = "mem",
	.close = mem_close,
	.register_bufs = mem_register_bufs,
	.submit = mem_submit,
	.poll = mem_poll,
	.dev_info = mem_dev_info,
};

int
store_io_mem_open(struct store_memdisk *md, struct store_io **out)
{
	struct mem_io *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return -ENOMEM;
	m->base.ops = &mem_ops;
	m->base.ndev = md->ndev;
	m->md = md;
	*out = &m->base;
	return 0;
}
