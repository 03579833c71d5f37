/* test_data: the generator (determinism, stream layout, cursor, fixed val
 * set, facts and recalls), text files and directories, .bin files and their
 * error messages, the split rule and the unigram entropy. */
#include "data.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

/* ---- temp files (removed at the end, newest first) ---------------------- */

static char tmpdir[64];
static char *made[64];
static size_t n_made;

static const char *tmp_path(const char *name)
{
    GL_ASSERT(n_made < 64);
    size_t len = strlen(tmpdir) + strlen(name) + 2;
    char *p = xmalloc(len);
    snprintf(p, len, "%s/%s", tmpdir, name);
    made[n_made++] = p;
    return p;
}

static const char *write_file(const char *name, const void *data, size_t n)
{
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    GL_ASSERT(f);
    GL_ASSERT(fwrite(data, 1, n, f) == n);
    fclose(f);
    return p;
}

static const char *make_dir(const char *name)
{
    const char *p = tmp_path(name);
    GL_ASSERT(mkdir(p, 0700) == 0);
    return p;
}

static void cleanup(void)
{
    while (n_made > 0) {
        char *p = made[--n_made];
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rmdir(p);
        else
            unlink(p);
        free(p);
    }
    rmdir(tmpdir);
}

/* llm.c .bin with a chosen header (magic, version, count) and ntok tokens. */
static const char *write_bin(const char *name, int32_t magic, int32_t version, int32_t count,
                             const uint16_t *tok, size_t ntok)
{
    size_t size = 1024 + 2 * ntok;
    uint8_t *buf = xcalloc(size, 1);
    int32_t h[3] = {magic, version, count};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++)
            buf[4 * i + b] = (uint8_t)((uint32_t)h[i] >> (8 * b));
    for (size_t i = 0; i < ntok; i++) {
        buf[1024 + 2 * i] = (uint8_t)(tok[i] & 0xff);
        buf[1024 + 2 * i + 1] = (uint8_t)(tok[i] >> 8);
    }
    const char *p = write_file(name, buf, size);
    free(buf);
    return p;
}

/* data_open must fail with a message naming the path and the problem. */
static void expect_open_fails(const char *path, size_t T, const char *phrase)
{
    gl_error err = {{0}};
    data_source *d = data_open(path, T, 1, &err);
    CHECK(d == NULL && strstr(err.msg, path) && strstr(err.msg, phrase),
          "open %s fails with \"%s\" (got \"%s\")", strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
          phrase, err.msg);
    data_close(d);
}

static void fill_batches(data_source *d, int32_t *buf, size_t nbatch, size_t B, size_t T)
{
    for (size_t k = 0; k < nbatch; k++)
        data_next_batch(d, buf + k * B * (T + 1), B);
}

/* ---- generator ---------------------------------------------------------- */

static void test_generator_stream(void)
{
    enum { T = 32, B = 4, NB = 6 };
    size_t nt = (size_t)NB * B * (T + 1);
    int32_t *a = xmalloc(nt * sizeof *a), *b = xmalloc(nt * sizeof *b), *c = xmalloc(nt * sizeof *c);
    data_source *da = data_open(NULL, T, 1, NULL), *db = data_open(NULL, T, 1, NULL);
    data_source *dc = data_open(NULL, T, 2, NULL);
    CHECK(da && db && dc, "generator opens");
    fill_batches(da, a, NB, B, T);
    fill_batches(db, b, NB, B, T);
    fill_batches(dc, c, NB, B, T);
    CHECK(memcmp(a, b, nt * sizeof *a) == 0, "same seed gives identical batches");
    CHECK(memcmp(a, c, nt * sizeof *a) != 0, "different seed gives different batches");

    /* Window w is stream bytes [w*T, w*T + T] of data_generator_sample. */
    size_t n = (size_t)NB * B * T + 1;
    char *s = xmalloc(n);
    CHECK(data_generator_sample(1, s, n) == n, "sample returns n bytes");
    size_t bad = 0;
    for (size_t w = 0; w < (size_t)NB * B; w++)
        for (size_t i = 0; i <= T; i++)
            bad += a[w * (T + 1) + i] != (unsigned char)s[w * T + i];
    CHECK(bad == 0, "train windows are consecutive chunks of the sample stream sharing a boundary token (%zu mismatches)", bad);

    data_cursor cur;
    data_get_cursor(da, &cur);
    CHECK(cur.batches == NB, "cursor counts batches (%llu)", (unsigned long long)cur.batches);
    CHECK(data_kind_of(da) == DATA_GENERATOR && data_vocab(da) == 256 && data_max_token(da) < 128,
          "generator kind, V=256, ASCII max token");
    CHECK(strcmp(data_describe(da), "generator(seed=1)") == 0, "describe: %s", data_describe(da));
    double h = data_unigram_entropy(da);
    CHECK(h > 2.0 && h < 3.5, "generator unigram entropy plausible for English bytes: %.3f nats", h);
    CHECK(fabs(h - data_unigram_entropy(db)) < 1e-12, "entropy is deterministic");
    free(s);
    free(a);
    free(b);
    free(c);
    data_close(da);
    data_close(db);
    data_close(dc);
}

