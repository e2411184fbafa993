/*
 * test_config.c - gpucached's config (src/server/config.c): defaults, a
 * full file, every class of error with the exact line it names, line
 * counting past lines longer than libinih's 200-byte buffer, --set
 * overrides, sizes, hex secrets, the cross-field checks and a
 * write/parse round trip.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpucache/gpucache.h"
#include "server/config.h"
#include "test.h"

static struct srv_config *cfg;
static char err[1024];

static const char *const secret16 = "0123456789abcdef";

/* Parse text over fresh defaults; returns the rc, message in err. */
static int
parse(const char *text)
{
	srv_config_defaults(cfg);
	err[0] = '\0';
	return srv_config_parse(cfg, text, strlen(text), "t.conf", err,
				sizeof(err));
}

/* text must fail at line with a message containing want. */
static void
expect_err(const char *text, unsigned line, const char *want, int src_line)
{
	char prefix[64];
	int rc = parse(text);

	snprintf(prefix, sizeof(prefix), "t.conf:%u: ", line);
	if (rc == -GPC_ECONFIG && strncmp(err, prefix, strlen(prefix)) == 0 &&
	    strstr(err, want) != NULL) {
		test_pass++;
	} else {
		test_fail++;
		fprintf(stderr, "FAIL %s:%d: rc %d, err '%s'; want '%s...%s'\n",
			__FILE__, src_line, rc, err, prefix, want);
	}
}
#define EXPECT_ERR(text, line, want) expect_err(text, line, want, __LINE__)

static void
test_defaults(void)
{
	srv_config_defaults(cfg);
	CHECK(strcmp(cfg->data_dir, "/var/lib/gpucache") == 0);
	CHECK(cfg->ndev == 4);
	CHECK(strcmp(cfg->devices[0], "/var/lib/gpucache/dev0.img") == 0);
	CHECK(strcmp(cfg->devices[3], "/var/lib/gpucache/dev3.img") == 0);
	CHECK(cfg->device_size == 1ull << 30);
	CHECK(cfg->k == 2 && cfg->m == 1 && cfg->chunk_size == 0);
	CHECK(cfg->dram_buffer == 256ull << 20);
	CHECK(cfg->put_piece == 256u << 10);
	CHECK(strcmp(cfg->listen_addr, "0.0.0.0") == 0 && cfg->port == 7070);
	CHECK(strcmp(cfg->metrics_addr, "127.0.0.1") == 0);
	CHECK(cfg->metrics_port == 7080 && cfg->shards == 1);
	CHECK(cfg->max_inflight_conn == 64 && cfg->max_inflight_shard == 1024);
	CHECK(cfg->log_level == 2 && cfg->ntenants == 0);
	CHECK(!cfg->devices_explicit);
	/* no tenant: refused; one tenant makes the defaults a working tier */
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), -GPC_ECONFIG);
	CHECK(strstr(err, "at least one [tenant NAME] section is needed"));
	CHECK_RC(srv_config_set(cfg, "tenant.default.secret=0123456789abcdef",
				err, sizeof(err)), 0);
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), 0);
	/* empty input changes nothing */
	CHECK_RC(parse(""), 0);
	CHECK_RC(srv_config_parse(cfg, NULL, 0, NULL, err, sizeof(err)), 0);
}

static const char full_conf[] =
	"\xEF\xBB\xBF; gpucached test config\r\n"                  /* 1 */
	"# another comment\n"                                      /* 2 */
	"\n"                                                       /* 3 */
	"[server]\n"                                               /* 4 */
	"listen = 10.0.0.5   ; inline comment\n"                   /* 5 */
	"port = 9000\n"                                            /* 6 */
	"  shards = 4\n"                                           /* 7 */
	"metrics_addr = ::1\n"                                     /* 8 */
	"metrics_port = 0\n"                                       /* 9 */
	"max_inflight_conn = 128\n"                                /* 10 */
	"max_inflight_shard = 4096\n"                              /* 11 */
	"data_dir = /srv/gpucache\n"                               /* 12 */
	"log_level = debug\n"                                      /* 13 */
	"[ store ]\n"                                              /* 14 */
	"device = /dev/nvme0n1\n"                                  /* 15 */
	"device = /dev/nvme1n1\n"                                  /* 16 */
	"device=/dev/nvme2n1\n"                                    /* 17 */
	"device = /dev/nvme3n1\n"                                  /* 18 */
	"device = /dev/nvme4n1\n"                                  /* 19 */
	"device_size = 2G\n"                                       /* 20 */
	"k = 3\n"                                                  /* 21 */
	"m = 2\n"                                                  /* 22 */
	"chunk_size = 4M\n"                                        /* 23 */
	"dram_buffer = 1G\n"                                       /* 24 */
	"[tenant alice]\n"                                         /* 25 */
	"secret = correct horse battery staple\n"                  /* 26 */
	"quota = 10G\n"                                            /* 27 */
	"[tenant bob] ; second tenant\n"                           /* 28 */
	"secret = hex:00112233445566778899AABBCCDDEEFF\n";         /* 29 */

