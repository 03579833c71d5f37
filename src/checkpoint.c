/* checkpoint: model <-> safetensors. Tensor names come from the model's
 * table; the config, step and (for resumable files) optimiser settings and
 * data cursor travel as string metadata, as the format requires. */
#include "checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generator.h"
#include "runspec.h"

#define META_MAX 48

typedef struct {
    st_meta items[META_MAX];
    char values[META_MAX][RUNSPEC_META_VALUE];
    size_t n;
} meta_list;

static void meta_add(meta_list *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void meta_add(meta_list *l, const char *key, const char *fmt, ...)
{
    GL_ASSERT(l->n < META_MAX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->values[l->n], sizeof l->values[l->n], fmt, ap);
    va_end(ap);
    l->items[l->n].key = key;
    l->items[l->n].value = l->values[l->n];
    l->n++;
}

static void fnv(uint64_t *h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *h ^= ((const unsigned char *)p)[i];
        *h *= 0x100000001b3ULL;
    }
}

/* The RUNSPEC_HASH rows in the order the hash has always taken them (the
 * integers, then the floats): frozen, because a checkpoint stores the hash
 * and `resume` compares it. The table's order is the config JSON's and
 * differs (seed comes before experts there). A new row that changes the
 * network's shape gets RUNSPEC_HASH and is appended here (test_runspec
 * checks both); it changes every hash from then on. */
const char *const checkpoint_hash_rows[] = {
    "V", "T", "d", "layers", "heads", "mlp", "r", "batch", "experts", "router", "seed",
    "gate_temp", "moe_aux",
};
const size_t checkpoint_hash_nrows = sizeof checkpoint_hash_rows / sizeof checkpoint_hash_rows[0];

void checkpoint_config_hash(const model_config *c, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < checkpoint_hash_nrows; i++) {
        const runspec_row *r = runspec_find(checkpoint_hash_rows[i]);
        GL_ASSERT(r && r->in == RUNSPEC_MODEL && (r->where & RUNSPEC_HASH));
        const char *p = (const char *)c + r->offset;
        /* a RUNSPEC_MOE row counts as 0 in a dense model (moe_aux keeps
         * its default there; router is only set with experts) */
        int off = (r->where & RUNSPEC_MOE) && !c->experts;
        uint8_t le[8];   /* little-endian, so the hash is the same on any host */
        size_t n = 8;
        uint64_t v = 0;
        if (r->type == RUNSPEC_FLOAT) {
            float f = off ? 0.0f : *(const float *)p;
            uint32_t bits;
            memcpy(&bits, &f, sizeof bits);
            v = bits;
            n = 4;
        } else if (off) {
            v = 0;
        } else if (r->type == RUNSPEC_SIZE) {
            v = *(const size_t *)p;
        } else if (r->type == RUNSPEC_U64) {
            v = *(const uint64_t *)p;
        } else {   /* RUNSPEC_BOOL, RUNSPEC_ROUTER: int */
            v = (uint64_t)*(const int *)p;
        }
        for (size_t b = 0; b < n; b++)
            le[b] = (uint8_t)(v >> (8 * b));
        fnv(&h, le, n);
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

int checkpoint_save(const char *path, const model *m, const optim *o, size_t step,
                    const char *data_desc, const data_cursor *cursor, size_t commands_done,
                    const checkpoint_owner *owner, gl_error *err)
{
    const model_config *c = &m->cfg;
    meta_list meta = {.n = 0};
    meta_add(&meta, "format", "%s", CHECKPOINT_FORMAT);
    char hash[17];
    checkpoint_config_hash(c, hash);
    meta_add(&meta, "config_hash", "%s", hash);
    if (owner) {
        meta_add(&meta, "db_id", "%s", owner->db_id);
        meta_add(&meta, "session", "%" PRId64, owner->session);
        if (owner->run > 0)
            meta_add(&meta, "run", "%" PRId64, owner->run);
        meta_add(&meta, "arm", "%u", owner->arm);
    }
    /* the model's rows of the run-spec table, and the optimiser's when the
     * file resumes */
    train_config tc = {.model = *c};
    if (o && cursor)
        tc.optim = o->cfg;
    runspec_meta_write(&tc, o && cursor, meta.items, meta.values, &meta.n, META_MAX);
    meta_add(&meta, "step", "%zu", step);
    meta_add(&meta, "data", "%s", data_desc ? data_desc : "");
    meta_add(&meta, "resumable", "%d", o && cursor ? 1 : 0);
    if (o && cursor) {
        meta_add(&meta, "adam_t", "%zu", o->t);
        meta_add(&meta, "data_rng", "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
                 cursor->rng.s[0], cursor->rng.s[1], cursor->rng.s[2], cursor->rng.s[3]);
        meta_add(&meta, "data_position", "%" PRIu64, cursor->position);
        meta_add(&meta, "data_batches", "%" PRIu64, cursor->batches);
        meta_add(&meta, "commands_done", "%zu", commands_done);
    }

    size_t per = o && cursor ? 3 : 1;
    size_t n = m->ntensors * per;
    st_tensor_out *t = xcalloc(n, sizeof *t);
    char (*names)[MODEL_MAX_NAME + 8] = xcalloc(n, sizeof *names);
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *mt = &m->tensors[i];
        for (size_t k = 0; k < per; k++) {
            st_tensor_out *x = &t[k * m->ntensors + i];
            char *nm = names[k * m->ntensors + i];
            static const char *prefix[] = {"", "adam.m.", "adam.v."};
            snprintf(nm, MODEL_MAX_NAME + 8, "%s%s", prefix[k], mt->name);
            const float *base = k == 0 ? m->params : k == 1 ? o->m : o->v;
            x->name = nm;
            x->data = base + mt->offset;
            x->ndim = mt->ndim;
            x->shape[0] = mt->shape[0];
            x->shape[1] = mt->shape[1];
        }
    }
    int rc = st_write(path, t, n, meta.items, meta.n, err);
    free(t);
    free(names);
    return rc;
}

