/*
 * client_ops.c - libgpucache's memory registration and batch operations.
 * A batch is split by shard (a key's shard is le64(key[0..8]) % nshards,
 * docs/protocol.md) and into parts that respect the protocol's batch and
 * message limits; each part is one message, and the request completes
 * when every part is answered.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bytes.h"
#include "client_int.h"

static int
reg_all(struct gpc_client *c, struct gpc_mr *mr)
{
	uint64_t lim = (uint64_t)c->timeout_ms * 1000000ull;
	void *rk;
	size_t rklen;
	struct wire_wr w;
	int rc;

	rc = net_mem_pack(c->ctx, mr->mem, &rk, &rklen);
	if (rc < 0)
		return rc;
	wire_wr_init(&w);
	wire_wr_u32(&w, mr->id);
	wire_wr_u32(&w, (uint32_t)rklen);
	wire_wr_u64(&w, (uint64_t)(uintptr_t)mr->addr);
	wire_wr_u64(&w, mr->len);
	wire_wr_bytes(&w, rk, rklen);
	free(rk);
	for (unsigned s = 0; rc == 0 && s < c->nshards; s++)
		rc = cli_call(c, s, WIRE_OP_REG, &w, lim, NULL);
	wire_wr_fini(&w);
	return rc;
}

static int
mem_map(struct gpc_client *c, void **addr, size_t len, bool alloc,
	struct gpc_mr **out)
{
	struct gpc_mr *mr;
	int rc;

	if (len == 0 || (!alloc && *addr == NULL))
		return -EINVAL;
	mr = calloc(1, sizeof(*mr));
	if (mr == NULL)
		return -ENOMEM;
	if (alloc)
		*addr = NULL;
	pthread_mutex_lock(&c->mu);
	rc = net_mem_map(c->ctx, addr, len, &mr->mem);
	mr->id = ++c->next_region;
	pthread_mutex_unlock(&c->mu);
	if (rc < 0) {
		free(mr);
		return rc;
	}
	mr->addr = *addr;
	mr->len = len;
	mr->allocated = alloc;
	rc = reg_all(c, mr);
	if (rc < 0) {
		net_mem_unmap(c->ctx, mr->mem);
		free(mr);
		return rc;
	}
	pthread_mutex_lock(&c->mu);
	mr->next = c->mrs;
	c->mrs = mr;
	pthread_mutex_unlock(&c->mu);
	*out = mr;
	return 0;
}

int
gpc_mem_register(struct gpc_client *c, void *addr, size_t len,
		 struct gpc_mr **out)
{
	return mem_map(c, &addr, len, false, out);
}

int
gpc_mem_alloc(struct gpc_client *c, size_t len, void **addr,
	      struct gpc_mr **out)
{
	return mem_map(c, addr, len, true, out);
}

void
gpc_mem_deregister(struct gpc_client *c, struct gpc_mr *mr)
{
	uint64_t lim = (uint64_t)c->timeout_ms * 1000000ull;
	struct gpc_mr **pp;
	struct wire_wr w;

	if (mr == NULL)
		return;
	wire_wr_init(&w);
	wire_wr_u32(&w, mr->id);
	for (unsigned s = 0; s < c->nshards; s++)
		if (c->sh[s].up)
			cli_call(c, s, WIRE_OP_DEREG, &w, lim, NULL);
	wire_wr_fini(&w);
	pthread_mutex_lock(&c->mu);
	for (pp = &c->mrs; *pp != NULL && *pp != mr; pp = &(*pp)->next)
		;
	if (*pp == mr)
		*pp = mr->next;
	net_mem_unmap(c->ctx, mr->mem);
	pthread_mutex_unlock(&c->mu);
	free(mr);
}

static unsigned
shard_of(const struct gpc_client *c, const uint8_t *key)
{
	return (unsigned)(get_le64(key) % c->nshards);
}

/* Encode one block into w; -EINVAL if an iov is not inside its mr. */
static int
put_block(struct wire_wr *w, const struct gpc_block *b)
{
	uint64_t total = 0;

	if (b->key == NULL || b->iovcnt == 0 || b->iovcnt > WIRE_MAX_IOV)
		return -EINVAL;
	for (unsigned i = 0; i < b->iovcnt; i++) {
		if (b->iov[i].len > WIRE_MAX_BLOCK)
			return -GPC_ETOOBIG;
		total += b->iov[i].len;
	}
	if (total > WIRE_MAX_BLOCK)
		return -GPC_ETOOBIG; /* checked here: the server would drop us */
	wire_wr_bytes(w, b->key, WIRE_KEY_LEN);
	wire_wr_u32(w, b->iovcnt);
	wire_wr_u32(w, 0);
	for (unsigned i = 0; i < b->iovcnt; i++) {
		const struct gpc_iov *v = &b->iov[i];
		uintptr_t a = (uintptr_t)v->addr, base;

		if (v->mr == NULL || v->len == 0)
			return -EINVAL;
		base = (uintptr_t)v->mr->addr;
		if (a < base || a - base > v->mr->len ||
		    v->len > v->mr->len - (a - base))
			return -EINVAL;
		wire_wr_u32(w, v->mr->id);
		wire_wr_u32(w, 0);
		wire_wr_u64(w, a);
		wire_wr_u64(w, v->len);
	}
	return 0;
}

