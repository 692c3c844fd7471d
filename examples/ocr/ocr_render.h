/* SPDX-License-Identifier: MIT */
/* ocr_render.h - text lines drawn by FreeType in Debian's fonts, then degraded the way a scan or
 * a photo degrades them (rotation, blur, contrast, noise): spool-ocr's training data, made
 * fresh at every step, and its fixed test set (`spool-ocr render`). */
#ifndef OCR_RENDER_H
#define OCR_RENDER_H

#include "ocr_data.h"
#include "spool.h"

/* The fonts, as paths under the fonts folder (default /usr/share/fonts; Debian packages
 * fonts-dejavu-core, fonts-dejavu-extra, fonts-liberation2, fonts-urw-base35). Training uses the
 * OCR_TRAIN set; the test set is drawn in the OCR_TEST set, which training never sees. */
enum { OCR_TRAIN = 0, OCR_TEST = 1 };
typedef struct ocr_fonts ocr_fonts;

/* Opens the fonts of one set that exist under dir (the missing ones are listed in *missing,
 * which the caller frees, NULL when none is). NULL with err set when none of them opens. */
ocr_fonts *ocr_fonts_open(const char *dir, int set, char **missing, char *err, size_t errn);
void ocr_fonts_free(ocr_fonts *f);
int ocr_fonts_count(const ocr_fonts *f);
const char *ocr_fonts_name(const ocr_fonts *f, int i); /* "DejaVuSans" */
/* The fonts of a set as one line ("DejaVuSans, LiberationSerif-Regular, ..."), for --help and logs. */
void ocr_fonts_list(int set, char *buf, size_t n);

/* How one line is drawn. */
typedef struct {
    double size;    /* FreeType pixel size (em) */
    double angle;   /* rotation in degrees, counter-clockwise */
    double blur;    /* Gaussian sigma in pixels (0: none) */
    double noise;   /* Gaussian noise sigma in grey levels (0: none) */
    int ink, paper; /* grey levels of ink and paper */
    int margin;     /* white pixels left and right of the text; above and below: size/4 */
} ocr_style;

/* The clean style of the test set (size px, no rotation, blur or noise, black on white). */
void ocr_style_clean(ocr_style *s, double size);
/* A random style: training (degrade = 1: sizes 16-40, rotation within +-2 degrees, blur up to 1.2,
 * noise up to 12 levels, contrast and margin jitter; degrade = 0: sizes and margins only), and
 * the test set's degraded variant (degrade = 2: size 28-36, +-1.5 degrees, blur 0.6-1.2, noise 8-14). */
void ocr_style_random(ocr_style *s, int degrade, sp_rng *rng);
/* text drawn in font i of f with style s into out (allocated). Noise is drawn from rng (NULL
 * only when s->noise is 0). 0, or -1 with err set (a character the font has no glyph for is
 * drawn as the font's .notdef box, not an error). */
int ocr_render(ocr_fonts *f, int i, const char *text, const ocr_style *s, sp_rng *rng, ocr_image *out, char *err,
               size_t errn);

#endif
