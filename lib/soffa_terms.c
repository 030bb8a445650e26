/*  soffa_terms: the sensitive-term filter (see soffa_terms.h).
 *
 *  Text and terms go through the same folding: UTF-8 is decoded, letters
 *  are lowercased and stripped of accents other than å, ä and ö, and the
 *  result is cut into words. A term is one to S_PHRASE_MAX word patterns
 *  matched against consecutive words. A scan first marks, per category, the
 *  words an exception of that category covers, then looks for terms whose
 *  words are all unmarked. Everything works on folded UTF-8 bytes: a folded
 *  stem begins and ends on character boundaries, and UTF-8 continuation
 *  bytes never equal a lead byte, so byte comparison finds only whole
 *  characters.
 */
#include "soffa_terms.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The shipped list, generated at build time from config/sensitive-terms.txt
 * (cmake/terms.cmake). */
extern const unsigned char soffa_terms_builtin[];
extern const size_t soffa_terms_builtin_len;

#define S_PHRASE_MAX 6        /* words in one term */
#define S_LINE_MAX 1024       /* bytes in one line of the list */
#define S_NAME_MAX 160        /* bytes in a category name */
#define S_KEY_MAX 31          /* bytes in a category key */
#define S_TERMS_MAX 8192      /* terms and exceptions in one list */

/* How a word pattern matches a word. */
typedef enum {
    S_EXACT,    /* ord    */
    S_PREFIX,   /* ord*   */
    S_SUFFIX,   /* *ord   */
    S_INFIX,    /* *ord*  */
    S_ANY,      /* *      */
} s_mode_t;

typedef struct {
    s_mode_t mode;
    size_t off;                   /* folded stem in the pool */
    size_t len;                   /* its length in bytes */
} s_word_t;

typedef struct {
    size_t cat;                   /* category index */
    bool except;                  /* an exception, not a term */
    size_t n_words;               /* words in the phrase */
    s_word_t words[S_PHRASE_MAX];
    unsigned line;                /* line in the list, for messages */
} s_term_t;

typedef struct {
    soffa_terms_category_t pub;   /* what callers see (strings owned here) */
    size_t n_terms;               /* terms, not exceptions */
    size_t n_except;              /* exceptions */
} s_cat_t;

struct soffa_terms {
    s_cat_t cats[SOFFA_TERMS_CATEGORIES_MAX];
    size_t n_cats;
    s_term_t *terms;              /* in file order */
    size_t n_terms;
    size_t cap_terms;
    char *pool;                   /* folded stems */
    size_t pool_len;
    size_t pool_cap;
};

/* ---- Folding ------------------------------------------------------------------- */

/* A run of folded text cut into words. */
typedef struct {
    char *buf;                    /* folded words, back to back (owned) */
    size_t len;
    size_t *off;                  /* word i is buf[off[i] .. off[i] + wlen[i]) (owned) */
    size_t *wlen;
    size_t n;
    bool separated;               /* a separator appeared between or around words */
} s_words_t;

typedef enum {
    S_SEP,       /* ends a word */
    S_LETTER,    /* part of a word; out holds its folded bytes */
    S_IGNORE,    /* nothing: soft hyphen, zero-width characters, variation selectors */
    S_MARK,      /* a combining mark */
} s_class_t;

/* Decodes one UTF-8 character of the n > 0 bytes at p into *cp. Returns the
 * bytes it takes (1 for a byte that starts no valid character: *cp is then
 * U+FFFD, which separates words). Refuses overlong forms and surrogates. */
static size_t
s_utf8(const unsigned char *p, size_t n, uint32_t *cp)
{
    *cp = 0xFFFD;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    size_t extra;
    uint32_t c, min;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        extra = 1, c = p[0] & 0x1F, min = 0x80;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        extra = 2, c = p[0] & 0x0F, min = 0x800;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        extra = 3, c = p[0] & 0x07, min = 0x10000;
    } else {
        return 1;
    }
    if (n < extra + 1)
        return 1;
    for (size_t i = 1; i <= extra; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 1;
        c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 1;
    *cp = c;
    return extra + 1;
}

