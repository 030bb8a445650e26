/*  soffa_msg_valid: validation of domain messages (see soffa_msg_valid.h). */
#include "soffa_msg_valid.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_id.h"
#include "soffa_uuid.h"
#include "soffa_msg_int.h"

/* ---- Validation --------------------------------------------------------- */

typedef struct {
    char *why;
    size_t whylen;
    int64_t now_us;
} s_vctx_t;

static soffa_err_t
s_bad(s_vctx_t *c, soffa_err_t rc, const char *field, const char *fmt, ...)
{
    if (c->why && c->whylen) {
        char detail[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        snprintf(c->why, c->whylen, "%s: %s", field, detail);
    }
    return rc;
}

#define S_CHECK(expr)                     \
    do {                                  \
        soffa_err_t rc_ = (expr);         \
        if (rc_ != SOFFA_OK)              \
            return rc_;                   \
    } while (0)

/* Number of UTF-8 characters in s, or -1 if s is not valid UTF-8 or holds
 * control characters other than newline and tab. */
static long
s_utf8_chars(const char *s)
{
    long n = 0;
    const unsigned char *p = (const unsigned char *) s;
    while (*p) {
        int extra;
        if (*p < 0x80) {
            if (*p < 0x20 && *p != '\n' && *p != '\t')
                return -1;
            extra = 0;
        } else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2) {
            extra = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            extra = 2;
        } else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4) {
            extra = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++)
            if ((*p & 0xc0) != 0x80)
                return -1;
        n++;
    }
    return n;
}

static soffa_err_t
s_text(s_vctx_t *c, const char *field, const char *s, long max, bool required)
{
    long n = s ? s_utf8_chars(s) : 0;
    if (n < 0)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "not valid UTF-8 text");
    if (required && n == 0)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required");
    if (n > max)
        return s_bad(c, SOFFA_ERR_TOO_LARGE, field, "longer than %ld characters", max);
    return SOFFA_OK;
}

static soffa_err_t
s_uuid(s_vctx_t *c, const char *field, ProtobufCBinaryData b, bool required)
{
    if (b.len == 0)
        return required ? s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required") : SOFFA_OK;
    if (b.len != SOFFA_UUID_LEN)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "must be a 16-byte id");
    if (soffa_uuid_is_nil(b.data))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "must not be the nil id");
    return SOFFA_OK;
}

/* v must be a value the schema declares for the field's enumeration
 * (0, unspecified, only when not required). */
static soffa_err_t
s_enum(s_vctx_t *c, const char *field, const ProtobufCEnumDescriptor *d, int v, bool required)
{
    if (v == 0 && !required)
        return SOFFA_OK;
    if (v == 0)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required");
    if (!protobuf_c_enum_descriptor_get_value(d, v))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "unknown code %d", v);
    return SOFFA_OK;
}

static soffa_err_t
s_date(s_vctx_t *c, const char *field, uint32_t v, bool required)
{
    if (v == 0)
        return required ? s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required") : SOFFA_OK;
    if (!soffa_date_from_int(v, NULL) || v < 19000101 || v > 21001231)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "not a real date (%u)", v);
    return SOFFA_OK;
}

static soffa_err_t
s_skolenhet(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required");
    if (soffa_skolenhet_check(s) != SOFFA_OK)
        return s_bad(c, SOFFA_ERR_SKOLENHET, field, "school unit code must be 8 digits");
    return SOFFA_OK;
}

static soffa_err_t
s_kommun(s_vctx_t *c, const char *field, const char *s, bool required)
{
    if (!s || !*s)
        return required ? s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required") : SOFFA_OK;
    if (soffa_kommun_check(s) != SOFFA_OK)
        return s_bad(c, SOFFA_ERR_KOMMUN, field, "'%.8s' is not one of the 290 municipality codes", s);
    return SOFFA_OK;
}

/* field + suffix into out (cheaper than snprintf on every valid message). */
static void
s_path(char *out, size_t cap, const char *field, const char *suffix)
{
    size_t a = strlen(field), b = strlen(suffix);
    if (a >= cap)
        a = cap - 1;
    if (b >= cap - a)
        b = cap - a - 1;
    memcpy(out, field, a);
    memcpy(out + a, suffix, b);
    out[a + b] = '\0';
}

/* ---- Code and reference fields: strict forms -------------------------------
 * Only three fields carry free text (the at-risk note, the referral summary
 * and the concern report's description). Every other string is a code or a
 * reference with its own character set and length, so nothing else can
 * carry prose (a diagnosis, a placement) past validation. */

static bool
s_in(char ch, const char *set)
{
    return ch && strchr(set, ch) != NULL;
}

#define S_DIGITS "0123456789"
#define S_UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define S_LOWER "abcdefghijklmnopqrstuvwxyz"

/* True if s holds a personnummer or samordningsnummer in any written form
 * (judged on `today`). Only windows with ten digits are tried, and of those
 * only windows made of what a written identity number can hold (digits,
 * one - or +, blanks that soffa_id_parse trims): a window with any other
 * character cannot parse, so it is not handed to the parser. The counts
 * are running sums, so a window costs two subtractions. */
