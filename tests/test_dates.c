/* SPDX-License-Identifier: MIT */
/* test_dates.c - the data side of spool-dates on hand-made cases: the calendar (leap years,
 * weekdays of known dates, day numbers both ways), each human format written out for known dates,
 * the round trip format -> rule-based reader -> same date over the whole range, the ISO reader,
 * the by-date split (no test date ever in training), the vocabularies and the exact-match
 * scorer; the long spelled-out formats of the harder split (--formats long) on hand-made cases and
 * read back by an independent reader over the whole range. */
#include "helpers.h"
#include "dates_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the long formats: an independent reader of spelled-out dates, for their round trip ---- */

static const char *const W_SMALL[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                      "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                                      "seventeen", "eighteen", "nineteen"};
static const char *const W_TENS[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
static const char *const W_ORD[] = {"", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
                                    "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                                    "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth"};
static const char *const W_MONTH[] = {"january", "february", "march", "april", "may", "june", "july", "august",
                                      "september", "october", "november", "december"};
static const char *const W_WDAY[] = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};

static int find_word(const char *w, const char *const *list, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(w, list[i])) return i;
    return -1;
}

/* "ninety-eight" -> 98, "twenty-third" -> 23 (ordinal set), -1 if not a number word. */
static int word_value(const char *w, int *ordinal)
{
    char a[32], *dash;
    snprintf(a, sizeof a, "%s", w);
    int tens = 0;
    if ((dash = strchr(a, '-'))) {
        *dash = 0;
        if ((tens = find_word(a, W_TENS, 10)) < 2) return -1;
        tens *= 10;
        memmove(a, dash + 1, strlen(dash + 1) + 1);
    }
    int v;
    if ((v = find_word(a, W_ORD, 21)) > 0) return *ordinal = 1, tens + v;
    if (!strcmp(a, "thirtieth")) return *ordinal = 1, tens + 30;
    *ordinal = 0;
    if ((v = find_word(a, W_SMALL, 20)) >= 0) return tens + v;
    if (!dash && (v = find_word(a, W_TENS, 10)) >= 2) return 10 * v;
    return -1;
}

/* Reads a normalised long-format text; 0 and the date, or -1. */
static int read_spelled(const char *text, dt_date *out)
{
    char buf[128], *save = NULL;
    snprintf(buf, sizeof buf, "%s", text);
    int d = -1, m = -1, wd = -1, nyear = 0, year[4] = {0};
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        int v, ord, k;
        if ((k = find_word(w, W_MONTH, 12)) >= 0) m = k + 1;
        else if ((k = find_word(w, W_WDAY, 7)) >= 0) wd = k;
        else if (w[0] >= '0' && w[0] <= '9') d = atoi(w);
        else if ((v = word_value(w, &ord)) >= 0 && ord) d = v;
        else if (!strcmp(w, "thousand")) year[nyear++] = 1000;
        else if (v >= 0 && nyear < 3) year[nyear++] = v;
        else if (strcmp(w, "the") && strcmp(w, "of") && strcmp(w, "day") && strcmp(w, "in") && strcmp(w, "year") &&
                 strcmp(w, "and"))
            return -1;
    }
    int y = -1;
    if (nyear >= 2 && year[0] == 2 && year[1] == 1000) y = 2000 + (nyear == 3 ? year[2] : 0);
    else if (nyear == 2 && (year[0] == 19 || year[0] == 20) && year[1] >= 10) y = year[0] * 100 + year[1];
    dt_date a = {y, m, d};
    if (!dt_valid(a) || (wd >= 0 && wd != dt_weekday(a))) return -1;
    *out = a;
    return 0;
}

