/*
 * store_seal.c - the CPU half of sealing a segment, and the thread that can
 * run it off the store's own thread (docs/pipeline.md).
 *
 * seal_encode() turns a full write buffer into chunks ready to write:
 * data-chunk CRCs assembled from the fragments recorded at commit,
 * Reed-Solomon parity, the parity chunks' CRCs, every chunk header. It
 * reads the store's geometry, uuid and coder, which do not change while
 * the store is open, and writes only the buffer it is given and the job's
 * cost counters: so it may run on any thread.
 *
 * The sealer is one thread per store. store_write.c hands it a buffer
 * whose tail (summary, footer) is built; while the sealer holds it the
 * store's thread writes nothing in that buffer and reads only its records
 * (GETs of blocks still in DRAM), and the sealer writes only chunk headers
 * and parity. Jobs and finished jobs pass through two lists under one
 * mutex (a few hand-overs per segment of megabytes: a lock costs nothing
 * here), so the hand-over is the release/acquire pair ThreadSanitizer
 * checks. Finished buffers go back to the store's thread by
 * sealer_reap(), from store_poll: the writes, the flushes and every
 * callback stay on that thread, as the store's contract says.
 *
 * The sealer has its own coder: ISA-L's tables are read-only, but the
 * coder object belongs to the store's thread (degraded reads decode).
 */
#include <errno.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/crc.h"
#include "store_int.h"

static int
frag_cmp(const void *a, const void *b)
{
	const struct crc_frag *x = a, *y = b;

	return x->loff < y->loff ? -1 : x->loff > y->loff;
}

/*
 * Payload CRC of each data chunk from the fragments: everything between
 * them is zero, so it is a shift of the register (crc.h). If fragments
 * could not be recorded (no memory), checksum the chunks the long way.
 */
static void
data_crcs(const struct store_geom *g, struct wbuf *w, uint32_t *crc)
{
	uint32_t P = g->payload, f = 0;

	qsort(w->frags, w->nfrags, sizeof(*w->frags), frag_cmp);
	for (unsigned c = 0; c < g->k; c++) {
		uint32_t state = 0xffffffffu, pos = c * P;

		if (w->frags_lost) {
			crc[c] = crc32c(w->mem + (size_t)c * g->chunk_size +
					STORE_SECTOR, P);
			continue;
		}
		for (; f < w->nfrags && w->frags[f].loff < (c + 1) * P; f++) {
			const struct crc_frag *x = &w->frags[f];

			/* zeros up to the run, then the run itself */
			state = crc32c_shift(state, x->loff + x->len - pos) ^
				x->q;
			pos = x->loff + x->len;
		}
		state = crc32c_shift(state, (c + 1) * P - pos);
		crc[c] = state ^ 0xffffffffu;
	}
}

void
seal_encode(const struct seal_job *j, struct seal_cost *cost)
{
	const struct store_geom *g = j->g;
	struct wbuf *w = j->w;
	const uint8_t *data[CODER_MAX_K];
	uint8_t *par[CODER_MAX_M];
	uint32_t dcrc[CODER_MAX_K];
	struct chunk_disk h = { .k = (uint8_t)g->k, .m = (uint8_t)g->m,
				.seg_seq = j->seq, .slot = w->slot,
				.gen = j->gen, .chunk_size = g->chunk_size,
				.data_len = w->data_len,
				.nentries = w->nentries };
	struct timespec ts;
	uint64_t t0;

	clock_gettime(CLOCK_REALTIME, &ts);
	h.seal_time = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	memcpy(h.uuid, j->uuid, 16);
	for (unsigned i = 0; i < g->w; i++) {
		uint8_t *c = w->mem + (size_t)i * g->chunk_size;

		if (i < g->k)
			data[i] = c + STORE_SECTOR;
		else
			par[i - g->k] = c + STORE_SECTOR;
	}
	t0 = clock_thread_cpu_ns();
	coder_encode(j->coder, g->payload, data, par);
	cost->ec_ns += clock_thread_cpu_ns() - t0;
	t0 = clock_thread_cpu_ns();
	data_crcs(g, w, dcrc);
	for (unsigned i = 0; i < g->w; i++) {
		uint8_t *c = w->mem + (size_t)i * g->chunk_size;

		if (i < g->k)
			h.payload_crc = dcrc[i];
		else /* parity: its only pass over the bytes */
			h.payload_crc = crc32c(c + STORE_SECTOR, g->payload);
		h.chunk_idx = (uint16_t)i;
		memset(c, 0, STORE_SECTOR);
		chunk_encode(&h, c);
	}
	cost->crc_ns += clock_thread_cpu_ns() - t0;
}

