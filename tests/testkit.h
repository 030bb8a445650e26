/*  testkit: helpers shared by the test programs.
 *
 *  Identity numbers made here are made up: a birth date and birth number the
 *  test chooses, completed with the right check digit. They pass every check
 *  and belong to no one the tests know of.
 */
#ifndef SOFFA_TESTKIT_H
#define SOFFA_TESTKIT_H

#include <stddef.h>
#include <stdint.h>

#include "soffa_msg.h"

/*  Writes a canonical 12-digit personnummer (samordningsnummer when samnr)
 *  for the date and birth number, with the right check digit. */
void tk_pnr(int year, int month, int day, int birth_no, int samnr, char out[13]);

/*  Writes a reserve number: the birth date YYYYMMDD and a 4-character
 *  suffix (e.g. "TF10"). */
void tk_reserve(int year, int month, int day, const char *suffix, char out[13]);

/*  A valid message of `type` about subject `pnr` (a personnummer,
 *  samordningsnummer or reserve number) living in `hemkommun`, as JSON (free
 *  with free()). Every id is fresh. */
char *tk_msg_json(soffa_msg_type_t type, const char *pnr, const char *hemkommun);

/*  The samordningsnummer an identity change made by tk_msg_json replaces:
 *  a young person of 18, born 14 March. */
void tk_old_samnr(char out[13]);

/*  Same, decoded: aborts the test on failure. */
soffa_msg_t *tk_msg(soffa_msg_type_t type, const char *pnr, const char *hemkommun);

/*  A master key for stores the test opens itself (made once per process),
 *  and the same key written to a file at path (0600), for the programs. */
#include "soffa_seal.h"
const soffa_seal_master_t *tk_master(void);
void tk_master_file(const char *path);

/*  Makes a fresh temporary directory (mode 0700); returns a malloc'd path. */
char *tk_tmpdir(const char *tag);

/*  Removes a directory tree (best effort). */
void tk_rmrf(const char *path);

/*  Runs argv (NULL-terminated) with stdout/stderr captured into out/err
 *  (malloc'd, NUL-terminated; may be NULL). Returns the exit status, or -1. */
int tk_run(char *const argv[], char **out, char **err);

#endif

/* ---- A real broker process for integration tests ---- */

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "soffa_client.h"

typedef struct {
    char dir[256];           /* temporary directory: keys, config, data */
    char ipc[300];           /* ipc:// endpoint */
    char tcp[64];            /* tcp:// endpoint */
    char config[300];
    char broker_pub[41];
    pid_t pid;               /* 0 when not running */
} tk_broker_t;

/*  The agents every test broker knows: name, role, kommun, unit(s), scope,
 *  orgnr, span_controllers. school-1415 speaks for units 12345678 and
 *  12345679 of principal TK_SCHOOL_ORGNR. */
extern const char *const TK_AGENTS[][7];
#define TK_SCHOOL_ORGNR "2120001355"

/*  Creates keys and config in a new directory (extra_ini is appended to the
 *  [broker]/[store] part, e.g. "[store]\nmap_size = 1MiB\n"), starts the
 *  broker and waits until it answers. */
tk_broker_t *tk_broker_start(const char *extra_ini);

/*  (Re)starts the broker process of b. Returns false if it did not come up. */
bool tk_broker_spawn(tk_broker_t *b);

/*  Stops the broker with sig (SIGTERM waits for a clean exit; SIGKILL kills). */
void tk_broker_stop(tk_broker_t *b, int sig);

/*  The broker's master key (master.key beside its configuration). */
void tk_broker_master(const tk_broker_t *b, soffa_seal_master_t *m);

/*  Stops the broker and removes its directory. */
void tk_broker_free(tk_broker_t *b);

/*  A connected client for agent `name` (its key from the broker's dir);
 *  over ipc unless tcp. Asserts success. It speaks protocol 1 (one message
 *  per frame), as clients before batch frames did. */
soffa_client_t *tk_client(tk_broker_t *b, const char *name, bool tcp);

/*  The same speaking protocol 2 (batch frames). */
soffa_client_t *tk_client_v2(tk_broker_t *b, const char *name, bool tcp);

/*  Same, returning the error instead of asserting. */
soffa_err_t tk_client_try(tk_broker_t *b, const char *name, bool tcp, int timeout_ms, soffa_client_t **out);

/*  Publishes JSON; returns the broker's code. mailbox/why may be NULL. */
soffa_err_t tk_publish_json(soffa_client_t *c, const char *json, uint64_t *seq, char *mailbox, char *why);

/*  Publishes the n JSON messages in one PUBLISH-BATCH on c (a client of
 *  protocol 2), tags tag0.., and takes the answers (PUBLISH-ACKS), asserting
 *  each tag is answered once within 5 s. codes[i] gets message i's outcome
 *  (SOFFA_OK stored); seqs, dups, mailboxes (SOFFA_NAME_MAX each) and whys
 *  (256 each) may be NULL. */
void tk_publish_batch_json(soffa_client_t *c, const char *const *json, size_t n, uint64_t tag0, soffa_err_t *codes,
                           uint64_t *seqs, bool *dups, char (*mailboxes)[SOFFA_NAME_MAX], char (*whys)[256]);

/*  A client of protocol 1 for agent `name` over ipc, as tk_client. When the
 *  environment has SOFFA_TEST_BATCH=1 it also gets a second connection of
 *  the same agent speaking protocol 2, and tk_publish_any sends through
 *  that one as a PUBLISH-BATCH: a test written for single publishes then
 *  checks that a batch meets the same rules (issue 18). Close with
 *  tk_client_pub_close. */
soffa_client_t *tk_client_pub(tk_broker_t *b, const char *name);
void tk_client_pub_close(soffa_client_t **c);