static bool
s_holds_id_number(const char *s, soffa_date_t today)
{
    size_t n = strlen(s);
    if (n < 10)
        return false;
    uint32_t digits_[65], other_[65];
    uint32_t *digits = n < 64 ? digits_ : malloc((n + 1) * sizeof *digits);
    uint32_t *other = n < 64 ? other_ : malloc((n + 1) * sizeof *other);
    bool found = false;
    if (!digits || !other) {
        found = true;   /* out of memory: refused rather than let through unchecked */
        goto out;
    }
    digits[0] = other[0] = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool digit = ch >= '0' && ch <= '9';
        bool part = digit || ch == '-' || ch == '+' || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
        digits[i + 1] = digits[i] + digit;
        other[i + 1] = other[i] + !part;
    }
    for (size_t i = 0; !found && i + 10 <= n; i++) {
        for (size_t w = 10; w <= 13 && i + w <= n; w++) {
            if (digits[i + w] - digits[i] < 10 || other[i + w] != other[i])
                continue;
            char win[14], canon[13];
            memcpy(win, s + i, w);
            win[w] = '\0';
            if (soffa_id_parse(win, &today, canon, NULL) == SOFFA_OK) {
                found = true;
                break;
            }
        }
    }
out:
    if (digits != digits_)
        free(digits);
    if (other != other_)
        free(other);
    return found;
}

/* Whether s (non-empty) is made of `set` only, between min and max long,
 * starting with a character of `first`. */
static bool
s_form(const char *s, const char *first, const char *set, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max || !s_in(s[0], first))
        return false;
    bool in[256] = {false};
    for (const unsigned char *p = (const unsigned char *) set; *p; p++)
        in[*p] = true;
    for (size_t i = 1; i < n; i++)
        if (!in[(unsigned char) s[i]])
            return false;
    return true;
}

/* A pseudonymous user reference (actor_ref, recorded_by): like handl-17 or
 * an HSA-id such as SE2321000131-E000000000001. */
static soffa_err_t
s_user_ref(s_vctx_t *c, const char *field, const char *s, bool required)
{
    if (!s || !*s)
        return required ? s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required") : SOFFA_OK;
    if (!s_form(s, S_LOWER S_UPPER S_DIGITS, S_LOWER S_UPPER S_DIGITS "._-", 1, 32))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a user reference: 1 to 32 of a-z A-Z 0-9 . _ - starting with a letter or digit (e.g. handl-17)");
    if (s_holds_id_number(s, soffa_date_local(c->now_us)))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "a user reference must not hold an identity number");
    return SOFFA_OK;
}

/* A staff reference: the pseudonymous contact person of a case (issue 19,
 * item 4). A user reference that holds a digit (an opaque user id such as
 * handl-17 or u4711): a reference without one, or with a capitalised word
 * ("Anna", "Svensson"), looks like a name, and names never travel. */
static soffa_err_t
s_staff_ref(s_vctx_t *c, const char *field, const char *s, bool required)
{
    S_CHECK(s_user_ref(c, field, s, required));
    if (!s || !*s)
        return SOFFA_OK;
    bool digit = false, capital_word = false;
    for (size_t i = 0; s[i]; i++) {
        digit |= s[i] >= '0' && s[i] <= '9';
        capital_word |= s[i] >= 'A' && s[i] <= 'Z' && s[i + 1] >= 'a' && s[i + 1] <= 'z';
    }
    if (!digit || capital_word)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "this looks like a name; a contact person is named by a staff reference, an opaque user id "
                     "with digits (e.g. handl-17), never by name");
    /* Its digits alone: an identity number split by . _ or letters
     * (u20080314.2710) is one all the same, and the case register keeps
     * the reference. */
    char digits[33];
    size_t n = 0;
    for (size_t i = 0; s[i] && n < sizeof digits - 1; i++)
        if (s[i] >= '0' && s[i] <= '9')
            digits[n++] = s[i];
    digits[n] = '\0';
    if (s_holds_id_number(digits, soffa_date_local(c->now_us)))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "a staff reference must not hold an identity number");
    return SOFFA_OK;
}

/* A team name of a KAA ([teams K]): 1 to 16 of a-z 0-9 -, starting with a letter. */
static soffa_err_t
s_team(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required: the team the case goes to");
    if (!s_form(s, S_LOWER, S_LOWER S_DIGITS "-", 1, 16))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a team name: 1 to 16 of a-z 0-9 - starting with a letter (e.g. hisingen)");
    return SOFFA_OK;
}

/* A unit: a skolenhetskod for a school principal, else a local unit code. */
static soffa_err_t
s_unit_id(s_vctx_t *c, const char *field, const char *s, int kind)
{
    if (!s || !*s)
        return SOFFA_OK;
    if (kind == SOFFA__PARTY_KIND__PK_SCHOOL_PRINCIPAL) {
        if (soffa_skolenhet_check(s) != SOFFA_OK)
            return s_bad(c, SOFFA_ERR_SKOLENHET, field, "a school principal's unit is its 8-digit skolenhetskod");
        return SOFFA_OK;
    }
    if (!s_form(s, S_UPPER S_DIGITS, S_UPPER S_DIGITS "-", 1, 16))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "a unit code: 1 to 16 of A-Z 0-9 - starting with a letter or digit");
    return SOFFA_OK;
}

/* A Skolverket programme code: SA, NA, SAEKO, IMYRK ... */
static soffa_err_t
s_programme(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return SOFFA_OK;
    if (!s_form(s, S_UPPER, S_UPPER S_DIGITS, 2, 8))
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a Skolverket programme code: 2 to 8 of A-Z 0-9 starting with a letter (e.g. SA, NAT, SAEKO)");
    return SOFFA_OK;
}

/* A secrecy provision: LAW CHAPTER:SECTION, optionally a paragraph letter,
 * e.g. "OSL 26:1", "OSL 23:2", "OSL 26:9 a". */
