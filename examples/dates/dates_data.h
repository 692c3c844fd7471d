/* SPDX-License-Identifier: MIT */
/* dates_data.h - the data side of spool-dates: a small proleptic-Gregorian calendar, the
 * human-written date formats the model learns to read, the seeded train/test generator (split by
 * date, so no test date is ever seen in training), the character vocabularies and the
 * exact-match scorer. No spool types here, so the tests can check it on hand-made cases. */
#ifndef SPOOL_EXAMPLES_DATES_DATA_H
#define SPOOL_EXAMPLES_DATES_DATA_H

#include <stdint.h>

/* Dates from 1950-01-01 to 2049-12-31: the window in which two-digit years are unambiguous
 * (50..99 -> 19xx, 00..49 -> 20xx). */
#define DT_YEAR0 1950
#define DT_YEAR1 2049

typedef struct {
    int y, m, d;
} dt_date;

int dt_is_leap(int y);
int dt_days_in_month(int y, int m);
int dt_valid(dt_date a);
/* Days since 1970-01-01 (negative before), and back. */
long dt_to_days(dt_date a);
dt_date dt_from_days(long n);
int dt_weekday(dt_date a); /* 0 = Monday .. 6 = Sunday */
/* Number of days in [DT_YEAR0, DT_YEAR1] and the date of index i in that range. */
long dt_range_days(void);
dt_date dt_range_at(long i);

/* "1998-03-03"; out must hold 11 bytes. */
void dt_iso(dt_date a, char *out);
/* Parses exactly "YYYY-MM-DD" of a real date; 0 on success, -1 otherwise. */
int dt_parse_iso(const char *s, dt_date *out);
/* One line of an --eval-file, "text<TAB>YYYY-MM-DD" or "text<TAB>-" (no date), split in place:
 * 1 with *text, *gold (the part after the tab) and *nodate set (and *gold_date when it is a
 * date); 0 for a line to skip (empty, or a '#' comment); -1 if malformed. */
int dt_eval_line(char *line, const char **text, const char **gold, int *nodate, dt_date *gold_date);

/* The human formats. dt_format writes format f of date a into out (cap bytes, always
 * terminated) and returns the length, or -1 if f is out of range or cap too small. Slashes are
 * month/day/year (US), dots and dashes day.month.year (European), as in the format list in
 * docs/dates.md; two slash formats write day/month/year when the day is over 12 (13/3/98, where
 * no month 13 makes it ambiguous) and month/day/year otherwise. */
int dt_nformats(void);
const char *dt_format_name(int f);     /* a sample of the format, e.g. "tuesday, march 3, 1998" */
int dt_format(int f, dt_date a, char *out, int cap);

/* A rule-based reader of every format above (the reference the round-trip test uses): month
 * names (full or 3 letters), weekday names (checked against the date), ordinals (3rd),
 * two-digit years, 8-digit yyyymmdd. 0 on success, -1 if the text is not a valid date. */
int dt_parse_human(const char *s, dt_date *out);

/* What the model reads: the text lower-cased, commas and dots after letters ("Mar.") turned into
 * spaces, spaces around '/', '-' and '.' between digits removed, runs of white space collapsed to
 * one space, no space at either end. "  3   March , 1998 " -> "3 march 1998". Applied to training
 * and user text alike, so extra spaces, capitals and commas cannot change the reading. Writes at
 * most cap bytes (always terminated) and returns the length, or -1 if it does not fit. */
int dt_normalise(const char *in, char *out, int cap);

/* Checks a normalised text before the model reads it: it must hold a number (digits, or a spelled
 * number word such as "nineteen" or "twenty-third"), no number of 3,
 * 5-7 or more than 8 digits, and every 4-digit year (also the year of an 8-digit yyyymmdd) must lie
 * in [DT_YEAR0, DT_YEAR1]: the model only knows that range and would otherwise silently map 2051
 * to some year it knows. Returns 0, or -1 with a reason in why (cap bytes). */
int dt_check_input(const char *norm, char *why, int cap);