static void test_spelled_numbers_and_long_formats(void **state)
{
    (void)state;
    char b[128];
    struct { int n; const char *card, *ord; } nums[] = {{1, "one", "first"}, {2, "two", "second"}, {3, "three", "third"},
        {12, "twelve", "twelfth"}, {20, "twenty", "twentieth"}, {21, "twenty-one", "twenty-first"},
        {23, "twenty-three", "twenty-third"}, {30, "thirty", "thirtieth"}, {31, "thirty-one", "thirty-first"}};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(dt_spell_cardinal(nums[i].n, b, sizeof b), (int)strlen(nums[i].card));
        assert_string_equal(b, nums[i].card);
        assert_int_equal(dt_spell_ordinal(nums[i].n, b, sizeof b), (int)strlen(nums[i].ord));
        assert_string_equal(b, nums[i].ord);
    }
    dt_spell_cardinal(98, b, sizeof b), assert_string_equal(b, "ninety-eight");
    assert_int_equal(dt_spell_cardinal(0, b, sizeof b), -1);
    assert_int_equal(dt_spell_cardinal(100, b, sizeof b), -1);
    assert_int_equal(dt_spell_ordinal(32, b, sizeof b), -1);
    assert_int_equal(dt_spell_ordinal(23, b, 5), -1); /* no room */
    struct { int y; const char *s; } years[] = {{1950, "nineteen fifty"}, {1998, "nineteen ninety-eight"},
        {2000, "two thousand"}, {2005, "two thousand and five"}, {2010, "twenty ten"}, {2049, "twenty forty-nine"}};
    for (int i = 0; i < 6; i++) {
        assert_true(dt_spell_year(years[i].y, b, sizeof b) > 0);
        assert_string_equal(b, years[i].s);
    }
    assert_int_equal(dt_spell_year(1949, b, sizeof b), -1);
    dt_date d = {1998, 3, 23}; /* a Monday */
    const char *want[] = {"the twenty-third of march, nineteen ninety-eight",
                          "Monday, the twenty-third of March, nineteen ninety-eight",
                          "twenty-third march nineteen ninety-eight", "March the twenty-third, nineteen ninety-eight",
                          "monday the twenty-third day of march in the year nineteen ninety-eight",
                          "23rd of March, nineteen ninety-eight"};
    int n0 = dt_nformats();
    assert_int_equal(dt_nformats_all() - n0, 6);
    for (int f = 0; f < 6; f++) {
        assert_true(dt_format(n0 + f, d, b, sizeof b) > 0);
        assert_string_equal(b, want[f]);
        assert_string_equal(dt_format_name(n0 + f), want[f]);
    }
    /* every date of the range in every long format: fits the model's 96 characters, only input
     * characters, passes the input check, and an independent reader gets the date back */
    long n = dt_range_days(), chars = 0, count = 0;
    for (long i = 0; i < n; i++) {
        dt_date a = dt_range_at(i), r;
        for (int f = n0; f < dt_nformats_all(); f++) {
            char norm[128], why[128];
            int len = dt_format(f, a, b, sizeof b);
            assert_true(len >= 16 && len < 96);
            for (int k = 0; k < len; k++) assert_int_not_equal(dt_in_id(b[k]), 1);
            dt_normalise(b, norm, sizeof norm);
            assert_int_equal(dt_check_input(norm, why, sizeof why), 0);
            if (read_spelled(norm, &r) || r.y != a.y || r.m != a.m || r.d != a.d)
                fail_msg("format %d: '%s' does not read back as %04d-%02d-%02d", f, b, a.y, a.m, a.d);
            if (dt_supports(norm, a, why, sizeof why)) fail_msg("format %d: '%s': %s", f, b, why);
            chars += len, count++;
        }
    }
    print_message("# long formats: %.1f characters on average\n", (double)chars / count);
    /* the generator draws from the set asked for; the default set is the short one */
    dt_gen g;
    dt_gen_init(&g, 5, 0.1, 0, 1);
    dt_gen_formats(&g, DT_LONG);
    int seen[64] = {0}, f;
    char iso[11];
    for (int i = 0; i < 600; i++) {
        dt_gen_next(&g, b, sizeof b, iso, &f);
        assert_true(f >= n0 && f < dt_nformats_all());
        seen[f]++;
    }
    for (f = n0; f < dt_nformats_all(); f++) assert_true(seen[f] > 50);
    dt_gen_formats(&g, DT_SHORT);
    for (int i = 0; i < 100; i++) dt_gen_next(&g, b, sizeof b, iso, &f), assert_true(f < n0);
    /* the prose set: the same long forms inside sentences, under the model's 192 characters */
    dt_gen_formats(&g, DT_PROSE);
    int longest = 0, framed = 0;
    for (int i = 0; i < 2000; i++) {
        char t[256], plain[128];
        dt_date a = dt_gen_next(&g, t, sizeof t, iso, &f);
        assert_true(f >= n0 && f < dt_nformats_all());
        dt_format(f, a, plain, sizeof plain);
        assert_non_null(strstr(t, plain));
        for (const char *q = t; *q; q++) assert_int_not_equal(dt_in_id(*q), 1);
        longest = (int)strlen(t) > longest ? (int)strlen(t) : longest;
        framed += strlen(t) > strlen(plain);
    }
    assert_true(longest < 192);
    assert_true(framed > 1500); /* most dates get a sentence around them */
    assert_int_equal(dt_prose("x", 0, 0, b, 1), -1); /* no room */
    /* the test side's sentences are none of the training side's: no test frame (before and after
     * the date) ever equals a training frame, and every test text has a sentence before its date */
    for (uint64_t r1 = 0; r1 < 64 * 65536; r1 += 65536 + 1)
        for (uint64_t r2 = 0; r2 < 64 * 65536; r2 += 65536 + 1) {
            char tr[256], te[256];
            dt_prose("@", r1, 0, tr, sizeof tr);
            dt_prose("@", r2, 1, te, sizeof te);
            assert_string_not_equal(tr, te);
            assert_true(te[0] != '@');
            char *ta = strchr(tr, '@'), *ea = strchr(te, '@');
            assert_true(ta - tr == 0 || strncmp(tr, te, (size_t)(ea - te)) || ta - tr != ea - te);
        }
    assert_int_equal(dt_check_input("the third of march", b, sizeof b), 0); /* spelled numbers count */
    assert_int_equal(dt_check_input("the day of march", b, sizeof b), -1);
}