static soffa_err_t
s_secrecy_ref(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return SOFFA_OK;
    const char *p = s;
    size_t law = strspn(p, S_UPPER);
    bool ok = law >= 2 && law <= 5 && p[law] == ' ';
    if (ok) {
        p += law + 1;
        size_t ch = strspn(p, S_DIGITS);
        ok = ch >= 1 && ch <= 2 && p[ch] == ':';
        if (ok) {
            p += ch + 1;
            size_t sec = strspn(p, S_DIGITS);
            ok = sec >= 1 && sec <= 3;
            p += sec;
            if (ok && *p == ' ')
                ok = s_in(p[1], S_LOWER) && p[2] == '\0';
            else
                ok = ok && *p == '\0';
        }
    }
    if (!ok)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a secrecy provision: law, chapter:section and an optional letter (e.g. 'OSL 26:1', 'OSL 26:9 a')");
    return SOFFA_OK;
}

/* A telephone number: 7 to 15 digits, an optional leading +, single spaces
 * or hyphens between digit groups, at most 20 characters. */
static soffa_err_t
s_phone(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return SOFFA_OK;
    size_t n = strlen(s), digits = 0;
    bool ok = n <= 20;
    for (size_t i = (s[0] == '+'); ok && i < n; i++) {
        if (s_in(s[i], S_DIGITS))
            digits++;
        else
            ok = (s[i] == ' ' || s[i] == '-') && i > (size_t) (s[0] == '+') && i + 1 < n
                 && s_in(s[i - 1], S_DIGITS) && s_in(s[i + 1], S_DIGITS);
    }
    if (!ok || digits < 7 || digits > 15)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a phone number: 7 to 15 digits, optional leading +, single spaces or - between groups");
    return SOFFA_OK;
}

/* An e-mail address: local@domain.tld, plain ASCII, at most 254 characters;
 * the local part a-z A-Z 0-9 . _ % + - (1 to 64), the domain labels of
 * letters, digits and inner hyphens, a top-level domain of letters. */
static soffa_err_t
s_email(s_vctx_t *c, const char *field, const char *s)
{
    if (!s || !*s)
        return SOFFA_OK;
    const char *at = strchr(s, '@');
    bool ok = at && strlen(s) <= 254 && at > s && at - s <= 64 && !strchr(at + 1, '@');
    for (const char *p = s; ok && p < at; p++)
        ok = s_in(*p, S_LOWER S_UPPER S_DIGITS "._%+-");
    if (ok) {
        /* Labels: 1 to 63 characters, no hyphen at either end; at least two. */
        const char *label = at + 1, *last = NULL;
        int labels = 0;
        while (ok) {
            size_t len = strspn(label, S_LOWER S_UPPER S_DIGITS "-");
            ok = len >= 1 && len <= 63 && label[0] != '-' && label[len - 1] != '-'
                 && (label[len] == '.' || label[len] == '\0');
            labels++;
            last = label;
            if (!ok || label[len] == '\0')
                break;
            label += len + 1;
        }
        ok = ok && labels >= 2 && strspn(last, S_LOWER S_UPPER) == strlen(last) && strlen(last) >= 2;
    }
    if (!ok)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "an e-mail address name@domain.se (ASCII letters, digits and . _ % + - before the @)");
    return SOFFA_OK;
}

/* Support already tried (an at-risk notice, a year-9 handover): codes only,
 * each at most once (five codes, so at most five entries). */
static soffa_err_t
s_support(s_vctx_t *c, const char *field, const Soffa__SupportTried *v, size_t n)
{
    if (n > 5)
        return s_bad(c, SOFFA_ERR_TOO_LARGE, field, "at most 5 codes, each once");
    for (size_t i = 0; i < n; i++) {
        S_CHECK(s_enum(c, field, &soffa__support_tried__descriptor, (int) v[i], true));
        for (size_t k = 0; k < i; k++)
            if (v[k] == v[i])
                return s_bad(c, SOFFA_ERR_BAD_FIELD, field, "code %d is given twice; give each support once",
                             (int) v[i]);
    }
    return SOFFA_OK;
}

/* A school form: compulsory school (GR, ANP_GR) only for a year-9
 * handover, upper secondary (GY, ANP_GY) for everything else. */
static soffa_err_t
s_school_form(s_vctx_t *c, const char *field, int form, bool compulsory)
{
    S_CHECK(s_enum(c, field, &soffa__school_form__descriptor, form, true));
    bool gr = form == SOFFA__SCHOOL_FORM__SF_GR || form == SOFFA__SCHOOL_FORM__SF_ANP_GR;
    if (compulsory && !gr)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "a year-9 handover comes from a compulsory school: GR or ANP_GR");
    if (!compulsory && gr)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, field,
                     "GR and ANP_GR (compulsory school) are for a year-9 handover only; this message is about upper "
                     "secondary school: GY or ANP_GY");
    return SOFFA_OK;
}

