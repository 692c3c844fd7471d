/* main.c - spool-charlm: character-level language models (names, dinosaurs, Shakespeare) with
 * spool. Commands: train, sample, eval, score. This file holds the data loading, checkpoints
 * and the four commands; text.c decodes and batches, model.c builds the network, opts.c holds
 * the options table, ui.c the progress bar and plot. */
#include "charlm.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#ifndef CHARLM_DATA_DIR
#define CHARLM_DATA_DIR "examples/data"
#endif

#define ERRN 1024
static char err[ERRN];

static int fail(const char *fmt, ...) SP_PRINTF(1, 2);
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("spool-charlm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* ------------------------------------------------------------------ data */

typedef struct {
    cl_vocab vocab;
    cl_data train, valid;
    int lines;
    char train_path[CL_STR + 64], valid_path[CL_STR + 96];
} corpus;

static const char *data_dir(void)
{
    const char *e = getenv("SPOOL_CHARLM_DATA");
    return e && *e ? e : CHARLM_DATA_DIR;
}

/* Splits a decoded text for held-out data: every 10th non-empty line (lines), or the last 10%
 * of the characters (stream, the usual 90/10 convention of nanoGPT). */
static void split_text(const uint32_t *txt, long n, int lines, uint32_t **tr, long *ntr, uint32_t **va, long *nva)
{
    *tr = malloc(sizeof(uint32_t) * (size_t)(n + 1));
    *va = malloc(sizeof(uint32_t) * (size_t)(n + 1));
    if (!*tr || !*va) { fprintf(stderr, "spool-charlm: out of memory\n"); exit(1); }
    if (!lines) {
        long cut = (long)(0.9 * (double)n);
        memcpy(*tr, txt, sizeof(uint32_t) * (size_t)cut);
        memcpy(*va, txt + cut, sizeof(uint32_t) * (size_t)(n - cut));
        *ntr = cut;
        *nva = n - cut;
        return;
    }
    long a = 0, b = 0, lineno = 0, i = 0;
    while (i < n) {
        long j = i;
        while (j < n && txt[j] != '\n') j++;
        int empty = j == i;
        if (!empty) lineno++;
        int to_valid = !empty && lineno % 10 == 0;
        for (long k = i; k < j; k++) (to_valid ? *va : *tr)[to_valid ? b++ : a++] = txt[k];
        if (to_valid) (*va)[b++] = '\n';
        else (*tr)[a++] = '\n';
        i = j + 1;
    }
    *ntr = a;
    *nva = b;
}

static int decode_file(const char *path, uint32_t **cp, long *n)
{
    size_t len;
    unsigned char *buf = cl_read_file(path, &len, err, ERRN);
    if (!buf) return fail("%s", err);
    char e2[256];
    *n = cl_utf8_decode(buf, len, cp, e2, sizeof e2);
    free(buf);
    if (*n < 0) return fail("%s: %s", path, e2);
    return 0;
}

/* Loads the training and held-out text of o. vocab == NULL: build the vocabulary from the
 * training file; else use it (from a checkpoint). need_train = 0 skips the training ids. */
static int load_corpus(const cl_opts *o, corpus *c, const cl_vocab *vocab, int need_train)
{
    memset(c, 0, sizeof *c);
    const char *d = o->data;
    int bundled = 1, stream_default = 0;
    if (!strcmp(d, "names") || !strcmp(d, "dinos")) {
        snprintf(c->train_path, sizeof c->train_path, "%s/%s/train.txt", data_dir(), d);
        snprintf(c->valid_path, sizeof c->valid_path, "%s/%s/test.txt", data_dir(), d);
    } else if (!strcmp(d, "shakespeare")) {
        snprintf(c->train_path, sizeof c->train_path, "%s/tinyshakespeare/input.txt", data_dir());
        stream_default = 1;
    } else {
        bundled = 0;
        snprintf(c->train_path, sizeof c->train_path, "%s", d);
    }
    if (o->valid[0]) snprintf(c->valid_path, sizeof c->valid_path, "%s", o->valid);

    uint32_t *txt = NULL, *vtxt = NULL;
    long n = 0, nv = 0;
    if (decode_file(c->train_path, &txt, &n)) {
        if (bundled) fprintf(stderr, "spool-charlm: (bundled data are looked for in %s; set SPOOL_CHARLM_DATA to move them)\n", data_dir());
        return 1;
    }
    if (!strcmp(o->mode, "lines")) c->lines = 1;
    else if (!strcmp(o->mode, "stream")) c->lines = 0;
    else if (!strcmp(o->mode, "auto")) {
        long longest = 0, cur = 0;
        for (long i = 0; i < n; i++) {
            cur = txt[i] == '\n' ? 0 : cur + 1;
            if (cur > longest) longest = cur;
        }
        c->lines = !stream_default && longest <= 100;
    } else {
        free(txt);
        return fail("--mode must be lines, stream or auto, not '%s'", o->mode);
    }
    cl_vocab own = {0};
    if (!vocab) {
        if (cl_vocab_build(&own, txt, n, c->lines)) { free(txt); return fail("out of memory"); }
        if (own.V < 2) { free(txt); cl_vocab_free(&own); return fail("%s: fewer than 2 distinct characters", c->train_path); }
        vocab = &own;
    }
    uint32_t *tr = txt;
    long ntr = n;
    if (c->valid_path[0]) {
        if (decode_file(c->valid_path, &vtxt, &nv)) { free(txt); cl_vocab_free(&own); return 1; }
    } else {
        split_text(txt, n, c->lines, &tr, &ntr, &vtxt, &nv);
        snprintf(c->valid_path, sizeof c->valid_path, "%.*s (%s)", CL_STR, c->train_path,
                 c->lines ? "every 10th line" : "last 10%");
        free(txt);
        txt = NULL;
    }
    int rc = 0;
    if (need_train && cl_data_make(&c->train, vocab, tr, ntr, c->lines, c->train_path, err, ERRN)) rc = fail("%s", err);
    if (!rc && cl_data_make(&c->valid, vocab, vtxt, nv, c->lines, c->valid_path, err, ERRN)) rc = fail("%s", err);
    if (tr != txt) free(tr);
    free(txt);
    free(vtxt);
    if (rc) { cl_vocab_free(&own); cl_data_free(&c->train); return rc; }
    if (vocab == &own) c->vocab = own;
    else {
        c->vocab.V = vocab->V;
        c->vocab.cp = malloc(sizeof(uint32_t) * (size_t)vocab->V);
        memcpy(c->vocab.cp, vocab->cp, sizeof(uint32_t) * (size_t)vocab->V);
    }
    return 0;
}

static void corpus_free(corpus *c)
{
    cl_vocab_free(&c->vocab);
    cl_data_free(&c->train);
    cl_data_free(&c->valid);
}

/* ----------------------------------------------------------- checkpoints */

static cl_model_cfg model_cfg(const cl_opts *o, int V)
{
    cl_model_cfg m = {0};
    snprintf(m.cell, sizeof m.cell, "%s", o->cell);
    m.V = V, m.E = o->embed, m.H = o->hidden, m.P = o->proj, m.L = o->layers;
    m.dropout = o->dropout;
    m.orthogonal = o->orthogonal, m.forget_bias_one = o->forget_bias;
    return m;
}

/* Carried state as hex of its raw numbers: exact, so a resumed run continues bit for bit. */
static char *carry_to_hex(const sp_carry *c)
{
    size_t bytes = 0;
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) bytes += (size_t)c->cols[l][0][k] * (size_t)c->B * sizeof(sp_real);
    char *s = malloc(bytes * 2 + 32), *p = s;
    if (!s) return NULL;
    p += sprintf(p, "%d:%d:", c->B, (int)sizeof(sp_real));
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) {
            const unsigned char *u = (const unsigned char *)c->data[l][0][k];
            size_t nb = (size_t)c->cols[l][0][k] * (size_t)c->B * sizeof(sp_real);
            for (size_t i = 0; i < nb; i++) p += sprintf(p, "%02x", u[i]);
        }
    return s;
}

