/* cli.h - pieces shared by the gpucache command's subcommands. */
#ifndef GPC_TOOLS_CLI_H
#define GPC_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "store/io.h"
#include "store/store.h"

struct cli_devs {
	unsigned n;
	const char **paths;
	const char *backend; /* "uring", "psync" or NULL (uring, else psync) */
	uint64_t create_size;
	unsigned shard, nshards; /* gpucached's region shard/nshards; 0: whole */
};

/* Open an I/O context over the devices; reports problems on stderr. */
int cli_io_open(const struct cli_devs *d, bool create, struct store_io **out);
/* Open the store on the devices. */
int cli_store_open(const struct cli_devs *d, const struct store_opts *o,
		   struct store **out);
/* Parse "64K", "1M", "2G", "4096" into bytes; -1 on error. */
int64_t cli_parse_size(const char *s);
int cli_bench(int argc, char **argv);
int cli_replay(int argc, char **argv);
int cli_sim(int argc, char **argv);
int cli_stat_server(int argc, char **argv);

#endif
