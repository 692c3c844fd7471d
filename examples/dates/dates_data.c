/* SPDX-License-Identifier: MIT */
/* dates_data.c - calendar, human date formats, their rule-based reader, the seeded generator with
 * a by-date train/test split, vocabularies and the exact-match scorer for spool-dates. Kept free
 * of spool so that tests/test_dates.c can check each piece on hand-made cases. */
#include "dates_data.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *const month_full[12] = {"january", "february", "march",     "april",
                                            "may",     "june",     "july",      "august",
                                            "september", "october", "november", "december"};
static const char *const wday_full[7] = {"monday", "tuesday",  "wednesday", "thursday",
                                         "friday", "saturday", "sunday"};

/* ---------------------------------------------------------------- calendar */

int dt_is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int dt_days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12) return 0;
    return dim[m - 1] + (m == 2 && dt_is_leap(y));
}

int dt_valid(dt_date a)
{
    return a.y >= 1 && a.y <= 9999 && a.m >= 1 && a.m <= 12 && a.d >= 1 &&
           a.d <= dt_days_in_month(a.y, a.m);
}

/* Whole years and months are counted with loops: the range is a century, and plain counting is
 * easy to check against the weekday of known dates. */
static long days_before_year(int y)
{
    long n = 0;
    if (y >= 1970)
        for (int k = 1970; k < y; k++) n += 365 + dt_is_leap(k);
    else
        for (int k = y; k < 1970; k++) n -= 365 + dt_is_leap(k);
    return n;
}

long dt_to_days(dt_date a)
{
    long n = days_before_year(a.y);
    for (int m = 1; m < a.m; m++) n += dt_days_in_month(a.y, m);
    return n + a.d - 1;
}

dt_date dt_from_days(long n)
{
    dt_date a = {1970, 1, 1};
    while (n < 0) {
        a.y--;
        n += 365 + dt_is_leap(a.y);
    }
    while (n >= 365 + dt_is_leap(a.y)) {
        n -= 365 + dt_is_leap(a.y);
        a.y++;
    }
    while (n >= dt_days_in_month(a.y, a.m)) {
        n -= dt_days_in_month(a.y, a.m);
        a.m++;
    }
    a.d = (int)n + 1;
    return a;
}

/* 1970-01-01 was a Thursday (3 with Monday = 0). */
int dt_weekday(dt_date a)
{
    long r = (dt_to_days(a) + 3) % 7;
    return (int)(r < 0 ? r + 7 : r);
}

long dt_range_days(void)
{
    dt_date a = {DT_YEAR0, 1, 1}, b = {DT_YEAR1 + 1, 1, 1};
    return dt_to_days(b) - dt_to_days(a);
}

dt_date dt_range_at(long i)
{
    dt_date a = {DT_YEAR0, 1, 1};
    return dt_from_days(dt_to_days(a) + i);
}

void dt_iso(dt_date a, char *out)
{
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)a.y % 10000u, (unsigned)a.m % 100u, (unsigned)a.d % 100u);
}

int dt_parse_iso(const char *s, dt_date *out)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) return -1;
    dt_date a;
    a.y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    a.m = (s[5] - '0') * 10 + (s[6] - '0');
    a.d = (s[8] - '0') * 10 + (s[9] - '0');
    if (!dt_valid(a)) return -1;
    *out = a;
    return 0;
}

int dt_eval_line(char *line, const char **text, const char **gold, int *nodate, dt_date *gold_date)
{
    if (!line[0] || line[0] == '#') return 0;
    char *tab = strchr(line, '\t');
    if (!tab) return -1;
    *nodate = !strcmp(tab + 1, "-");
    if (!*nodate && dt_parse_iso(tab + 1, gold_date)) return -1;
    *tab = 0;
    *text = line;
    *gold = tab + 1;
    return 1;
}

/* ----------------------------------------------------------------- formats */

static const char *ordinal_suffix(int d)
{
    if (d % 100 >= 11 && d % 100 <= 13) return "th";
    switch (d % 10) {
    case 1: return "st";
    case 2: return "nd";
    case 3: return "rd";
    default: return "th";
    }
}