static void
test_full(void)
{
	const struct srv_tenant *a, *b;

	CHECK_RC(parse(full_conf), 0);
	if (err[0])
		fprintf(stderr, "  %s\n", err);
	CHECK(strcmp(cfg->listen_addr, "10.0.0.5") == 0);
	CHECK(cfg->port == 9000 && cfg->shards == 4);
	CHECK(strcmp(cfg->metrics_addr, "::1") == 0 && cfg->metrics_port == 0);
	CHECK(cfg->max_inflight_conn == 128 && cfg->max_inflight_shard == 4096);
	CHECK(strcmp(cfg->data_dir, "/srv/gpucache") == 0);
	CHECK(cfg->log_level == 3);
	CHECK(cfg->ndev == 5 && cfg->devices_explicit);
	CHECK(strcmp(cfg->devices[0], "/dev/nvme0n1") == 0);
	CHECK(strcmp(cfg->devices[2], "/dev/nvme2n1") == 0);
	CHECK(strcmp(cfg->devices[4], "/dev/nvme4n1") == 0);
	CHECK(cfg->device_size == 2ull << 30);
	CHECK(cfg->k == 3 && cfg->m == 2 && cfg->chunk_size == 4u << 20);
	CHECK(cfg->dram_buffer == 1ull << 30);
	CHECK(cfg->ntenants == 2);
	a = srv_config_tenant(cfg, "alice");
	b = srv_config_tenant(cfg, "bob");
	CHECK(a && a->secret_len == 28 && a->quota_bytes == 10ull << 30 &&
	      memcmp(a->secret, "correct horse battery staple", 28) == 0);
	CHECK(b && b->secret_len == 16 && b->quota_bytes == 0 &&
	      b->secret[0] == 0x00 && b->secret[10] == 0xaa &&
	      b->secret[15] == 0xff);
	CHECK(srv_config_tenant(cfg, "carol") == NULL);
	CHECK(srv_config_tenant(cfg, "alic") == NULL);
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), 0);
	/* data_dir after explicit devices leaves them alone */
	CHECK_RC(srv_config_set(cfg, "server.data_dir=/x", err, sizeof(err)), 0);
	CHECK(strcmp(cfg->devices[0], "/dev/nvme0n1") == 0);
	/* without devices, data_dir moves the default devices */
	CHECK_RC(parse("[server]\ndata_dir = /data/gc/\n"), 0);
	CHECK(cfg->ndev == 4 && strcmp(cfg->devices[1], "/data/gc/dev1.img") == 0);
	CHECK(!cfg->devices_explicit);
	/* ':' as separator (inih's configparser concession) */
	CHECK_RC(parse("[server]\nport: 7171\n"), 0);
	CHECK(cfg->port == 7171);
	/* log levels by number */
	CHECK_RC(parse("[server]\nlog_level = 0\n"), 0);
	CHECK(cfg->log_level == 0);
	/* the admission rule, by name; auto by default */
	CHECK_RC(parse("[server]\nport = 7171\n"), 0);
	CHECK(cfg->admission == 0);
	CHECK_RC(parse("[store]\nadmission = seen\n"), 0);
	CHECK(cfg->admission == 2);
	CHECK_RC(parse("[store]\nadmission = all\n"), 0);
	CHECK(cfg->admission == 1);
	CHECK_RC(parse("[store]\nadmission = notail\n"), 0);
	CHECK(cfg->admission == 3); /* POLICY_ADMIT_NOTAIL */
}

