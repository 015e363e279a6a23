/*
 * pattern.c - string.find, string.match, string.gmatch and string.gsub for
 * the sandbox, with Lua 5.4's pattern language (manual, section 6.4.1) and
 * a matcher that checks the run's deadline as it backtracks.
 *
 * Stock Lua's matcher never reaches the count hook: a pattern such as
 * ("a-"):rep(6).."b" against 3000 "a"s backtracks for minutes inside one
 * C call.  This matcher counts its steps and every STEP_CHECK of them
 * calls tf_lua_check_limits(), which kills the run at its deadline like
 * the hook does.  It keeps no heap state, so being killed
 * mid-match (a longjmp or a yield) leaks nothing.
 *
 * Written from the manual's description; behaviour matches stock Lua's for
 * every valid pattern (tests/lua/test_pattern.c compares them).
 * Loop thread of the host.
 */
#define _GNU_SOURCE /* memmem: glibc's is linear in the subject (two-way) */
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>

#include "lua/host_internal.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH 200    /* nested matcher calls before "pattern too complex" */
#define STEP_CHECK 1024  /* matcher steps between two limit checks */

#define CAP_UNCLOSED (-1)
#define CAP_POSITION (-2)

typedef struct {
    lua_State *L;
    const char *src, *src_end; /* the subject */
    const char *pat_end;
    int ncap;
    struct {
        const char *start;
        ptrdiff_t len; /* or CAP_UNCLOSED, CAP_POSITION */
    } cap[MAX_CAPTURES];
    int depth;
    unsigned steps;
} matcher_t;

static void count_step(matcher_t *m) {
    if (++m->steps % STEP_CHECK == 0) {
        tf_lua_check_limits(m->L);
    }
}

/* ---- character classes ---- */

static int class_has(int c, int cls) {
    int in;
    switch (tolower(cls)) {
    case 'a':
        in = isalpha(c);
        break;
    case 'c':
        in = iscntrl(c);
        break;
    case 'd':
        in = isdigit(c);
        break;
    case 'g':
        in = isgraph(c);
        break;
    case 'l':
        in = islower(c);
        break;
    case 'p':
        in = ispunct(c);
        break;
    case 's':
        in = isspace(c);
        break;
    case 'u':
        in = isupper(c);
        break;
    case 'w':
        in = isalnum(c);
        break;
    case 'x':
        in = isxdigit(c);
        break;
    case 'z': /* NUL: gone from the 5.4 manual, still in stock 5.4's matcher */
        in = c == 0;
        break;
    default:
        return cls == c; /* %. and the like: the character itself */
    }
    if (isupper(cls)) {
        in = !in;
    }
    return in != 0;
}

/* `open` is at '[', `close` at its ']'. */
static int set_has(int c, const char *open, const char *close) {
    const char *p = open + 1;
    int want = 1;
    if (*p == '^') {
        want = 0;
        p++;
    }
    while (p < close) {
        if (*p == '%') {
            p++;
            if (class_has(c, (unsigned char)*p)) {
                return want;
            }
            p++;
        } else if (p + 2 < close && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) {
                return want;
            }
            p += 3;
        } else {
            if ((unsigned char)*p == c) {
                return want;
            }
            p++;
        }
    }
    return !want;
}

