/*
 * shard.c - one gpucached shard: a thread that owns a UCX worker and
 * listener (port + shard index), an I/O context over its own region of
 * every device, and the flash engine on it. It runs to completion: every
 * callback (network, storage) runs on this thread from its loop, so
 * nothing in here takes a lock. It sleeps in the UCX worker's event fd
 * only when the engine has nothing in flight and, while requests are in
 * flight, only after server.poll_spin_us without any work (a sleep and
 * the wake-up that ends it cost a rendezvous step two context switches;
 * a transfer's next step usually comes within microseconds).
 *
 * Connections: created on accept, dropped on a protocol error or when the
 * peer goes away. A dropped connection stays allocated until its last
 * request has finished (their transfers fail, reservations are aborted,
 * so nothing is published and nothing leaks), then it is freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/log.h"
#include "gpucache/gpucache.h"
#include "server.h"

int
srv_shard_of(const uint8_t *key, unsigned nshards)
{
	return (int)(get_le64(key) % nshards);
}

static void
conn_free(struct srv_conn *c)
{
	struct srv_conn **pp = &c->sh->conns;

	while (*pp != NULL && *pp != c)
		pp = &(*pp)->next;
	if (*pp == c)
		*pp = c->next;
	srv_events_conn_gone(c);
	srv_metrics_conn(c->sh->m, -1);
	free(c);
}

/*
 * Drop a connection: its endpoint is closed now (the net layer may free
 * it at once, so c->ep is cleared and nothing may use it again); c itself
 * stays until its last request has finished. Closing may run no callback
 * here (net.h), so c cannot go away under us.
 */
void
srv_conn_drop(struct srv_conn *c)
{
	if (!c->dead) {
		struct net_ep *ep = c->ep;

		c->dead = true;
		c->ep = NULL;
		net_ep_set_user(ep, NULL);
		net_ep_close(ep);
		c->inflight++; /* ending PUTs must not free c under us */
		srv_conn_puts_fail(c);
		c->inflight--;
	}
	if (c->inflight == 0)
		conn_free(c);
}

int
srv_reply(struct srv_conn *c, const struct wire_hdr *req, int status,
	  uint32_t count, uint64_t aux, const void *body, size_t blen)
{
	uint8_t hb[WIRE_HDR_SIZE];
	struct wire_hdr h = { .opcode = (uint8_t)(req->opcode | WIRE_OP_RESP),
			      .req_id = req->req_id, .body_len = (uint32_t)blen,
			      .count = count, .status = status,
			      .shard = c->sh->idx, .aux = aux };

	if (c->dead)
		return -ENOTCONN;
	h.body_crc = wire_body_crc(body, blen);
	wire_hdr_encode(&h, hb);
	return net_send_nb(c->ep, NET_AM_TO_CLIENT, hb, sizeof(hb), body, blen,
			   NULL, NULL);
}

static void
on_accept(void *arg, struct net_ep *ep)
{
	struct srv_shard *sh = arg;
	struct srv_conn *c = NULL;
	unsigned unauth = 0;

	for (struct srv_conn *o = sh->conns; o != NULL; o = o->next)
		unauth += !o->dead && o->state != CONN_AUTHED;
	/* a peer must not hold memory without authenticating: UCX assembles
	 * an incoming message before we see its size, so unauthenticated
	 * connections are few and short-lived (srv_sweep) */
	if (!sh->draining && unauth < SRV_MAX_UNAUTH)
		c = calloc(1, sizeof(*c));
	if (c == NULL) { /* stopping, too many strangers, no memory */
		net_ep_close(ep);
		return;
	}
	c->sh = sh;
	c->ep = ep;
	c->tenant = -1;
	c->t_open = clock_now_ns();
	c->next = sh->conns;
	sh->conns = c;
	net_ep_set_user(ep, c);
	srv_metrics_conn(sh->m, 1);
}

static void
on_msg(void *arg, struct net_ep *ep, const uint8_t *buf, size_t len,
       struct net_data *d)
{
	struct srv_conn *c = net_ep_user(ep);

	(void)arg;
	if (c != NULL && !c->dead)
		srv_dispatch(c, buf, len, d);
}

