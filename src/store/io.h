/*
 * io.h - the device I/O vtable under the flash engine.
 *
 * A struct store_io is one I/O context over an ordered set of devices
 * (index 0..ndev-1), owned by one thread. Backends: io_uring over files and
 * block devices opened O_DIRECT (io_uring.c), plain pread/pwrite for places
 * without io_uring such as qemu-user (io_psync.c), in-memory devices
 * (io_mem.c), and a fault/crash-injecting wrapper around any other backend
 * (io_fault.c).
 *
 * Async contract: if submit() returns 0, req->cb runs exactly once, later,
 * from poll() on the submitting thread, with req->res set to the number of
 * bytes transferred (always the full length: a backend completes a short
 * transfer or fails it) or a negative errno. If submit() returns < 0 the
 * callback never runs. Callbacks may submit new requests; they must not
 * call poll() or close(). The request and its iovec stay owned by the
 * caller and must stay valid until the callback.
 *
 * Alignment: offsets, lengths and buffer addresses are multiples of
 * STORE_IO_ALIGN (what O_DIRECT needs on NVMe); backends check and answer
 * -EINVAL otherwise.
 */
#ifndef GPC_STORE_IO_H
#define GPC_STORE_IO_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define STORE_IO_ALIGN 4096u

#ifndef IOV_MAX
#define IOV_MAX 1024 /* Linux UIO_MAXIOV, when limits.h hides it */
#endif
#define STORE_IO_MAXDEV_MEM 64u

enum store_io_op {
	STORE_IO_READ = 0,
	STORE_IO_WRITE = 1,
	STORE_IO_FLUSH = 2, /* make completed writes to dev durable */
};

struct store_io_req {
	uint8_t op;           /* enum store_io_op */
	uint16_t dev;         /* device index */
	int32_t buf_index;    /* registered buffer index, or -1 */
	uint64_t off;         /* byte offset on the device */
	const struct iovec *iov; /* iovcnt buffers; caller-owned */
	unsigned iovcnt;      /* 0 for FLUSH; 1 when buf_index >= 0 */
	int res;              /* out: bytes transferred or -errno */
	void (*cb)(struct store_io_req *req);
	void *arg;            /* for the caller */
	struct store_io_req *next; /* owned by the backend while in flight */
	uint64_t bk;          /* owned by the backend while in flight */
};

enum store_dev_state {
	STORE_DEV_OK = 0,
	STORE_DEV_MISSING = 1, /* could not be opened */
};

struct store_dev_info {
	uint64_t size;       /* bytes, rounded down to STORE_IO_ALIGN */
	uint8_t state;       /* enum store_dev_state */
	int open_err;        /* -errno from open when MISSING */
	const char *path;    /* as configured; owned by the backend */
};

struct store_io;

struct store_io_ops {
	const char *name;
	void (*close)(struct store_io *io);
	/* Register buffers for buf_index >= 0 requests; replaces earlier ones. */
	int (*register_bufs)(struct store_io *io, const struct iovec *bufs,
			     unsigned n);
	int (*submit)(struct store_io *io, struct store_io_req *req);
	/*
	 * Wait until at least min_complete requests have completed (0: do not
	 * wait), run their callbacks, return how many ran or -errno.
	 */
	int (*poll)(struct store_io *io, unsigned min_complete);
	int (*dev_info)(struct store_io *io, unsigned dev,
			struct store_dev_info *out);
	/*
	 * Optional: an eventfd the backend signals whenever a request
	 * completes asynchronously, for its owner to sleep on while requests
	 * are in flight; -1 (or a NULL op) when completions only happen in
	 * poll (synchronous backends). The backend owns and closes it.
	 */
	int (*event_fd)(struct store_io *io);
};

/* Every backend embeds this first. */
struct store_io {
	const struct store_io_ops *ops;
	unsigned ndev;
	unsigned inflight; /* maintained by backends: submitted, cb not run */
};

struct store_io_cfg {
	unsigned ndev;
	const char *const *paths; /* ndev paths: files or block devices */
	unsigned queue_depth;     /* ring size hint; 0 = default (256) */
	bool create;              /* files: create if missing */
	uint64_t create_size;     /* files: size when created/extended */
};

/*
 * Open backends. A device that cannot be opened does not fail the open: it
 * reports STORE_DEV_MISSING in dev_info and every request to it completes
 * with -ENODEV. The caller frees the context with io->ops->close(io).
 */
int store_io_uring_open(const struct store_io_cfg *cfg, struct store_io **out);
int store_io_psync_open(const struct store_io_cfg *cfg, struct store_io **out);

/* In-memory devices that outlive any I/O context opened on them. */
struct store_memdisk;
int store_memdisk_create(unsigned ndev, uint64_t size,
			 struct store_memdisk **out);
