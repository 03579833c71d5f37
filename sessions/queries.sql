-- gatelab: ready queries over a session database (schema in sessions/README.md).
--
--   all of them:  sqlite3 -header -column sessions/gatelab.db < sessions/queries.sql
--   as CSV:       sqlite3 -header -csv sessions/gatelab.db < sessions/queries.sql
--
-- Each query follows its own "-- name: NAME" line and ends with ";", so a
-- tool can cut one out by name. Plain SQL only (no dot-commands): they also
-- run through sqlite3_exec, which is how tests/test_store_views.c checks them.

-- name: learned_vs_random
-- Each learned arm against its random-gate twin of the same session and
-- seed (soft vs random, topk vs topk-random), with the dense arm of that
-- seed as the reference, all compared at ONE evaluation step: the newest
-- step that every one of them reached while still running the gate it is
-- listed under (`step`; `status` says 'aligned', or 'at last clean step S:
-- random swapped to sigmoid at 238', or 'left out: ...' when there is no
-- such step). routing_benefit = random_ppl - learned_ppl (> 0: the learned
-- routing helps); routing_benefit_rel = that / (random_ppl - dense_ppl)
-- (1: all of dense's advantage recovered, 0: none), NULL with `rel_note`
-- when there is no dense arm or |random_ppl - dense_ppl| is under 1% of
-- dense_ppl (the quotient would be noise).
SELECT session, seed, learned_mode, learned_run,
       round(learned_ppl, 3) AS learned_ppl,
       random_mode, random_run,
       round(random_ppl, 3) AS random_ppl,
       round(routing_benefit, 3) AS routing_benefit,
       round(dense_ppl, 3) AS dense_ppl,
       round(routing_benefit_rel, 3) AS routing_benefit_rel,
       step, status, rel_note
FROM learned_vs_random
ORDER BY session, seed, learned_mode;

-- name: router_learned_vs_random
-- Mixture-of-experts arms (`--arms MODE+moe,MODE+moe-random`): each learned
-- router against its frozen random twin of the same session, seed, gate
-- mode and number of experts, with the dense-FFN arm of that gate mode
-- alongside when one ran, compared at one step as in learned_vs_random
-- (`step`, `status`). routing_benefit = random_ppl - learned_ppl (> 0:
-- learning the router helps).
SELECT session, seed, mode, ffn, learned_run,
       round(learned_ppl, 3) AS learned_ppl,
       random_run, round(random_ppl, 3) AS random_ppl,
       round(routing_benefit, 3) AS routing_benefit,
       dense_ffn_run, round(dense_ffn_ppl, 3) AS dense_ffn_ppl, step, status
FROM router_learned_vs_random
ORDER BY session, seed, mode;

-- name: val_ppl_by_step
-- The validation perplexity of every arm of the newest session, one column
-- per arm index (evals_wide): the curves side by side, step by step; an
-- empty cell is an arm that did not evaluate at that step.
SELECT step, round(arm0, 3) AS arm0, round(arm1, 3) AS arm1, round(arm2, 3) AS arm2,
       round(arm3, 3) AS arm3, round(arm4, 3) AS arm4, round(arm5, 3) AS arm5
FROM evals_wide
WHERE session = (SELECT max(session) FROM evals_wide)
ORDER BY step;

-- name: params
-- Every run's configuration as typed (`lr` 0.003, not 0.00300000003), one
-- row per setting; value_num is the number for numeric settings.
SELECT p.run, r.name, p.key, p.value_text, p.value_num
FROM params p
JOIN runs r ON r.id = p.run
WHERE p.key <> 'argv'
ORDER BY p.run, p.key;

-- name: swap_train_loss
-- Every gate swap, with the mean train loss over the 100 steps up to and
-- including the swap step and over the 100 steps after it (the new gate
-- takes effect at the next step). n_before / n_after count the steps that
-- had a loss (fewer near the ends of a run, or where the loss was NaN).
SELECT e.run, r.name, e.step, e.mode AS to_mode, e.detail,
       round(avg(m.value) FILTER (WHERE m.step <= e.step), 4) AS loss_before,
       count(m.value) FILTER (WHERE m.step <= e.step) AS n_before,
       round(avg(m.value) FILTER (WHERE m.step > e.step), 4) AS loss_after,
       count(m.value) FILTER (WHERE m.step > e.step) AS n_after,
       round(avg(m.value) FILTER (WHERE m.step > e.step)
             - avg(m.value) FILTER (WHERE m.step <= e.step), 4) AS change
FROM events e
JOIN runs r ON r.id = e.run
LEFT JOIN metrics m ON m.run = e.run AND m.key = 'train_loss'
                   AND m.step > e.step - 100 AND m.step <= e.step + 100
WHERE e.kind = 'swap'
GROUP BY e.id
ORDER BY e.run, e.step;

-- name: gate_over_time
-- Gate-oracle agreement per layer at every evaluation (means over heads):
-- F1 of the gate's keys vs the oracle top-k, the F1 a uniformly random mask
-- would score, the dense attention mass inside the gate's keys, and the
-- oracle's own mass (the ceiling). Dense arms have no gate and no rows.
SELECT g.run, r.name, g.layer, g.step,
       round(g.f1, 4) AS f1,
       round(g.chance, 4) AS chance_f1,
       round(g.mass_kept, 4) AS mass_kept,
       round(g.oracle_mass, 4) AS oracle_mass
FROM gate_agreement g
JOIN runs r ON r.id = g.run
WHERE g.f1 IS NOT NULL
ORDER BY g.run, g.layer, g.step;

-- name: throughput
-- Per run: training steps recorded, the last step, wall time from the first
-- to the last metric written, steps per second over that time, and the mean
-- of the tokens/s the trainer measured at each evaluation.
SELECT r.id AS run, r.name, r.mode, r.status,
       count(*) FILTER (WHERE m.key = 'train_loss') AS steps,
       max(m.step) AS last_step,
       round((max(m.wall_ms) - min(m.wall_ms)) / 1000.0, 1) AS wall_s,
       round(count(*) FILTER (WHERE m.key = 'train_loss') * 1000.0
             / nullif(max(m.wall_ms) - min(m.wall_ms), 0), 2) AS steps_per_s,
       round(avg(m.value) FILTER (WHERE m.key = 'tokens_per_s'), 0) AS tokens_per_s
FROM runs r
JOIN metrics m ON m.run = r.id
GROUP BY r.id
ORDER BY r.id;

-- name: failed_runs
-- Runs that crashed, diverged or failed, where they stopped and the last
-- thing they recorded (crash detection leaves an 'error' event naming the
-- lost owner; a failed run's error event names the checkpoint it could not
-- write).
SELECT f.run, f.session, f.name, f.mode, f.status, f.steps, f.ended_at,
       (SELECT e.kind || ': ' || e.detail FROM events e
         WHERE e.run = f.run ORDER BY e.step DESC, e.id DESC LIMIT 1) AS last_event
FROM run_final f
WHERE f.status IN ('crashed', 'diverged', 'failed')
ORDER BY f.run;

-- name: checkpoints
-- Every checkpoint file with its step; only resumable ones (optimiser state
-- and data cursor included) can continue a run with `gatelab resume`.
SELECT c.run, r.name, c.step, c.resumable, c.path, c.created
FROM checkpoints c
JOIN runs r ON r.id = c.run
ORDER BY c.run, c.step;

-- name: gate_segments
-- Which gate was in force when: one row per segment between swaps, k
-- changes and freezes; to_step is empty while the segment is still open.
SELECT s.run, r.name, s.from_step, s.to_step, s.mode, s.k, s.frozen
FROM segments s
JOIN runs r ON r.id = s.run
ORDER BY s.run, s.from_step;

-- name: run_overview
-- One line per run: status, steps, final and best validation loss, final
-- gate F1 and mass kept, mean tokens/s, and the gatelab version and git
-- revision that made it (the run_final view).
SELECT run, session, name, mode, status, steps,
       round(val_loss, 4) AS val_loss, round(val_ppl, 3) AS val_ppl,
       round(best_val_loss, 4) AS best_val_loss, best_val_step,
       round(f1, 4) AS f1, round(mass_kept, 4) AS mass_kept,
       round(tokens_per_s, 0) AS tokens_per_s, gatelab_version, git_rev
FROM run_final
ORDER BY run;

-- name: commands_by_session
-- Steering from outside (schema 6): every command sent to a session, what
-- became of it and how long the owner took to decide it (seconds).
SELECT c.session, c.id, coalesce(r.name, 'every arm') AS target, c.kind, c.arg, c.state,
       c.applied_step, c.reason,
       round((julianday(c.decided_at) - julianday(c.requested_at)) * 86400, 3) AS seconds
FROM commands c
LEFT JOIN runs r ON r.id = c.run
ORDER BY c.session, c.id;

-- name: commands_with_events
-- Each applied command beside the event it made on its run: the event's
-- step is the command's applied_step.
SELECT c.id AS command, c.kind, c.arg, c.applied_step, e.run, e.step, e.kind AS event,
       e.detail
FROM commands c
JOIN runs r ON r.session = c.session AND (c.run IS NULL OR r.id = c.run)
JOIN events e ON e.run = r.id AND e.step = c.applied_step AND e.detail LIKE '%sent%'
WHERE c.state = 'applied'
ORDER BY c.id, e.run;
