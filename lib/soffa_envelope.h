/*  soffa_envelope: the stored envelope of a record.
 *
 *  What the store keeps around each record's body: its place in the chain
 *  (sequence, the previous record's hash), who sent it and when, the
 *  mailbox it went to, its kind and the keyed hash of its subject. A decoded
 *  envelope's body is borrowed from the decoded object and lives until
 *  soffa_envelope_fini.
 */
#ifndef SOFFA_ENVELOPE_H
#define SOFFA_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_wire.h"

typedef enum {
    SOFFA_RK_NONE = 0,
    SOFFA_RK_MESSAGE = 1,   /* body is an encoded domain message */
    SOFFA_RK_ACCESS = 2,    /* body is an encoded access record */
    SOFFA_RK_CHECKPOINT = 3, /* body is an encoded, signed checkpoint */
    SOFFA_RK_RESTORE = 4,    /* body is an encoded restore record (soffa_restore), in clear */
    SOFFA_RK_DISPOSAL = 5,   /* body is an encoded disposal (soffa_disposal), in clear */
    SOFFA_RK_AGGREGATE = 6,  /* body is key figures (JSON, small counts suppressed) kept before gallring, in clear */
} soffa_record_kind_t;

/*  Whether records of this kind carry personal data, so that their body is
 *  sealed at rest (messages and access records; never checkpoints or
 *  disposals). */
bool soffa_envelope_kind_sealed(soffa_record_kind_t kind);

/*  A stored envelope. */
typedef struct {
    uint32_t version;
    uint64_t seq;
    uint8_t message_id[16];
    char sender_agent[SOFFA_NAME_MAX];
    soffa_role_t sender_role;
    char sender_kommun[5];
    char sender_unit[33];
    int64_t received_at_us;
    char mailbox[SOFFA_NAME_MAX];
    uint8_t prev_hash[SOFFA_HASH_LEN];
    soffa_record_kind_t kind;
    const uint8_t *body;              /* borrowed: the caller's on encode, pb_'s after decode */
    size_t body_len;
    uint8_t subject_key[SOFFA_SUBJECT_KEY_LEN];
    bool has_subject_key;
    uint32_t msg_type;                /* soffa_msg_type_t of the body, 0 for other kinds */
    bool sealed;                      /* the body is sealed under the record's key (store format 4) */
    bool legacy;                      /* a record stored before encryption, sealed whole by the upgrade */
    void *pb_;                        /* private: decoded object owning body */
    uint8_t *own_;                    /* private: an opened body (wiped and freed by fini) */
    size_t own_len_;
} soffa_envelope_t;

#define SOFFA_ENVELOPE_AD 24          /* associated data of a sealed body: seq || message id */


/*  Encodes env into a new buffer (free with free()).
 *  Returns SOFFA_OK, SOFFA_ERR_TOO_LARGE or SOFFA_ERR_NOMEM. */
soffa_err_t soffa_envelope_encode(const soffa_envelope_t *env, uint8_t **buf, size_t *len);

/*  Decodes into *out (which must be released with soffa_envelope_fini).
 *  Returns SOFFA_OK, SOFFA_ERR_MALFORMED, SOFFA_ERR_TOO_LARGE, SOFFA_ERR_VERSION. */
soffa_err_t soffa_envelope_decode(const void *buf, size_t len, soffa_envelope_t *out);

/*  Decodes like soffa_envelope_decode and opens a sealed body with key (the
 *  record's key, SOFFA_RECORD_KEY_LEN bytes, or NULL): out->body is then
 *  the plaintext, owned by out until soffa_envelope_fini. A legacy record
 *  (stored before encryption and sealed whole by the store upgrade) comes
 *  out as the original envelope, with legacy set. A body that is not sealed
 *  comes out as decode gives it. Returns SOFFA_OK, SOFFA_ERR_DISPOSED (sealed,
 *  and no key: the record was disposed of, or no key was given; out then
 *  holds the clear envelope with an empty body), SOFFA_ERR_MASTER_KEY (the
 *  key does not open it, or it was changed) or a decode error. */
soffa_err_t soffa_envelope_open(const void *buf, size_t len, const uint8_t *key, soffa_envelope_t *out);

/*  The original bytes of a legacy record (the envelope as first stored,
 *  whose hash is the one in the chain), opened with key into a new buffer
 *  (free with free()). Returns SOFFA_OK, SOFFA_ERR_INVALID_ARG (not a legacy
 *  record), SOFFA_ERR_MASTER_KEY or SOFFA_ERR_NOMEM. */
soffa_err_t soffa_envelope_legacy_bytes(const void *buf, size_t len, const uint8_t *key, uint8_t **out,
                                        size_t *outlen);

/*  The associated data a record's body is sealed with: seq, message id. */
void soffa_envelope_ad(uint64_t seq, const uint8_t message_id[16], uint8_t out[SOFFA_ENVELOPE_AD]);

/*  Releases what decode allocated; safe on a zeroed or encoded-only env. */
void soffa_envelope_fini(soffa_envelope_t *env);

#endif
