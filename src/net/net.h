/*
 * net.h - the transport: a thin layer over UCX (ucp) shared by the server
 * and the client library. Control messages are active messages (a wire
 * header and body in one buffer). A block's payload travels as the data
 * part of an active message, always by UCX rendezvous: the receiver is
 * told the length first and says where the bytes go (net_data_recv_nb),
 * and UCX moves them there (RDMA, CMA or the socket) without a copy of
 * ours. The daemon's context has no RMA feature at all, so no peer can
 * read or write its memory by UCX RMA (docs/protocol.md, Trust).
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
#include <sys/uio.h>

#define NET_AM_TO_SERVER 0u
#define NET_AM_TO_CLIENT 1u

struct net_ctx;
struct net_worker;
struct net_ep;
struct net_mem;
struct net_rkey;
struct net_data;

typedef void (*net_done_cb)(void *arg, int rc);
/*
 * A complete message arrived on ep; buf is valid only during the call.
 * d is NULL, or the message's data part (sent by net_send_data_nb): the
 * callee receives it with net_data_recv_nb during the call, or keeps it
 * with net_data_keep to receive or drop later; one it leaves alone is
 * dropped when the call returns (the sender's send still completes).
 */
typedef void (*net_msg_cb)(void *arg, struct net_ep *ep, const uint8_t *buf,
			   size_t len, struct net_data *d);
/* A peer connected to a listener (the ep is already created). */
typedef void (*net_accept_cb)(void *arg, struct net_ep *ep);
/* The peer of ep went away or the connection failed; ep is closed after. */
typedef void (*net_error_cb)(void *arg, struct net_ep *ep, int err);

/* NET_CTX_RMA: the context may issue RMA (net_get_nb and the like); it
 * then also serves RMA (UCX's emulation over tcp: to any peer, at any
 * address), so the daemon never sets it. */
#define NET_CTX_RMA 0x1u
/* NET_CTX_PRIVATE: data parts are always received as UCX iovecs, for
 * which UCX puts no key to our memory on the wire (the daemon sets it). */
#define NET_CTX_PRIVATE 0x2u
/*
 * How a private context sends data parts. Contiguous, UCX 1.13 writes
 * them into the receiver's buffer with the put scheme, over the lane
 * UCX chose for RMA; as a one-element UCX iovec, it sends them in
 * fragments over its active-message lane instead. With peer error
 * handling the RMA lane between two processes of one host is a socket
 * while the message lane is shared memory, and the fragments were
 * 1.4-2x faster; over sockets alone they were faster only for small
 * blocks; on an RDMA NIC the zero-copy write is the one to keep.
 * NET_CTX_SEND_IOV: always an iovec. NET_CTX_SEND_AUTO: per endpoint,
 * from its lanes (net_iov_max_for). Neither: contiguous.
 */
#define NET_CTX_SEND_IOV 0x4u
#define NET_CTX_SEND_AUTO 0x8u
/* Largest data part to send as an iovec on an endpoint whose
 * ucp_ep_print_info text is info: unlimited where its active-message
 * lane is shared memory, NET_IOV_MAX_SOCKET where its RMA lane is tcp,
 * else (an RDMA lane, or text not understood) 0. */
#define NET_IOV_MAX_SOCKET (128u << 10)
size_t net_iov_max_for(const char *info);
/* net_iov_max_for of a UCX endpoint (a ucp_ep_h), from its lanes as
 * ucp_ep_print_info prints them; 0 if they cannot be read. */
size_t net_iov_max_ucp(void *ucp_ep);
int net_ctx_create(bool multi_thread, unsigned flags, struct net_ctx **out);
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
/* The same with a timeout in microseconds (a short nap between polls). */
void net_wait_us(struct net_worker *w, unsigned timeout_us);
/* Like net_wait, and also until fd (another event source: the store's
 * event fd) becomes readable. */
void net_wait_fd(struct net_worker *w, int fd, int timeout_ms);
/*
 * net_wait in two halves, for a worker that several threads drive under
 * their own lock. net_arm, with the lock held like every other call on
 * the worker: 1 when nothing is pending and the worker's event fd will
 * signal what arrives next; 0 when something is pending (progress
 * again); negative when the worker cannot sleep (no event fd, or UCX
 * refused): poll instead. net_sleep, which may run without the lock,
 * then sleeps until the fd signals or timeout_us passes. Only one thread
 * may be between the two at a time. Another thread's net_progress can
 * take the arrival the fd would have signalled (UCX's tcp transport
 * polls its sockets edge-triggered): whoever progresses while a thread
 * sleeps must net_signal the worker, which any thread may call.
 */
int net_arm(struct net_worker *w);
void net_sleep(struct net_worker *w, unsigned timeout_us);
void net_signal(struct net_worker *w);

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
/*
 * Send msg (mlen bytes, copied) with data[0..dlen) as its data part, by
 * rendezvous. The data is not copied: it must stay put until cb runs.
 */
int net_send_data_nb(struct net_ep *ep, unsigned am_id, const void *msg,
		     size_t mlen, const void *data, size_t dlen,
		     net_done_cb cb, void *arg);
/* Whether ep sends a data part of len bytes as a UCX iovec
 * (NET_CTX_SEND_*): then net_send_datav_nb sends several pieces as one. */
bool net_ep_sends_iov(struct net_ep *ep, size_t len);
/* net_send_data_nb with iov[0..niov) as the data part, one after
 * another, sent as a UCX iovec (whatever net_ep_sends_iov says). */
int net_send_datav_nb(struct net_ep *ep, unsigned am_id, const void *msg,
		      size_t mlen, const struct iovec *iov, unsigned niov,
		      net_done_cb cb, void *arg);
/* Bytes in a message's data part; whether it came by rendezvous (not
 * inline in the message, which the daemon refuses for block data). */
size_t net_data_len(const struct net_data *d);
bool net_data_rndv(const struct net_data *d);
/* Keep d past the message callback (rendezvous data only): returns the
 * handle to use from now on, or NULL. */
struct net_data *net_data_keep(struct net_data *d);
/* Receive d's bytes into iov (their total must be at least d's length);
 * d is used up either way. Inline data is copied in. */
int net_data_recv_nb(struct net_data *d, const struct iovec *iov,
		     unsigned niov, net_done_cb cb, void *arg);
/* Let go of a kept d without receiving it. */
void net_data_drop(struct net_data *d);
/*
 * The bytes [off, off + len) of the buffer that iov[0..n) describes, as
 * at most max pieces in out. Returns their count, or -1 if the range is
 * not inside or needs more pieces.
 */
int net_iov_slice(const struct iovec *iov, unsigned n, size_t off,
		  size_t len, struct iovec *out, unsigned max);

/* RMA (NET_CTX_RMA contexts): read len bytes at remote addr into local, or write local there. */
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
