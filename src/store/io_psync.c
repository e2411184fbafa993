/*
 * io_psync.c - the store_io backend on plain preadv/pwritev/fdatasync, for
 * places without io_uring (qemu-user answers io_uring_setup with ENOSYS)
 * and as a fallback.
 *
 * Design: a request runs to the end inside submit() (the syscall blocks
 * the calling thread), its result goes on a FIFO of finished requests
 * linked through req->next, and the next poll() runs the callbacks. So a
 * callback never runs inside submit(), as io.h requires, and every request
 * submitted is already finished when poll() looks: poll never sleeps.
 *
 * Owns: the device fds and path copies, a copy of the registered buffer
 * table (only to check buf_index requests; pread needs no registration).
 * One thread, the owner of the context, calls everything.
 *
 * Files are opened O_DIRECT like the io_uring backend; where the file
 * system refuses O_DIRECT with EINVAL (tmpfs) the file is opened buffered
 * and a warning says so. Alignment is checked either way.
 *
 * store_io_dev_open(), the device open shared with io_uring.c, lives here
 * because this backend is built on every platform.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "store/io.h"

struct psync_ctx {
	struct store_io io; /* first: the vtable's view */
	struct store_io_dev *devs;
	struct iovec *bufs; /* copy of the registered table */
	unsigned nbufs;
	struct store_io_req *head, *tail; /* finished, callback not run */
};

static const struct store_io_ops psync_ops;

static struct psync_ctx *
psync_of(struct store_io *io)
{
	return (struct psync_ctx *)io;
}

/* Extend a regular file to size: preallocate, or sparse if unsupported. */
static int
dev_extend(int fd, uint64_t size)
{
	if (fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	return 0;
}

static int
dev_size(int fd, uint64_t create_size, uint64_t *out)
{
	struct stat st;
	uint64_t size;
	int rc;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return -errno;
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
		if (create_size > size) {
			rc = dev_extend(fd, create_size);
			if (rc < 0)
				return rc;
			size = create_size;
		}
	} else {
		return -ENODEV;
	}
	*out = size & ~(uint64_t)(STORE_IO_ALIGN - 1);
	return 0;
}

int
store_io_dev_open(const char *path, bool create, uint64_t create_size,
		  bool buffered_ok, int *fd, uint64_t *size, bool *direct)
{
	int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
	bool dio = true;
	uint64_t sz = 0;
	int nfd, rc;

	if (path == NULL)
		return -EINVAL;
	nfd = open(path, flags | O_DIRECT, 0600);
	if (nfd < 0 && errno == EINVAL && buffered_ok) {
		nfd = open(path, flags, 0600);
		dio = false;
	}
	if (nfd < 0)
		return -errno;
	rc = dev_size(nfd, create_size, &sz);
	if (rc < 0) {
		close(nfd);
		return rc;
	}
	*fd = nfd;
	*size = sz;
	*direct = dio;
	return 0;
}

static void
psync_push(struct psync_ctx *p, struct store_io_req *req)
{
	req->next = NULL;
	if (p->tail != NULL)
		p->tail->next = req;
	else
		p->head = req;
	p->tail = req;
}

/*
 * Finish a transfer that preadv/pwritev left short, one buffer at a time
 * from byte `done` on. No progress, or progress that ends inside a sector
 * (the end of a file that shrank), is -EIO.
 */
static int
psync_rw_rest(int fd, const struct store_io_req *req, uint64_t done,
	      uint64_t len)
{
	uint64_t pos = 0;
	unsigned i;
	ssize_t n;

	for (i = 0; i < req->iovcnt && done < len; i++) {
		uint64_t end = pos + req->iov[i].iov_len;

		while (done < end) {
			char *p = (char *)req->iov[i].iov_base + (done - pos);
			size_t want = (size_t)(end - done);
			off_t off = (off_t)(req->off + done);

			if (req->op == STORE_IO_READ)
				n = pread(fd, p, want, off);
			else
				n = pwrite(fd, p, want, off);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n < 0)
				return -errno;
			if (n == 0 || n % STORE_IO_ALIGN != 0)
				return -EIO;
			done += (uint64_t)n;
		}
		pos = end;
	}
	return (int)len;
}

static int
psync_rw(int fd, const struct store_io_req *req, uint64_t len)
{
	int cnt = (int)req->iovcnt;
	ssize_t n;

	if (req->op == STORE_IO_READ)
		n = preadv(fd, req->iov, cnt, (off_t)req->off);
	else
		n = pwritev(fd, req->iov, cnt, (off_t)req->off);
	if (n >= 0 && (uint64_t)n == len)
		return (int)len;
	if (n < 0 && errno != EINTR && errno != EAGAIN)
		return -errno;
	if (n > 0 && n % STORE_IO_ALIGN != 0)
		return -EIO; /* end of a shrunk file: O_DIRECT cannot go on */
	return psync_rw_rest(fd, req, n > 0 ? (uint64_t)n : 0, len);
}