static void
test_errors(void)
{
	/* sections */
	EXPECT_ERR("[server]\nport = 1\n[servr]\n", 3, "unknown section [servr]");
	EXPECT_ERR("\n\n[server\n", 3, "without ']'");
	EXPECT_ERR("[server] junk\n", 1, "unexpected text after ']'");
	EXPECT_ERR("port = 1\n", 1, "outside any section");
	EXPECT_ERR("; c\n[tenant]\n", 2, "unknown section [tenant]");
	EXPECT_ERR("[tenant a b]\n", 1, "bad tenant name");
	EXPECT_ERR("[tenant  ]\n", 1, "unknown section");
	EXPECT_ERR("[tenant "
		   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		   "]\n", 1, "bad tenant name");
	EXPECT_ERR("[tenant a]\nsecret = 0123456789abcdef\n\n[tenant a]\n", 4,
		   "duplicate section [tenant a] (first on line 1)");
	/* a tenant without a secret: named at its header line */
	EXPECT_ERR("[tenant a]\nquota = 1G\n[server]\nport = 1\n", 1,
		   "[tenant a] has no secret");
	EXPECT_ERR("[server]\nport = 1\n[tenant zed]\nquota = 1G\n", 3,
		   "[tenant zed] has no secret");
	/* keys */
	EXPECT_ERR("[server]\nprot = 1\n", 2, "[server] unknown key 'prot'");
	EXPECT_ERR("[store]\nport = 1\n", 2, "[store] unknown key 'port'");
	EXPECT_ERR("[tenant a]\nsecret = 0123456789abcdef\nquota = 1\nkey = x\n",
		   4, "[tenant a] unknown key 'key'");
	EXPECT_ERR("[server]\nport = 1\n\n; x\nport = 2\n", 5,
		   "[server] port set twice (first on line 2)");
	EXPECT_ERR("[server]\nport = 1\n[store]\nk = 1\n[server]\nport = 2\n", 6,
		   "set twice (first on line 2)");
	EXPECT_ERR("[tenant a]\nsecret = 0123456789abcdef\nsecret = "
		   "0123456789abcdef\n", 3, "secret set twice");
	EXPECT_ERR("[store]\ndevice = /a\ndevice = /b\ndevice = /a\n", 4,
		   "device '/a' is listed twice");
	/* syntax: no '=', and no multi-line continuation */
	EXPECT_ERR("[server]\nport 7070\n", 2, "expected 'key = value'");
	EXPECT_ERR("[store]\ndevice = /a\n    /b\n", 3, "expected 'key = value'");
	EXPECT_ERR("[server]\nport = 1\n  shards = 2\n  bogus\n", 4,
		   "expected 'key = value'");
	EXPECT_ERR("[server]\nport = 1\n\n\n\nx\n", 6, "expected");
	/* numbers and ranges */
	EXPECT_ERR("[server]\nport = 70x\n", 2, "'70x' is not a decimal number");
	EXPECT_ERR("[server]\nport = -1\n", 2, "not a decimal number");
	EXPECT_ERR("[server]\nport =\n", 2, "'' is not a decimal number");
	EXPECT_ERR("[server]\nport = 0\n", 2, "[server] port: 0 is out of range 1..65535");
	EXPECT_ERR("[server]\nport = 65536\n", 2, "out of range 1..65535");
	EXPECT_ERR("[server]\nport = 99999999999999999999999\n", 2, "too large");
	EXPECT_ERR("[server]\nshards = 0\n", 2, "out of range 1..64");
	EXPECT_ERR("[server]\nshards = 65\n", 2, "out of range 1..64");
	EXPECT_ERR("[server]\nmetrics_port = 65536\n", 2, "out of range 0..65535");
	EXPECT_ERR("[server]\nmax_inflight_conn = 0\n", 2, "out of range");
	EXPECT_ERR("[server]\nlog_level = loud\n", 2,
		   "'loud' is not one of error, warn, info, debug (or 0..3)");
	EXPECT_ERR("[server]\nlog_level = 4\n", 2, "is not one of error");
	EXPECT_ERR("[store]\nadmission = maybe\n", 2,
		   "[store] admission: 'maybe' is not one of auto, all, seen, "
		   "notail");
	EXPECT_ERR("[server]\nlisten = localhost\n", 2, "not a numeric IPv4");
	EXPECT_ERR("[server]\nmetrics_addr = 1.2.3.4.5\n", 2, "not a numeric");
	EXPECT_ERR("[server]\ndata_dir =\n", 2, "must be 1..");
	EXPECT_ERR("[store]\nk = 0\n", 2, "[store] k: 0 is out of range 1..32");
	EXPECT_ERR("[store]\nk = 33\n", 2, "out of range 1..32");
	EXPECT_ERR("[store]\nm = 17\n", 2, "out of range 0..16");
	EXPECT_ERR("[store]\ndram_buffer = 12Q\n", 2, "'12Q' is not a size");
	EXPECT_ERR("[store]\ndram_buffer = 1.5G\n", 2, "not a size");
	EXPECT_ERR("[store]\ndram_buffer = 512K\n", 2,
		   "512K is out of range 1M..1T");
	EXPECT_ERR("[store]\ndevice_size = 99999999999T\n", 2, "too large");
	EXPECT_ERR("[store]\nchunk_size = 12000\n", 2, "12000 is not a multiple of 4K");
	EXPECT_ERR("[store]\nchunk_size = 4K\n", 2, "4K is out of range 8K..1G (or 0)");
	EXPECT_ERR("[server]\nput_piece = 12000\n", 2, "12000 is not a multiple of 4K");
	EXPECT_ERR("[server]\nput_piece = 128M\n", 2, "128M is out of range 4K..64M (or 0)");
	EXPECT_ERR("[tenant a]\nsecret = 0123456789abcdef\nquota = 10X\n", 3,
		   "not a size");
	/* secrets: never echoed */
	EXPECT_ERR("[tenant a]\nsecret = 0123456789abcde\n", 2,
		   "secret is 15 bytes; it must be 16..256");
	CHECK(strstr(err, "0123456789abcde") == NULL);
	EXPECT_ERR("[tenant a]\nsecret = hex:0011223344556677889900112233445\n",
		   2, "odd number of digits");
	EXPECT_ERR("[tenant a]\nsecret = hex:00112233445566778899001122334g55\n",
		   2, "non-hex character");
	CHECK(strstr(err, "0011") == NULL);
	EXPECT_ERR("[tenant a]\nsecret = hex:001122334455667788990011223344\n",
		   2, "secret is 15 bytes");
	/* bytes the parser refuses */
	{
		static const char nul[] = "[server]\nport = 1\nshards\0 = 2\n";
		int rc;

		srv_config_defaults(cfg);
		rc = srv_config_parse(cfg, nul, sizeof(nul) - 1, "t.conf", err,
				      sizeof(err));
		CHECK_RC(rc, -GPC_ECONFIG);
		CHECK(strncmp(err, "t.conf:3: NUL byte", 18) == 0);
	}
	/* the first error wins */
	EXPECT_ERR("[server]\nport = 0\nshards = 0\n[bad]\n", 2, "port");
	/* a failed parse leaves the config as it was */
	srv_config_defaults(cfg);
	CHECK_RC(srv_config_parse(cfg, "[server]\nport = 5\nshards = 0\n", 27,
				  "t.conf", err, sizeof(err)), -GPC_ECONFIG);
	CHECK(cfg->port == 7070);
}

