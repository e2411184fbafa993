/*
 * policy.c - admission and reinsertion for the flash engine (policy.h,
 * docs/cache-policy.md).
 *
 * Owns three structures, all DRAM, all the store thread's:
 *   - the reference table: a cuckoo filter of 16-bit entries (a 14-bit
 *     tag, a 2-bit saturating count), 4 per block of capacity; every
 *     window of 8 x capacity references, or when a scan of new keys
 *     fills it, the counts halve and zeros leave;
 *   - three miniature caches (all, seen, notail): CLOCK rings of
 *     fingerprints, found through an index.h table, capacity/2^shift
 *     slots each, fed the sampled keys (1 in 2^shift) of every chain in
 *     order and scored on their leading run (prefix hits);
 *   - the scores: hits of each mini, decayed every epoch; at each epoch
 *     the best mini's admission rule becomes the real one (`seen` must
 *     beat `all` by 5%, `notail` by 1%; ties admit all);
 *   - the link memory: each key's parent and whether it ended its
 *     chain, from the latest LOOKUP chains.
 * Cost per reference: a lookup of 8 table entries (and an insertion for
 * a new key); for sampled chains, three index probes. DRAM: 8 bytes per
 * block of capacity for the table (16 where the size rounds up to a
 * power of two), about 40 bytes per mini slot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "policy.h"

#define RT_WAYS 4u       /* slots per bucket */
#define RT_SLOTS_X 4u    /* slots per block of capacity */
#define RT_MIN (1u << 12)
#define RT_MAX (1u << 30)
#define RT_KICKS 64u     /* cuckoo relocations before giving up */
#define WINDOW_X 8u    /* references per window, x capacity */
#define MINI_MIN 16u
#define SEEN_MARGIN 1.05 /* refusing must score 5% more hits to win */
#define MINI_AUTO 2048u /* auto sampling keeps minis at least this big */
#define NOTAIL_MARGIN 1.01 /* refusing unseen tails must score 1% more */
/* at most this many sampled keys of a chain go through the minis, its
 * leading ones: as many as the store's pieces of a chain hold
 * (STORE_CHAIN_PIECE), so none is left out */
#define MINI_CHAIN_MAX 1024u

struct mini {
	uint64_t *fp;  /* slot -> fingerprint, 0 = empty */
	uint64_t *last; /* slot -> p->clock at its last reference */
	uint8_t *ref;  /* CLOCK bit per slot */
	struct store_index *ix; /* fingerprint -> slot (index.h's table) */
	uint32_t cap, hand;
	double score;
	uint64_t hits;
	enum policy_mode rule; /* the admission rule it runs */
};

struct policy {
	struct policy_opts o;
	uint16_t *rt;               /* reference table: tag << 2 | count */
	uint64_t rtmask, window, incs;
	struct mini mini[POLICY_NMINI]; /* all, seen, notail */
	uint64_t clock;         /* references of sampled chains so far */
	unsigned shift;         /* minis see 1 key in 2^shift */
	uint64_t epoch_refs, epoch_len;
	struct policy_stats s;
	uint64_t *links;        /* LINKS pairs (tag, parent), direct-mapped */
};