/* Checks a reading against the normalised text it came from: the text must name the day (a
 * number, "3rd", "third" or "three"), the month (a number, or the name or its first 3 letters) and
 * the year (4 digits, the last 2 digits, or spelled as the long formats spell it), or hold the
 * reading as yyyymmdd. The model writes a confident date for any text with numbers in it ("5
 * apples 1999" -> 1999-04-05); this refuses those readings. Each number serves one part ("hello
 * 12" is not 2012-12-12; "3/3/98" is 1998-03-03). It checks presence, not position: "3/4/98"
 * supports both 1998-03-04 and 1998-04-03. Returns 0, or -1 with a reason in why. */
int dt_supports(const char *norm, dt_date a, char *why, int cap);

/* Input characters: the text is lower-cased, and any character outside the set maps to <unk>.
 * Ids: 0 = <pad> (unused by the model, which masks with -1), 1 = <unk>, then the set. */
#define DT_IN_CHARS " ,./-0123456789abcdefghijklmnopqrstuvwxyz"
int dt_in_vocab(void);
int dt_in_id(int c);
/* Output: the 11 characters "0123456789-" and a start symbol <go> with id 11. Ty = 10. */
#define DT_OUT_CHARS "0123456789-"
#define DT_TY 10
#define DT_GO 11
int dt_out_vocab(void); /* 12: 11 characters + <go> (which is never a target) */
int dt_out_id(int c);   /* -1 if c is not an output character */
char dt_out_char(int id);

/* The split: each date of the range goes to test with probability test_frac, decided by a hash
 * of (seed, date), so the split is the same for every run with the same seed whatever the
 * number of examples. */
int dt_is_test_date(dt_date a, uint64_t seed, double test_frac);

/* A generator of (text, iso) pairs: draws a date uniformly from its side of the split and a
 * format uniformly. */
typedef struct {
    uint64_t state;
    uint64_t seed;
    double test_frac;
    int test; /* which side of the split it draws from */
    int first, count; /* the formats it draws from: first .. first + count - 1 (dt_gen_init: the 24 short ones) */
    int prose;        /* DT_PROSE: each date inside a sentence (dt_prose) */
} dt_gen;

void dt_gen_init(dt_gen *g, uint64_t seed, double test_frac, int test, uint64_t stream);
/* Which formats the generator draws from: DT_SHORT (the default), DT_LONG, DT_ALL, or DT_PROSE:
 * the long formats inside a sentence ("records show that the ship with nine masts left the
 * harbour on the twenty-third of march, nineteen ninety-eight, a rainy day, when she was seven"),
 * the test side's sentences never among the training side's. */
enum { DT_SHORT, DT_LONG, DT_ALL, DT_PROSE };
/* date inside one of the prose sentences of the training (test = 0) or the test side, chosen by
 * r; length written (cap bytes) or -1. */
int dt_prose(const char *date, uint64_t r, int test, char *out, int cap);
void dt_gen_formats(dt_gen *g, int which);
/* Writes the text (cap bytes) and the ISO target (11 bytes); returns the date. */
dt_date dt_gen_next(dt_gen *g, char *text, int cap, char *iso, int *format);

/* The harder split: long formats with the numbers spelled out, e.g. "the twenty-third of march,
 * nineteen ninety-eight", "Monday, the twenty-third of March, nineteen ninety-eight", "tuesday the
 * twenty-third day of march in the year nineteen ninety-eight". Their indices follow the short
 * formats': dt_nformats() .. dt_nformats_all() - 1, for dt_format and dt_format_name. The rule
 * reader (dt_parse_human) reads the short formats only. Years: 1950-1999 "nineteen fifty" ..,
 * 2000 "two thousand", 2001-2009 "two thousand and five", 2010-2049 "twenty ten" .. */
int dt_nformats_all(void);
/* n in 1..99 as words ("twenty-three"), 1..31 as an ordinal ("twenty-third"), a year in range;
 * return the length written (cap bytes), -1 out of range or no room. */
int dt_spell_cardinal(int n, char *out, int cap);
int dt_spell_ordinal(int n, char *out, int cap);
int dt_spell_year(int y, char *out, int cap);

/* Exact match: the fraction of predictions equal to their targets (0 for n == 0). */
double dt_exact_match(const char *const *pred, const char *const *gold, int n);

#endif
