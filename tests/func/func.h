/*
 * func.h - helpers shared by the functional tests on real files: a
 * private temporary directory (mkdtemp under /tmp, removed at exit by the
 * process that made it), device files, the file backend (io_uring, or
 * psync where io_uring_setup answers ENOSYS or EPERM; GPC_FUNC_BACKEND=
 * psync forces it), and put/verify of test blocks whose bytes are a pure
 * function of their id (test.h), so that a wrong byte is always seen.
 *
 * Everything here is static: each test is one translation unit.
 */
#ifndef GPC_TESTS_FUNC_H
#define GPC_TESTS_FUNC_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpucache/gpucache.h"
#include "store/store.h"
#include "test.h"

#define FUNC_NS 11
#define FUNC_MAXDEV 8

static char func_dir[256];
static pid_t func_dir_owner;
static char func_path[FUNC_MAXDEV][300];
static const char *func_paths[FUNC_MAXDEV];
static const char *func_backend = "uring";

static inline int
func_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(p);
	return 0;
}

static inline void
func_cleanup(void)
{
	if (func_dir[0] != '\0' && getpid() == func_dir_owner &&
	    getenv("GPC_FUNC_KEEP") == NULL)
		nftw(func_dir, func_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Make the temp dir and the paths of ndev device files dev0..dev<n-1>. */
static inline void
func_setup(const char *name, unsigned ndev)
{
	int fd;

	snprintf(func_dir, sizeof(func_dir), "/tmp/gpc-%s.XXXXXX", name);
	REQUIRE(mkdtemp(func_dir) != NULL);
	func_dir_owner = getpid();
	atexit(func_cleanup);
	REQUIRE(ndev <= FUNC_MAXDEV);
	for (unsigned i = 0; i < ndev; i++) {
		snprintf(func_path[i], sizeof(func_path[i]), "%s/dev%u",
			 func_dir, i);
		func_paths[i] = func_path[i];
	}
	for (unsigned i = ndev; i < FUNC_MAXDEV; i++)
		func_paths[i] = NULL;
	if (getenv("GPC_FUNC_BACKEND") != NULL &&
	    strcmp(getenv("GPC_FUNC_BACKEND"), "psync") == 0)
		func_backend = "psync";
	fd = open(func_path[0], O_RDWR | O_CREAT | O_DIRECT, 0600);
	if (fd < 0 && errno == EINVAL) {
		/* the uring backend needs O_DIRECT; psync falls back */
		printf("%s refuses O_DIRECT: using the psync backend, "
		       "buffered\n", func_dir);
		func_backend = "psync";
	}
	if (fd >= 0)
		close(fd);
	unlink(func_path[0]);
}

/* A blank (sparse, zero) file of size bytes at path, replacing any. */
static inline void
func_file_blank(const char *path, uint64_t size)
{
	int fd;

	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, (off_t)size) == 0);
	close(fd);
}

static inline void
func_pwrite(const char *path, const void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDWR);

	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, buf, len, (off_t)off) == (ssize_t)len);
	close(fd); /* O_DIRECT reads write back dirty pages first */
}

static inline void
func_pread(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);

	REQUIRE(fd >= 0);
	REQUIRE(pread(fd, buf, len, (off_t)off) == (ssize_t)len);
	close(fd);
}

static inline uint64_t
func_file_size(const char *path)
{
	struct stat sb;

	REQUIRE(stat(path, &sb) == 0);
	return (uint64_t)sb.st_size;
}

/* Overwrite the whole file, in place, with random bytes from seed. */
static inline void
func_file_garbage(const char *path, uint64_t seed)
{
	uint64_t size = func_file_size(path), s = seed;
	size_t blk = 1u << 20;
	uint8_t *buf = malloc(blk);
	int fd = open(path, O_RDWR);

	REQUIRE(buf != NULL && fd >= 0);
	for (uint64_t off = 0; off < size; off += blk) {
		size_t n = size - off < blk ? (size_t)(size - off) : blk;

		for (size_t j = 0; j + 8 <= n; j += 8) {
			uint64_t v = test_rand(&s);
			memcpy(buf + j, &v, 8);
		}
		REQUIRE(pwrite(fd, buf, n, (off_t)off) == (ssize_t)n);
	}
	close(fd);
	free(buf);
}