static void
on_err(void *arg, struct net_ep *ep, int err)
{
	struct srv_conn *c = net_ep_user(ep);

	(void)arg;
	if (c == NULL)
		return;
	log_info("shard", "connection of tenant %s lost: %s",
		 c->tenant_name[0] ? c->tenant_name : "-", gpc_strerror(err));
	c->dead = true; /* the net layer closes (and frees) the endpoint */
	c->ep = NULL;
	net_ep_set_user(ep, NULL);
	c->inflight++; /* ending PUTs must not free c under us */
	srv_conn_puts_fail(c);
	c->inflight--;
	if (c->inflight == 0)
		conn_free(c);
}

/* This shard's window of every device, as an I/O context. */
static int
shard_io(struct srv_shard *sh, struct store_io **out)
{
	struct srv *s = sh->srv;
	const char *paths[64];
	struct store_io_cfg cfg = { .ndev = s->cfg.ndev, .paths = paths,
				    .create = true,
				    .create_size = s->cfg.device_size };
	struct store_io *io;
	int rc;

	for (unsigned i = 0; i < s->cfg.ndev; i++)
		paths[i] = s->cfg.devices[i];
	rc = store_io_uring_open(&cfg, &io);
	if (rc == -ENOSYS || rc == -EPERM) {
		log_warn("shard", "io_uring unavailable (%s): plain pread/pwrite",
			 gpc_strerror(rc));
		rc = store_io_psync_open(&cfg, &io);
	}
	if (rc < 0)
		return rc;
	rc = store_io_region_open(io, (uint64_t)sh->idx * s->region_len,
				  s->region_len, out);
	if (rc < 0)
		store_io_close(io);
	return rc;
}

/* config.c's admission names (auto, all, seen, notail) are in this order */
_Static_assert(POLICY_AUTO == 0 && POLICY_ADMIT_ALL == 1 &&
		       POLICY_ADMIT_SEEN == 2 && POLICY_ADMIT_NOTAIL == 3 &&
		       POLICY_NMODES == 4,
	       "store.admission's index is an enum policy_mode");

/* Open the shard's store, formatting its regions on first start. */
static int
shard_store(struct srv_shard *sh)
{
	struct srv *s = sh->srv;
	uint64_t wb = (uint64_t)s->cfg.k * (s->cfg.chunk_size ? s->cfg.chunk_size
							       : (32u << 20) / s->cfg.k);
	struct store_opts o = { .wbuf_segs = (unsigned)(s->cfg.dram_buffer / wb),
				.policy = (enum policy_mode)s->cfg.admission,
				.keep_orphans = s->cfg.drop_orphans == 0,
				.seal_thread = s->cfg.seal_thread != 0,
				.writeback_ms = s->cfg.writeback_ms,
				.write_amp_max = s->cfg.write_amp_max };
	struct store_io *io;
	int rc;

	if (o.wbuf_segs < 2)
		o.wbuf_segs = 2;
	rc = shard_io(sh, &io);
	if (rc < 0)
		return rc;
	rc = store_open(io, &o, &sh->st);
	if (rc == -GPC_ECORRUPT) { /* no superblock anywhere: a new tier */
		struct store_format_opts fo = { .k = s->cfg.k, .m = s->cfg.m,
						.chunk_size = s->cfg.chunk_size };

		log_info("shard", "shard %u: formatting %u devices as %u+%u",
			 sh->idx, s->cfg.ndev, s->cfg.k, s->cfg.m);
		rc = store_format(io, &fo);
		if (rc == 0)
			rc = store_open(io, &o, &sh->st);
	}
	if (rc < 0) {
		log_err("shard", "shard %u: cannot open its store: %s", sh->idx,
			gpc_strerror(rc));
		store_io_close(io);
	}
	return rc;
}

/* Each tenant's quota, split evenly over the shards, as the quota of its
 * engine class; classes of tenants no longer configured have none. */
_Static_assert(SRV_CLASS_MAX == STORE_MAX_CLASSES - 1, "one class space");
static void
apply_quotas(struct srv_shard *sh)
{
	struct srv *s = sh->srv;
	const struct srv_config *c = atomic_load(&s->tenants);
	uint16_t cls[SRV_MAX_TENANTS];

	sh->tenants_gen = atomic_load(&s->tenants_gen);
	srv_tenant_classes(c, cls);
	for (unsigned k = 1; k < STORE_MAX_CLASSES; k++)
		store_set_quota(sh->st, k, 0);
	for (unsigned t = 0; t < c->ntenants; t++)
		if (c->tenants[t].name[0]) /* not a removed tenant's index */
			store_set_quota(sh->st, cls[t],
					c->tenants[t].quota_bytes / s->nsh);
}