/* Latin-1 letters U+00E0..U+00FF (after lowercasing) folded; "" separates. */
static const char *const s_latin1[32] = {
    "a", "a", "a", "a", "\xc3\xa4", "\xc3\xa5", "\xc3\xa4", "c",   /* à á â ã ä å æ ç */
    "e", "e", "e", "e", "i", "i", "i", "i",                       /* è é ê ë ì í î ï */
    "d", "n", "o", "o", "o", "o", "\xc3\xb6", "",                 /* ð ñ ò ó ô õ ö ÷ */
    "\xc3\xb6", "u", "u", "u", "u", "y", "t", "y",                /* ø ù ú û ü ý þ ÿ */
};

/* Classifies code point cp and writes its folded form into out (at most as
 * many bytes as cp takes in UTF-8, so folded text is never longer than the
 * input), its length into *n. */
static s_class_t
s_fold_cp(uint32_t cp, char out[4], size_t *n)
{
    *n = 0;
    if (cp >= 0xFF01 && cp <= 0xFF5E)
        cp -= 0xFEE0;   /* fullwidth ASCII */
    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z')
            cp += 'a' - 'A';
        if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
            out[0] = (char) cp;
            *n = 1;
            return S_LETTER;
        }
        return S_SEP;
    }
    if (cp == 0xAD)
        return S_IGNORE;
    if (cp < 0xC0 || cp == 0xD7 || cp == 0xF7)
        return S_SEP;
    if (cp == 0xDF) {
        memcpy(out, "ss", 2);
        *n = 2;
        return S_LETTER;
    }
    if (cp <= 0xFF) {
        if (cp <= 0xDE)
            cp += 0x20;
        const char *f = s_latin1[cp - 0xE0];
        *n = strlen(f);
        memcpy(out, f, *n);
        return S_LETTER;
    }
    if (cp >= 0x300 && cp <= 0x36F)
        return S_MARK;
    if ((cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF || (cp >= 0xFE00 && cp <= 0xFE0F)
        || (cp >= 0xE0000 && cp <= 0xE007F))
        return S_IGNORE;
    if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFE10 && cp <= 0xFE6F)
        || cp == 0xFF00 || (cp >= 0xFF5F && cp <= 0xFF65) || (cp >= 0xE000 && cp <= 0xF8FF)
        || (cp >= 0xFFF0 && cp <= 0xFFFF) || (cp >= 0x1F000 && cp <= 0x1FAFF))
        return S_SEP;
    /* Any other letter (Greek, Cyrillic, Latin Extended, ...) stays as it is:
     * part of a word, equal only to itself. */
    if (cp < 0x800) {
        out[0] = (char) (0xC0 | (cp >> 6));
        out[1] = (char) (0x80 | (cp & 0x3F));
        *n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char) (0xE0 | (cp >> 12));
        out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char) (0x80 | (cp & 0x3F));
        *n = 3;
    } else {
        out[0] = (char) (0xF0 | (cp >> 18));
        out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char) (0x80 | (cp & 0x3F));
        *n = 4;
    }
    return S_LETTER;
}

static void
s_words_fini(s_words_t *w)
{
    free(w->buf);
    free(w->off);
    free(w->wlen);
    memset(w, 0, sizeof *w);
}

