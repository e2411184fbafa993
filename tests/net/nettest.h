/*
 * nettest.h - helpers of the network tests, which drive the real gpucached
 * (argv[1]) on loopback: a private temporary directory (mkdtemp under
 * /tmp, removed at exit; GPC_NET_KEEP=1 keeps it), a configuration file
 * with tenants alice and bob, starting the daemon on a free port and
 * waiting for "gpucached: ready", SIGTERM and kill -9, a watchdog that
 * kills the daemon and every child when a test hangs, child processes
 * (this executable again, exec'd, so no UCX state crosses a fork), and
 * libgpucache connect helpers.
 *
 * Exit 0 pass, 1 fail, 77 skip (only when UCX itself cannot start).
 * Everything here is static: each test is one translation unit.
 */
#ifndef GPC_TESTS_NETTEST_H
#define GPC_TESTS_NETTEST_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpucache/gpucache.h"
#include "net/net.h"
#include "test.h"

#define NT_ALICE_SECRET "alice-secret-0123456789abcdef"
#define NT_BOB_SECRET "bob-secret-fedcba9876543210xyz"
#define NT_MAX_CHILD 16

static char nt_dir[256];
static pid_t nt_owner;
static const char *nt_exe;      /* path of gpucached */
static const char *nt_self;     /* path of this test */
static char nt_conf[320];
static unsigned nt_dev_mb = 96; /* device_size of the config */
static const char *nt_server_extra = ""; /* more [server] lines */
static unsigned nt_chunk_mb = 4; /* chunk_size (a segment is 2 chunks) */
static uint16_t nt_port;
static _Atomic(pid_t) nt_daemon = -1;
static int nt_daemon_out = -1;  /* read end of the daemon's stdout */
static _Atomic(pid_t) nt_child[NT_MAX_CHILD];

static inline uint64_t
nt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void
nt_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static inline int
nt_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(p);
	return 0;
}

static inline void
nt_kill_all(void)
{
	for (unsigned i = 0; i < NT_MAX_CHILD; i++)
		if (nt_child[i] > 0)
			kill(nt_child[i], SIGKILL);
	if (nt_daemon > 0)
		kill(nt_daemon, SIGKILL);
}