/* Room a part keeps for one more block at most (64 descriptors). */
#define PART_SLACK (WIRE_KEY_LEN + 8 + WIRE_MAX_IOV * WIRE_DESC_SIZE)

/* Close the part being built: send it. */
static int
part_flush(struct gpc_client *c, struct gpc_req *r, unsigned s, uint8_t flags,
	   struct wire_wr *w, unsigned *idx, unsigned cnt)
{
	struct cli_part *p = &r->parts[r->nparts];
	int rc;

	if (cnt == 0)
		return 0;
	p->idx = malloc(cnt * sizeof(*idx));
	if (p->idx == NULL)
		return -ENOMEM;
	memcpy(p->idx, idx, cnt * sizeof(*idx));
	p->cnt = cnt;
	rc = cli_send(c, r, s, flags, cnt, w, p);
	if (rc < 0) {
		free(p->idx);
		p->idx = NULL;
	}
	return rc;
}

/*
 * Build and send the parts of a batch. Items are blocks (PUT/GET) or keys
 * (the others); sel(i) says whether item i goes out (retries send only
 * the busy ones). Caller holds c->mu.
 */
static int
batch_send(struct gpc_client *c, struct gpc_req *r, uint64_t ns,
	   const uint8_t *keys, uint8_t flags, unsigned *idx)
{
	int rc = 0;

	for (unsigned s = 0; rc == 0 && s < c->nshards; s++) {
		struct wire_wr w;
		unsigned cnt = 0;

		wire_wr_init(&w);
		wire_wr_u64(&w, ns);
		for (unsigned i = 0; rc == 0 && i < r->n; i++) {
			const uint8_t *k = r->blocks ? r->blocks[i].key
						     : keys + (size_t)i * WIRE_KEY_LEN;

			if (k == NULL || shard_of(c, k) != s)
				continue;
			if (r->blocks && r->blocks[i].status != -GPC_EBUSY)
				continue; /* not selected (or invalid) */
			if (r->blocks) {
				size_t mark = w.len;

				rc = put_block(&w, &r->blocks[i]);
				if (rc < 0) { /* nothing of it goes out */
					w.len = mark;
					r->blocks[i].status = rc;
					rc = 0;
					continue;
				}
			} else {
				wire_wr_bytes(&w, k, WIRE_KEY_LEN);
			}
			idx[cnt++] = i;
			if (cnt == WIRE_MAX_BATCH ||
			    w.len + PART_SLACK > WIRE_MAX_BODY) {
				rc = part_flush(c, r, s, flags, &w, idx, cnt);
				wire_wr_fini(&w);
				wire_wr_init(&w);
				wire_wr_u64(&w, ns);
				cnt = 0;
			}
		}
		if (rc == 0)
			rc = part_flush(c, r, s, flags, &w, idx, cnt);
		wire_wr_fini(&w);
	}
	return rc;
}

static int
submit(struct gpc_client *c, uint8_t op, uint64_t ns, struct gpc_block *b,
       const uint8_t *keys, int *status, unsigned n, uint8_t flags,
       struct gpc_req **out)
{
	struct gpc_req *r = cli_req_new(c, op, n + c->nshards);
	unsigned *idx = malloc((n ? n : 1) * sizeof(*idx));
	int rc;