/* Folds len bytes at text into words. Returns SOFFA_OK or SOFFA_ERR_NOMEM. */
static soffa_err_t
s_words(const char *text, size_t len, s_words_t *w)
{
    memset(w, 0, sizeof *w);
    /* Folding never lengthens, and every word takes at least one byte plus
     * a separator, except the last. */
    size_t max_words = len / 2 + 1;
    w->buf = malloc(len + 1);
    w->off = malloc(max_words * sizeof *w->off);
    w->wlen = malloc(max_words * sizeof *w->wlen);
    if (!w->buf || !w->off || !w->wlen) {
        s_words_fini(w);
        return SOFFA_ERR_NOMEM;
    }
    const unsigned char *p = (const unsigned char *) text;
    size_t i = 0;
    bool in_word = false;
    char last = 0;   /* the last folded byte of the word when it was one ASCII letter, else 0 */
    while (i < len) {
        uint32_t cp;
        i += s_utf8(p + i, len - i, &cp);
        char f[4];
        size_t n;
        s_class_t k = s_fold_cp(cp, f, &n);
        if (k == S_IGNORE)
            continue;
        if (k == S_MARK) {
            /* a + ring is å, a + diaeresis ä, o + diaeresis ö; other marks
             * are accents, and accents are dropped. */
            if (in_word && last && ((last == 'a' && (cp == 0x30A || cp == 0x308)) || (last == 'o' && cp == 0x308))) {
                const char *r = last == 'o' ? "\xc3\xb6" : cp == 0x30A ? "\xc3\xa5" : "\xc3\xa4";
                w->len--;
                memcpy(w->buf + w->len, r, 2);
                w->len += 2;
                w->wlen[w->n - 1]++;
            }
            last = 0;
            continue;
        }
        if (k == S_SEP) {
            in_word = false;
            w->separated = true;
            last = 0;
            continue;
        }
        if (!in_word) {
            in_word = true;
            w->off[w->n] = w->len;
            w->wlen[w->n] = 0;
            w->n++;
        }
        memcpy(w->buf + w->len, f, n);
        w->len += n;
        w->wlen[w->n - 1] += n;
        last = n == 1 ? f[0] : 0;
    }
    w->buf[w->len] = '\0';
    return SOFFA_OK;
}

/* ---- Matching ------------------------------------------------------------------ */