static void
publish(struct srv_shard *sh, uint64_t now)
{	struct srv_store_snap snap;

	if (now - sh->last_publish < 100000000ull)
		return;
	sh->last_publish = now;
	memset(&snap, 0, sizeof(snap));
	store_get_stats(sh->st, &snap.stats);
	snap.dram = (struct srv_dram_snap){ rcache_bytes(sh->rc),
					    rcache_max(sh->rc),
					    rcache_hits(sh->rc),
					    rcache_loads(sh->rc) };
	for (unsigned i = 0; i < snap.stats.ndev && i < STORE_MAX_DEVS; i++)
		snap.dev_failed[i] = store_dev_health(sh->st, i) != 0;
	srv_metrics_publish_store(sh->m, &snap);
	srv_metrics_clock(sh->m, now / 1000000000ull);
	{
		const struct srv_config *c = atomic_load(&sh->srv->tenants);
		uint16_t cls[SRV_MAX_TENANTS];

		srv_tenant_classes(c, cls);
		for (unsigned t = 0; t < c->ntenants; t++)
			srv_metrics_tenant_usage(sh->m, t, c->tenants[t].name[0]
						 ? store_class_usage(sh->st, cls[t])
						 : 0);
	}
	if (atomic_load(&sh->srv->tenants_gen) != sh->tenants_gen)
		apply_quotas(sh);
}

/* Endpoint flushes of the drain not yet complete (this thread's). */
static _Thread_local unsigned drain_flushing;

static void
drain_flush_cb(void *arg, int rc)
{
	(void)arg, (void)rc;
	drain_flushing--;
}

/* Run the loop until no request is in flight or ns pass. */
static void
drain_wait(struct srv_shard *sh, uint64_t ns)
{
	uint64_t t0 = clock_now_ns();

	while (sh->inflight > 0 && clock_now_ns() - t0 < ns) {
		net_progress(sh->w);
		store_poll(sh->st, 0);
		srv_retry(sh);
	}
}

/*
 * SIGTERM: new transfers are answered BUSY and new connections refused
 * (sh->draining); finish what is in flight; if a peer does not let its
 * transfers finish in 10 s, drop every connection (their transfers fail,
 * the reservations are abandoned) and wait for the requests to unwind. Then
 * make sure the answers reached the clients, seal and flush, and go.
 */
static void
shard_drain(struct srv_shard *sh)
{
	uint64_t t0;

	sh->draining = true;
	drain_wait(sh, 10000000000ull);
	if (sh->inflight > 0) {
		log_warn("shard", "shard %u: %u requests still in flight after "
			 "10 s: dropping their connections", sh->idx,
			 sh->inflight);
		for (struct srv_conn *c = sh->conns, *n; c != NULL; c = n) {
			n = c->next;
			srv_conn_drop(c);
		}
		drain_wait(sh, 5000000000ull);
	}
	/*
	 * The answers just sent must reach their clients before the
	 * connections are closed: a forced close drops them, and their send
	 * operations never complete (leaked). Bounded: a peer that does not
	 * take them within 2 s loses them.
	 */
	for (struct srv_conn *c = sh->conns; c != NULL; c = c->next)
		if (!c->dead && c->ep != NULL &&
		    net_flush_nb(c->ep, drain_flush_cb, NULL) == 0)
			drain_flushing++;
	t0 = clock_now_ns();
	while (drain_flushing > 0 && clock_now_ns() - t0 < 2000000000ull)
		net_progress(sh->w);
	if (sh->inflight > 0) { /* buffers still in use: leak, never free */
		log_err("shard", "shard %u: %u requests never finished; exiting "
			"without sealing", sh->idx, sh->inflight);
		return;
	}
	store_close(sh->st); /* prefetches in flight end here too */
	sh->st = NULL;
	rcache_destroy(sh->rc);
	sh->rc = NULL;
	srv_rbufs_free();
	for (struct srv_conn *c = sh->conns, *n; c != NULL; c = n) {
		n = c->next;
		srv_conn_drop(c); /* no request left: freed now */
	}
}

