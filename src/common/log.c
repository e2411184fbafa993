/*
 * log.c - stderr logger. One fprintf per message, so lines from several
 * threads do not interleave (stdio locks the stream per call).
 */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static enum log_level log_level = LOG_WARN;
static const char *const log_names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

void
log_msg(enum log_level lvl, const char *mod, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s %s: %s\n", log_names[lvl], mod, line);
}
