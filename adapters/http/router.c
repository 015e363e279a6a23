/*
 * router.c - maps a method and a path to a handler.
 *
 * Routes are kept in a tree of path segments: each node has literal children
 * and at most one parameter child ("{name}"), and the routes (one per
 * method) whose pattern ends there.  Matching walks the tree depth first,
 * literal child before parameter child, so a literal segment always beats a
 * parameter, and backtracks when a branch has no route for the method.  When
 * the path exists but not for this method the caller answers 405 with the
 * union of the methods that would have matched.
 *
 * The router is built on one thread before the server starts and is only
 * read afterwards, so loop threads share it without locks.
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/http/http_internal.h"
#include "engine/error.h"

typedef struct router_node router_node_t;

struct router_node {
    char *literal; /* NULL for the parameter child and the root */
    router_node_t **children;
    size_t nchildren;
    router_node_t *param;
    tf__http_route_t **routes;
    size_t nroutes;
};

struct tf_router {
    router_node_t root;
    size_t max_depth;
};

typedef struct {
    const char *method;
    char *const *segs;
    size_t nseg;
    const tf__http_route_t *head_fallback;
    tf__http_match_t *out;
} match_state_t;

static char *dup_range(const char *s, size_t len) {
    char *out = malloc(len + 1);
    if (out != NULL) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

static void route_free(tf__http_route_t *route) {
    if (route == NULL) {
        return;
    }
    for (size_t i = 0; i < route->nparams; i++) {
        free(route->param_names[i]);
    }
    free(route->param_names);
    free(route->param_pos);
    free(route->method);
    free(route->pattern);
    free(route);
}

static void node_free_children(router_node_t *node) {
    for (size_t i = 0; i < node->nchildren; i++) {
        node_free_children(node->children[i]);
        free(node->children[i]->literal);
        free(node->children[i]);
    }
    free(node->children);
    if (node->param != NULL) {
        node_free_children(node->param);
        free(node->param);
    }
    for (size_t i = 0; i < node->nroutes; i++) {
        route_free(node->routes[i]);
    }
    free(node->routes);
}

int tf_router_create(tf_router_t **out) {
    tf_router_t *router = calloc(1, sizeof(*router));
    if (router == NULL) {
        return TF_ENOMEM;
    }
    *out = router;
    return 0;
}

void tf_router_destroy(tf_router_t *router) {
    if (router == NULL) {
        return;
    }
    node_free_children(&router->root);
    free(router);
}

static int is_token_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int valid_param_name(const char *s, size_t len) {
    if (len == 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9'))) {
            return 0;
        }
    }
    return 1;
}

static router_node_t *node_literal_child(const router_node_t *node, const char *seg, size_t len) {
    for (size_t i = 0; i < node->nchildren; i++) {
        const char *lit = node->children[i]->literal;
        if (strlen(lit) == len && memcmp(lit, seg, len) == 0) {
            return node->children[i];
        }
    }
    return NULL;
}

static router_node_t *node_add_literal(router_node_t *node, const char *seg, size_t len) {
    router_node_t *child = node_literal_child(node, seg, len);
    if (child != NULL) {
        return child;
    }
    router_node_t **grown = realloc(node->children, (node->nchildren + 1) * sizeof(*grown));
    if (grown == NULL) {
        return NULL;
    }
    node->children = grown;
    child = calloc(1, sizeof(*child));
    if (child == NULL || (child->literal = dup_range(seg, len)) == NULL) {
        free(child);
        return NULL;
    }
    node->children[node->nchildren++] = child;
    return child;
}

static router_node_t *node_add_param(router_node_t *node) {
    if (node->param == NULL) {
        node->param = calloc(1, sizeof(*node->param));
    }
    return node->param;
}

static int route_add_param(tf__http_route_t *route, const char *name, size_t len, size_t pos) {
    char **names = realloc(route->param_names, (route->nparams + 1) * sizeof(*names));
    if (names == NULL) {
        return TF_ENOMEM;
    }
    route->param_names = names;
    size_t *positions = realloc(route->param_pos, (route->nparams + 1) * sizeof(*positions));
    if (positions == NULL) {
        return TF_ENOMEM;
    }
    route->param_pos = positions;
    if ((names[route->nparams] = dup_range(name, len)) == NULL) {
        return TF_ENOMEM;
    }
    positions[route->nparams++] = pos;
    return 0;
}

/* Walks (creating) the nodes for `pattern`, recording its parameters in
 * `route`.  Sets *depth to the number of segments. */
