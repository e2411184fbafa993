/*
 * events.c - KV events for subscribers: a router (the way vLLM and Dynamo
 * publish theirs) subscribes a connection to some of its tenant's
 * namespaces, and learns which blocks this shard stored and which left it
 * (evicted, deleted), so it can route requests to the node that holds
 * their prefix. docs/protocol.md ("KV events") is the client's view.
 *
 * Owns each subscribed connection's event queue (struct srv_evq): up to
 * WIRE_MAX_SUBS namespaces, a batch of records being filled, and how many
 * EVENT messages are on their way. The store calls srv_events_store_cb
 * from inside the operation that stored or dropped a block; records go
 * into the batch of every subscription of that (tenant-folded) namespace,
 * and a full batch, or what is there at the end of a loop round
 * (srv_events_flush), is sent as one EVENT message. A subscriber that does
 * not keep up (SRV_EV_INFLIGHT messages unsent) loses events, counted in
 * the next EVENT's aux: memory stays bounded whatever a client does, and
 * a router that sees a loss resynchronizes.
 *
 * Shard thread only. The queue outlives its connection while EVENT
 * messages are in flight (their completions hold it), so a send
 * completion never touches a freed connection. Calls only the net layer:
 * shard.c and ops.c call in, nothing here calls them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "server.h"

#define SRV_EV_BATCH 64u    /* records per EVENT message */
#define SRV_EV_INFLIGHT 8u  /* EVENT messages a slow subscriber may owe */

struct srv_evq {
	struct srv_conn *c; /* NULL once the connection is gone */
	struct {
		uint64_t client_ns, ns; /* as subscribed; tenant-folded */
	} subs[WIRE_MAX_SUBS];
	unsigned nsubs, nev, sending;
	uint64_t lost;
	uint8_t buf[SRV_EV_BATCH * WIRE_EV_SIZE];
};

int
srv_events_subscribe(struct srv_conn *c, uint64_t client_ns, uint64_t ns)
{
	struct srv_evq *q = c->evq;

	if (q == NULL) {
		q = calloc(1, sizeof(*q));
		if (q == NULL)
			return -ENOMEM;
		q->c = c;
		c->evq = q;
		c->sh->nsubscribed++;
	}
	for (unsigned i = 0; i < q->nsubs; i++)
		if (q->subs[i].ns == ns)
			return 0;
	if (q->nsubs == WIRE_MAX_SUBS)
		return -ENOSPC;
	q->subs[q->nsubs].client_ns = client_ns;
	q->subs[q->nsubs].ns = ns;
	q->nsubs++;
	return 0;
}

static void
evq_put(struct srv_evq *q)
{
	if (q->c == NULL && q->sending == 0)
		free(q);
}

void
srv_events_conn_gone(struct srv_conn *c)
{
	struct srv_evq *q = c->evq;

	if (q == NULL)
		return;
	c->evq = NULL;
	c->sh->nsubscribed--;
	q->c = NULL;
	evq_put(q);
}

static void
ev_sent(void *arg, int rc)
{
	struct srv_evq *q = arg;

	(void)rc; /* a failed send is a gone subscriber */
	q->sending--;
	evq_put(q);
}

/* Send the batch (or, with none, just a loss count) as one EVENT. */
static void
evq_send(struct srv_evq *q)
{
	struct srv_conn *c = q->c;
	uint8_t hb[WIRE_HDR_SIZE];
	size_t blen = (size_t)q->nev * WIRE_EV_SIZE;
	struct wire_hdr h = { .opcode = WIRE_OP_EVENT | WIRE_OP_RESP,
			      .body_len = (uint32_t)blen, .count = q->nev,
			      .shard = c->sh->idx, .aux = q->lost };

	if (q->nev == 0 && q->lost == 0)
		return;
	if (c->dead || q->sending >= SRV_EV_INFLIGHT) {
		q->lost += q->nev; /* the subscriber does not keep up */
		q->nev = 0;
		return;
	}
	h.body_crc = wire_body_crc(q->buf, blen);
	wire_hdr_encode(&h, hb);
	q->sending++;
	if (net_send_nb(c->ep, NET_AM_TO_CLIENT, hb, sizeof(hb), q->buf, blen,
			ev_sent, q) < 0) {
		q->sending--;
		q->lost += q->nev;
	} else {
		q->lost = 0;
	}
	q->nev = 0;
}

void
srv_events_store_cb(void *arg, int ev, uint64_t ns, const uint8_t *key)
{
	struct srv_shard *sh = arg;

	if (sh->nsubscribed == 0)
		return;
	for (struct srv_conn *c = sh->conns; c != NULL; c = c->next) {
		struct srv_evq *q = c->evq;

		if (q == NULL || c->dead)
			continue;
		for (unsigned i = 0; i < q->nsubs; i++) {
			struct wire_ev e = {
				.type = ev == STORE_EV_STORED ? WIRE_EV_STORED
							      : WIRE_EV_REMOVED,
				.ns = q->subs[i].client_ns,
			};

			if (q->subs[i].ns != ns)
				continue;
			memcpy(e.key, key, WIRE_KEY_LEN);
			wire_ev_encode(&e, q->buf + (size_t)q->nev * WIRE_EV_SIZE);
			if (++q->nev == SRV_EV_BATCH)
				evq_send(q);
		}
	}
}

void
srv_events_flush(struct srv_shard *sh)
{
	if (sh->nsubscribed == 0)
		return;
	for (struct srv_conn *c = sh->conns; c != NULL; c = c->next)
		if (c->evq != NULL)
			evq_send(c->evq);
}
