/* SPDX-License-Identifier: MIT */
/* model.c - the character model of spool-charlm: embedding -> a stack of recurrent layers from
 * spool's layers API -> dropout -> linear head over the vocabulary. The model is built only from
 * library layers, so this file is also the shortest complete example of using them. */
#include "charlm.h"

#include <string.h>

static const struct {
    const char *name;
    sp_cell_kind kind;
    int lstm_flags, proj;
} CELLS[] = {
    {"rnn", SP_CELL_RNN_TANH, 0, 0},
    {"rnn-relu", SP_CELL_RNN_RELU, 0, 0},
    {"gru", SP_CELL_GRU_RESET_AFTER_MATMUL, 0, 0},
    {"gru-reset-before", SP_CELL_GRU_RESET_BEFORE_MATMUL, 0, 0},
    {"gru-update-only", SP_CELL_GRU_UPDATE_ONLY, 0, 0},
    {"lstm", SP_CELL_LSTM, 0, 0},
    {"lstm-peephole", SP_CELL_LSTM, SP_LSTM_PEEPHOLE, 0},
    {"lstm-coupled", SP_CELL_LSTM, SP_LSTM_COUPLED, 0},
    {"lstmp", SP_CELL_LSTM, 0, 1},
    {"ln-lstm", SP_CELL_LN_LSTM, 0, 0},
    {"ln-gru", SP_CELL_LN_GRU, 0, 0},
    {"mingru", SP_CELL_MINGRU, 0, 0},
    {"minlstm", SP_CELL_MINLSTM, 0, 0},
};
#define NCELLS ((int)(sizeof CELLS / sizeof CELLS[0]))

static int cell_index(const char *name)
{
    for (int i = 0; i < NCELLS; i++)
        if (!strcmp(CELLS[i].name, name)) return i;
    return -1;
}

int cl_cell_known(const char *name) { return cell_index(name) >= 0; }

const char *cl_cell_list(void)
{
    static char buf[256];
    if (!buf[0])
        for (int i = 0; i < NCELLS; i++) {
            strcat(buf, i ? " | " : "");
            strcat(buf, CELLS[i].name);
        }
    return buf;
}

int cl_model_init(cl_model *m, const cl_model_cfg *cfg, sp_params *ps, sp_rng *rng, char *err, size_t errn)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int ci = cell_index(cfg->cell);
    if (ci < 0) {
        snprintf(err, errn, "unknown cell '%s' (one of: %s)", cfg->cell, cl_cell_list());
        return -1;
    }
    if (cfg->V < 2 || cfg->E < 1 || cfg->H < 1 || cfg->L < 1 || cfg->L > SP_RNN_MAX_LAYERS ||
        !(cfg->dropout >= 0 && cfg->dropout < 1)) {
        snprintf(err, errn, "bad model size: vocab %d, --embed %d, --hidden %d, --layers %d (1..%d), --dropout %g ([0, 1))",
                 cfg->V, cfg->E, cfg->H, cfg->L, SP_RNN_MAX_LAYERS, cfg->dropout);
        return -1;
    }
    double rates[4] = {cfg->zoneout_h, cfg->zoneout_c, cfg->recurrent_dropout, cfg->candidate_dropout};
    static const char *rate_name[4] = {"zoneout-h", "zoneout-c", "recurrent-dropout", "candidate-dropout"};
    for (int k = 0; k < 4; k++)
        if (!(rates[k] >= 0 && rates[k] < 1)) {
            snprintf(err, errn, "--%s %g must be in [0, 1)", rate_name[k], rates[k]);
            return -1;
        }
    if (cfg->zoneout_c > 0 && CELLS[ci].kind != SP_CELL_LSTM && CELLS[ci].kind != SP_CELL_LN_LSTM) {
        snprintf(err, errn, "--zoneout-c applies to LSTM cells only (the %s cell has no cell state)", cfg->cell);
        return -1;
    }
    sp_cell_opts co = {0};
    co.lstm_flags = CELLS[ci].lstm_flags;
    co.orthogonal = cfg->orthogonal;
    co.forget_bias_one = cfg->forget_bias_one && (CELLS[ci].kind == SP_CELL_LSTM || CELLS[ci].kind == SP_CELL_LN_LSTM);
    if (CELLS[ci].proj) {
        co.proj_size = cfg->P > 0 ? cfg->P : cfg->H / 2;
        m->cfg.P = co.proj_size;
    } else if (cfg->P > 0) {
        snprintf(err, errn, "--proj applies to --cell lstmp only");
        return -1;
    }
    if (sp_embed_init(&m->emb, ps, "embed", cfg->V, cfg->E, rng) ||
        sp_rnn_init(&m->rnn, ps, "rnn", CELLS[ci].kind, cfg->E, cfg->H, cfg->L, 0, &co, rng) ||
        sp_linear_init(&m->head, ps, "head", sp_rnn_out_size(&m->rnn), cfg->V, 1, rng)) {
        snprintf(err, errn, "%s", sp_last_error());
        return -1;
    }
    return 0;
}