static int router_build_path(tf_router_t *router, const char *pattern, tf__http_route_t *route,
                             router_node_t **leaf, size_t *depth) {
    router_node_t *node = &router->root;
    const char *p = pattern + 1;
    size_t pos = 0;
    for (;; pos++) {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int is_param = len >= 2 && p[0] == '{' && p[len - 1] == '}';
        if (is_param) {
            if (!valid_param_name(p + 1, len - 2)) {
                return TF_EINVAL;
            }
            int rc = route_add_param(route, p + 1, len - 2, pos);
            if (rc != 0) {
                return rc;
            }
            node = node_add_param(node);
        } else if (memchr(p, '{', len) != NULL || memchr(p, '}', len) != NULL) {
            return TF_EINVAL;
        } else {
            node = node_add_literal(node, p, len);
        }
        if (node == NULL) {
            return TF_ENOMEM;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    *leaf = node;
    *depth = pos + 1;
    return 0;
}

static int node_add_route(router_node_t *node, tf__http_route_t *route) {
    for (size_t i = 0; i < node->nroutes; i++) {
        if (strcmp(node->routes[i]->method, route->method) == 0) {
            return TF_ECONFLICT;
        }
    }
    tf__http_route_t **grown = realloc(node->routes, (node->nroutes + 1) * sizeof(*grown));
    if (grown == NULL) {
        return TF_ENOMEM;
    }
    node->routes = grown;
    node->routes[node->nroutes++] = route;
    return 0;
}

int tf_router_add(tf_router_t *router, const char *method, const char *pattern,
                  tf_http_handler_fn handler, void *handler_data) {
    if (router == NULL || method == NULL || pattern == NULL || handler == NULL ||
        pattern[0] != '/' || method[0] == '\0') {
        return TF_EINVAL;
    }
    for (const char *m = method; *m != '\0'; m++) {
        if (!is_token_char((unsigned char)*m)) {
            return TF_EINVAL;
        }
    }
    tf__http_route_t *route = calloc(1, sizeof(*route));
    if (route == NULL) {
        return TF_ENOMEM;
    }
    route->handler = handler;
    route->handler_data = handler_data;
    route->method = dup_range(method, strlen(method));
    route->pattern = dup_range(pattern, strlen(pattern));
    int rc = TF_ENOMEM;
    if (route->method == NULL || route->pattern == NULL) {
        goto fail;
    }
    router_node_t *leaf = NULL;
    size_t depth = 0;
    rc = router_build_path(router, pattern, route, &leaf, &depth);
    if (rc != 0) {
        goto fail;
    }
    rc = node_add_route(leaf, route);
    if (rc != 0) {
        goto fail;
    }
    if (depth > router->max_depth) {
        router->max_depth = depth;
    }
    return 0;
fail:
    /* Nodes created on the way stay: an empty node matches nothing. */
    route_free(route);
    return rc;
}

/* Adds `method` to the comma-separated Allow list unless present. */
static void allow_add(char *allow, const char *method) {
    size_t mlen = strlen(method);
    for (const char *p = allow; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == mlen && memcmp(p, method, len) == 0) {
            return;
        }
        p = end != NULL ? end + 2 : p + len;
    }
    size_t used = strlen(allow);
    size_t need = used + (used > 0 ? 2 : 0) + mlen + 1;
    if (need > TF__HTTP_ALLOW_MAX) {
        return;
    }
    if (used > 0) {
        memcpy(allow + used, ", ", 2);
        used += 2;
    }
    memcpy(allow + used, method, mlen + 1);
}

/* At a node where the path ends: the route for the method, or remember what
 * the node allows. */
static const tf__http_route_t *match_leaf(const router_node_t *node, match_state_t *st) {
    for (size_t i = 0; i < node->nroutes; i++) {
        const tf__http_route_t *route = node->routes[i];
        if (strcmp(route->method, st->method) == 0) {
            return route;
        }
    }
    for (size_t i = 0; i < node->nroutes; i++) {
        const tf__http_route_t *route = node->routes[i];
        if (st->out->pattern == NULL) {
            st->out->pattern = route->pattern;
        }
        if (st->head_fallback == NULL && strcmp(st->method, "HEAD") == 0 &&
            strcmp(route->method, "GET") == 0) {
            st->head_fallback = route;
        }
        allow_add(st->out->allow, route->method);
    }
    return NULL;
}

static const tf__http_route_t *match_node(const router_node_t *node, size_t depth,
                                          match_state_t *st) {
    if (depth == st->nseg) {
        return match_leaf(node, st);
    }
    const char *seg = st->segs[depth];
    router_node_t *child = node_literal_child(node, seg, strlen(seg));
    if (child != NULL) {
        const tf__http_route_t *found = match_node(child, depth + 1, st);
        if (found != NULL) {
            return found;
        }
    }
    if (node->param != NULL && seg[0] != '\0') {
        return match_node(node->param, depth + 1, st);
    }
    return NULL;
}

void tf__router_match(const tf_router_t *router, const char *method, char *const *segs, size_t nseg,
                      tf__http_match_t *out) {
    memset(out, 0, sizeof(*out));
    if (router == NULL || nseg > router->max_depth) {
        return;
    }
    match_state_t st = {.method = method, .segs = segs, .nseg = nseg, .out = out};
    const tf__http_route_t *route = match_node(&router->root, 0, &st);
    if (route == NULL) {
        route = st.head_fallback;
    }
    if (route != NULL) {
        out->route = route;
        out->pattern = route->pattern;
        out->allow[0] = '\0';
    }
}
