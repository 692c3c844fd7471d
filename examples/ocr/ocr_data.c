/* SPDX-License-Identifier: MIT */
/* ocr_data.c - images, corpus and error rates of spool-ocr (see ocr_data.h). */
#include "ocr_data.h"

#include "common/atomic.h"
#include "common/text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef OCR_HAVE_PNG
#include <png.h>
#endif

int ocr_image_alloc(ocr_image *im, int w, int h, uint8_t fill)
{
    im->w = im->h = 0, im->px = NULL;
    if (w < 1 || h < 1 || w > OCR_MAX_SIDE || h > OCR_MAX_SIDE) return -1;
    im->px = malloc((size_t)w * h);
    if (!im->px) return -1;
    memset(im->px, fill, (size_t)w * h);
    im->w = w, im->h = h;
    return 0;
}

void ocr_image_free(ocr_image *im)
{
    free(im->px);
    im->px = NULL, im->w = im->h = 0;
}

/* ------------------------------------------------------------------------------- PGM */

/* Skips whitespace and '#' comments, then reads a decimal number (at most 5 digits: PGM's
 * header values are below 65536 and anything longer is refused, not wrapped). */
static int pgm_number(const uint8_t *b, size_t n, size_t *i, long *v)
{
    for (;;) {
        while (*i < n && (b[*i] == ' ' || b[*i] == '\t' || b[*i] == '\n' || b[*i] == '\r' || b[*i] == '\f' ||
                          b[*i] == '\v'))
            (*i)++;
        if (*i < n && b[*i] == '#') {
            while (*i < n && b[*i] != '\n') (*i)++;
            continue;
        }
        break;
    }
    if (*i >= n || b[*i] < '0' || b[*i] > '9') return -1;
    long x = 0;
    int d = 0;
    for (; *i < n && b[*i] >= '0' && b[*i] <= '9'; (*i)++, d++) {
        if (d >= 5) return -1;
        x = x * 10 + (b[*i] - '0');
    }
    *v = x;
    return 0;
}

int ocr_pgm_parse(const uint8_t *b, size_t n, ocr_image *im, char *err, size_t errn)
{
    im->w = im->h = 0, im->px = NULL;
    if (n < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '2')) {
        snprintf(err, errn, "not a PGM file (no P5 or P2 signature)");
        return -1;
    }
    size_t i = 2;
    long w, h, maxv;
    if (pgm_number(b, n, &i, &w) || pgm_number(b, n, &i, &h) || pgm_number(b, n, &i, &maxv)) {
        snprintf(err, errn, "not a PGM file (bad or missing width, height or maxval in the header)");
        return -1;
    }
    if (w < 1 || h < 1 || w > OCR_MAX_SIDE || h > OCR_MAX_SIDE || maxv < 1 || maxv > 65535) {
        snprintf(err, errn, "PGM of %ldx%ld pixels, maxval %ld: want sides 1..%d and maxval 1..65535", w, h, maxv,
                 OCR_MAX_SIDE);
        return -1;
    }
    int binary = b[1] == '5', wide = maxv > 255;
    size_t npx = (size_t)w * h;
    if (binary) {
        if (i >= n) {
            snprintf(err, errn, "truncated PGM: no pixel data");
            return -1;
        }
        i++; /* the one whitespace byte after maxval */
        size_t need = npx * (wide ? 2 : 1);
        if (n - i < need) {
            snprintf(err, errn, "truncated PGM: %zu bytes of pixels, %ldx%ld needs %zu", n - i, w, h, need);
            return -1;
        }
    }
    if (ocr_image_alloc(im, (int)w, (int)h, 255)) {
        snprintf(err, errn, "out of memory for a %ldx%ld image", w, h);
        return -1;
    }
    for (size_t k = 0; k < npx; k++) {
        long v;
        if (binary) v = wide ? (long)b[i + 2 * k] << 8 | b[i + 2 * k + 1] : b[i + k];
        else if (pgm_number(b, n, &i, &v)) {
            snprintf(err, errn, "truncated PGM: pixel %zu of %zu missing or not a number", k + 1, npx);
            ocr_image_free(im);
            return -1;
        }
        if (v > maxv) v = maxv;
        im->px[k] = (uint8_t)((v * 255 + maxv / 2) / maxv);
    }
    return 0;
}