static void cursor_round_trip(const char *path, const char *what)
{
    enum { T = 128, B = 3, BEFORE = 7, AFTER = 5 };
    size_t nt = (size_t)AFTER * B * (T + 1);
    int32_t *a = xmalloc(nt * sizeof *a), *b = xmalloc(nt * sizeof *b);
    int32_t *skip = xmalloc((size_t)BEFORE * B * (T + 1) * sizeof *skip);
    data_source *da = data_open(path, T, 3, NULL), *db = data_open(path, T, 3, NULL);
    GL_ASSERT(da && db);
    fill_batches(da, skip, BEFORE, B, T);
    data_cursor cur;
    data_get_cursor(da, &cur);
    fill_batches(da, a, AFTER, B, T);
    data_set_cursor(db, &cur, NULL);
    fill_batches(db, b, AFTER, B, T);
    CHECK(memcmp(a, b, nt * sizeof *a) == 0, "%s: cursor round trip continues identically", what);
    data_cursor cb;
    data_get_cursor(db, &cb);
    CHECK(cb.batches == BEFORE + AFTER, "%s: restored cursor keeps counting batches", what);
    /* And setting it back replays the same batches on the first source. */
    data_set_cursor(da, &cur, NULL);
    fill_batches(da, b, AFTER, B, T);
    CHECK(memcmp(a, b, nt * sizeof *a) == 0, "%s: rewinding a source replays its batches", what);
    free(a);
    free(b);
    free(skip);
    data_close(da);
    data_close(db);
}

static void test_generator_val(void)
{
    enum { T = 64 };
    data_source *a = data_open(NULL, T, 1, NULL), *b = data_open(NULL, T, 99, NULL);
    GL_ASSERT(a && b);
    size_t nw = data_val_windows(a);
    CHECK(nw == 64 && data_val_windows(b) == nw, "generator has 64 val windows for every seed");
    int32_t wa[T + 1], wb[T + 1], prev[T + 1];
    size_t differ = 0, chained = 1;
    for (size_t w = 0; w < nw; w++) {
        data_val_window(a, w, wa);
        data_val_window(b, w, wb);
        differ += memcmp(wa, wb, sizeof wa) != 0;
        if (w > 0 && prev[T] != wa[0])
            chained = 0;
        memcpy(prev, wa, sizeof wa);
    }
    CHECK(differ == 0, "val windows identical across seeds (%zu differ)", differ);
    CHECK(chained, "consecutive val windows share a boundary token");

    /* The val text is not a piece of the train stream. */
    size_t n = 200000;
    char *s = xmalloc(n), v[T + 1];
    data_generator_sample(1, s, n);
    data_val_window(a, 0, wa);
    for (size_t i = 0; i <= T; i++)
        v[i] = (char)wa[i];
    CHECK(memmem(s, n, v, T + 1) == NULL, "first val window does not occur in the train stream");
    free(s);
    data_close(a);
    data_close(b);
}

/* Start of the document holding position p (just after the previous blank line). */
static size_t doc_start(const char *s, size_t p)
{
    while (p > 0 && !(p >= 2 && s[p - 1] == '\n' && s[p - 2] == '\n'))
        p--;
    return p;
}

