/*  soffa_seal: encryption at rest: the master key, wrapped keys, sealed bodies.
 *
 *  Design (README, "Where personal data lives, and when it goes"):
 *
 *    master key (file outside the data directory, or a systemd credential)
 *     └── wraps the epoch key (DATA_DIR/keys; a new one at every disposal)
 *          ├── wraps the store's secrets (subject-index secret, tombstones)
 *          └── wraps one random owner key per young person (and per day for
 *              records about nobody)
 *               └── wraps one random record key per record
 *                    └── seals that record's body (XChaCha20-Poly1305-IETF)
 *
 *  What stays in clear is the envelope that delivery, replay and the hash
 *  chain need (sequence, previous hash, message id, sender, time, mailbox,
 *  kind, message type); never an identity, a date about a person or free
 *  text. The chain hashes the record as stored, ciphertext included, so it
 *  verifies without a key and keeps verifying after disposal. Disposing of a
 *  record destroys its record key; disposing of a young person destroys the
 *  owner key; both in one store transaction with the disposal record that
 *  says so, so a crash leaves the state before or after.
 *
 *  LMDB does not erase what it deletes (old page copies stay in the file,
 *  and unused parts of live pages can hold stale bytes), so a deleted key
 *  is made worthless instead: the same transaction wraps every surviving
 *  key anew under a new epoch key, and the old epoch key, which lives
 *  outside LMDB in a two-slot file (soffa_seal_keys_*), is overwritten in
 *  place once the transaction has committed.
 *
 *  Wrapped keys and sealed bodies carry their own random nonce; associated
 *  data binds each to its place (a record key to its sequence, a subject key
 *  to its keyed hash), so a wrapped key moved elsewhere does not open.
 *  Keys are wiped (sodium_memzero) when the caller no longer needs them.
 */
#ifndef SOFFA_SEAL_H
#define SOFFA_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"

#define SOFFA_SEAL_KEY 32                                        /* every key */
#define SOFFA_SEAL_NONCE 24                                      /* XChaCha20 nonce */
#define SOFFA_SEAL_TAG 16                                        /* Poly1305 tag */
#define SOFFA_SEAL_OVERHEAD (SOFFA_SEAL_NONCE + SOFFA_SEAL_TAG)  /* sealed = plain + this */
#define SOFFA_SEAL_WRAPPED (SOFFA_SEAL_KEY + SOFFA_SEAL_OVERHEAD) /* a wrapped key */
#define SOFFA_SEAL_ID 8                                          /* a master key's id */

/*  A master key, as loaded: the key itself never leaves this struct; what
 *  wraps is a key derived from it for that purpose (libsodium's KDF). */
typedef struct {
    uint8_t wrap[SOFFA_SEAL_KEY];   /* derived: wraps store secrets and subject keys */
    uint8_t id[SOFFA_SEAL_ID];      /* derived: names the key in logs and in the store */
    bool loaded;
} soffa_seal_master_t;

/*  Makes a new master key file at path (64 hex digits and a newline, mode
 *  0600, created only if it does not exist). Returns SOFFA_OK,
 *  SOFFA_ERR_EXISTS or an I/O error. */
soffa_err_t soffa_seal_master_new(const char *path);

/*  Loads the master key named by spec: "credential:NAME" reads
 *  $CREDENTIALS_DIRECTORY/NAME (a systemd credential); anything else is a
 *  file path (relative paths against base_dir, which may be NULL). The key
 *  is refused when it lies inside data_dir (may be NULL), when others can
 *  read its file, or when it is not 64 hex digits. why gets the reason and
 *  the remedy. Returns SOFFA_OK, SOFFA_ERR_NOT_FOUND (no such file or
 *  credential), SOFFA_ERR_PERMISSION, SOFFA_ERR_CONFIG or SOFFA_ERR_MASTER_KEY. */
soffa_err_t soffa_seal_master_load(const char *spec, const char *base_dir, const char *data_dir,
                                   soffa_seal_master_t *out, char *why, size_t whylen);

/*  The master key's id as 16 hex digits (for logs and refusals). */
void soffa_seal_master_id_hex(const soffa_seal_master_t *m, char out[2 * SOFFA_SEAL_ID + 1]);

/*  Wipes a loaded master key. */
void soffa_seal_master_wipe(soffa_seal_master_t *m);

/*  True in a build configured with -DSOFFA_BENCH_PLAINTEXT=ON, for the
 *  benchmark's comparison only: sealing copies the bytes in the same layout
 *  (zero nonce and tag), unwrapping and opening copy them out, and stores
 *  carry a mark (meta "plaintext") so that this build opens only the stores
 *  it made and every other build refuses them. Packages never set it. */