/* True if the n bytes at needle occur in the hlen bytes at hay (n > 0). */
static bool
s_holds(const char *hay, size_t hlen, const char *needle, size_t n)
{
    for (size_t i = 0; i + n <= hlen; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return true;
    return false;
}

static bool
s_word_match(const soffa_terms_t *self, const s_word_t *p, const char *word, size_t wlen)
{
    const char *stem = self->pool + p->off;
    switch (p->mode) {
    case S_EXACT: return wlen == p->len && memcmp(word, stem, wlen) == 0;
    case S_PREFIX: return wlen >= p->len && memcmp(word, stem, p->len) == 0;
    case S_SUFFIX: return wlen >= p->len && memcmp(word + wlen - p->len, stem, p->len) == 0;
    case S_INFIX: return s_holds(word, wlen, stem, p->len);
    case S_ANY: return true;
    }
    return false;
}

/* True if term t matches the words starting at word i. */
static bool
s_term_match(const soffa_terms_t *self, const s_term_t *t, const s_words_t *w, size_t i)
{
    if (w->n - i < t->n_words)
        return false;
    for (size_t k = 0; k < t->n_words; k++)
        if (!s_word_match(self, &t->words[k], w->buf + w->off[i + k], w->wlen[i + k]))
            return false;
    return true;
}

soffa_err_t
soffa_terms_scan(const soffa_terms_t *self, const char *text, uint32_t *mask, int *first)
{
    *mask = 0;
    if (first)
        *first = -1;
    if (!self || !text || !*text)
        return SOFFA_OK;
    s_words_t w;
    soffa_err_t rc = s_words(text, strlen(text), &w);
    if (rc != SOFFA_OK)
        return rc;
    uint32_t *excepted = w.n ? calloc(w.n, sizeof *excepted) : NULL;   /* per word: categories it is excepted from */
    if (w.n && !excepted) {
        s_words_fini(&w);
        return SOFFA_ERR_NOMEM;
    }
    for (size_t t = 0; t < self->n_terms; t++) {
        const s_term_t *term = &self->terms[t];
        if (!term->except)
            continue;
        for (size_t i = 0; i < w.n; i++)
            if (s_term_match(self, term, &w, i))
                for (size_t k = 0; k < term->n_words; k++)
                    excepted[i + k] |= UINT32_C(1) << term->cat;
    }
    size_t best_pos = SIZE_MAX;
    int best_cat = -1;
    for (size_t t = 0; t < self->n_terms; t++) {
        const s_term_t *term = &self->terms[t];
        if (term->except)
            continue;
        uint32_t bit = UINT32_C(1) << term->cat;
        for (size_t i = 0; i < w.n; i++) {
            /* A category already found only matters again for an earlier
             * word, or for the same word when it comes first in the list. */
            if ((*mask & bit) && (i > best_pos || (i == best_pos && (int) term->cat >= best_cat)))
                break;
            if (!s_term_match(self, term, &w, i))
                continue;
            bool free_words = true;
            for (size_t k = 0; k < term->n_words; k++)
                free_words &= !(excepted[i + k] & bit);
            if (!free_words)
                continue;
            *mask |= bit;
            if (i < best_pos || (i == best_pos && (int) term->cat < best_cat)) {
                best_pos = i;
                best_cat = (int) term->cat;
            }
            break;
        }
    }
    if (first)
        *first = best_cat;
    free(excepted);
    s_words_fini(&w);
    return SOFFA_OK;
}

bool
soffa_terms_check(const soffa_terms_t *self, const char *text, const soffa_terms_category_t **category_out)
{
    uint32_t mask;
    int first;
    if (category_out)
        *category_out = NULL;
    if (soffa_terms_scan(self, text, &mask, &first) != SOFFA_OK)
        return true;   /* fail closed */
    if (mask && category_out)
        *category_out = &self->cats[first].pub;
    return mask != 0;
}

/* Cuts a string that snprintf truncated back to a character boundary. */
static void
s_utf8_trim(char *s)
{
    size_t n = strlen(s);
    size_t i = n;
    while (i > 0 && ((unsigned char) s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i > 0 && (unsigned char) s[i - 1] >= 0xC0) {
        unsigned char lead = (unsigned char) s[i - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (n - (i - 1) < need)
            s[i - 1] = '\0';
    }
}

soffa_err_t
soffa_terms_screen(const soffa_terms_t *self, const char *text, const char *field, char *why, size_t whylen)
{
    uint32_t mask;
    soffa_err_t rc = soffa_terms_scan(self, text, &mask, NULL);
    if (rc != SOFFA_OK) {
        if (why && whylen)
            snprintf(why, whylen, "%s could not be screened for sensitive personal data (out of memory); "
                                  "send it again later", field ? field : "the free text");
        return rc;
    }
    if (!mask)
        return SOFFA_OK;
    if (why && whylen) {
        size_t at = 0;
        int n = snprintf(why, whylen, "%s names ", field ? field : "the free text");
        at = n > 0 ? (size_t) n : 0;
        bool more = false;
        for (size_t c = 0; c < self->n_cats && at < whylen; c++) {
            if (!(mask & (UINT32_C(1) << c)))
                continue;
            n = snprintf(why + at, whylen - at, "%s%s (%s)", more ? "; " : "", self->cats[c].pub.en,
                         self->cats[c].pub.sv);
            at += n > 0 ? (size_t) n : 0;
            more = true;
        }
        /* Short, so that two or three categories fit a 256-byte reason;
         * SENSITIVE_TEXT's own text says the rule. */
        if (at < whylen)
            snprintf(why + at, whylen - at, ": remove it and send again");
        s_utf8_trim(why);
    }
    return SOFFA_ERR_SENSITIVE_TEXT;
}

/* ---- Loading the list ---------------------------------------------------------- */

typedef struct {
    soffa_terms_t *t;
    const char *name;             /* the list's name in messages */
    unsigned line;
    char *why;
    size_t whylen;
} s_parse_t;

static soffa_err_t
s_fail(s_parse_t *ps, soffa_err_t rc, const char *fmt, ...)
{
    if (ps->why && ps->whylen) {
        int n = ps->line ? snprintf(ps->why, ps->whylen, "%s line %u: ", ps->name, ps->line)
                         : snprintf(ps->why, ps->whylen, "%s: ", ps->name);
        size_t at = n > 0 && (size_t) n < ps->whylen ? (size_t) n : ps->whylen - 1;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->why + at, ps->whylen - at, fmt, ap);
        va_end(ap);
        s_utf8_trim(ps->why);
    }
    return rc;
}

void
soffa_terms_destroy(soffa_terms_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_terms_t *self = *self_p;
    for (size_t i = 0; i < self->n_cats; i++) {
        free((char *) self->cats[i].pub.key);
        free((char *) self->cats[i].pub.sv);
        free((char *) self->cats[i].pub.en);
    }
    free(self->terms);
    free(self->pool);
    free(self);
    *self_p = NULL;
}

/* Adds n bytes to the pool; *off gets where. */
static soffa_err_t
s_pool_add(soffa_terms_t *t, const char *s, size_t n, size_t *off)
{
    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap * 2 : 4096;
        while (cap < t->pool_len + n + 1)
            cap *= 2;
        char *p = realloc(t->pool, cap);
        if (!p)
            return SOFFA_ERR_NOMEM;
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, s, n);
    *off = t->pool_len;
    t->pool_len += n;
    t->pool[t->pool_len] = '\0';
    return SOFFA_OK;
}

static char *
s_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static bool
s_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims blanks from both ends of [*s, *s + *n). */
static void
s_trim(const char **s, size_t *n)
{
    while (*n && s_blank(**s))
        (*s)++, (*n)--;
    while (*n && s_blank((*s)[*n - 1]))
        (*n)--;
}

/* "[key] svenska | english" */
static soffa_err_t
s_category(s_parse_t *ps, const char *s, size_t n)
{
    soffa_terms_t *t = ps->t;
    const char *close = memchr(s, ']', n);
    if (!close)
        return s_fail(ps, SOFFA_ERR_CONFIG, "a category line is '[key] svenska | english'; the ']' is missing");
    const char *key = s + 1;
    size_t klen = (size_t) (close - key);
    if (klen == 0 || klen > S_KEY_MAX)
        return s_fail(ps, SOFFA_ERR_CONFIG, "a category key has 1 to %d characters a-z and _", S_KEY_MAX);
    for (size_t i = 0; i < klen; i++)
        if (!((key[i] >= 'a' && key[i] <= 'z') || key[i] == '_'))
            return s_fail(ps, SOFFA_ERR_CONFIG, "a category key has only the characters a-z and _");
    for (size_t c = 0; c < t->n_cats; c++)
        if (strlen(t->cats[c].pub.key) == klen && !memcmp(t->cats[c].pub.key, key, klen))
            return s_fail(ps, SOFFA_ERR_CONFIG, "category [%.*s] appears twice", (int) klen, key);
    if (t->n_cats == SOFFA_TERMS_CATEGORIES_MAX)
        return s_fail(ps, SOFFA_ERR_CONFIG, "more than %d categories", SOFFA_TERMS_CATEGORIES_MAX);
    const char *names = close + 1;
    size_t nlen = n - (size_t) (names - s);
    const char *bar = memchr(names, '|', nlen);
    if (!bar || memchr(bar + 1, '|', nlen - (size_t) (bar + 1 - names)))
        return s_fail(ps, SOFFA_ERR_CONFIG, "after [%.*s] come its Swedish and English names with one '|' between",
                      (int) klen, key);
    const char *sv = names, *en = bar + 1;
    size_t svlen = (size_t) (bar - names), enlen = nlen - (size_t) (en - names);
    s_trim(&sv, &svlen);
    s_trim(&en, &enlen);
    if (!svlen || !enlen || svlen > S_NAME_MAX || enlen > S_NAME_MAX)
        return s_fail(ps, SOFFA_ERR_CONFIG, "the Swedish and English names of [%.*s] have 1 to %d bytes each",
                      (int) klen, key, S_NAME_MAX);
    s_cat_t *c = &t->cats[t->n_cats];
    c->pub.key = s_strndup(key, klen);
    c->pub.sv = s_strndup(sv, svlen);
    c->pub.en = s_strndup(en, enlen);
    t->n_cats++;   /* counted before the check, so that destroy frees what there is */
    if (!c->pub.key || !c->pub.sv || !c->pub.en)
        return SOFFA_ERR_NOMEM;
    return SOFFA_OK;
}

/* One word pattern of a term: "ord", "ord*", "*ord", "*ord*" or "*". */
static soffa_err_t
s_pattern(s_parse_t *ps, const char *s, size_t n, s_word_t *out)
{
    if (n == 1 && s[0] == '*') {
        out->mode = S_ANY;
        out->off = out->len = 0;
        return SOFFA_OK;
    }
    bool lead = s[0] == '*', tail = n > 1 && s[n - 1] == '*';
    const char *core = s + lead;
    size_t clen = n - lead - tail;
    if (clen == 0 || memchr(core, '*', clen))
        return s_fail(ps, SOFFA_ERR_CONFIG, "'%.*s': a '*' stands only at the start or the end of a word pattern",
                      (int) n, s);
    s_words_t w;
    soffa_err_t rc = s_words(core, clen, &w);
    if (rc != SOFFA_OK)
        return rc;
    if (w.n != 1 || w.separated) {
        s_words_fini(&w);
        return s_fail(ps, SOFFA_ERR_CONFIG,
                      "'%.*s' is not one word of letters and digits (write a phrase with blanks between its words)",
                      (int) n, s);
    }
    out->mode = lead && tail ? S_INFIX : lead ? S_SUFFIX : tail ? S_PREFIX : S_EXACT;
    out->len = w.wlen[0];
    rc = s_pool_add(ps->t, w.buf + w.off[0], w.wlen[0], &out->off);
    s_words_fini(&w);
    return rc;
}

static bool
s_same_term(const soffa_terms_t *t, const s_term_t *a, const s_term_t *b)
{
    if (a->cat != b->cat || a->except != b->except || a->n_words != b->n_words)
        return false;
    for (size_t k = 0; k < a->n_words; k++) {
        const s_word_t *x = &a->words[k], *y = &b->words[k];
        if (x->mode != y->mode || x->len != y->len || memcmp(t->pool + x->off, t->pool + y->off, x->len))
            return false;
    }
    return true;
}

/* A term or (leading '!') an exception of the current category. */
static soffa_err_t
s_term(s_parse_t *ps, const char *s, size_t n)
{
    soffa_terms_t *t = ps->t;
    if (t->n_cats == 0)
        return s_fail(ps, SOFFA_ERR_CONFIG, "a term before the first category ('[key] svenska | english')");
    s_term_t term = {.cat = t->n_cats - 1, .line = ps->line};
    if (s[0] == '!') {
        term.except = true;
        s++, n--;
        s_trim(&s, &n);
        if (!n)
            return s_fail(ps, SOFFA_ERR_CONFIG, "a '!' without the exception after it");
    }
    bool only_any = true;
    size_t i = 0;
    while (i < n) {
        while (i < n && s_blank(s[i]))
            i++;
        size_t start = i;
        while (i < n && !s_blank(s[i]))
            i++;
        if (i == start)
            break;
        if (term.n_words == S_PHRASE_MAX)
            return s_fail(ps, SOFFA_ERR_CONFIG, "a phrase has at most %d words", S_PHRASE_MAX);
        soffa_err_t rc = s_pattern(ps, s + start, i - start, &term.words[term.n_words]);
        if (rc != SOFFA_OK)
            return rc;
        only_any &= term.words[term.n_words].mode == S_ANY;
        term.n_words++;
    }
    if (only_any)
        return s_fail(ps, SOFFA_ERR_CONFIG, "a term of '*' alone would match every text");
    for (size_t k = 0; k < t->n_terms; k++)
        if (s_same_term(t, &t->terms[k], &term))
            return s_fail(ps, SOFFA_ERR_CONFIG, "the same %s as line %u", term.except ? "exception" : "term",
                          t->terms[k].line);
    if (t->n_terms == S_TERMS_MAX)
        return s_fail(ps, SOFFA_ERR_CONFIG, "more than %d terms", S_TERMS_MAX);
    if (t->n_terms == t->cap_terms) {
        size_t cap = t->cap_terms ? t->cap_terms * 2 : 256;
        s_term_t *p = realloc(t->terms, cap * sizeof *p);
        if (!p)
            return SOFFA_ERR_NOMEM;
        t->terms = p;
        t->cap_terms = cap;
    }
    t->terms[t->n_terms++] = term;
    if (term.except)
        t->cats[term.cat].n_except++;
    else
        t->cats[term.cat].n_terms++;
    return SOFFA_OK;
}

/* True if the n bytes at s are UTF-8 without control characters (C0 other
 * than tab, CR and LF; DEL; C1); *bad gets the offset of the first
 * offending byte. */
static bool
s_text_ok(const char *s, size_t n, size_t *bad)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = s_utf8(p + i, n - i, &cp);
        if ((cp == 0xFFFD && !(k == 3 && p[i] == 0xEF)) || (cp < 0x20 && cp != '\t' && cp != '\r' && cp != '\n')
            || (cp >= 0x7F && cp <= 0x9F)) {
            *bad = i;
            return false;
        }
        i += k;
    }
    return true;
}

