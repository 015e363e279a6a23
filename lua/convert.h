/*
 * convert.h - Lua values to JSON and back, the one crossing of the
 * sandbox's boundary for data (results, arguments, tf.json).
 *
 * Lua to JSON reads with raw access only: no metamethod of the tenant's
 * (__index, __pairs, __tostring, __len) ever runs, so converting a value
 * cannot run tenant code.  It stops with a clear error at a cycle, past the
 * depth limit (checked before recursing, so a table nested 100 000 deep
 * cannot overflow the C stack) and past the output limit; it refuses
 * NaN and infinities, strings that are not UTF-8, functions, userdata
 * and threads, and keys that are neither strings nor array indices.
 *
 * Tables: a table whose keys are exactly 1..n is an array; a table with
 * string keys is an object; an empty table is an object unless it carries
 * the array marker (tf.json.array()).  JSON null is the light userdata
 * NULL (tf.json.null) both ways, so nulls in arrays keep their place.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p].
 */
#ifndef TF_LUA_CONVERT_H
#define TF_LUA_CONVERT_H

#include <stddef.h>

#include <lua.h>

#include "adapters/json/jbuf.h"

#define TF_LUA_JSON_DEPTH_MAX 32 /* = TF_JBUF_MAX_DEPTH */
#define TF_LUA_ERR_LEN 160

typedef struct {
    int max_depth;    /* 0: TF_LUA_JSON_DEPTH_MAX */
    size_t max_bytes; /* 0: unlimited */
} tf_lua_json_limits_t;

/* Registers the marker metatables (array, object) in the registry of the
 * state `L` belongs to.  [-0, +0, m] */
void tf_lua_json_init(lua_State *L);

/* Pushes an empty table marked as a JSON array or object.  [-0, +1, m] */
void tf_lua_json_push_array(lua_State *L);
void tf_lua_json_push_object(lua_State *L);

/* Writes the value at `idx` as JSON into `b`.  Returns 0; TF_EINVAL with a
 * sentence in `err` ("cycle at result.a.b", "nested deeper than 32 at ...",
 * "NaN at result.x", ...); or TF_ETOOBIG when the text would pass
 * max_bytes.  `path` names the value in messages ("result").  Never calls
 * a metamethod.  [-0, +0, m] */
int tf_lua_to_json(lua_State *L, int idx, const tf_lua_json_limits_t *lim, const char *path,
                   tf_jbuf_t *b, char err[TF_LUA_ERR_LEN]);

/* Parses the JSON text (`len` bytes) and pushes it as a Lua value.
 * Returns 0, or TF_EINVAL with why in `err` (malformed, too deep) and
 * nothing pushed.  [-0, +1 | 0, m] */
int tf_lua_push_json(lua_State *L, const char *text, size_t len, int max_depth,
                     char err[TF_LUA_ERR_LEN]);

/* A guard holds malloc'd memory while C code makes Lua calls that may
 * raise (a memory error longjmps past the code that would free it): the
 * userdata releases `ptr` when collected unless it was released before. */
typedef struct {
    void *ptr;
    void (*release)(void *ptr);
} tf_lua_guard_t;

/* Pushes a guard holding nothing yet.  [-0, +1, m] */
tf_lua_guard_t *tf_lua_push_guard(lua_State *L, void (*release)(void *ptr));

/* Releases what the guard holds now (idempotent). */
void tf_lua_guard_release(tf_lua_guard_t *g);

#endif
