/* SPDX-License-Identifier: MIT */
/* ocr_render.c - FreeType line rendering and degradation (see ocr_render.h). */
#include "ocr_render.h"

#include <ft2build.h>
#include FT_FREETYPE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fonts and their split. Held out (test set only): a Palatino (P052), a condensed sans
 * (DejaVu Sans Condensed), a narrow sans (Nimbus Sans Narrow) and an italic serif (Liberation
 * Serif Italic): shapes and widths that none of the training fonts has exactly. */
static const struct {
    const char *path;
    int set;
} FONTS[] = {
    {"truetype/dejavu/DejaVuSans.ttf", OCR_TRAIN},
    {"truetype/dejavu/DejaVuSans-Bold.ttf", OCR_TRAIN},
    {"truetype/dejavu/DejaVuSerif.ttf", OCR_TRAIN},
    {"truetype/dejavu/DejaVuSerif-Italic.ttf", OCR_TRAIN},
    {"truetype/dejavu/DejaVuSansMono.ttf", OCR_TRAIN},
    {"truetype/liberation2/LiberationSans-Regular.ttf", OCR_TRAIN},
    {"truetype/liberation2/LiberationSans-Italic.ttf", OCR_TRAIN},
    {"truetype/liberation2/LiberationSerif-Regular.ttf", OCR_TRAIN},
    {"truetype/liberation2/LiberationSerif-Bold.ttf", OCR_TRAIN},
    {"truetype/liberation2/LiberationMono-Regular.ttf", OCR_TRAIN},
    {"opentype/urw-base35/NimbusRoman-Regular.otf", OCR_TRAIN},
    {"opentype/urw-base35/NimbusSans-Regular.otf", OCR_TRAIN},
    {"opentype/urw-base35/NimbusMonoPS-Regular.otf", OCR_TRAIN},
    {"opentype/urw-base35/C059-Roman.otf", OCR_TRAIN},
    {"opentype/urw-base35/URWBookman-Light.otf", OCR_TRAIN},
    {"opentype/urw-base35/URWGothic-Book.otf", OCR_TRAIN},
    {"opentype/urw-base35/P052-Roman.otf", OCR_TEST},
    {"truetype/dejavu/DejaVuSansCondensed.ttf", OCR_TEST},
    {"opentype/urw-base35/NimbusSansNarrow-Regular.otf", OCR_TEST},
    {"truetype/liberation2/LiberationSerif-Italic.ttf", OCR_TEST},
};
enum { N_FONTS = sizeof FONTS / sizeof FONTS[0] };

struct ocr_fonts {
    FT_Library lib;
    FT_Face face[N_FONTS];
    char name[N_FONTS][64];
    int n;
};

static void base_name(const char *path, char *buf, size_t n)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    const char *dot = strrchr(s, '.');
    snprintf(buf, n, "%.*s", (int)(dot ? dot - s : (long)strlen(s)), s);
}

void ocr_fonts_list(int set, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_FONTS; i++) {
        if (FONTS[i].set != set) continue;
        char b[64];
        base_name(FONTS[i].path, b, sizeof b);
        int k = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", b);
        if (k < 0 || (size_t)k >= n - used) break;
        used += (size_t)k;
    }
}

ocr_fonts *ocr_fonts_open(const char *dir, int set, char **missing, char *err, size_t errn)
{
    ocr_fonts *f = calloc(1, sizeof *f);
    *missing = NULL;
    if (!f || FT_Init_FreeType(&f->lib)) {
        snprintf(err, errn, "cannot start FreeType");
        free(f);
        return NULL;
    }
    size_t mlen = 0;
    for (int i = 0; i < N_FONTS; i++) {
        if (FONTS[i].set != set) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, FONTS[i].path);
        if (FT_New_Face(f->lib, path, 0, &f->face[f->n]) == 0) {
            base_name(path, f->name[f->n], sizeof f->name[0]);
            f->n++;
            continue;
        }
        size_t add = strlen(path) + 3;
        char *m = realloc(*missing, mlen + add);
        if (!m) continue;
        snprintf(m + mlen, add, "%s%s", mlen ? ", " : "", path);
        *missing = m, mlen += strlen(m + mlen);
    }
    if (f->n == 0) {
        snprintf(err, errn, "none of the %s fonts is under '%s' (Debian: apt-get install fonts-dejavu-core "
                 "fonts-dejavu-extra fonts-liberation2 fonts-urw-base35; or --fonts DIR)",
                 set == OCR_TRAIN ? "training" : "test", dir);
        ocr_fonts_free(f);
        return NULL;
    }
    return f;
}