soffa_err_t
soffa_terms_parse(soffa_terms_t **out, const char *text, size_t len, const char *name, char *why, size_t whylen)
{
    if (!out || (!text && len))
        return SOFFA_ERR_INVALID_ARG;
    *out = NULL;
    s_parse_t ps = {.name = name ? name : "sensitive-term list", .why = why, .whylen = whylen};
    if (why && whylen)
        why[0] = '\0';
    if (len > SOFFA_TERMS_FILE_MAX)
        return s_fail(&ps, SOFFA_ERR_TOO_LARGE, "larger than %d bytes", SOFFA_TERMS_FILE_MAX);
    size_t bad;
    if (!s_text_ok(text, len, &bad)) {
        ps.line = 1;
        for (size_t i = 0; i < bad; i++)
            ps.line += text[i] == '\n';
        return s_fail(&ps, SOFFA_ERR_CONFIG, "not UTF-8 text (a broken character or a control character)");
    }
    ps.t = calloc(1, sizeof *ps.t);
    if (!ps.t)
        return SOFFA_ERR_NOMEM;
    soffa_err_t rc = SOFFA_OK;
    size_t i = 0;
    /* A byte-order mark at the start is no part of the first line. */
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        i = 3;
    while (i < len && rc == SOFFA_OK) {
        ps.line++;
        const char *line = text + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t n = nl ? (size_t) (nl - line) : len - i;
        i += n + (nl != NULL);
        if (n > S_LINE_MAX) {
            rc = s_fail(&ps, SOFFA_ERR_CONFIG, "longer than %d bytes", S_LINE_MAX);
            break;
        }
        if (n && line[n - 1] == '\r')
            n--;
        s_trim(&line, &n);
        if (!n || line[0] == '#')
            continue;
        /* A comment after a term begins with a blank and '#'. */
        for (size_t k = 1; k < n; k++)
            if (line[k] == '#' && s_blank(line[k - 1])) {
                n = k;
                break;
            }
        s_trim(&line, &n);
        if (memchr(line, '#', n)) {
            rc = s_fail(&ps, SOFFA_ERR_CONFIG, "a '#' inside a term (a comment begins with a blank and '#')");
            break;
        }
        rc = line[0] == '[' ? s_category(&ps, line, n) : s_term(&ps, line, n);
    }
    if (rc == SOFFA_OK) {
        ps.line = 0;
        if (ps.t->n_cats == 0)
            rc = s_fail(&ps, SOFFA_ERR_CONFIG, "no categories ('[key] svenska | english' and terms below it)");
        for (size_t c = 0; c < ps.t->n_cats && rc == SOFFA_OK; c++)
            if (ps.t->cats[c].n_terms == 0)
                rc = s_fail(&ps, SOFFA_ERR_CONFIG, "category [%s] has no terms", ps.t->cats[c].pub.key);
    }
    if (rc != SOFFA_OK) {
        if (rc == SOFFA_ERR_NOMEM)
            s_fail(&ps, rc, "out of memory");
        soffa_terms_destroy(&ps.t);
        return rc;
    }
    *out = ps.t;
    return SOFFA_OK;
}

