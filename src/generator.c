/* generator: the embedded corpus. English-like documents that introduce a
 * few people with attributes, continue with filler from the project's own
 * grammar and word lists, and later recall the facts (some within a T=128
 * window of the fact, some hundreds of bytes after it), so that predicting a
 * recalled attribute needs attention to one distant span. Deterministic by
 * the stream's rng; one document at a time into a caller-owned buffer. */
#include "generator.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------
 * Generator word tables (read-only, written for gatelab).
 * ------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int female;
} gen_name;

static const gen_name NAMES[] = {
    {"Mara", 1},  {"Tomas", 0}, {"Ines", 1},  {"Oskar", 0},  {"Lena", 1},  {"Pavel", 0},
    {"Nadia", 1}, {"Rafael", 0}, {"Greta", 1}, {"Kofi", 0},  {"Yuki", 1},  {"Dmitri", 0},
    {"Alma", 1},  {"Bruno", 0}, {"Selma", 1}, {"Emil", 0},   {"Hana", 1},  {"Felix", 0},
    {"Rosa", 1},  {"Idris", 0}, {"Vera", 1},  {"Anton", 0},  {"Leila", 1}, {"Marco", 0},
};

static const char *const JOBS[] = {
    "baker", "carpenter", "nurse", "pilot", "teacher", "farmer", "painter",
    "engineer", "tailor", "doctor", "fisher", "librarian", "plumber", "gardener",
    "chemist", "architect", "sailor", "potter", "judge", "miner",
};

static const char *const CITIES[] = {
    "Oslo", "Lisbon", "Cairo", "Lima", "Hanoi", "Dublin", "Quito", "Nairobi", "Riga",
    "Porto", "Kyoto", "Tunis", "Bergen", "Ghent", "Perth", "Austin", "Turin", "Leeds",
    "Accra", "Graz",
};

static const char *const PETS[] = {
    "dog", "cat", "parrot", "goat", "rabbit", "turtle", "hamster", "pony", "owl", "ferret",
};

static const char *const PET_NAMES[] = {
    "Pip", "Biscuit", "Moss", "Juniper", "Pepper", "Taro", "Ziggy", "Clove",
    "Nutmeg", "Pebble", "Waffle", "Rumi",
};

static const char *const COLOURS[] = {
    "red", "blue", "green", "yellow", "orange", "purple", "grey", "brown",
    "white", "black", "pink", "teal",
};

/* Filler words. Nouns take a plural "s" and, like adjectives, start with a
 * consonant so "a $n" and "a $a" read correctly. */
static const char *const NOUNS[] = {
    "lamp", "river", "window", "basket", "ladder", "garden", "kettle", "bridge",
    "road", "field", "bell", "door", "stone", "candle", "cart", "fence", "boat",
    "tower", "table", "wagon", "bucket", "drum", "coat", "lantern", "rope",
    "blanket", "map", "mirror", "clock", "chair",
};

static const char *const ADJECTIVES[] = {
    "quiet", "narrow", "bright", "cold", "heavy", "small", "wooden", "broken",
    "dusty", "warm", "tall", "strange", "gentle", "noisy", "sturdy", "faded",
    "crooked", "tiny", "polished", "damp",
};

static const char *const VERBS[] = {  /* past tense */
    "carried", "painted", "found", "lifted", "watched", "fixed", "followed",
    "opened", "moved", "cleaned", "counted", "dropped", "pushed", "heard",
    "built", "hid", "sold", "washed", "borrowed", "measured",
};

static const char *const PLACES[] = {
    "market", "harbour", "station", "library", "square", "orchard", "bakery",
    "workshop", "valley", "hill", "school", "museum",
};

static const char *const TIMES[] = {
    "at dawn", "after lunch", "in the evening", "later that week", "before the rain",
    "on Sunday", "during the storm", "by noon", "at midnight", "every spring",
};

/* Filler sentence templates: $n noun, $p plural noun, $a adjective, $v past
 * verb, $l place, $t time phrase, $e the name of one of the document's
 * entities introduced so far (a second $e in the same sentence names a
 * different one). */
static const char *const FILLERS[] = {
    "the $a $n $v the $n $t.",
    "a $n $v near the $a $n.",
    "$t, the $ps were $a.",
    "$e $v the $a $n.",
    "nobody $v the $n $t.",
    "the $n by the $l was $a and $a.",
    "$e walked past the $l $t.",
    "some $ps $v the $n while the $n stayed $a.",
    "it was a $a day at the $l.",
    "$e said the $n looked $a.",
    "the $ps near the $l seemed $a $t.",
    "$e and $e $v a $n together.",
    "there was a $a $n in the $l.",
    "the $n $v, and then the $n $v too.",
    "$t, $e $v the $ps at the $l.",
};

/* ---------------------------------------------------------------------------
 * Generator: one document at a time into a fixed buffer.
 * ------------------------------------------------------------------------- */

enum { FACT_JOB, FACT_CITY, FACT_CODE, FACT_PET, FACT_COLOUR };