static soffa_err_t
s_person(s_vctx_t *c, const char *field, const Soffa__PersonRef *p)
{
    char f[64];
    if (!p)
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, field, "required");
    s_path(f, sizeof f, field, ".id_type");
    S_CHECK(s_enum(c, f, &soffa__id_type__descriptor, p->id_type, true));
    s_path(f, sizeof f, field, ".id");
    if (p->id_type == SOFFA__ID_TYPE__ID_LOCAL_RESERVE) {
        soffa_id_kind_t kind;
        if (soffa_id_check(p->id, &kind) == SOFFA_OK)
            return s_bad(c, SOFFA_ERR_ID_FORMAT, f, "this is a %s, not a reserve number: send it with id_type %s",
                         soffa_id_kind_name(kind), kind == SOFFA_ID_SAMNR ? "SAMNR" : "PNR");
        soffa_date_t today = soffa_date_local(c->now_us);
        soffa_err_t rc = soffa_reserve_check(p->id, &today);
        if (rc == SOFFA_ERR_ID_DATE)
            return s_bad(c, rc, f, "a reserve number begins with the birth date YYYYMMDD: a real date, not in the future");
        if (rc != SOFFA_OK)
            return s_bad(c, rc, f, "a reserve number is the birth date YYYYMMDD and 4 of A-Z 0-9 with at least "
                                   "two letters (e.g. 20080314TF10)");
    } else {
        soffa_id_kind_t kind;
        soffa_err_t rc = soffa_id_check(p->id, &kind);
        if (rc != SOFFA_OK)
            return s_bad(c, rc, f, "%s", soffa_strerror(rc));
        if ((kind == SOFFA_ID_SAMNR) != (p->id_type == SOFFA__ID_TYPE__ID_SAMNR))
            return s_bad(c, SOFFA_ERR_BAD_FIELD, f, "id_type says %s but the number is a %s",
                         p->id_type == SOFFA__ID_TYPE__ID_SAMNR ? "SAMNR" : "PNR", soffa_id_kind_name(kind));
    }
    if (p->protected_identity && p->protection_lifted) {
        s_path(f, sizeof f, field, ".protection_lifted");
        return s_bad(c, SOFFA_ERR_BAD_FIELD, f, "an identity cannot be both protected and no longer protected");
    }
    if (p->district && *p->district) {
        s_path(f, sizeof f, field, ".district");
        if (!s_form(p->district, S_DIGITS, S_DIGITS, 6, 6))
            return s_bad(c, SOFFA_ERR_BAD_FIELD, f, "a district (distriktskod) is 6 digits, e.g. 148012");
        if (p->protected_identity)
            return s_bad(c, SOFFA_ERR_PROTECTED, f,
                         "the young person has a protected identity: the district of the address is secret; "
                         "remove it");
    }
    s_path(f, sizeof f, field, ".hemkommun");
    return s_kommun(c, f, p->hemkommun, true);
}

static soffa_err_t
s_party(s_vctx_t *c, const char *field, const Soffa__Party *p)
{
    char f[64];
    if (!p)
        return SOFFA_OK;
    s_path(f, sizeof f, field, ".kind");
    S_CHECK(s_enum(c, f, &soffa__party_kind__descriptor, p->kind, false));
    if (p->org_nr && *p->org_nr
        && (strlen(p->org_nr) != 10 || soffa_orgnr_check(p->org_nr) != SOFFA_OK)) {
        s_path(f, sizeof f, field, ".org_nr");
        return s_bad(c, SOFFA_ERR_ORGNR, f, "an organisationsnummer: 10 digits, no hyphen, with a valid check digit");
    }
    s_path(f, sizeof f, field, ".kommunkod");
    S_CHECK(s_kommun(c, f, p->kommunkod, false));
    s_path(f, sizeof f, field, ".unit_id");
    S_CHECK(s_unit_id(c, f, p->unit_id, p->kind));
    s_path(f, sizeof f, field, ".provider_kind");
    S_CHECK(s_enum(c, f, &soffa__provider_kind__descriptor, p->provider_kind, false));
    if (p->provider_kind && p->kind != SOFFA__PARTY_KIND__PK_PROVIDER)
        return s_bad(c, SOFFA_ERR_BAD_FIELD, f, "only a provider (kind PROVIDER) has a provider kind");
    s_path(f, sizeof f, field, ".actor_ref");
    return s_user_ref(c, f, p->actor_ref, false);
}