/* Capitalised copy of a name into buf (for the formats that write "March", "Tuesday"). */
static const char *cap(const char *name, char *buf, int n)
{
    snprintf(buf, (size_t)n, "%s", name);
    buf[0] = (char)toupper((unsigned char)buf[0]);
    return buf;
}

static const char *const format_names[] = {
    "3 march 1998",          "the 3rd of march 1998", "3/3/98",          "Tuesday, March 3, 1998",
    "March 3, 1998",         "3 mar 1998",            "03.03.1998",      "mar 3, 98",
    "03/03/1998",            "3rd march 1998",        "tue 3 mar 1998",  "march 3rd, 1998",
    "3-mar-1998",            "19980303",              "tuesday 3 march 1998", "3.3.98",
    "1998/03/03",            "Mar. 3, 1998",          "3 March, 1998",   "Tue, 03 Mar 1998",
    "03-03-1998",            "the 3rd of March, 1998", "13/3/98 (day > 12; else 3/13/98)",
    "13/03/1998 (day > 12; else 03/13/1998)",
};
enum { NFORMATS = (int)(sizeof format_names / sizeof format_names[0]) };

/* ------------------------------------------------- long formats, spelled out */

static const char *const long_names[] = {
    "the twenty-third of march, nineteen ninety-eight",
    "Monday, the twenty-third of March, nineteen ninety-eight",
    "twenty-third march nineteen ninety-eight",
    "March the twenty-third, nineteen ninety-eight",
    "monday the twenty-third day of march in the year nineteen ninety-eight",
    "23rd of March, nineteen ninety-eight",
};
enum { NLONG = (int)(sizeof long_names / sizeof long_names[0]) };

