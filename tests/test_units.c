/* test_units: small modules against answers worked out by hand —
 * command_parse / command_describe (include/command.h, the `--at` words),
 * command_format read back by command_parse for every command kind,
 * optim_schedule (include/optim.h, warm-up then cosine), and pool_run's
 * split (include/pool.h: blocks that depend only on n and the grain and
 * cover [0, n) exactly once, whatever the thread count), the debiased EMA
 * (include/smooth.h), the event markers' letters (record.h) and the
 * placement of arms over MPI ranks (include/placement.h). */
#include <dirent.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "command.h"
#include "gate.h"
#include "optim.h"
#include "placement.h"
#include "pool.h"
#include "record.h"
#include "smooth.h"

/* ---- command_parse ---- */

static void parse_ok(const char *spec, uint64_t step, cmd_kind kind, uint32_t arg,
                     double seconds, const char *arm)
{
    scripted_command sc;
    gl_error e = {{0}};
    int rc = command_parse(spec, &sc, &e);
    CHECK(rc == 0 && sc.step == step && sc.cmd.kind == (uint32_t)kind && sc.cmd.arg == arg &&
              sc.cmd.seconds == seconds && sc.cmd.scripted == 1 && strcmp(sc.arm, arm) == 0,
          "'%s' -> step %llu %s arg %u seconds %g arm '%s' (rc %d%s%s)", spec,
          (unsigned long long)step, cmd_kind_name(kind), arg, seconds, arm, rc,
          rc ? ": " : "", rc ? e.msg : "");
}

static void parse_bad(const char *spec, const char *why)
{
    scripted_command sc;
    gl_error e = {{0}};
    int rc = command_parse(spec, &sc, &e);
    CHECK(rc == -1 && e.msg[0] && strstr(e.msg, "--at"), "'%.40s' refused (%s): %s", spec, why,
          e.msg);
}

static void describe_is(const char *spec, const char *want)
{
    scripted_command sc;
    gl_error e;
    char buf[64] = "";
    if (command_parse(spec, &sc, &e) == 0)
        command_describe(&sc.cmd, buf, sizeof buf);
    CHECK(strcmp(buf, want) == 0, "describe '%s' = '%s' (want '%s')", spec, buf, want);
}