/* The end of the single-character class starting at `p`. */
static const char *item_end(matcher_t *m, const char *p) {
    char c = *p++;
    if (c == '%') {
        if (p >= m->pat_end) {
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        }
        return p + 1;
    }
    if (c == '[') {
        if (p < m->pat_end && *p == '^') {
            p++;
        }
        do { /* the first character of a set is taken literally, even ']' */
            if (p >= m->pat_end) {
                luaL_error(m->L, "malformed pattern (missing ']')");
            }
            c = *p++;
            if (c == '%') {
                if (p >= m->pat_end) {
                    luaL_error(m->L, "malformed pattern (missing ']')");
                }
                p++;
            }
        } while (p >= m->pat_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* Whether subject byte `c` matches the class from `p` to `ep`. */
static int item_has(int c, const char *p, const char *ep) {
    switch (*p) {
    case '.':
        return 1;
    case '%':
        return class_has(c, (unsigned char)p[1]);
    case '[':
        return set_has(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

/* ---- the matcher ---- */

static const char *match(matcher_t *m, const char *s, const char *p);

static const char *balanced(matcher_t *m, const char *s, const char *p) {
    if (p + 1 >= m->pat_end) {
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    }
    if (s >= m->src_end || *s != p[0]) {
        return NULL;
    }
    int open = 1;
    while (++s < m->src_end) {
        count_step(m);
        if (*s == p[1]) {
            if (--open == 0) {
                return s + 1;
            }
        } else if (*s == p[0]) {
            open++;
        }
    }
    return NULL;
}

static const char *greedy(matcher_t *m, const char *s, const char *p, const char *ep) {
    ptrdiff_t n = 0;
    while (s + n < m->src_end && item_has((unsigned char)s[n], p, ep)) {
        count_step(m);
        n++;
    }
    for (; n >= 0; n--) {
        const char *r = match(m, s + n, ep + 1);
        if (r != NULL) {
            return r;
        }
    }
    return NULL;
}

static const char *lazy(matcher_t *m, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r != NULL) {
            return r;
        }
        if (s < m->src_end && item_has((unsigned char)*s, p, ep)) {
            s++;
        } else {
            return NULL;
        }
    }
}

static const char *open_capture(matcher_t *m, const char *s, const char *p, ptrdiff_t what) {
    if (m->ncap >= MAX_CAPTURES) {
        luaL_error(m->L, "too many captures");
    }
    m->cap[m->ncap].start = s;
    m->cap[m->ncap].len = what;
    m->ncap++;
    const char *r = match(m, s, p);
    if (r == NULL) {
        m->ncap--;
    }
    return r;
}

static const char *close_capture(matcher_t *m, const char *s, const char *p) {
    int i = m->ncap - 1;
    while (i >= 0 && m->cap[i].len != CAP_UNCLOSED) {
        i--;
    }
    if (i < 0) {
        luaL_error(m->L, "invalid pattern capture");
    }
    m->cap[i].len = s - m->cap[i].start;
    const char *r = match(m, s, p);
    if (r == NULL) {
        m->cap[i].len = CAP_UNCLOSED;
    }
    return r;
}

static int capture_index(matcher_t *m, int digit) {
    int i = digit - '1';
    if (i < 0 || i >= m->ncap || m->cap[i].len == CAP_UNCLOSED) {
        luaL_error(m->L, "invalid capture index %%%d", i + 1);
    }
    return i;
}

static const char *back_reference(matcher_t *m, const char *s, int digit) {
    int i = capture_index(m, digit);
    size_t len = (size_t)m->cap[i].len;
    if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[i].start, s, len) == 0) {
        return s + len;
    }
    return NULL;
}

static const char *match(matcher_t *m, const char *s, const char *p) {
    if (++m->depth > MAX_DEPTH) {
        luaL_error(m->L, "pattern too complex");
    }
    const char *r = NULL;
    for (;;) {
        count_step(m);
        if (p >= m->pat_end) {
            r = s;
            break;
        }
        if (*p == '(') {
            r = p + 1 < m->pat_end && p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                                                   : open_capture(m, s, p + 1, CAP_UNCLOSED);
            break;
        }
        if (*p == ')') {
            r = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pat_end) {
            r = s == m->src_end ? s : NULL;
            break;
        }
        if (*p == '%' && p + 1 < m->pat_end && p[1] == 'b') {
            s = balanced(m, s, p + 2);
            if (s == NULL) {
                break;
            }
            p += 4;
            continue;
        }
        if (*p == '%' && p + 1 < m->pat_end && p[1] == 'f') {
            p += 2;
            if (p >= m->pat_end || *p != '[') {
                luaL_error(m->L, "missing '[' after '%%f' in pattern");
            }
            const char *ep = item_end(m, p);
            int before = s == m->src ? 0 : (unsigned char)s[-1];
            int here = s < m->src_end ? (unsigned char)*s : 0;
            if (set_has(before, p, ep - 1) || !set_has(here, p, ep - 1)) {
                break;
            }
            p = ep;
            continue;
        }
        if (*p == '%' && p + 1 < m->pat_end && isdigit((unsigned char)p[1])) {
            s = back_reference(m, s, (unsigned char)p[1]);
            if (s == NULL) {
                break;
            }
            p += 2;
            continue;
        }
        const char *ep = item_end(m, p);
        int here = s < m->src_end && item_has((unsigned char)*s, p, ep);
        char q = ep < m->pat_end ? *ep : '\0';
        if (q == '?') {
            if (here && (r = match(m, s + 1, ep + 1)) != NULL) {
                break;
            }
            p = ep + 1;
            continue;
        }
        if (!here && (q == '*' || q == '-')) {
            p = ep + 1; /* zero repetitions, without nesting (as stock Lua counts depth) */
            continue;
        }
        if (q == '+') {
            r = here ? greedy(m, s + 1, p, ep) : NULL;
            break;
        }
        if (q == '*') {
            r = greedy(m, s, p, ep);
            break;
        }
        if (q == '-') {
            r = lazy(m, s, p, ep);
            break;
        }
        if (!here) {
            break;
        }
        s++;
        p = ep;
    }
    m->depth--;
    return r;
}

/* ---- captures to Lua ---- */

/* Pushes capture `i` of a match from s to e (the whole match when the
 * pattern has no captures and i is 0). */
static void push_capture(matcher_t *m, int i, const char *s, const char *e) {
    if (i >= m->ncap) {
        if (i != 0) {
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        }
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_UNCLOSED) {
        luaL_error(m->L, "unfinished capture");
    }
    if (len == CAP_POSITION) {
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].start - m->src) + 1);
    } else {
        lua_pushlstring(m->L, m->cap[i].start, (size_t)len);
    }
}