static const char *const small_words[20] = {"",        "one",     "two",       "three",    "four",
                                            "five",    "six",     "seven",     "eight",    "nine",
                                            "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                            "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const tens_words[10] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
static const char *const small_ordinals[20] = {"",           "first",       "second",     "third",      "fourth",
                                               "fifth",      "sixth",       "seventh",    "eighth",     "ninth",
                                               "tenth",      "eleventh",    "twelfth",    "thirteenth", "fourteenth",
                                               "fifteenth",  "sixteenth",   "seventeenth", "eighteenth", "nineteenth"};
static const char *const tens_ordinals[4] = {"", "", "twentieth", "thirtieth"};

static int fits(int n, int cap_) { return n >= 0 && n < cap_ ? n : -1; }

int dt_spell_cardinal(int n, char *out, int cap_)
{
    if (n < 1 || n > 99 || cap_ <= 0) return -1;
    if (n < 20) return fits(snprintf(out, (size_t)cap_, "%s", small_words[n]), cap_);
    return fits(snprintf(out, (size_t)cap_, "%s%s%s", tens_words[n / 10], n % 10 ? "-" : "", small_words[n % 10]), cap_);
}

int dt_spell_ordinal(int n, char *out, int cap_)
{
    if (n < 1 || n > 31 || cap_ <= 0) return -1;
    if (n < 20) return fits(snprintf(out, (size_t)cap_, "%s", small_ordinals[n]), cap_);
    if (n % 10 == 0) return fits(snprintf(out, (size_t)cap_, "%s", tens_ordinals[n / 10]), cap_);
    return fits(snprintf(out, (size_t)cap_, "%s-%s", tens_words[n / 10], small_ordinals[n % 10]), cap_);
}

int dt_spell_year(int y, char *out, int cap_)
{
    char c[32];
    if (y < DT_YEAR0 || y > DT_YEAR1 || cap_ <= 0) return -1;
    if (y == 2000) return fits(snprintf(out, (size_t)cap_, "two thousand"), cap_);
    dt_spell_cardinal(y % 100, c, sizeof c);
    if (y < 2000) return fits(snprintf(out, (size_t)cap_, "nineteen %s", c), cap_);
    if (y < 2010) return fits(snprintf(out, (size_t)cap_, "two thousand and %s", c), cap_);
    return fits(snprintf(out, (size_t)cap_, "twenty %s", c), cap_);
}

static int format_long(int f, dt_date a, char *out, int cap_)
{
    const char *mon = month_full[a.m - 1], *wd = wday_full[dt_weekday(a)];
    char od[32], yr[48], cm[16], cw[16];
    dt_spell_ordinal(a.d, od, sizeof od);
    dt_spell_year(a.y, yr, sizeof yr);
    cap(mon, cm, sizeof cm), cap(wd, cw, sizeof cw);
    int n;
    switch (f) {
    case 0: n = snprintf(out, (size_t)cap_, "the %s of %s, %s", od, mon, yr); break;
    case 1: n = snprintf(out, (size_t)cap_, "%s, the %s of %s, %s", cw, od, cm, yr); break;
    case 2: n = snprintf(out, (size_t)cap_, "%s %s %s", od, mon, yr); break;
    case 3: n = snprintf(out, (size_t)cap_, "%s the %s, %s", cm, od, yr); break;
    case 4: n = snprintf(out, (size_t)cap_, "%s the %s day of %s in the year %s", wd, od, mon, yr); break;
    case 5: n = snprintf(out, (size_t)cap_, "%d%s of %s, %s", a.d, ordinal_suffix(a.d), cm, yr); break;
    default: return -1;
    }
    return fits(n, cap_);
}

int dt_nformats(void) { return NFORMATS; }
int dt_nformats_all(void) { return NFORMATS + NLONG; }
const char *dt_format_name(int f)
{
    return f >= 0 && f < NFORMATS ? format_names[f] : f >= NFORMATS && f < NFORMATS + NLONG ? long_names[f - NFORMATS] : NULL;
}

int dt_format(int f, dt_date a, char *out, int cap_)
{
    if (f >= NFORMATS && f < NFORMATS + NLONG && cap_ > 0 && dt_valid(a) && a.y >= DT_YEAR0 && a.y <= DT_YEAR1)
        return format_long(f - NFORMATS, a, out, cap_);
    if (f < 0 || f >= NFORMATS || cap_ <= 0 || !dt_valid(a)) return -1;
    const char *mon = month_full[a.m - 1], *wd = wday_full[dt_weekday(a)];
    char m3[4], w3[4], cm[16], cw[16], cm3[4], cw3[4];
    snprintf(m3, sizeof m3, "%.3s", mon);
    snprintf(w3, sizeof w3, "%.3s", wd);
    cap(mon, cm, sizeof cm), cap(wd, cw, sizeof cw), cap(m3, cm3, sizeof cm3), cap(w3, cw3, sizeof cw3);
    int y = a.y, yy = a.y % 100, m = a.m, d = a.d, n;
    const char *o = ordinal_suffix(d);
    switch (f) {
    case 0: n = snprintf(out, (size_t)cap_, "%d %s %d", d, mon, y); break;
    case 1: n = snprintf(out, (size_t)cap_, "the %d%s of %s %d", d, o, mon, y); break;
    case 2: n = snprintf(out, (size_t)cap_, "%d/%d/%02d", m, d, yy); break;
    case 3: n = snprintf(out, (size_t)cap_, "%s, %s %d, %d", cw, cm, d, y); break;
    case 4: n = snprintf(out, (size_t)cap_, "%s %d, %d", cm, d, y); break;
    case 5: n = snprintf(out, (size_t)cap_, "%d %s %d", d, m3, y); break;
    case 6: n = snprintf(out, (size_t)cap_, "%02d.%02d.%d", d, m, y); break;
    case 7: n = snprintf(out, (size_t)cap_, "%s %d, %02d", m3, d, yy); break;
    case 8: n = snprintf(out, (size_t)cap_, "%02d/%02d/%d", m, d, y); break;
    case 9: n = snprintf(out, (size_t)cap_, "%d%s %s %d", d, o, mon, y); break;
    case 10: n = snprintf(out, (size_t)cap_, "%s %d %s %d", w3, d, m3, y); break;
    case 11: n = snprintf(out, (size_t)cap_, "%s %d%s, %d", mon, d, o, y); break;
    case 12: n = snprintf(out, (size_t)cap_, "%d-%s-%d", d, m3, y); break;
    case 13: n = snprintf(out, (size_t)cap_, "%d%02d%02d", y, m, d); break;
    case 14: n = snprintf(out, (size_t)cap_, "%s %d %s %d", wd, d, mon, y); break;
    case 15: n = snprintf(out, (size_t)cap_, "%d.%d.%02d", d, m, yy); break;
    case 16: n = snprintf(out, (size_t)cap_, "%d/%02d/%02d", y, m, d); break;
    case 17: n = snprintf(out, (size_t)cap_, "%s. %d, %d", cm3, d, y); break;
    case 18: n = snprintf(out, (size_t)cap_, "%d %s, %d", d, cm, y); break;
    case 19: n = snprintf(out, (size_t)cap_, "%s, %02d %s %d", cw3, d, cm3, y); break;
    case 20: n = snprintf(out, (size_t)cap_, "%02d-%02d-%d", d, m, y); break;
    case 22: n = d > 12 ? snprintf(out, (size_t)cap_, "%d/%d/%02d", d, m, yy) : snprintf(out, (size_t)cap_, "%d/%d/%02d", m, d, yy); break;
    case 23: n = d > 12 ? snprintf(out, (size_t)cap_, "%02d/%02d/%d", d, m, y) : snprintf(out, (size_t)cap_, "%02d/%02d/%d", m, d, y); break;
    case 21: n = snprintf(out, (size_t)cap_, "the %d%s of %s, %d", d, o, cm, y); break;
    default: return -1;
    }
    return n < cap_ ? n : -1;
}

/* ------------------------------------------------------------ human reader */

static int name_index(const char *w, int len, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        int full = (int)strlen(names[i]);
        if ((len == full || len == 3) && !strncmp(w, names[i], (size_t)len)) return i;
    }
    return -1;
}