static int carry_from_hex(sp_carry *c, const char *s)
{
    int B, sz, used;
    if (sscanf(s, "%d:%d:%n", &B, &sz, &used) != 2 || B != c->B || sz != (int)sizeof(sp_real)) return -1;
    s += used;
    for (int l = 0; l < SP_RNN_MAX_LAYERS; l++)
        for (int k = 0; k < SP_CELL_MAX_STATE; k++) {
            unsigned char *u = (unsigned char *)c->data[l][0][k];
            size_t nb = (size_t)c->cols[l][0][k] * (size_t)c->B * sizeof(sp_real);
            for (size_t i = 0; i < nb; i++) {
                unsigned x;
                if (sscanf(s, "%2x", &x) != 1) return -1;
                u[i] = (unsigned char)x;
                s += 2;
            }
        }
    return *s ? -1 : 0;
}

static int save_checkpoint(const char *path, const sp_params *ps, const sp_optim *opt, const cl_opts *o,
                           const corpus *c, long step, const sp_carry *carry, sp_rng *rng)
{
    char *cfg = cl_opts_serialise(o), *voc = cl_vocab_to_string(&c->vocab), *hex = carry ? carry_to_hex(carry) : NULL;
    char stepbuf[32];
    snprintf(stepbuf, sizeof stepbuf, "%ld", step);
    sp_kv meta[] = {{"charlm.format", "1"}, {"charlm.config", cfg ? cfg : ""}, {"charlm.vocab", voc ? voc : ""},
                    {"charlm.mode", c->lines ? "lines" : "stream"}, {"charlm.step", stepbuf},
                    {"charlm.carry", hex ? hex : ""}};
    sp_ckpt_opts co = {.meta = meta, .n_meta = 6, .rng = rng};
    sp_status s = (cfg && voc) ? sp_save(path, ps, opt, &co) : SP_ERR_NOMEM;
    free(cfg);
    free(voc);
    free(hex);
    if (s != SP_OK) return fail("cannot write checkpoint %s: %s", path, sp_last_error());
    return 0;
}

