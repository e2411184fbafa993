/*
 * auth.c - the HMAC challenge-response of connection set-up and the
 * chained block-key hash offered to clients (gpc_key_chain). libcrypto
 * does the cryptography; nothing here keeps state.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/bytes.h"
#include "gpucache/gpucache.h"
#include "auth.h"

static const char AUTH_TAG[] = "gpucache-auth-v1";

int
auth_mac(const uint8_t *secret, size_t secret_len, const uint8_t *nonce,
	 const char *tenant, uint32_t shard, uint8_t *mac)
{
	uint8_t msg[sizeof(AUTH_TAG) - 1 + 32 + 2 + 256 + 4];
	size_t tl = strlen(tenant), n = 0;
	unsigned int ml = 0;

	if (tl > 256)
		return -EINVAL;
	memcpy(msg, AUTH_TAG, sizeof(AUTH_TAG) - 1);
	n += sizeof(AUTH_TAG) - 1;
	memcpy(msg + n, nonce, 32);
	n += 32;
	put_le16(msg + n, (uint16_t)tl);
	n += 2;
	memcpy(msg + n, tenant, tl);
	n += tl;
	put_le32(msg + n, shard);
	n += 4;
	if (HMAC(EVP_sha256(), secret, (int)secret_len, msg, n, mac, &ml) ==
		    NULL || ml != AUTH_MAC_LEN)
		return -EIO;
	return 0;
}

int
auth_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return CRYPTO_memcmp(a, b, AUTH_MAC_LEN) == 0;
}

int
auth_random(uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);

		if (n < 0 && errno != EINTR)
			return -EIO;
		if (n > 0)
			got += (size_t)n;
	}
	return 0;
}

int
gpc_key_chain(const uint8_t *parent, const void *salt, size_t salt_len,
	      const uint32_t *tokens, size_t ntokens, uint8_t *out)
{
	static const uint8_t zero[32];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t le[4];
	unsigned int len = 0;
	int ok;

	if (md == NULL)
		return -ENOMEM;
	if (salt_len > UINT32_MAX || ntokens > UINT32_MAX ||
	    (salt_len && salt == NULL) || (ntokens && tokens == NULL)) {
		EVP_MD_CTX_free(md);
		return -EINVAL;
	}
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	ok = ok && EVP_DigestUpdate(md, parent ? parent : zero, 32);
	put_le32(le, (uint32_t)salt_len);
	ok = ok && EVP_DigestUpdate(md, le, 4);
	ok = ok && (salt_len == 0 || EVP_DigestUpdate(md, salt, salt_len));
	put_le32(le, (uint32_t)ntokens);
	ok = ok && EVP_DigestUpdate(md, le, 4);
	for (size_t i = 0; ok && i < ntokens; i++) {
		put_le32(le, tokens[i]);
		ok = EVP_DigestUpdate(md, le, 4);
	}
	ok = ok && EVP_DigestFinal_ex(md, out, &len) && len == 32;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -EIO;
}
