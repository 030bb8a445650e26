/*  Fuzz target: soffa-web's form bodies (application/x-www-form-urlencoded)
 *  as the HTTP layer parses them, and what the pages do with the values:
 *  identity numbers parsed, a message field set through the schema, values
 *  escaped into HTML. A parse that succeeds must give only valid UTF-8
 *  without NUL or control characters other than tab, CR and LF. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "soffa_id.h"
#include "soffa_msg.h"
#include "soffa_web_http.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > SOFFA_WEB_BODY_MAX)
        return 0;
    soffa_web_form_t f;
    if (!soffa_web_form_parse((const char *) data, size, &f))
        return 0;
    for (size_t i = 0; i < f.n; i++) {
        for (const unsigned char *p = (const unsigned char *) f.value[i]; *p; p++)
            if ((*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n') || *p == 0x7f)
                abort();   /* the parser let a control character through */
        json_t *js = json_string(f.value[i]);
        if (!js)
            abort();       /* jansson refuses invalid UTF-8: the parser must have too */
        json_decref(js);
    }
    const char *pupil = soffa_web_form_get(&f, "pupil");
    char canon[13], why[256];
    if (pupil)
        (void) soffa_id_parse(pupil, NULL, canon, NULL);
    json_t *pl = json_object();
    for (size_t i = 0; i < f.n; i++)
        (void) soffa_msg_json_set(pl, "consent_recorded", f.name[i], f.value[i], why, sizeof why);
    json_decref(pl);
    soffa_web_buf_t b = {0};
    for (size_t i = 0; i < f.n; i++)
        soffa_web_buf_esc(&b, f.value[i]);
    if (b.p && (strchr(b.p, '<') || strchr(b.p, '"')))
        abort();           /* escaping let markup through */
    soffa_web_buf_fini(&b);
    char joined[300];
    soffa_web_form_join(&f, "recipients", joined, sizeof joined);
    soffa_web_form_fini(&f);
    return 0;
}