/* Reads the configuration and vocabulary of a checkpoint into o (see cl_opts_merge_stored). */
static int read_checkpoint_header(const char *path, cl_opts *o, int model_only, cl_vocab *v, int *lines,
                                  long *step, char **carry_hex)
{
    sp_ckpt_info *ci = sp_ckpt_open(path);
    if (!ci) return fail("cannot read checkpoint: %s", sp_last_error());
    const char *fmt = sp_ckpt_meta(ci, "charlm.format"), *cfg = sp_ckpt_meta(ci, "charlm.config"),
               *voc = sp_ckpt_meta(ci, "charlm.vocab"), *mode = sp_ckpt_meta(ci, "charlm.mode"),
               *st = sp_ckpt_meta(ci, "charlm.step"), *hex = sp_ckpt_meta(ci, "charlm.carry");
    int rc = 0;
    if (!fmt || !cfg || !voc || !mode || !st) {
        rc = fail("%s is not a spool-charlm checkpoint (no charlm.* metadata)", path);
    } else if (strcmp(fmt, "1")) {
        rc = fail("%s: checkpoint format %s, this program reads format 1", path, fmt);
    } else if (cl_opts_merge_stored(o, cfg, model_only, err, ERRN)) {
        rc = fail("%s: %s", path, err);
    } else if (cl_vocab_from_string(v, voc, err, ERRN)) {
        rc = fail("%s: %s", path, err);
    } else {
        *lines = !strcmp(mode, "lines");
        if (step) *step = strtol(st, NULL, 10);
        if (carry_hex) *carry_hex = hex && *hex ? strdup(hex) : NULL;
    }
    sp_ckpt_close(ci);
    return rc;
}

/* ----------------------------------------------------------- evaluation */

/* Mean loss (nats per predicted character) of d. lines: batches of up to `batch` examples.
 * stream: `batch` tracks read in order in chunks of seq characters, state carried (or reset at
 * every chunk); the last partial chunk of each track is scored too. */
static double evaluate(cl_model *m, sp_tape *t, const cl_data *d, int batch, int seq, int reset, long *count)
{
    cl_batch b = {0};
    double sum = 0;
    long n = 0;
    if (d->lines) {
        int idx[1024];
        if (batch > 1024) batch = 1024;
        for (int s = 0; s < d->n_seq; s += batch) {
            int B = d->n_seq - s < batch ? d->n_seq - s : batch;
            for (int r = 0; r < B; r++) idx[r] = s + r;
            cl_batch_lines(&b, d, idx, B);
            sp_tape_reset(t);
            sp_tensor *logits = cl_model_forward(m, t, b.in, b.T, B, NULL, 0, NULL);
            sp_tensor *loss = sp_softmax_xent(t, logits, b.tgt, NULL);
            if (!loss) { fail("eval: %s", sp_tape_errmsg(t)); sum = NAN; break; }
            sum += (double)loss->data[0] * (double)b.predicted;
            n += b.predicted;
        }
    } else {
        if (d->n / batch < 2) batch = 1;
        sp_carry carry = {0};
        if (sp_carry_init(&carry, &m->rnn, batch)) { fail("%s", sp_last_error()); return NAN; }
        long L = d->n / batch;
        for (long pos = 0; pos < L - 1; pos += seq) {
            int T = (int)(L - 1 - pos < seq ? L - 1 - pos : seq);
            if (reset) sp_carry_reset(&carry);
            cl_batch_stream_at(&b, d, batch, T, pos);
            sp_tape_reset(t);
            sp_tensor *logits = cl_model_forward(m, t, b.in, T, batch, &carry, 0, NULL);
            sp_tensor *loss = sp_softmax_xent(t, logits, b.tgt, NULL);
            if (!loss) { fail("eval: %s", sp_tape_errmsg(t)); sum = NAN; break; }
            sum += (double)loss->data[0] * (double)b.predicted;
            n += b.predicted;
        }
        sp_carry_free(&carry);
    }
    cl_batch_free(&b);
    if (count) *count = n;
    return n ? sum / (double)n : NAN;
}

/* ---------------------------------------------------------------- train */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

/* Example order of line data: a fresh permutation per epoch, a pure function of (seed, epoch),
 * so a resumed run sees the same order without storing it. */
typedef struct {
    int *perm, n;
    long epoch;
    uint64_t seed;
} order;