static inline void
func_file_copy(const char *from, const char *to)
{
	uint64_t size = func_file_size(from);
	size_t blk = 1u << 20;
	uint8_t *buf = malloc(blk);
	int in = open(from, O_RDONLY), out;

	unlink(to);
	out = open(to, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(buf != NULL && in >= 0 && out >= 0);
	for (uint64_t off = 0; off < size; off += blk) {
		size_t n = size - off < blk ? (size_t)(size - off) : blk;

		REQUIRE(pread(in, buf, n, (off_t)off) == (ssize_t)n);
		REQUIRE(pwrite(out, buf, n, (off_t)off) == (ssize_t)n);
	}
	close(in);
	close(out);
	free(buf);
}

/*
 * Open the file backend over the first ndev func_paths. io_uring unless
 * it is unavailable (ENOSYS: qemu-user; EPERM: disabled by sysctl), then
 * psync; the first time it says which ran.
 */
static inline int
func_io_open(unsigned ndev, struct store_io **out)
{
	static bool said;
	struct store_io_cfg cfg = { .ndev = ndev, .paths = func_paths };
	int rc = -ENOSYS;

	if (strcmp(func_backend, "uring") == 0) {
		rc = store_io_uring_open(&cfg, out);
		if (rc == -ENOSYS || rc == -EPERM) {
			printf("io_uring unavailable (%s): using the psync "
			       "backend\n", strerror(-rc));
			func_backend = "psync";
		}
	}
	if (strcmp(func_backend, "psync") == 0)
		rc = store_io_psync_open(&cfg, out);
	if (rc == 0 && !said) {
		printf("backend: %s\n", func_backend);
		said = true;
	}
	return rc;
}

/* Blank files of devsz bytes, formatted as k+m with chunk bytes. */
static inline void
func_format(unsigned ndev, uint64_t devsz, unsigned k, unsigned m,
	    uint32_t chunk)
{
	struct store_format_opts fo = { .k = k, .m = m, .chunk_size = chunk };
	struct store_io *io;

	for (unsigned i = 0; i < ndev; i++)
		func_file_blank(func_paths[i], devsz);
	REQUIRE(func_io_open(ndev, &io) == 0);
	REQUIRE(store_format(io, &fo) == 0);
	store_io_close(io);
}

static inline struct store *
func_open(unsigned ndev, bool read_only)
{
	struct store_opts o = { .read_only = read_only };
	struct store_io *io;
	struct store *st;
	int rc;

	REQUIRE(func_io_open(ndev, &io) == 0);
	rc = store_open(io, &o, &st);
	if (rc < 0) {
		fprintf(stderr, "store_open: %s\n", gpc_strerror(rc));
		store_io_close(io);
		REQUIRE(rc == 0);
	}
	return st;
}

static inline int
func_put(struct store *st, uint64_t id, size_t maxlen, unsigned flags)
{
	uint8_t key[32];
	size_t len = test_len(id, maxlen);
	uint8_t *buf = malloc(len);
	int rc;

	REQUIRE(buf != NULL);
	test_key(id, key);
	test_fill(id, buf, len);
	rc = store_put(st, FUNC_NS, key, buf, len, flags);
	free(buf);
	return rc;
}

/* Block id: 1 present and bit-exact, 0 a miss, -1 wrong (reported). */
static inline int
func_verify_rc(uint64_t id, size_t maxlen, int rc, const uint8_t *got)
{
	size_t len = test_len(id, maxlen);
	uint8_t *want;
	int res;

	if (rc == -GPC_ENOTFOUND)
		return 0;
	want = malloc(len);
	REQUIRE(want != NULL);
	test_fill(id, want, len);
	res = rc == (int)len && memcmp(want, got, len) == 0 ? 1 : -1;
	if (res < 0)
		fprintf(stderr, "WRONG: block %llu: rc %d (%s), len %zu%s\n",
			(unsigned long long)id, rc,
			rc < 0 ? gpc_strerror(rc) : "data",
			len, rc == (int)len ? ", bytes differ" : "");
	free(want);
	return res;
}

/* Read block id (aligned buffer, or unaligned when odd) and judge it. */
static inline int
func_verify(struct store *st, uint64_t id, size_t maxlen, bool unaligned)
{
	uint8_t key[32], *got;
	size_t len = test_len(id, maxlen), cap = len + 8192;
	int rc, res;

	REQUIRE(posix_memalign((void **)&got, 4096, cap + 64) == 0);
	test_key(id, key);
	rc = store_get(st, FUNC_NS, key, got + (unaligned ? 8 : 0), cap);
	res = func_verify_rc(id, maxlen, rc, got + (unaligned ? 8 : 0));
	free(got);
	return res;
}

/* Verify ids [lo, hi): counts of exact, missed and wrong blocks. */
struct func_tally {
	unsigned long exact, miss, wrong;
};

static inline struct func_tally
func_verify_range(struct store *st, uint64_t lo, uint64_t hi, size_t maxlen)
{
	struct func_tally t = { 0 };

	for (uint64_t id = lo; id < hi; id++) {
		int r = func_verify(st, id, maxlen, id % 3 == 0);

		if (r > 0)
			t.exact++;
		else if (r == 0)
			t.miss++;
		else
			t.wrong++;
	}
	return t;
}

/*
 * Run the gpucache CLI at tool with "cmd [--dev N] [--backend B] dev0..
 * dev<ndev-1>" (dev < 0: no --dev); returns its exit status, or -1.
 */
static inline int
func_cli(const char *tool, const char *cmd, int dev, unsigned ndev)
{
	char devarg[16];
	const char *argv[8 + FUNC_MAXDEV];
	unsigned n = 0;
	pid_t pid;
	int status;

	argv[n++] = tool;
	argv[n++] = cmd;
	if (dev >= 0) {
		snprintf(devarg, sizeof(devarg), "%d", dev);
		argv[n++] = "--dev";
		argv[n++] = devarg;
	}
	argv[n++] = "--backend";
	argv[n++] = func_backend;
	for (unsigned i = 0; i < ndev; i++)
		argv[n++] = func_paths[i];
	argv[n] = NULL;
	printf("running:");
	for (unsigned i = 0; i < n; i++)
		printf(" %s", argv[i]);
	printf("\n");
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execv(tool, (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static inline double
func_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