static void test_command(void)
{
    printf("# command_parse: every command\n");
    parse_ok("500:swap:random", 500, CMD_SWAP, GATE_RANDOM, 0.0, "");
    parse_ok("100:pause:2.5", 100, CMD_PAUSE, 0, 2.5, "");
    parse_ok("100:pause", 100, CMD_PAUSE, 0, 0.0, "");
    parse_ok("100:pause:86400", 100, CMD_PAUSE, 0, 86400.0, "");
    parse_ok("300:k:8@soft", 300, CMD_SET_K, 8, 0.0, "soft");
    parse_ok("1:k:1", 1, CMD_SET_K, 1, 0.0, "");
    parse_ok("1:pause:.5", 1, CMD_PAUSE, 0, 0.5, "");
    parse_ok("1:pause:2e-1", 1, CMD_PAUSE, 0, 0.2, "");
    parse_ok("1:k:4096", 1, CMD_SET_K, 4096, 0.0, "");
    parse_ok("0:freeze@1", 0, CMD_FREEZE, 0, 0.0, "1");
    parse_ok("7:unfreeze", 7, CMD_UNFREEZE, 0, 0.0, "");
    parse_ok("7:resume", 7, CMD_RESUME, 0, 0.0, "");
    parse_ok("9:checkpoint@dense", 9, CMD_CHECKPOINT, 0, 0.0, "dense");
    parse_ok("18446744073709551615:stop", UINT64_MAX, CMD_STOP, 0, 0.0, "");
    parse_ok("12:fork:topk-random@0", 12, CMD_FORK, GATE_TOPK_RANDOM, 0.0, "0");
    parse_ok("12:swap:oracle", 12, CMD_SWAP, GATE_ORACLE, 0.0, "");
    /* an arm name of 31 bytes fits arm[32] */
    parse_ok("5:stop@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 5, CMD_STOP, 0, 0.0,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");

    printf("# command_parse: bad words\n");
    parse_bad("", "empty");
    parse_bad("swap:random", "no step");
    parse_bad("500", "no command");
    parse_bad(":stop", "empty step");
    parse_bad("x:stop", "step not a number");
    parse_bad("-1:stop", "negative step");
    parse_bad("+1:stop", "signed step");
    parse_bad("1x:stop", "step with a tail");
    parse_bad("18446744073709551616:stop", "step beyond 64 bits");
    parse_bad("1:bogus", "unknown command");
    parse_bad("1:swap", "swap without a mode");
    parse_bad("1:swap:", "swap with an empty mode");
    parse_bad("1:swap:bogus", "unknown mode");
    parse_bad("1:swap:distilled", "distilled is eval-only");
    parse_bad("1:fork", "fork without a mode");
    parse_bad("1:k", "k without a value");
    parse_bad("1:k:0", "k below 1");
    parse_bad("1:k:4097", "k above 4096");
    parse_bad("1:k:-3", "negative k");
    parse_bad("1:k:8x", "k with a tail");
    parse_bad("1:pause:0", "pause of 0 s");
    parse_bad("1:pause:-1", "negative pause");
    parse_bad("1:pause:86401", "pause over a day");
    parse_bad("1:pause:nan", "pause NaN");
    parse_bad("1:pause:inf", "pause infinite");
    parse_bad("1:pause:", "pause with an empty length");
    /* strtoull/strtod alone take these: a number is written as digits */
    parse_bad(" 5:stop", "step after a space");
    parse_bad("1e2:stop", "step with an exponent");
    parse_bad("1:k:+5", "signed k");
    parse_bad("1:k: 7", "k after a space");
    parse_bad("1:k:0x8", "hexadecimal k");
    parse_bad("1:pause:0x10", "hexadecimal pause");
    parse_bad("1:pause: 2", "pause after a space");
    parse_bad("1:pause:+2", "signed pause");
    parse_bad("1:pause:.", "pause of a lone point");
    parse_bad("1:pause:2e", "pause with an empty exponent");
    parse_bad("1:stop:now", "stop takes no argument");
    parse_bad("1:freeze:1", "freeze takes no argument");
    parse_bad("1:stop@", "empty arm");
    parse_bad("1:stop@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "arm of 32 bytes");
    char longspec[200];
    memset(longspec, '1', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = 0;
    memcpy(longspec + 150, ":stop", 6);
    parse_bad(longspec, "longer than 127 bytes");

    printf("# command_describe\n");
    describe_is("1:swap:random", "swap random");
    describe_is("1:fork:topk@0", "fork topk");
    describe_is("1:k:8", "k 8");
    describe_is("1:pause:2.5", "pause 2.5s");
    describe_is("1:pause", "pause");
    describe_is("1:freeze", "freeze");
    describe_is("1:stop", "stop");
}

/* command_format then command_parse gives the command back, and formatting
 * that gives the same word: what `resume` relies on for an arm's --at. */
static void round_trip(uint64_t step, cmd_kind kind, uint32_t arg, double seconds,
                       const char *want)
{
    cmd_record c = {.kind = (uint32_t)kind, .arg = arg, .seconds = seconds, .scripted = 1};
    char word[96], again[96] = "";
    command_format(step, &c, word, sizeof word);
    scripted_command sc;
    gl_error e = {{0}};
    int rc = command_parse(word, &sc, &e);
    if (rc == 0)
        command_format(sc.step, &sc.cmd, again, sizeof again);
    CHECK(rc == 0 && sc.step == step && sc.cmd.kind == c.kind && sc.cmd.arg == c.arg &&
              sc.cmd.seconds == c.seconds && sc.cmd.scripted == 1 && sc.arm[0] == 0 &&
              strcmp(word, again) == 0 && (!want || strcmp(word, want) == 0),
          "format %s -> '%s' parses back (rc %d%s%s)", cmd_kind_name(kind), word, rc,
          rc ? ": " : "", rc ? e.msg : "");
}

static void test_command_format(void)
{
    printf("# command_format: parse(format(x)) == x\n");
    round_trip(500, CMD_SWAP, GATE_RANDOM, 0.0, "500:swap:random");
    round_trip(12, CMD_FORK, GATE_TOPK_RANDOM, 0.0, "12:fork:topk-random");
    round_trip(300, CMD_SET_K, 8, 0.0, "300:k:8");
    round_trip(100, CMD_PAUSE, 0, 2.5, "100:pause:2.5");
    round_trip(100, CMD_PAUSE, 0, 0.0, "100:pause");
    round_trip(1, CMD_PAUSE, 0, 0.003, "1:pause:0.003");
    /* more digits than %.9g kept: the shortest exact decimal */
    round_trip(1, CMD_PAUSE, 0, 1.0 / 3.0, "1:pause:0.3333333333333333");
    /* a whole number with its digits, not %g's 8.64e+04 */
    round_trip(1, CMD_PAUSE, 0, 86400.0, "1:pause:86400");
    round_trip(0, CMD_FREEZE, 0, 0.0, "0:freeze");
    round_trip(7, CMD_UNFREEZE, 0, 0.0, "7:unfreeze");
    round_trip(7, CMD_RESUME, 0, 0.0, "7:resume");
    round_trip(9, CMD_CHECKPOINT, 0, 0.0, "9:checkpoint");
    round_trip(UINT64_MAX, CMD_STOP, 0, 0.0, "18446744073709551615:stop");
    for (uint32_t m = 0; m < GATE_MODE_COUNT; m++)
        if (m != GATE_DISTILLED)
            round_trip(42, CMD_SWAP, m, 0.0, NULL);
    /* every kind above: a new kind must be added here */
    CHECK(CMD_KIND_COUNT == 9, "the round trips cover all %d command kinds", CMD_KIND_COUNT);
}

/* ---- optim_schedule ---- */

static void schedule_is(const optim_config *c, size_t step, double want)
{
    float got = optim_schedule(c, step);
    CHECK(fabs((double)got - want) <= 1e-6, "warmup %zu total %zu min %.2f: step %zu -> %.9f "
          "(want %.9f)", c->warmup, c->total_steps, (double)c->min_lr_frac, step, (double)got,
          want);
}

static void test_schedule(void)
{
    printf("# optim_schedule: warm-up 10, 110 steps, min_lr_frac 0.1\n");
    optim_config c;
    optim_default_config(&c);
    c.warmup = 10;
    c.total_steps = 110;
    c.min_lr_frac = 0.1f;
    /* warm-up: (step + 1) / warmup, so step 0 already moves and step 9, the
     * last warm-up step, reaches 1 */
    schedule_is(&c, 0, 0.1);
    schedule_is(&c, 4, 0.5);
    schedule_is(&c, 9, 1.0);
    /* decay: progress p = (step - 10) / 100, 0.1 + 0.9 * (1 + cos(pi p)) / 2 */
    schedule_is(&c, 10, 1.0);                 /* p = 0 */
    schedule_is(&c, 35, 0.868198052);         /* p = 1/4: 0.1 + 0.45 (1 + 0.707106781) */
    schedule_is(&c, 60, 0.55);                /* p = 1/2: 0.1 + 0.45 */
    schedule_is(&c, 85, 0.231801948);         /* p = 3/4: 0.1 + 0.45 (1 - 0.707106781) */
    schedule_is(&c, 109, 0.100222047);        /* last step, p = 0.99: 0.1 + 0.45 (1 - 0.999506560) */
    schedule_is(&c, 110, 0.1);                /* p = 1 */
    schedule_is(&c, 160, 0.1);                /* p = 1.5, past the end: held at min_lr_frac */
    schedule_is(&c, 1000, 0.1);

    printf("# optim_schedule: no warm-up; warm-up as long as the run\n");
    c.warmup = 0;
    c.total_steps = 100;
    c.min_lr_frac = 0.0f;
    schedule_is(&c, 0, 1.0);                  /* p = 0 */
    schedule_is(&c, 50, 0.5);                 /* p = 1/2: (1 + 0) / 2 */
    schedule_is(&c, 100, 0.0);
    c.warmup = 100;
    schedule_is(&c, 0, 0.01);
    schedule_is(&c, 99, 1.0);
    schedule_is(&c, 100, 1.0);                /* total <= warmup: no decay */
}

/* ---- pool_run's split ---- */

typedef struct {
    size_t n, threads;
    _Atomic unsigned *cover;       /* [n] times index i was run */
    _Atomic size_t *end_at;        /* [n] end of the block that began at i, 0 if none */
    _Atomic size_t calls;
    _Atomic int bad_worker;
} split_ctx;

static void split_fn(void *ctx, size_t worker, size_t begin, size_t end)
{
    split_ctx *s = ctx;
    if (worker >= s->threads || begin >= end || end > s->n) {
        atomic_store(&s->bad_worker, 1);
        return;
    }
    atomic_fetch_add(&s->calls, 1);
    atomic_store(&s->end_at[begin], end);
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&s->cover[i], 1);
}

/* One job of n items: the blocks are exactly pool_blocks(n, grain) ranges
 * [n i / B, n (i + 1) / B), each index is run once, each block holds grain
 * to 2 grain - 1 items when n >= grain, and no worker index is out of range. */
static void check_split(pool *p, size_t threads, size_t n, size_t grain)
{
    split_ctx s = {.n = n, .threads = threads};
    s.cover = calloc(n ? n : 1, sizeof *s.cover);
    s.end_at = calloc(n ? n : 1, sizeof *s.end_at);
    atomic_init(&s.calls, 0);
    atomic_init(&s.bad_worker, 0);
    pool_run(p, split_fn, &s, n, grain);

    const size_t blocks = n / grain ? n / grain : 1;
    int ok = !atomic_load(&s.bad_worker) && pool_blocks(n, grain) == blocks;
    ok = ok && atomic_load(&s.calls) == (n ? blocks : 0);
    for (size_t i = 0; ok && i < n; i++)
        ok = atomic_load(&s.cover[i]) == 1;
    for (size_t b = 0; ok && n && b < blocks; b++) {
        size_t begin = n * b / blocks, end = n * (b + 1) / blocks;
        ok = atomic_load(&s.end_at[begin]) == end;
        if (ok && n >= grain)
            ok = end - begin >= grain && end - begin <= 2 * grain - 1;
    }
    CHECK(ok, "threads %zu, n %zu, grain %zu: %zu block%s, each index once", threads, n, grain,
          n ? blocks : 0, n && blocks == 1 ? "" : "s");
    free(s.cover);
    free(s.end_at);
}

/* The threads of this process (/proc/self/task), 0 when unreadable. */
static size_t task_count(void)
{
    DIR *d = opendir("/proc/self/task");
    size_t n = 0;
    if (!d)
        return 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_pool(void)
{
    printf("# pool_run: blocks depend only on n and the grain\n");
    for (size_t threads = 1; threads <= 4; threads++) {
        pool *p = pool_create(threads);
        CHECK(p && pool_threads(p) == threads, "pool_create(%zu)", threads);
        if (!p)
            continue;
        const size_t grains[] = {1, 16, 128};
        for (size_t g = 0; g < sizeof grains / sizeof *grains; g++) {
            const size_t gr = grains[g];
            const size_t sizes[] = {0, 1, gr - 1, gr, gr + 1, 2 * gr - 1, 2 * gr, 10007};
            for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
                check_split(p, threads, sizes[k], gr);
        }
        pool_destroy(p);
    }
    printf("# pool_park / pool_unpark: the workers go and come back (detach)\n");
    for (size_t threads = 1; threads <= 4; threads++) {
        pool *p = pool_create(threads);
        GL_ASSERT(p);
        check_split(p, threads, 1000, 16);
        size_t before = task_count();
        pool_park(p);
        pool_park(p);   /* twice: nothing more */
        size_t parked = task_count();
        CHECK(parked + (threads - 1) == before, "threads %zu: park joins its %zu worker%s (%zu -> %zu tasks)",
              threads, threads - 1, threads == 2 ? "" : "s", before, parked);
        CHECK(pool_unpark(p) == 0 && pool_unpark(p) == 0 && task_count() == before,
              "threads %zu: unpark starts them again (%zu tasks)", threads, task_count());
        check_split(p, threads, 10007, 16);
        pool_park(p);
        pool_destroy(p);   /* a parked pool */
    }
    CHECK(pool_blocks(0, 16) == 1 && pool_blocks(15, 16) == 1 && pool_blocks(16, 16) == 1 &&
              pool_blocks(31, 16) == 1 && pool_blocks(32, 16) == 2 && pool_blocks(100, 0) == 100,
          "pool_blocks: 0/15/16/31 -> 1, 32 -> 2, grain 0 read as 1");
}

/* ---- smooth_ema, event_kind_glyph ---- */

static void test_smooth(void)
{
    smooth_ema e;
    smooth_ema_init(&e, 0.9);
    double first = smooth_ema_push(&e, 3.0, 1), later = 0;
    for (int i = 0; i < 50; i++)
        later = smooth_ema_push(&e, 3.0, 1);
    /* debiased: a constant is shown as itself from the first point on */
    CHECK(fabs(first - 3.0) < 1e-12 && fabs(later - 3.0) < 1e-12,
          "a constant series smooths to itself (first %.15g, later %.15g)", first, later);
    smooth_ema_init(&e, 0.9);
    double a = smooth_ema_push(&e, 1.0, 1), b = smooth_ema_push(&e, 2.0, 1);
    /* by hand: ema 0.1, then 0.09 + 0.2 = 0.29; debiased 0.1/0.1 and 0.29/0.19 */
    CHECK(fabs(a - 1.0) < 1e-12 && fabs(b - 0.29 / 0.19) < 1e-12,
          "two points by hand: %.15g %.15g (want 1 and %.15g)", a, b, 0.29 / 0.19);
    smooth_ema one, two;
    smooth_ema_init(&one, 0.98);
    smooth_ema_init(&two, 0.98);
    double x1 = 0, x2 = 0;
    for (int i = 0; i < 10; i++) {
        x1 = smooth_ema_push(&one, 5.0 + i, 1);
        x1 = smooth_ema_push(&one, 5.0 + i, 1);
        x2 = smooth_ema_push(&two, 5.0 + i, 2);
    }
    CHECK(fabs(x1 - x2) < 1e-12, "a point of n = 2 is two updates (%.15g vs %.15g)", x1, x2);
    smooth_ema_init(&e, 0.0);
    CHECK(smooth_ema_push(&e, 7.5, 1) == 7.5 && smooth_ema_push(&e, -2.0, 3) == -2.0,
          "beta 0 leaves the values raw");
    static const char want[][2] = {{EV_SWAP, 'S'}, {EV_PAUSE, 'P'}, {EV_SET_K, 'K'},
                                   {EV_FREEZE, 'Z'}, {EV_UNFREEZE, 'Z'}, {EV_FORK, 'F'},
                                   {EV_DIVERGED, 'X'}, {EV_RESUMED, 'R'}, {EV_START, 0},
                                   {EV_CHECKPOINT, 0}, {EV_FINISH, 0}};
    int all = 1;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        all &= event_kind_glyph((event_kind)want[i][0]) == want[i][1];
    CHECK(all, "event markers: S P K Z F X R, none for start, checkpoint, finish");
}

/* ---- placement ---- */

static void test_placement(void)
{
    placement p;
    gl_error e = {{0}};
    /* 6 arms x 2 replicas on 12 ranks (issue 15's example): 6 groups */
    CHECK(placement_init(&p, 12, 2, &e) == 0 && p.groups == 6, "12 ranks, --dp 2: 6 groups");
    for (size_t a = 0; a < 6; a++)
        CHECK(placement_leader_of_arm(&p, a) == (int)(2 * a) &&
                  placement_trains(&p, (int)(2 * a + 1), a) &&
                  !placement_trains(&p, (int)(2 * a + 2) % 12, a),
              "arm %zu: ranks %zu and %zu", a, 2 * a, 2 * a + 1);
    CHECK(placement_replica_of_rank(&p, 7) == 1 && placement_group_of_rank(&p, 7) == 3,
          "rank 7: replica 1 of group 3");
    /* arms over 2 ranks: round-robin, rank 0 trains arm 0 */
    CHECK(placement_init(&p, 2, 1, &e) == 0, "2 ranks, no --dp");
    CHECK(placement_group_of_arm(&p, 0) == 0 && placement_group_of_arm(&p, 1) == 1 &&
              placement_group_of_arm(&p, 2) == 0 && placement_leader_of_arm(&p, 3) == 1,
          "arms 0,1,2,3 on ranks 0,1,0,1");
    /* a job of one: every arm local */
    CHECK(placement_init(&p, 1, 1, &e) == 0 && placement_trains(&p, 0, 5), "one rank trains all");
    CHECK(placement_init(&p, 3, 2, &e) == -1 && strstr(e.msg, "--dp 2") && strstr(e.msg, "3 ranks"),
          "--dp 2 on 3 ranks refused: %s", e.msg);
    CHECK(placement_init(&p, 2, 0, &e) == -1 && strstr(e.msg, "--dp 0"), "--dp 0 refused: %s",
          e.msg);
}

int main(void)
{
    test_placement();
    test_command();
    test_command_format();
    test_schedule();
    test_pool();
    test_smooth();
    return check_finish();
}
