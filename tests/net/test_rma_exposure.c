/*
 * test_rma_exposure.c - gpucached must not be an RMA target. A peer that
 * has only opened a UCX connection to a shard (no HELLO, no AUTH, no
 * registration) forges an rkey (the packed key of its own memory) and asks
 * UCX to read the daemon's memory at an address it names (the ELF header
 * of the gpucached binary, from /proc/PID/maps), then to write 8 bytes of
 * the daemon's .data back unchanged. Neither may succeed.
 *
 * Protocol version 1 failed this: the daemon's UCP context had
 * UCP_FEATURE_RMA (it drove the data path by RMA), so UCX's software RMA
 * emulation (the only RMA lanes its endpoints got: tcp, also when shared
 * memory transports were allowed, since PEER error handling excludes
 * them) served a peer's PUT/GET at any address, with no registration,
 * before authentication. Version 2 moves block data by active-message
 * rendezvous and the daemon's context has no RMA feature: the requests
 * go unanswered (the peer sees a timeout or an error) and the daemon
 * lives on.
 *
 * argv[1]: gpucached.
 */
#include <limits.h>

#include "nettest.h"

static int op_done, op_rc;
static bool peer_err;

static void
op_cb(void *arg, int rc)
{
	(void)arg;
	op_done = 1;
	op_rc = rc;
}

static void
on_msg(void *arg, struct net_ep *ep, const uint8_t *buf, size_t len,
       struct net_data *d)
{
	(void)arg, (void)ep, (void)buf, (void)len, (void)d;
}

static void
on_err(void *arg, struct net_ep *ep, int err)
{
	(void)arg, (void)ep, (void)err;
	peer_err = true;
}

/* Start of the first mapping of the daemon's executable with perms
 * starting "perm" (e.g. "r--p" at offset 0, or "rw-p"); 0 if none. */
static uint64_t
daemon_map(const char *perm)
{
	char path[64], line[PATH_MAX + 128], exe[PATH_MAX];
	uint64_t found = 0;
	FILE *f;

	REQUIRE(realpath(nt_exe, exe) != NULL);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)nt_daemon);
	f = fopen(path, "r");
	REQUIRE(f != NULL);
	while (found == 0 && fgets(line, sizeof(line), f) != NULL) {
		unsigned long long lo, hi, off;
		char p[8], file[PATH_MAX];

		if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %4095s", &lo, &hi,
			   p, &off, file) == 5 &&
		    strcmp(file, exe) == 0 && strncmp(p, perm, 4) == 0)
			found = lo;
	}
	fclose(f);
	return found;
}

/* One RMA (get or put) of n bytes at raddr: 0 if it completed well. */
static int
rma(struct net_worker *w, struct net_ep *ep, struct net_rkey *rk, bool put,
    void *buf, size_t n, uint64_t raddr)
{
	uint64_t t0 = nt_now_ms();
	int rc;

	op_done = 0;
	rc = put ? net_put_nb(ep, buf, n, raddr, rk, op_cb, NULL)
		 : net_get_nb(ep, buf, n, raddr, rk, op_cb, NULL);
	if (rc < 0)
		return rc;
	if (put && net_flush_nb(ep, op_cb, NULL) < 0)
		return -EIO;
	while (!op_done && nt_now_ms() - t0 < 3000)
		if (net_progress(w) == 0)
			sched_yield();
	return op_done ? op_rc : -ETIMEDOUT;
}

int
main(int argc, char **argv)
{
	struct net_ctx *ctx;
	struct net_worker *w;
	struct net_ep *ep;
	struct net_mem *m;
	struct net_rkey *rk;
	void *mem = NULL, *rkb;
	size_t rkl;
	uint8_t buf[16] = { 0 }, data[8];
	uint64_t text, rw;
	int rc;

	nt_setup("net_rma_exposure", argc, argv, 60);
	nt_daemon_start();
	text = daemon_map("r--p");
	rw = daemon_map("rw-p");
	REQUIRE(text != 0 && rw != 0);
	REQUIRE(net_ctx_create(false, NET_CTX_RMA, &ctx) == 0);
	REQUIRE(net_worker_create(ctx, NET_AM_TO_CLIENT, on_msg, on_err, NULL,
				  &w) == 0);
	REQUIRE(net_connect(w, "127.0.0.1", nt_port, &ep) == 0);
	REQUIRE(net_mem_map(ctx, &mem, 4096, &m) == 0);
	REQUIRE(net_mem_pack(ctx, m, &rkb, &rkl) == 0);
	REQUIRE(net_rkey_unpack(ep, rkb, rkl, &rk) == 0);
	free(rkb);

	/* read: the ELF header of the daemon's binary */
	rc = rma(w, ep, rk, false, buf, sizeof(buf), text);
	printf("unauthenticated RMA read of gpucached at %#llx: %s, bytes "
	       "%02x %02x %02x %02x\n", (unsigned long long)text,
	       gpc_strerror(rc), buf[0], buf[1], buf[2], buf[3]);
	if (rc == 0 && memcmp(buf, "\177ELF", 4) == 0)
		fprintf(stderr, "SERVER BUG: a peer that never authenticated "
			"read gpucached's memory by UCX RMA\n");
	CHECK(!(rc == 0 && memcmp(buf, "\177ELF", 4) == 0));
	/* write: 8 bytes of .data, read and written back unchanged */
	if (!peer_err) {
		rc = rma(w, ep, rk, false, data, sizeof(data), rw);
		if (rc == 0)
			rc = rma(w, ep, rk, true, data, sizeof(data), rw);
		printf("unauthenticated RMA write of gpucached at %#llx: %s\n",
		       (unsigned long long)rw, gpc_strerror(rc));
		if (rc == 0)
			fprintf(stderr, "SERVER BUG: a peer that never "
				"authenticated wrote gpucached's memory by UCX "
				"RMA\n");
		CHECK(rc != 0);
	}
	net_rkey_destroy(rk);
	net_ep_close(ep);
	for (int i = 0; i < 100; i++)
		net_progress(w);
	net_mem_unmap(ctx, m);
	net_worker_destroy(w);
	net_ctx_destroy(ctx);
	CHECK(nt_daemon_alive());
	CHECK(nt_exit0(nt_daemon_stop(20000), "gpucached after SIGTERM"));
	return test_summary("net_rma_exposure");
}
