/*
 * cli_server.c - `gpucache stat --server HOST:PORT` (a running gpucached's
 * metrics endpoint, fetched and summarized: the same figures Prometheus
 * scrapes) and `gpucache reload --pidfile FILE` (SIGHUP: re-read tenants).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpucache/gpucache.h"
#include "server/metrics_client.h"
#include "cli.h"

static int
stat_server(const char *hp)
{
	char host[256];
	const char *colon = strrchr(hp, ':');
	unsigned long port;
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (colon == NULL || (size_t)(colon - hp) >= sizeof(host) ||
	    (port = strtoul(colon + 1, NULL, 10)) == 0 || port > 65535) {
		fprintf(stderr, "gpucache stat: --server wants HOST:PORT (the "
			"metrics port)\n");
		return 2;
	}
	memcpy(host, hp, (size_t)(colon - hp));
	host[colon - hp] = '\0';
	rc = srv_metrics_fetch(host, (uint16_t)port, 5000, &text, &len);
	if (rc < 0) {
		fprintf(stderr, "gpucache stat: %s: %s\n", hp, gpc_strerror(rc));
		return 1;
	}
	rc = srv_metrics_summary(stdout, text, len);
	free(text);
	return rc < 0 ? 1 : 0;
}

static int
reload(const char *pidfile)
{
	FILE *f = fopen(pidfile, "r");
	long pid = 0;

	if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
		fprintf(stderr, "gpucache reload: %s: %s\n", pidfile,
			f ? "no process id in it" : strerror(errno));
		if (f)
			fclose(f);
		return 1;
	}
	fclose(f);
	if (kill((pid_t)pid, SIGHUP) < 0) {
		fprintf(stderr, "gpucache reload: process %ld: %s\n", pid,
			strerror(errno));
		return 1;
	}
	printf("asked gpucached (process %ld) to reload its tenants\n", pid);
	return 0;
}

int
cli_stat_server(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--server") == 0)
		return stat_server(argv[2]);
	if (argc == 2 && strncmp(argv[1], "--server=", 9) == 0)
		return stat_server(argv[1] + 9);
	if (argc == 3 && strcmp(argv[1], "--pidfile") == 0)
		return reload(argv[2]);
	fprintf(stderr, "usage: gpucache stat --server HOST:PORT | "
		"gpucache reload --pidfile FILE\n");
	return 2;
}