soffa_err_t
soffa_terms_new(soffa_terms_t **out, const char *path, char *why, size_t whylen)
{
    if (!out)
        return SOFFA_ERR_INVALID_ARG;
    *out = NULL;
    if (!path || !*path)
        return soffa_terms_parse(out, (const char *) soffa_terms_builtin, soffa_terms_builtin_len,
                                 "built-in sensitive-term list", why, whylen);
    s_parse_t ps = {.name = path, .why = why, .whylen = whylen};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return s_fail(&ps, soffa_err_from_errno(e), "cannot be opened (%s)", strerror(e));
    }
    soffa_err_t rc = SOFFA_OK;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        rc = s_fail(&ps, soffa_err_from_errno(e), "cannot be read (%s)", strerror(e));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = s_fail(&ps, SOFFA_ERR_CONFIG, "is not a regular file");
        goto out;
    }
    if (st.st_size > SOFFA_TERMS_FILE_MAX) {
        rc = s_fail(&ps, SOFFA_ERR_TOO_LARGE, "larger than %d bytes", SOFFA_TERMS_FILE_MAX);
        goto out;
    }
    /* One byte more than allowed: a file that grew since fstat is caught. */
    buf = malloc(SOFFA_TERMS_FILE_MAX + 1);
    if (!buf) {
        rc = SOFFA_ERR_NOMEM;
        goto out;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, SOFFA_TERMS_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            rc = s_fail(&ps, soffa_err_from_errno(e), "cannot be read (%s)", strerror(e));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t) r;
        if (len > SOFFA_TERMS_FILE_MAX) {
            rc = s_fail(&ps, SOFFA_ERR_TOO_LARGE, "larger than %d bytes", SOFFA_TERMS_FILE_MAX);
            goto out;
        }
    }
    const char *base = strrchr(path, '/');
    rc = soffa_terms_parse(out, buf, len, base ? base + 1 : path, why, whylen);
out:
    free(buf);
    close(fd);
    return rc;
}

size_t
soffa_terms_category_count(const soffa_terms_t *self)
{
    return self ? self->n_cats : 0;
}

const soffa_terms_category_t *
soffa_terms_category(const soffa_terms_t *self, size_t i)
{
    return self && i < self->n_cats ? &self->cats[i].pub : NULL;
}

size_t
soffa_terms_term_count(const soffa_terms_t *self, size_t i, size_t *exceptions)
{
    if (exceptions)
        *exceptions = self && i < self->n_cats ? self->cats[i].n_except : 0;
    return self && i < self->n_cats ? self->cats[i].n_terms : 0;
}
