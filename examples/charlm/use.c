/* SPDX-License-Identifier: MIT */
/* use.c - what spool-charlm does with a trained model: sample new text (one-to-many: each
 * sampled character is fed back as the next input), measure the held-out loss, score a
 * string character by character, and export the model as ONNX. */
#include "charlm.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ERRN 1024
static char err[ERRN];

/* ------------------------------------------------ loading a cl_trained model */

static int load_trained(cl_opts *o, cl_trained *tm, int model_only)
{
    memset(tm, 0, sizeof *tm);
    if (cl_read_checkpoint_header(o->checkpoint, o, model_only, &tm->vocab, &tm->lines, NULL, NULL)) return 1;
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    tm->ps = sp_params_new();
    cl_model_cfg mc = cl_model_cfg_of(o, tm->vocab.V);
    if (!tm->ps || cl_model_init(&tm->m, &mc, tm->ps, &rng, err, ERRN)) return cl_fail("%s: model: %s", o->checkpoint, err);
    if (sp_load(o->checkpoint, tm->ps, NULL, NULL) != SP_OK) return cl_fail("cannot load %s: %s", o->checkpoint, sp_last_error());
    return 0;
}

static void trained_free(cl_trained *tm)
{
    sp_params_free(tm->ps);
    cl_vocab_free(&tm->vocab);
}

/* Text -> ids, naming the first character that is not in the vocabulary. */
static int text_ids(const cl_trained *tm, const char *what, const char *s, size_t n, int **ids, long *len)
{
    uint32_t *cp;
    char e2[256];
    long k = cl_utf8_decode((const unsigned char *)s, n, &cp, e2, sizeof e2);
    if (k < 0) return cl_fail("%s: %s", what, e2);
    *ids = malloc(sizeof(int) * (size_t)(k + 1));
    for (long i = 0; i < k; i++) {
        int id = (tm->lines && cp[i] == '\n') ? 0 : cl_vocab_id(&tm->vocab, cp[i]);
        if (id < 0) {
            char sh[48];
            cl_fail("%s: character %s at position %ld is not in the model's vocabulary of %d symbols", what,
                 cl_cp_show(cp[i], sh, sizeof sh), i + 1, tm->vocab.V);
            free(cp);
            free(*ids);
            return 1;
        }
        (*ids)[i] = id;
    }
    *len = k;
    free(cp);
    return 0;
}

static void put_symbol(const cl_vocab *v, int id, FILE *f)
{
    char u[8];
    if (v->cp[id] == CL_BOUNDARY) { fputc('\n', f); return; }
    int n = cl_utf8_encode(v->cp[id], u);
    fwrite(u, 1, (size_t)n, f);
}

/* --------------------------------------------------------------- sample */

static int pick(const sp_real *logits, int V, double temp, int top_k, sp_rng *rng, double *prob)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temp == 0) return best;
    /* threshold for top-k: the k-th largest logit */
    double thr = -INFINITY;
    if (top_k > 0 && top_k < V) {
        double *tmp = malloc(sizeof(double) * (size_t)V); /* any V and k: no fixed-size array */
        int n = V;
        if (!tmp) return best;
        for (int i = 0; i < n; i++) tmp[i] = logits[i];
        for (int k = 0; k < top_k; k++) {
            int a = k;
            for (int i = k + 1; i < n; i++)
                if (tmp[i] > tmp[a]) a = i;
            double x = tmp[k];
            tmp[k] = tmp[a];
            tmp[a] = x;
        }
        thr = tmp[top_k - 1];
        free(tmp);
    }
    double z = 0;
    for (int i = 0; i < V; i++)
        if (logits[i] >= thr) z += exp(((double)logits[i] - (double)logits[best]) / temp);
    double u = sp_rng_uniform(rng) * z, acc = 0;
    int last = best;
    for (int i = 0; i < V; i++) {
        if (logits[i] < thr) continue;
        acc += exp(((double)logits[i] - (double)logits[best]) / temp);
        last = i;
        if (u < acc) break;
    }
    if (prob) *prob = exp(((double)logits[last] - (double)logits[best]) / temp) / z;
    return last;
}