static soffa_err_t
s_payload(s_vctx_t *c, const Soffa__Message *m)
{
    switch (m->payload_case) {
    case SOFFA__MESSAGE__PAYLOAD_ENROLMENT_CHANGED: {
        const Soffa__EnrolmentChanged *p = m->enrolment_changed;
        S_CHECK(s_enum(c, "enrolment_changed.event", &soffa__enrolment_event__descriptor, p->event, true));
        S_CHECK(s_date(c, "enrolment_changed.effective_date", p->effective_date, true));
        S_CHECK(s_skolenhet(c, "enrolment_changed.school_unit", p->school_unit));
        S_CHECK(s_school_form(c, "enrolment_changed.school_form", p->school_form, false));
        S_CHECK(s_programme(c, "enrolment_changed.programme_code", p->programme_code));
        S_CHECK(s_enum(c, "enrolment_changed.leave_reason", &soffa__leave_reason__descriptor, p->leave_reason, false));
        if (p->event == SOFFA__ENROLMENT_EVENT__EE_STARTED && p->leave_reason)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "enrolment_changed.leave_reason", "only allowed when the pupil LEFT");
        return SOFFA_OK;
    }
    case SOFFA__MESSAGE__PAYLOAD_ABSENCE_REPORTED: {
        const Soffa__AbsenceReported *p = m->absence_reported;
        S_CHECK(s_date(c, "absence_reported.period_from", p->period_from, true));
        S_CHECK(s_date(c, "absence_reported.period_to", p->period_to, true));
        if (p->period_from > p->period_to)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "absence_reported.period_to", "ends before period_from");
        S_CHECK(s_enum(c, "absence_reported.unexcused_band", &soffa__absence_band__descriptor,
                       p->unexcused_band, true));
        S_CHECK(s_enum(c, "absence_reported.reported_to_csn", &soffa__tri_state__descriptor,
                       p->reported_to_csn, false));
        return s_skolenhet(c, "absence_reported.school_unit", p->school_unit);
    }
    case SOFFA__MESSAGE__PAYLOAD_AT_RISK_NOTICE: {
        const Soffa__AtRiskNotice *p = m->at_risk_notice;
        S_CHECK(s_enum(c, "at_risk_notice.risk_code", &soffa__risk_code__descriptor, p->risk_code, true));
        S_CHECK(s_text(c, "at_risk_notice.note", p->note, 300, false));
        S_CHECK(s_support(c, "at_risk_notice.support_tried", p->support_tried, p->n_support_tried));
        S_CHECK(s_enum(c, "at_risk_notice.contact_role", &soffa__school_contact_role__descriptor, p->contact_role,
                       false));
        return s_skolenhet(c, "at_risk_notice.school_unit", p->school_unit);
    }
    case SOFFA__MESSAGE__PAYLOAD_EARLY_WARNING_ANSWERED: {
        const Soffa__EarlyWarningAnswered *p = m->early_warning_answered;
        S_CHECK(s_uuid(c, "early_warning_answered.warning_id", p->warning_id, true));
        S_CHECK(s_enum(c, "early_warning_answered.status", &soffa__early_warning_status__descriptor, p->status,
                       true));
        if (p->contact_ref && *p->contact_ref && p->status != SOFFA__EARLY_WARNING_STATUS__EWS_CONTACT_PERSON_ASSIGNED)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "early_warning_answered.contact_ref",
                         "only with status CONTACT_PERSON_ASSIGNED");
        return s_user_ref(c, "early_warning_answered.contact_ref", p->contact_ref, false);
    }
    case SOFFA__MESSAGE__PAYLOAD_CASE_OWNER_CHANGED: {
        const Soffa__CaseOwnerChanged *p = m->case_owner_changed;
        S_CHECK(s_uuid(c, "case_owner_changed.case_id", p->case_id, true));
        S_CHECK(s_staff_ref(c, "case_owner_changed.owner_ref", p->owner_ref, true));
        S_CHECK(s_staff_ref(c, "case_owner_changed.previous_ref", p->previous_ref, false));
        S_CHECK(s_enum(c, "case_owner_changed.reason", &soffa__owner_change_reason__descriptor, p->reason, true));
        if (p->previous_ref && !strcmp(p->previous_ref, p->owner_ref))
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "case_owner_changed.owner_ref",
                         "the new contact person is the one the case has; name another");
        if ((!p->previous_ref || !*p->previous_ref) != (p->reason == SOFFA__OWNER_CHANGE_REASON__OCR_ASSIGNED))
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "case_owner_changed.reason",
                         "ASSIGNED is the first contact person (no previous_ref); a handover names the previous one "
                         "and why (STAFF_LEFT, WORKLOAD, YOUTH_ASKED, TEAM_TRANSFER, OTHER)");
        return SOFFA_OK;
    }
    case SOFFA__MESSAGE__PAYLOAD_CASE_TRANSFERRED: {
        const Soffa__CaseTransferred *p = m->case_transferred;
        S_CHECK(s_uuid(c, "case_transferred.case_id", p->case_id, true));
        return s_team(c, "case_transferred.to_team", p->to_team);
    }
    case SOFFA__MESSAGE__PAYLOAD_YEAR9_HANDOVER: {
        const Soffa__Year9Handover *p = m->year9_handover;
        S_CHECK(s_skolenhet(c, "year9_handover.school_unit", p->school_unit));
        S_CHECK(s_school_form(c, "year9_handover.school_form", p->school_form, true));
        S_CHECK(s_enum(c, "year9_handover.risk", &soffa__handover_risk__descriptor, p->risk, true));
        S_CHECK(s_support(c, "year9_handover.support_tried", p->support_tried, p->n_support_tried));
        S_CHECK(s_enum(c, "year9_handover.contact_role", &soffa__school_contact_role__descriptor, p->contact_role,
                       false));
        return s_date(c, "year9_handover.leaves_on", p->leaves_on, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_ADMISSION_NOT_STARTED: {
        const Soffa__AdmissionNotStarted *p = m->admission_not_started;
        S_CHECK(s_skolenhet(c, "admission_not_started.school_unit", p->school_unit));
        S_CHECK(s_school_form(c, "admission_not_started.school_form", p->school_form, false));
        S_CHECK(s_programme(c, "admission_not_started.programme_code", p->programme_code));
        return s_date(c, "admission_not_started.term_start", p->term_start, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_SIGNAL_ACKNOWLEDGED: {
        const Soffa__SignalAcknowledged *p = m->signal_acknowledged;
        S_CHECK(s_uuid(c, "signal_acknowledged.signal_id", p->signal_id, true));
        S_CHECK(s_enum(c, "signal_acknowledged.result", &soffa__ack_result__descriptor, p->result, true));
        bool rerouted = p->result == SOFFA__ACK_RESULT__AR_NOT_HEMKOMMUN_REROUTED;
        if (!rerouted && p->new_hemkommun && *p->new_hemkommun)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "signal_acknowledged.new_hemkommun",
                         "only with result NOT_HEMKOMMUN_REROUTED");
        return s_kommun(c, "signal_acknowledged.new_hemkommun", p->new_hemkommun, rerouted);
    }
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_OPENED: {
        const Soffa__KaaCaseOpened *p = m->kaa_case_opened;
        S_CHECK(s_uuid(c, "kaa_case_opened.case_id", p->case_id, true));
        S_CHECK(s_enum(c, "kaa_case_opened.registration_reason", &soffa__registration_reason__descriptor,
                       p->registration_reason, true));
        if (p->n_source_signal_ids > 64)
            return s_bad(c, SOFFA_ERR_TOO_LARGE, "kaa_case_opened.source_signal_ids", "more than 64");
        for (size_t i = 0; i < p->n_source_signal_ids; i++)
            S_CHECK(s_uuid(c, "kaa_case_opened.source_signal_ids", p->source_signal_ids[i], true));
        return SOFFA_OK;
    }
    case SOFFA__MESSAGE__PAYLOAD_CONTACT_ATTEMPTED: {
        const Soffa__ContactAttempted *p = m->contact_attempted;
        S_CHECK(s_uuid(c, "contact_attempted.case_id", p->case_id, true));
        if (p->attempt_no < 1 || p->attempt_no > 1000)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "contact_attempted.attempt_no", "must be 1 to 1000");
        S_CHECK(s_enum(c, "contact_attempted.channel", &soffa__contact_channel__descriptor, p->channel, true));
        return s_enum(c, "contact_attempted.outcome", &soffa__contact_outcome__descriptor, p->outcome, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_OCCUPATION_RECORDED: {
        const Soffa__OccupationRecorded *p = m->occupation_recorded;
        S_CHECK(s_uuid(c, "occupation_recorded.case_id", p->case_id, true));
        S_CHECK(s_date(c, "occupation_recorded.as_of", p->as_of, true));
        return s_enum(c, "occupation_recorded.occupation", &soffa__occupation__descriptor, p->occupation, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_CASE_MAPPED: {
        const Soffa__CaseMapped *p = m->case_mapped;
        S_CHECK(s_uuid(c, "case_mapped.case_id", p->case_id, true));
        return s_date(c, "case_mapped.mapped_on", p->mapped_on, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_PLAN_AGREED: {
        const Soffa__PlanAgreed *p = m->plan_agreed;
        S_CHECK(s_uuid(c, "plan_agreed.case_id", p->case_id, true));
        S_CHECK(s_uuid(c, "plan_agreed.plan_id", p->plan_id, true));
        S_CHECK(s_enum(c, "plan_agreed.goal", &soffa__plan_goal__descriptor, p->goal, true));
        if (p->n_measures > 32)
            return s_bad(c, SOFFA_ERR_TOO_LARGE, "plan_agreed.measures", "more than 32");
        for (size_t i = 0; i < p->n_measures; i++) {
            S_CHECK(s_uuid(c, "plan_agreed.measures.measure_id", p->measures[i]->measure_id, true));
            S_CHECK(s_enum(c, "plan_agreed.measures.measure_type", &soffa__measure_type__descriptor,
                           p->measures[i]->measure_type, true));
        }
        return s_date(c, "plan_agreed.review_date", p->review_date, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_MEASURE_STARTED: {
        const Soffa__MeasureStarted *p = m->measure_started;
        S_CHECK(s_uuid(c, "measure_started.case_id", p->case_id, true));
        S_CHECK(s_uuid(c, "measure_started.measure_id", p->measure_id, true));
        S_CHECK(s_enum(c, "measure_started.measure_type", &soffa__measure_type__descriptor, p->measure_type, true));
        S_CHECK(s_party(c, "measure_started.provider", p->provider));
        S_CHECK(s_uuid(c, "measure_started.referral_id", p->referral_id, false));
        return s_date(c, "measure_started.start", p->start, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_MEASURE_ENDED: {
        const Soffa__MeasureEnded *p = m->measure_ended;
        S_CHECK(s_uuid(c, "measure_ended.case_id", p->case_id, true));
        S_CHECK(s_uuid(c, "measure_ended.measure_id", p->measure_id, true));
        S_CHECK(s_enum(c, "measure_ended.measure_type", &soffa__measure_type__descriptor, p->measure_type, true));
        S_CHECK(s_date(c, "measure_ended.end", p->end, true));
        return s_enum(c, "measure_ended.outcome", &soffa__measure_outcome__descriptor, p->outcome, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_CLOSED: {
        const Soffa__KaaCaseClosed *p = m->kaa_case_closed;
        S_CHECK(s_uuid(c, "kaa_case_closed.case_id", p->case_id, true));
        S_CHECK(s_enum(c, "kaa_case_closed.reason", &soffa__close_reason__descriptor, p->reason, true));
        if (p->reason != SOFFA__CLOSE_REASON__CR_MOVED_OUT && p->new_hemkommun && *p->new_hemkommun)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "kaa_case_closed.new_hemkommun", "only allowed with reason MOVED_OUT");
        return s_kommun(c, "kaa_case_closed.new_hemkommun", p->new_hemkommun, false);
    }
    case SOFFA__MESSAGE__PAYLOAD_CONSENT_RECORDED: {
        const Soffa__ConsentRecorded *p = m->consent_recorded;
        S_CHECK(s_uuid(c, "consent_recorded.consent_id", p->consent_id, true));
        if (p->n_granted_by < 1 || p->n_granted_by > 4)
            return s_bad(c, SOFFA_ERR_MISSING_FIELD, "consent_recorded.granted_by", "one to four grants required");
        for (size_t i = 0; i < p->n_granted_by; i++) {
            const Soffa__ConsentGrant *g = p->granted_by[i];
            S_CHECK(s_enum(c, "consent_recorded.granted_by.role", &soffa__consent_role__descriptor, g->role, true));
            for (size_t k = 0; k < i; k++)
                if (p->granted_by[k]->role == g->role && g->role == SOFFA__CONSENT_ROLE__CGR_YOUTH)
                    return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.granted_by", "the young person is listed twice");
            if (!g->person)
                continue;
            S_CHECK(s_person(c, "consent_recorded.granted_by.person", g->person));
            /* Who gave it: the young person is the subject; a guardian or god man is someone else. */
            bool self = m->subject && m->subject->id && g->person->id && strcmp(m->subject->id, g->person->id) == 0;
            if (g->role == SOFFA__CONSENT_ROLE__CGR_YOUTH && !self)
                return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.granted_by.person",
                             "a YOUTH grant is the subject's own: leave person out, or give the subject");
            if (g->role != SOFFA__CONSENT_ROLE__CGR_YOUTH && self)
                return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.granted_by.person",
                             "a guardian or god man is someone other than the young person");
        }
        if (p->youth_age_at_grant < 13 || p->youth_age_at_grant > 25)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.youth_age_at_grant", "must be 13 to 25");
        const Soffa__ConsentScope *s = p->scope;
        if (!s || !s->n_recipients || !s->n_purposes || !s->n_data_categories)
            return s_bad(c, SOFFA_ERR_MISSING_FIELD, "consent_recorded.scope",
                         "recipients, purposes and data_categories are required");
        for (size_t i = 0; i < s->n_recipients; i++) {
            S_CHECK(s_enum(c, "consent_recorded.scope.recipients", &soffa__party_kind__descriptor,
                           s->recipients[i], true));
            if (s->recipients[i] == SOFFA__PARTY_KIND__PK_SOFFA)
                return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.scope.recipients",
                             "soffa itself receives nothing under a consent; name the organisations");
        }
        for (size_t i = 0; i < s->n_provider_kinds; i++) {
            S_CHECK(s_enum(c, "consent_recorded.scope.provider_kinds", &soffa__provider_kind__descriptor,
                           s->provider_kinds[i], true));
            for (size_t k = 0; k < i; k++)
                if (s->provider_kinds[k] == s->provider_kinds[i])
                    return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.scope.provider_kinds", "a kind is given twice");
        }
        for (size_t i = 0; i < s->n_purposes; i++)
            S_CHECK(s_enum(c, "consent_recorded.scope.purposes", &soffa__consent_purpose__descriptor,
                           s->purposes[i], true));
        for (size_t i = 0; i < s->n_data_categories; i++)
            S_CHECK(s_enum(c, "consent_recorded.scope.data_categories", &soffa__data_category__descriptor,
                           s->data_categories[i], true));
        S_CHECK(s_enum(c, "consent_recorded.form", &soffa__consent_form__descriptor, p->form, true));
        S_CHECK(s_date(c, "consent_recorded.valid_from", p->valid_from, true));
        S_CHECK(s_date(c, "consent_recorded.valid_to", p->valid_to, true));
        if (p->valid_to < p->valid_from)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.valid_to", "ends before valid_from");
        if (p->valid_to > p->valid_from + 10000)   /* yyyymmdd + one year */
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "consent_recorded.valid_to", "more than 12 months after valid_from");
        return s_user_ref(c, "consent_recorded.recorded_by", p->recorded_by, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_CONSENT_WITHDRAWN: {
        const Soffa__ConsentWithdrawn *p = m->consent_withdrawn;
        S_CHECK(s_uuid(c, "consent_withdrawn.consent_id", p->consent_id, true));
        if (p->withdrawn_at_us <= 0)
            return s_bad(c, SOFFA_ERR_MISSING_FIELD, "consent_withdrawn.withdrawn_at_us", "required");
        return s_enum(c, "consent_withdrawn.by", &soffa__consent_role__descriptor, p->by, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_SENT: {
        const Soffa__ReferralSent *p = m->referral_sent;
        S_CHECK(s_uuid(c, "referral_sent.referral_id", p->referral_id, true));
        S_CHECK(s_enum(c, "referral_sent.target_kind", &soffa__target_kind__descriptor, p->target_kind, true));
        int lo = 0, hi = 0;
        switch (p->target_kind) {
        case SOFFA__TARGET_KIND__TK_ARBETSFORMEDLINGEN: lo = 1; hi = 3; break;
        case SOFFA__TARGET_KIND__TK_SOCIAL_SERVICES: lo = 10; hi = 12; break;
        case SOFFA__TARGET_KIND__TK_SCHOOL: lo = hi = 20; break;
        case SOFFA__TARGET_KIND__TK_KAA: lo = hi = 40; break;
        case SOFFA__TARGET_KIND__TK_PROVIDER: lo = 50; hi = 53; break;
        default: lo = hi = 30; break;
        }
        /* A provider named as OTHER takes the provider purposes too. */
        bool other_provider = p->target_kind == SOFFA__TARGET_KIND__TK_OTHER && p->provider_kind
                           && p->purpose >= 50 && p->purpose <= 53;
        if (((int) p->purpose < lo || (int) p->purpose > hi) && !other_provider)
            return s_bad(c, p->purpose ? SOFFA_ERR_BAD_FIELD : SOFFA_ERR_MISSING_FIELD,
                         "referral_sent.purpose", "not a purpose for this target kind");
        S_CHECK(s_enum(c, "referral_sent.provider_kind", &soffa__provider_kind__descriptor, p->provider_kind, false));
        bool to_provider = p->target_kind == SOFFA__TARGET_KIND__TK_PROVIDER
                        || p->target_kind == SOFFA__TARGET_KIND__TK_OTHER
                        || p->target_kind == SOFFA__TARGET_KIND__TK_SCHOOL;
        if (!to_provider && (p->provider_kind || (p->provider && *p->provider)))
            return s_bad(c, SOFFA_ERR_BAD_FIELD, p->provider_kind ? "referral_sent.provider_kind" : "referral_sent.provider",
                         "only a referral to a provider (target PROVIDER, SCHOOL or OTHER) names one");
        if (p->target_kind == SOFFA__TARGET_KIND__TK_SCHOOL && p->provider_kind
            && p->provider_kind != SOFFA__PROVIDER_KIND__PVK_SCHOOL_PROGRAMME)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "referral_sent.provider_kind",
                         "a referral to a school goes to a provider of kind SCHOOL_PROGRAMME; leave it out or use "
                         "target PROVIDER");
        if (p->provider && *p->provider && !s_form(p->provider, S_LOWER S_UPPER S_DIGITS, S_LOWER S_UPPER S_DIGITS "._-", 1, 42))
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "referral_sent.provider",
                         "a provider agent's name: 1 to 42 of a-z A-Z 0-9 . _ - starting with a letter or digit");
        if (p->contact) {
            S_CHECK(s_phone(c, "referral_sent.contact.phone", p->contact->phone));
            S_CHECK(s_email(c, "referral_sent.contact.email", p->contact->email));
        }
        S_CHECK(s_text(c, "referral_sent.summary", p->summary, 1000, false));
        return s_date(c, "referral_sent.respond_by", p->respond_by, false);
    }
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_STATUS_CHANGED: {
        const Soffa__ReferralStatusChanged *p = m->referral_status_changed;
        S_CHECK(s_uuid(c, "referral_status_changed.referral_id", p->referral_id, true));
        S_CHECK(s_enum(c, "referral_status_changed.status", &soffa__referral_status__descriptor, p->status, true));
        if (p->reason_code > 999)
            return s_bad(c, SOFFA_ERR_BAD_FIELD, "referral_status_changed.reason_code", "must be 0 to 999");
        return SOFFA_OK;
    }
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_WITHDRAWN: {
        const Soffa__ReferralWithdrawn *p = m->referral_withdrawn;
        S_CHECK(s_uuid(c, "referral_withdrawn.referral_id", p->referral_id, true));
        return s_enum(c, "referral_withdrawn.reason", &soffa__withdraw_reason__descriptor, p->reason, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FILED: {
        const Soffa__ConcernReportFiled *p = m->concern_report_filed;
        S_CHECK(s_uuid(c, "concern_report_filed.report_id", p->report_id, true));
        S_CHECK(s_enum(c, "concern_report_filed.reporter_role", &soffa__reporter_role__descriptor,
                       p->reporter_role, true));
        if (p->n_concern_codes < 1 || p->n_concern_codes > 8)
            return s_bad(c, SOFFA_ERR_MISSING_FIELD, "concern_report_filed.concern_codes", "one to eight codes required");
        for (size_t i = 0; i < p->n_concern_codes; i++)
            S_CHECK(s_enum(c, "concern_report_filed.concern_codes", &soffa__concern_code__descriptor,
                           p->concern_codes[i], true));
        return s_text(c, "concern_report_filed.description", p->description, 4000, false);
    }
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FEEDBACK: {
        const Soffa__ConcernReportFeedback *p = m->concern_report_feedback;
        S_CHECK(s_uuid(c, "concern_report_feedback.report_id", p->report_id, true));
        return s_enum(c, "concern_report_feedback.feedback", &soffa__concern_feedback__descriptor, p->feedback, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_REOPENED: {
        const Soffa__KaaCaseReopened *p = m->kaa_case_reopened;
        S_CHECK(s_uuid(c, "kaa_case_reopened.case_id", p->case_id, true));
        return s_uuid(c, "kaa_case_reopened.signal_id", p->signal_id, true);
    }
    case SOFFA__MESSAGE__PAYLOAD_SUBJECT_IDENTITY_CHANGED: {
        const Soffa__SubjectIdentityChanged *p = m->subject_identity_changed;
        S_CHECK(s_person(c, "subject_identity_changed.old_id", p->old_id));
        S_CHECK(s_person(c, "subject_identity_changed.new_id", p->new_id));
        return s_enum(c, "subject_identity_changed.source", &soffa__identity_source__descriptor, p->source, true);
    }
    default:
        return s_bad(c, SOFFA_ERR_MISSING_FIELD, "payload", "the message has no payload of a known type");
    }
}

soffa_err_t
soffa_msg_validate(const soffa_msg_t *msg, int64_t now_us, char *why, size_t whylen)
{
    if (!msg)
        return SOFFA_ERR_INVALID_ARG;
    s_vctx_t c = {why, whylen, now_us ? now_us : soffa_now_us()};
    const Soffa__Message *m = msg->pb;

    S_CHECK(s_uuid(&c, "message_id", m->message_id, true));
    if (!soffa_uuid_is_v7(m->message_id.data))
        return s_bad(&c, SOFFA_ERR_BAD_FIELD, "message_id", "must be a UUIDv7");
    if (!m->schema_version || strncmp(m->schema_version, "1.", 2) != 0
        || !s_form(m->schema_version + 2, S_DIGITS, S_DIGITS, 1, 3))
        return s_bad(&c, SOFFA_ERR_VERSION, "schema_version", "must be 1.N (N: 1 to 3 digits)");
    /* Business time may not lie more than a day ahead of the reference clock. */
    const int64_t day_us = 86400LL * 1000000;
    if (m->occurred_at_us <= 0 || m->occurred_at_us > c.now_us + day_us)
        return s_bad(&c, m->occurred_at_us ? SOFFA_ERR_BAD_FIELD : SOFFA_ERR_MISSING_FIELD,
                     "occurred_at_us", "must be a time not in the future");
    if (m->sent_at_us <= 0)
        return s_bad(&c, SOFFA_ERR_MISSING_FIELD, "sent_at_us", "required");
    S_CHECK(s_party(&c, "sender", m->sender));
    S_CHECK(s_person(&c, "subject", m->subject));
    S_CHECK(s_enum(&c, "legal_basis", &soffa__legal_basis__descriptor, m->legal_basis, true));
    S_CHECK(s_uuid(&c, "consent_id", m->consent_id,
                   m->legal_basis == SOFFA__LEGAL_BASIS__LB_CONSENT_OSL_12_2));
    S_CHECK(s_uuid(&c, "correlation_id", m->correlation_id, true));
    S_CHECK(s_uuid(&c, "causation_id", m->causation_id, false));
    if (m->classification) {
        S_CHECK(s_secrecy_ref(&c, "classification.secrecy_ref", m->classification->secrecy_ref));
        S_CHECK(s_enum(&c, "classification.level", &soffa__secrecy_level__descriptor, m->classification->level, false));
    }
    return s_payload(&c, m);
}