void ocr_fonts_free(ocr_fonts *f)
{
    if (!f) return;
    for (int i = 0; i < f->n; i++) FT_Done_Face(f->face[i]);
    FT_Done_FreeType(f->lib);
    free(f);
}

int ocr_fonts_count(const ocr_fonts *f) { return f->n; }
const char *ocr_fonts_name(const ocr_fonts *f, int i) { return i >= 0 && i < f->n ? f->name[i] : "?"; }

void ocr_style_clean(ocr_style *s, double size)
{
    *s = (ocr_style){.size = size, .ink = 0, .paper = 255, .margin = (int)(size / 2)};
}

void ocr_style_random(ocr_style *s, int degrade, sp_rng *rng)
{
    double u = sp_rng_uniform(rng);
    if (degrade == 2) {
        ocr_style_clean(s, 28 + 8 * u);
        s->angle = 3 * sp_rng_uniform(rng) - 1.5;
        s->blur = 0.6 + 0.6 * sp_rng_uniform(rng);
        s->noise = 8 + 6 * sp_rng_uniform(rng);
        s->ink = 20 + sp_rng_below(rng, 40), s->paper = 200 + sp_rng_below(rng, 40);
        return;
    }
    ocr_style_clean(s, 16 + 24 * u);
    s->margin = 2 + sp_rng_below(rng, (int)s->size);
    if (!degrade || sp_rng_uniform(rng) < 0.25) return; /* a quarter of the lines stay clean */
    s->angle = 4 * sp_rng_uniform(rng) - 2;
    s->blur = 1.2 * sp_rng_uniform(rng);
    s->noise = 12 * sp_rng_uniform(rng);
    s->ink = sp_rng_below(rng, 90), s->paper = 170 + sp_rng_below(rng, 86);
}

/* Separable Gaussian blur of a float image in place (edges clamped). */
static int blur(float *img, int w, int h, double sigma)
{
    int r = (int)ceil(2.5 * sigma);
    if (r < 1) return 0;
    float k[64], *tmp = malloc(sizeof(float) * (size_t)w * h);
    if (r > 31) r = 31;
    if (!tmp) return -1;
    double sum = 0;
    for (int i = -r; i <= r; i++) sum += (k[i + r] = (float)exp(-0.5 * i * i / (sigma * sigma)));
    for (int i = 0; i <= 2 * r; i++) k[i] = (float)(k[i] / sum);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float a = 0;
            for (int i = -r; i <= r; i++) {
                int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
                a += k[i + r] * img[(size_t)y * w + xx];
            }
            tmp[(size_t)y * w + x] = a;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float a = 0;
            for (int i = -r; i <= r; i++) {
                int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                a += k[i + r] * tmp[(size_t)yy * w + x];
            }
            img[(size_t)y * w + x] = a;
        }
    free(tmp);
    return 0;
}