int dt_parse_human(const char *s, dt_date *out)
{
    int num[4], ndig[4], nn = 0, month = -1, wday = -1;
    char sep = 0;
    const char *p = s;
    while (*p) {
        unsigned char c = (unsigned char)*p;
        if (isdigit(c)) {
            long v = 0;
            int k = 0;
            while (isdigit((unsigned char)p[k]) && k < 9) v = v * 10 + (p[k] - '0'), k++;
            if (isdigit((unsigned char)p[k]) || nn == 4) return -1;
            p += k;
            /* an ordinal suffix belongs to the number */
            if (isalpha((unsigned char)p[0]) && isalpha((unsigned char)p[1]) && !isalpha((unsigned char)p[2])) {
                char suf[3] = {(char)tolower((unsigned char)p[0]), (char)tolower((unsigned char)p[1]), 0};
                if (strcmp(suf, ordinal_suffix((int)v))) return -1;
                p += 2;
            }
            num[nn] = (int)v, ndig[nn] = k, nn++;
        } else if (isalpha(c)) {
            char w[16];
            int k = 0;
            while (isalpha((unsigned char)p[k])) {
                if (k < 15) w[k] = (char)tolower((unsigned char)p[k]);
                k++;
            }
            if (k > 15) return -1;
            w[k] = 0;
            p += k;
            int mi = name_index(w, k, month_full, 12), wi = name_index(w, k, wday_full, 7);
            if (mi >= 0) {
                if (month >= 0) return -1;
                month = mi + 1;
            } else if (wi >= 0) {
                if (wday >= 0) return -1;
                wday = wi;
            } else if (strcmp(w, "the") && strcmp(w, "of")) {
                return -1;
            }
        } else {
            if ((c == '/' || c == '.' || c == '-') && nn > 0 && month < 0 && !sep) sep = (char)c;
            p++;
        }
    }
    dt_date a = {0, 0, 0};
    int yi = -1;
    if (month > 0) {
        if (nn != 2) return -1;
        yi = ndig[0] == 4 ? 0 : ndig[1] == 4 ? 1 : 1;
        a.m = month, a.d = num[1 - yi];
    } else if (nn == 1 && ndig[0] == 8) {
        a.y = num[0] / 10000, a.m = num[0] / 100 % 100, a.d = num[0] % 100;
    } else if (nn == 3) {
        if (ndig[0] == 4) yi = 0, a.m = num[1], a.d = num[2];
        else if (sep == '/' && num[0] > 12) yi = 2, a.d = num[0], a.m = num[1]; /* 13/3/98: no month 13 */
        else if (sep == '/') yi = 2, a.m = num[0], a.d = num[1];
        else if (sep == '.' || sep == '-') yi = 2, a.d = num[0], a.m = num[1];
        else return -1;
    } else {
        return -1;
    }
    if (yi >= 0) {
        if (ndig[yi] == 2) a.y = num[yi] >= 50 ? 1900 + num[yi] : 2000 + num[yi];
        else if (ndig[yi] == 4) a.y = num[yi];
        else return -1;
    }
    if (!dt_valid(a) || (wday >= 0 && wday != dt_weekday(a))) return -1;
    *out = a;
    return 0;
}