/* --dropout acts between the layers and on the stack's output; step0 is the first step of a piece
 * of a longer chunk (segments), so each piece draws the masks of the whole chunk's run */
static void noise_of(const cl_model *m, sp_rnn_opts *ro, int train, sp_rng *rng, int step0)
{
    ro->between_layers_dropout = m->cfg.dropout;
    ro->output_dropout = m->cfg.dropout;
    ro->rng = rng;
    ro->train = train;
    ro->noise = (sp_cell_noise){m->cfg.zoneout_h, m->cfg.zoneout_c, m->cfg.recurrent_dropout, m->cfg.candidate_dropout,
                                rng, train, step0};
}

sp_tensor *cl_model_forward(cl_model *m, sp_tape *t, const int *in, int T, int B, sp_carry *carry,
                            int train, sp_rng *rng)
{
    sp_tape_scope(t, "embed");
    sp_tensor *x = sp_embed_forward(t, &m->emb, in, T * B);
    sp_tape_scope(t, NULL);
    sp_rnn_state init;
    sp_rnn_opts ro = {0};
    if (carry) {
        if (sp_carry_load(t, carry, B, &init)) return NULL;
        ro.init = &init;
    }
    noise_of(m, &ro, train, rng, 0);
    sp_rnn_out out;
    if (sp_rnn_run(t, &m->rnn, x, T, B, &ro, &out)) return NULL;
    if (carry && sp_carry_save(carry, &out.final)) {
        sp_tape_fail(t, SP_ERR_SHAPE, "charlm: %s", sp_last_error());
        return NULL;
    }
    sp_tape_scope(t, "head");
    sp_tensor *logits = sp_linear_forward(t, &m->head, out.out);
    sp_tape_scope(t, NULL);
    return logits;
}

/* ------------------------------------------------------------ segments */

/* One piece of a long chunk for sp_segment: steps [t0, t0 + K) from the states in in[], the
 * head and its share of the batch's mean loss; outputs the loss, then every layer's states. */
typedef struct {
    cl_model *m;
    const int *in, *tgt;
    int t0, K, B;
    long predicted; /* real targets of the whole batch */
    int train;
    sp_rng *rng;
} seg_piece;

static sp_status seg_forward(sp_tape *t, void *user, sp_tensor *const *in, sp_tensor **out)
{
    seg_piece *p = user;
    const sp_rnn *r = &p->m->rnn;
    sp_tensor *x = sp_embed_forward(t, &p->m->emb, p->in + (size_t)p->t0 * p->B, p->K * p->B);
    sp_rnn_state init = {0};
    int n = 0;
    for (int l = 0; l < r->num_layers; l++)
        for (int k = 0; k < r->cell[l][0].n_state; k++) init.s[l][0][k] = in[n++];
    sp_rnn_opts ro = {0};
    ro.init = &init;
    noise_of(p->m, &ro, p->train, p->rng, p->t0);
    sp_rnn_out o;
    if (sp_rnn_run(t, r, x, p->K, p->B, &ro, &o) != SP_OK) return sp_tape_status(t);
    sp_tensor *logits = sp_linear_forward(t, &p->m->head, o.out);
    const int *tg = p->tgt + (size_t)p->t0 * p->B;
    long real = 0;
    for (int i = 0; i < p->K * p->B; i++) real += tg[i] >= 0;
    /* the batch's loss is the mean over all its real targets: this piece's mean times its share */
    out[0] = sp_scale(t, sp_softmax_xent(t, logits, tg, NULL), p->predicted ? (double)real / (double)p->predicted : 0);
    n = 1;
    for (int l = 0; l < r->num_layers; l++)
        for (int k = 0; k < r->cell[l][0].n_state; k++) out[n++] = o.final.s[l][0][k];
    return sp_tape_status(t);
}