static void test_calendar(void **state)
{
    (void)state;
    assert_true(dt_is_leap(2000));
    assert_false(dt_is_leap(1900));
    assert_true(dt_is_leap(1996));
    assert_false(dt_is_leap(1999));
    assert_int_equal(dt_days_in_month(2000, 2), 29);
    assert_int_equal(dt_days_in_month(2001, 2), 28);
    assert_int_equal(dt_days_in_month(1998, 4), 30);
    assert_false(dt_valid((dt_date){1998, 2, 29}));
    assert_false(dt_valid((dt_date){1998, 13, 1}));
    assert_true(dt_valid((dt_date){2000, 2, 29}));
    /* weekdays (Monday = 0) of dates anyone can look up */
    assert_int_equal(dt_weekday((dt_date){1970, 1, 1}), 3);   /* Thursday */
    assert_int_equal(dt_weekday((dt_date){1998, 3, 3}), 1);   /* Tuesday */
    assert_int_equal(dt_weekday((dt_date){2000, 1, 1}), 5);   /* Saturday */
    assert_int_equal(dt_weekday((dt_date){1969, 7, 20}), 6);  /* Sunday, Apollo 11 landing */
    assert_int_equal(dt_weekday((dt_date){1963, 11, 22}), 4); /* Friday */
    assert_int_equal(dt_to_days((dt_date){1970, 1, 1}), 0);
    assert_int_equal(dt_to_days((dt_date){1969, 12, 31}), -1);
    assert_int_equal(dt_to_days((dt_date){2000, 1, 1}), 10957);
    /* both directions over the whole range, consecutive */
    long n = dt_range_days();
    assert_int_equal(n, 36525); /* 100 years, 25 leap days (2000 is leap) */
    for (long i = 0; i < n; i++) {
        dt_date a = dt_range_at(i);
        assert_true(dt_valid(a));
        assert_int_equal(dt_to_days(a), dt_to_days((dt_date){DT_YEAR0, 1, 1}) + i);
    }
    dt_date last = dt_range_at(n - 1);
    assert_int_equal(last.y, 2049), assert_int_equal(last.m, 12), assert_int_equal(last.d, 31);
}