static int meta_size(const st_file *f, const char *path, const char *key, size_t *out,
                     gl_error *err)
{
    const char *v = st_meta_get(f, key);
    if (!v)
        return gl_fail(err, "%s: metadata has no \"%s\"", path, key);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        return gl_fail(err, "%s: metadata \"%s\" = \"%s\" is not a count", path, key, v);
    *out = (size_t)x;
    return 0;
}

int checkpoint_info_read(const st_file *f, const char *path, checkpoint_info *info,
                         gl_error *err)
{
    memset(info, 0, sizeof *info);
    const char *fmt = st_meta_get(f, "format");
    if (!fmt || strcmp(fmt, CHECKPOINT_FORMAT) != 0)
        return gl_fail(err, "%s: not a gatelab checkpoint (metadata format is %s%s%s)", path,
                       fmt ? "\"" : "", fmt ? fmt : "missing", fmt ? "\"" : "");
    /* the rows of the run-spec table: the model's, then (resumable files)
     * the optimiser's; what older files lack keeps its default */
    train_config tc;
    runspec_defaults("tiny", &tc);
    float moe_aux = tc.model.moe_aux;        /* its row's default: absent when dense */
    memset(&tc.model, 0, sizeof tc.model);   /* no preset: "" */
    tc.model.moe_aux = moe_aux;
    const char *res = st_meta_get(f, "resumable");
    info->resumable = res && strcmp(res, "1") == 0;
    if (runspec_meta_read(f, path, info->resumable, &tc, err) ||
        meta_size(f, path, "step", &info->step, err))
        return -1;
    info->model = tc.model;
    model_config *c = &info->model;
    gl_error why;
    if (model_config_check(c, &why))
        return gl_fail(err, "%s: config in metadata is invalid: %s", path, why.msg);
    const char *hash = st_meta_get(f, "config_hash");
    snprintf(info->config_hash, sizeof info->config_hash, "%s", hash ? hash : "");
    if (st_meta_get(f, "session")) {
        checkpoint_owner *w = &info->owner;
        const char *db = st_meta_get(f, "db_id");
        size_t session = 0, run = 0, arm = 0;
        if (!db || strlen(db) >= sizeof w->db_id)
            return gl_fail(err, "%s: metadata db_id is missing or malformed", path);
        if (meta_size(f, path, "session", &session, err) ||
            meta_size(f, path, "arm", &arm, err) ||
            (st_meta_get(f, "run") && meta_size(f, path, "run", &run, err)))
            return -1;
        snprintf(w->db_id, sizeof w->db_id, "%s", db);
        w->session = (int64_t)session;
        w->run = (int64_t)run;
        w->arm = (uint32_t)arm;
        info->has_owner = 1;
    }
    const char *data = st_meta_get(f, "data");
    snprintf(info->data, sizeof info->data, "%s", data ? data : "");
    if (!info->resumable)
        return 0;
    info->optim = tc.optim;
    const optim_config *oc = &info->optim;
    size_t pos = 0, batches = 0;
    if (meta_size(f, path, "adam_t", &info->adam_t, err) ||
        meta_size(f, path, "data_position", &pos, err) ||
        meta_size(f, path, "data_batches", &batches, err))
        return -1;
    /* absent in files written before scripted commands existed */
    if (st_meta_get(f, "commands_done") &&
        meta_size(f, path, "commands_done", &info->commands_done, err))
        return -1;
    /* a resumable file's counters must agree with each other: a step past
     * the schedule or a cursor past any document is a corrupt or edited file */
    if (info->step > oc->total_steps)
        return gl_fail(err, "%s: metadata step %zu is beyond total_steps %zu", path, info->step,
                       oc->total_steps);
    if (info->adam_t > info->step)
        return gl_fail(err, "%s: metadata adam_t %zu is beyond step %zu", path, info->adam_t,
                       info->step);
    if (pos > GEN_DOC_MAX)
        return gl_fail(err, "%s: metadata data_position %zu is beyond the data (at most %d)",
                       path, pos, GEN_DOC_MAX);
    info->cursor.position = pos;
    info->cursor.batches = batches;
    const char *rng = st_meta_get(f, "data_rng");
    if (!rng || strlen(rng) != 64)
        return gl_fail(err, "%s: metadata data_rng is missing or malformed", path);
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, rng + 16 * i, 16);
        part[16] = 0;
        char *end;
        info->cursor.rng.s[i] = strtoull(part, &end, 16);
        if (*end)
            return gl_fail(err, "%s: metadata data_rng is not hexadecimal", path);
    }
    return 0;
}