static int
psync_flush(int fd)
{
	while (fdatasync(fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int
psync_submit(struct store_io *io, struct store_io_req *req)
{
	struct psync_ctx *p = psync_of(io);
	struct store_io_dev *d;
	uint64_t len;
	int rc;

	rc = store_io_req_check(req, io->ndev, p->bufs, p->nbufs, &len);
	if (rc < 0)
		return rc;
	d = &p->devs[req->dev];
	if (d->fd < 0)
		rc = -ENODEV;
	else if (req->op == STORE_IO_FLUSH)
		rc = psync_flush(d->fd);
	else if (!store_io_in_range(req->off, len, d->size))
		return -ERANGE;
	else
		rc = psync_rw(d->fd, req, len);
	req->res = rc;
	req->bk = 0;
	io->inflight++;
	psync_push(p, req);
	return 0;
}

/*
 * Everything in flight has finished, so poll never waits: it runs the
 * callbacks queued when it starts, and goes on with those that callbacks
 * submitted only while fewer than min_complete have run.
 */
static int
psync_poll(struct store_io *io, unsigned min_complete)
{
	struct psync_ctx *p = psync_of(io);
	struct store_io_req *req, *next;
	unsigned count = 0;

	do {
		req = p->head;
		p->head = p->tail = NULL;
		for (; req != NULL; req = next) {
			next = req->next;
			req->next = NULL;
			io->inflight--;
			count++;
			req->cb(req);
		}
	} while (count < min_complete && p->head != NULL);
	return (int)count;
}

/* Buffers cannot change under requests in flight: -EBUSY then. */
static int
psync_register_bufs(struct store_io *io, const struct iovec *bufs,
		    unsigned n)
{
	struct psync_ctx *p = psync_of(io);
	struct iovec *copy = NULL;

	if (io->inflight > 0)
		return -EBUSY;
	if (n > 0 && bufs == NULL)
		return -EINVAL;
	if (n > 0) {
		copy = malloc(n * sizeof(*copy));
		if (copy == NULL)
			return -ENOMEM;
		memcpy(copy, bufs, n * sizeof(*copy));
	}
	free(p->bufs);
	p->bufs = copy;
	p->nbufs = n;
	return 0;
}

static int
psync_dev_info(struct store_io *io, unsigned dev, struct store_dev_info *out)
{
	return store_io_devs_info(psync_of(io)->devs, io->ndev, dev, out);
}

/* Callbacks still queued are not run: closing with I/O in flight is the
 * caller's bug. */
static void
psync_close(struct store_io *io)
{
	struct psync_ctx *p = psync_of(io);

	store_io_devs_close(p->devs, io->ndev);
	free(p->bufs);
	free(p);
}

/* Open each device; one that fails is recorded missing, not an error. */
int
store_io_devs_open(const struct store_io_cfg *cfg, bool buffered_ok,
		   const char *who, struct store_io_dev **out)
{
	struct store_io_dev *devs = calloc(cfg->ndev, sizeof(*devs));
	bool direct = true;
	int rc;

	if (devs == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->ndev; i++)
		devs[i].fd = -1;
	for (unsigned i = 0; i < cfg->ndev; i++) {
		struct store_io_dev *d = &devs[i];

		if (cfg->paths[i] != NULL) {
			d->path = strdup(cfg->paths[i]);
			if (d->path == NULL) {
				store_io_devs_close(devs, cfg->ndev);
				return -ENOMEM;
			}
		}
		rc = store_io_dev_open(d->path, cfg->create, cfg->create_size,
				       buffered_ok, &d->fd, &d->size, &direct);
		if (rc < 0) {
			d->fd = -1;
			d->open_err = rc;
			log_warn("store", "%s: device %u (%s) missing: %s", who,
				 i, d->path != NULL ? d->path : "(null)",
				 strerror(-rc));
		} else if (!direct) {
			log_warn("store", "%s: %s refuses O_DIRECT, using "
				 "buffered I/O", who, d->path);
		}
	}
	*out = devs;
	return 0;
}

void
store_io_devs_close(struct store_io_dev *devs, unsigned n)
{
	if (devs == NULL)
		return;
	for (unsigned i = 0; i < n; i++) {
		if (devs[i].fd >= 0)
			close(devs[i].fd);
		free(devs[i].path);
	}
	free(devs);
}

int
store_io_devs_info(const struct store_io_dev *devs, unsigned n, unsigned dev,
		   struct store_dev_info *out)
{
	const struct store_io_dev *d;

	if (dev >= n)
		return -EINVAL;
	d = &devs[dev];
	out->size = d->fd >= 0 ? d->size : 0;
	out->state = d->fd >= 0 ? STORE_DEV_OK : STORE_DEV_MISSING;
	out->open_err = d->fd >= 0 ? 0 : d->open_err;
	out->path = d->path;
	return 0;
}

int
store_io_psync_open(const struct store_io_cfg *cfg, struct store_io **out)
{
	struct psync_ctx *p;
	int rc;

	if (cfg == NULL || cfg->ndev == 0 || cfg->ndev > UINT16_MAX + 1u ||
	    cfg->paths == NULL)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->io.ops = &psync_ops;
	p->io.ndev = cfg->ndev;
	rc = store_io_devs_open(cfg, true, "psync", &p->devs);
	if (rc < 0) {
		free(p);
		return rc;
	}
	*out = &p->io;
	return 0;
}

static const struct store_io_ops psync_ops = {
	.name = "psync",
	.close = psync_close,
	.register_bufs = psync_register_bufs,
	.submit = psync_submit,
	.poll = psync_poll,
	.dev_info = psync_dev_info,
};
