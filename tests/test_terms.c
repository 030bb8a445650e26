/*  Tests for soffa_terms: the sensitive-term filter (issue 13, rule 5).
 *
 *  The table holds the sentences a caseworker or school might write in a
 *  referral summary or an at-risk note, in the style of the field reports:
 *  what must be refused (and under which categories) and what must pass,
 *  ordinary KAA language above all. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soffa_terms.h"
#include "testkit.h"

static soffa_terms_t *s_list;

static void
s_setup(void)
{
    char why[300] = "";
    cr_assert_eq(soffa_terms_new(&s_list, NULL, why, sizeof why), SOFFA_OK, "built-in list: %s", why);
}

static void
s_teardown(void)
{
    soffa_terms_destroy(&s_list);
    cr_assert_null(s_list);
}

/* The categories text names, as "key,key" in list order ("" for none). */
static void
s_keys(const soffa_terms_t *t, const char *text, char *out, size_t outlen)
{
    uint32_t mask = 0xFFFFFFFF;
    cr_assert_eq(soffa_terms_scan(t, text, &mask, NULL), SOFFA_OK);
    out[0] = '\0';
    for (size_t i = 0; i < soffa_terms_category_count(t); i++)
        if (mask & (UINT32_C(1) << i)) {
            size_t at = strlen(out);
            snprintf(out + at, outlen - at, "%s%s", at ? "," : "", soffa_terms_category(t, i)->key);
        }
}

typedef struct {
    const char *text;
    const char *want;   /* categories, comma-separated in list order; "" for none */
} s_row_t;