/* Lines past libinih's 200-byte buffer: counted and read whole. */
static void
test_long_lines(void)
{
	size_t big = 20000;
	char *t = malloc(big), path[4096], hex[600];
	int n;

	REQUIRE(t != NULL);
	memset(path, 0, sizeof(path));
	path[0] = '/';
	memset(path + 1, 'p', 3999);
	/* a 4000-byte device path with an inline comment, then an error */
	n = snprintf(t, big, "[store]\ndevice = %s ; the only one\nk = 1\n"
		     "m = 0\nkk = 1\n", path);
	REQUIRE(n > 0 && (size_t)n < big);
	EXPECT_ERR(t, 5, "unknown key 'kk'");
	snprintf(t, big, "[store]\ndevice = %s ; c\nk = 1\nm = 0\n", path);
	CHECK_RC(parse(t), 0);
	CHECK(cfg->ndev == 1 && strcmp(cfg->devices[0], path) == 0);
	/* a 256-byte hex secret (512 digits) */
	memcpy(hex, "hex:", 4);
	for (int i = 0; i < 256; i++)
		snprintf(hex + 4 + 2 * i, 3, "%02X", i);
	snprintf(t, big, "[tenant a]\nsecret = %s   \nquota = 1T\n", hex);
	CHECK_RC(parse(t), 0);
	CHECK(cfg->ntenants == 1 && cfg->tenants[0].secret_len == 256);
	CHECK(cfg->tenants[0].secret[0] == 0 && cfg->tenants[0].secret[255] == 255);
	CHECK(cfg->tenants[0].quota_bytes == 1ull << 40);
	/* 257 bytes: refused, on the right line after a long line */
	snprintf(t, big, "[tenant a]\nquota = 1\n\nsecret = %s01\n", hex);
	EXPECT_ERR(t, 4, "secret is 257 bytes");
	/* a plain 256-byte secret; ';' without a blank before stays */
	memset(path, 'x', 256);
	path[100] = ';';
	path[256] = '\0';
	snprintf(t, big, "[tenant a]\nsecret = %s\n", path);
	CHECK_RC(parse(t), 0);
	CHECK(cfg->tenants[0].secret_len == 256 && cfg->tenants[0].secret[100] == ';');
	/* the value starts past inih's cut, after many blanks */
	snprintf(t, big, "[store]\ndevice =%300s/z   \n", "");
	CHECK_RC(parse(t), 0);
	CHECK(cfg->ndev == 1 && strcmp(cfg->devices[0], "/z") == 0);
	/* an inline comment that starts past the cut */
	snprintf(t, big, "[store]\ndevice = /y%250s;%300s\n", "", "comment");
	CHECK_RC(parse(t), 0);
	CHECK(cfg->ndev == 1 && strcmp(cfg->devices[0], "/y") == 0);
	/* '=' past the cut */
	snprintf(t, big, "[store]\ndevice%250s= /a\n", "");
	EXPECT_ERR(t, 2, "no '=' in the first 198 bytes of a long line");
	/* a too-long line of blanks: still refused */
	memset(t, ' ', 9000);
	memcpy(t, "[server]\n", 9);
	t[9000] = '\n';
	t[9001] = '\0';
	EXPECT_ERR(t, 2, "line longer than 8191 bytes");
	/* many long comment and blank lines, then an error */
	n = snprintf(t, big, "[server]\n");
	for (int i = 0; i < 30; i++) {
		t[n++] = ';';
		memset(t + n, 'c', 300);
		n += 300;
		t[n++] = '\n';
	}
	snprintf(t + n, big - (size_t)n, "port = 0\n");
	EXPECT_ERR(t, 32, "out of range");
	free(t);
}