/* ------------------------------------------------------------------------------- PNG */

int ocr_have_png(void)
{
#ifdef OCR_HAVE_PNG
    return 1;
#else
    return 0;
#endif
}

#ifdef OCR_HAVE_PNG
/* libpng's simplified API: any PNG (palette, alpha, 16 bit) to 8-bit grey, alpha composited
 * on white paper. */
static int png_parse(const uint8_t *b, size_t n, ocr_image *im, char *err, size_t errn)
{
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&pi, b, n)) {
        snprintf(err, errn, "bad PNG: %s", pi.message);
        return -1;
    }
    if (pi.width < 1 || pi.height < 1 || pi.width > OCR_MAX_SIDE || pi.height > OCR_MAX_SIDE) {
        snprintf(err, errn, "PNG of %ux%u pixels: want sides 1..%d", pi.width, pi.height, OCR_MAX_SIDE);
        png_image_free(&pi);
        return -1;
    }
    pi.format = PNG_FORMAT_GRAY;
    png_color white = {255, 255, 255};
    if (ocr_image_alloc(im, (int)pi.width, (int)pi.height, 255)) {
        snprintf(err, errn, "out of memory for a %ux%u image", pi.width, pi.height);
        png_image_free(&pi);
        return -1;
    }
    if (!png_image_finish_read(&pi, &white, im->px, 0, NULL)) {
        snprintf(err, errn, "bad PNG: %s", pi.message);
        ocr_image_free(im);
        png_image_free(&pi);
        return -1;
    }
    return 0;
}
#endif

int ocr_image_read(const char *path, ocr_image *im, char *err, size_t errn)
{
    char e[256];
    size_t n;
    im->w = im->h = 0, im->px = NULL;
    uint8_t *b = (uint8_t *)ex_read_bytes(path, &n, OCR_MAX_FILE, e, sizeof e);
    if (!b) {
        snprintf(err, errn, "%s", e);
        return -1;
    }
    int rc;
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) {
#ifdef OCR_HAVE_PNG
        rc = png_parse(b, n, im, e, sizeof e);
#else
        snprintf(e, sizeof e, "a PNG file, and this spool-ocr was built without libpng: convert it to PGM");
        rc = -1;
#endif
    } else {
        rc = ocr_pgm_parse(b, n, im, e, sizeof e);
    }
    free(b);
    if (rc) snprintf(err, errn, "'%s': %s", path, e);
    return rc;
}

int ocr_image_write(const char *path, const ocr_image *im, char *err, size_t errn)
{
    ex_atomic a = {0};
    FILE *f = ex_atomic_open(&a, path, err, errn);
    if (!f) return -1;
    size_t l = strlen(path);
    int ok;
    if (l > 4 && !strcmp(path + l - 4, ".png")) {
#ifdef OCR_HAVE_PNG
        png_image pi;
        memset(&pi, 0, sizeof pi);
        pi.version = PNG_IMAGE_VERSION, pi.width = (png_uint_32)im->w, pi.height = (png_uint_32)im->h;
        pi.format = PNG_FORMAT_GRAY;
        ok = png_image_write_to_stdio(&pi, f, 0, im->px, 0, NULL);
        if (!ok) snprintf(err, errn, "writing '%s': %s", path, pi.message);
        png_image_free(&pi);
#else
        snprintf(err, errn, "cannot write '%s': this spool-ocr was built without libpng (write .pgm)", path);
        ok = 0;
#endif
    } else {
        ok = fprintf(f, "P5\n%d %d\n255\n", im->w, im->h) > 0 && fwrite(im->px, 1, (size_t)im->w * im->h, f) ==
                                                                      (size_t)im->w * im->h;
        if (!ok) snprintf(err, errn, "writing '%s': %s", path, strerror(errno));
    }
    if (!ok) {
        ex_atomic_abort(&a);
        return -1;
    }
    return ex_atomic_commit(&a, err, errn);
}