/*  c's second connection (protocol 2) under SOFFA_TEST_BATCH=1, else NULL. */
soffa_client_t *tk_client_second(soffa_client_t *c);

/*  Publishes JSON on c as tk_publish_json does, or as a PUBLISH-BATCH of
 *  one on c's second connection (see tk_client_pub). */
soffa_err_t tk_publish_any(soffa_client_t *c, const char *json, uint64_t *seq, char *mailbox, char *why);

/*  Messages as JSON to adjust and publish, shared by the integration
 *  tests. tk_json: tk_msg_json as a jansson object. tk_payload: its
 *  payload object (the one named by a message type). tk_pub publishes j
 *  (through tk_publish_any) and frees it, returning the broker's code (mailbox, why: NULL or
 *  SOFFA_NAME_MAX and 256 bytes). tk_pub_ok asserts that j was accepted
 *  into want_mailbox. */
json_t *tk_json(soffa_msg_type_t type, const char *pnr, const char *hemkommun);
json_t *tk_payload(json_t *j);
soffa_err_t tk_pub(soffa_client_t *c, json_t *j, char *mailbox, char *why);
void tk_pub_ok(soffa_client_t *c, json_t *j, const char *want_mailbox);

/*  The string at "field" or "object.field" of j (NULL if absent). */
const char *tk_str(json_t *j, const char *path);

/*  Publishes j (taken) and asserts it was stored in want_mailbox, or refused
 *  with code and a reason containing says; failures name the test's line. */
#define TK_ACCEPTED(c, j, want_mailbox)                                                                    \
    do {                                                                                                   \
        char mb_[SOFFA_NAME_MAX], why_[256];                                                               \
        soffa_err_t rc_ = tk_pub(c, j, mb_, why_);                                                         \
        cr_assert_eq(rc_, SOFFA_OK, "line %d: refused (%s): %s", __LINE__, soffa_errname(rc_), why_);      \
        cr_assert_str_eq(mb_, want_mailbox, "line %d", __LINE__);                                          \
    } while (0)

#define TK_REFUSED(c, j, code, says)                                                                       \
    do {                                                                                                   \
        char mb_[SOFFA_NAME_MAX], why_[256];                                                               \
        soffa_err_t rc_ = tk_pub(c, j, mb_, why_);                                                         \
        cr_assert_eq(rc_, code, "line %d: got %s (%s), wanted %s", __LINE__, soffa_errname(rc_), why_,     \
                     soffa_errname(code));                                                                 \
        cr_assert(strstr(why_, says) != NULL, "line %d: the reason '%s' lacks '%s'", __LINE__, why_, says); \
    } while (0)

/*  Encodes a JSON message (asserting it parses); free with free(). */
uint8_t *tk_encode_json(const char *json, size_t *len);

/*  A raw CURVE DEALER on ctx with agent `name`'s key, connected over ipc:
 *  for sending what soffa_client never would. */
void *tk_raw_dealer(tk_broker_t *b, void *ctx, const char *name);

/*  Receives and decodes one frame within timeout_ms (release with
 *  soffa_frame_fini); false when nothing came. */
bool tk_raw_recv(void *d, soffa_frame_t *f, int timeout_ms);

/*  Sends bytes and expects an ERROR frame with `code`. */
void tk_expect_error(void *d, const void *buf, size_t len, soffa_err_t code);

/*  Encodes and sends one frame. */
void tk_send_frame(void *d, const soffa_frame_t *f);

/*  Greets on a raw socket and takes the WELCOME. */
void tk_raw_hello(void *d);

/*  Notes the hash a DELIVER frame carried (tk_collect does it for what it
 *  collects), so that tk_ack can prove the delivery was read. */
void tk_seen(const soffa_frame_t *deliver);

/*  Acknowledges seq in mailbox, with the hash its delivery carried when the
 *  test saw it (without one when it never did: the broker refuses that). */
soffa_err_t tk_ack(soffa_client_t *c, const char *mailbox, uint64_t seq);

/*  Subscribes and collects up to max deliveries (waiting up to wait_ms in
 *  total, ack each when ack is true): types[] and seqs[] get what came. */
size_t tk_collect(soffa_client_t *c, const char *mailbox, uint32_t window, bool ack, size_t max, int wait_ms,
                  int *types, uint64_t *seqs);

/* ---- A real agent process ---- */

typedef struct {
    char name[64];
    char dir[400];      /* its data directory */
    char config[450];   /* its agent.ini, in the broker's directory */
    char sock[450];     /* its control socket */
    char log[450];      /* its stderr */
    pid_t pid;          /* 0 when not running */
} tk_agent_t;

/*  Writes TAG.ini in b->dir for agent `name` (its data in TAG-data) with
 *  the given broker and broker_key lines, key file, and `extra` lines
 *  appended to [agent] (may be NULL: "[web]" or "[metrics]" sections may
 *  follow in it), and starts the agent (stderr to TAG.log). */
void tk_agent_start(tk_agent_t *a, tk_broker_t *b, const char *name, const char *tag, const char *broker,
                    const char *broker_key, const char *key, const char *extra);

/*  Starts the agent of a again, on its configuration as it is now. */
void tk_agent_spawn(tk_agent_t *a);

/*  SIGTERM, and asserts a clean exit. */
void tk_agent_stop(tk_agent_t *a);

/*  `soffa --socket SOCK --json status --sample 0`: its output (free it). */
char *tk_agent_status(const tk_agent_t *a);

/*  Waits up to ms for the status to contain `want` (and `also`, unless
 *  NULL); returns the last status (free it). */
char *tk_agent_wait(const tk_agent_t *a, const char *want, const char *also, int ms);

/*  How often `what` occurs in the file at path (0 when it cannot be read). */
int tk_file_count(const char *path, const char *what);
