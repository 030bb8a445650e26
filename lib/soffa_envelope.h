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
    SOFFA_RK_RESTORE = 4,   /* body is an encoded restore record (soffa_restore) */
} soffa_record_kind_t;

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
    void *pb_;                        /* private: decoded object owning body */
} soffa_envelope_t;


/*  Encodes env into a new buffer (free with free()).
 *  Returns SOFFA_OK, SOFFA_ERR_TOO_LARGE or SOFFA_ERR_NOMEM. */
soffa_err_t soffa_envelope_encode(const soffa_envelope_t *env, uint8_t **buf, size_t *len);

/*  Decodes into *out (which must be released with soffa_envelope_fini).
 *  Returns SOFFA_OK, SOFFA_ERR_MALFORMED, SOFFA_ERR_TOO_LARGE, SOFFA_ERR_VERSION. */
soffa_err_t soffa_envelope_decode(const void *buf, size_t len, soffa_envelope_t *out);

/*  Releases what decode allocated; safe on a zeroed or encoded-only env. */
void soffa_envelope_fini(soffa_envelope_t *env);

#endif
