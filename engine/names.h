/*
 * names.h - the one rule for names people pick and URLs carry: queues and
 * Lua executors are 1 to `max` characters of letters, digits and _ . : -
 * (so they need no quoting in URLs, logs or SQL array literals).
 * Pure; any thread.
 */
#ifndef TF_ENGINE_NAMES_H
#define TF_ENGINE_NAMES_H

#include <stddef.h>

/* True when `name` has 1 to `max` bytes, each of [A-Za-z0-9_.:-]. */
int tf_name_valid(const char *name, size_t max);

#endif