static void test_generator_text(void)
{
    size_t n = 400000;
    char *s = xmalloc(n + 1);
    data_generator_sample(7, s, n);
    s[n] = 0;

    size_t bad_bytes = 0, docs = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bad_bytes += !((c >= 32 && c < 127) || c == '\n');
        docs += i > 0 && s[i] == '\n' && s[i - 1] == '\n';
    }
    CHECK(bad_bytes == 0, "generator bytes are printable ASCII or newline (%zu bad)", bad_bytes);
    CHECK(strstr(s, "\n\n\n") == NULL, "documents are separated by exactly one blank line");
    CHECK(docs > 50, "sample holds many documents (%zu)", docs);

    /* Every "The code of NAME is DDDD." must follow, in the same document, a
     * "His/Her code is DDDD." whose preceding sentence introduces NAME. */
    size_t recalls = 0, unmatched = 0, short_range = 0, long_range = 0;
    const char *key = "The code of ";
    for (const char *r = strstr(s, key); r; r = strstr(r + 1, key)) {
        char name[32], digits[8];
        int used = 0;
        if (sscanf(r + strlen(key), "%31[A-Za-z] is %4[0-9].%n", name, digits, &used) != 2 || used == 0)
            continue;  /* cut off at the end of the sample */
        recalls++;
        size_t rpos = (size_t)(r - s), start = doc_start(s, rpos);
        size_t rdig = rpos + strlen(key) + strlen(name) + 4;
        char fact[32];
        snprintf(fact, sizeof fact, "code is %s.", digits);
        const char *f = NULL;
        for (const char *q = s + start; (q = strstr(q, fact)) && q < r; q++)
            f = q;
        int ok = 0;
        if (f && f - s >= (ptrdiff_t)start + 4 && (!strncmp(f - 4, "His ", 4) || !strncmp(f - 4, "Her ", 4))) {
            /* preceding sentence: from the '.' before it (or doc start) to f-4 */
            size_t end = (size_t)(f - s) - 4, b = end >= 2 ? end - 2 : start;
            while (b > start && s[b - 1] != '.')
                b--;
            char sent[256];
            size_t len = end - b < sizeof sent - 1 ? end - b : sizeof sent - 1;
            memcpy(sent, s + b, len);
            sent[len] = 0;
            ok = strstr(sent, name) != NULL;
            size_t dist = rdig - (size_t)(f - s + 8);
            short_range += ok && dist < 120;
            long_range += ok && dist > 300;
        }
        unmatched += !ok;
    }
    CHECK(recalls > 100, "code recalls found: %zu", recalls);
    CHECK(unmatched == 0, "every code recall matches an earlier fact about the same name (%zu unmatched)", unmatched);
    CHECK(short_range > 10, "short-range recalls (<120 bytes from the fact): %zu", short_range);
    CHECK(long_range > 10, "long-range recalls (>300 bytes from the fact): %zu", long_range);

    /* Job recalls agree with the introduction. */
    size_t jobs = 0, job_bad = 0;
    const char *wk = " works as ";
    for (const char *r = strstr(s, wk); r; r = strstr(r + 1, wk)) {
        const char *nm = r;
        while (nm > s && isalpha((unsigned char)nm[-1]))
            nm--;
        char name[32], job[32];
        if (r - nm <= 0 || r - nm >= 32 || sscanf(r + strlen(wk), "%*s %31[a-z].", job) != 1)
            continue;
        memcpy(name, nm, (size_t)(r - nm));
        name[r - nm] = 0;
        size_t start = doc_start(s, (size_t)(nm - s));
        char pat[3][96];
        snprintf(pat[0], sizeof pat[0], "%s is a %s from", name, job);
        snprintf(pat[1], sizeof pat[1], "%s, a %s", name, job);
        snprintf(pat[2], sizeof pat[2], "%s is an %s from", name, job);
        int found = 0;
        for (int k = 0; k < 3 && !found; k++) {
            const char *q = memmem(s + start, (size_t)(nm - s) - start, pat[k], strlen(pat[k]));
            found = q != NULL;
        }
        if (!found) {  /* "Mara, an engineer" */
            char an[96];
            snprintf(an, sizeof an, "%s, an %s", name, job);
            found = memmem(s + start, (size_t)(nm - s) - start, an, strlen(an)) != NULL;
        }
        jobs++;
        job_bad += !found;
    }
    CHECK(jobs > 20 && job_bad == 0, "job recalls match the introduction (%zu recalls, %zu bad)", jobs, job_bad);
    free(s);
}

