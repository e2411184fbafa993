/*
 * net.h - the transport: a thin layer over UCX (ucp) shared by the server
 * and the client library. Control messages are active messages (a wire
 * header and body in one buffer); payload moves by RMA against memory the
 * peer registered.
 *
 * Threads: a net_ctx may be shared; a net_worker and everything created on
 * it belong to one thread (the server's shard, or the client under its
 * lock). Async contract as in io.h: if an *_nb call returns 0, its callback
 * runs exactly once, later, from net_progress on the worker's thread; if it
 * returns < 0 the callback never runs. UCX status codes are translated to
 * negative errno in exactly one place (net_status), and a retryable
 * condition stays retryable (-EAGAIN).
 */
#ifndef GPC_NET_NET_H
#define GPC_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_AM_TO_SERVER 0u
#define NET_AM_TO_CLIENT 1u

struct net_ctx;
struct net_worker;
struct net_ep;
struct net_mem;
struct net_rkey;

typedef void (*net_done_cb)(void *arg, int rc);
/* A complete message arrived on ep; buf is valid only during the call. */
typedef void (*net_msg_cb)(void *arg, struct net_ep *ep, const uint8_t *buf,
			   size_t len);
/* A peer connected to a listener (the ep is already created). */
typedef void (*net_accept_cb)(void *arg, struct net_ep *ep);
/* The peer of ep went away or the connection failed; ep is closed after. */
typedef void (*net_error_cb)(void *arg, struct net_ep *ep, int err);

int net_ctx_create(bool multi_thread, struct net_ctx **out);
void net_ctx_destroy(struct net_ctx *ctx);

int net_worker_create(struct net_ctx *ctx, unsigned am_id, net_msg_cb on_msg,
		      net_error_cb on_err, void *arg, struct net_worker **out);
void net_worker_destroy(struct net_worker *w);
/* Refuse incoming messages larger than max bytes (0: no limit): the
 * sender is dropped before anything is allocated for them. */
void net_worker_set_max_msg(struct net_worker *w, size_t max);
/* Make progress; returns how much happened (0: nothing). */
unsigned net_progress(struct net_worker *w);
/* Sleep until there may be work or timeout_ms passes. */
void net_wait(struct net_worker *w, int timeout_ms);

int net_listen(struct net_worker *w, const char *addr, uint16_t port,
	       net_accept_cb on_accept);
int net_connect(struct net_worker *w, const char *host, uint16_t port,
		struct net_ep **out);
/* Close: pending operations fail; no callback touches ep afterwards. */
void net_ep_close(struct net_ep *ep);
void net_ep_set_user(struct net_ep *ep, void *user);
void *net_ep_user(const struct net_ep *ep);

/*
 * Send hdr (hlen bytes) followed by body (blen) as one active message.
 * The bytes are copied; cb may be NULL.
 */
int net_send_nb(struct net_ep *ep, unsigned am_id, const void *hdr,
		size_t hlen, const void *body, size_t blen, net_done_cb cb,
		void *arg);
/* RMA: read len bytes at remote addr into local, or write local there. */
int net_get_nb(struct net_ep *ep, void *local, size_t len, uint64_t raddr,
	       struct net_rkey *rk, net_done_cb cb, void *arg);
int net_put_nb(struct net_ep *ep, const void *local, size_t len,
	       uint64_t raddr, struct net_rkey *rk, net_done_cb cb, void *arg);
/* Everything issued on ep so far is complete at the peer. */
int net_flush_nb(struct net_ep *ep, net_done_cb cb, void *arg);

/* Register memory (or let UCX allocate it when *addr is NULL). */
int net_mem_map(struct net_ctx *ctx, void **addr, size_t len,
		struct net_mem **out);
void net_mem_unmap(struct net_ctx *ctx, struct net_mem *m);
/* Packed remote key for m, to send to a peer; free with free(). */
int net_mem_pack(struct net_ctx *ctx, struct net_mem *m, void **buf,
		 size_t *len);
int net_rkey_unpack(struct net_ep *ep, const void *buf, size_t len,
		    struct net_rkey **out);
void net_rkey_destroy(struct net_rkey *rk);

#endif