float *ocr_columns(const ocr_image *im, int H, int *W)
{
    int w = (int)lround((double)im->w * H / im->h);
    if (w < 1) w = 1;
    float *out = malloc(sizeof(float) * (size_t)w * H);
    if (!out) return NULL;
    double sx = (double)im->w / w, sy = (double)im->h / H;
    /* an area average when shrinking (each output pixel covers sx x sy source pixels, sampled on
     * a grid of up to 4x4 bilinear taps), plain bilinear when enlarging */
    int kx = sx > 1 ? (sx < 4 ? (int)ceil(sx) : 4) : 1, ky = sy > 1 ? (sy < 4 ? (int)ceil(sy) : 4) : 1;
    for (int x = 0; x < w; x++)
        for (int y = 0; y < H; y++) {
            double acc = 0;
            for (int a = 0; a < kx; a++)
                for (int c = 0; c < ky; c++) {
                    double fx = (x + (a + 0.5) / kx) * sx - 0.5, fy = (y + (c + 0.5) / ky) * sy - 0.5;
                    if (fx < 0) fx = 0;
                    if (fy < 0) fy = 0;
                    if (fx > im->w - 1) fx = im->w - 1;
                    if (fy > im->h - 1) fy = im->h - 1;
                    int x0 = (int)fx, y0 = (int)fy, x1 = x0 + 1 < im->w ? x0 + 1 : x0, y1 = y0 + 1 < im->h ? y0 + 1 : y0;
                    double ax = fx - x0, ay = fy - y0;
                    const uint8_t *p = im->px;
                    double v = (1 - ay) * ((1 - ax) * p[(size_t)y0 * im->w + x0] + ax * p[(size_t)y0 * im->w + x1]) +
                               ay * ((1 - ax) * p[(size_t)y1 * im->w + x0] + ax * p[(size_t)y1 * im->w + x1]);
                    acc += v;
                }
            out[(size_t)x * H + y] = (float)(1.0 - acc / (kx * ky) / 255.0);
        }
    *W = w;
    return out;
}

void ocr_standardize(float *f, size_t n)
{
    double sum = 0, sq = 0;
    for (size_t k = 0; k < n; k++) sum += f[k];
    double mu = n ? sum / n : 0;
    for (size_t k = 0; k < n; k++) sq += (f[k] - mu) * (f[k] - mu);
    double sd = n ? sqrt(sq / n) : 0, inv = sd > 1e-6 ? 1 / sd : 1;
    for (size_t k = 0; k < n; k++) f[k] = (float)((f[k] - mu) * inv);
}

/* ---------------------------------------------------------------------------- corpus */

int ocr_line_split(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % 10 == 0 ? OCR_SPLIT_TEST : h % 100 == 1 ? OCR_SPLIT_VAL : OCR_SPLIT_TRAIN;
}

static int push_line(ocr_corpus *c, const char *s, size_t n)
{
    if (c->n % 1024 == 0) {
        char **p = realloc(c->line, sizeof(char *) * (c->n + 1024));
        if (!p) return -1;
        c->line = p;
    }
    char *d = malloc(n + 1);
    if (!d) return -1;
    memcpy(d, s, n), d[n] = '\0';
    c->line[c->n++] = d;
    return 0;
}