	if (r == NULL || idx == NULL || n == 0) {
		free(idx);
		gpc_req_free(r);
		return n == 0 ? -EINVAL : -ENOMEM;
	}
	r->blocks = b;
	r->status = status;
	r->n = n;
	pthread_mutex_lock(&c->mu);
	rc = batch_send(c, r, ns, keys, flags, idx);
	if (rc < 0)
		r->rc = rc; /* under the lock: another thread may progress r */
	cli_req_track(c, r);
	pthread_mutex_unlock(&c->mu);
	free(idx);
	if (rc < 0 && r->nparts == 0) {
		gpc_req_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

static void
mark_all_busy(struct gpc_block *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		b[i].status = -GPC_EBUSY; /* "to be sent" */
}

int
gpc_put_submit(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
	       unsigned n, unsigned flags, struct gpc_req **req)
{
	mark_all_busy(b, n);
	return submit(c, WIRE_OP_PUT, ns, b, NULL, NULL, n,
		      (flags & GPC_PUT_DURABLE) ? WIRE_F_DURABLE : 0, req);
}

int
gpc_get_submit(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
	       unsigned n, struct gpc_req **req)
{
	mark_all_busy(b, n);
	return submit(c, WIRE_OP_GET, ns, b, NULL, NULL, n, 0, req);
}

/* Blocking PUT/GET: blocks answered BUSY are sent again, with backoff. */
static int
xfer(struct gpc_client *c, uint8_t op, uint64_t ns, struct gpc_block *b,
     unsigned n, uint8_t flags)
{
	int rc = 0;

	mark_all_busy(b, n);
	for (unsigned tries = 0; tries < 1000; tries++) {
		struct gpc_req *r;
		bool busy = false;

		rc = submit(c, op, ns, b, NULL, NULL, n, flags, &r);
		if (rc < 0)
			return rc;
		rc = gpc_wait(c, r);
		gpc_req_free(r);
		if (rc < 0)
			return rc;
		for (unsigned i = 0; i < n; i++)
			busy |= b[i].status == -GPC_EBUSY;
		if (!busy)
			return 0;
		usleep(tries < 10 ? 100 : 1000);
	}
	return rc;
}

int
gpc_put(struct gpc_client *c, uint64_t ns, struct gpc_block *b, unsigned n,
	unsigned flags)
{
	return xfer(c, WIRE_OP_PUT, ns, b, n,
		    (flags & GPC_PUT_DURABLE) ? WIRE_F_DURABLE : 0);
}

int
gpc_get(struct gpc_client *c, uint64_t ns, struct gpc_block *b, unsigned n)
{
	return xfer(c, WIRE_OP_GET, ns, b, n, 0);
}

static int
keys_op(struct gpc_client *c, uint8_t op, uint64_t ns, const uint8_t *keys,
	unsigned n, uint8_t flags, int *status, struct gpc_req **out)
{
	struct gpc_req *r;
	int rc = submit(c, op, ns, NULL, keys, status, n, flags, &r);

	if (rc < 0)
		return rc;
	rc = gpc_wait(c, r);
	if (rc < 0 || out == NULL) {
		gpc_req_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int
gpc_lookup(struct gpc_client *c, uint64_t ns, const uint8_t *keys,
	   unsigned n, unsigned flags, unsigned *present)
{
	struct gpc_req *r;
	unsigned first = n;
	int rc = keys_op(c, WIRE_OP_LOOKUP, ns, keys, n,
			 (flags & GPC_LOOKUP_PREFETCH) ? WIRE_F_PREFETCH : 0,
			 NULL, &r);

	if (rc < 0)
		return rc;
	/* each shard answered for its own keys, in chain order: the chain
	 * ends at the earliest key some shard reports missing */
	for (unsigned i = 0; i < r->nparts; i++) {
		const struct cli_part *p = &r->parts[i];

		if (p->found < p->cnt && p->idx[p->found] < first)
			first = p->idx[p->found];
	}
	gpc_req_free(r);
	*present = first;
	return 0;
}

int
gpc_delete(struct gpc_client *c, uint64_t ns, const uint8_t *keys,
	   unsigned n, int *status)
{
	return keys_op(c, WIRE_OP_DELETE, ns, keys, n, 0, status, NULL);
}

int
gpc_pin(struct gpc_client *c, uint64_t ns, const uint8_t *keys, unsigned n,
	int pin, int *status)
{
	return keys_op(c, pin ? WIRE_OP_PIN : WIRE_OP_UNPIN, ns, keys, n, 0,
		       status, NULL);
}
