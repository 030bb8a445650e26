/*  soffa_case: the KAA case register and the identity alias map.
 *
 *  Derived state the broker keeps in the store's state table, changed in the
 *  same transaction as the record that changes it, and read before the
 *  policy decides (DOMAIN.md §5.4, issue 13 rules 8 and 10):
 *
 *    'C' case_id(16)              -> person(16) kommun(4) open(1) closed_on(4) failed(4) channels(4)
 *                                    not_reached(1) seq(8): a case, as its last record left it
 *                                    (seq: that record; when closed, the closing)
 *    'c' person(16) kommun(4)     -> case_id(16): the young person's latest case with that KAA
 *    'T' case_id(16)              -> team(16) owner(32): the team holding a case and its contact
 *                                    person's staff reference, NUL-padded (issue 19, item 4)
 *    'a' key(16)                  -> key(16): an identity number replaced by another
 *    'V' "cases-1"                -> "": the register was built from the history
 *
 *  Identity numbers appear only as the store's keyed subject hashes; a
 *  person is the key of their newest number (the alias map followed).
 */
#ifndef SOFFA_CASE_H
#define SOFFA_CASE_H

#include "soffa_broker_int.h"

/* The facts the policy decides a message v from sender on: the subject's
 * protection, the case a case event names, what the alias map says of an
 * identity change, and the alias map itself (same_person). */
void soffa_case_facts(soffa_broker_t *self, const soffa_msg_view_t *v, const soffa_identity_t *sender,
                      soffa_policy_facts_t *facts);

/* Adds to p the state changes an allowed message v from sender brings (case
 * register, alias map; p->alias_from for an identity change). Call after
 * the policy allowed it, with nothing committed in between. */
void soffa_case_ops(soffa_broker_t *self, const soffa_msg_view_t *v, const soffa_identity_t *sender,
                    soffa_pending_t *p);

/* The team holding the young person's latest case with kommun's KAA ("" for
 * none), and the team of a configured agent: the policy's facts->case_team
 * and agent_team. ctx is the broker. */
void soffa_case_team(void *ctx, const char *subject_id, const char *kommun, char out[17]);
void soffa_case_agent_team(void *ctx, const char *agent, char out[17]);

/* The alias map as the policy asks it: do identity numbers a and b name the
 * same person? ctx is the broker. */
bool soffa_case_same_person(void *ctx, const char *a, const char *b);

/* The person behind identity number id: the keyed hash of their newest number. */
void soffa_case_person(soffa_broker_t *self, const char *id, uint8_t out[SOFFA_SUBJECT_KEY_LEN]);

/* Builds the register and the alias map from the history, once (a store
 * written before they existed); a no-op when they are built. Returns
 * SOFFA_OK or a store error. */
soffa_err_t soffa_case_build(soffa_broker_t *self);

#endif
