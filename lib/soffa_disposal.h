/*  soffa_disposal: a disposal record: what a gallring or an erasure took.
 *
 *  Written into the chain (RK_DISPOSAL, in clear) when records are disposed
 *  of: one per mailbox and retention class, in that mailbox, so that the
 *  agents that read it delete their copies; and one to the inbox of each
 *  agent that sent the records, for the copies it kept of what it sent. It
 *  names the rule, the class, how many and which records (sequence numbers
 *  and message ids), never an identity; an erasure's records carry the
 *  tombstone, a keyed hash of the identity under a secret of its own.
 */
#ifndef SOFFA_DISPOSAL_H
#define SOFFA_DISPOSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_wire.h"

#define SOFFA_DISPOSAL_MAX 1000        /* records one disposal record names */
#define SOFFA_TOMBSTONE_LEN 16

typedef enum {
    SOFFA_DR_NONE = 0,
    SOFFA_DR_RETENTION = 1,            /* the retention period of its class ran out */
    SOFFA_DR_ERASURE = 2,              /* erased on request */
} soffa_disposal_rule_t;

/*  Erasure reasons (`soffa erase --reason`). */
#define SOFFA_ERASURE_REASONS(X)                                                    \
    X(ERRONEOUS_REGISTRATION, 1, "registered by mistake")                           \
    X(WRONG_IDENTITY, 2, "recorded under another person's identity number")         \
    X(NO_LEGAL_BASIS, 3, "processed without a legal basis")                          \
    X(SUBJECT_REQUEST, 4, "the young person's request for erasure was granted (GDPR art. 17)") \
    X(OTHER, 5, "another reason, documented by the data-protection officer")

/*  The reason code of `name` (0 when unknown), and back ("" when unknown). */
uint32_t soffa_erasure_reason(const char *name);
const char *soffa_erasure_reason_name(uint32_t code);
const char *soffa_erasure_reason_text(uint32_t code);

typedef struct {
    soffa_disposal_rule_t rule;
    uint32_t retention_class;          /* soffa_retention_class_t */
    char rule_text[64];                /* "183d from message" */
    uint32_t reason;                   /* erasure reason code */
    uint64_t count;
    uint64_t *seqs;                    /* count of them; borrowed on encode, owned after decode */
    uint8_t (*msg_ids)[16];            /* likewise */
    uint8_t tombstone[SOFFA_TOMBSTONE_LEN];
    bool has_tombstone;
    int64_t at_us;
    char for_mailbox[SOFFA_NAME_MAX];  /* whose records these were */
} soffa_disposal_t;

/*  Encodes d into a new buffer (free with free()). Returns SOFFA_OK,
 *  SOFFA_ERR_TOO_LARGE (more than SOFFA_DISPOSAL_MAX records) or
 *  SOFFA_ERR_NOMEM. */
soffa_err_t soffa_disposal_encode(const soffa_disposal_t *d, uint8_t **buf, size_t *len);

/*  Decodes into *out (release with soffa_disposal_fini). Returns SOFFA_OK,
 *  SOFFA_ERR_TOO_LARGE or SOFFA_ERR_MALFORMED. */
soffa_err_t soffa_disposal_decode(const void *buf, size_t len, soffa_disposal_t *out);

/*  Frees what decode allocated. */
void soffa_disposal_fini(soffa_disposal_t *d);

#endif