static int order_get(order *o, long g)
{
    long e = g / o->n;
    if (e != o->epoch) {
        sp_rng r;
        sp_rng_seed(&r, o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)e + 1);
        for (int i = 0; i < o->n; i++) o->perm[i] = i;
        for (int i = o->n - 1; i > 0; i--) {
            int j = sp_rng_below(&r, i + 1), x = o->perm[i];
            o->perm[i] = o->perm[j];
            o->perm[j] = x;
        }
        o->epoch = e;
    }
    return o->perm[g % o->n];
}

static int parse_optimizer(const char *s, sp_optim_kind *k)
{
    static const struct { const char *n; sp_optim_kind k; } t[] = {
        {"sgd", SP_SGD}, {"rmsprop", SP_RMSPROP}, {"adagrad", SP_ADAGRAD}, {"adam", SP_ADAM}, {"adamw", SP_ADAMW}};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, t[i].n)) { *k = t[i].k; return 0; }
    return -1;
}

static void default_paths(cl_opts *o)
{
    char base[CL_STR];
    snprintf(base, sizeof base, "%s", o->checkpoint);
    char *dot = strrchr(base, '.'), *slash = strrchr(base, '/');
    if (dot && (!slash || dot > slash)) *dot = 0;
    if (!o->log[0]) snprintf(o->log, sizeof o->log, "%.*s.csv", CL_STR - 8, base);
    if (!o->plot[0]) snprintf(o->plot, sizeof o->plot, "%.*s.svg", CL_STR - 8, base);
}