/* ---- the sealer thread ---- */

struct sealer {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t work, done_cv;
	struct seal_job *todo, *done; /* FIFO each: head; tails below */
	struct seal_job **todo_tail, **done_tail;
	struct coder *coder;
	unsigned busy;  /* handed over, not reaped yet (store thread only) */
	bool stop;
	int efd;        /* written when a job is done, or -1 */
};

static void *
sealer_main(void *arg)
{
	struct sealer *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct seal_job *j;

		while (s->todo == NULL && !s->stop)
			pthread_cond_wait(&s->work, &s->mu);
		if (s->stop)
			break;
		j = s->todo;
		s->todo = j->next;
		if (s->todo == NULL)
			s->todo_tail = &s->todo;
		pthread_mutex_unlock(&s->mu);
		j->coder = s->coder;
		seal_encode(j, &j->cost);
		pthread_mutex_lock(&s->mu);
		j->next = NULL;
		*s->done_tail = j;
		s->done_tail = &j->next;
		pthread_cond_signal(&s->done_cv);
		if (s->efd >= 0) /* wake the store's owner, if asleep */
			(void)eventfd_write(s->efd, 1);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
sealer_start(unsigned k, unsigned m, int efd, struct sealer **out)
{
	struct sealer *s = calloc(1, sizeof(*s));
	int rc;

	if (s == NULL)
		return -ENOMEM;
	s->efd = efd;
	s->todo_tail = &s->todo;
	s->done_tail = &s->done;
	rc = coder_create(CODER_ISAL, k, m, &s->coder);
	if (rc < 0)
		goto err_free;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done_cv, NULL);
	rc = -pthread_create(&s->th, NULL, sealer_main, s);
	if (rc < 0)
		goto err_sync;
	*out = s;
	return 0;

err_sync:
	pthread_cond_destroy(&s->done_cv);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->mu);
	coder_destroy(s->coder);
err_free:
	free(s);
	return rc;
}

void
sealer_stop(struct sealer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	/* jobs not reaped are the caller's: it frees them with their store */
	while (s->todo != NULL) {
		struct seal_job *j = s->todo;

		s->todo = j->next;
		free(j);
	}
	while (s->done != NULL) {
		struct seal_job *j = s->done;

		s->done = j->next;
		free(j);
	}
	pthread_cond_destroy(&s->done_cv);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->mu);
	coder_destroy(s->coder);
	free(s);
}

void
sealer_submit(struct sealer *s, struct seal_job *j)
{
	j->next = NULL;
	s->busy++;
	pthread_mutex_lock(&s->mu);
	*s->todo_tail = j;
	s->todo_tail = &j->next;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->mu);
}

struct seal_job *
sealer_reap(struct sealer *s, bool wait)
{
	struct seal_job *j;

	if (s == NULL || s->busy == 0)
		return NULL;
	pthread_mutex_lock(&s->mu);
	while (wait && s->done == NULL)
		pthread_cond_wait(&s->done_cv, &s->mu);
	j = s->done;
	if (j != NULL) {
		s->done = j->next;
		if (s->done == NULL)
			s->done_tail = &s->done;
		s->busy--;
	}
	pthread_mutex_unlock(&s->mu);
	return j;
}

unsigned
sealer_busy(const struct sealer *s)
{
	return s != NULL ? s->busy : 0;
}
