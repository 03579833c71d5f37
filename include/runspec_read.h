/* runspec_read: the side of the run-spec table (runspec.h) that the rooms
 * which must not see the trainer's structs (ui/, store/) may use: a field of
 * a stored config JSON, read by its row's name and checked against the
 * row's type and range. */
#ifndef GATELAB_RUNSPEC_READ_H
#define GATELAB_RUNSPEC_READ_H

#include <stddef.h>

/* The count field `name` (a row of type size) of the config JSON: its value,
 * or dflt when the JSON lacks it or holds something the row refuses. */
size_t runspec_json_size(const char *json, const char *name, size_t dflt);

#endif