bool soffa_seal_plaintext(void);

/*  A new random key. */
void soffa_seal_key_new(uint8_t key[SOFFA_SEAL_KEY]);

/*  Wraps key under kek into out (nonce || ciphertext || tag), bound to ad. */
void soffa_seal_wrap(const uint8_t kek[SOFFA_SEAL_KEY], const uint8_t key[SOFFA_SEAL_KEY], const void *ad,
                     size_t adlen, uint8_t out[SOFFA_SEAL_WRAPPED]);

/*  Unwraps what soffa_seal_wrap made. Returns SOFFA_OK, or
 *  SOFFA_ERR_MASTER_KEY when kek or ad is not the one it was wrapped with
 *  (or the bytes were changed); key is then zero. */
soffa_err_t soffa_seal_unwrap(const uint8_t kek[SOFFA_SEAL_KEY], const uint8_t in[SOFFA_SEAL_WRAPPED], const void *ad,
                              size_t adlen, uint8_t key[SOFFA_SEAL_KEY]);

/*  Seals len bytes under key into out, which must hold len +
 *  SOFFA_SEAL_OVERHEAD bytes (nonce || ciphertext || tag), bound to ad. */
void soffa_seal_body(const uint8_t key[SOFFA_SEAL_KEY], const void *plain, size_t len, const void *ad, size_t adlen,
                     uint8_t *out);

/* ---- The epoch key file: DATA_DIR/keys ----
 *
 *  Two fixed slots of SOFFA_SEAL_SLOT bytes: epoch (u64) || the master key's
 *  id || the epoch key wrapped by the master key (bound to the epoch). The
 *  store names the epoch it uses; at most two epochs exist at once, during a
 *  rotation. Slots are written in place and flushed; an unused slot is all
 *  zeros. */
#define SOFFA_SEAL_SLOT (8 + SOFFA_SEAL_ID + SOFFA_SEAL_WRAPPED)

typedef struct {
    uint64_t epoch[2];                             /* 0: empty slot */
    uint8_t id[2][SOFFA_SEAL_ID];                  /* the master key that wrapped it */
    uint8_t wrapped[2][SOFFA_SEAL_WRAPPED];
} soffa_seal_keys_t;

/*  Reads DIR/keys. Returns SOFFA_OK, SOFFA_ERR_NOT_FOUND (no file),
 *  SOFFA_ERR_STORE_CORRUPT (not two slots) or an I/O error. */
soffa_err_t soffa_seal_keys_read(const char *dir, soffa_seal_keys_t *out);

/*  The epoch key of `epoch` in k, unwrapped with the master key. Returns
 *  SOFFA_OK, SOFFA_ERR_NOT_FOUND (no slot holds that epoch) or
 *  SOFFA_ERR_MASTER_KEY (a slot holds it, under another master key: why
 *  names both keys' ids). */
soffa_err_t soffa_seal_keys_get(const soffa_seal_keys_t *k, uint64_t epoch, const soffa_seal_master_t *m,
                                uint8_t key[SOFFA_SEAL_KEY], char *why, size_t whylen);

/*  Writes slot `slot` (0 or 1) of DIR/keys in place and flushes it: epoch
 *  and key wrapped by m, or zeros when key is NULL. Creates the file
 *  (owner-only) when missing. Returns SOFFA_OK or an I/O error. */
soffa_err_t soffa_seal_keys_put(const char *dir, int slot, uint64_t epoch, const uint8_t *key,
                                const soffa_seal_master_t *m);

/*  Writes k as a new DIR/keys (owner-only; must not exist yet), flushed:
 *  for a backup, which carries the slots of its own epoch. Returns SOFFA_OK,
 *  SOFFA_ERR_EXISTS or an I/O error. */
soffa_err_t soffa_seal_keys_write(const char *dir, const soffa_seal_keys_t *k);

/*  Opens a sealed body of len bytes into a new buffer (*plain, freed by
 *  the caller with free(); *plen bytes). Returns SOFFA_OK, SOFFA_ERR_MALFORMED
 *  (too short), SOFFA_ERR_MASTER_KEY (wrong key or ad, or changed bytes) or
 *  SOFFA_ERR_NOMEM. */
soffa_err_t soffa_seal_open(const uint8_t key[SOFFA_SEAL_KEY], const void *sealed, size_t len, const void *ad,
                            size_t adlen, uint8_t **plain, size_t *plen);

#endif