/* Pushes every capture (or the whole match when there is none and `s` is
 * not NULL); returns how many. */
static int push_captures(matcher_t *m, const char *s, const char *e) {
    int n = m->ncap == 0 && s != NULL ? 1 : m->ncap;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) {
        push_capture(m, i, s, e);
    }
    return n;
}

static void matcher_init(matcher_t *m, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp) {
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = p + lp;
    m->ncap = 0;
    m->depth = 0;
    m->steps = 0;
}

static void matcher_reset(matcher_t *m) {
    m->ncap = 0;
    m->depth = 0;
}

/* ---- the library functions ---- */

/* A start position as Lua 5.4 reads it: negative counts from the end. */
static size_t start_index(lua_Integer pos, size_t len) {
    if (pos > 0) {
        return (size_t)pos;
    }
    if (pos == 0 || pos < -(lua_Integer)len) {
        return 1;
    }
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t lp) {
    static const char specials[] = "^$*+?.([%-";
    for (size_t i = 0; i < lp; i++) {
        if (p[i] != '\0' && strchr(specials, p[i]) != NULL) {
            return 1;
        }
    }
    return 0;
}

static int find_or_match(lua_State *L, int find) {
    size_t ls = 0, lp = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
    if (init > ls + 1) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *hit = lp == 0 ? s + init - 1 : memmem(s + init - 1, ls - init + 1, p, lp);
        if (hit == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
        return 2;
    }
    matcher_t m;
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    matcher_init(&m, L, s, ls, p, lp);
    const char *from = s + init - 1;
    do {
        matcher_reset(&m);
        const char *e = match(&m, from, p);
        if (e != NULL) {
            if (find) {
                lua_pushinteger(L, (lua_Integer)(from - s) + 1);
                lua_pushinteger(L, (lua_Integer)(e - s));
                return push_captures(&m, NULL, NULL) + 2;
            }
            return push_captures(&m, from, e);
        }
    } while (from++ < m.src_end && !anchored);
    luaL_pushfail(L);
    return 1;
}

