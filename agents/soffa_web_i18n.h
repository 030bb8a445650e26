/*  soffa_web_i18n: every word soffa-web shows, in one table per language.
 *
 *  Swedish is the language of the pages (English is not written yet; a
 *  second table with the same keys is all it takes). Codes of the message
 *  schema are shown as words ("SIGNIFICANT" of unexcused_band is
 *  "Betydande ogiltig frånvaro"), never as they travel.
 */
#ifndef SOFFA_WEB_I18N_H
#define SOFFA_WEB_I18N_H

#include <stddef.h>

/*  The text of key; a key without text comes back as "[key]", so a missing
 *  text is visible on the page and in the tests. */
const char *soffa_web_tr(const char *key);

/*  The words for code of schema field `field` (falls back to the code). */
const char *soffa_web_code(const char *field, const char *code);

/*  The name of a message type ("absence_reported": "Anmäld frånvaro"). */
const char *soffa_web_type_name(const char *type);

/*  The label of a payload field. */
const char *soffa_web_field_label(const char *field);

/*  An agency role ("kaa") as people say it. */
const char *soffa_web_role_label(const char *role);

/*  An error code name ("CONSENT") in words. */
const char *soffa_web_err_text(const char *code);

/*  Every key of the Swedish table, for tests (NULL past the end). */
const char *soffa_web_tr_key(size_t i);

#endif