/* ----------------------------------------------------------- normalisation */

int dt_normalise(const char *in, char *out, int cap_)
{
    int n = 0, pending_space = 0, glue = 0;
    if (cap_ <= 0) return -1;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int c = tolower(*p), prev = n ? (unsigned char)out[n - 1] : 0;
        if (c == ',' || (c == '.' && isalpha(prev)) || isspace(c)) {
            pending_space = n > 0;
            continue;
        }
        /* separators take no space on either side: "3 / 3 / 98" -> "3/3/98", "3 - mar" -> "3-mar" */
        int sep = c == '/' || c == '-' || (c == '.' && isdigit(prev));
        if (pending_space && !sep && !glue) {
            if (n + 1 >= cap_) return out[n] = 0, -1;
            out[n++] = ' ';
        }
        pending_space = 0, glue = sep;
        if (n + 1 >= cap_) return out[n] = 0, -1;
        out[n++] = (char)c;
    }
    out[n] = 0;
    return n;
}

/* p starts a word of s (no letter just before it). */
static int word_at(const char *s, const char *p) { return p == s || !isalpha((unsigned char)p[-1]); }

/* w occurs in s at the start of a word. */
static int has_word(const char *s, const char *w)
{
    for (const char *p = s; (p = strstr(p, w)); p++)
        if (word_at(s, p)) return 1;
    return 0;
}

int dt_supports(const char *norm, dt_date a, char *why, int cap_)
{
    /* The numbers of 1 and of 2 digits, counted by value: each part read from digits takes one,
     * so "12" alone cannot be day, month and year at once but "3/3/98" can give the day and the
     * month. A 4-digit year, an 8-digit yyyymmdd and words take none. */
    int one[100] = {0}, two[100] = {0}, year4 = 0, whole = 0;
    if (!dt_valid(a)) {
        snprintf(why, (size_t)cap_, "%04d-%02d-%02d is not a date", a.y, a.m, a.d);
        return -1;
    }
    for (const char *p = norm; *p;) {
        if (!isdigit((unsigned char)*p)) {
            p++;
            continue;
        }
        int k = 0;
        long v = 0;
        while (isdigit((unsigned char)p[k])) v = k < 9 ? v * 10 + (p[k] - '0') : v, k++;
        whole |= k == 8 && v / 10000 == a.y && v / 100 % 100 == a.m && v % 100 == a.d;
        year4 |= k == 4 && v == a.y;
        if (k == 1) one[v]++;
        if (k == 2) two[v]++;
        p += k;
    }
    if (whole) return 0;
    char w[48];
    int year = year4 || (dt_spell_year(a.y, w, sizeof w) > 0 && has_word(norm, w));
    if (!year && two[a.y % 100]) two[a.y % 100]--, year = 1;
    /* a month name by its first 3 letters: "mar" also finds "march" */
    int month = (snprintf(w, sizeof w, "%.3s", month_full[a.m - 1]), has_word(norm, w));
    int day = (dt_spell_ordinal(a.d, w, sizeof w) > 0 && has_word(norm, w)) ||
              (dt_spell_cardinal(a.d, w, sizeof w) > 0 && has_word(norm, w));
    if (!month) month = one[a.m] ? one[a.m]-- > 0 : two[a.m] ? two[a.m]-- > 0 : 0;
    if (!day) day = one[a.d] ? one[a.d]-- > 0 : two[a.d] ? two[a.d]-- > 0 : 0;
    if (day && month && year) return 0;
    const char *part = !day ? "day" : !month ? "month" : "year";
    int val = !day ? a.d : !month ? a.m : a.y;
    snprintf(why, (size_t)cap_, "the reading %04d-%02d-%02d has a %s (%d) the text does not name", a.y, a.m, a.d, part,
             val);
    return -1;
}