int ocr_corpus_add(ocr_corpus *c, const char *text, size_t n, int max_chars)
{
    /* collapse whitespace; drop the text if it holds anything but printable ASCII */
    char *t = malloc(n + 1);
    if (!t) return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            if (m && t[m - 1] != ' ') t[m++] = ' ';
        } else if (ch < 32 || ch >= 127) {
            free(t);
            return 0;
        } else {
            t[m++] = (char)ch;
        }
    }
    while (m && t[m - 1] == ' ') m--;
    int rc = 0;
    for (size_t s = 0; s < m && !rc;) {
        size_t e = m - s <= (size_t)max_chars ? m : s + max_chars;
        if (e < m) { /* cut at the last space inside the window, or mid-word if there is none */
            size_t k = e;
            while (k > s && t[k] != ' ') k--;
            if (k > s) e = k;
        }
        if (e > s) rc = push_line(c, t + s, e - s);
        s = e;
        while (s < m && t[s] == ' ') s++;
    }
    free(t);
    return rc;
}

void ocr_corpus_free(ocr_corpus *c)
{
    for (int i = 0; i < c->n; i++) free(c->line[i]);
    free(c->line), free(c->train), free(c->val), free(c->test);
    memset(c, 0, sizeof *c);
}

int ocr_corpus_load(ocr_corpus *c, const char *data_dir, int max_chars, char *err, size_t errn)
{
    static const char *const files[] = {"tinyshakespeare/input.txt", "sentiment-uci/train.tsv", "sentiment-uci/test.tsv",
                                        "sentiment-mr/train.tsv", "sentiment-mr/test.tsv"};
    memset(c, 0, sizeof *c);
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", data_dir, files[f]);
        ex_lines r;
        if (ex_lines_open(&r, path, EX_LINE_MAX, err, errn)) {
            ocr_corpus_free(c);
            return -1;
        }
        char *line;
        size_t len;
        int k;
        while ((k = ex_lines_next(&r, &line, &len, err, errn)) == 1) {
            char *tab = memchr(line, '\t', len); /* the .tsv files: text<TAB>label */
            if (tab) len = (size_t)(tab - line);
            if (ocr_corpus_add(c, line, len, max_chars)) {
                k = -1;
                snprintf(err, errn, "out of memory reading '%s'", path);
                break;
            }
        }
        ex_lines_close(&r);
        if (k < 0) {
            ocr_corpus_free(c);
            return -1;
        }
    }
    c->train = malloc(sizeof(int) * (c->n + 1)), c->val = malloc(sizeof(int) * (c->n + 1));
    c->test = malloc(sizeof(int) * (c->n + 1));
    if (!c->train || !c->val || !c->test) {
        snprintf(err, errn, "out of memory");
        ocr_corpus_free(c);
        return -1;
    }
    for (int i = 0; i < c->n; i++) {
        int k = ocr_line_split(c->line[i]);
        if (k == OCR_SPLIT_TEST) c->test[c->n_test++] = i;
        else if (k == OCR_SPLIT_VAL) c->val[c->n_val++] = i;
        else c->train[c->n_train++] = i;
    }
    if (!c->n_train || !c->n_test) {
        snprintf(err, errn, "no text lines found under '%s'", data_dir);
        ocr_corpus_free(c);
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------------------- error rates */

long ocr_edit_distance(const int *a, int na, const int *b, int nb)
{
    long *row = malloc(sizeof(long) * (nb + 1));
    if (!row) return -1;
    for (int j = 0; j <= nb; j++) row[j] = j;
    for (int i = 1; i <= na; i++) {
        long diag = row[0];
        row[0] = i;
        for (int j = 1; j <= nb; j++) {
            long up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up, row[j] = best;
        }
    }
    long d = row[nb];
    free(row);
    return d;
}

/* Words of s (split on spaces) as ids of v. Returns the count, or -1. */
static int word_ids(const char *s, ex_vocab *v, int **out)
{
    ex_words w = {0};
    int n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ') p++;
        const char *e = p;
        while (*e && *e != ' ') e++;
        if (e > p && ex_words_push(&w, p, (size_t)(e - p))) n = -1;
        p = e;
    }
    if (n == 0) {
        *out = malloc(sizeof(int) * (w.n + 1));
        if (!*out) n = -1;
        for (int i = 0; n == 0 && i < w.n; i++)
            if (((*out)[i] = ex_vocab_add(v, w.items[i])) < 0) n = -1;
        if (n == 0) n = w.n;
    }
    ex_words_free(&w);
    return n;
}

