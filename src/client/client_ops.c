/*
 * client_ops.c - libgpucache's memory registration and batch operations.
 * A batch is split into parts, each one message to the shard of its keys
 * (a key's shard is le64(key[0..8]) % nshards, docs/protocol.md): a PUT or
 * GET part is one block, a key operation's part as many keys as the
 * message limits allow. The request completes when every part is
 * answered (and, for a GET, its bytes are in place).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bytes.h"
#include "client_int.h"

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
	if (rc < 0) {
		pthread_mutex_unlock(&c->mu);
		free(mr);
		return rc;
	}
	mr->addr = *addr;
	mr->len = len;
	mr->allocated = alloc;
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
	struct gpc_mr **pp;

	if (mr == NULL)
		return;
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

/*
 * Check block b and describe its memory as iov[] (room for WIRE_MAX_IOV);
 * returns the block's total length or a negative code. Every piece must
 * lie inside the registration it names: a wrong one is refused here,
 * before anything is sent.
 */
static long
blk_iov(const struct gpc_block *b, struct iovec *iov)
{
	uint64_t total = 0;

	if (b->key == NULL || b->iov == NULL || b->iovcnt == 0 ||
	    b->iovcnt > WIRE_MAX_IOV)
		return -EINVAL;
	for (unsigned i = 0; i < b->iovcnt; i++) {
		const struct gpc_iov *v = &b->iov[i];

		if (v->mr == NULL || v->addr == NULL ||
		    !wire_range_inside((uintptr_t)v->addr, v->len,
				       (uintptr_t)v->mr->addr, v->mr->len))
			return -EINVAL;
		if (v->len > WIRE_MAX_BLOCK)
			return -GPC_ETOOBIG;
		total += v->len;
		iov[i] = (struct iovec){ v->addr, v->len };
	}
	if (total == 0) /* the daemon would take it for a broken client */
		return -EINVAL;
	return total > WIRE_MAX_BLOCK ? -GPC_ETOOBIG : (long)total;
}

/*
 * A PUT block's pieces iov[0..n), total bytes, cut into pieces of at
 * most piece bytes (the daemon's put_piece; 0: as they are), in place:
 * iov has room for WIRE_MAX_IOV, and a block takes at most that many
 * (pieces grow to fit). Returns the new count.
 */
static unsigned
blk_split(struct iovec *iov, unsigned n, uint64_t total, uint64_t piece)
{
	struct iovec in[WIRE_MAX_IOV];
	unsigned cnt = 0;

	if (piece == 0 || n >= WIRE_MAX_IOV)
		return n;
	for (unsigned i = 0; i < n; i++)
		cnt += (unsigned)((iov[i].iov_len + piece - 1) / piece);
	if (cnt == n)
		return n;
	if (cnt > WIRE_MAX_IOV) /* sum of floor(len/piece) < 64 - n */
		piece = total / (WIRE_MAX_IOV - n) + 1;
	memcpy(in, iov, n * sizeof(*iov));
	cnt = 0;
	for (unsigned i = 0; i < n; i++)
		for (size_t off = 0; off < in[i].iov_len; off += piece)
			iov[cnt++] = (struct iovec){
				(uint8_t *)in[i].iov_base + off,
				in[i].iov_len - off < piece
					? in[i].iov_len - off
					: piece };
	return cnt;
}

/*
 * Send blocks idx[0..cnt) of a PUT or GET, all of shard s and checked
 * by blk_iov, as one message (cnt > 1 only to a daemon with
 * WIRE_FEAT_*_BATCH): ns, then each block's key and length (a GET: how
 * many bytes its memory takes); a PUT's bytes follow, block after
 * block. Caller holds c->mu.
 */
static int
xferv_send(struct gpc_client *c, struct gpc_req *r, uint64_t ns,
	   uint8_t flags, unsigned s, const unsigned *idx, unsigned cnt)
{
	struct cli_part *p = &r->parts[r->nparts];
	struct iovec one[WIRE_MAX_IOV], *iov = one;
	unsigned niov = 0;
	struct wire_wr w;
	int rc;

	p->idx = malloc(cnt * sizeof(*idx));
	if (cnt > 1)
		iov = malloc(cnt * WIRE_MAX_IOV * sizeof(*iov));
	if (p->idx == NULL || iov == NULL) {
		free(p->idx);
		p->idx = NULL;
		if (iov != one)
			free(iov);
		return -ENOMEM;
	}
	memcpy(p->idx, idx, cnt * sizeof(*idx));
	p->cnt = cnt;
	wire_wr_init(&w);
	wire_wr_u64(&w, ns);
	for (unsigned k = 0; k < cnt; k++) {
		struct gpc_block *b = &r->blocks[idx[k]];
		long len = blk_iov(b, iov + niov); /* checked by the caller */

		wire_wr_bytes(&w, b->key, WIRE_KEY_LEN);
		wire_wr_u64(&w, (uint64_t)len);
		if (r->op == WIRE_OP_PUT)
			niov += blk_split(iov + niov, b->iovcnt, (uint64_t)len,
					  c->put_piece);
	}
	rc = cli_send(c, r, s, flags, cnt, &w, niov ? iov : NULL, niov, p);
	wire_wr_fini(&w);
	if (iov != one)
		free(iov);
	if (rc < 0) {
		free(p->idx);
		p->idx = NULL;
	}
	return rc;
}