static void test_formats_by_hand(void **state)
{
    (void)state;
    char b[64];
    dt_date d = {1998, 3, 3};
    for (int f = 0; f < dt_nformats(); f++) {
        /* the name of each format is its rendering of 1998-03-03; the day-first slash formats
         * show 1998-03-13 (and write 1998-03-03 month first, like the US formats) */
        const char *name = dt_format_name(f), *paren = strstr(name, " (day > 12");
        assert_true(dt_format(f, paren ? (dt_date){1998, 3, 13} : d, b, sizeof b) > 0);
        if (paren) assert_memory_equal(b, name, (size_t)(paren - name)), assert_int_equal(strlen(b), paren - name);
        else assert_string_equal(b, name);
    }
    dt_format(22, d, b, sizeof b);
    assert_string_equal(b, "3/3/98");
    dt_format(23, (dt_date){2001, 12, 11}, b, sizeof b);
    assert_string_equal(b, "12/11/2001");
    dt_format(23, (dt_date){2001, 11, 25}, b, sizeof b);
    assert_string_equal(b, "25/11/2001");
    dt_format(1, (dt_date){2001, 11, 11}, b, sizeof b);
    assert_string_equal(b, "the 11th of november 2001");
    dt_format(9, (dt_date){2022, 2, 22}, b, sizeof b);
    assert_string_equal(b, "22nd february 2022");
    dt_format(11, (dt_date){1951, 1, 13}, b, sizeof b);
    assert_string_equal(b, "january 13th, 1951");
    dt_format(11, (dt_date){1951, 1, 31}, b, sizeof b);
    assert_string_equal(b, "january 31st, 1951");
    dt_format(2, (dt_date){2049, 12, 1}, b, sizeof b);
    assert_string_equal(b, "12/1/49");
    dt_format(15, (dt_date){1950, 12, 1}, b, sizeof b);
    assert_string_equal(b, "1.12.50");
    dt_format(3, (dt_date){2000, 1, 1}, b, sizeof b);
    assert_string_equal(b, "Saturday, January 1, 2000");
    /* too small a buffer is an error, never an overflow */
    assert_int_equal(dt_format(3, d, b, 8), -1);
    assert_int_equal(dt_format(dt_nformats_all(), d, b, sizeof b), -1);
    assert_int_equal(dt_format(0, (dt_date){1998, 2, 30}, b, sizeof b), -1);
}

static void test_round_trip_every_format(void **state)
{
    (void)state;
    char b[64], iso[11];
    long n = dt_range_days(), bad = 0;
    for (long i = 0; i < n; i += 3) {
        dt_date a = dt_range_at(i), r;
        for (int f = 0; f < dt_nformats(); f++) {
            assert_true(dt_format(f, a, b, sizeof b) > 0);
            if (dt_parse_human(b, &r) || r.y != a.y || r.m != a.m || r.d != a.d) {
                if (bad++ < 5) print_message("# round trip failed: '%s'\n", b);
            }
            char norm[64], why[128];
            dt_normalise(b, norm, sizeof norm);
            if (dt_supports(norm, a, why, sizeof why) && bad++ < 5) print_message("# '%s': %s\n", b, why);
        }
        dt_iso(a, iso);
        assert_int_equal(dt_parse_iso(iso, &r), 0);
        assert_true(r.y == a.y && r.m == a.m && r.d == a.d);
    }
    assert_int_equal(bad, 0);
}

static void test_readers_reject(void **state)
{
    (void)state;
    dt_date r;
    assert_int_equal(dt_parse_iso("1998-02-30", &r), -1);
    assert_int_equal(dt_parse_iso("1998-3-03", &r), -1);
    assert_int_equal(dt_parse_iso("1998-03-03 ", &r), -1);
    assert_int_equal(dt_parse_iso("19a8-03-03", &r), -1);
    assert_int_equal(dt_parse_iso("", &r), -1);
    assert_int_equal(dt_parse_human("Monday, March 3, 1998", &r), -1); /* it was a Tuesday */
    assert_int_equal(dt_parse_human("the 3th of march 1998", &r), -1); /* wrong ordinal */
    assert_int_equal(dt_parse_human("31/4/98", &r), -1);               /* month 31 */
    assert_int_equal(dt_parse_human("march march 1998", &r), -1);
    assert_int_equal(dt_parse_human("hello", &r), -1);
    assert_int_equal(dt_parse_human("3 smarch 1998", &r), -1);
    assert_int_equal(dt_parse_human("3 march 1998", &r), 0);
    assert_true(r.y == 1998 && r.m == 3 && r.d == 3);
    assert_int_equal(dt_parse_human("4/3/98", &r), 0); /* slashes are month/day */
    assert_true(r.m == 4 && r.d == 3);
    assert_int_equal(dt_parse_human("4.3.98", &r), 0); /* dots are day.month */
    assert_true(r.m == 3 && r.d == 4);
    assert_int_equal(dt_parse_human("1.1.49", &r), 0);
    assert_int_equal(r.y, 2049);
    assert_int_equal(dt_parse_human("1.1.50", &r), 0);
    assert_int_equal(r.y, 1950);
    assert_int_equal(dt_parse_human("13/3/98", &r), 0); /* no month 13: day first */
    assert_true(r.y == 1998 && r.m == 3 && r.d == 13);
}