static const s_row_t s_rows[] = {
    /* The issue's examples. */
    {"ADHD-diagnos, BUP-kontakt, missbruk i familjen", "health,substance"},
    {"aktuell hos socialtjänsten, placerad på HVB", "social"},
    {"Eleven har en diagnos och riskerar att inte nå examen.", "health"},
    /* The brief's inflections and compounds. */
    {"Missbruket har ökat under hösten.", "substance"},
    {"Han placerades i familjehem 2023.", "social"},
    {"Bor på HVB-hemmet i Burlöv sedan i våras.", "social"},
    {"Har fått sin ADHD-diagnos i våras", "health"},
    {"Alkoholmissbruk hos pappan", "substance"},
    {"Autismdiagnosen blev klar i juni", "health"},
    {"NPF-utredning pågår", "health,social"},
    /* Health, diagnoses and disability. */
    {"Träffar kuratorn varje vecka.", "health"},
    {"Eleven har diskuterats i elevhälsoteamet.", "health"},
    {"Hon har haft ångest inför skolstarten.", "health"},
    {"Ångestproblematik och sömnsvårigheter", "health"},
    {"Medicinerar för sin epilepsi.", "health"},
    {"Depressionen har gjort att han inte orkar gå till skolan", "health"},
    {"Ätstörningen gör att hon behöver anpassad studiegång", "health"},
    {"Självskadebeteende har förekommit", "health"},
    {"Sjukskriven sedan oktober", "health"},
    {"Har kontakt med psykiatrin", "health"},
    {"Vill inte berätta om sin funktionsnedsättning för arbetsgivaren", "health"},
    {"Har social fobi och klarar inte stora grupper", "health"},
    {"Hon är gravid och vill vänta med praktik", "health"},
    {"Behöver rullstolsanpassad arbetsplats", "health"},
    {"Har kontakt med ungdomsmottagningen", "health"},
    {"She has autism and needs a quiet workplace", "health"},
    /* Substance use. */
    {"Har använt cannabis vid flera tillfällen", "substance"},
    {"Drogerna tog över under våren", "substance"},
    {"Alkoholen är ett problem hemma", "substance"},
    {"Spelberoende, har skulder", "substance"},
    {"Hasch och alkohol på helgerna", "substance"},
    {"Har varit drogpåverkad i skolan", "substance"},
    /* Social services and placements. */
    {"Kontakt med soc:en sedan i höstas", "social"},
    {"Socialsekreteraren följer med till mötet", "social"},
    {"Placerades av soc i jourhem", "social"},
    {"LVU sedan 2024", "social"},
    {"Placerad på SiS-hem", "social"},
    {"En orosanmälan gjordes i september", "social"},
    {"Utredning pågår hos socialtjänsten", "social"},
    {"Familjen har försörjningsstöd", "social"},
    {"Familjen får ekonomiskt bistånd", "social"},
    {"Bor på ett stödboende", "social"},
    /* Crime. */
    {"Polisen har varit i kontakt med skolan", "crime"},
    {"Han är anmäld för misshandel", "crime"},
    {"Misstänkt för stöld i butik", "crime"},
    {"Pappan sitter häktad", "crime"},
    {"Dömd till ungdomstjänst", "crime"},
    {"Har en bror som sitter i fängelse", "crime"},
    {"Risk för kriminell livsstil", "crime"},
    {"Gängkriminalitet i området", "crime"},
    {"Inbrott i skolan i helgen", "crime"},
    {"Utsatt för våld i hemmet", "crime"},
    {"Hedersrelaterat förtryck i familjen", "crime"},
    {"Polisanmäld efter bråket", "crime"},
    {"Narkotikabrott i somras", "substance,crime"},
    /* Religion. */
    {"Familjen är troende muslimer", "religion"},
    {"Bär hijab och vill ha praktik i butik", "religion"},
    {"Går i moskén på fredagar", "religion"},
    {"Går i mosken på fredagar", "religion"},
    {"Vill inte arbeta under ramadan", "religion"},
    {"Aktiv i pingstkyrkan", "religion"},
    /* Sexuality and gender identity. */
    {"Identifierar sig som ickebinär", "sexuality"},
    {"Är öppen med sin sexuella läggning", "sexuality"},
    {"Har kommit ut som homosexuell", "sexuality"},
    {"Trans-kille, vill bli kallad Alex", "sexuality"},
    {"Engagerad i HBTQ-föreningen", "sexuality"},
    /* Ethnic origin. */
    {"Har romsk bakgrund", "ethnicity"},
    {"Utländsk bakgrund, kom till Sverige 2019", "ethnicity"},
    {"Har utsatts för rasism på förra arbetsplatsen", "ethnicity"},
    {"Samisk familj i Kiruna", "ethnicity"},
    /* Political opinions and trade unions. */
    {"Medlem i facket", "opinion"},
    {"Har varit med i Sverigedemokraternas ungdomsförbund", "opinion"},
    {"Oro för radikalisering", "opinion"},
    /* Several at once. */
    {"Placerad på HVB efter LVU, har ADHD och har använt droger", "health,substance,social"},
    {"Polisen hämtade honom till BUP", "health,crime"},
    /* Case, accents, Unicode forms, tricks of writing. */
    {"ÅNGEST INFÖR INTERVJUER", "health"},
    {"a\xcc\x8angest infor intervjuer", "health"},            /* a + combining ring */
    {"A\xcc\x8aNGEST", "health"},
    {"miss\xc2\xad" "bruk i familjen", "substance"},          /* soft hyphen */
    {"alko\xe2\x80\x8bhol", "substance"},                       /* zero-width space */
    {"\xef\xbc\xa1\xef\xbc\xa4\xef\xbc\xa8\xef\xbc\xa4", "health"},   /* fullwidth ADHD */
    {"Diagnós", "health"},
    {"MOSKÉN", "religion"},
    {"Hon har ADHD.", "health"},
    {"(ADHD)", "health"},
    {"adhd/add", "health"},
    {"\"Soc\" har kopplats in", "social"},
    /* Must pass: ordinary KAA, school and AF language. */
    {"Vill komma ut i praktik inom handel.", ""},
    {"Aktiv på sociala medier, vill jobba med marknadsföring", ""},
    {"Behöver social träning i grupp", ""},
    {"Socialt umgänge med kompisar från klassen", ""},
    {"Har studieavbrott från Samhällsvetenskapsprogrammet", ""},
    {"Avbrottet skedde i vårterminen", ""},
    {"Vi har brottats med olika utmaningar under projektet", ""},
    {"Ett genombrott i matematiken efter lovskolan", ""},
    {"Anmäld till komvux i höst", ""},
    {"Är anmäld på folkhögskolans allmänna kurs", ""},
    {"Frånvaroutredning pågår enligt skollagen", ""},
    {"Utredning av frånvaron har inletts", ""},
    {"Utredningen av elevens frånvaro är klar", ""},
    {"Vill söka polisutbildningen längre fram", ""},
    {"Går på introduktionsprogrammet språkintroduktion", ""},
    {"Intresserad av Fordons- och transportprogrammet", ""},
    {"Sex veckors praktik på lager", ""},
    {"Läser religionskunskap och psykologi på komvux", ""},
    {"Diagnostiska prov visar att hon behöver stöd i svenska", ""},
    {"Vill utbilda sig till medicinsk sekreterare", ""},
    {"Vill bli arbetsterapeut eller fysioterapeut", ""},
    {"Vi misstänker att han har flyttat från kommunen", ""},
    {"Han drog från skolan i våras", ""},
    {"Beroende på schemat kan hon börja i januari", ""},
    {"Deltar i alkoholfria aktiviteter på fritidsgården", ""},
    {"Placerad på praktik hos ICA i tre veckor", ""},
    {"Utplacerad på en arbetsplats via AF", ""},
    {"Praktikplacering ordnad via Arbetsförmedlingen", ""},
    {"Har en kontaktperson på Arbetsförmedlingen", ""},
    {"Sista dagen i skolan var i maj", ""},
    {"Talar svenska, arabiska och engelska", ""},
    {"Vill plugga vidare på folkhögskola med behörighet", ""},
    {"Nyanländ, läser SFI och språkintroduktion", ""},
    {"Vill jobba inom vården, gärna som undersköterska", ""},
    {"Personalen har haft kontakt med de som är på sjukhus eller utlandsstudier", ""},
    {"Vi har byggt en soffa för att förhindra ungdomar att falla mellan stolar.", ""},
    {"Har en plan mot annan sysselsättning i form av praktik.", ""},
    {"Kontaktad via SMS och telefon, nåddes vid tredje försöket", ""},
    {"Tjörn, Stenungsund, Mölndal och Göteborg", ""},
    {"Söker sommarjobb på kyrkogården", ""},
    {"Hälsa på hos SYV i nästa vecka", ""},
    {"", ""},
    {"   \t\n", ""},
};