static void
test_limits(void)
{
	char *t = malloc(64 * 1024);
	size_t n = 0;

	REQUIRE(t != NULL);
	n += (size_t)sprintf(t + n, "[store]\n");
	for (int i = 0; i < 65; i++)
		n += (size_t)sprintf(t + n, "device = /dev/d%d\n", i);
	EXPECT_ERR(t, 66, "more than 64 devices");
	n = 0;
	for (int i = 0; i < 65; i++)
		n += (size_t)sprintf(t + n, "[tenant t%d]\nsecret = %s\n", i,
				     secret16);
	EXPECT_ERR(t, 129, "more than 64 tenants");
	n = 0;
	for (int i = 0; i < 64; i++)
		n += (size_t)sprintf(t + n, "[tenant t%d]\nsecret = %s\n", i,
				     secret16);
	CHECK_RC(parse(t), 0);
	CHECK(cfg->ntenants == 64);
	free(t);
}

static void
test_set(void)
{
	srv_config_defaults(cfg);
	CHECK_RC(srv_config_set(cfg, "server.port=9100", err, sizeof(err)), 0);
	CHECK(cfg->port == 9100);
	CHECK_RC(srv_config_set(cfg, " store.k = 4 ", err, sizeof(err)), 0);
	CHECK(cfg->k == 4);
	CHECK_RC(srv_config_set(cfg, "server.port=0", err, sizeof(err)),
		 -GPC_ECONFIG);
	CHECK(strcmp(err, "--set: server.port: 0 is out of range 1..65535") == 0);
	CHECK(cfg->port == 9100);
	CHECK_RC(srv_config_set(cfg, "server.prot=1", err, sizeof(err)),
		 -GPC_ECONFIG);
	CHECK(strncmp(err, "--set: unknown key 'prot'", 25) == 0);
	CHECK_RC(srv_config_set(cfg, "sever.port=1", err, sizeof(err)),
		 -GPC_ECONFIG);
	CHECK(strstr(err, "--set: unknown section 'sever'"));
	CHECK_RC(srv_config_set(cfg, "port=1", err, sizeof(err)), -GPC_ECONFIG);
	CHECK(strstr(err, "--set: expected section.key=value"));
	CHECK_RC(srv_config_set(cfg, "server.port", err, sizeof(err)),
		 -GPC_ECONFIG);
	/* a decimal key: the cache policy's flash budget */
	CHECK(cfg->write_amp_max == 1.5);
	CHECK_RC(srv_config_set(cfg, "store.write_amp_max=2.25", err,
				sizeof(err)), 0);
	CHECK(cfg->write_amp_max == 2.25);
	CHECK_RC(srv_config_set(cfg, "store.write_amp_max=1", err,
				sizeof(err)), 0);
	CHECK(cfg->write_amp_max == 1.0);
	CHECK_RC(srv_config_set(cfg, "store.write_amp_max=0.9", err,
				sizeof(err)), -GPC_ECONFIG);
	CHECK(strcmp(err, "--set: store.write_amp_max: 0.9 is out of range "
		      "1..10") == 0);
	CHECK_RC(srv_config_set(cfg, "store.write_amp_max=10.000000000000002",
				err, sizeof(err)), -GPC_ECONFIG);
	CHECK(strstr(err, "10.000000000000002 is out of range") != NULL);
	for (unsigned i = 0; i < 8; i++) {
		static const char *const bad[] = { "abc", "1.5x", "", "nan",
						   "1e999", "0x1.8p0", "+2",
						   "inf" };
		char kv[64];

		snprintf(kv, sizeof(kv), "store.write_amp_max=%s", bad[i]);
		CHECK_RC(srv_config_set(cfg, kv, err, sizeof(err)),
			 -GPC_ECONFIG);
		CHECK(cfg->write_amp_max == 1.0); /* unchanged */
	}
	CHECK_RC(srv_config_set(cfg, "server.data_dir=/d", err, sizeof(err)), 0);
	CHECK(strcmp(cfg->devices[3], "/d/dev3.img") == 0);
	/* devices: the first --set replaces the list, later ones append */
	CHECK_RC(parse("[store]\ndevice = /f0\ndevice = /f1\n"), 0);
	CHECK(cfg->ndev == 2);
	CHECK_RC(srv_config_set(cfg, "store.device=/s0", err, sizeof(err)), 0);
	CHECK(cfg->ndev == 1 && strcmp(cfg->devices[0], "/s0") == 0);
	CHECK_RC(srv_config_set(cfg, "store.device=/s1", err, sizeof(err)), 0);
	CHECK(cfg->ndev == 2 && strcmp(cfg->devices[1], "/s1") == 0);
	CHECK_RC(srv_config_set(cfg, "store.device=/s1", err, sizeof(err)),
		 -GPC_ECONFIG);
	CHECK(strstr(err, "listed twice"));
	/* tenants: created by their first key, dotted names work */
	srv_config_defaults(cfg);
	CHECK_RC(srv_config_set(cfg, "tenant.team.a.quota=5G", err,
				sizeof(err)), 0);
	CHECK(srv_config_tenant(cfg, "team.a") != NULL);
	CHECK(srv_config_tenant(cfg, "team.a")->quota_bytes == 5ull << 30);
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), -GPC_ECONFIG);
	CHECK(strstr(err, "[tenant team.a] needs a secret"));
	CHECK_RC(srv_config_set(cfg, "tenant.team.a.secret=hex:"
				"000102030405060708090a0b0c0d0e0f", err,
				sizeof(err)), 0);
	CHECK(srv_config_tenant(cfg, "team.a")->secret[15] == 15);
	CHECK(srv_config_tenant(cfg, "team.a")->quota_bytes == 5ull << 30);
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), 0);
	CHECK_RC(srv_config_set(cfg, "tenant.x.secret=short", err, sizeof(err)),
		 -GPC_ECONFIG);
	CHECK(srv_config_tenant(cfg, "x") == NULL); /* not created */
	CHECK(strstr(err, "short") == NULL);
	CHECK_RC(srv_config_set(cfg, "tenant.a b.secret=0123456789abcdef", err,
				sizeof(err)), -GPC_ECONFIG);
	CHECK_RC(srv_config_set(cfg, "tenant.secret=0123456789abcdef", err,
				sizeof(err)), -GPC_ECONFIG);
	/* flags over a file: the file's tenant keeps what --set leaves */
	CHECK_RC(parse(full_conf), 0);
	CHECK_RC(srv_config_set(cfg, "tenant.alice.quota=0", err, sizeof(err)), 0);
	CHECK(srv_config_tenant(cfg, "alice")->quota_bytes == 0);
	CHECK(srv_config_tenant(cfg, "alice")->secret_len == 28);
}