void store_memdisk_destroy(struct store_memdisk *md);
/* Direct access for tests (flip bits, wipe, remove): NULL if missing. */
uint8_t *store_memdisk_data(struct store_memdisk *md, unsigned dev);
/* Mark a device missing (as if pulled) or present again, as it was. */
void store_memdisk_set_missing(struct store_memdisk *md, unsigned dev,
			       bool missing);
/* Zero a device's content (a blank replacement). */
void store_memdisk_wipe(struct store_memdisk *md, unsigned dev);
int store_io_mem_open(struct store_memdisk *md, struct store_io **out);
/*
 * A window [off, off+len) of every device of inner, seen as whole devices
 * (one per server shard). Takes ownership of inner.
 */
int store_io_region_open(struct store_io *inner, uint64_t off, uint64_t len,
			 struct store_io **out);
/* The region gpucached gives each of nshards shards on devices whose
 * smallest holds min_size bytes: an equal slice, in whole MiB. */
static inline uint64_t
store_io_region_len(uint64_t min_size, unsigned nshards)
{
	return (min_size / nshards) & ~((1ull << 20) - 1);
}

/*
 * Shared by the backends (appended; not part of the vtable).
 *
 * store_io_req_check: the shape checks every backend's submit() makes
 * before anything else: op, device index, callback, iovec count (1..
 * IOV_MAX, exactly 1 with a registered buffer that must contain it),
 * alignment, a total length in 1..INT_MAX (res must hold it). Returns 0
 * and the total length in *len, or -EINVAL. Bounds (-ERANGE) and missing
 * devices are the backend's to check.
 */
static inline int
store_io_req_check(const struct store_io_req *req, unsigned ndev,
		   const struct iovec *bufs, unsigned nbufs, uint64_t *len)
{
	const uintptr_t mask = STORE_IO_ALIGN - 1;
	uint64_t total = 0;
	unsigned i;

	if (req->dev >= ndev || req->cb == NULL || req->op > STORE_IO_FLUSH)
		return -EINVAL;
	if (req->op == STORE_IO_FLUSH) {
		*len = 0;
		return 0;
	}
	if (req->iov == NULL || req->iovcnt == 0 || req->iovcnt > IOV_MAX ||
	    (req->off & mask) != 0)
		return -EINVAL;
	for (i = 0; i < req->iovcnt; i++) {
		if (((uintptr_t)req->iov[i].iov_base & mask) != 0 ||
		    (req->iov[i].iov_len & mask) != 0 ||
		    total + req->iov[i].iov_len < total)
			return -EINVAL;
		total += req->iov[i].iov_len;
	}
	if (total == 0 || total > (uint64_t)INT_MAX)
		return -EINVAL;
	if (req->buf_index >= 0) {
		const struct iovec *b;

		if (req->iovcnt != 1 || (unsigned)req->buf_index >= nbufs)
			return -EINVAL;
		b = &bufs[req->buf_index];
		if ((uintptr_t)req->iov[0].iov_base < (uintptr_t)b->iov_base ||
		    (uintptr_t)req->iov[0].iov_base + total >
			    (uintptr_t)b->iov_base + b->iov_len)
			return -EINVAL;
	}
	*len = total;
	return 0;
}

/* Does [off, off + len) lie inside a device of `size` bytes? */
static inline bool
store_io_in_range(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/*
 * Open one file or block device for the file backends (defined in
 * io_psync.c, used by io_uring.c too): O_RDWR | O_DIRECT, | O_CREAT when
 * create; a regular file smaller than create_size (when non-zero) is
 * extended to it. With buffered_ok, an O_DIRECT open refused with EINVAL
 * (tmpfs) is retried buffered and *direct says so. On success *fd and
 * *size (rounded down to STORE_IO_ALIGN) are written; else -errno.
 */
int store_io_dev_open(const char *path, bool create, uint64_t create_size,
		      bool buffered_ok, int *fd, uint64_t *size, bool *direct);

/* The device table of the file-descriptor backends (io_uring, psync). */
struct store_io_dev {
	char *path;
	int fd;         /* -1 when missing */
	uint64_t size;
	int open_err;
};

/*
 * Allocate and open cfg's devices into *out (cfg->ndev entries); one that
 * fails is recorded missing, not an error. who names the backend in logs.
 * 0 or -ENOMEM. store_io_devs_close frees the table.
 */
int store_io_devs_open(const struct store_io_cfg *cfg, bool buffered_ok,
		       const char *who, struct store_io_dev **out);
void store_io_devs_close(struct store_io_dev *devs, unsigned n);
int store_io_devs_info(const struct store_io_dev *devs, unsigned n,
		       unsigned dev, struct store_dev_info *out);

static inline int
store_io_submit(struct store_io *io, struct store_io_req *req)
{
	return io->ops->submit(io, req);
}

static inline int
store_io_poll(struct store_io *io, unsigned min_complete)
{
	return io->ops->poll(io, min_complete);
}

static inline void
store_io_close(struct store_io *io)
{
	if (io != NULL)
		io->ops->close(io);
}

#endif