static inline void
nt_cleanup(void)
{
	if (getpid() != nt_owner)
		return;
	nt_kill_all();
	for (unsigned i = 0; i < NT_MAX_CHILD; i++)
		if (nt_child[i] > 0)
			waitpid(nt_child[i], NULL, 0);
	if (nt_daemon > 0)
		waitpid(nt_daemon, NULL, 0);
	nt_daemon = -1;
	if (nt_dir[0] != '\0' && getenv("GPC_NET_KEEP") == NULL)
		nftw(nt_dir, nt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * The watchdog (SIGALRM), also run on SIGTERM/SIGINT (meson's timeout):
 * only async-signal-safe calls (kill, fork, exec).
 */
static void
nt_on_alarm(int sig)
{
	static const char msg[] = "FATAL: watchdog: test took too long\n";
	static const char msg2[] = "FATAL: terminated\n";
	pid_t p;

	if (write(2, sig == SIGALRM ? msg : msg2,
		  sig == SIGALRM ? sizeof(msg) - 1 : sizeof(msg2) - 1) < 0) {
		/* nothing to do */
	}
	nt_kill_all();
	if (getpid() == nt_owner && nt_dir[0] != '\0' &&
	    getenv("GPC_NET_KEEP") == NULL && (p = fork()) >= 0) {
		if (p == 0) {
			execlp("rm", "rm", "-rf", nt_dir, (char *)NULL);
			_exit(127);
		}
		waitpid(p, NULL, 0);
	}
	_exit(1);
}

/* Skip (77) when UCX cannot even start in this process. */
static inline void
nt_need_ucx(const char *name)
{
	struct net_ctx *ctx;
	int rc = net_ctx_create(false, 0, &ctx);

	if (rc < 0) {
		printf("%s: SKIP: UCX is unusable here (ucp_init: %s)\n", name,
		       gpc_strerror(rc));
		exit(77);
	}
	net_ctx_destroy(ctx);
}

/*
 * Common start of a test's main process: argv[1] is gpucached; make the
 * temp dir, arm the watchdog (seconds), check UCX.
 */
static inline void
nt_setup(const char *name, int argc, char **argv, unsigned watchdog_s)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-OF-GPUCACHED\n", argv[0]);
		exit(1);
	}
	nt_exe = argv[1];
	nt_self = argv[0];
	if (access(nt_exe, X_OK) != 0) {
		fprintf(stderr, "FATAL: %s: %s\n", nt_exe, strerror(errno));
		exit(1);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	nt_need_ucx(name);
	snprintf(nt_dir, sizeof(nt_dir), "/tmp/gpc-net-%s.XXXXXX", name);
	REQUIRE(mkdtemp(nt_dir) != NULL);
	nt_owner = getpid();
	atexit(nt_cleanup);
	signal(SIGALRM, nt_on_alarm);
	signal(SIGTERM, nt_on_alarm);
	signal(SIGINT, nt_on_alarm);
	alarm(watchdog_s);
	printf("%s: UCX_TLS=%s, dir %s\n", name,
	       getenv("UCX_TLS") ? getenv("UCX_TLS") : "(default)", nt_dir);
}

/* Write the configuration for port (shards 2 on port and port + 1). */
static inline void
nt_write_conf(uint16_t port)
{
	FILE *f;

	snprintf(nt_conf, sizeof(nt_conf), "%s/gpucached.conf", nt_dir);
	f = fopen(nt_conf, "w");
	REQUIRE(f != NULL);
	fprintf(f,
		"[server]\n"
		"listen = 127.0.0.1\n"
		"port = %u\n"
		"shards = 2\n"
		"metrics_port = 0\n"
		"log_level = %s\n"
		"data_dir = %s\n"
		"data_send = %s\n"
		"put_piece = %s\n"
		"%s"
		"[store]\n"
		"device = %s/dev0.img\n"
		"device = %s/dev1.img\n"
		"device = %s/dev2.img\n"
		"device_size = %uM\n"
		"k = 2\n"
		"m = 1\n"
		"chunk_size = %uM\n"
		"dram_buffer = 16M\n"
		/* the daemon's tests run the sealer thread; the store's unit
		 * and crash tests run both ways */
		"seal_thread = on\n"
		"[tenant alice]\n"
		"secret = " NT_ALICE_SECRET "\n"
		"[tenant bob]\n"
		"secret = " NT_BOB_SECRET "\n",
		port, getenv("GPC_NET_LOG") ? getenv("GPC_NET_LOG") : "warn", nt_dir,
		/* GET data as a UCX iovec (the default here, with no RDMA
		 * device) or contiguous (RDMA's): the tests run both */
		getenv("GPC_NET_DATA_SEND") ? getenv("GPC_NET_DATA_SEND")
					    : "auto",
		/* PUTs in pieces of 256K (the default), or as the test's
		 * variant says */
		getenv("GPC_NET_PUT_PIECE") ? getenv("GPC_NET_PUT_PIECE")
					    : "256K",
		nt_server_extra, nt_dir, nt_dir, nt_dir, nt_dev_mb, nt_chunk_mb);
	REQUIRE(fclose(f) == 0);
	nt_port = port;
}

/* Reap the daemon if it has exited: its wait status, or -1 if running. */
static inline int
nt_daemon_reap(void)
{
	int st;

	if (nt_daemon <= 0)
		return -2;
	if (waitpid(nt_daemon, &st, WNOHANG) != nt_daemon)
		return -1;
	nt_daemon = -1;
	if (nt_daemon_out >= 0)
		close(nt_daemon_out);
	nt_daemon_out = -1;
	return st;
}

/*
 * Start gpucached with the current config; wait (up to timeout_ms) for
 * "gpucached: ready" on its stdout. 0 when ready; -1 if it exited first
 * (e.g. its port is taken) or did not become ready.
 */
static inline int
nt_daemon_try_start(unsigned timeout_ms)
{
	int p[2];
	char buf[512];
	size_t got = 0;
	uint64_t t0 = nt_now_ms();
	pid_t pid;

	REQUIRE(nt_daemon <= 0);
	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* never outlive the test, even if it is killed */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		execl(nt_exe, nt_exe, "-c", nt_conf, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	nt_daemon = pid;
	nt_daemon_out = p[0];
	while (nt_now_ms() - t0 < timeout_ms) {
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		ssize_t n;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = read(p[0], buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break; /* it exited */
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "gpucached: ready\n") != NULL)
			return 0;
		if (got == sizeof(buf) - 1)
			got = 0;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(p[0]);
	nt_daemon = -1;
	nt_daemon_out = -1;
	return -1;
}

/* First start: a free port pair, trying up to 10 of them. */
static inline void
nt_daemon_start(void)
{
	for (unsigned t = 0; t < 10; t++) {
		uint16_t port = (uint16_t)(20000 + ((unsigned)getpid() +
						    t * 7919u) % 20000);

		nt_write_conf(port);
		if (nt_daemon_try_start(20000) == 0)
			return;
		fprintf(stderr, "gpucached did not start on port %u; "
			"trying another\n", port);
	}
	REQUIRE(!"gpucached did not start on any of 10 ports");
}

/* Restart with the same config (same port): retry a while. */
static inline void
nt_daemon_restart(void)
{
	for (unsigned t = 0; t < 20; t++) {
		if (nt_daemon_try_start(20000) == 0)
			return;
		nt_sleep_ms(250);
	}
	REQUIRE(!"gpucached did not restart");
}

/* Wait for the daemon to exit: its wait status, or -1 if it did not
 * within timeout_ms (then it is killed). */
static inline int
nt_daemon_wait(unsigned timeout_ms)
{
	uint64_t t0 = nt_now_ms();
	int st;

	REQUIRE(nt_daemon > 0);
	while (nt_now_ms() - t0 < timeout_ms) {
		if ((st = nt_daemon_reap()) >= 0)
			return st;
		nt_sleep_ms(10);
	}
	fprintf(stderr, "gpucached did not exit within %u ms: killed\n",
		timeout_ms);
	kill(nt_daemon, SIGKILL);
	waitpid(nt_daemon, NULL, 0);
	nt_daemon = -1;
	close(nt_daemon_out);
	nt_daemon_out = -1;
	return -1;
}

/* SIGTERM; the exit status (wait status), or -1 if it did not exit
 * within timeout_ms (then it is killed). */
static inline int
nt_daemon_stop(unsigned timeout_ms)
{
	REQUIRE(nt_daemon > 0);
	kill(nt_daemon, SIGTERM);
	return nt_daemon_wait(timeout_ms);
}

/* A wait status that is a clean exit 0; else say what it was. */
static inline bool
nt_exit0(int st, const char *what)
{
	if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return true;
	if (st < 0)
		fprintf(stderr, "%s: did not exit\n", what);
	else if (WIFEXITED(st))
		fprintf(stderr, "%s: exit status %d\n", what, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		fprintf(stderr, "%s: killed by signal %d\n", what,
			WTERMSIG(st));
	return false;
}

static inline void
nt_daemon_kill9(void)
{
	REQUIRE(nt_daemon > 0);
	kill(nt_daemon, SIGKILL);
	waitpid(nt_daemon, NULL, 0);
	nt_daemon = -1;
	close(nt_daemon_out);
	nt_daemon_out = -1;
}

/* Is the daemon still running? */
static inline bool
nt_daemon_alive(void)
{
	return nt_daemon > 0 && nt_daemon_reap() == -1;
}

/*
 * Run this executable again as a child: argv = self, gpucached, args.
 * outfd: NULL, or where the read end of a pipe from its fd 3 goes (not
 * stdout: UCX prints its warnings there);
 * infd: NULL, or where the write end of a pipe to its stdin goes;
 * errfile: NULL, or a file that gets its stderr.
 */
static inline pid_t
nt_spawn_io(unsigned slot, const char *const *args, int *outfd, int *infd,
	    const char *errfile)
{
	int p[2] = { -1, -1 }, q[2] = { -1, -1 };
	const char *av[16];
	unsigned n = 0;
	pid_t pid;

	REQUIRE(slot < NT_MAX_CHILD);
	av[n++] = nt_self;
	av[n++] = nt_exe;
	while (args[n - 2] != NULL && n < 15) {
		av[n] = args[n - 2];
		n++;
	}
	av[n] = NULL;
	if (outfd != NULL)
		REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	if (infd != NULL)
		REQUIRE(pipe2(q, O_CLOEXEC) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (outfd != NULL)
			dup2(p[1], 3);
		if (infd != NULL)
			dup2(q[0], 0);
		if (errfile != NULL) {
			int e = open(errfile, O_WRONLY | O_CREAT | O_TRUNC,
				     0600);

			if (e >= 0)
				dup2(e, 2);
		}
		execv("/proc/self/exe", (char *const *)av);
		execv(nt_self, (char *const *)av);
		_exit(127);
	}
	nt_child[slot] = pid;
	if (outfd != NULL) {
		close(p[1]);
		*outfd = p[0];
	}
	if (infd != NULL) {
		close(q[0]);
		*infd = q[1];
	}
	return pid;
}

static inline pid_t
nt_spawn(unsigned slot, const char *const *args)
{
	return nt_spawn_io(slot, args, NULL, NULL, NULL);
}

/* Wait for child slot up to timeout_ms; its wait status or -1 (killed). */
static inline int
nt_child_wait(unsigned slot, unsigned timeout_ms)
{
	uint64_t t0 = nt_now_ms();
	int st;

	while (nt_child[slot] > 0) {
		pid_t r = waitpid(nt_child[slot], &st, WNOHANG);

		if (r == nt_child[slot]) {
			nt_child[slot] = 0;
			return st;
		}
		if (nt_now_ms() - t0 > timeout_ms) {
			kill(nt_child[slot], SIGKILL);
			waitpid(nt_child[slot], NULL, 0);
			nt_child[slot] = 0;
			return -1;
		}
		nt_sleep_ms(5);
	}
	return -1;
}

static inline const char *
nt_secret(const char *tenant)
{
	return strcmp(tenant, "alice") == 0 ? NT_ALICE_SECRET
	       : strcmp(tenant, "bob") == 0 ? NT_BOB_SECRET
					    : "no-such-secret-0123456789";
}

static inline int
nt_connect_port(uint16_t port, const char *tenant, const char *secret,
		struct gpc_client **out)
{
	char url[64];
	struct gpc_connect_opts o = { .struct_size = sizeof(o),
				      .tenant = tenant, .secret = secret,
				      .secret_len = strlen(secret),
				      .timeout_ms = 5000 };

	snprintf(url, sizeof(url), "gpc://127.0.0.1:%u", port);
	return gpc_connect(url, &o, out);
}

static inline struct gpc_client *
nt_connect(const char *tenant)
{
	struct gpc_client *c = NULL;
	int rc = nt_connect_port(nt_port, tenant, nt_secret(tenant), &c);

	if (rc < 0)
		fprintf(stderr, "FATAL: gpc_connect(%s) on port %u: %s\n",
			tenant, nt_port, gpc_strerror(rc));
	REQUIRE(rc == 0);
	return c;
}

#endif