static int cmd_train(cl_opts *o)
{
    cl_vocab ck_vocab = {0};
    int ck_lines = 0;
    long start_step = 0;
    char *carry_hex = NULL;
    if (o->resume && read_checkpoint_header(o->checkpoint, o, 0, &ck_vocab, &ck_lines, &start_step, &carry_hex))
        return 1;
    default_paths(o);
    sp_optim_kind ok;
    if (parse_optimizer(o->optimizer, &ok)) return fail("--optimizer must be sgd, rmsprop, adagrad, adam or adamw, not '%s'", o->optimizer);
    if (!cl_cell_known(o->cell)) return fail("unknown --cell '%s' (one of: %s)", o->cell, cl_cell_list());
    if (o->seq < 1 || o->batch < 1 || o->batch > 1024) return fail("--seq must be >= 1 and --batch in 1..1024");
    if (o->steps < 1 && o->epochs <= 0) return fail("--steps must be >= 1 (or give --epochs > 0)");
    if (o->clip < 0 || o->lr < 0) return fail("--clip and --lr must be >= 0");
    if (o->eval_every < 0 || o->checkpoint_every < 0) return fail("--eval-every and --checkpoint-every must be >= 0");
    sp_sched_kind sk;
    if (!strcmp(o->lr_schedule, "constant")) sk = SP_SCHED_CONSTANT;
    else if (!strcmp(o->lr_schedule, "step")) sk = SP_SCHED_STEP;
    else if (!strcmp(o->lr_schedule, "cosine")) sk = SP_SCHED_COSINE;
    else return fail("--lr-schedule must be constant, step or cosine, not '%s'", o->lr_schedule);

    sp_set_threads(o->threads);
    printf("# spool-charlm train | %s\n", sp_info());
    cl_opts_echo(o, CL_TRAIN, stdout);

    corpus c;
    if (load_corpus(o, &c, NULL, 1)) { cl_vocab_free(&ck_vocab); free(carry_hex); return 1; }
    if (o->resume) {
        int same = ck_vocab.V == c.vocab.V && ck_lines == c.lines &&
                   !memcmp(ck_vocab.cp, c.vocab.cp, sizeof(uint32_t) * (size_t)c.vocab.V);
        cl_vocab_free(&ck_vocab);
        if (!same) {
            corpus_free(&c);
            free(carry_hex);
            return fail("%s was trained on data with another vocabulary or mode than %s", o->checkpoint, c.train_path);
        }
    }
    long per_epoch = c.lines ? (c.train.n_seq + o->batch - 1) / o->batch : cl_stream_chunks(&c.train, o->batch, o->seq);
    if (per_epoch < 1) {
        corpus_free(&c);
        free(carry_hex);
        return fail("%s is too short for --batch %d x --seq %d", c.train_path, o->batch, o->seq);
    }
    long total = o->epochs > 0 ? (long)ceil(o->epochs * (double)per_epoch) : o->steps;
    printf("# data: %s (%s mode, %ld characters, %d %s), held out: %s (%ld characters)\n", c.train_path,
           c.lines ? "lines" : "stream", c.train.n, c.train.n_seq, c.lines ? "lines" : "stream", c.valid_path, c.valid.n);
    printf("# vocabulary: %d symbols%s; %ld steps (%.2f epochs of %ld steps)\n", c.vocab.V,
           c.lines ? " (incl. the start/end token)" : "", total, (double)total / (double)per_epoch, per_epoch);

    sp_rng rng, drop_rng;
    sp_rng_seed(&rng, (uint64_t)o->seed);
    sp_rng_seed(&drop_rng, (uint64_t)o->seed ^ 0xD5A61266F0C9392Cull);
    sp_params *ps = sp_params_new();
    cl_model m;
    cl_model_cfg mc = model_cfg(o, c.vocab.V);
    if (!ps || cl_model_init(&m, &mc, ps, &rng, err, ERRN)) {
        sp_params_free(ps);
        corpus_free(&c);
        free(carry_hex);
        return fail("model: %s", err);
    }
    printf("# model: embed %d -> %d x %s(%d%s) -> linear %d; %zu parameters\n", mc.E, mc.L, mc.cell, mc.H,
           m.cfg.P ? ", proj" : "", c.vocab.V, ps->numel);
    sp_optim_config oc = sp_optim_defaults(ok);
    oc.lr = o->lr, oc.beta1 = o->beta1, oc.beta2 = o->beta2, oc.eps = o->eps, oc.momentum = o->momentum;
    if (ok != SP_ADAMW || cl_opts_given("weight-decay")) oc.weight_decay = o->weight_decay;
    sp_optim *opt = sp_optim_new(ps, &oc);
    sp_schedule sched = {.kind = sk, .base_lr = o->lr, .step_size = o->step_size, .gamma = o->gamma,
                         .warmup = o->warmup < total ? o->warmup : 0, .total = (int)total, .min_lr = o->min_lr};
    sp_carry carry = {0};
    int rc = 0;
    if (!opt) rc = fail("optimizer: %s", sp_last_error());
    else if (sp_schedule_lr(&sched, 0) < 0) rc = fail("--lr-schedule: %s", sp_last_error());
    else if (!c.lines && sp_carry_init(&carry, &m.rnn, o->batch)) rc = fail("%s", sp_last_error());
    long step = 0;
    if (!rc && o->resume) {
        sp_ckpt_opts lo = {.rng = &drop_rng};
        if (sp_load(o->checkpoint, ps, opt, &lo) != SP_OK) rc = fail("cannot resume from %s: %s", o->checkpoint, sp_last_error());
        else if (!c.lines && (!carry_hex || carry_from_hex(&carry, carry_hex)))
            rc = fail("%s: carried state missing or of another batch size", o->checkpoint);
        step = start_step;
        if (!rc) printf("# resumed from %s at step %ld\n", o->checkpoint, step);
    }
    free(carry_hex);
    FILE *logf = NULL;
    if (!rc) {
        logf = fopen(o->log, o->resume ? "a" : "w");
        if (!logf) rc = fail("cannot write log %s: %s", o->log, strerror(errno));
        else if (!o->resume) fprintf(logf, "step,epoch,lr,train_loss,train_loss_avg,grad_norm,valid_loss,tok_s,elapsed_s\n");
    }
    if (rc) {
        sp_carry_free(&carry);
        sp_optim_free(opt);
        sp_params_free(ps);
        corpus_free(&c);
        return rc;
    }
    printf("# seed %ld; log %s\n", o->seed, o->log);
    fflush(stdout);

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);

    sp_tape *t = sp_tape_new();
    cl_batch b = {0};
    order ord = {.perm = malloc(sizeof(int) * (size_t)c.train.n_seq), .n = c.train.n_seq, .epoch = -1,
                 .seed = (uint64_t)o->seed};
    int *idx = malloc(sizeof(int) * (size_t)o->batch);
    cl_progress pg;
    cl_progress_init(&pg, total, o->print_every, o->progress);
    double t0 = cl_now(), ema = 0, ema_w = 0, last_valid = NAN, tok_rate = 0;
    long tokens = 0;
    int stopped = 0;
    while (step < total) {
        double ts = cl_now();
        if (c.lines) {
            for (int r = 0; r < o->batch; r++) idx[r] = order_get(&ord, step * (long)o->batch + r);
            cl_batch_lines(&b, &c.train, idx, o->batch);
        } else {
            long chunk = step % per_epoch;
            if (chunk == 0) sp_carry_reset(&carry);
            cl_batch_stream(&b, &c.train, o->batch, o->seq, chunk);
        }
        sp_tape_reset(t);
        sp_params_zero_grad(ps);
        sp_tensor *logits = cl_model_forward(&m, t, b.in, b.T, b.B, c.lines ? NULL : &carry, 1, &drop_rng);
        sp_tensor *loss = sp_softmax_xent(t, logits, b.tgt, NULL);
        if (!loss || sp_backward(t, loss) != SP_OK) { rc = fail("training step %ld: %s", step + 1, sp_tape_errmsg(t)); break; }
        if (step == start_step && o->dot[0]) {
            if (sp_tape_dot_file(t, o->dot, 1) != SP_OK) { rc = fail("--dot: %s", sp_last_error()); break; }
            cl_progress_note(&pg, "# wrote the graph of step %ld (%d records) to %s", step + 1, sp_tape_count(t), o->dot);
        }
        double gnorm = 0, lr = sp_schedule_lr(&sched, step);
        sp_status cs = o->clip > 0 ? sp_clip_grad_norm(ps, o->clip, &gnorm) : sp_clip_grad_value(ps, INFINITY, &gnorm);
        if (cs != SP_OK || sp_optim_step(opt, lr) != SP_OK) { rc = fail("step %ld: %s", step + 1, sp_last_error()); break; }
        step++;
        double lv = loss->data[0];
        tokens += b.predicted;
        ema = 0.98 * ema + 0.02 * lv;
        ema_w = 0.98 * ema_w + 0.02;
        double dt = cl_now() - ts;
        tok_rate = tok_rate == 0 ? (double)b.predicted / dt : 0.95 * tok_rate + 0.05 * (double)b.predicted / dt;
        int last = step == total, do_eval = (o->eval_every > 0 && step % o->eval_every == 0) || last;
        double vl = NAN;
        if (do_eval) {
            vl = evaluate(&m, t, &c.valid, c.lines ? 256 : o->batch, o->seq, 0, NULL);
            last_valid = vl;
            cl_progress_note(&pg, "step %ld: train loss %.4f (running mean %.4f), held-out loss %.4f nats/char (%.3f bits), %.0f s",
                             step, lv, ema / ema_w, vl, vl / log(2.0), cl_now() - t0);
        }
        fprintf(logf, "%ld,%.4f,%.6g,%.6f,%.6f,%.6f,%.6f,%.0f,%.2f\n", step, (double)step / (double)per_epoch, lr, lv,
                ema / ema_w, gnorm, vl, tok_rate, cl_now() - t0);
        if (do_eval) fflush(logf);
        cl_progress_update(&pg, step, ema / ema_w, tok_rate, lr);
        int stop = interrupted || (o->stop_after > 0 && step >= o->stop_after);
        if (last || stop || (o->checkpoint_every > 0 && step % o->checkpoint_every == 0)) {
            if (save_checkpoint(o->checkpoint, ps, opt, o, &c, step, c.lines ? NULL : &carry, &drop_rng)) { rc = 1; break; }
        }
        if (stop && !last) {
            cl_progress_note(&pg, "# %s at step %ld: checkpoint saved to %s; continue with the same command plus --resume",
                             interrupted ? "interrupted" : "stopped", step, o->checkpoint);
            stopped = 1;
            break;
        }
    }
    cl_progress_done(&pg);
    double el = cl_now() - t0;
    if (logf) fclose(logf);
    if (!rc && !stopped) {
        char d[32];
        cl_fmt_duration(el, d, sizeof d);
        printf("# done: %ld steps in %s (%.1f s, %.0f characters/s); final held-out loss %.4f nats/char, %.4f bits/char, perplexity %.3f\n",
               step - start_step, d, el, (double)tokens / el, last_valid, last_valid / log(2.0), exp(last_valid));
        printf("# checkpoint %s, log %s\n", o->checkpoint, o->log);
        if (strcmp(o->plot, "none") && cl_plot(o->log, o->plot, o->checkpoint) == 0) printf("# loss plot %s\n", o->plot);
    }
    free(idx);
    free(ord.perm);
    cl_batch_free(&b);
    sp_tape_free(t);
    sp_carry_free(&carry);
    sp_optim_free(opt);
    sp_params_free(ps);
    corpus_free(&c);
    return rc ? rc : (stopped && interrupted ? 130 : 0);
}