/* A long data_dir is not read as a tenant's fields: check_fields looked
 * at [tenant] keys' offsets inside struct srv_config (tenant.class fell
 * in data_dir's bytes: "class: 25700 is out of range"). */
static void
test_long_data_dir(void)
{
	char kv[600];

	srv_config_defaults(cfg);
	snprintf(kv, sizeof(kv), "server.data_dir=/%0415d", 0);
	CHECK_RC(srv_config_set(cfg, kv, err, sizeof(err)), 0);
	CHECK_RC(srv_config_set(cfg, "tenant.t.secret=0123456789abcdef", err,
				sizeof(err)), 0);
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), 0);
	if (err[0])
		fprintf(stderr, "  %s\n", err);
}

static void
test_sizes(void)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "0", 0 }, { "512", 512 }, { "4K", 4096 }, { "4k", 4096 },
		{ "1M", 1ull << 20 }, { "3G", 3ull << 30 }, { "2T", 2ull << 40 },
		{ "1KiB", 1024 }, { "1MB", 1ull << 20 }, { "007", 7 },
		{ "16777215T", 16777215ull << 40 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "K", "1.5G", "-1", "1 G", "1P", "1KB2", "0x10", "16777216T",
		"18446744073709551616", "1Gi",
	};
	char a[128];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		srv_config_defaults(cfg);
		snprintf(a, sizeof(a), "tenant.t.quota=%s", ok[i].s);
		CHECK_RC(srv_config_set(cfg, a, err, sizeof(err)), 0);
		CHECK(cfg->ntenants == 1 && cfg->tenants[0].quota_bytes == ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		srv_config_defaults(cfg);
		snprintf(a, sizeof(a), "tenant.t.quota=%s", bad[i]);
		CHECK_RC(srv_config_set(cfg, a, err, sizeof(err)), -GPC_ECONFIG);
		CHECK(cfg->ntenants == 0);
	}
}

