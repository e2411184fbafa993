/*
 * io_fault.h - a store_io backend that wraps another and injects faults,
 * for tests: fail the Nth I/O, fail or delay a device, flip bits in data
 * read, misdirect a write, and simulate a crash (power loss).
 *
 * The wrapper takes ownership of the inner context and closes it.
 * All controls are called from the owning thread.
 */
#ifndef GPC_STORE_IO_FAULT_H
#define GPC_STORE_IO_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "io.h"

int store_io_fault_open(struct store_io *inner, uint64_t seed,
			struct store_io **out);

/* The nth request submitted from now on (1-based) completes with err. */
void store_io_fault_fail_nth(struct store_io *io, uint64_t n, int err);
/* Number of requests submitted so far (to size fault sweeps). */
uint64_t store_io_fault_count(struct store_io *io);
/* Every request to dev completes with -EIO while failed is true. */
void store_io_fault_fail_dev(struct store_io *io, unsigned dev, bool failed);
/* Completions of requests to dev are held back for `polls` poll calls. */
void store_io_fault_delay_dev(struct store_io *io, unsigned dev,
			      unsigned polls);
/* The next `count` reads from dev come back with `bits` random bit flips. */
void store_io_fault_flip_reads(struct store_io *io, unsigned dev,
			       unsigned count, unsigned bits);
/* The next write to dev lands at off + delta instead (delta aligned). */
void store_io_fault_misdirect_next(struct store_io *io, unsigned dev,
				   int64_t delta);

/*
 * Crash simulation. With crash mode on, writes are held in the wrapper
 * (reads see them) until a FLUSH of their device succeeds. store_io_fault_
 * crash() then applies a random subset of the held writes in order, tears
 * one sector of one of them (a random prefix of its sectors reaches the
 * device and the sector after it is half old, half new), drops the rest,
 * and from then on every request completes with -EIO (the machine is off).
 */
void store_io_fault_crash_mode(struct store_io *io, bool on);
void store_io_fault_crash(struct store_io *io);

/* Accessors for tests (appended). */

/* Writes held in crash mode, not yet flushed. */
uint64_t store_io_fault_held(struct store_io *io);

/*
 * What the last store_io_fault_crash() did: held = applied + dropped +
 * torn. The torn write reached the device up to torn_at, the sector at
 * torn_at holds torn_bytes (1..4095) new bytes then old ones, and the rest
 * of the write is old data.
 */
struct store_io_fault_crash_info {
	uint64_t held;       /* writes held when it crashed */
	uint64_t applied;    /* applied whole */
	uint64_t dropped;    /* dropped whole */
	bool torn;           /* one was torn (whenever held > 0) */
	uint16_t torn_dev;
	uint64_t torn_off;   /* the torn write's offset */
	uint64_t torn_len;   /* and length */
	uint64_t torn_at;    /* offset of the torn sector */
	unsigned torn_bytes; /* new bytes at its start */
};
void store_io_fault_crash_info(struct store_io *io,
			       struct store_io_fault_crash_info *out);

#endif
