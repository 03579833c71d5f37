/* store_tail: following a session another process is writing (`gatelab
 * watch`). Each poll reads, in one short read transaction (WAL: it never
 * blocks the writer, and sees one consistent commit), only what was
 * committed since the previous poll — per run the metrics after the last
 * step read, the layer metrics of evaluations not yet read, the events
 * after the last event id, the newest heatmap step, and the runs' status —
 * and hands it over as the same tel_records the trainer makes, so a watcher
 * folds them exactly as the live screen does. It reads only: the one write
 * a watcher makes is a command (store_command_add). */
#ifndef GATELAB_STORE_TAIL_H
#define GATELAB_STORE_TAIL_H

#include <stdint.h>

#include "common.h"
#include "record.h"
#include "store.h"

typedef struct store_tail store_tail;

/* Follows `session` of s (which must stay open until store_tail_close);
 * 0: the newest session that has runs. "no session N in PATH" when there is
 * none, "PATH has no sessions to watch" when there are none at all. */
store_tail *store_tail_open(store *s, int64_t session, gl_error *err);
/* Finalizes the tail's statements: before store_close. NULL is fine. */
void store_tail_close(store_tail *t);

/* What a poll hands over, in this order for each poll:
 *   REC_RUN_BEGIN  a run seen for the first time (its step: start_step;
 *                  name, gate at its start, parent_arm: UINT32_MAX or the
 *                  arm it was forked from)
 *   REC_STEP       each new train_loss row (loss; grad_norm, lr NaN)
 *   REC_LAYER      each (layer, head) of a new evaluation, before it
 *   REC_EVAL       each new evaluation (val_loss present), with the other
 *                  evaluation metrics of that step (absent ones NaN) and
 *                  the step's train_loss
 *   REC_EVENT      each new event, in id order, with the gate in force
 *                  after it (an event stored without one — crash marking,
 *                  a diverged metric — gets the run's latest known gate)
 *   REC_HEATMAP    the run has heatmaps at a newer step (r->step; the
 *                  planes are read with store_get_heatmaps)
 *   REC_STATUS     the run's status changed (or is not `running` when
 *                  first seen); its step is the run's final step or the
 *                  last step read
 *   REC_SESSION_END  once, when the session has ended: every run has a
 *                  final status (or ended_at is set and it has no runs; a
 *                  run that `resume` made live again keeps it going)
 * run: the record's run id. fn returning nonzero stops the poll (its
 * status is returned; the records not yet handed over come again at the
 * next poll only for the tables not yet advanced — so stop only to quit). */
typedef int (*store_tail_fn)(void *ctx, int64_t run, const tel_record *r);
int store_tail_poll(store_tail *t, store_tail_fn fn, void *ctx, gl_error *err);

int64_t store_tail_session(const store_tail *t);
/* The session was picked as the newest (none was named). */
int store_tail_newest(const store_tail *t);
/* The REC_SESSION_END of the session has been handed over. */
int store_tail_ended(const store_tail *t);
/* When the session has not ended but every live run's owner is a process
 * of this host that is gone (it was killed; the next store_open marks its
 * runs crashed): that pid, else 0. The tail itself writes nothing. */
int64_t store_tail_owner_gone(const store_tail *t);

#endif