/* ---- text files and directories ----------------------------------------- */

static void test_text_file(void)
{
    enum { N = 1000, T = 16, B = 5 };
    char text[N];
    rng_state r;
    rng_seed(&r, 42);
    for (size_t i = 0; i < N; i++)
        text[i] = (char)('a' + rng_below(&r, 26));
    const char *path = write_file("corpus.txt", text, N);
    gl_error err = {{0}};
    data_source *d = data_open(path, T, 1, &err);
    CHECK(d != NULL, "text file opens (%s)", err.msg);
    if (!d)
        return;
    CHECK(data_kind_of(d) == DATA_TEXT && data_vocab(d) == 256, "text kind, V=256");
    uint32_t mx = 0;
    for (size_t i = 0; i < N; i++)
        mx = (uint32_t)(unsigned char)text[i] > mx ? (uint32_t)(unsigned char)text[i] : mx;
    CHECK(data_max_token(d) == mx, "max token %u", data_max_token(d));
    char want[256];
    snprintf(want, sizeof want, "text:%s (1000 tokens)", path);
    CHECK(strcmp(data_describe(d), want) == 0, "describe: %s", data_describe(d));

    /* n=1000, T=16: W = (100 - 1) / 16 = 6 windows, val = last 97 tokens. */
    size_t vs = N - (6 * T + 1);
    CHECK(data_val_windows(d) == 6, "val windows: %zu (expected 6)", data_val_windows(d));
    int32_t w[T + 1];
    size_t bad = 0;
    for (size_t k = 0; k < data_val_windows(d); k++) {
        data_val_window(d, k, w);
        for (size_t i = 0; i <= T; i++)
            bad += w[i] != (unsigned char)text[vs + k * T + i];
    }
    CHECK(bad == 0, "val windows are the consecutive windows of the last 97 tokens");

    /* Train windows lie inside the train split [0, vs). */
    int32_t batch[B * (T + 1)];
    size_t outside = 0;
    for (int rep = 0; rep < 40; rep++) {
        data_next_batch(d, batch, B);
        for (size_t b = 0; b < B; b++) {
            char win[T + 1];
            for (size_t i = 0; i <= T; i++)
                win[i] = (char)batch[b * (T + 1) + i];
            outside += memmem(text, vs, win, T + 1) == NULL;
        }
    }
    CHECK(outside == 0, "train windows come from the train split (%zu outside)", outside);

    /* Determinism by seed. */
    data_source *a = data_open(path, T, 5, NULL), *b = data_open(path, T, 5, NULL);
    data_source *c = data_open(path, T, 6, NULL);
    int32_t ba[B * (T + 1)], bb[B * (T + 1)], bc[B * (T + 1)];
    data_next_batch(a, ba, B);
    data_next_batch(b, bb, B);
    data_next_batch(c, bc, B);
    CHECK(memcmp(ba, bb, sizeof ba) == 0 && memcmp(ba, bc, sizeof ba) != 0,
          "text batches: same seed identical, other seed different");
    data_close(a);
    data_close(b);
    data_close(c);
    data_close(d);

    cursor_round_trip(write_file("big.txt", text, N), "text");  /* T=128 needs >= 258 */

    int32_t *tok = NULL;
    size_t count = 0;
    CHECK(data_load_tokens(path, &tok, &count, &err) == 0 && count == N && tok[0] == (unsigned char)text[0] &&
              tok[N - 1] == (unsigned char)text[N - 1],
          "data_load_tokens reads the whole text file");
    free(tok);
}