int cl_cmd_sample(cl_opts *o)
{
    if (!(o->temperature >= 0)) return cl_fail("--temperature must be > 0, or 0 for the most likely character");
    if (o->count < 1 || o->max_len < 0 || o->top_k < 0) return cl_fail("--count must be >= 1, --max-len and --top-k >= 0");
    cl_trained tm;
    if (load_trained(o, &tm, 1)) { trained_free(&tm); return 1; }
    sp_set_threads(o->threads);
    fprintf(stderr, "# spool-charlm sample | %s\n", sp_info());
    cl_opts_echo(o, CL_SAMPLE, stderr);
    fprintf(stderr, "# model: %s %dx%d, vocabulary %d, %s mode; seed %ld\n", o->cell, o->layers, o->hidden, tm.vocab.V,
            tm.lines ? "lines" : "stream", o->seed);
    char *prime = NULL;
    size_t plen = 0;
    if (o->prime_file[0]) {
        prime = (char *)cl_read_file(o->prime_file, &plen, err, ERRN);
        if (!prime) { trained_free(&tm); return cl_fail("--prime-file: %s", err); }
    } else {
        plen = strlen(o->prime);
        prime = malloc(plen + 1);
        memcpy(prime, o->prime, plen + 1);
    }
    int *pids = NULL;
    long np = 0;
    int rc = text_ids(&tm, o->prime_file[0] ? o->prime_file : "--prime", prime, plen, &pids, &np);
    if (rc) { free(prime); trained_free(&tm); return rc; }
    int max_len = o->max_len ? o->max_len : (tm.lines ? 100 : 500);
    int V = tm.vocab.V;
    /* context fed before sampling: lines mode starts with the start token */
    int *ctx = malloc(sizeof(int) * (size_t)(np + 2));
    long nc = 0;
    if (tm.lines) ctx[nc++] = 0;
    else if (np == 0) {
        int nl = cl_vocab_id(&tm.vocab, '\n');
        ctx[nc++] = nl >= 0 ? nl : 0;
    }
    for (long i = 0; i < np; i++) ctx[nc++] = pids[i];
    sp_rng rng;
    sp_rng_seed(&rng, (uint64_t)o->seed);
    /* streaming inference: one character at a time on the stream's state, nothing recorded */
    sp_stream *st = cl_model_stream_new(&tm.m);
    if (!st) rc = cl_fail("%s", sp_last_error());
    long sampled = 0;
    double t0 = ex_now();
    for (int s = 0; s < o->count && !rc; s++) {
        sp_stream_reset(st);
        const sp_real *row = NULL;
        for (long i = 0; i < nc && !rc; i++)
            if (!(row = cl_model_stream_step(&tm.m, st, ctx[i], err, ERRN))) rc = cl_fail("%s", err);
        if (rc) break;
        fwrite(prime, 1, plen, stdout);
        for (int k = 0; k < max_len; k++) {
            int id = pick(row, V, o->temperature, o->top_k, &rng, NULL);
            if (tm.lines && id == 0) break;
            put_symbol(&tm.vocab, id, stdout);
            sampled++;
            if (!(row = cl_model_stream_step(&tm.m, st, id, err, ERRN))) { rc = cl_fail("%s", err); break; }
        }
        fputs(tm.lines ? "\n" : (s + 1 < o->count ? "\n\n----\n\n" : "\n"), stdout);
    }
    fflush(stdout);
    double dt = ex_now() - t0;
    if (!rc) /* priming included: the rate of the whole streaming loop */
        fprintf(stderr, "# sampled %ld characters in %.3f s: %.0f characters/s (streaming, batch 1)\n", sampled, dt,
                dt > 0 ? (double)sampled / dt : 0);
    sp_stream_free(st);
    free(ctx);
    free(pids);
    free(prime);
    trained_free(&tm);
    return rc;
}

/* ----------------------------------------------------------------- eval */

int cl_cmd_eval(cl_opts *o)
{
    cl_trained tm;
    if (load_trained(o, &tm, 0)) { trained_free(&tm); return 1; }
    int reset;
    if (!strcmp(o->state, "carry")) reset = 0;
    else if (!strcmp(o->state, "reset")) reset = 1;
    else { trained_free(&tm); return cl_fail("--state must be carry or reset, not '%s'", o->state); }
    if (strcmp(o->split, "valid") && strcmp(o->split, "train")) { trained_free(&tm); return cl_fail("--split must be valid or train"); }
    if (o->eval_batch < 1 || o->eval_seq < 0) { trained_free(&tm); return cl_fail("--eval-batch must be >= 1, --eval-seq >= 0"); }
    sp_set_threads(o->threads);
    snprintf(o->mode, sizeof o->mode, "%s", tm.lines ? "lines" : "stream");
    printf("# spool-charlm eval | %s\n", sp_info());
    cl_opts_echo(o, CL_EVAL, stdout);
    cl_corpus c;
    if (cl_load_corpus(o, &c, &tm.vocab, !strcmp(o->split, "train"))) { trained_free(&tm); return 1; }
    const cl_data *d = !strcmp(o->split, "train") ? &c.train : &c.valid;
    int seq = o->eval_seq ? o->eval_seq : o->seq;
    sp_tape *t = sp_tape_new();
    double t0 = ex_now();
    long n = 0;
    double l = cl_evaluate(&tm.m, t, d, tm.lines ? 256 : o->eval_batch, seq, reset, &n);
    double el = ex_now() - t0;
    int rc = 0;
    if (l != l) rc = 1;
    else {
        printf("# %s split: %s\n", o->split, !strcmp(o->split, "train") ? c.train_path : c.valid_path);
        if (tm.lines) printf("# %d lines, %ld predicted characters (end tokens included)\n", d->n_seq, n);
        else printf("# %ld predicted characters, %d track(s) read in order in chunks of %d, state %s\n", n, o->eval_batch,
                    seq, reset ? "reset at every chunk" : "carried from chunk to chunk");
        printf("loss %.4f nats/char  %.4f bits/char  perplexity %.3f  (%.1f s)\n", l, l / log(2.0), exp(l), el);
    }
    sp_tape_free(t);
    cl_corpus_free(&c);
    trained_free(&tm);
    return rc;
}

