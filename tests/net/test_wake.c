/*
 * test_wake.c - the net layer's sleep contract (net_arm, net_sleep,
 * net_signal) that libgpucache's waiting threads rely on, in one process:
 * a server worker and a client worker connected over loopback.
 *
 * The hazard: a thread arms the client worker and is about to sleep on
 * its event fd when another thread's net_progress takes the message that
 * arrived meanwhile. UCX's tcp transport polls its sockets edge-triggered,
 * so the fd then stays silent and the sleeper would sleep its whole
 * timeout. libgpucache's cure is that whoever progresses while a thread
 * sleeps calls net_signal (cli_wake). Per trial: arm, the server sends,
 * the message lands, another progress takes it, net_signal, then
 * net_sleep(100 ms) must return at once. The same without the signal is
 * printed, not checked (it is UCX's behaviour, not ours).
 *
 * argv[1] (gpucached) is not used. Exit 0 pass, 1 fail, 77 skip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "test.h"

static struct net_ep *srv_ep;
static unsigned got;

static void
on_accept(void *arg, struct net_ep *ep)
{
	(void)arg;
	srv_ep = ep;
}

static void
srv_msg(void *arg, struct net_ep *ep, const uint8_t *buf, size_t len,
	struct net_data *d)
{
	(void)arg, (void)ep, (void)buf, (void)len, (void)d;
}

static void
cli_msg(void *arg, struct net_ep *ep, const uint8_t *buf, size_t len,
	struct net_data *d)
{
	(void)arg, (void)ep, (void)buf, (void)len, (void)d;
	got++;
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
settle(struct net_worker *sw, struct net_worker *cw)
{
	for (int i = 0; i < 1000; i++) {
		net_progress(sw);
		net_progress(cw);
	}
	while (net_progress(cw) != 0)
		;
}

/*
 * One trial: the client is armed, a message arrives and another
 * progress takes it; then (with signal) net_signal; how long net_sleep
 * sleeps, in us, or UINT64_MAX if the trial did not go that way.
 */
static uint64_t
trial(struct net_worker *sw, struct net_worker *cw, bool signal)
{
	unsigned g0;
	uint64_t t0;
	int armed = 0;

	for (int i = 0; i < 20 && armed != 1; i++) { /* 0: progress again */
		settle(sw, cw);
		armed = net_arm(cw);
	}
	if (armed != 1)
		return UINT64_MAX;
	REQUIRE(net_send_nb(srv_ep, NET_AM_TO_CLIENT, "answer", 6, NULL, 0,
			    NULL, NULL) == 0);
	for (int i = 0; i < 50; i++)
		net_progress(sw);
	usleep(2000); /* in the client's socket now */
	g0 = got;
	for (int i = 0; i < 1000 && got == g0; i++)
		net_progress(cw); /* "another thread" */
	if (got == g0)
		return UINT64_MAX;
	if (signal)
		net_signal(cw);
	t0 = now_us();
	net_sleep(cw, 100000);
	return now_us() - t0;
}

int
main(void)
{
	enum { TRIALS = 10 };
	struct net_ctx *ctx;
	struct net_worker *sw, *cw;
	struct net_ep *cep;
	uint16_t port = 0;
	unsigned lost = 0, ran = 0, slow = 0, sran = 0;

	if (net_ctx_create(false, 0, &ctx) < 0)
		return 77;
	REQUIRE(net_worker_create(ctx, NET_AM_TO_SERVER, srv_msg, NULL, NULL,
				  &sw) == 0);
	REQUIRE(net_worker_create(ctx, NET_AM_TO_CLIENT, cli_msg, NULL, NULL,
				  &cw) == 0);
	/* a free port: one of 10, as nettest.h's daemons (another test's
	 * connection may hold one from the ephemeral range) */
	for (unsigned i = 0; i < 10 && port == 0; i++) {
		port = (uint16_t)(20000 + ((unsigned)getpid() + i * 7919u) %
					  20000u);
		if (net_listen(sw, "127.0.0.1", port, on_accept) != 0)
			port = 0;
	}
	REQUIRE(port != 0);
	REQUIRE(net_connect(cw, "127.0.0.1", port, &cep) == 0);
	REQUIRE(net_send_nb(cep, NET_AM_TO_SERVER, "hi", 2, NULL, 0, NULL,
			    NULL) == 0);
	for (uint64_t t0 = now_us(); srv_ep == NULL && now_us() - t0 < 5000000;) {
		net_progress(sw);
		net_progress(cw);
	}
	REQUIRE(srv_ep != NULL);
	for (unsigned k = 0; k < TRIALS; k++) {
		uint64_t us = trial(sw, cw, false);

		if (us != UINT64_MAX) {
			ran++;
			lost += us >= 50000;
		}
		us = trial(sw, cw, true);
		if (us != UINT64_MAX) {
			sran++;
			slow += us >= 50000;
		}
	}
	printf("without net_signal: the sleeper slept out its 100 ms in %u of "
	       "%u trials\n", lost, ran);
	printf("with net_signal: %u of %u trials slept 50 ms or more\n", slow,
	       sran);
	CHECK(sran >= TRIALS / 2);
	CHECK_RC(slow, 0);
	net_ep_close(cep);
	settle(sw, cw);
	net_worker_destroy(cw);
	net_worker_destroy(sw);
	net_ctx_destroy(ctx);
	return test_summary("net_wake");
}
