/* test_dates.c - the data side of spool-dates on hand-made cases: the calendar (leap years,
 * weekdays of known dates, day numbers both ways), each human format written out for known dates,
 * the round trip format -> rule-based reader -> same date over the whole range, the ISO reader,
 * the by-date split (no test date ever in training), the vocabularies and the exact-match
 * scorer. */
#include "helpers.h"
#include "dates_data.h"

#include <stdio.h>
#include <string.h>

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
        /* the name of each format is its rendering of 1998-03-03 */
        assert_true(dt_format(f, d, b, sizeof b) > 0);
        assert_string_equal(b, dt_format_name(f));
    }
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
    assert_int_equal(dt_format(dt_nformats(), d, b, sizeof b), -1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calendar),         cmocka_unit_test(test_formats_by_hand),
        cmocka_unit_test(test_round_trip_every_format), cmocka_unit_test(test_readers_reject),
        cmocka_unit_test(test_split_is_by_date), cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_exact_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
