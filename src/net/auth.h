/*
 * auth.h - connection authentication and block-key hashing (SHA-256 and
 * HMAC-SHA256 from OpenSSL's libcrypto; see docs/protocol.md).
 */
#ifndef GPC_NET_AUTH_H
#define GPC_NET_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_MAC_LEN 32u

/* MAC = HMAC-SHA256(secret, "gpucache-auth-v1" || nonce[32] || u16 len ||
 * tenant || u32 shard). Returns 0 or -EIO. */
int auth_mac(const uint8_t *secret, size_t secret_len, const uint8_t *nonce,
	     const char *tenant, uint32_t shard, uint8_t *mac);
/* Constant-time comparison of two MACs: 1 if equal. */
int auth_mac_equal(const uint8_t *a, const uint8_t *b);
/* Fill buf with len cryptographically random bytes: 0 or -EIO. */
int auth_random(uint8_t *buf, size_t len);

#endif