static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t
pow2_at_least(uint64_t n)
{
	uint64_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/* ---- the reference table: a cuckoo filter with 2-bit counts ----
 *
 * Each entry is 16 bits: a 14-bit tag of the key (never 0) and a count
 * 1..3 (saturating). A key lives in one of 4 slots of one of 2 buckets
 * (partial-key cuckoo hashing: the second bucket is the first xor a hash
 * of the tag), so a lookup reads 8 slots and a false match needs another
 * key's tag in them: about 8 / 16384. Every window of WINDOW_X x capacity
 * references, or sooner when an insertion finds no room (a scan of new
 * keys), all counts halve and entries that reach 0 leave: "referenced
 * twice lately" stays exact for the keys it still holds.
 */

static int
rt_init(struct policy *p, uint64_t capacity)
{
	uint64_t slots = pow2_at_least(RT_SLOTS_X * capacity);

	if (slots < RT_MIN)
		slots = RT_MIN;
	if (slots > RT_MAX)
		slots = RT_MAX;
	free(p->rt);
	p->rt = calloc(slots, sizeof(*p->rt));
	if (p->rt == NULL)
		return -ENOMEM;
	p->rtmask = slots / RT_WAYS - 1; /* buckets - 1 */
	p->window = WINDOW_X * capacity;
	p->incs = 0;
	return 0;
}

static inline uint16_t
rt_tag(uint64_t fp)
{
	uint16_t t = (uint16_t)((mix64(fp ^ 0x3c6ef372fe94f82bull) >> 50) & 0x3fff);

	return t ? t : 1;
}

static inline uint64_t
rt_alt(const struct policy *p, uint64_t b, uint16_t tag)
{
	return (b ^ mix64(tag)) & p->rtmask;
}

/* The slot holding fp's tag, or NULL. */
static uint16_t *
rt_find(const struct policy *p, uint64_t fp)
{
	uint16_t tag = rt_tag(fp);
	uint64_t b1 = mix64(fp) & p->rtmask, b2 = rt_alt(p, b1, tag);

	for (unsigned i = 0; i < RT_WAYS; i++) {
		uint16_t *e1 = &p->rt[b1 * RT_WAYS + i], *e2 = &p->rt[b2 * RT_WAYS + i];

		if (*e1 != 0 && (*e1 >> 2) == tag)
			return e1;
		if (*e2 != 0 && (*e2 >> 2) == tag)
			return e2;
	}
	return NULL;
}

/* Halve every count; entries at 0 leave. */
static void
rt_age(struct policy *p)
{
	for (uint64_t i = 0; i < (p->rtmask + 1) * RT_WAYS; i++) {
		unsigned c = (p->rt[i] & 3) >> 1;

		p->rt[i] = c ? (uint16_t)((p->rt[i] & ~3u) | c) : 0;
	}
	p->incs = 0;
	p->s.resets++;
}

/* Put a new entry (count 1) in; false when there is no room. */
static bool
rt_insert(struct policy *p, uint64_t fp)
{
	uint16_t e = (uint16_t)(rt_tag(fp) << 2 | 1);
	uint64_t b = mix64(fp) & p->rtmask;

	for (unsigned kick = 0; kick < RT_KICKS; kick++) {
		uint64_t b2 = rt_alt(p, b, (uint16_t)(e >> 2));
		uint16_t *slot = NULL;

		for (unsigned i = 0; i < RT_WAYS && slot == NULL; i++) {
			if (p->rt[b * RT_WAYS + i] == 0)
				slot = &p->rt[b * RT_WAYS + i];
			else if (p->rt[b2 * RT_WAYS + i] == 0)
				slot = &p->rt[b2 * RT_WAYS + i];
		}
		if (slot != NULL) {
			*slot = e;
			return true;
		}
		/* evict a victim to its other bucket (deterministic walk) */
		slot = &p->rt[b * RT_WAYS + (kick + (unsigned)b) % RT_WAYS];
		e ^= *slot; /* swap e and *slot */
		*slot ^= e;
		e ^= *slot;
		b = rt_alt(p, b, (uint16_t)(e >> 2));
	}
	/* the homeless entry is lost: a key once seen, now forgotten */
	return false;
}

unsigned
policy_freq(const struct policy *p, uint64_t fp)
{
	const uint16_t *e;

	if (p->rt == NULL)
		return 0;
	e = rt_find(p, fp);
	return e != NULL ? (*e & 3) : 0;
}

static void
rt_ref(struct policy *p, uint64_t fp)
{
	uint16_t *e = rt_find(p, fp);

	if (e != NULL) {
		if ((*e & 3) < 3)
			(*e)++;
	} else if (!rt_insert(p, fp)) {
		rt_age(p); /* full: a scan of new keys ages the table early */
		(void)rt_insert(p, fp);
	}
	if (++p->incs >= p->window)
		rt_age(p);
}

/* ---- miniature caches ---- */

static void
mini_free(struct mini *m)
{
	free(m->fp);
	free(m->last);
	free(m->ref);
	index_destroy(m->ix);
	m->fp = NULL;
	m->last = NULL;
	m->ref = NULL;
	m->ix = NULL;
}

static int
mini_init(struct mini *m, uint32_t cap, enum policy_mode rule)
{
	mini_free(m);
	*m = (struct mini){ .cap = cap, .rule = rule };
	m->fp = calloc(cap, sizeof(*m->fp));
	m->last = calloc(cap, sizeof(*m->last));
	m->ref = calloc(cap, 1);
	if (m->fp == NULL || m->last == NULL || m->ref == NULL ||
	    index_create(cap, &m->ix) < 0) {
		mini_free(m);
		return -ENOMEM;
	}
	return 0;
}

/* Put fp in the ring at the CLOCK hand, evicting what is there; returns
 * its slot, or -ENOMEM (the index could not grow: fp stays out). */
static int64_t
mini_insert(struct mini *m, uint64_t fp)
{
	struct index_loc loc = { .len4k = 1 }; /* only .slot means anything */
	uint32_t s;

	while (m->fp[m->hand] != 0 && m->ref[m->hand]) {
		m->ref[m->hand] = 0;
		m->hand = (m->hand + 1) % m->cap;
	}
	s = m->hand;
	loc.slot = s;
	if (index_upsert(m->ix, (struct index_hkey){ fp }, &loc) < 0)
		return -ENOMEM;
	if (m->fp[s] != 0)
		index_remove(m->ix, (struct index_hkey){ m->fp[s] });
	m->fp[s] = fp;
	m->ref[s] = 0;
	m->hand = (s + 1) % m->cap;
	return s;
}

/* The admit-all mini saw fp again after d sampled references. */
static void
reuse_note(struct policy *p, uint64_t d, struct policy_reuse *out)
{
	unsigned b = 0;

	d <<= p->shift; /* in references of the whole stream */
	p->s.reuse_sum += d;
	while (b + 1 < POLICY_REUSE_BUCKETS && (d >> (b + 1)) != 0)
		b++;
	p->s.reuse[b]++;
	if (out != NULL) {
		out->sum += d;
		out->n[b]++;
	}
}

/*
 * A sampled chain through one mini: its leading run of present keys
 * scores (prefix hits: what the real cache earns; a key present behind a
 * miss earns nothing), then every key is touched or, if the mini's rule
 * admits it, inserted. The admit-all mini's reuse figures also go to
 * out (NULL: none).
 */
static void
mini_chain(struct policy *p, struct mini *m, const uint64_t *fps,
	   const uint64_t *keys, unsigned n, bool ends,
	   struct policy_reuse *out)
{
	bool lead = true;

	for (unsigned i = 0; i < n; i++) {
		struct index_loc loc;
		int64_t s;

		p->clock += m == &p->mini[0];
		if (index_lookup(m->ix, (struct index_hkey){ fps[i] }, &loc) == 0) {
			s = loc.slot;
			m->ref[s] = 1;
			if (m == &p->mini[0]) {
				reuse_note(p, p->clock - m->last[s], out);
				m->last[s] = p->clock;
			}
			if (lead) {
				m->hits++;
				m->score += 1;
			}
			continue;
		}
		lead = false;
		p->s.reuse_far += m == &p->mini[0];
		if (out != NULL && m == &p->mini[0])
			out->far++;
		if ((m->rule == POLICY_ADMIT_SEEN ||
		     (m->rule == POLICY_ADMIT_NOTAIL && ends && i + 1 == n)) &&
		    policy_freq(p, keys[i]) < 2)
			continue;
		s = mini_insert(m, fps[i]);
		if (s >= 0)
			m->last[s] = p->clock;
	}
}

static int
minis_init(struct policy *p)
{
	uint64_t cap;

	if (p->o.sample_shift == 0) { /* auto: minis of >= MINI_AUTO slots */
		p->shift = 0;
		while (p->shift < 8 && (p->o.capacity >> (p->shift + 1)) >=
					       MINI_AUTO)
			p->shift++;
	} else {
		p->shift = p->o.sample_shift;
	}
	cap = p->o.capacity >> p->shift;
	int rc;

	if (cap < MINI_MIN)
		cap = MINI_MIN;
	if (cap > INDEX_MAX_SLOT) /* the index keeps slots in 24 bits */
		cap = INDEX_MAX_SLOT;
	rc = mini_init(&p->mini[0], (uint32_t)cap, POLICY_ADMIT_ALL);
	if (rc == 0)
		rc = mini_init(&p->mini[1], (uint32_t)cap, POLICY_ADMIT_SEEN);
	if (rc == 0)
		rc = mini_init(&p->mini[2], (uint32_t)cap, POLICY_ADMIT_NOTAIL);
	p->epoch_len = 2 * cap; /* a mini turns over about once an epoch */
	p->epoch_refs = 0;
	return rc;
}

/*
 * An epoch ends: the best admission rule wins, scores age. Refusing is
 * the riskier choice (a refused block is a sure miss next time), so a
 * rule that refuses must beat admitting everything clearly: `seen`,
 * which refuses every new block, by 5%; `notail`, which refuses one
 * block per chain, by 1%. Admitting everything wins ties; between
 * rules that do not clear their margin, the mode stays as it is.
 */
static void
epoch_end(struct policy *p)
{
	double sc[POLICY_NMODES] = { 0 };
	double all, seen, notail;
	unsigned want = POLICY_ADMIT_ALL;

	sc[POLICY_ADMIT_ALL] = all = p->mini[0].score;
	sc[POLICY_ADMIT_SEEN] = seen = p->mini[1].score;
	sc[POLICY_ADMIT_NOTAIL] = notail = p->mini[2].score;
	if (notail > all * NOTAIL_MARGIN + 8)
		want = POLICY_ADMIT_NOTAIL;
	/* seen refuses more than notail: it must beat it by the margin seen
	 * has over notail's, so that the two do not take turns */
	if (seen > all * SEEN_MARGIN + 8 &&
	    seen > notail * (SEEN_MARGIN / NOTAIL_MARGIN))
		want = POLICY_ADMIT_SEEN;
	/* a refusing rule in force stays while it scores above all, though
	 * no longer by its margin (no flapping across it); below all, it
	 * goes */
	if (want == POLICY_ADMIT_ALL && p->s.mode != POLICY_ADMIT_ALL &&
	    sc[p->s.mode] > all)
		want = p->s.mode;

	if (want != p->s.mode)
		p->s.switches++;
	p->s.mode = want;
	for (unsigned i = 0; i < POLICY_NMINI; i++)
		p->mini[i].score *= 0.8;
	p->epoch_refs = 0;
}

/* ---- the interface ---- */

/* ---- parent links: what a LOOKUP chain says until the block is put ----
 *
 * A chain names each key's parent (the key before it). The store wants
 * it when the block is put, to write it into the block's summary entry
 * (reclaim drops a block whose parent is gone: it can never hit). Puts
 * follow their LOOKUP within a request's life, so a small direct-mapped
 * table of the latest links is enough: a link overwritten before its
 * put only makes that block a root, which is what it was before. Links
 * are of key hashes within a scope, not of one namespace's fingerprints:
 * an engine that keeps each layer in a namespace of its own looks the
 * chain up in one or a few of them and puts it in all. */
#define LINKS (1u << 16) /* 1 MiB */

uint64_t
policy_key(uint64_t scope, uint64_t kh)
{
	uint64_t t = mix64(kh ^ mix64(scope ^ 0x7f4a7c159e3779b9ull));

	return t ? t : 1;
}

/* An entry is (tag with bit 0 = "the tail of its chain", parent). */
static uint64_t *
link_at(const struct policy *p, uint64_t scope, uint64_t kh, uint64_t *tag)
{
	uint64_t t = policy_key(scope, kh);

	*tag = t | 1; /* never 0 (an empty entry), whatever bit 0 says */
	return &p->links[2 * (t & (LINKS - 1))];
}

void
policy_link_chain(struct policy *p, uint64_t scope, uint64_t up,
		  const uint64_t *khs, unsigned n, bool ends)
{
	for (unsigned i = 0; i < n && p->links != NULL; i++) {
		uint64_t tag, *l = link_at(p, scope, khs[i], &tag);
		bool tail = ends && i + 1 == n;

		up = i ? khs[i - 1] : up;
		if (up != 0) {
			l[0] = tail ? tag : tag & ~1ull;
			l[1] = up;
		} else if ((l[0] | 1) == tag) {
			/* a chain's first key, known here: its tail bit
			 * follows this chain, its parent (from a chain that
			 * went through it) stays */
			l[0] = tail ? tag : tag & ~1ull;
		} else if (tail) {
			/* a chain of one key: the newest wins the entry, as
			 * a link does */
			l[0] = tag;
			l[1] = 0;
		}
	}
}

static const uint64_t *
link_find(const struct policy *p, uint64_t scope, uint64_t kh)
{
	uint64_t tag;
	const uint64_t *l;

	if (p->links == NULL)
		return NULL;
	l = link_at(p, scope, kh, &tag);
	return l[0] != 0 && (l[0] | 1) == tag ? l : NULL;
}

uint64_t
policy_parent(const struct policy *p, uint64_t scope, uint64_t kh)
{
	const uint64_t *l = link_find(p, scope, kh);

	return l != NULL ? l[1] : 0;
}

bool
policy_tail(const struct policy *p, uint64_t scope, uint64_t kh)
{
	const uint64_t *l = link_find(p, scope, kh);

	return l != NULL && (l[0] & 1);
}

int
policy_create(const struct policy_opts *o, struct policy **out)
{
	struct policy *p;

	if (o == NULL || o->capacity == 0 || o->sample_shift > 16 ||
	    o->mode >= POLICY_NMODES)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->o = *o;
	p->s.mode = o->mode == POLICY_AUTO ? POLICY_ADMIT_ALL : o->mode;
	p->s.capacity = o->capacity;
	p->links = calloc(2 * (size_t)LINKS, sizeof(*p->links));
	if (p->links == NULL || rt_init(p, o->capacity) < 0 ||
	    minis_init(p) < 0) {
		policy_destroy(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void
policy_destroy(struct policy *p)
{
	if (p == NULL)
		return;
	free(p->rt);
	free(p->links);
	for (unsigned i = 0; i < POLICY_NMINI; i++)
		mini_free(&p->mini[i]);
	free(p);
}

void
policy_set_capacity(struct policy *p, uint64_t blocks)
{
	uint64_t cur = p->o.capacity;

	if (blocks == 0)
		return;
	/* resize only on a real change: resizing forgets the minis */
	if (blocks * 8 > cur * 7 && blocks * 8 < cur * 9)
		return;
	p->o.capacity = blocks;
	p->s.capacity = blocks;
	p->window = WINDOW_X * blocks;
	if (pow2_at_least(RT_SLOTS_X * blocks) > (p->rtmask + 1) * RT_WAYS &&
	    (p->rtmask + 1) * RT_WAYS < RT_MAX &&
	    rt_init(p, blocks) < 0) { /* no memory: admit all, count none */
		p->o.mode = POLICY_ADMIT_ALL;
		p->s.mode = POLICY_ADMIT_ALL;
	}
	(void)minis_init(p); /* on -ENOMEM: no minis, the mode stays */
}

bool
policy_sampled(uint64_t fp, unsigned shift)
{
	return shift == 0 ||
	       (mix64(fp ^ 0x2545f4914f6cdd1dull) >> (64 - shift)) == 0;
}

void
policy_ref_chain(struct policy *p, const uint64_t *fps, const uint64_t *keys,
		 unsigned n, bool ends, struct policy_reuse *out)
{
	uint64_t sfp[MINI_CHAIN_MAX], skey[MINI_CHAIN_MAX];
	const uint64_t *sf, *sk;
	bool ends_seen;
	unsigned m;

	if (p->rt == NULL || n == 0)
		return;
	p->s.refs += n;
	for (unsigned i = 0; i < n; i++)
		rt_ref(p, keys != NULL ? keys[i] : fps[i]);
	if (p->mini[0].fp == NULL || p->mini[1].fp == NULL ||
	    p->mini[2].fp == NULL)
		return;
	/*
	 * Keys are sampled one by one, 1 in 2^shift by fingerprint (a key
	 * always or never), and the minis see each chain's sampled keys in
	 * order and score their leading run. Sampling whole chains by their
	 * first key, as before, sampled every chain or none where all
	 * chains share a root (a chat's or a RAG service's system prompt).
	 */
	sf = fps;
	sk = keys != NULL ? keys : fps;
	m = n;
	if (p->shift > 0) {
		m = 0;
		ends_seen = false;
		for (unsigned i = 0; i < n && m < MINI_CHAIN_MAX; i++) {
			if (!policy_sampled(fps[i], p->shift))
				continue;
			sfp[m] = fps[i];
			skey[m++] = keys != NULL ? keys[i] : fps[i];
			ends_seen = i + 1 == n; /* the chain's tail is in */
		}
		if (m == 0)
			return;
		sf = sfp;
		sk = skey;
		ends = ends && ends_seen;
	}
	p->s.mini_refs += m;
	for (unsigned i = 0; i < POLICY_NMINI; i++)
		mini_chain(p, &p->mini[i], sf, sk, m, ends, out);
	p->epoch_refs += m;
	if (p->epoch_refs >= p->epoch_len && p->o.mode == POLICY_AUTO)
		epoch_end(p);
}

void
policy_ref(struct policy *p, uint64_t fp)
{
	policy_ref_chain(p, &fp, NULL, 1, false, NULL);
}

bool
policy_admit(struct policy *p, uint64_t key, bool tail)
{
	bool yes = p->s.mode == POLICY_ADMIT_ALL ||
		   (p->s.mode == POLICY_ADMIT_NOTAIL && !tail) ||
		   policy_freq(p, key) >= 2;

	if (yes)
		p->s.admitted++;
	else
		p->s.refused++;
	return yes;
}

bool
policy_keep(const struct policy *p, uint64_t fp, uint8_t flags,
	    bool orphan, unsigned weight, unsigned age)
{
	(void)fp;
	if (flags & INDEX_F_PINNED)
		return true;
	if (orphan && !p->o.keep_orphans)
		return false;
	/* the client said: not worth a write */
	if ((flags & INDEX_F_LOW) || weight == 0)
		return false;
	return (flags & (INDEX_F_REF | INDEX_F_HIGH)) != 0 || age + 1 < weight;
}

bool
policy_keep_orphans(const struct policy *p)
{
	return p->o.keep_orphans;
}

void
policy_get_stats(const struct policy *p, struct policy_stats *out)
{
	*out = p->s;
	for (unsigned i = 0; i < POLICY_NMINI; i++)
		out->mini_hits[i] = p->mini[i].hits;
}

const char *
policy_mode_name(unsigned mode)
{
	switch (mode) {
	case POLICY_AUTO: return "auto";
	case POLICY_ADMIT_ALL: return "all";
	case POLICY_ADMIT_SEEN: return "seen";
	case POLICY_ADMIT_NOTAIL: return "notail";
	default: return "?";
	}
}

int
policy_mode_parse(const char *s, enum policy_mode *out)
{
	for (unsigned m = POLICY_AUTO; m < POLICY_NMODES; m++)
		if (strcmp(s, policy_mode_name(m)) == 0) {
			*out = (enum policy_mode)m;
			return 0;
		}
	return -EINVAL;
}