static int str_find(lua_State *L) {
    return find_or_match(L, 1);
}

static int str_match(lua_State *L) {
    return find_or_match(L, 0);
}

/* gmatch's iterator: upvalues subject, pattern, next position (0-based),
 * end of the last match (-1: none). */
static int gmatch_next(lua_State *L) {
    size_t ls = 0, lp = 0;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    lua_Integer pos = lua_tointeger(L, lua_upvalueindex(3));
    lua_Integer last = lua_tointeger(L, lua_upvalueindex(4));
    matcher_t m;
    matcher_init(&m, L, s, ls, p, lp);
    for (const char *from = s + pos; from <= m.src_end; from++) {
        matcher_reset(&m);
        const char *e = match(&m, from, p);
        if (e != NULL && e - s != last) {
            lua_pushinteger(L, (lua_Integer)(e - s));
            lua_copy(L, -1, lua_upvalueindex(3));
            lua_replace(L, lua_upvalueindex(4));
            return push_captures(&m, from, e);
        }
    }
    return 0;
}

static int str_gmatch(lua_State *L) {
    size_t ls = 0;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_index(luaL_optinteger(L, 3, 1), ls);
    if (init > ls + 1) {
        init = ls + 2; /* past the end: no match, ever (not even an empty one) */
    }
    lua_settop(L, 2);
    lua_pushinteger(L, (lua_Integer)init - 1);
    lua_pushinteger(L, -1);
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

/* Adds the replacement string at index 3 for a match from s to e. */
static void add_template(matcher_t *m, luaL_Buffer *b, const char *s, const char *e) {
    lua_State *L = m->L;
    size_t len = 0;
    const char *t = lua_tolstring(L, 3, &len);
    const char *end = t + len;
    while (t < end) {
        const char *pct = memchr(t, '%', (size_t)(end - t));
        if (pct == NULL) {
            luaL_addlstring(b, t, (size_t)(end - t));
            break;
        }
        luaL_addlstring(b, t, (size_t)(pct - t));
        t = pct + 1;
        if (t < end && *t == '%') {
            luaL_addchar(b, '%');
        } else if (t < end && isdigit((unsigned char)*t)) {
            if (*t == '0') {
                luaL_addlstring(b, s, (size_t)(e - s));
            } else {
                push_capture(m, *t - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        t++;
    }
}

static void add_replacement(matcher_t *m, luaL_Buffer *b, const char *s, const char *e,
                            int kind) {
    lua_State *L = m->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s)); /* keep the original */
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int str_gsub(lua_State *L) {
    size_t ls = 0, lp = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                            kind == LUA_TTABLE,
                     3, "string/function/table");
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    int anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    matcher_t m;
    matcher_init(&m, L, s, ls, p, lp);
    const char *from = s, *last = NULL;
    lua_Integer n = 0;
    while (n < max) {
        matcher_reset(&m);
        const char *e = match(&m, from, p);
        if (e != NULL && e != last) {
            n++;
            add_replacement(&m, &b, from, e, kind);
            from = last = e;
        } else if (from < m.src_end) {
            luaL_addchar(&b, *from++);
        } else {
            break;
        }
        if (anchored) {
            break;
        }
    }
    if (n == 0) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, from, (size_t)(m.src_end - from));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void tf__lua_patterns_install(lua_State *L, int idx) {
    static const luaL_Reg fns[] = {
        {"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch}, {"gsub", str_gsub},
        {NULL, NULL},
    };
    idx = lua_absindex(L, idx);
    for (const luaL_Reg *f = fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, idx, f->name);
    }
}