sp_tensor *cl_model_loss(cl_model *m, sp_tape *t, sp_tape *scratch, const int *in, const int *tgt, int T, int B,
                         long predicted, sp_carry *carry, int train, sp_rng *rng, int segment)
{
    if (segment <= 0 || segment >= T || !scratch)
        return sp_softmax_xent(t, cl_model_forward(m, t, in, T, B, carry, train, rng), tgt, NULL);
    const sp_rnn *r = &m->rnn;
    sp_tensor *st[2 * SP_RNN_MAX_LAYERS];
    int ns = 0;
    sp_rnn_state init;
    if (carry && sp_carry_load(t, carry, B, &init)) return NULL;
    for (int l = 0; l < r->num_layers; l++)
        for (int k = 0; k < r->cell[l][0].n_state; k++, ns++)
            st[ns] = carry ? init.s[l][0][k] : sp_const(t, B, r->cell[l][0].state_size[k]);
    int pieces = (T + segment - 1) / segment;
    seg_piece *pc = sp_tape_alloc(t, (size_t)pieces * sizeof *pc);
    if (!pc) return NULL;
    sp_tensor *loss = NULL;
    sp_rng start = {{0, 0}};
    if (rng) start = *rng;
    for (int i = 0; i < pieces; i++) {
        int t0 = i * segment, K = T - t0 < segment ? T - t0 : segment;
        pc[i] = (seg_piece){m, in, tgt, t0, K, B, predicted, train, rng};
        if (rng) *rng = start; /* every piece keys its masks as the whole chunk's run does */
        sp_tensor *out[1 + 2 * SP_RNN_MAX_LAYERS];
        if (sp_segment(t, scratch, seg_forward, &pc[i], rng, ns, st, ns + 1, out) != SP_OK) return NULL;
        for (int k = 0; k < ns; k++) st[k] = out[1 + k];
        loss = loss ? sp_add(t, loss, out[0]) : out[0];
    }
    if (carry) {
        sp_rnn_state fin = {0};
        int n = 0;
        for (int l = 0; l < r->num_layers; l++)
            for (int k = 0; k < r->cell[l][0].n_state; k++) fin.s[l][0][k] = st[n++];
        if (sp_carry_save(carry, &fin)) {
            sp_tape_fail(t, SP_ERR_SHAPE, "charlm: %s", sp_last_error());
            return NULL;
        }
    }
    return loss;
}

/* ------------------------------------------------------------ streaming */

/* The stream reads characters through its table: layer 0's input projection of every embedding
 * row, made once (sp_stream_set_table), so a step multiplies by W_hh and the head only. */
sp_stream *cl_model_stream_new(const cl_model *m)
{
    sp_cell_noise nz = {m->cfg.zoneout_h, m->cfg.zoneout_c, 0, 0, NULL, 0, 0};
    sp_stream *s = sp_stream_new(&m->rnn, 1, &nz);
    if (s && sp_stream_set_table(s, m->emb.weight) != SP_OK) {
        sp_stream_free(s);
        return NULL;
    }
    return s;
}

const sp_real *cl_model_stream_step(cl_model *m, sp_stream *s, int id, char *err, size_t errn)
{
    sp_tape *t = sp_stream_begin(s);
    sp_tensor *h = sp_stream_step_ids(s, &id);
    sp_tensor *logits = h ? sp_linear_forward(t, &m->head, h) : NULL;
    if (!logits) snprintf(err, errn, "%s", sp_tape_errmsg(t));
    return logits ? logits->data : NULL;
}