static void test_normalise_and_check(void **state)
{
    (void)state;
    char b[64], why[160];
    struct {
        const char *in, *out;
    } cases[] = {
        {"  3   march   1998  ", "3 march 1998"},
        {"3 March 1998", "3 march 1998"},
        {"TUESDAY,  March 3 ,1998", "tuesday march 3 1998"},
        {"Mar. 3, 98", "mar 3 98"},
        {"3 / 3 / 98", "3/3/98"},
        {"03 . 03 . 1998", "03.03.1998"},
        {"3 - mar - 1998", "3-mar-1998"},
        {"\t19980303\n", "19980303"},
        {"", ""},
        {" , ", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(dt_normalise(cases[i].in, b, sizeof b), (int)strlen(cases[i].out));
        assert_string_equal(b, cases[i].out);
    }
    assert_int_equal(dt_normalise("the 3rd of march 1998", b, 8), -1); /* does not fit: an error, terminated */
    assert_true(strlen(b) < 8);
    /* every generated text is unchanged in meaning by normalisation: the reader agrees */
    for (int f = 0; f < dt_nformats(); f++) {
        char t[64];
        dt_date r, a = {2013, 12, 31};
        dt_format(f, a, t, sizeof t);
        dt_normalise(t, b, sizeof b);
        assert_int_equal(dt_parse_human(b, &r), 0);
        assert_true(r.y == a.y && r.m == a.m && r.d == a.d);
        assert_int_equal(dt_check_input(b, why, sizeof why), 0);
    }
    assert_int_equal(dt_check_input("3 march 2051", why, sizeof why), -1);
    assert_non_null(strstr(why, "year 2051 is outside the supported range 1950-2049"));
    assert_int_equal(dt_check_input("1 jan 1949", why, sizeof why), -1);
    assert_non_null(strstr(why, "1949"));
    assert_int_equal(dt_check_input("20510101", why, sizeof why), -1);
    assert_non_null(strstr(why, "2051"));
    assert_int_equal(dt_check_input("tomorrow", why, sizeof why), -1);
    assert_non_null(strstr(why, "no number"));
    assert_int_equal(dt_check_input("3 march 199", why, sizeof why), -1);
    assert_int_equal(dt_check_input("3 march 1950", why, sizeof why), 0);
    assert_int_equal(dt_check_input("31/12/49", why, sizeof why), 0); /* two-digit years are in range by definition */
}

static void test_split_is_by_date(void **state)
{
    (void)state;
    const double frac = 0.1;
    long n = dt_range_days(), ntest = 0;
    for (long i = 0; i < n; i++) ntest += dt_is_test_date(dt_range_at(i), 7, frac);
    /* about 10 % of the days (binomial sd ~ 57 days) */
    assert_true(ntest > 0.09 * n && ntest < 0.11 * n);
    dt_gen tr, te, tr2;
    dt_gen_init(&tr, 7, frac, 0, 3);
    dt_gen_init(&tr2, 7, frac, 0, 3);
    dt_gen_init(&te, 7, frac, 1, 0);
    char text[64], iso[11], text2[64], iso2[11];
    int seen_format[64] = {0}, f;
    for (int i = 0; i < 5000; i++) {
        dt_date a = dt_gen_next(&tr, text, sizeof text, iso, &f);
        assert_false(dt_is_test_date(a, 7, frac));
        seen_format[f]++;
        dt_date b = dt_gen_next(&tr2, text2, sizeof text2, iso2, NULL); /* same seed and stream: same data */
        assert_string_equal(text, text2);
        assert_string_equal(iso, iso2);
        assert_true(a.y == b.y && a.m == b.m && a.d == b.d);
        dt_date c = dt_gen_next(&te, text, sizeof text, iso, NULL);
        assert_true(dt_is_test_date(c, 7, frac));
        dt_date r;
        assert_int_equal(dt_parse_human(text, &r), 0); /* the text says the target's date */
        assert_int_equal(dt_parse_iso(iso, &r), 0);
        assert_true(r.y == c.y && r.m == c.m && r.d == c.d);
    }
    for (f = 0; f < dt_nformats(); f++) assert_true(seen_format[f] > 100);
    /* another seed gives another split */
    long differ = 0;
    for (long i = 0; i < n; i++) differ += dt_is_test_date(dt_range_at(i), 7, frac) != dt_is_test_date(dt_range_at(i), 8, frac);
    assert_true(differ > 1000);
}

static void test_vocab(void **state)
{
    (void)state;
    assert_int_equal(dt_in_id('a'), dt_in_id('A'));
    assert_int_equal(dt_in_id('#'), 1);
    assert_int_equal(dt_in_id(0), 1);
    assert_true(dt_in_id(' ') >= 2 && dt_in_id('z') < dt_in_vocab());
    for (const char *p = DT_OUT_CHARS; *p; p++) assert_int_equal(dt_out_char(dt_out_id(*p)), *p);
    assert_int_equal(dt_out_id('x'), -1);
    assert_int_equal(dt_out_vocab(), 12);
    assert_int_equal(DT_GO, dt_out_vocab() - 1);
}

static void test_exact_match(void **state)
{
    (void)state;
    const char *gold[] = {"1998-03-03", "2000-01-01", "1950-12-31", "2049-06-15"};
    const char *all[] = {"1998-03-03", "2000-01-01", "1950-12-31", "2049-06-15"};
    const char *half[] = {"1998-03-03", "2000-01-02", "1950-12-31", "1949-06-15"};
    const char *none[] = {"1998-03-30", "", "1950-12-3", "2049-06-15 "};
    assert_true(dt_exact_match(all, gold, 4) == 1.0);
    assert_true(dt_exact_match(half, gold, 4) == 0.5);
    assert_true(dt_exact_match(none, gold, 4) == 0.0);
    assert_true(dt_exact_match(half, gold, 1) == 1.0);
    assert_true(dt_exact_match(half, gold, 0) == 0.0);
}

/* tests/dates_human.tsv, the set of human-typed forms: every gold date is what the rule-based
 * reader gets from the normalised text, no line is a form the generator writes, and every date is
 * a test day of seeds 1-3 (unseen in training by the models of docs/dates.md). */
static dt_date days[512]; /* the test set's dates, for the dev set's checks */
static int n_days;

/* The next 'text<TAB>gold' line of a human-typed file (comments and blank lines skipped), split
 * at the tab; 0 at the end of the file. */
static int next_line(FILE *f, char *line, int cap, const char **gold)
{
    while (fgets(line, cap, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab) fail_msg("'%s' has no tab", line);
        *tab = 0, *gold = tab + 1;
        return 1;
    }
    return 0;
}

/* A human-typed form of a date: the rule-based reader gets the gold date from the normalised
 * text, the text supports it, no generator format writes it, and no earlier line of the file
 * (texts[0..n)) is the same. Returns the gold date. */
static dt_date check_form(const char *line, const char *iso, char (*texts)[64], int n)
{
    char norm[64], g[64], why[128];
    dt_date gold, r;
    if (dt_parse_iso(iso, &gold)) fail_msg("'%s': '%s' is not a date", line, iso);
    assert_true(dt_normalise(line, norm, sizeof norm) > 0);
    if (dt_parse_human(norm, &r) || r.y != gold.y || r.m != gold.m || r.d != gold.d)
        fail_msg("'%s' does not read as %s", line, iso);
    if (dt_supports(norm, gold, why, sizeof why)) fail_msg("'%s': %s", line, why);
    for (int k = 0; k < dt_nformats(); k++) {
        dt_format(k, gold, g, sizeof g);
        if (!strcmp(g, line)) fail_msg("'%s' is format %d of the generator", line, k);
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(texts[i], line)) fail_msg("'%s' is in the file twice", line);
    snprintf(texts[n], sizeof texts[n], "%.63s", line);
    return gold;
}

static void test_human_set_is_right_and_unseen(void **state)
{
    (void)state;
    const char *path = getenv("SPOOL_DATES_HUMAN"), *iso;
    assert_non_null(path);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char line[256], texts[512][64];
    int n = 0;
    while (n < 512 && next_line(f, line, sizeof line, &iso)) {
        dt_date gold = check_form(line, iso, texts, n);
        for (uint64_t seed = 1; seed <= 3; seed++) assert_true(dt_is_test_date(gold, seed, 0.1));
        days[n++] = gold;
    }
    fclose(f);
    assert_true(n >= 150);
    n_days = n;
}

/* examples/data/dates_human_dev.tsv, the dev set --min-logprob is chosen on: the same checks,
 * but each date is a test day of at least one of seeds 1-3 (--eval-file skips the others) and of
 * no line of the test set, and the 'text<TAB>-' lines are texts the rule-based reader refuses. */
static void test_human_dev_set(void **state)
{
    (void)state;
    const char *path = getenv("SPOOL_DATES_HUMAN_DEV"), *iso;
    assert_non_null(path);
    assert_true(n_days >= 150); /* test_human_set_is_right_and_unseen ran first */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char line[256], texts[512][64];
    int n = 0, nodate = 0, per_seed[4] = {0};
    while (n < 512 && next_line(f, line, sizeof line, &iso)) {
        if (!strcmp(iso, "-")) {
            char norm[64];
            dt_date r;
            assert_true(dt_normalise(line, norm, sizeof norm) > 0);
            if (!dt_parse_human(norm, &r)) fail_msg("'%s' is a date", line);
            nodate++;
            continue;
        }
        dt_date gold = check_form(line, iso, texts, n++);
        int unseen = 0;
        for (int seed = 1; seed <= 3; seed++)
            if (dt_is_test_date(gold, (uint64_t)seed, 0.1)) unseen = 1, per_seed[seed]++;
        if (!unseen) fail_msg("'%s': %s is a training day of seeds 1, 2 and 3", line, iso);
        for (int i = 0; i < n_days; i++)
            if (days[i].y == gold.y && days[i].m == gold.m && days[i].d == gold.d)
                fail_msg("'%s': %s is a day of the test set", line, iso);
    }
    fclose(f);
    assert_true(n >= 200 && nodate >= 10);
    for (int seed = 1; seed <= 3; seed++) assert_true(per_seed[seed] >= 60);
}

/* dt_supports: a reading must be named by the text, in digits or words. */
static void test_reading_supported_by_text(void **state)
{
    (void)state;
    char why[128];
    struct { const char *text; dt_date a; const char *missing; } no[] = {
        {"5 apples 1999", {1999, 4, 5}, "month (4)"},  {"pi is 3.14", {2014, 3, 4}, "day (4)"},
        {"2 jun 51", {2015, 6, 2}, "year (2015)"},      {"20-1-2005", {2005, 10, 20}, "month (10)"},
        {"june 1999", {1999, 6, 1}, "day (1)"},          {"christmas 2001", {2001, 3, 5}, "day (5)"},
        {"summary 5 1998", {1998, 3, 5}, "month (3)"},        {"19980304", {1998, 3, 3}, "day (3)"},
        {"the third of may nineteen ninety", {1998, 5, 3}, "year (1998)"},
        {"hello 12", {2012, 12, 12}, "day (12)"},        {"12 monkeys 12", {2012, 12, 12}, "day (12)"},
        {"3 march 3", {2003, 3, 3}, "year (2003)"},
        {"2/30/99", {1999, 2, 30}, "is not a date"},
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (!dt_supports(no[i].text, no[i].a, why, sizeof why)) fail_msg("'%s' supports its reading", no[i].text);
        if (no[i].missing && !strstr(why, no[i].missing)) fail_msg("'%s': %s", no[i].text, why);
    }
    struct { const char *text; dt_date a; } yes[] = {
        {"3/4/98", {1998, 3, 4}},  {"3/4/98", {1998, 4, 3}}, {"19980304", {1998, 3, 4}},
        {"the twenty-third of march nineteen ninety-eight", {1998, 3, 23}}, {"mar 3 98", {1998, 3, 3}},
        {"march three two thousand and five", {2005, 3, 3}}, {"3rd sept 2010", {2010, 9, 3}},
        {"12/12/12", {2012, 12, 12}}, {"3/3/98", {1998, 3, 3}}, {"10.10.2010", {2010, 10, 10}},
        {"05/03/05", {2005, 3, 5}},
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (dt_supports(yes[i].text, yes[i].a, why, sizeof why)) fail_msg("'%s': %s", yes[i].text, why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calendar),         cmocka_unit_test(test_formats_by_hand),
        cmocka_unit_test(test_round_trip_every_format), cmocka_unit_test(test_readers_reject),
        cmocka_unit_test(test_normalise_and_check),
        cmocka_unit_test(test_split_is_by_date), cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_exact_match),
        cmocka_unit_test(test_human_set_is_right_and_unseen), cmocka_unit_test(test_human_dev_set),
        cmocka_unit_test(test_reading_supported_by_text),
        cmocka_unit_test(test_spelled_numbers_and_long_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