static void test_split_sizes(void)
{
    enum { T = 16 };
    char *big = xmalloc(100000);
    memset(big, 'x', 100000);
    const char *p = write_file("large.txt", big, 100000);
    data_source *d = data_open(p, T, 1, NULL);
    CHECK(d && data_val_windows(d) == 64, "val split capped at 64 windows");
    data_close(d);

    /* W = (n/10 - 1) / T: 1610 tokens -> 10 windows (161 = 10%), 1609 -> 9. */
    p = write_file("exact.txt", big, 1610);
    d = data_open(p, T, 1, NULL);
    CHECK(d && data_val_windows(d) == 10, "1610 tokens: val is the last 161 (10 windows)");
    data_close(d);
    p = write_file("under.txt", big, 1609);
    d = data_open(p, T, 1, NULL);
    CHECK(d && data_val_windows(d) == 9, "1609 tokens: val never exceeds 10%% (9 windows)");
    data_close(d);

    p = write_file("just.txt", big, 2 * (T + 1));
    d = data_open(p, T, 1, NULL);
    CHECK(d && data_val_windows(d) == 1, "2*(T+1) tokens: one val window");
    data_close(d);

    p = write_file("short.txt", big, 2 * (T + 1) - 1);
    expect_open_fails(p, T, "33 tokens, need at least 34 for T=16");
    free(big);
}

static void test_text_dir(void)
{
    const char *dir = make_dir("corpus");
    write_file("corpus/b.txt", "world", 5);
    write_file("corpus/a.txt", "hello ", 6);
    write_file("corpus/.hidden", "XXXX", 4);
    make_dir("corpus/sub");
    write_file("corpus/sub/c.txt", "YYYY", 4);

    int32_t *tok = NULL;
    size_t count = 0;
    gl_error err = {{0}};
    int rc = data_load_tokens(dir, &tok, &count, &err);
    char got[32] = {0};
    for (size_t i = 0; rc == 0 && i < count && i < 31; i++)
        got[i] = (char)tok[i];
    CHECK(rc == 0 && count == 11 && strcmp(got, "hello world") == 0,
          "directory: regular non-hidden files in name order (\"%s\")", got);
    free(tok);

    data_source *d = data_open(dir, 2, 1, &err);
    CHECK(d && data_kind_of(d) == DATA_TEXT && strstr(data_describe(d), "(11 tokens)"),
          "directory opens as text: %s", d ? data_describe(d) : err.msg);
    data_close(d);

    const char *empty = make_dir("emptydir");
    write_file("emptydir/.only_hidden", "abc", 3);
    expect_open_fails(empty, 2, "no regular files");

    const char *zeros = make_dir("zerodir");
    write_file("zerodir/z.txt", "", 0);
    expect_open_fails(zeros, 2, "empty");
}

static void test_text_errors(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/missing.txt", tmpdir);
    expect_open_fails(path, 16, "cannot open: No such file or directory");
    gl_error err = {{0}};
    int32_t *tok = NULL;
    size_t count = 0;
    CHECK(data_load_tokens(path, &tok, &count, &err) == -1 && strstr(err.msg, path),
          "data_load_tokens reports a missing file: %s", err.msg);

    expect_open_fails(write_file("empty.txt", "", 0), 16, "empty file");

    char bin[100];
    memset(bin, 'a', sizeof bin);
    bin[50] = 0;
    expect_open_fails(write_file("nul.txt", bin, sizeof bin), 16, "not a text file");
}

static void test_entropy(void)
{
    enum { T = 16 };
    char buf[1001];
    memset(buf, 'a', sizeof buf);
    data_source *d = data_open(write_file("ones.txt", buf, 1000), T, 1, NULL);
    double h = d ? data_unigram_entropy(d) : -1;
    CHECK(d && fabs(h) < 1e-12, "entropy of one repeated byte is 0 (%.3g)", h);
    data_close(d);

    /* 1001 tokens: val = 97, train = 904 = 452 a + 452 b. */
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = i % 2 ? 'b' : 'a';
    d = data_open(write_file("two.txt", buf, sizeof buf), T, 1, NULL);
    h = d ? data_unigram_entropy(d) : -1;
    CHECK(d && fabs(h - log(2.0)) < 1e-12, "entropy of two equiprobable bytes is ln 2 (%.12f)", h);
    data_close(d);
}