static void
test_check(void)
{
	static const struct {
		const char *set;
		const char *want;
	} cases[] = {
		{ "store.k=4", "k + m = 5 needs at least 5 devices; 4 configured" },
		{ "store.k=2", NULL },
		{ "server.port=65535", NULL }, /* one shard: fine */
		{ "server.shards=2", "port 65535 + 2 shards runs past 65535" },
		{ "server.port=7075", NULL },
		{ "server.metrics_port=7076", "metrics_port 7076 is one of the "
					      "shard ports 7075..7076" },
		{ "server.listen=10.0.0.1", NULL }, /* 10.0.0.1 vs 127.0.0.1 */
		{ "server.metrics_addr=0.0.0.0", "metrics_port 7076" },
		{ "server.metrics_port=0", NULL },
		/* engine default: 32 MiB of data per segment, chunk 16M+4K */
		{ "store.dram_buffer=65M", NULL },
		{ "store.dram_buffer=64M", "dram_buffer 64M holds fewer than 2 "
					   "segments of k * chunk_size = 32776K" },
		{ "store.chunk_size=64K", NULL },
		{ "store.device_size=2M", NULL },
		{ "store.chunk_size=1M", "device_size 2M is too small" },
	};

	srv_config_defaults(cfg);
	REQUIRE(srv_config_set(cfg, "tenant.t.secret=0123456789abcdef", err,
			       sizeof(err)) == 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		CHECK_RC(srv_config_set(cfg, cases[i].set, err, sizeof(err)), 0);
		rc = srv_config_check(cfg, err, sizeof(err));
		if (cases[i].want == NULL) {
			CHECK_RC(rc, 0);
			if (rc)
				fprintf(stderr, "  after %s: %s\n", cases[i].set, err);
			continue;
		}
		CHECK_RC(rc, -GPC_ECONFIG);
		CHECK(strncmp(err, "config: ", 8) == 0 &&
		      strstr(err, cases[i].want) != NULL);
		if (!strstr(err, cases[i].want))
			fprintf(stderr, "  after %s: '%s'\n", cases[i].set, err);
	}
	/* fields set behind the parser's back */
	srv_config_defaults(cfg);
	REQUIRE(srv_config_set(cfg, "tenant.t.secret=0123456789abcdef", err,
			       sizeof(err)) == 0);
	cfg->shards = 0;
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), -GPC_ECONFIG);
	CHECK(strstr(err, "[server] shards: 0 is out of range 1..64"));
	cfg->shards = 1;
	strcpy(cfg->devices[1], cfg->devices[0]);
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), -GPC_ECONFIG);
	CHECK(strstr(err, "is listed twice"));
	srv_config_defaults(cfg);
	REQUIRE(srv_config_set(cfg, "tenant.t.secret=0123456789abcdef", err,
			       sizeof(err)) == 0);
	cfg->log_level = -1;
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), -GPC_ECONFIG);
	cfg->log_level = 2;
	cfg->tenants[0].secret_len = 300;
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), -GPC_ECONFIG);
	cfg->tenants[0].secret_len = 16;
	cfg->tenants[1] = cfg->tenants[0];
	cfg->ntenants = 2;
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), -GPC_ECONFIG);
	CHECK(strstr(err, "defined twice"));
}

/* Classes follow names, not section order; explicit ones win and must
 * not collide. */