int ocr_render(ocr_fonts *f, int i, const char *text, const ocr_style *s, sp_rng *rng, ocr_image *out, char *err,
               size_t errn)
{
    out->px = NULL, out->w = out->h = 0;
    if (i < 0 || i >= f->n) {
        snprintf(err, errn, "no font %d", i);
        return -1;
    }
    FT_Face face = f->face[i];
    if (FT_Set_Pixel_Sizes(face, 0, (FT_UInt)lround(s->size))) {
        snprintf(err, errn, "font %s: cannot set size %.0f", f->name[i], s->size);
        return -1;
    }
    int asc = (int)(face->size->metrics.ascender >> 6), desc = (int)(-face->size->metrics.descender >> 6);
    int vmargin = (int)(s->size / 4) + 1;
    /* pass 1: the line's width (advances and kerning) */
    long pen = 0;
    FT_UInt prev = 0;
    size_t n = strlen(text);
    for (size_t k = 0; k < n; k++) {
        FT_UInt g = FT_Get_Char_Index(face, (unsigned char)text[k]);
        if (prev && g && FT_HAS_KERNING(face)) {
            FT_Vector kv;
            if (!FT_Get_Kerning(face, prev, g, FT_KERNING_DEFAULT, &kv)) pen += kv.x;
        }
        if (FT_Load_Glyph(face, g, FT_LOAD_DEFAULT)) continue;
        pen += face->glyph->advance.x;
        prev = g;
    }
    int tw = (int)(pen >> 6) + 2;
    double rad = s->angle * M_PI / 180;
    int extra = (int)ceil(fabs(sin(rad)) * (tw + 2 * s->margin) / 2) + 1; /* room for the rotated ends */
    int W = tw + 2 * s->margin, H = asc + desc + 2 * vmargin + 2 * extra;
    if (W > OCR_MAX_SIDE || H > OCR_MAX_SIDE) {
        snprintf(err, errn, "a line of %d characters at size %.0f is too wide", (int)n, s->size);
        return -1;
    }
    float *cov = calloc((size_t)W * H, sizeof(float));
    if (!cov) {
        snprintf(err, errn, "out of memory");
        return -1;
    }
    /* pass 2: glyph coverage into cov */
    pen = (long)s->margin << 6, prev = 0;
    int base = vmargin + extra + asc;
    for (size_t k = 0; k < n; k++) {
        FT_UInt g = FT_Get_Char_Index(face, (unsigned char)text[k]);
        if (prev && g && FT_HAS_KERNING(face)) {
            FT_Vector kv;
            if (!FT_Get_Kerning(face, prev, g, FT_KERNING_DEFAULT, &kv)) pen += kv.x;
        }
        if (FT_Load_Glyph(face, g, FT_LOAD_RENDER)) continue;
        FT_GlyphSlot gs = face->glyph;
        FT_Bitmap *bm = &gs->bitmap;
        if (bm->pixel_mode == FT_PIXEL_MODE_GRAY)
            for (unsigned r = 0; r < bm->rows; r++)
                for (unsigned c = 0; c < bm->width; c++) {
                    int x = (int)(pen >> 6) + gs->bitmap_left + (int)c, y = base - gs->bitmap_top + (int)r;
                    if (x < 0 || x >= W || y < 0 || y >= H) continue;
                    float v = bm->buffer[(long)r * bm->pitch + c] / 255.0f, *p = &cov[(size_t)y * W + x];
                    *p = *p + v > 1 ? 1 : *p + v;
                }
        pen += gs->advance.x;
        prev = g;
    }
    int rc = 0;
    if (s->angle != 0) { /* rotate about the centre, bilinear, paper outside */
        float *rot = calloc((size_t)W * H, sizeof(float));
        if (!rot) rc = -1;
        double ca = cos(rad), sa = sin(rad), cx = W / 2.0, cy = H / 2.0;
        for (int y = 0; rot && y < H; y++)
            for (int x = 0; x < W; x++) {
                double dx = x - cx, dy = y - cy, sx = ca * dx - sa * dy + cx, sy = sa * dx + ca * dy + cy;
                int x0 = (int)floor(sx), y0 = (int)floor(sy);
                double ax = sx - x0, ay = sy - y0, v = 0;
                for (int q = 0; q < 4; q++) {
                    int xx = x0 + (q & 1), yy = y0 + (q >> 1);
                    if (xx >= 0 && xx < W && yy >= 0 && yy < H)
                        v += ((q & 1) ? ax : 1 - ax) * ((q >> 1) ? ay : 1 - ay) * cov[(size_t)yy * W + xx];
                }
                rot[(size_t)y * W + x] = (float)v;
            }
        if (rot) free(cov), cov = rot;
    }
    if (!rc && s->blur > 0) rc = blur(cov, W, H, s->blur);
    if (!rc && ocr_image_alloc(out, W, H, 255)) rc = -1;
    for (size_t k = 0; !rc && k < (size_t)W * H; k++) {
        double v = s->paper + (s->ink - s->paper) * cov[k];
        if (s->noise > 0) v += s->noise * sp_rng_normal(rng);
        out->px[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
    }
    free(cov);
    if (rc) {
        ocr_image_free(out);
        snprintf(err, errn, "out of memory");
    }
    return rc;
}