/* A spelled number word in s ("nineteen", "twenty-third", "thousand"), for dt_check_input. */
static int has_number_word(const char *s)
{
    for (const char *p = s; *p;) {
        if (!isalpha((unsigned char)*p)) {
            p++;
            continue;
        }
        int k = 0;
        while (isalpha((unsigned char)p[k])) k++;
        for (int i = 1; i < 20; i++)
            if ((int)strlen(small_words[i]) == k && !strncmp(p, small_words[i], (size_t)k)) return 1;
        for (int i = 1; i < 20; i++)
            if ((int)strlen(small_ordinals[i]) == k && !strncmp(p, small_ordinals[i], (size_t)k)) return 1;
        for (int i = 2; i < 10; i++)
            if ((int)strlen(tens_words[i]) == k && !strncmp(p, tens_words[i], (size_t)k)) return 1;
        if ((k == 9 && (!strncmp(p, "twentieth", 9) || !strncmp(p, "thirtieth", 9))) || (k == 8 && !strncmp(p, "thousand", 8)))
            return 1;
        p += k;
    }
    return 0;
}

int dt_check_input(const char *s, char *why, int cap_)
{
    int digits = 0;
    for (const char *p = s; *p;) {
        if (!isdigit((unsigned char)*p)) {
            p++;
            continue;
        }
        int k = 0, v = 0;
        while (isdigit((unsigned char)p[k])) v = k < 8 ? v * 10 + (p[k] - '0') : v, k++;
        digits++;
        int year = k == 4 ? v : k == 8 ? v / 10000 : -1;
        if (k == 3 || (k > 4 && k != 8)) {
            snprintf(why, (size_t)cap_, "'%.*s' is not a day, a month or a year", k, p);
            return -1;
        }
        if (year >= 0 && (year < DT_YEAR0 || year > DT_YEAR1)) {
            snprintf(why, (size_t)cap_, "year %d is outside the supported range %d-%d", year, DT_YEAR0, DT_YEAR1);
            return -1;
        }
        p += k;
    }
    if (!digits && !has_number_word(s)) {
        snprintf(why, (size_t)cap_, "no number in it: a date needs at least a day and a year");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ vocabularies */

int dt_in_vocab(void) { return 2 + (int)strlen(DT_IN_CHARS); }

int dt_in_id(int c)
{
    c = tolower((unsigned char)c);
    const char *q = c ? strchr(DT_IN_CHARS, c) : NULL;
    return q ? 2 + (int)(q - DT_IN_CHARS) : 1;
}

int dt_out_vocab(void) { return (int)strlen(DT_OUT_CHARS) + 1; }

int dt_out_id(int c)
{
    const char *q = c ? strchr(DT_OUT_CHARS, c) : NULL;
    return q ? (int)(q - DT_OUT_CHARS) : -1;
}

char dt_out_char(int id) { return id >= 0 && id < (int)strlen(DT_OUT_CHARS) ? DT_OUT_CHARS[id] : '?'; }

/* --------------------------------------------------------------- generator */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int dt_is_test_date(dt_date a, uint64_t seed, double test_frac)
{
    uint64_t x = seed * 0x632be59bd9b4e019ull + (uint64_t)(dt_to_days(a) + 100000);
    return (double)(splitmix(&x) >> 11) / 9007199254740992.0 < test_frac;
}

void dt_gen_init(dt_gen *g, uint64_t seed, double test_frac, int test, uint64_t stream)
{
    g->seed = seed, g->test_frac = test_frac, g->test = test;
    g->state = seed ^ (stream * 0xd1b54a32d192ed03ull) ^ (test ? 0x5555ull : 0);
    g->first = 0, g->count = NFORMATS, g->prose = 0;
}

void dt_gen_formats(dt_gen *g, int which)
{
    g->first = which == DT_LONG || which == DT_PROSE ? NFORMATS : 0;
    g->count = which == DT_LONG || which == DT_PROSE ? NLONG : which == DT_ALL ? NFORMATS + NLONG : NFORMATS;
    g->prose = which == DT_PROSE;
}

/* The sentences around a date of the prose set: some with a number word that is not the date.
 * Training draws from the first two lists, the test side from the other two, which share no
 * sentence with them (and every test text has one before its date): the test asks for dates in
 * sentences never seen, on days never seen. */
static const char *const prose_before[] = {
    "",
    "it happened on ",
    "the letter is dated ",
    "according to the parish register the wedding took place on ",
    "we last heard from her on ",
    "the concert everyone still talks about was held on ",
    "records show that the ship with nine masts left the harbour on ",
    "my grandfather always said he was born on ",
    "the contract was signed late in the afternoon on ",
};
static const char *const prose_after[] = {
    "", ".", ", or so the story goes", " in the old town hall near the river", ", if the diary is to be believed",
    " at about half past ten in the evening", ", a rainy day, when she was seven",
};
static const char *const prose_before_test[] = {
    "the old photograph on the mantelpiece was taken on ",
    "she moved into the flat above the bakery on ",
    "the first train to stop at the new station arrived on ",
    "his passport was issued on ",
    "the storm that flooded the valley began on ",
    "our records say the parcel was posted on ",
    "they opened the little shop at the corner on ",
    "the choir sang for the last time on ",
};
static const char *const prose_after_test[] = {
    "", ", just before noon", " while it was still dark outside", ", the day the river froze",
    ", after a long winter", " with eleven guests present", ", three weeks late",
};
#define NELEM(a) (sizeof(a) / sizeof *(a))

int dt_prose(const char *date, uint64_t r, int test, char *out, int cap_)
{
    const char *b = test ? prose_before_test[r % NELEM(prose_before_test)] : prose_before[r % NELEM(prose_before)];
    const char *a = test ? prose_after_test[(r >> 16) % NELEM(prose_after_test)] : prose_after[(r >> 16) % NELEM(prose_after)];
    return fits(snprintf(out, (size_t)cap_, "%s%s%s", b, date, a), cap_);
}

dt_date dt_gen_next(dt_gen *g, char *text, int cap_, char *iso, int *format)
{
    long n = dt_range_days();
    dt_date a;
    /* rejection: each side of the split holds a fixed fraction of the days */
    do
        a = dt_range_at((long)(splitmix(&g->state) % (uint64_t)n));
    while (dt_is_test_date(a, g->seed, g->test_frac) != g->test);
    int f = g->first + (int)(splitmix(&g->state) % (uint64_t)g->count);
    dt_format(f, a, text, cap_);
    if (g->prose) {
        char d[128];
        snprintf(d, sizeof d, "%s", text);
        dt_prose(d, splitmix(&g->state), g->test, text, cap_);
    }
    dt_iso(a, iso);
    if (format) *format = f;
    return a;
}

double dt_exact_match(const char *const *pred, const char *const *gold, int n)
{
    if (n <= 0) return 0;
    int ok = 0;
    for (int i = 0; i < n; i++) ok += !strcmp(pred[i], gold[i]);
    return (double)ok / n;
}