/*
 * Send block i of r (a PUT with its bytes as the data part, or a GET
 * saying how many bytes it can take) as one part. Caller holds c->mu.
 */
static int
blk_send(struct gpc_client *c, struct gpc_req *r, uint64_t ns, uint8_t flags,
	 unsigned i)
{
	struct iovec iov[WIRE_MAX_IOV];
	long total = blk_iov(&r->blocks[i], iov);

	if (total < 0) { /* this block fails; the others go on */
		r->blocks[i].status = (int)total;
		return 0;
	}
	return xferv_send(c, r, ns, flags, shard_of(c, r->blocks[i].key), &i,
			  1);
}

/* A PUT's or GET's blocks still to send, up to CLI_XFER_BATCH per
 * message to each shard. Caller holds c->mu. */
static int
xferv_batches(struct gpc_client *c, struct gpc_req *r, uint64_t ns,
	      uint8_t flags, unsigned *idx)
{
	struct iovec iov[WIRE_MAX_IOV];
	int rc = 0;

	for (unsigned s = 0; rc == 0 && s < c->nshards; s++) {
		unsigned cnt = 0;

		for (unsigned i = 0; rc == 0 && i < r->n; i++) {
			struct gpc_block *b = &r->blocks[i];
			long total;

			if (b->status != -GPC_EBUSY)
				continue;
			total = blk_iov(b, iov);
			if (total < 0) { /* this block fails; the others go on */
				b->status = (int)total;
				continue;
			}
			if (shard_of(c, b->key) != s)
				continue;
			idx[cnt++] = i;
			if (cnt == CLI_XFER_BATCH) {
				rc = xferv_send(c, r, ns, flags, s, idx, cnt);
				cnt = 0;
			}
		}
		if (rc == 0 && cnt > 0)
			rc = xferv_send(c, r, ns, flags, s, idx, cnt);
	}
	return rc;
}

/* Room a part keeps for one more key. */
#define PART_SLACK WIRE_KEY_LEN

/* Close the part being built: send it. */
static int
part_flush(struct gpc_client *c, struct gpc_req *r, unsigned s, uint8_t flags,
	   struct wire_wr *w, unsigned *idx, unsigned cnt)
{
	struct cli_part *p = &r->parts[r->nparts];
	int rc;

	if (cnt == 0)
		return 0;
	/* a LOOKUP's part with the chain's last key says so: that key is the
	 * chain's tail (the other parts' last keys are not) */
	if (r->op == WIRE_OP_LOOKUP && idx[cnt - 1] == r->n - 1)
		flags |= WIRE_F_CHAIN_END;
	p->idx = malloc(cnt * sizeof(*idx));
	if (p->idx == NULL)
		return -ENOMEM;
	memcpy(p->idx, idx, cnt * sizeof(*idx));
	p->cnt = cnt;
	rc = cli_send(c, r, s, flags, cnt, w, NULL, 0, p);
	if (rc < 0) {
		free(p->idx);
		p->idx = NULL;
	}
	return rc;
}

/*
 * Send a batch: PUT and GET as one part per block (each block's bytes
 * travel in its own message), only the blocks still marked BUSY (retries
 * send only those); key operations as one part per shard and message
 * limit. Caller holds c->mu.
 */