/* ---------------------------------------------------------------- score */

int cl_cmd_score(cl_opts *o, const char *text)
{
    cl_trained tm;
    if (load_trained(o, &tm, 1)) { trained_free(&tm); return 1; }
    sp_set_threads(o->threads);
    int *ids;
    long n;
    if (text_ids(&tm, "score", text, strlen(text), &ids, &n)) { trained_free(&tm); return 1; }
    if (!tm.lines && n < 2) { free(ids); trained_free(&tm); return cl_fail("score: give at least 2 characters (the first is context)"); }
    if (tm.lines && n == 0) { free(ids); trained_free(&tm); return cl_fail("score: empty text"); }
    /* lines: <start> c1..cn -> c1..cn <end>; stream: c1..c(n-1) -> c2..cn */
    long T = tm.lines ? n + 1 : n - 1;
    int *in = malloc(sizeof(int) * (size_t)T), *tg = malloc(sizeof(int) * (size_t)T);
    for (long i = 0; i < T; i++) {
        in[i] = tm.lines ? (i == 0 ? 0 : ids[i - 1]) : ids[i];
        tg[i] = tm.lines ? (i < n ? ids[i] : 0) : ids[i + 1];
    }
    /* streaming inference, one character at a time (the same numbers as one forward over the text) */
    sp_stream *st = cl_model_stream_new(&tm.m);
    int rc = st ? 0 : cl_fail("%s", sp_last_error());
    if (!rc) {
        printf("# spool-charlm score | checkpoint %s (%s mode)%s\n", o->checkpoint, tm.lines ? "lines" : "stream",
               tm.lines ? "" : "; the first character is context, not scored");
        printf("%4s  %-14s %10s %10s %12s\n", "pos", "char", "p", "-log p", "cumulative");
        double total = 0;
        for (long i = 0; i < T; i++) {
            const sp_real *r = cl_model_stream_step(&tm.m, st, in[i], err, ERRN);
            if (!r) { rc = cl_fail("%s", err); break; }
            double mx = r[0], z = 0;
            for (int v = 1; v < tm.vocab.V; v++) mx = r[v] > mx ? r[v] : mx;
            for (int v = 0; v < tm.vocab.V; v++) z += exp((double)r[v] - mx);
            double lp = (double)r[tg[i]] - mx - log(z);
            total += lp;
            char sh[48];
            printf("%4ld  %-14s %10.5f %10.4f %12.4f\n", i + 1, cl_cp_show(tm.vocab.cp[tg[i]], sh, sizeof sh), exp(lp), -lp, -total);
        }
        if (!rc) printf("log-probability %.4f nats (%.4f bits); %.4f nats/char over %ld predicted characters, perplexity %.3f\n",
               total, total / log(2.0), -total / (double)T, T, exp(-total / (double)T));
    }
    sp_stream_free(st);
    free(in);
    free(tg);
    free(ids);
    trained_free(&tm);
    return rc;
}


/* --------------------------------------------------------------- export */

/* The model as ONNX: token ids in, logits and probabilities of the next character and every
 * layer's states out (fed back as inputs, they stream the model one character at a time). The
 * vocabulary goes into the metadata as "charlm.vocab" (code points in id order, -1 for the
 * line boundary of lines mode), the mode as "charlm.mode". */
int cl_cmd_export(cl_opts *o)
{
    if (!o->onnx[0]) return cl_fail("export needs --onnx FILE, the ONNX file to write (try --help)"), 2;
    cl_trained tm;
    if (load_trained(o, &tm, 1)) { trained_free(&tm); return 1; }
    char *vocab = cl_vocab_to_string(&tm.vocab);
    const char *meta[] = {"charlm.vocab", vocab ? vocab : "", "charlm.mode", tm.lines ? "lines" : "stream",
                          "charlm.cell", tm.m.cfg.cell, NULL};
    sp_cell_noise nz = {tm.m.cfg.zoneout_h, tm.m.cfg.zoneout_c, 0, 0, NULL, 0, 0};
    sp_onnx_model om = {0};
    om.embed = &tm.m.emb, om.rnn = &tm.m.rnn, om.head = &tm.m.head, om.softmax = 1, om.noise = &nz;
    om.metadata = meta;
    int rc = 0;
    if (!vocab) rc = cl_fail("export: out of memory");
    else if (sp_onnx_export(&om, o->onnx) != SP_OK) rc = cl_fail("export: %s", sp_last_error());
    else
        printf("wrote %s: %s, %d layer%s, hidden %d, vocabulary %d (%s mode); inputs ids [time, batch], "
               "outputs logits, probs, %s\n", o->onnx, tm.m.cfg.cell, tm.m.cfg.L, tm.m.cfg.L > 1 ? "s" : "", tm.m.cfg.H,
               tm.vocab.V, tm.lines ? "lines" : "stream", tm.m.rnn.cell[0][0].n_state == 2 ? "hn_l<k>, cn_l<k>" : "hn_l<k>");
    free(vocab);
    trained_free(&tm);
    return rc;
}