/* ---- .bin ---------------------------------------------------------------- */

static void test_bin(void)
{
    enum { N = 2000, T = 16 };
    uint16_t tok[N];
    uint16_t mx = 0;
    for (size_t i = 0; i < N; i++) {
        tok[i] = (uint16_t)((i * 7919u + 13u) % 50257u);
        mx = tok[i] > mx ? tok[i] : mx;
    }
    const char *path = write_bin("tokens.bin", 20240520, 1, N, tok, N);
    gl_error err = {{0}};
    data_source *d = data_open(path, T, 1, &err);
    CHECK(d != NULL, "valid .bin opens (%s)", err.msg);
    if (d) {
        CHECK(data_kind_of(d) == DATA_BIN, "kind is DATA_BIN");
        CHECK(data_max_token(d) == mx && data_vocab(d) == (size_t)mx + 1,
              ".bin max token %u, V %zu", data_max_token(d), data_vocab(d));
        char want[256];
        snprintf(want, sizeof want, "bin:%s (2000 tokens)", path);
        CHECK(strcmp(data_describe(d), want) == 0, "describe: %s", data_describe(d));
        /* n=2000: W = 199/16 = 12, val = last 193 tokens. */
        CHECK(data_val_windows(d) == 12, "bin val windows %zu (expected 12)", data_val_windows(d));
        int32_t w[T + 1];
        data_val_window(d, 11, w);
        size_t vs = N - (12 * T + 1), bad = 0;
        for (size_t i = 0; i <= T; i++)
            bad += w[i] != tok[vs + 11 * T + i];
        CHECK(bad == 0, "last bin val window ends at the last token");
        int32_t batch[4 * (T + 1)];
        data_next_batch(d, batch, 4);
        size_t inrange = 1;
        for (size_t i = 0; i < 4 * (T + 1); i++)
            inrange &= batch[i] >= 0 && (uint32_t)batch[i] <= mx;
        CHECK(inrange, "bin batch tokens are in range");
        data_close(d);
    }
    int32_t *all = NULL;
    size_t count = 0;
    int rc = data_load_tokens(path, &all, &count, &err);
    size_t same = rc == 0 && count == N;
    for (size_t i = 0; same && i < N; i++)
        same = all[i] == tok[i];
    CHECK(same, "data_load_tokens reads the .bin tokens");
    free(all);

    expect_open_fails(write_bin("magic.bin", 12345, 1, N, tok, N), T, "bad magic 12345 (expected 20240520)");
    expect_open_fails(write_bin("version.bin", 20240520, 2, N, tok, N), T, "version 2");
    expect_open_fails(write_bin("count.bin", 20240520, 1, 100, tok, 90), T,
                      "header says 100 tokens (200 bytes) but the file holds 180 bytes");
    expect_open_fails(write_bin("zero.bin", 20240520, 1, 0, tok, 0), T, "empty");
    const char *few = write_bin("few.bin", 20240520, 1, 20, tok, 20);
    expect_open_fails(few, T, "20 tokens, need at least 34");
    uint8_t half[500] = {0};
    const char *trunc = write_file("trunc.bin", half, sizeof half);
    expect_open_fails(trunc, T, "truncated header");
    expect_open_fails(write_file("empty.bin", "", 0), T, "empty file");
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope.bin", tmpdir);
    expect_open_fails(missing, T, "cannot open");

    all = NULL;
    rc = data_load_tokens(few, &all, &count, &err);  /* loads: no minimum without a T */
    CHECK(rc == 0 && count == 20, "data_load_tokens has no minimum length");
    free(all);
    rc = data_load_tokens(trunc, &all, &count, &err);
    CHECK(rc == -1 && strstr(err.msg, "truncated header"), "data_load_tokens validates .bin: %s", err.msg);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gatelab_test_data_XXXXXX");
    GL_ASSERT(mkdtemp(tmpdir));

    test_generator_stream();
    cursor_round_trip(NULL, "generator");
    test_generator_val();
    test_generator_text();
    test_text_file();
    test_split_sizes();
    test_text_dir();
    test_text_errors();
    test_entropy();
    test_bin();

    cleanup();
    return check_finish();
}