static void *
shard_main(void *arg)
{
	struct srv_shard *sh = arg;
	struct srv *s = sh->srv;
	uint64_t spin, last_work = 0;
	unsigned nap = s->cfg.io_nap_us;
	int rc, efd;

	rc = shard_store(sh);
	if (rc == 0) /* a quarter of the write buffer's size, for prefetches */
		rc = rcache_create(s->cfg.dram_buffer / 4, &sh->rc);
	if (rc == 0)
		rc = net_worker_create(s->net, NET_AM_TO_SERVER, on_msg, on_err,
				       sh, &sh->w);
	if (rc == 0)
		net_worker_set_max_msg(sh->w, WIRE_HDR_SIZE + WIRE_MAX_BODY);
	if (rc == 0)
		rc = net_listen(sh->w, s->cfg.listen_addr,
				(uint16_t)(s->cfg.port + sh->idx), on_accept);
	sh->start_rc = rc;
	if (rc < 0) {
		log_err("shard", "shard %u: cannot listen on %s:%u: %s", sh->idx,
			s->cfg.listen_addr, s->cfg.port + sh->idx,
			gpc_strerror(rc));
		net_worker_destroy(sh->w);
		store_close(sh->st);
		rcache_destroy(sh->rc);
		atomic_store(&sh->ready, -1);
		return NULL;
	}
	apply_quotas(sh);
	store_set_event_cb(sh->st, srv_events_store_cb, sh);
	efd = s->cfg.io_nap_us > 0 ? store_event_fd(sh->st) : -1;
	atomic_store(&sh->ready, 1);
	spin = (uint64_t)s->cfg.poll_spin_us * 1000u;
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		unsigned n = net_progress(sh->w);
		uint64_t now;

		n += (unsigned)store_poll(sh->st, 0);
		srv_retry(sh);
		now = clock_now_ns(); /* once a round: the loop spins */
		srv_sweep(sh, now);
		srv_events_flush(sh);
		publish(sh, now);
		if (n > 0) {
			last_work = now;
			continue;
		}
		/*
		 * Engine work in flight (device I/O, the sealer; requests
		 * waiting for write-buffer room wait on it too): sleep on the
		 * store's event fd and UCX's together, so that either wakes
		 * the shard at once, rather than spinning (the CPU goes to
		 * io-wq workers doing zram's work, and to clients, where they
		 * share it). A backend without an event fd (psync): nap
		 * io_nap_us between polls; io_nap_us = 0: poll.
		 */
		if (store_pending(sh->st) > 0) {
			last_work = now;
			if (efd >= 0) {
				/* sleep until I/O completes, the sealer is done
				 * or a message comes; what completed before the
				 * drain is polled first */
				store_event_drain(sh->st);
				if (store_poll(sh->st, 0) == 0)
					net_wait_fd(sh->w, efd, 20);
			} else if (nap > 0) {
				net_wait_us(sh->w, nap);
			}
			continue;
		}
		if (sh->retry != NULL)
			continue;
		/* transfers in flight: their next step is likely near */
		if (sh->inflight > 0 && now - last_work < spin)
			continue;
		net_wait(sh->w, 50);
		last_work = clock_now_ns();
	}
	shard_drain(sh);
	net_worker_destroy(sh->w);
	return NULL;
}

int
srv_shard_start(struct srv *s, unsigned idx)
{
	struct srv_shard *sh = &s->sh[idx];

	sh->srv = s;
	sh->idx = idx;
	sh->m = srv_metrics_shard(s->metrics, idx);
	if (pthread_create(&sh->th, NULL, shard_main, sh) != 0)
		return -EAGAIN;
	while (atomic_load(&sh->ready) == 0)
		sched_yield();
	if (atomic_load(&sh->ready) < 0) { /* it gave up and returned */
		pthread_join(sh->th, NULL);
		return sh->start_rc;
	}
	return 0;
}

void
srv_shard_stop(struct srv_shard *sh)
{
	atomic_store(&sh->stop, true);
}

void
srv_shard_join(struct srv_shard *sh)
{
	srv_shard_stop(sh);
	pthread_join(sh->th, NULL);
}
