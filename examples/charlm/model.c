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
    if (cfg->zoneout_c > 0 && CELLS[ci].kind != SP_CELL_LSTM) {
        snprintf(err, errn, "--zoneout-c applies to LSTM cells only (the %s cell has no cell state)", cfg->cell);
        return -1;
    }
    sp_cell_opts co = {0};
    co.lstm_flags = CELLS[ci].lstm_flags;
    co.orthogonal = cfg->orthogonal;
    co.forget_bias_one = cfg->forget_bias_one && CELLS[ci].kind == SP_CELL_LSTM;
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
    ro.between_layers_dropout = m->cfg.dropout;
    ro.rng = rng;
    ro.train = train;
    ro.noise = (sp_cell_noise){m->cfg.zoneout_h, m->cfg.zoneout_c, m->cfg.recurrent_dropout, m->cfg.candidate_dropout,
                               rng, train};
    sp_rnn_out out;
    if (sp_rnn_run(t, &m->rnn, x, T, B, &ro, &out)) return NULL;
    if (carry && sp_carry_save(carry, &out.final)) {
        sp_tape_fail(t, SP_ERR_SHAPE, "charlm: %s", sp_last_error());
        return NULL;
    }
    sp_tensor *h = sp_dropout(t, out.out, m->cfg.dropout, rng, train);
    sp_tape_scope(t, "head");
    sp_tensor *logits = sp_linear_forward(t, &m->head, h);
    sp_tape_scope(t, NULL);
    return logits;
}