/* ------------------------------------------------ loading a trained model */

typedef struct {
    cl_vocab vocab;
    int lines;
    sp_params *ps;
    cl_model m;
} trained;

static int load_trained(cl_opts *o, trained *tm, int model_only)
{
    memset(tm, 0, sizeof *tm);
    if (read_checkpoint_header(o->checkpoint, o, model_only, &tm->vocab, &tm->lines, NULL, NULL)) return 1;
    sp_rng rng;
    sp_rng_seed(&rng, 1);
    tm->ps = sp_params_new();
    cl_model_cfg mc = model_cfg(o, tm->vocab.V);
    if (!tm->ps || cl_model_init(&tm->m, &mc, tm->ps, &rng, err, ERRN)) return fail("%s: model: %s", o->checkpoint, err);
    if (sp_load(o->checkpoint, tm->ps, NULL, NULL) != SP_OK) return fail("cannot load %s: %s", o->checkpoint, sp_last_error());
    return 0;
}

static void trained_free(trained *tm)
{
    sp_params_free(tm->ps);
    cl_vocab_free(&tm->vocab);
}

/* Text -> ids, naming the first character that is not in the vocabulary. */
static int text_ids(const trained *tm, const char *what, const char *s, size_t n, int **ids, long *len)
{
    uint32_t *cp;
    char e2[256];
    long k = cl_utf8_decode((const unsigned char *)s, n, &cp, e2, sizeof e2);
    if (k < 0) return fail("%s: %s", what, e2);
    *ids = malloc(sizeof(int) * (size_t)(k + 1));
    for (long i = 0; i < k; i++) {
        int id = (tm->lines && cp[i] == '\n') ? 0 : cl_vocab_id(&tm->vocab, cp[i]);
        if (id < 0) {
            char sh[48];
            fail("%s: character %s at position %ld is not in the model's vocabulary of %d symbols", what,
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
        double tmp[4096];
        int n = V < 4096 ? V : 4096;
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

static int cmd_sample(cl_opts *o)
{
    if (!(o->temperature >= 0)) return fail("--temperature must be > 0, or 0 for the most likely character");
    if (o->count < 1 || o->max_len < 0 || o->top_k < 0) return fail("--count must be >= 1, --max-len and --top-k >= 0");
    trained tm;
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
        if (!prime) { trained_free(&tm); return fail("--prime-file: %s", err); }
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
    sp_tape *t = sp_tape_new();
    sp_carry carry = {0};
    if (sp_carry_init(&carry, &tm.m.rnn, 1)) rc = fail("%s", sp_last_error());
    for (int s = 0; s < o->count && !rc; s++) {
        sp_carry_reset(&carry);
        sp_tape_reset(t);
        sp_tensor *logits = cl_model_forward(&tm.m, t, ctx, (int)nc, 1, &carry, 0, NULL);
        if (!logits) { rc = fail("%s", sp_tape_errmsg(t)); break; }
        fwrite(prime, 1, plen, stdout);
        const sp_real *row = sp_at(logits, (int)nc - 1, 0);
        int ended = 0;
        for (int k = 0; k < max_len; k++) {
            int id = pick(row, V, o->temperature, o->top_k, &rng, NULL);
            if (tm.lines && id == 0) { ended = 1; break; }
            put_symbol(&tm.vocab, id, stdout);
            sp_tape_reset(t);
            logits = cl_model_forward(&tm.m, t, &id, 1, 1, &carry, 0, NULL);
            if (!logits) { rc = fail("%s", sp_tape_errmsg(t)); break; }
            row = logits->data;
        }
        (void)ended;
        fputs(tm.lines ? "\n" : (s + 1 < o->count ? "\n\n----\n\n" : "\n"), stdout);
    }
    fflush(stdout);
    sp_carry_free(&carry);
    sp_tape_free(t);
    free(ctx);
    free(pids);
    free(prime);
    trained_free(&tm);
    return rc;
}

/* ----------------------------------------------------------------- eval */

static int cmd_eval(cl_opts *o)
{
    trained tm;
    if (load_trained(o, &tm, 0)) { trained_free(&tm); return 1; }
    int reset;
    if (!strcmp(o->state, "carry")) reset = 0;
    else if (!strcmp(o->state, "reset")) reset = 1;
    else { trained_free(&tm); return fail("--state must be carry or reset, not '%s'", o->state); }
    if (strcmp(o->split, "valid") && strcmp(o->split, "train")) { trained_free(&tm); return fail("--split must be valid or train"); }
    if (o->eval_batch < 1 || o->eval_seq < 0) { trained_free(&tm); return fail("--eval-batch must be >= 1, --eval-seq >= 0"); }
    sp_set_threads(o->threads);
    snprintf(o->mode, sizeof o->mode, "%s", tm.lines ? "lines" : "stream");
    printf("# spool-charlm eval | %s\n", sp_info());
    cl_opts_echo(o, CL_EVAL, stdout);
    corpus c;
    if (load_corpus(o, &c, &tm.vocab, !strcmp(o->split, "train"))) { trained_free(&tm); return 1; }
    const cl_data *d = !strcmp(o->split, "train") ? &c.train : &c.valid;
    int seq = o->eval_seq ? o->eval_seq : o->seq;
    sp_tape *t = sp_tape_new();
    double t0 = cl_now();
    long n = 0;
    double l = evaluate(&tm.m, t, d, tm.lines ? 256 : o->eval_batch, seq, reset, &n);
    double el = cl_now() - t0;
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
    corpus_free(&c);
    trained_free(&tm);
    return rc;
}

/* ---------------------------------------------------------------- score */

static int cmd_score(cl_opts *o, const char *text)
{
    trained tm;
    if (load_trained(o, &tm, 1)) { trained_free(&tm); return 1; }
    sp_set_threads(o->threads);
    int *ids;
    long n;
    if (text_ids(&tm, "score", text, strlen(text), &ids, &n)) { trained_free(&tm); return 1; }
    if (!tm.lines && n < 2) { free(ids); trained_free(&tm); return fail("score: give at least 2 characters (the first is context)"); }
    if (tm.lines && n == 0) { free(ids); trained_free(&tm); return fail("score: empty text"); }
    /* lines: <start> c1..cn -> c1..cn <end>; stream: c1..c(n-1) -> c2..cn */
    long T = tm.lines ? n + 1 : n - 1;
    int *in = malloc(sizeof(int) * (size_t)T), *tg = malloc(sizeof(int) * (size_t)T);
    for (long i = 0; i < T; i++) {
        in[i] = tm.lines ? (i == 0 ? 0 : ids[i - 1]) : ids[i];
        tg[i] = tm.lines ? (i < n ? ids[i] : 0) : ids[i + 1];
    }
    sp_tape *t = sp_tape_new();
    sp_tensor *logits = cl_model_forward(&tm.m, t, in, (int)T, 1, NULL, 0, NULL);
    int rc = 0;
    if (!logits) rc = fail("%s", sp_tape_errmsg(t));
    else {
        printf("# spool-charlm score | checkpoint %s (%s mode)%s\n", o->checkpoint, tm.lines ? "lines" : "stream",
               tm.lines ? "" : "; the first character is context, not scored");
        printf("%4s  %-14s %10s %10s %12s\n", "pos", "char", "p", "-log p", "cumulative");
        double total = 0;
        for (long i = 0; i < T; i++) {
            const sp_real *r = sp_at(logits, (int)i, 0);
            double mx = r[0], z = 0;
            for (int v = 1; v < tm.vocab.V; v++) mx = r[v] > mx ? r[v] : mx;
            for (int v = 0; v < tm.vocab.V; v++) z += exp((double)r[v] - mx);
            double lp = (double)r[tg[i]] - mx - log(z);
            total += lp;
            char sh[48];
            printf("%4ld  %-14s %10.5f %10.4f %12.4f\n", i + 1, cl_cp_show(tm.vocab.cp[tg[i]], sh, sizeof sh), exp(lp), -lp, -total);
        }
        printf("log-probability %.4f nats (%.4f bits); %.4f nats/char over %ld predicted characters, perplexity %.3f\n",
               total, total / log(2.0), -total / (double)T, T, exp(-total / (double)T));
    }
    sp_tape_free(t);
    free(in);
    free(tg);
    free(ids);
    trained_free(&tm);
    return rc;
}

/* ----------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spool-charlm COMMAND [options]\n"
            "Character-level language models with spool: learn to spell names or write like\n"
            "Shakespeare, one character at a time, then sample new text.\n\n"
            "Commands:\n"
            "  train              train a model (writes --checkpoint, a CSV log and an SVG loss plot)\n"
            "  sample             generate text from a checkpoint\n"
            "  eval               held-out loss in nats/char, bits/char and perplexity\n"
            "  score \"TEXT\"       log-probability of TEXT with a per-character breakdown\n"
            "  plot LOG.csv OUT.svg  redraw the loss curves of a training log (needs gnuplot)\n\n"
            "Examples:\n"
            "  spool-charlm train --data names --steps 3000\n"
            "  spool-charlm sample --count 10 --temperature 0.8\n"
            "  spool-charlm train --data shakespeare --hidden 256 --layers 2 --dropout 0.2 --checkpoint sh.safetensors\n"
            "  spool-charlm sample --checkpoint sh.safetensors --prime 'ROMEO:' --max-len 400\n"
            "Ctrl-C during training saves a checkpoint; add --resume to continue.\n");
    cl_opts_help(f);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "plot")) { /* redraw the loss plot of a CSV log */
        if (argc != 4) return fail("usage: spool-charlm plot LOG.csv OUT.svg"), 2;
        return cl_plot(argv[2], argv[3], argv[2]) < 0;
    }
    int cmd = !strcmp(argv[1], "train") ? CL_TRAIN : !strcmp(argv[1], "sample") ? CL_SAMPLE
            : !strcmp(argv[1], "eval") ? CL_EVAL : !strcmp(argv[1], "score") ? CL_SCORE : 0;
    if (!cmd) return fail("unknown command '%s' (train, sample, eval, score; try --help)", argv[1]), 2;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    cl_opts o;
    char *pos[4];
    int npos;
    if (cl_opts_parse(&o, cmd, argc, argv, 2, pos, &npos)) return 2;
    if (cmd == CL_SCORE) {
        if (npos != 1) return fail("score takes one argument, the text to score (in quotes)"), 2;
        return cmd_score(&o, pos[0]);
    }
    if (npos) return fail("unexpected argument '%s' (try --help)", pos[0]), 2;
    if (cmd == CL_TRAIN) return cmd_train(&o);
    if (cmd == CL_SAMPLE) return cmd_sample(&o);
    return cmd_eval(&o);
}
