/*  soffa_import: the school's commands for its data: `soffa import`,
 *  `soffa sync ss12000`, `soffa pending`, `soffa approve`, `soffa reject`.
 *
 *  Files and API pages are read and checked here, in full, before anything
 *  is handed to the agent; the agent then derives and records in one
 *  transaction (soffa_school). With a bad row or pupil nothing is handed
 *  over unless --skip-bad says the good ones may go. What people read is
 *  Swedish, in tables; identity numbers are shown masked ("0803…").
 */
#ifndef SOFFA_IMPORT_H
#define SOFFA_IMPORT_H

#include <jansson.h>
#include <stdbool.h>

/*  Sends one control request to the local agent (takes req) and returns the
 *  answer, or NULL with a message already printed. */
typedef json_t *(*soffa_import_call_fn)(void *ctx, const char *cmd, json_t *req, int timeout_ms);

/*  The commands; argv[0] is the command's name. Return the exit status. */
int soffa_import_cmd(int argc, char **argv, bool json, soffa_import_call_fn call, void *ctx);
int soffa_import_sync_cmd(int argc, char **argv, bool json, soffa_import_call_fn call, void *ctx);
int soffa_import_pending_cmd(int argc, char **argv, bool json, soffa_import_call_fn call, void *ctx);
int soffa_import_review_cmd(int argc, char **argv, bool json, soffa_import_call_fn call, void *ctx);

#endif