static int
batch_send(struct gpc_client *c, struct gpc_req *r, uint64_t ns,
	   const uint8_t *keys, uint8_t flags, unsigned *idx)
{
	int rc = 0;

	if (r->blocks && (c->feat & (r->op == WIRE_OP_GET
					     ? WIRE_FEAT_GET_BATCH
					     : WIRE_FEAT_PUT_BATCH)))
		return xferv_batches(c, r, ns, flags, idx);
	if (r->blocks) {
		for (unsigned i = 0; rc == 0 && i < r->n; i++)
			if (r->blocks[i].status == -GPC_EBUSY)
				rc = blk_send(c, r, ns, flags, i);
		return rc;
	}
	for (unsigned s = 0; rc == 0 && s < c->nshards; s++) {
		struct wire_wr w;
		unsigned cnt = 0;

		wire_wr_init(&w);
		wire_wr_u64(&w, ns);
		for (unsigned i = 0; rc == 0 && i < r->n; i++) {
			const uint8_t *k = keys + (size_t)i * WIRE_KEY_LEN;

			if (shard_of(c, k) != s)
				continue;
			wire_wr_bytes(&w, k, WIRE_KEY_LEN);
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
       uint64_t aux, struct gpc_req **out)
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
	r->put_aux = aux;
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

static uint8_t
put_wire_flags(unsigned flags)
{
	return (uint8_t)(((flags & GPC_PUT_DURABLE) ? WIRE_F_DURABLE : 0) |
			 ((flags & GPC_PUT_IF_ABSENT) ? WIRE_F_IF_ABSENT : 0));
}

_Static_assert(GPC_PRIO_LOW == WIRE_PRIO_LOW &&
		       GPC_PRIO_HIGH == WIRE_PRIO_HIGH &&
		       GPC_MAX_TTL == WIRE_MAX_TTL &&
		       GPC_MAX_WEIGHT == WIRE_MAX_WEIGHT,
	       "put options and weights map onto the wire as they are");

/*
 * A caller's put options (any size it was built with: fields past its
 * struct_size are zero) as wire flags and aux. -EINVAL for a value out
 * of range or a struct too short to hold flags.
 */
static int
put_opts_wire(const struct gpc_put_opts *o, uint8_t *flags, uint64_t *aux)
{
	struct gpc_put_opts p = { 0 };

	if (o == NULL || o->struct_size < offsetof(struct gpc_put_opts, ttl_s))
		return -EINVAL;
	memcpy(&p, o, o->struct_size < sizeof(p) ? o->struct_size : sizeof(p));
	if (p.ttl_s > GPC_MAX_TTL || p.priority > GPC_PRIO_HIGH)
		return -EINVAL;
	*flags = (uint8_t)(put_wire_flags(p.flags) |
			   (p.priority == GPC_PRIO_LOW ? WIRE_F_PRIO_LOW : 0) |
			   (p.priority == GPC_PRIO_HIGH ? WIRE_F_PRIO_HIGH : 0));
	*aux = p.ttl_s;
	return 0;
}

int
gpc_put_submit(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
	       unsigned n, unsigned flags, struct gpc_req **req)
{
	mark_all_busy(b, n);
	return submit(c, WIRE_OP_PUT, ns, b, NULL, NULL, n,
		      put_wire_flags(flags), 0, req);
}

int
gpc_put_submit_ex(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
		  unsigned n, const struct gpc_put_opts *o,
		  struct gpc_req **req)
{
	uint64_t aux;
	uint8_t fl;
	int rc = put_opts_wire(o, &fl, &aux);

	if (rc < 0)
		return rc;
	mark_all_busy(b, n);
	return submit(c, WIRE_OP_PUT, ns, b, NULL, NULL, n, fl, aux, req);
}

int
gpc_get_submit(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
	       unsigned n, struct gpc_req **req)
{
	mark_all_busy(b, n);
	return submit(c, WIRE_OP_GET, ns, b, NULL, NULL, n, 0, 0, req);
}

/* Blocking PUT/GET: blocks answered BUSY are sent again, with backoff. */
static int
xfer(struct gpc_client *c, uint8_t op, uint64_t ns, struct gpc_block *b,
     unsigned n, uint8_t flags, uint64_t aux)
{
	int rc = 0;

	mark_all_busy(b, n);
	for (unsigned tries = 0; tries < 1000; tries++) {
		struct gpc_req *r;
		bool busy = false;

		rc = submit(c, op, ns, b, NULL, NULL, n, flags, aux, &r);
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
		    put_wire_flags(flags), 0);
}

int
gpc_put_ex(struct gpc_client *c, uint64_t ns, struct gpc_block *b,
	   unsigned n, const struct gpc_put_opts *o)
{
	uint64_t aux;
	uint8_t fl;
	int rc = put_opts_wire(o, &fl, &aux);

	return rc < 0 ? rc : xfer(c, WIRE_OP_PUT, ns, b, n, fl, aux);
}

int
gpc_get(struct gpc_client *c, uint64_t ns, struct gpc_block *b, unsigned n)
{
	return xfer(c, WIRE_OP_GET, ns, b, n, 0, 0);
}

static int
keys_op(struct gpc_client *c, uint8_t op, uint64_t ns, const uint8_t *keys,
	unsigned n, uint8_t flags, int *status, struct gpc_req **out)
{
	struct gpc_req *r;
	int rc = submit(c, op, ns, NULL, keys, status, n, flags, 0, &r);

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

/* A message of ns (and *v, if given) to every shard in turn, each
 * answered before the next; stops at the first that fails. */
static int
each_shard(struct gpc_client *c, uint8_t op, uint64_t ns, const uint64_t *v)
{
	uint64_t lim = (uint64_t)c->timeout_ms * 1000000ull;
	int rc = 0;

	for (unsigned s = 0; rc == 0 && s < c->nshards; s++) {
		struct wire_wr w;

		wire_wr_init(&w);
		wire_wr_u64(&w, ns);
		if (v != NULL)
			wire_wr_u64(&w, *v);
		rc = w.err ? w.err : cli_call(c, s, op, &w, lim, NULL);
		wire_wr_fini(&w);
	}
	return rc;
}

int
gpc_subscribe(struct gpc_client *c, uint64_t ns)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (c->evq == NULL)
		c->evq = calloc(CLI_EVQ, sizeof(*c->evq));
	if (c->evq == NULL)
		rc = -ENOMEM;
	pthread_mutex_unlock(&c->mu);
	return rc < 0 ? rc : each_shard(c, WIRE_OP_SUBSCRIBE, ns, NULL);
}

int
gpc_confirm_used(struct gpc_client *c, uint64_t ns, uint64_t nblocks)
{
	uint64_t lim = (uint64_t)c->timeout_ms * 1000000ull;
	unsigned s = (unsigned)(ns % c->nshards); /* any shard counts it */
	int rc = 0;

	while (rc == 0 && nblocks > 0) {
		uint64_t n = nblocks < WIRE_MAX_USED ? nblocks : WIRE_MAX_USED;
		struct wire_wr w;

		wire_wr_init(&w);
		wire_wr_u64(&w, ns);
		wire_wr_u64(&w, n);
		rc = w.err ? w.err : cli_call(c, s, WIRE_OP_USED, &w, lim, NULL);
		wire_wr_fini(&w);
		nblocks -= n;
	}
	return rc;
}

int
gpc_set_weight(struct gpc_client *c, uint64_t ns, unsigned weight)
{
	uint64_t w = weight;

	if (weight > GPC_MAX_WEIGHT)
		return -EINVAL;
	/* a namespace's blocks are on every shard */
	return each_shard(c, WIRE_OP_WEIGHT, ns, &w);
}

int
gpc_events_poll(struct gpc_client *c, struct gpc_event *ev, unsigned max,
		unsigned *n, uint64_t *lost)
{
	unsigned k = 0;

	if (ev == NULL && max > 0)
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	while (cli_progress(c) != 0) /* take what has arrived */
		;
	for (; k < max && c->ev_n > 0; k++) {
		ev[k] = c->evq[c->ev_head];
		c->ev_head = (c->ev_head + 1) % CLI_EVQ;
		c->ev_n--;
	}
	if (lost != NULL) {
		*lost = c->ev_lost;
		c->ev_lost = 0;
	}
	pthread_mutex_unlock(&c->mu);
	*n = k;
	return 0;
}

int
gpc_stat(struct gpc_client *c, struct gpc_stat *out)
{
	uint64_t lim = (uint64_t)c->timeout_ms * 1000000ull, v[8] = { 0 };
	struct gpc_stat st;
	size_t n;

	if (out == NULL || out->struct_size < sizeof(uint32_t))
		return -EINVAL;
	for (unsigned s = 0; s < c->nshards; s++) {
		struct wire_wr none;
		struct gpc_req *r;
		int rc;

		wire_wr_init(&none); /* STAT has an empty body */
		rc = cli_call(c, s, WIRE_OP_STAT, &none, lim, &r);
		wire_wr_fini(&none);
		if (rc < 0)
			return rc;
		if (r->reply_len < sizeof(v)) {
			gpc_req_free(r);
			return -GPC_ECORRUPT;
		}
		for (unsigned i = 0; i < 8; i++)
			v[i] += get_le64(r->reply + 8 * i);
		gpc_req_free(r);
	}
	st = (struct gpc_stat){ .struct_size = out->struct_size, .puts = v[0],
				.gets = v[1], .hits = v[2], .misses = v[3],
				.usage_bytes = v[4], .stored_bytes = v[5],
				.served_bytes = v[6], .copy_bytes = v[7] };
	n = out->struct_size < sizeof(st) ? out->struct_size : sizeof(st);
	memcpy(out, &st, n);
	return 0;
}