int ocr_score_add(ocr_score *s, const char *ref, const char *hyp)
{
    int nr = (int)strlen(ref), nh = (int)strlen(hyp);
    int *a = malloc(sizeof(int) * (nr + 1)), *b = malloc(sizeof(int) * (nh + 1)), *wa = NULL, *wb = NULL;
    ex_vocab *v = ex_vocab_new();
    int rc = -1;
    if (!a || !b || !v) goto out;
    for (int i = 0; i < nr; i++) a[i] = (unsigned char)ref[i];
    for (int i = 0; i < nh; i++) b[i] = (unsigned char)hyp[i];
    long dc = ocr_edit_distance(a, nr, b, nh);
    int wr = word_ids(ref, v, &wa), wh = word_ids(hyp, v, &wb);
    if (dc < 0 || wr < 0 || wh < 0) goto out;
    long dw = ocr_edit_distance(wa, wr, wb, wh);
    if (dw < 0) goto out;
    s->char_err += dc, s->chars += nr, s->word_err += dw, s->words += wr, s->lines++, s->exact += dc == 0;
    rc = 0;
out:
    free(a), free(b), free(wa), free(wb);
    ex_vocab_free(v);
    return rc;
}

double ocr_cer(const ocr_score *s) { return s->chars ? (double)s->char_err / s->chars : 0; }
double ocr_wer(const ocr_score *s) { return s->words ? (double)s->word_err / s->words : 0; }

/* ----------------------------------------------------------------------------- index */

void ocr_index_free(ocr_index *ix)
{
    for (int i = 0; i < ix->n; i++) free(ix->file[i]), free(ix->text[i]);
    free(ix->file), free(ix->text);
    memset(ix, 0, sizeof *ix);
}

int ocr_index_read(const char *path, ocr_index *ix, char *err, size_t errn)
{
    memset(ix, 0, sizeof *ix);
    ex_lines r;
    if (ex_lines_open(&r, path, EX_LINE_MAX, err, errn)) return -1;
    char *line;
    size_t len;
    int k, cap = 0;
    while ((k = ex_lines_next(&r, &line, &len, err, errn)) == 1) {
        if (len == 0 || line[0] == '#') continue;
        char *tab = strchr(line, '\t');
        if (!tab || tab == line) {
            snprintf(err, errn, "%s:%ld: want 'file<TAB>text'", path, r.lineno);
            k = -1;
            break;
        }
        if (ix->n == cap) {
            cap = cap ? 2 * cap : 64;
            char **f = realloc(ix->file, sizeof(char *) * cap);
            if (f) ix->file = f;
            char **t = f ? realloc(ix->text, sizeof(char *) * cap) : NULL;
            if (t) ix->text = t;
            if (!f || !t) {
                snprintf(err, errn, "out of memory reading '%s'", path);
                k = -1;
                break;
            }
        }
        *tab = '\0';
        ix->file[ix->n] = strdup(line), ix->text[ix->n] = strdup(tab + 1);
        if (!ix->file[ix->n] || !ix->text[ix->n]) {
            free(ix->file[ix->n]), free(ix->text[ix->n]);
            snprintf(err, errn, "out of memory reading '%s'", path);
            k = -1;
            break;
        }
        ix->n++;
    }
    ex_lines_close(&r);
    if (k == 0 && ix->n == 0) {
        snprintf(err, errn, "'%s' lists no images", path);
        k = -1;
    }
    if (k < 0) ocr_index_free(ix);
    return k < 0 ? -1 : 0;
}