static int copy_tensor(const st_file *f, const char *path, const char *name,
                       const model_tensor *mt, float *dst, gl_error *err)
{
    const st_tensor_in *t = st_find(f, name);
    if (!t)
        return gl_fail(err, "%s: tensor %s is missing", path, name);
    int same = t->ndim == mt->ndim && t->shape[0] == mt->shape[0] &&
               (mt->ndim == 1 || t->shape[1] == mt->shape[1]);
    if (!same)
        return gl_fail(err, "%s: tensor %s has shape [%zu%s%zu], expected [%zu%s%zu]", path,
                       name, t->shape[0], t->ndim > 1 ? "," : "", t->ndim > 1 ? t->shape[1] : 0,
                       mt->shape[0], mt->ndim > 1 ? "," : "", mt->ndim > 1 ? mt->shape[1] : 0);
    memcpy(dst, t->data, mt->numel * sizeof(float));
    return 0;
}

int checkpoint_load_weights(const st_file *f, const char *path, model *m, gl_error *err)
{
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *mt = &m->tensors[i];
        if (copy_tensor(f, path, mt->name, mt, m->params + mt->offset, err))
            return -1;
    }
    return 0;
}

int checkpoint_load_model(const char *path, int mode, size_t threads, model *m,
                          checkpoint_info *info, gl_error *err)
{
    st_file f;
    if (st_read(path, &f, err))
        return -1;
    int rc = checkpoint_info_read(&f, path, info, err);
    if (!rc && mode >= 0)
        info->model.mode = (gate_mode)mode;
    if (!rc)
        rc = model_init(m, &info->model, threads, err);
    if (!rc && checkpoint_load_weights(&f, path, m, err)) {
        model_free(m);
        rc = -1;
    }
    st_free(&f);
    return rc;
}

int checkpoint_load_optim(const st_file *f, const char *path, const model *m, optim *o,
                          gl_error *err)
{
    char name[MODEL_MAX_NAME + 8];
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *mt = &m->tensors[i];
        snprintf(name, sizeof name, "adam.m.%s", mt->name);
        if (copy_tensor(f, path, name, mt, o->m + mt->offset, err))
            return -1;
        snprintf(name, sizeof name, "adam.v.%s", mt->name);
        if (copy_tensor(f, path, name, mt, o->v + mt->offset, err))
            return -1;
    }
    return 0;
}

int checkpoint_check_owner(const checkpoint_info *info, const char *path,
                           const checkpoint_owner *want, const model_config *want_cfg,
                           gl_error *err)
{
    const checkpoint_owner *o = &info->owner;
    if (info->has_owner && strcmp(o->db_id, want->db_id) != 0)
        return gl_fail(err, "%s belongs to another database (db_id %s, this one is %s)", path,
                       o->db_id, want->db_id);
    if (info->has_owner && (o->session != want->session || o->arm != want->arm ||
                            (o->run > 0 && want->run > 0 && o->run != want->run)))
        return gl_fail(err, "%s belongs to run %" PRId64 " (session %" PRId64 ", arm %u), not "
                            "run %" PRId64 " (session %" PRId64 ", arm %u)",
                       path, o->run, o->session, o->arm, want->run, want->session, want->arm);
    char hash[17];
    checkpoint_config_hash(want_cfg, hash);
    if (info->config_hash[0] && strcmp(info->config_hash, hash) != 0)
        return gl_fail(err, "%s belongs to a model of another configuration (config_hash %s, "
                            "the run's is %s)", path, info->config_hash, hash);
    return 0;
}

int checkpoint_is_gatelab(const char *path)
{
    st_file f;
    if (st_read(path, &f, NULL))
        return 0;
    const char *fmt = st_meta_get(&f, "format");
    int yes = fmt && strcmp(fmt, CHECKPOINT_FORMAT) == 0;
    st_free(&f);
    return yes;
}
