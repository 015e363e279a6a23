/*
 * openapi.h - serves the API's own OpenAPI 3.1 document at
 * GET /v1/openapi.json.
 *
 * The document is docs/openapi.json, compiled into the binary at build time
 * (cmake/EmbedFile.cmake, see adapters/app/CMakeLists.txt), so the server
 * always answers with the description of exactly the build it is.  The route
 * needs no authentication.  Read-only data; any loop thread.
 */
#ifndef TF_ADAPTERS_APP_OPENAPI_H
#define TF_ADAPTERS_APP_OPENAPI_H

#include <stddef.h>

#include "adapters/http/server.h"

/* docs/openapi.json, byte for byte, followed by a NUL; generated at build
 * time.  tf_openapi_json_len excludes the NUL. */
extern const char tf_openapi_json[];
extern const size_t tf_openapi_json_len;

/* Adds GET /v1/openapi.json to `router`, answering 200 with the embedded
 * document as application/json.  Returns 0 or a TF_E* code from
 * tf_router_add(). */
int tf_openapi_register(tf_router_t *router);

#endif
