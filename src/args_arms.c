/* args_arms: the --arms words, the --at scripts' arm selectors, and the
 * --name, --note and --tag labels of a session (moved here from live.c: they
 * are argument checks, not the session's). */
#include "args_arms.h"

#include <stdio.h>
#include <string.h>

#include "args.h"
#include "command.h"
#include "live.h"

static const char *const ffn_suffix[] = {"", "+moe", "+moe-random"};

int args_parse_arm(const char *word, gate_mode *mode, live_ffn *ffn)
{
    char head[32];
    const char *plus = strchr(word, '+');
    size_t len = plus ? (size_t)(plus - word) : strlen(word);
    if (len >= sizeof head)
        return -1;
    memcpy(head, word, len);
    head[len] = '\0';
    if (gate_mode_parse(head, mode) || *mode == GATE_DISTILLED)
        return -1;
    *ffn = LIVE_FFN_DENSE;
    if (!plus)
        return 0;
    for (int f = LIVE_FFN_MOE; f <= LIVE_FFN_MOE_RANDOM; f++)
        if (strcmp(plus, ffn_suffix[f]) == 0) {
            *ffn = (live_ffn)f;
            return 0;
        }
    return -2;
}

int args_check_label(const char *what, const char *text, size_t max, gl_error *e)
{
    if (!text || !*text)
        return gl_fail(e, "%s: missing value", what);
    if (strlen(text) > max)
        return gl_fail(e, "%s %.40s...: longer than %zu bytes", what, text, max);
    if (!args_is_utf8(text))
        return gl_fail(e, "%s: not valid UTF-8", what);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return gl_fail(e, "%s %.40s: control characters are not allowed", what, text);
    return 0;
}

int args_label_option(const char *flag, const char *value, const char **name,
                      const char **note, live_tag tags[LIVE_MAX_TAGS], size_t *ntags,
                      gl_error *e)
{
    if (strcmp(flag, "--name") == 0 || strcmp(flag, "--note") == 0) {
        int is_name = flag[3] == 'a';
        if (args_check_label(flag, value, is_name ? 63 : 1000, e))
            return -1;
        /* ls and rm take --session ID or NAME: a name must not read as an id */
        if (is_name && value[strspn(value, "0123456789")] == '\0')
            return gl_fail(e, "--name %s: a name cannot be a number (ls and rm --session "
                              "take session ids too)", value);
        *(is_name ? name : note) = value;
        return 1;
    }
    if (strcmp(flag, "--tag") != 0)
        return 0;
    if (*ntags == LIVE_MAX_TAGS)
        return gl_fail(e, "--tag: at most %d tags", LIVE_MAX_TAGS);
    if (args_parse_tag(value, &tags[*ntags], e))
        return -1;
    (*ntags)++;
    return 1;
}

int args_parse_tag(const char *word, live_tag *out, gl_error *e)
{
    const char *eq = word ? strchr(word, '=') : NULL;
    if (!word || !*word)
        return gl_fail(e, "--tag: missing value (KEY=VALUE)");
    if (!eq || eq == word)
        return gl_fail(e, "--tag %.60s: expected KEY=VALUE (a non-empty key, '=', a value)",
                       word);
    size_t klen = (size_t)(eq - word);
    if (klen >= sizeof out->key || strlen(eq + 1) >= sizeof out->value)
        return gl_fail(e, "--tag %.60s: key at most %zu bytes, value at most %zu", word,
                       sizeof out->key - 1, sizeof out->value - 1);
    if (!args_is_utf8(word))
        return gl_fail(e, "--tag: not valid UTF-8");
    for (const unsigned char *c = (const unsigned char *)word; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return gl_fail(e, "--tag %.60s: control characters are not allowed", word);
    memcpy(out->key, word, klen);
    out->key[klen] = '\0';
    snprintf(out->value, sizeof out->value, "%s", eq + 1);
    return 0;
}

int args_parse_arms(const char *v, gate_mode *modes, live_ffn *ffn, size_t *narms, gl_error *e)
{
    char buf[512];
    if (!v || !*v)
        return gl_fail(e, "--arms: missing value");
    if (strlen(v) >= sizeof buf)
        return gl_fail(e, "--arms: too long");
    strcpy(buf, v);
    *narms = 0;
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (*narms == LIVE_MAX_ARMS)
            return gl_fail(e, "--arms %s: at most %d arms", v, LIVE_MAX_ARMS);
        int bad = args_parse_arm(w, &modes[*narms], &ffn[*narms]);
        if (bad == -2)
            return gl_fail(e, "--arms %s: unknown FFN '%s' in arm '%s' (+moe or +moe-random)", v,
                           strchr(w, '+'), w);
        if (bad)
            return gl_fail(e, "--arms %s: unknown gate mode in arm '%s' (dense, soft, random, "
                              "sigmoid, topk, topk-random, stochastic, oracle; +moe or "
                              "+moe-random may follow)", v, w);
        (*narms)++;
    }
    if (!*narms || v[strlen(v) - 1] == ',' || v[0] == ',' || strstr(v, ",,"))
        return gl_fail(e, "--arms %s: empty arm in the list", v);
    return 0;
}

void args_arm_spec(const model_config *m, char *buf, size_t n)
{
    live_ffn f = !m->experts ? LIVE_FFN_DENSE
                 : m->router_frozen ? LIVE_FFN_MOE_RANDOM : LIVE_FFN_MOE;
    snprintf(buf, n, "%s%s", gate_mode_name(m->mode), ffn_suffix[f]);
}

void args_arm_name(const live_config *cfg, size_t i, char *buf, size_t n)
{
    if (cfg->resume_name) {
        snprintf(buf, n, "%s", cfg->resume_name);
        return;
    }
    /* the --arms word, numbered when the same word appears twice */
    size_t same = 0;
    for (size_t j = 0; j < i; j++)
        same += cfg->modes[j] == cfg->modes[i] && cfg->ffn[j] == cfg->ffn[i];
    const char *mode = gate_mode_name(cfg->modes[i]), *ffn = ffn_suffix[cfg->ffn[i]];
    if (same)
        snprintf(buf, n, "%s%s%zu", mode, ffn, same + 1);
    else
        snprintf(buf, n, "%s%s", mode, ffn);
}

int args_check_script(const live_config *cfg, gl_error *e)
{
    for (size_t i = 0; i < cfg->nscript; i++) {
        const scripted_command *s = &cfg->script[i];
        char what[64];
        command_describe(&s->cmd, what, sizeof what);
        if (s->step > cfg->tc.steps)
            return gl_fail(e, "--at %llu:%s: step is beyond --steps %zu",
                           (unsigned long long)s->step, what, cfg->tc.steps);
        if (s->cmd.kind == CMD_SET_K && s->cmd.arg > cfg->tc.model.T)
            return gl_fail(e, "--at %llu:k:%u: k must be at most the context length %zu",
                           (unsigned long long)s->step, s->cmd.arg, cfg->tc.model.T);
        if (!s->arm[0])
            continue;
        int found = 0;
        for (size_t a = 0; a < cfg->narms; a++) {
            char num[24], name[64];
            snprintf(num, sizeof num, "%zu", a);
            args_arm_name(cfg, a, name, sizeof name);
            found |= strcmp(s->arm, num) == 0 || strcmp(s->arm, name) == 0;
        }
        if (!found)
            return gl_fail(e, "--at %llu:%s@%s: no arm %s (arms are numbered from 0 or named "
                              "by their mode)", (unsigned long long)s->step, what, s->arm, s->arm);
    }
    return 0;
}