typedef struct {
    const gen_name *who;
    const char *job, *city;
    const char *pet, *pet_name;  /* NULL when the entity has no pet */
    const char *colour;          /* NULL when no favourite colour is given */
    unsigned code;               /* 1000..9999 */
} gen_entity;

typedef struct {
    gen_entity ent[4];
    size_t n_ent;
    size_t n_known;  /* entities introduced so far: filler names only these */
} gen_doc;

static const char *pick(rng_state *r, const char *const *list, size_t n)
{
    return list[rng_below(r, n)];
}
#define PICK(r, list) pick((r), (list), COUNT(list))

static const char *article(const char *word)
{
    return strchr("aeiouAEIOU", word[0]) ? "an" : "a";
}

static void tb_put(gen_text *b, const char *s, size_t n)
{
    GL_ASSERT(b->len + n <= b->cap);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Appends one sentence (capitalised) after a space, or after a newline that
 * starts a new paragraph; the blank line is reserved for document breaks. */
static void emit(gen_text *doc, rng_state *r, char *s)
{
    if (doc->len > 0)
        tb_put(doc, rng_below(r, 6) == 0 ? "\n" : " ", 1);
    if (s[0] >= 'a' && s[0] <= 'z')
        s[0] = (char)(s[0] - 'a' + 'A');
    tb_put(doc, s, strlen(s));
}

/* snprintf into a sentence buffer, then emit. */
static void emitf(gen_text *doc, rng_state *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void emitf(gen_text *doc, rng_state *r, const char *fmt, ...)
{
    char s[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    GL_ASSERT(n > 0 && (size_t)n < sizeof s);
    emit(doc, r, s);
}

static size_t count_slots(const char *t, char slot)
{
    size_t n = 0;
    for (; *t; t++)
        if (t[0] == '$' && t[1] == slot)
            n++;
    return n;
}

static void emit_filler(gen_text *doc, rng_state *r, const gen_doc *g)
{
    char s[256];
    size_t len = 0;
    size_t last_ent = g->n_known;  /* none yet */
    const char *tmpl;
    do {
        tmpl = PICK(r, FILLERS);
    } while (count_slots(tmpl, 'e') > g->n_known);
    for (const char *t = tmpl; *t; t++) {
        const char *word;
        char one[2] = {*t, 0};
        if (*t != '$') {
            word = one;
        } else {
            switch (*++t) {
            case 'n': word = PICK(r, NOUNS); break;
            case 'p': word = PICK(r, NOUNS); break;  /* the template adds the "s" */
            case 'a': word = PICK(r, ADJECTIVES); break;
            case 'v': word = PICK(r, VERBS); break;
            case 'l': word = PICK(r, PLACES); break;
            case 't': word = PICK(r, TIMES); break;
            case 'e': {
                size_t e = rng_below(r, g->n_known);
                if (e == last_ent)
                    e = (e + 1) % g->n_known;
                last_ent = e;
                word = g->ent[e].who->name;
                break;
            }
            default: GL_ASSERT(!"unknown filler slot"); word = "";
            }
        }
        size_t n = strlen(word);
        GL_ASSERT(len + n < sizeof s);
        memcpy(s + len, word, n);
        len += n;
    }
    s[len] = 0;
    emit(doc, r, s);
}

static void emit_fillers(gen_text *doc, rng_state *r, const gen_doc *g, size_t count)
{
    for (size_t i = 0; i < count; i++)
        emit_filler(doc, r, g);
}

/* "Mara is a baker from Oslo. Her code is 4821." and the optional pet and
 * colour. The code sentence always directly follows the sentence naming the
 * entity (tests rely on it). */
static void emit_intro(gen_text *doc, rng_state *r, const gen_entity *e)
{
    const char *name = e->who->name;
    const char *subj = e->who->female ? "she" : "he";
    const char *poss = e->who->female ? "her" : "his";
    switch (rng_below(r, 3)) {
    case 0: emitf(doc, r, "%s is %s %s from %s.", name, article(e->job), e->job, e->city); break;
    case 1: emitf(doc, r, "%s, %s %s, lives in %s.", name, article(e->job), e->job, e->city); break;
    default:
        emitf(doc, r, "meet %s, %s %s who lives in %s.", name, article(e->job), e->job, e->city);
    }
    emitf(doc, r, "%s code is %u.", poss, e->code);
    if (e->pet) {
        if (rng_below(r, 2))
            emitf(doc, r, "%s has a pet %s called %s.", subj, e->pet, e->pet_name);
        else
            emitf(doc, r, "%s keeps %s %s named %s.", subj, article(e->pet), e->pet, e->pet_name);
    }
    if (e->colour)
        emitf(doc, r, "%s favourite colour is %s.", poss, e->colour);
}

/* Codes are recalled most often: they are the least guessable fact. */
static int pick_fact(rng_state *r, const gen_entity *e)
{
    if (rng_below(r, 5) < 2)
        return FACT_CODE;
    int facts[4];
    size_t n = 0;
    facts[n++] = FACT_JOB;
    facts[n++] = FACT_CITY;
    if (e->pet)
        facts[n++] = FACT_PET;
    if (e->colour)
        facts[n++] = FACT_COLOUR;
    return facts[rng_below(r, n)];
}

static void emit_recall(gen_text *doc, rng_state *r, const gen_entity *e, int fact)
{
    const char *name = e->who->name;
    int alt = rng_below(r, 3) == 0;
    switch (fact) {
    case FACT_CODE:
        if (alt)
            emitf(doc, r, "%s uses the code %u.", name, e->code);
        else
            emitf(doc, r, "the code of %s is %u.", name, e->code);
        break;
    case FACT_JOB:
        if (alt)
            emitf(doc, r, "by trade, %s is %s %s.", name, article(e->job), e->job);
        else
            emitf(doc, r, "%s works as %s %s.", name, article(e->job), e->job);
        break;
    case FACT_CITY:
        emitf(doc, r, alt ? "%s comes from %s." : "%s lives in %s.", name, e->city);
        break;
    case FACT_PET:
        if (alt)
            emitf(doc, r, "the pet of %s is %s %s.", name, article(e->pet), e->pet);
        else
            emitf(doc, r, "the %s of %s is called %s.", e->pet, name, e->pet_name);
        break;
    default:
        if (alt)
            emitf(doc, r, "%s likes %s best.", name, e->colour);
        else
            emitf(doc, r, "the favourite colour of %s is %s.", name, e->colour);
    }
}

/* k distinct indices below n (k <= n, both small). */
static void draw_distinct(rng_state *r, size_t n, size_t k, size_t *out)
{
    for (size_t i = 0; i < k; i++) {
        size_t x;
        int dup;
        do {
            x = rng_below(r, n);
            dup = 0;
            for (size_t j = 0; j < i; j++)
                dup |= out[j] == x;
        } while (dup);
        out[i] = x;
    }
}

/* One document: 2-4 entities introduced (some recalled right away, within
 * ~100 bytes), then 3-6 recalls each after a random amount of filler (none to
 * over a dozen sentences, so many land several hundred bytes after the fact).
 * Ends with "\n\n". */
static void gen_document(rng_state *r, gen_text *doc)
{
    gen_doc g;
    size_t names[4], jobs[4], cities[4], codes[4];
    g.n_ent = 2 + rng_below(r, 3);
    draw_distinct(r, COUNT(NAMES), g.n_ent, names);
    draw_distinct(r, COUNT(JOBS), g.n_ent, jobs);
    draw_distinct(r, COUNT(CITIES), g.n_ent, cities);
    draw_distinct(r, 9000, g.n_ent, codes);
    for (size_t i = 0; i < g.n_ent; i++) {
        gen_entity *e = &g.ent[i];
        e->who = &NAMES[names[i]];
        e->job = JOBS[jobs[i]];
        e->city = CITIES[cities[i]];
        e->code = 1000 + (unsigned)codes[i];
        e->pet = e->pet_name = e->colour = NULL;
        if (rng_below(r, 2)) {
            e->pet = PICK(r, PETS);
            e->pet_name = PICK(r, PET_NAMES);
        }
        if (rng_below(r, 2))
            e->colour = PICK(r, COLOURS);
    }

    doc->len = 0;
    g.n_known = 0;
    for (size_t i = 0; i < g.n_ent; i++) {
        if (i > 0)
            emit_fillers(doc, r, &g, rng_below(r, 3));
        emit_intro(doc, r, &g.ent[i]);
        g.n_known = i + 1;
        if (rng_below(r, 2)) {
            emit_fillers(doc, r, &g, rng_below(r, 2));
            emit_recall(doc, r, &g.ent[i], pick_fact(r, &g.ent[i]));
        }
    }
    size_t n_recall = 3 + rng_below(r, 4);
    for (size_t k = 0; k < n_recall; k++) {
        uint64_t u = rng_below(r, 10);
        size_t gap = u < 3 ? rng_below(r, 2) : u < 6 ? 2 + rng_below(r, 4) : 6 + rng_below(r, 9);
        emit_fillers(doc, r, &g, gap);
        const gen_entity *e = &g.ent[rng_below(r, g.n_ent)];
        emit_recall(doc, r, e, pick_fact(r, e));
    }
    tb_put(doc, "\n\n", 2);
}

/* buf must hold GEN_DOC_MAX bytes. */
void gen_stream_restart(gen_stream *s, const rng_state *start, size_t pos, char *buf)
{
    s->doc.p = buf;
    s->doc.cap = GEN_DOC_MAX;
    s->start = *start;
    s->next = *start;
    gen_document(&s->next, &s->doc);
    s->pos = pos < s->doc.len ? pos : s->doc.len;
}

void gen_stream_init(gen_stream *s, uint64_t stream_seed, char *buf)
{
    rng_state r;
    rng_seed(&r, stream_seed);
    gen_stream_restart(s, &r, 0, buf);
}

unsigned char gen_stream_byte(gen_stream *s)
{
    if (s->pos == s->doc.len) {
        s->start = s->next;
        gen_document(&s->next, &s->doc);
        s->pos = 0;
    }
    return (unsigned char)s->doc.p[s->pos++];
}
