/*  Fuzz target: `soffa import`: lines split into columns, the header naming
 *  fields, each cell set on a message by the schema, identity columns parsed,
 *  and the result built into a message and validated. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_csv.h"
#include "soffa_id.h"
#include "soffa_msg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *save = NULL, *header[64], *cols[64];
    size_t nh = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strlen(line) > 4096)
            continue;
        if (!nh) {
            nh = soffa_csv_split(line, header, 64);
            continue;
        }
        size_t n = soffa_csv_split(line, cols, 64);
        json_t *m = json_object(), *pl = json_object(), *subj = json_object();
        char why[256], canon[13];
        for (size_t i = 0; i < n && i < nh; i++) {
            if (!strcmp(header[i], "pupil")) {
                if (soffa_id_parse(cols[i], NULL, canon, NULL) == SOFFA_OK)
                    json_object_set_new(subj, "id", json_string(canon));
            } else if (!strcmp(header[i], "hemkommun")) {
                json_object_set_new(subj, "hemkommun", json_string(cols[i]));
            } else if (cols[i][0]) {
                (void) soffa_msg_json_set(pl, "absence_reported", header[i], cols[i], why, sizeof why);
            }
        }
        json_object_set_new(m, "subject", subj);
        json_object_set_new(m, "absence_reported", pl);
        char *s = json_dumps(m, JSON_COMPACT);
        soffa_msg_t *msg = NULL;
        if (s && soffa_msg_from_json(s, &msg, why, sizeof why) == SOFFA_OK)
            (void) soffa_msg_validate(msg, 1795000000000000LL, why, sizeof why);
        soffa_msg_destroy(&msg);
        free(s);
        json_decref(m);
    }
    free(text);
    return 0;
}
