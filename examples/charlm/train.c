/* SPDX-License-Identifier: MIT */
/* train.c - the training loop of spool-charlm (batches, forward, backward, clipping, optimizer
 * step, schedule, periodic held-out loss, log, checkpoints, Ctrl-C) and the held-out evaluation
 * that train and eval share. */
#include "charlm.h"
#include "../common/atomic.h"
#include "../common/text.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERRN 1024
static char err[ERRN];

/* ----------------------------------------------------------- evaluation */

/* Mean loss (nats per predicted character) of d. lines: batches of up to `batch` examples.
 * stream: `batch` tracks read in order in chunks of seq characters, state carried (or reset at
 * every chunk); the last partial chunk of each track is scored too. */
double cl_evaluate(cl_model *m, sp_tape *t, const cl_data *d, int batch, int seq, int reset, long *count)
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
            if (!loss) { cl_fail("eval: %s", sp_tape_errmsg(t)); sum = NAN; break; }
            sum += (double)loss->data[0] * (double)b.predicted;
            n += b.predicted;
        }
    } else {
        if (d->n / batch < 2) batch = 1;
        sp_carry carry = {0};
        if (sp_carry_init(&carry, &m->rnn, batch)) { cl_fail("%s", sp_last_error()); return NAN; }
        long L = d->n / batch;
        for (long pos = 0; pos < L - 1; pos += seq) {
            int T = (int)(L - 1 - pos < seq ? L - 1 - pos : seq);
            if (reset) sp_carry_reset(&carry);
            cl_batch_stream_at(&b, d, batch, T, pos);
            sp_tape_reset(t);
            sp_tensor *logits = cl_model_forward(m, t, b.in, T, batch, &carry, 0, NULL);
            sp_tensor *loss = sp_softmax_xent(t, logits, b.tgt, NULL);
            if (!loss) { cl_fail("eval: %s", sp_tape_errmsg(t)); sum = NAN; break; }
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

/* The running mean of the training loss continues from the log's last row, so the plot of a
 * resumed run has no jump (the mean is for display only; nothing else depends on it). */
static void resume_running_mean(const char *path, long step, double *ema, double *ema_w)
{
    ex_lines in;
    char *line, last[512] = "";
    if (ex_lines_open(&in, path, EX_LINE_MAX, err, ERRN)) return; /* no log: the mean starts afresh */
    int got;
    while ((got = ex_lines_next(&in, &line, NULL, err, ERRN)) > 0) snprintf(last, sizeof last, "%s", line);
    ex_lines_close(&in);
    if (got < 0) {
        fprintf(stderr, "spool-charlm: note: the running mean of the loss starts afresh: %s\n", err);
        return;
    }
    long s;
    double epoch, lr, loss, avg;
    if (sscanf(last, "%ld,%lf,%lf,%lf,%lf", &s, &epoch, &lr, &loss, &avg) == 5 && s == step) {
        *ema_w = 1 - pow(0.98, (double)step); /* the weight of a mean started at 0 after `step` updates */
        *ema = avg * *ema_w;
    }
}

/* Before a resumed run appends to its log: keep the header and the complete rows of steps up to
 * the checkpoint's, drop rows written after it (a run killed between checkpoints) and a torn
 * last line, so the log has every step once. Rewritten atomically. 0 or -1 (message printed). */
static int log_keep_until(const char *path, long step)
{
    size_t len;
    unsigned char *buf = cl_read_file(path, &len, err, ERRN);
    if (!buf) return access(path, F_OK) == 0 ? cl_fail("cannot resume the log: %s", err) : 0; /* no log yet: fine */
    size_t keep = 0;
    for (size_t i = 0, first = 1; i < len;) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        if (j == len) break; /* torn last line */
        char *end;
        long s = strtol((const char *)buf + i, &end, 10);
        if (!first && ((const unsigned char *)end == buf + i || s > step)) break;
        first = 0;
        keep = i = j + 1;
    }
    if (keep == len) {
        free(buf);
        return 0;
    }
    ex_atomic a;
    FILE *f = ex_atomic_open(&a, path, err, ERRN);
    int rc = !f || fwrite(buf, 1, keep, f) != keep || ex_atomic_commit(&a, err, ERRN);
    if (rc && f) ex_atomic_abort(&a);
    free(buf);
    return rc ? cl_fail("cannot resume the log: %s", err) : 0;
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

/* The options train needs before it loads anything: 0, or 1 with the message printed. Paths
 * are completed (log and plot named after the checkpoint), and the plot's file is tried at once
 * (created and removed) so that a bad --plot stops the run before training, not after it. */
static int train_check(cl_opts *o)
{
    sp_optim_kind ok;
    default_paths(o);
    if (parse_optimizer(o->optimizer, &ok)) return cl_fail("--optimizer must be sgd, rmsprop, adagrad, adam or adamw, not '%s'", o->optimizer);
    if (!cl_cell_known(o->cell)) return cl_fail("unknown --cell '%s' (one of: %s)", o->cell, cl_cell_list());
    if (o->seq < 1 || o->batch < 1 || o->batch > 1024) return cl_fail("--seq must be >= 1 and --batch in 1..1024");
    if (o->steps < 1 && o->epochs <= 0) return cl_fail("--steps must be >= 1 (or give --epochs > 0)");
    if (o->clip < 0 || o->lr < 0) return cl_fail("--clip and --lr must be >= 0");
    if (o->eval_every < 0 || o->checkpoint_every < 0) return cl_fail("--eval-every and --checkpoint-every must be >= 0");
    if (strcmp(o->lr_schedule, "constant") && strcmp(o->lr_schedule, "step") && strcmp(o->lr_schedule, "cosine"))
        return cl_fail("--lr-schedule must be constant, step or cosine, not '%s'", o->lr_schedule);
    ex_atomic a;
    if (cl_rank <= 0 && strcmp(o->plot, "none")) {
        if (!ex_atomic_open(&a, o->plot, err, ERRN)) return cl_fail("--plot: %s", err);
        ex_atomic_abort(&a);
    }
    return 0;
}

/* Set when a failure came from a check that fails alike on every rank (configuration, a
 * non-finite averaged gradient), so the ranks can leave together instead of aborting the job. */
static int failed_together;

static int train(cl_opts *o, sp_dist *dist);

/* Under mpirun (cl_dist_start joins only then): N ranks, each on --batch rows of every step, the
 * gradients averaged weighted by real characters (= one process on N x batch rows). Without a
 * launcher this is the single-process program as before. */
int cl_cmd_train(cl_opts *o)
{
    sp_dist *dist = NULL;
    if (cl_dist_start(&dist, o)) return 1;
    int rc = train(o, dist);
    /* A failure on some ranks only (a file, a broken group) would leave the others waiting:
     * end the job now; the message was printed above, the last checkpoint is intact. */
    if (rc == 1 && sp_dist_size(dist) > 1 && !failed_together) sp_dist_abort(dist, 1);
    sp_dist_leave(dist);
    return rc;
}

static int train(cl_opts *o, sp_dist *dist)
{
    const int N = sp_dist_size(dist), rank = sp_dist_rank(dist);
    cl_vocab ck_vocab = {0};
    int ck_lines = 0;
    long start_step = 0;
    char *carry_hex = NULL;
    if (o->segment < 0) return cl_fail("--segment must be >= 0 (0 = keep every activation), not %d", o->segment);
    if (o->resume && cl_read_checkpoint_header(o->checkpoint, o, 0, &ck_vocab, &ck_lines, &start_step, &carry_hex))
        return 1;
    /* from here on a failure frees what the checkpoint's header gave (the options it stores are
     * checked here too: an unknown stored cell used to leave both behind) */
    if (train_check(o)) {
        cl_vocab_free(&ck_vocab);
        free(carry_hex);
        return 1;
    }
    sp_optim_kind ok = SP_ADAM;
    parse_optimizer(o->optimizer, &ok); /* known: train_check */
    sp_sched_kind sk = !strcmp(o->lr_schedule, "constant") ? SP_SCHED_CONSTANT
                       : !strcmp(o->lr_schedule, "step") ? SP_SCHED_STEP : SP_SCHED_COSINE;

    sp_set_threads(o->threads);
    printf("# spool-charlm train | %s\n", sp_info());
    cl_opts_echo(o, CL_TRAIN, stdout);

    cl_corpus c;
    if (cl_load_corpus(o, &c, NULL, 1)) { cl_vocab_free(&ck_vocab); free(carry_hex); return 1; }
    if (o->resume) {
        int same = ck_vocab.V == c.vocab.V && ck_lines == c.lines &&
                   !memcmp(ck_vocab.cp, c.vocab.cp, sizeof(uint32_t) * (size_t)c.vocab.V);
        cl_vocab_free(&ck_vocab);
        if (!same) {
            cl_fail("%s was trained on data with another vocabulary or mode than %s", o->checkpoint, c.train_path);
            cl_corpus_free(&c);
            free(carry_hex);
            return 1;
        }
    }
    if (cl_dist_check(dist, o, &c)) {
        failed_together = 1;
        cl_corpus_free(&c);
        free(carry_hex);
        return 1;
    }
    /* One step reads N x batch rows: lines N x batch examples of the epoch's order, stream N x
     * batch tracks of which this rank reads its own batch. */
    const long GB = (long)N * o->batch;
    long per_epoch = c.lines ? (c.train.n_seq + GB - 1) / GB : cl_stream_chunks(&c.train, (int)GB, o->seq);
    if (per_epoch < 1) {
        cl_corpus_free(&c);
        free(carry_hex);
        return cl_fail("%s is too short for --batch %d x --seq %d", c.train_path, o->batch, o->seq);
    }
    long total = o->epochs > 0 ? (long)ceil(o->epochs * (double)per_epoch) : o->steps;
    printf("# data: %s (%s mode, %ld characters, %d %s), held out: %s (%ld characters)\n", c.train_path,
           c.lines ? "lines" : "stream", c.train.n, c.train.n_seq, c.lines ? "lines" : "stream", c.valid_path, c.valid.n);
    printf("# vocabulary: %d symbols%s; %ld steps (%.2f epochs of %ld steps)\n", c.vocab.V,
           c.lines ? " (incl. the start/end token)" : "", total, (double)total / (double)per_epoch, per_epoch);
    if (N > 1)
        printf("# %d ranks (MPI) of %d thread%s each, each on --batch %d of every step's %ld %s; log and checkpoints from rank 0\n",
               N, sp_get_threads(), sp_get_threads() == 1 ? "" : "s", o->batch, GB, c.lines ? "lines" : "tracks");

    sp_rng rng, drop_rng;
    sp_rng_seed(&rng, (uint64_t)o->seed);
    sp_rng_seed(&drop_rng, (uint64_t)o->seed ^ 0xD5A61266F0C9392Cull);
    /* Dropout differs by rank (else every rank drops the same units). Rank 0's generator runs
     * on as in one process (the checkpoint stores it); ranks > 0 seed theirs at every step from
     * (seed, rank, step), so a resumed run repeats an uninterrupted one exactly. */
    sp_params *ps = sp_params_new();
    cl_model m;
    cl_model_cfg mc = cl_model_cfg_of(o, c.vocab.V);
    if (!ps || cl_model_init(&m, &mc, ps, &rng, err, ERRN)) {
        sp_params_free(ps);
        cl_corpus_free(&c);
        free(carry_hex);
        return cl_fail("model: %s", err);
    }
    printf("# model: embed %d -> %d x %s(%d%s) -> linear %d; %zu parameters\n", mc.E, mc.L, mc.cell, mc.H,
           m.cfg.P ? ", proj" : "", c.vocab.V, ps->numel);
    sp_optim_config oc = sp_optim_defaults(ok);
    oc.lr = o->lr, oc.beta1 = o->beta1, oc.beta2 = o->beta2, oc.eps = o->eps, oc.momentum = o->momentum;
    if (ok != SP_ADAMW || cl_opts_given("weight-decay")) oc.weight_decay = o->weight_decay;
    sp_optim *opt = sp_optim_new(ps, &oc);
    sp_schedule sched = {.kind = sk, .base_lr = o->lr, .step_size = o->step_size, .gamma = o->gamma,
                         .warmup = o->warmup < total ? o->warmup : 0, .total = (int)total, .min_lr = o->min_lr};
    sp_carry carry = {0}, full = {0}; /* full: every rank's tracks, for rank 0's checkpoint */
    int rc = 0;
    if (!opt) rc = cl_fail("optimizer: %s", sp_last_error());
    else if (sp_schedule_lr(&sched, 0) < 0) rc = cl_fail("--lr-schedule: %s", sp_last_error());
    else if (!c.lines && sp_carry_init(&carry, &m.rnn, o->batch)) rc = cl_fail("%s", sp_last_error());
    else if (!c.lines && N > 1 && sp_carry_init(&full, &m.rnn, (int)GB)) rc = cl_fail("%s", sp_last_error());
    else if (o->init_from[0] && o->resume) rc = cl_fail("--init-from and --resume exclude each other (a resumed run has its weights)");
    else if (o->init_from[0]) { /* embedding, stack and head from an ONNX file (e.g. torch.onnx.export's) */
        sp_onnx_model om = {.embed = &m.emb, .rnn = &m.rnn, .head = &m.head};
        if (sp_onnx_load_weights(o->init_from, &om) != SP_OK) rc = cl_fail("--init-from: %s", sp_last_error());
        else printf("# weights from %s\n", o->init_from);
    }
    long step = 0;
    cl_pos pos = {.examples = 0, .next_chunk = 0, .per_epoch = per_epoch, .ranks = N};
    if (!rc && o->resume) {
        sp_ckpt_opts lo = {.rng = &drop_rng};
        /* where the data stands (older checkpoints have no charlm.examples: one process) */
        cl_pos was = {.examples = start_step * o->batch, .next_chunk = start_step % per_epoch, .per_epoch = per_epoch, .ranks = 1};
        cl_pos_read(o->checkpoint, &was);
        int same_tracks = was.ranks == N;
        if (sp_load(o->checkpoint, ps, opt, &lo) != SP_OK) rc = cl_fail("cannot resume from %s: %s", o->checkpoint, sp_last_error());
        else if (!c.lines && same_tracks && N == 1 && (!carry_hex || cl_carry_from_hex(&carry, carry_hex)))
            rc = cl_fail("%s: carried state missing or of another batch size", o->checkpoint);
        else if (!c.lines && same_tracks && N > 1) {
            if (!carry_hex || cl_carry_from_hex(&full, carry_hex))
                rc = cl_fail("%s: carried state missing or of another batch size", o->checkpoint);
            else cl_carry_scatter(&full, &carry, rank);
        }
        step = start_step;
        pos.examples = was.examples;
        /* stream mode with another number of ranks: other tracks, so the carried state starts
         * from zero and the run continues at the same fraction of the epoch */
        pos.next_chunk = same_tracks ? was.next_chunk
                                     : (long)((double)was.next_chunk / (double)(was.per_epoch > 0 ? was.per_epoch : 1) * (double)per_epoch) % per_epoch;
        if (!rc && !c.lines && !same_tracks)
            printf("# resumed with %d ranks, the checkpoint had %d: the carried state starts from zero, at chunk %ld of %ld\n",
                   N, was.ranks, pos.next_chunk, per_epoch);
        if (!rc && step >= total)
            rc = cl_fail("%s has already done %ld of %ld steps: give a larger --steps to train on", o->checkpoint, step, total);
        if (!rc) printf("# resumed from %s at step %ld\n", o->checkpoint, step);
    }
    free(carry_hex);
    /* every rank from rank 0's parameters (after a resume they are already equal: a check) */
    if (!rc && N > 1 && sp_dist_bcast_params(dist, ps, 0) != SP_OK) rc = cl_fail("%s", sp_last_error());
    FILE *logf = NULL;
    if (!rc && rank == 0 && o->resume && log_keep_until(o->log, start_step)) rc = 1;
    if (!rc && rank == 0) {
        char e[700];
        logf = ex_log_open(o->log, "step,epoch,lr,train_loss,train_loss_avg,grad_norm,valid_loss,tok_s,elapsed_s\n",
                           o->resume, e, sizeof e);
        if (!logf) rc = cl_fail("%s", e);
    }
    if (rc) {
        sp_carry_free(&full);
        sp_carry_free(&carry);
        sp_optim_free(opt);
        sp_params_free(ps);
        cl_corpus_free(&c);
        return rc;
    }
    printf("# seed %ld; log %s\n", o->seed, o->log);
    fflush(stdout);

    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);

    sp_tape *t = sp_tape_new(), *scratch = o->segment > 0 ? sp_tape_new() : NULL;
    cl_batch b = {0};
    order ord = {.perm = malloc(sizeof(int) * (size_t)c.train.n_seq), .n = c.train.n_seq, .epoch = -1,
                 .seed = (uint64_t)o->seed};
    int *idx = malloc(sizeof(int) * (size_t)o->batch);
    ex_progress pg;
    ex_progress_init(&pg, total, o->print_every, o->progress);
    pg.quiet = cl_rank > 0; /* under mpirun only rank 0 reports */
    double t0 = ex_now(), ema = 0, ema_w = 0, last_valid = NAN, tok_rate = 0;
    if (o->resume) resume_running_mean(o->log, start_step, &ema, &ema_w);
    long tokens = 0;
    int stopped = 0, intr_seen = 0;
    while (step < total) {
        double ts = ex_now();
        if (c.lines) { /* this rank's rows of the step's N x batch examples */
            for (int r = 0; r < o->batch; r++) idx[r] = order_get(&ord, pos.examples + (long)rank * o->batch + r);
            cl_batch_lines(&b, &c.train, idx, o->batch);
            pos.examples += GB;
        } else { /* tracks rank*batch .. of N*batch tracks of length L: a view of this rank's part */
            long chunk = pos.next_chunk, L = c.train.n / GB;
            pos.next_chunk = (chunk + 1) % per_epoch;
            if (chunk == 0) sp_carry_reset(&carry);
            cl_data part = c.train;
            part.ids += (long)rank * o->batch * L;
            part.n = (long)o->batch * L;
            cl_batch_stream(&b, &part, o->batch, o->seq, chunk);
        }
        if (rank > 0)
            sp_rng_seed(&drop_rng, ((uint64_t)o->seed ^ 0xD5A61266F0C9392Cull ^ (0x9E3779B97F4A7C15ull * (uint64_t)rank)) +
                                       0xBF58476D1CE4E5B9ull * (uint64_t)step);
        sp_tape_reset(t);
        sp_params_zero_grad(ps);
        sp_tensor *loss = cl_model_loss(&m, t, scratch, b.in, b.tgt, b.T, b.B, b.predicted, c.lines ? NULL : &carry, 1,
                                        &drop_rng, o->segment);
        if (!loss || sp_backward(t, loss) != SP_OK) { rc = cl_fail("training step %ld: %s", step + 1, sp_tape_errmsg(t)); break; }
        double lv = loss->data[0];
        long predicted = b.predicted;
        if (N > 1) { /* the step's loss over all ranks, Ctrl-C on any rank; then the mean gradient */
            double sums[3] = {lv * (double)b.predicted, (double)b.predicted, (double)interrupted};
            if (sp_dist_sum(dist, sums, 3) != SP_OK || sp_dist_allreduce_grads(dist, ps, (double)b.predicted, NULL) != SP_OK) {
                rc = cl_fail("step %ld: %s", step + 1, sp_last_error());
                break;
            }
            lv = sums[1] > 0 ? sums[0] / sums[1] : 0;
            predicted = (long)sums[1];
            intr_seen = sums[2] > 0; /* the same on every rank: they stop together */
        }
        if (step == start_step && o->dot[0] && rank == 0) {
            if (sp_tape_dot_file(t, o->dot, 1) != SP_OK) { rc = cl_fail("--dot: %s", sp_last_error()); break; }
            ex_progress_line(&pg, stderr, "# wrote the graph of step %ld (%d records) to %s", step + 1, sp_tape_count(t), o->dot);
        }
        double gnorm = 0, lr = sp_schedule_lr(&sched, step);
        sp_status cs = o->clip > 0 ? sp_clip_grad_norm(ps, o->clip, &gnorm) : sp_grad_norm(ps, &gnorm);
        if (cs != SP_OK || sp_optim_step(opt, lr) != SP_OK) {
            failed_together = 1; /* the gradients are the same on every rank, so is this */
            rc = cl_fail("step %ld: %s", step + 1, sp_last_error());
            break;
        }
        step++;
        tokens += predicted;
        ema = 0.98 * ema + 0.02 * lv;
        ema_w = 0.98 * ema_w + 0.02;
        double dt = ex_now() - ts;
        tok_rate = tok_rate == 0 ? (double)predicted / dt : 0.95 * tok_rate + 0.05 * (double)predicted / dt;
        int last = step == total, do_eval = (o->eval_every > 0 && step % o->eval_every == 0) || last;
        double vl = NAN;
        if (do_eval && rank == 0) { /* once, on rank 0; the others wait at the next step */
            vl = cl_evaluate(&m, t, &c.valid, c.lines ? 256 : o->batch, o->seq, 0, NULL);
            last_valid = vl;
            ex_progress_line(&pg, stderr, "step %ld: train loss %.4f (running mean %.4f), held-out loss %.4f nats/char (%.3f bits), %.0f s",
                             step, lv, ema / ema_w, vl, vl / log(2.0), ex_now() - t0);
        }
        /* every row flushed: after kill -9 the log has each step done, and resume trims to the checkpoint */
        if (logf && (fprintf(logf, "%ld,%.4f,%.6g,%.6f,%.6f,%.6f,%.6f,%.0f,%.2f\n", step, (double)step / (double)per_epoch, lr, lv,
                    ema / ema_w, gnorm, vl, tok_rate, ex_now() - t0) < 0 ||
                     fflush(logf) != 0)) {
            rc = cl_fail("cannot write log %s: %s", o->log, strerror(errno));
            break;
        }
        ex_progress_step(&pg, step, "loss %.4f  %.0f tok/s  lr %.3g", ema / ema_w, tok_rate, lr);
        int stop = (N > 1 ? intr_seen : interrupted) || (o->stop_after > 0 && step >= o->stop_after);
        if (last || stop || (o->checkpoint_every > 0 && step % o->checkpoint_every == 0)) {
            /* rank 0 writes (atomically); every rank hears whether that worked */
            const sp_carry *cc = c.lines ? NULL : &carry;
            if (cc && N > 1) {
                if (cl_carry_gather(dist, &carry, &full)) { rc = 1; break; }
                cc = &full;
            }
            double bad = rank == 0 && cl_save_checkpoint(o->checkpoint, ps, opt, o, &c, step, cc, &drop_rng, &pos);
            if (N > 1 && sp_dist_sum(dist, &bad, 1) != SP_OK) { rc = cl_fail("%s", sp_last_error()); break; }
            if (bad) {
                failed_together = 1;
                if (rank > 0) cl_fail("rank 0 could not write the checkpoint");
                rc = 1;
                break;
            }
            cl_dist_saved(o->checkpoint, step);
        }
        if (stop && !last) {
            ex_progress_line(&pg, stderr, "# %s at step %ld: checkpoint saved to %s; continue with the same command plus --resume",
                             (N > 1 ? intr_seen : interrupted) ? "interrupted" : "stopped", step, o->checkpoint);
            stopped = 1;
            break;
        }
    }
    ex_progress_done(&pg);
    double el = ex_now() - t0;
    if (logf && fclose(logf) != 0 && !rc) rc = cl_fail("cannot write log %s: %s", o->log, strerror(errno));
    if (!rc && !stopped) {
        char d[32];
        ex_fmt_duration(el, d, sizeof d);
        printf("# done: %ld steps in %s (%.1f s, %.0f characters/s); final held-out loss %.4f nats/char, %.4f bits/char, perplexity %.3f\n",
               step - start_step, d, el, (double)tokens / el, last_valid, last_valid / log(2.0), exp(last_valid));
        printf("# checkpoint %s, log %s\n", o->checkpoint, o->log);
        /* the plot is titled by the model and the data, not by a file name */
        char title[CL_STR + 96];
        const char *dn = strrchr(o->data, '/');
        snprintf(title, sizeof title, "char-LM: %dx%d %s, embedding %d, on %s", o->layers, o->hidden, o->cell, o->embed,
                 dn && dn[1] ? dn + 1 : o->data);
        int pr = rank == 0 && strcmp(o->plot, "none") ? cl_plot(o->log, o->plot, title) : 1; /* 1: none, or no gnuplot */
        if (pr == 0) printf("# loss plot %s\n", o->plot);
        if (pr < 0) rc = 1; /* the message is printed; the checkpoint and the log are written */
    }
    free(idx);
    free(ord.perm);
    cl_batch_free(&b);
    sp_tape_free(t);
    sp_carry_free(&full);
    sp_tape_free(scratch);
    sp_carry_free(&carry);
    sp_optim_free(opt);
    sp_params_free(ps);
    cl_corpus_free(&c);
    return rc ? rc : (stopped && interrupted ? 130 : 0);
}