Test(terms, issue_13_05_sentences_refused_and_passed, .init = s_setup, .fini = s_teardown)
{
    size_t n = sizeof s_rows / sizeof *s_rows;
    cr_assert_geq(n, 80);
    size_t hits = 0, passes = 0;
    for (size_t i = 0; i < n; i++) {
        char got[200];
        s_keys(s_list, s_rows[i].text, got, sizeof got);
        cr_expect_str_eq(got, s_rows[i].want, "row %zu: \"%s\" named [%s], wanted [%s]", i, s_rows[i].text, got,
                         s_rows[i].want);
        /* check() agrees with scan(), and names the earliest category. */
        const soffa_terms_category_t *c = NULL;
        bool hit = soffa_terms_check(s_list, s_rows[i].text, &c);
        cr_expect_eq(hit, *s_rows[i].want != '\0', "row %zu", i);
        cr_expect_eq(c != NULL, hit, "row %zu", i);
        if (*s_rows[i].want)
            hits++;
        else
            passes++;
    }
    cr_assert_geq(hits, 40);
    cr_assert_geq(passes, 30);
}

Test(terms, the_first_category_is_the_earliest_word, .init = s_setup, .fini = s_teardown)
{
    const soffa_terms_category_t *c;
    cr_assert(soffa_terms_check(s_list, "Placerad på HVB, har ADHD", &c));
    cr_assert_str_eq(c->key, "social");
    cr_assert(soffa_terms_check(s_list, "Har ADHD, placerad på HVB", &c));
    cr_assert_str_eq(c->key, "health");
    /* One word in two categories: the one listed first. */
    cr_assert(soffa_terms_check(s_list, "narkotikabrott", &c));
    cr_assert_str_eq(c->key, "substance");
    int first;
    uint32_t mask;
    cr_assert_eq(soffa_terms_scan(s_list, "inget här", &mask, &first), SOFFA_OK);
    cr_assert_eq(mask, 0);
    cr_assert_eq(first, -1);
}

