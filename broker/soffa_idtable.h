/*  soffa_idtable: the configured agents, by name and by key.
 *
 *  One table is built from the [agent NAME] sections of the broker's
 *  configuration, at start and again on every reload. Each agent is a
 *  soffa_ident_t with storage of its own and a reference count: the table
 *  holds one reference, each session that authenticated as the agent holds
 *  another. A reload builds a whole new table beside the old one; an agent
 *  whose settings did not change moves over (the same soffa_ident_t, so its
 *  sessions and its session count go on), while a removed or changed one is
 *  only dropped from the table: the sessions that still point at it keep it
 *  alive until they are forgotten. Nothing a session holds ever dangles.
 *
 *  Stages: soffa_idtable_new -> soffa_idtable_section (handed to
 *  soffa_cfg_load with the broker's other sections) -> soffa_idtable_finish
 *  (checks and converts what was loaded) -> lookups -> soffa_idtable_destroy.
 */
#ifndef SOFFA_IDTABLE_H
#define SOFFA_IDTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_cfg.h"
#include "soffa_err.h"
#include "soffa_policy.h"

#define SOFFA_IDENT_KEYS 4              /* public keys one agent may hold at once (a rotation) */

typedef struct soffa_ident {
    soffa_identity_t id;                /* what the policy checks; id.public_key is the first key */
    uint8_t keys[SOFFA_IDENT_KEYS][32]; /* every public key the agent may connect with */
    size_t n_keys;
    uint32_t live;                      /* sessions not closed (sessions_per_agent counts these) */
    uint32_t refs;                      /* the table's reference and one per session */
} soffa_ident_t;

typedef struct soffa_idtable soffa_idtable_t;

/*  An empty table; NULL when out of memory. */
soffa_idtable_t *soffa_idtable_new(void);

/*  The [agent NAME] section for soffa_cfg_load: each section is stashed in
 *  this table, to be checked by soffa_idtable_finish. */
soffa_cfg_section_t soffa_idtable_section(soffa_idtable_t *self);

/*  Checks and converts the stashed sections into identities. load_rc is
 *  what soffa_cfg_load returned (on failure the stash is only freed).
 *  config_path resolves key files and names the file in `why`. Returns
 *  SOFFA_OK, load_rc, or SOFFA_ERR_CONFIG with `why` naming the section,
 *  key and what to write instead. */
soffa_err_t soffa_idtable_finish(soffa_idtable_t *self, const char *config_path, soffa_err_t load_rc, char *why,
                                 size_t whylen);

/*  Lookups (borrowed; valid while the table lives, or longer with a
 *  reference). NULL when there is no such agent. */
soffa_ident_t *soffa_idtable_by_name(const soffa_idtable_t *self, const char *name);
soffa_ident_t *soffa_idtable_by_key(const soffa_idtable_t *self, const uint8_t key[32]);

/*  The agents in the order of the file. */
size_t soffa_idtable_size(const soffa_idtable_t *self);
soffa_ident_t *soffa_idtable_at(const soffa_idtable_t *self, size_t i);

/*  The agents whose inbox is `mailbox`, NULL-terminated; NULL for none. */
const soffa_identity_t *const *soffa_idtable_readers(const soffa_idtable_t *self, const char *mailbox);

/*  True when a and b are configured alike (keys aside): role, kommun,
 *  units, orgnr, scope, span_controllers and the data controller an
 *  auditor reads. */
bool soffa_idtable_same(const soffa_ident_t *a, const soffa_ident_t *b);

/*  True when key is one of ident's keys. */
bool soffa_idtable_has_key(const soffa_ident_t *ident, const uint8_t key[32]);

/*  Moves the agents of `from` whose settings are unchanged into `into`:
 *  each such entry of `into` is replaced by the soffa_ident_t of `from`
 *  (which takes the new keys). Afterwards every soffa_ident_t still only in
 *  `from` is removed or changed. Returns how many moved. */
size_t soffa_idtable_carry_over(soffa_idtable_t *into, const soffa_idtable_t *from);

/*  A reference for a session; soffa_ident_unref drops it (and frees the
 *  agent when it was the last, setting *ident_p to NULL). */
void soffa_ident_ref(soffa_ident_t *ident);
void soffa_ident_unref(soffa_ident_t **ident_p);

/*  Drops the table's references and frees it; NULL-safe. */
void soffa_idtable_destroy(soffa_idtable_t **self_p);

#endif