static void
test_classes(void)
{
	static const char *const names[] = { "alice", "bob", "carol", "dave" };
	uint16_t a[SRV_MAX_TENANTS], b[SRV_MAX_TENANTS];
	char text[2048];
	size_t n = 0;

	for (int i = 0; i < 4; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "[tenant %s]\nsecret = %s\n", names[i],
				      secret16);
	CHECK_RC(parse(text), 0);
	srv_tenant_classes(cfg, a);
	n = 0;
	for (int i = 3; i >= 0; i--) /* the same tenants, backwards */
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "[tenant %s]\nsecret = %s\n", names[i],
				      secret16);
	CHECK_RC(parse(text), 0);
	srv_tenant_classes(cfg, b);
	for (int i = 0; i < 4; i++) {
		CHECK(a[i] >= 1 && a[i] <= SRV_CLASS_MAX);
		CHECK(a[i] == b[3 - i]); /* same name, same class */
		for (int j = 0; j < i; j++)
			CHECK(a[i] != a[j]);
	}
	snprintf(text, sizeof(text), "[tenant alice]\nsecret = %s\nclass = 7\n"
		 "[tenant bob]\nsecret = %s\n", secret16, secret16);
	CHECK_RC(parse(text), 0);
	srv_tenant_classes(cfg, a);
	CHECK(a[0] == 7 && a[1] != 7 && a[1] >= 1);
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), 0);
	snprintf(text, sizeof(text), "[tenant alice]\nsecret = %s\nclass = 7\n"
		 "[tenant bob]\nsecret = %s\nclass = 7\n", secret16, secret16);
	CHECK_RC(parse(text), 0);
	CHECK(srv_config_check(cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "both have class 7") != NULL);
	EXPECT_ERR("[tenant alice]\nclass = 1024\n", 2, "class");
	/* "bob" and "a183" hash to one class: refused, not probed */
	snprintf(text, sizeof(text), "[tenant bob]\nsecret = %s\n"
		 "[tenant a183]\nsecret = %s\n", secret16, secret16);
	CHECK_RC(parse(text), 0);
	srv_tenant_classes(cfg, a);
	CHECK(a[0] == a[1]);
	CHECK(srv_config_check(cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "derived from the names") != NULL);
	snprintf(text, sizeof(text), "[tenant bob]\nsecret = %s\n"
		 "[tenant a183]\nsecret = %s\nclass = 500\n", secret16,
		 secret16);
	CHECK_RC(parse(text), 0);
	CHECK_RC(srv_config_check(cfg, err, sizeof(err)), 0);
	srv_tenant_classes(cfg, b);
	CHECK(b[0] == a[0] && b[1] == 500); /* bob did not move */
}

static void
test_load_and_write(void)
{
	char path[] = "/tmp/gpc-test-config-XXXXXX";
	struct srv_config *c2 = malloc(sizeof(*c2));
	FILE *f, *h;
	int fd;

	REQUIRE(c2 != NULL);
	srv_config_defaults(cfg);
	CHECK_RC(srv_config_load(cfg, "/nonexistent/gpucached.conf", err,
				 sizeof(err)), -ENOENT);
	CHECK(strncmp(err, "/nonexistent/gpucached.conf: cannot read", 40) == 0);
	fd = mkstemp(path);
	REQUIRE(fd >= 0);
	f = fdopen(fd, "w+");
	REQUIRE(f != NULL);
	/* a full config written out and read back: the same values */
	CHECK_RC(parse(full_conf), 0);
	CHECK_RC(srv_config_set(cfg, "tenant.t.secret=hex:00ff00ff00ff00ff00ff"
				"00ff00ff00ff", err, sizeof(err)), 0);
	CHECK_RC(srv_config_set(cfg, "store.write_amp_max=1.2345678901", err,
				sizeof(err)), 0);
	CHECK_RC(srv_config_write(cfg, f), 0);
	fclose(f);
	srv_config_defaults(c2);
	CHECK_RC(srv_config_load(c2, path, err, sizeof(err)), 0);
	if (err[0])
		fprintf(stderr, "  %s\n", err);
	CHECK(memcmp(cfg, c2, sizeof(*c2)) == 0);
	/* defaults plus a tenant, as the daemon writes on first start */
	srv_config_defaults(cfg);
	REQUIRE(srv_config_set(cfg, "tenant.default.secret=0123456789abcdef",
			       err, sizeof(err)) == 0);
	f = fopen(path, "w");
	REQUIRE(f != NULL);
	CHECK_RC(srv_config_write(cfg, f), 0);
	fclose(f);
	srv_config_defaults(c2);
	CHECK_RC(srv_config_load(c2, path, err, sizeof(err)), 0);
	CHECK(memcmp(cfg, c2, sizeof(*c2)) == 0);
	CHECK_RC(srv_config_check(c2, err, sizeof(err)), 0);
	/* a bad file names itself */
	f = fopen(path, "w");
	REQUIRE(f != NULL);
	fputs("[server]\n\nport = 0\n", f);
	fclose(f);
	CHECK_RC(srv_config_load(c2, path, err, sizeof(err)), -GPC_ECONFIG);
	CHECK(strncmp(err, path, strlen(path)) == 0 &&
	      strncmp(err + strlen(path), ":3: ", 4) == 0);
	unlink(path);
	/* --help names every key */
	h = tmpfile();
	REQUIRE(h != NULL);
	srv_config_help(h);
	CHECK(ftell(h) > 500);
	fclose(h);
	free(c2);
}

int
main(void)
{
	cfg = malloc(sizeof(*cfg));
	REQUIRE(cfg != NULL);
	test_defaults();
	test_full();
	test_errors();
	test_long_lines();
	test_limits();
	test_set();
	test_long_data_dir();
	test_sizes();
	test_check();
	test_classes();
	test_load_and_write();
	free(cfg);
	return test_summary("test_config");
}