Test(terms, the_categories_and_their_names, .init = s_setup, .fini = s_teardown)
{
    static const char *const keys[] = {"health", "substance", "social", "crime", "religion", "sexuality",
                                       "ethnicity", "opinion"};
    size_t n = sizeof keys / sizeof *keys;
    cr_assert_eq(soffa_terms_category_count(s_list), n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const soffa_terms_category_t *c = soffa_terms_category(s_list, i);
        cr_assert_str_eq(c->key, keys[i]);
        cr_assert(c->sv && *c->sv && c->en && *c->en);
        size_t exc;
        size_t terms = soffa_terms_term_count(s_list, i, &exc);
        cr_assert_geq(terms, 5, "[%s] has %zu terms", c->key, terms);
        total += terms;
        /* The counts, for whoever reads the test's output. */
        cr_log_info("[%s] %zu terms, %zu exceptions: %s / %s", c->key, terms, exc, c->sv, c->en);
    }
    cr_assert_geq(total, 300);
    cr_assert_str_eq(soffa_terms_category(s_list, 0)->sv, "hälsa, diagnoser eller funktionsnedsättning");
    cr_assert_str_eq(soffa_terms_category(s_list, 0)->en, "health, diagnoses or disability");
    cr_assert_null(soffa_terms_category(s_list, n));
    cr_assert_eq(soffa_terms_term_count(s_list, n, NULL), 0);
}

/* The built-in copy is the shipped file: same categories, same counts, same
 * answers. */
Test(terms, the_built_in_list_is_the_shipped_file, .init = s_setup, .fini = s_teardown)
{
    soffa_terms_t *file = NULL;
    char why[300] = "";
    cr_assert_eq(soffa_terms_new(&file, SOFFA_SOURCE_DIR "/config/sensitive-terms.txt", why, sizeof why), SOFFA_OK,
                 "%s", why);
    cr_assert_eq(soffa_terms_category_count(file), soffa_terms_category_count(s_list));
    for (size_t i = 0; i < soffa_terms_category_count(file); i++) {
        size_t e1, e2;
        cr_assert_str_eq(soffa_terms_category(file, i)->key, soffa_terms_category(s_list, i)->key);
        cr_assert_str_eq(soffa_terms_category(file, i)->sv, soffa_terms_category(s_list, i)->sv);
        cr_assert_eq(soffa_terms_term_count(file, i, &e1), soffa_terms_term_count(s_list, i, &e2));
        cr_assert_eq(e1, e2);
    }
    for (size_t i = 0; i < sizeof s_rows / sizeof *s_rows; i++) {
        char a[200], b[200];
        s_keys(file, s_rows[i].text, a, sizeof a);
        s_keys(s_list, s_rows[i].text, b, sizeof b);
        cr_assert_str_eq(a, b, "row %zu", i);
    }
    soffa_terms_destroy(&file);
    soffa_terms_destroy(&file);   /* idempotent */
    /* "" also means the built-in list. */
    cr_assert_eq(soffa_terms_new(&file, "", why, sizeof why), SOFFA_OK);
    cr_assert_eq(soffa_terms_category_count(file), soffa_terms_category_count(s_list));
    soffa_terms_destroy(&file);
}

/* What a router sends back: the field and the categories in both
 * languages, never the text. */
Test(terms, the_refusal_names_field_and_categories_and_never_the_text, .init = s_setup, .fini = s_teardown)
{
    char why[512];
    const char *text = "Kvarnby: ADHD-diagnos, aktuell hos socialtjänsten sedan 2024";
    cr_assert_eq(soffa_terms_screen(s_list, text, "referral_sent.summary", why, sizeof why),
                 SOFFA_ERR_SENSITIVE_TEXT);
    cr_assert(strstr(why, "referral_sent.summary") == why, "%s", why);
    cr_assert(strstr(why, "health, diagnoses or disability (hälsa, diagnoser eller funktionsnedsättning)"), "%s",
              why);
    cr_assert(strstr(why, "social services or placement (socialtjänst eller placering)"), "%s", why);
    cr_assert(strstr(why, "remove it and send again"), "%s", why);
    /* Two categories fit the broker's 256-byte reason whole. */
    char why256[256];
    cr_assert_eq(soffa_terms_screen(s_list, text, "referral_sent.summary", why256, sizeof why256),
                 SOFFA_ERR_SENSITIVE_TEXT);
    cr_assert_str_eq(why256, why);
    cr_assert_null(strstr(why, "crime"), "%s", why);
    const char *words[] = {"Kvarnby", "ADHD", "adhd", "diagnos:", "socialtjänsten", "aktuell", "2024"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        cr_assert_null(strstr(why, words[i]), "the reason holds '%s': %s", words[i], why);
    /* Nothing named: OK, and why is left alone. */
    strcpy(why, "untouched");
    cr_assert_eq(soffa_terms_screen(s_list, "Vill ha praktik inom handel.", "at_risk_notice.note", why, sizeof why),
                 SOFFA_OK);
    cr_assert_str_eq(why, "untouched");
    cr_assert_eq(soffa_terms_screen(s_list, NULL, "at_risk_notice.note", why, sizeof why), SOFFA_OK);
    /* A short buffer is cut at a character boundary and stays a string. */
    for (size_t len = 1; len < 120; len++) {
        char small[120];
        memset(small, 'x', sizeof small);
        cr_assert_eq(soffa_terms_screen(s_list, "missbruk, ångest", "at_risk_notice.note", small, len),
                     SOFFA_ERR_SENSITIVE_TEXT);
        cr_assert_lt(strlen(small), len);
        const unsigned char *p = (const unsigned char *) small;
        size_t n = strlen(small);
        size_t k = n;
        while (k > 0 && (p[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && p[k - 1] >= 0xC0) {
            size_t need = p[k - 1] >= 0xF0 ? 4 : p[k - 1] >= 0xE0 ? 3 : 2;
            cr_assert_eq(n - (k - 1), need, "cut inside a character at length %zu", len);
        }
    }
    cr_assert_eq(soffa_terms_screen(s_list, "missbruk", "x", NULL, 0), SOFFA_ERR_SENSITIVE_TEXT);
    cr_assert_str_neq(soffa_strerror(SOFFA_ERR_SENSITIVE_TEXT), "unknown error code");
}

/* Hostile text: broken UTF-8, control characters, huge input. */
Test(terms, hostile_text, .init = s_setup, .fini = s_teardown)
{
    char got[200];
    /* Broken bytes separate words; words around them still count. */
    s_keys(s_list, "\xff\xfe missbruk \xc3", got, sizeof got);
    cr_assert_str_eq(got, "substance");
    s_keys(s_list, "miss\xffsbruk", got, sizeof got);
    cr_assert_str_eq(got, "");
    s_keys(s_list, "\xc3\x28 \xe2\x82 \xf0\x9f \xed\xa0\x80 \xc0\xaf \xf8\x88\x80\x80\x80", got, sizeof got);
    cr_assert_str_eq(got, "");
    s_keys(s_list, "\x01\x02" "alkohol\x7f", got, sizeof got);
    cr_assert_str_eq(got, "substance");
    s_keys(s_list, "\xcc\x8a\xcc\x88 a", got, sizeof got);   /* marks with no letter before them */
    cr_assert_str_eq(got, "");
    /* Marks after a letter they do not combine with are dropped. */
    s_keys(s_list, "\xc3\xa9\xcc\x8a\xcc\x88\xcc\x88", got, sizeof got);
    cr_assert_str_eq(got, "");
    /* 256 KiB of words (sixty times the longest free text), then a term at
     * the very end. */
    size_t big = 256 * 1024;
    char *t = malloc(big + 32);
    cr_assert_not_null(t);
    for (size_t i = 0; i < big; i += 8)
        memcpy(t + i, "praktik ", 8);
    strcpy(t + big, "kuratorn");
    s_keys(s_list, t, got, sizeof got);
    cr_assert_str_eq(got, "health");
    /* 64 KiB without a single separator. */
    memset(t, 'a', 64 * 1024);
    t[64 * 1024] = '\0';
    s_keys(s_list, t, got, sizeof got);
    cr_assert_str_eq(got, "");
    free(t);
    /* No list: nothing is named. */
    cr_assert_not(soffa_terms_check(NULL, "missbruk", NULL));
}

/* ---- The file format ---------------------------------------------------------- */

static soffa_err_t
s_parse(const char *text, char *why, size_t whylen, soffa_terms_t **out)
{
    soffa_terms_t *t = NULL;
    soffa_err_t rc = soffa_terms_parse(&t, text, strlen(text), "test.txt", why, whylen);
    if (out)
        *out = t;
    else
        soffa_terms_destroy(&t);
    return rc;
}

Test(terms, the_format_patterns_phrases_and_exceptions)
{
    soffa_terms_t *t;
    char why[300] = "";
    const char *list = "# a comment\n"
                       "\xef\xbb\xbf"   /* a stray byte-order mark inside is just a character: in a comment line */
                       "\n"
                       "[a] A på svenska | A in English   # trailing comment\r\n"
                       "exakt\n"
                       "  borjan*\t# comment\n"
                       "*slut\n"
                       "*mitt*\n"
                       "två ord\n"
                       "med * emellan\n"
                       "!undantag*\n"
                       "!stopp * här\n"
                       "\n"
                       "[b_c] B | B\n"
                       "undantag*\n"
                       "ÅÄÖ*\n"
                       "Café\n";
    cr_assert_eq(s_parse(list, why, sizeof why, &t), SOFFA_ERR_CONFIG, "%s", why);
    cr_assert(strstr(why, "test.txt line 2"), "%s", why);
    list += strlen("# a comment\n\xef\xbb\xbf");
    char text[2048];
    snprintf(text, sizeof text, "\xef\xbb\xbf# a comment\n%s", list);
    cr_assert_eq(s_parse(text, why, sizeof why, &t), SOFFA_OK, "%s", why);
    cr_assert_eq(soffa_terms_category_count(t), 2);
    cr_assert_str_eq(soffa_terms_category(t, 0)->sv, "A på svenska");
    cr_assert_str_eq(soffa_terms_category(t, 0)->en, "A in English");
    cr_assert_str_eq(soffa_terms_category(t, 1)->key, "b_c");
    size_t exc;
    cr_assert_eq(soffa_terms_term_count(t, 0, &exc), 6);
    cr_assert_eq(exc, 2);
    static const s_row_t rows[] = {
        {"exakt", "a"},          {"exakta", ""},         {"EXAKT!", "a"},        {"borjan", "a"},
        {"borjande", "a"},       {"iborjan", ""},        {"slut", "a"},          {"slutet", ""},
        {"bokslut", "a"},        {"mitt", "a"},          {"omittad", "a"},       {"två ord", "a"},
        {"två, ord", "a"},       {"två andra ord", ""},  {"ord två", ""},        {"med oss emellan", "a"},
        {"med emellan", ""},     {"med två emellan", "a"},
        /* exceptions of a do not touch b */
        {"undantaget", "b_c"},   {"stopp exakt här", ""}, {"stopp exakt", "a"},  {"åäöx", "b_c"},
        {"AAO", ""},             {"cafe", "b_c"},        {"CAFÉ", "b_c"},        {"kafé", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char got[100];
        s_keys(t, rows[i].text, got, sizeof got);
        cr_expect_str_eq(got, rows[i].want, "\"%s\" named [%s], wanted [%s]", rows[i].text, got, rows[i].want);
    }
    soffa_terms_destroy(&t);
}

Test(terms, format_errors_name_the_line)
{
    static const struct {
        const char *list;
        unsigned line;      /* 0: the whole list */
        const char *says;
    } bad[] = {
        {"ord\n[a] A | A\nx\n", 1, "before the first category"},
        {"[a] A | A\n", 0, "has no terms"},
        {"[a] A | A\n!x\n", 0, "has no terms"},
        {"# nothing\n", 0, "no categories"},
        {"", 0, "no categories"},
        {"[a A | A\nx\n", 1, "']' is missing"},
        {"[A] A | A\nx\n", 1, "a-z and _"},
        {"[] A | A\nx\n", 1, "1 to 31"},
        {"[abcdefghijklmnopqrstuvwxyzabcdef] A | A\nx\n", 1, "1 to 31"},
        {"[a] A\nx\n", 1, "one '|'"},
        {"[a] A | B | C\nx\n", 1, "one '|'"},
        {"[a]  | A\nx\n", 1, "1 to 160 bytes"},
        {"[a] A | A\nx\n[a] B | B\ny\n", 3, "appears twice"},
        {"[a] A | A\nad*hd\n", 2, "only at the start or the end"},
        {"[a] A | A\n**\n", 2, "only at the start or the end"},
        {"[a] A | A\n*\n", 2, "'*' alone"},
        {"[a] A | A\n* *\n", 2, "'*' alone"},
        {"[a] A | A\n!*\n", 2, "'*' alone"},
        {"[a] A | A\n!\n", 2, "without the exception"},
        {"[a] A | A\nadhd-diagnos\n", 2, "not one word"},
        {"[a] A | A\nx.y\n", 2, "not one word"},
        {"[a] A | A\nett två tre fyra fem sex sju\n", 2, "at most 6 words"},
        {"[a] A | A\nx\ny\nx\n", 4, "same term as line 2"},
        {"[a] A | A\n!x*\ny\n!X*\n", 4, "same exception as line 2"},
        {"[a] A | A\nad#hd\n", 2, "'#' inside a term"},
        {"[a] A | A\nx\xff\n", 2, "not UTF-8"},
        {"[a] A | A\nx\n\x01\n", 3, "control character"},
        {"[a] A | A\n\xc0\xaf\n", 2, "not UTF-8"},
        {"[a] A | A\nx\ny\xc2\x85\n", 3, "control character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char why[300] = "";
        cr_assert_eq(s_parse(bad[i].list, why, sizeof why, NULL), SOFFA_ERR_CONFIG, "case %zu", i);
        char where[40];
        if (bad[i].line)
            snprintf(where, sizeof where, "test.txt line %u: ", bad[i].line);
        else
            snprintf(where, sizeof where, "test.txt: ");
        cr_assert(strstr(why, where) == why, "case %zu: '%s' does not start with '%s'", i, why, where);
        cr_assert(strstr(why, bad[i].says), "case %zu: '%s' does not say '%s'", i, why, bad[i].says);
    }
    /* A line too long, and 33 categories. */
    char *big = malloc(4096);
    cr_assert_not_null(big);
    snprintf(big, 4096, "[a] A | A\n%01100d\n", 0);
    char why[300];
    cr_assert_eq(s_parse(big, why, sizeof why, NULL), SOFFA_ERR_CONFIG);
    cr_assert(strstr(why, "line 2: longer than 1024 bytes"), "%s", why);
    big[0] = '\0';
    for (int c = 0; c < 33; c++) {
        size_t at = strlen(big);
        snprintf(big + at, 4096 - at, "[c%c%c] C | C\nx\n", 'a' + c / 26, 'a' + c % 26);
    }
    cr_assert_eq(s_parse(big, why, sizeof why, NULL), SOFFA_ERR_CONFIG);
    cr_assert(strstr(why, "more than 32 categories"), "%s", why);
    free(big);
}

Test(terms, files_that_cannot_be_read)
{
    char *dir = tk_tmpdir("terms");
    char path[512], why[512];
    soffa_terms_t *t = NULL;
    snprintf(path, sizeof path, "%s/missing.txt", dir);
    cr_assert_eq(soffa_terms_new(&t, path, why, sizeof why), SOFFA_ERR_NOT_FOUND);
    cr_assert(strstr(why, "missing.txt") && strstr(why, "cannot be opened"), "%s", why);
    cr_assert_null(t);
    /* A directory. */
    cr_assert_eq(soffa_terms_new(&t, dir, why, sizeof why), SOFFA_ERR_CONFIG);
    cr_assert(strstr(why, "not a regular file"), "%s", why);
    /* Too large. */
    snprintf(path, sizeof path, "%s/big.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("[a] A | A\n", f);
    for (int i = 0; i < 120000; i++)
        fputs("# filler\n", f);
    fclose(f);
    cr_assert_eq(soffa_terms_new(&t, path, why, sizeof why), SOFFA_ERR_TOO_LARGE);
    cr_assert(strstr(why, "larger than"), "%s", why);
    /* A good file, then a broken one: the error names the file and line. */
    snprintf(path, sizeof path, "%s/terms.txt", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("[lokal] lokal term | local term\nsnusk*\n", f);
    fclose(f);
    cr_assert_eq(soffa_terms_new(&t, path, why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert(soffa_terms_check(t, "snuskigt", NULL));
    cr_assert_not(soffa_terms_check(t, "missbruk", NULL));   /* a configured list replaces the built-in one */
    soffa_terms_destroy(&t);
    f = fopen(path, "a");
    fputs("x y-z\n", f);
    fclose(f);
    cr_assert_eq(soffa_terms_new(&t, path, why, sizeof why), SOFFA_ERR_CONFIG);
    cr_assert(strstr(why, "terms.txt line 3:") == why, "%s", why);
    /* Unreadable (when not running as root, who reads anything). */
    if (geteuid() != 0) {
        chmod(path, 0);
        cr_assert_eq(soffa_terms_new(&t, path, why, sizeof why), SOFFA_ERR_PERMISSION);
    }
    tk_rmrf(dir);
    free(dir);
    cr_assert_eq(soffa_terms_new(NULL, NULL, NULL, 0), SOFFA_ERR_INVALID_ARG);
}
