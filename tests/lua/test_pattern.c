/*
 * test_pattern.c - lua/pattern.c (string.find, match, gmatch and gsub of
 * the sandbox) against stock Lua 5.4's string library.
 *
 * Every case is one call, written as (function, subject, pattern, third and
 * fourth argument).  The same snippet runs in a plain lua_State with the
 * stock libraries and as a run of a real host; it serializes what the call
 * returned (each value with its type, bytes outside printable ASCII
 * escaped) or the error it raised, and the two texts must be equal.  A
 * failing case prints both, and every case of a test runs before it fails.
 * After the hand-written cases come 20 000 random ones (patterns built from
 * every kind of item, seeded by their index, compared a batch at a time).
 *
 * Then the limits stock Lua lacks: a catastrophic pattern ends at the run's
 * deadline, and deep matcher recursion is an error, not a crash.
 */
#include <lauxlib.h>
#include <lualib.h>

#include "tests/lua/lua_harness.h"

/* An argument: bytes (may hold NUL) or Lua source. */
typedef struct {
    const char *text;
    size_t len;
    int lua;
} arg_t;

#define B(lit)                                                                                     \
    { (lit), sizeof(lit) - 1, 0 }
#define LUA(src)                                                                                   \
    { (src), sizeof(src) - 1, 1 }

typedef struct {
    const char *fn; /* find, match, gmatch, gsub */
    arg_t subject, pattern;
    const char *a3, *a4; /* further arguments as Lua source; NULL: not passed */
} pcase_t;

typedef struct {
    h_env_t *env;
    lua_State *stock;
} fixture_t;

/* Serializes results identically in both worlds, with nothing but string
 * methods that pattern.c does not replace (byte, char) and the table
 * library.  The output is printable ASCII without '"' and '\', so the
 * host's JSON of it is the text in quotes. */
static const char PRELUDE[] =
    "local ALL do local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end"
    " ALL = table.concat(t) end\n"
    "local function esc(s)\n"
    "  local t = {}\n"
    "  for i = 1, #s do\n"
    "    local b = s:byte(i)\n"
    "    if b >= 32 and b < 127 and b ~= 34 and b ~= 92 and b ~= 60 then\n"
    "      t[#t + 1] = string.char(b)\n"
    "    else t[#t + 1] = '<' .. b .. '>' end\n"
    "  end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local function val(v)\n"
    "  if type(v) == 'string' then return \"'\" .. esc(v) .. \"'\" end\n"
    "  if math.type(v) then return math.type(v) .. ':' .. tostring(v) end\n"
    "  return type(v) .. ':' .. tostring(v)\n"
    "end\n"
    "local function ser(ok, ...)\n"
    "  if not ok then return 'error: ' .. esc(tostring((...))) end\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do out[i] = val((select(i, ...))) end\n"
    "  return table.concat(out, ', ')\n"
    "end\n"
    "local function all(it)\n"
    "  local out = {}\n"
    "  for n = 1, 60 do\n"
    "    local r = table.pack(it())\n"
    "    if r[1] == nil then break end\n"
    "    local parts = {}\n"
    "    for i = 1, r.n do parts[i] = val(r[i]) end\n"
    "    out[n] = '(' .. table.concat(parts, ', ') .. ')'\n"
    "  end\n"
    "  return table.concat(out, ' ')\n"
    "end\n";

typedef struct {
    char text[16384];
    size_t len;
} src_t;

static void src_add(src_t *s, const char *text, size_t len) {
    assert_true(s->len + len < sizeof(s->text));
    memcpy(s->text + s->len, text, len);
    s->len += len;
    s->text[s->len] = '\0';
}

static void src_adds(src_t *s, const char *text) {
    src_add(s, text, strlen(text));
}

/* Adds `a` as a Lua expression: its source, or its bytes as a literal. */
static void src_add_arg(src_t *s, const arg_t *a) {
    if (a->lua) {
        src_add(s, a->text, a->len);
        return;
    }
    src_adds(s, "\"");
    for (size_t i = 0; i < a->len; i++) {
        unsigned char c = (unsigned char)a->text[i];
        char esc[8];
        if (c >= 32 && c < 127 && c != '"' && c != '\\') {
            src_add(s, (const char *)&c, 1);
        } else {
            snprintf(esc, sizeof(esc), "\\%03u", (unsigned)c);
            src_adds(s, esc);
        }
    }
    src_adds(s, "\"");
}

static void case_source(const pcase_t *c, src_t *s) {
    s->len = 0;
    src_adds(s, PRELUDE);
    src_adds(s, "local S = ");
    src_add_arg(s, &c->subject);
    src_adds(s, "\nlocal P = ");
    src_add_arg(s, &c->pattern);
    src_adds(s, "\nreturn ser(pcall(function() return ");
    int gmatch = strcmp(c->fn, "gmatch") == 0;
    src_adds(s, gmatch ? "all(string.gmatch(S, P" : "string.");
    if (!gmatch) {
        src_adds(s, c->fn);
        src_adds(s, "(S, P");
    }
    if (c->a3 != NULL || c->a4 != NULL) {
        src_adds(s, ", ");
        src_adds(s, c->a3 != NULL ? c->a3 : "nil");
    }
    if (c->a4 != NULL) {
        src_adds(s, ", ");
        src_adds(s, c->a4);
    }
    src_adds(s, gmatch ? ")) end))\n" : ") end))\n");
}

/* Runs the snippet in the stock state; the serialized outcome goes to
 * `out`. */
static void run_stock(lua_State *L, const src_t *s, char *out, size_t outlen) {
    int rc = luaL_loadbuffer(L, s->text, s->len, "=test") /* the harness's name */;
    if (rc == LUA_OK) {
        rc = lua_pcall(L, 0, 1, 0);
    }
    const char *text = lua_tostring(L, -1);
    snprintf(out, outlen, "%s%s", rc == LUA_OK ? "" : "stock failed: ", text ? text : "?");
    lua_settop(L, 0);
}

/* The call of case `c` as Lua source, for messages. */
static const char *case_call(const pcase_t *c, src_t *s) {
    s->len = 0;
    src_adds(s, c->fn);
    src_adds(s, "(");
    src_add_arg(s, &c->subject);
    src_adds(s, ", ");
    src_add_arg(s, &c->pattern);
    if (c->a3 != NULL || c->a4 != NULL) {
        src_adds(s, ", ");
        src_adds(s, c->a3 != NULL ? c->a3 : "nil");
    }
    if (c->a4 != NULL) {
        src_adds(s, ", ");
        src_adds(s, c->a4);
    }
    src_adds(s, ")");
    return s->text;
}

/* Runs every case in both worlds; prints each difference, then fails if
 * there was one. */
static void compare_cases(fixture_t *f, const pcase_t *cases, size_t n) {
    static src_t src, call;
    int differ = 0;
    for (size_t i = 0; i < n; i++) {
        case_source(&cases[i], &src);
        char stock[4096], want[4200];
        run_stock(f->stock, &src, stock, sizeof(stock));
        snprintf(want, sizeof(want), "\"%s\"", stock);
        h_result_t r = h_run(f->env, "patterns", src.text);
        const char *got = r.status == TF_LUA_OK ? r.result : r.error_message;
        if (r.status != TF_LUA_OK || strcmp(r.result, want) != 0) {
            differ++;
            print_error("case %zu %s\n  stock: %s\n  ours:  %s%s\n", i, case_call(&cases[i], &call),
                        want, r.status == TF_LUA_OK ? "" : r.error_type, got);
        }
    }
    if (differ > 0) {
        print_error("%d of %zu cases differ from stock Lua\n", differ, n);
    }
    assert_int_equal(differ, 0);
}

#define COMPARE(f, cases) compare_cases((f), (cases), sizeof(cases) / sizeof((cases)[0]))

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->env = h_open(NULL);
    f->stock = luaL_newstate();
    assert_non_null(f->stock);
    luaL_openlibs(f->stock);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    lua_close(f->stock);
    h_close(f->env);
    free(f);
    return 0;
}

/* ---- conformance ---- */

static const pcase_t FIND_CASES[] = {
    {"find", B("hello world"), B("o"), NULL, NULL},
    {"find", B("hello world"), B("o w"), NULL, NULL},
    {"find", B("hello world"), B("xyz"), NULL, NULL},
    {"find", B("hello"), B("l+"), NULL, NULL},
    {"find", B("hello"), B("l"), "-2", NULL},
    {"find", B("hello"), B("l"), "0", NULL},
    {"find", B("hello"), B("l"), "5", NULL},
    {"find", B("hello"), B("o"), "5", NULL},
    {"find", B("hello"), B("l"), "6", NULL},
    {"find", B("hello"), B("l"), "100", NULL},
    {"find", B("hello"), B("h"), "-100", NULL},
    {"find", B("hello"), B("h"), "math.mininteger", NULL},
    {"find", B("hello"), B("h"), "math.maxinteger", NULL},
    {"find", B("hello"), B("l"), "'3'", NULL},
    {"find", B("hello"), B("l"), "3.0", NULL},
    {"find", B("hello"), B("l"), "3.5", NULL},
    {"find", B("hello"), B("l"), "'x'", NULL},
    {"find", B(""), B(""), NULL, NULL},
    {"find", B(""), B("a"), NULL, NULL},
    {"find", B(""), B("a*"), NULL, NULL},
    {"find", B("abc"), B(""), NULL, NULL},
    {"find", B("abc"), B(""), "2", NULL},
    {"find", B("abc"), B(""), "4", NULL},
    {"find", B("abc"), B(""), "5", NULL},
    {"find", B("abc"), B(""), "-1", NULL},
    {"find", B("abc"), B(""), "0", NULL},
    {"find", B("abc"), B(""), "-10", NULL},
    {"find", B("abc"), B(""), "10", "true"},
    {"find", B("abc"), B(""), "4", "true"},
    {"find", B("abc"), B("()"), "4", NULL},
    /* plain */
    {"find", B("a.b"), B("."), "1", "true"},
    {"find", B("a.b"), B("."), NULL, NULL},
    {"find", B("a+b"), B("+"), "1", "true"},
    {"find", B("a%b"), B("%"), "1", "true"},
    {"find", B("a%b"), B("%b"), "1", "1"},
    {"find", B("a.b.c"), B("."), "3", "true"},
    {"find", B("a.b.c"), B(".c"), "-2", "true"},
    {"find", B("a.b.c"), B(".c"), "-1", "true"},
    {"find", B("a.b"), B("."), "1", "false"},
    {"find", B("a.b"), B("."), "1", "nil"},
    {"find", B("[x]"), B("[x]"), "1", "true"},
    {"find", B("^ab"), B("^a"), "1", "true"},
    {"find", B("ab$"), B("b$"), "1", "true"},
    {"find", B("aaab"), B("aab"), NULL, NULL},
    {"find", B("a\0b"), B("\0"), NULL, NULL},
    {"find", B("a\0b"), B("\0b"), NULL, "true"},
    {"find", B("a\0b."), B("\0b."), NULL, NULL},
    {"find", B("a\0b."), B("\0b%."), NULL, NULL},
    /* captures in find */
    {"find", B("hello world"), B("(o)(r)"), NULL, NULL},
    {"find", B("hello"), B("()ll()"), NULL, NULL},
    {"find", B("key = value"), B("(%w+)%s*=%s*(%w+)"), NULL, NULL},
    /* anchors */
    {"find", B("hello"), B("^h"), NULL, NULL},
    {"find", B("hello"), B("^e"), NULL, NULL},
    {"find", B("hello"), B("^l"), "3", NULL},
    {"find", B("hello"), B("^l"), "2", NULL},
    {"find", B("aaa"), B("^a"), "-1", NULL},
    {"find", B("hello"), B("o$"), NULL, NULL},
    {"find", B("hello"), B("l$"), NULL, NULL},
    {"find", B("hello"), B("^hello$"), NULL, NULL},
    {"find", B(""), B("^$"), NULL, NULL},
    {"find", B("a"), B("^$"), NULL, NULL},
    {"find", B("a$b"), B("a$b"), NULL, NULL},
    {"find", B("a$"), B("a$$"), NULL, NULL},
    {"find", B("^a"), B("^^a"), NULL, NULL},
    {"find", B("*a"), B("^*"), NULL, NULL},
    {"find", B("abc"), B("$"), NULL, NULL},
    {"find", B("abc"), B("^"), NULL, NULL},
    {"find", B("abc"), B("^"), "3", NULL},
    /* arguments */
    {"find", LUA("123"), B("2"), NULL, NULL},
    {"find", B("a1b"), LUA("1"), NULL, NULL},
    {"find", LUA("nil"), B("a"), NULL, NULL},
    {"find", B("abc"), LUA("{}"), NULL, NULL},
};

static void test_pattern__find_matches_stock(void **state) {
    fixture_t *f = *state;
    COMPARE(f, FIND_CASES);
}

static const pcase_t MATCH_CASES[] = {
    {"match", B("hello world"), B("%w+"), NULL, NULL},
    {"match", B("hello world"), B("(%w+) (%w+)"), NULL, NULL},
    {"match", B("hello"), B("l+"), "4", NULL},
    {"match", B("hello"), B("."), "-1", NULL},
    {"match", B("hello"), B("."), "0", NULL},
    {"match", B("hello"), B("."), "6", NULL},
    {"match", B("hello"), B(""), "6", NULL},
    {"match", B("hello"), B(""), "7", NULL},
    {"match", B("hello"), B("()"), "6", NULL},
    {"match", B("hello"), B("()"), "-2", NULL},
    {"match", B(""), B(""), NULL, NULL},
    {"match", B(""), B("()"), NULL, NULL},
    {"match", B(""), B(".*"), NULL, NULL},
    {"match", B(""), B(".+"), NULL, NULL},
    /* '.' and quantifiers */
    {"match", B("a\0b\n"), B("...."), NULL, NULL},
    {"match", B("a\0b\n"), B(".*"), NULL, NULL},
    {"match", B("aaab"), B("a*"), NULL, NULL},
    {"match", B("aaab"), B("a+"), NULL, NULL},
    {"match", B("aaab"), B("a-"), NULL, NULL},
    {"match", B("aaab"), B("a-b"), NULL, NULL},
    {"match", B("aaab"), B("a?"), NULL, NULL},
    {"match", B("aaab"), B("a?a?a?a?b"), NULL, NULL},
    {"match", B("baaa"), B("a*"), NULL, NULL},
    {"match", B("baaa"), B("a+"), NULL, NULL},
    {"match", B("baaa"), B("ba-$"), NULL, NULL},
    {"match", B("xabab"), B("[ab]*b"), NULL, NULL},
    {"match", B("xabab"), B("[ab]-b"), NULL, NULL},
    {"match", B("<a><b>"), B("<.->"), NULL, NULL},
    {"match", B("<a><b>"), B("<.*>"), NULL, NULL},
    {"match", B("<a><b>"), B("<(.-)>$"), NULL, NULL},
    {"match", B("3.14159 and 42"), B("%d+%.?%d*"), NULL, NULL},
    {"match", B("  trim me  "), B("^%s*(.-)%s*$"), NULL, NULL},
    {"match", B("aaa"), B("a-a-a-$"), NULL, NULL},
    {"match", B("ab"), B("a?b?c?"), NULL, NULL},
    {"match", B("b"), B("a?b"), NULL, NULL},
    {"match", B("ab"), B("a*?"), NULL, NULL},
    {"match", B("a?"), B("a%?"), NULL, NULL},
    {"match", B("a+b"), B("a%+b"), NULL, NULL},
    {"match", B("a-b"), B("a%-b"), NULL, NULL},
    {"match", B("a*b"), B("a%*b"), NULL, NULL},
    {"match", B("+-*?"), B("[+-]+"), NULL, NULL},
    {"match", B("--x"), B("-+"), NULL, NULL},
    {"match", B("*x"), B("*"), NULL, NULL},
    {"match", B("?x"), B("?"), NULL, NULL},
    /* captures */
    {"match", B("ab"), B("(a)(b)"), NULL, NULL},
    {"match", B("ab"), B("((a)(b))"), NULL, NULL},
    {"match", B("hello world"), B("((%a+) (%a+))"), NULL, NULL},
    {"match", B("ab"), B("()"), NULL, NULL},
    {"match", B("ab"), B("()a()"), NULL, NULL},
    {"match", B("ab"), B("(a*(.)%w(%s*))"), NULL, NULL},
    {"match", B("ab"), B("(x*)"), NULL, NULL},
    {"match", B("hello"), B("(h)(e)(l)(l)(o)"), NULL, NULL},
    {"match", B("abc"), B("(a)()(b)()(c)()"), NULL, NULL},
    {"match", B("abc"), B("a(()b)c"), NULL, NULL},
    {"match", LUA("string.rep('a', 32)"), LUA("string.rep('(a)', 32)"), NULL, NULL},
    {"match", LUA("string.rep('a', 33)"), LUA("string.rep('(a)', 33)"), NULL, NULL},
    /* back-references */
    {"match", B("aa"), B("(a)%1"), NULL, NULL},
    {"match", B("ab"), B("(a)%1"), NULL, NULL},
    {"match", B("hello hello world"), B("(%a+) %1"), NULL, NULL},
    {"match", B("hello"), B("(.)%1"), NULL, NULL},
    {"match", B("say \"hi\" and 'bye'"), B("([\"'])(.-)%1"), NULL, NULL},
    {"match", B("say 'hi\" and 'bye'"), B("([\"'])(.-)%1"), NULL, NULL},
    {"match", B("xyxy"), B("^(.-)%1$"), NULL, NULL},
    {"match", B("abab"), B("(a)(b)%1%2"), NULL, NULL},
    {"match", B("abc"), B("()%1"), NULL, NULL},
    {"match", B("aaaa"), B("((a)%2)%1"), NULL, NULL},
    {"match", B("a"), B("(a)%1?"), NULL, NULL},
    /* %b */
    {"match", B("f(a(b)c) d"), B("%b()"), NULL, NULL},
    {"match", B("f((a)"), B("%b()"), NULL, NULL},
    {"match", B("x[1][2]"), B("%b[]"), NULL, NULL},
    {"match", B("x[1][2]"), B("%b[]%b[]"), NULL, NULL},
    {"match", B("xaybyy"), B("%bxy"), NULL, NULL},
    {"match", B("''x''"), B("%b''"), NULL, NULL},
    {"match", B("(a)+"), B("%b()+"), NULL, NULL},
    {"match", B("(a)(b)"), B("%b()*"), NULL, NULL},
    {"match", B("a\0b\1c"), B("%b\0\1"), NULL, NULL},
    {"match", B(""), B("%b()"), NULL, NULL},
    {"match", B("("), B("%b()"), NULL, NULL},
    /* %f */
    {"match", B("THE (quick) fox"), B("%f[%a]%a+"), NULL, NULL},
    {"match", B("THE (quick) fox"), B("%f[%l]%a+"), NULL, NULL},
    {"match", B("hello world"), B("%f[%w]%w+%f[%W]"), "2", NULL},
    {"match", B("hello"), B("%f[%W]"), NULL, NULL},
    {"match", B("hello"), B("()%f[%W]"), NULL, NULL},
    {"match", B("hello"), B("()%f[\0]"), NULL, NULL},
    {"match", B("hello"), B("()%f[%z]"), NULL, NULL},
    {"match", B(""), B("()%f[%w]"), NULL, NULL},
    {"match", B(""), B("()%f[^%w]"), NULL, NULL},
    {"match", B("ab"), B("()%f[a]"), NULL, NULL},
    {"match", B("aab"), B("()%f[b]"), NULL, NULL},
    {"match", B("a]b"), B("%f[]]."), NULL, NULL},
    /* '\0' in patterns */
    {"match", B("a\0b\0c"), B("\0(.)\0"), NULL, NULL},
    {"match", B("a\0b"), B("[\0]"), NULL, NULL},
    {"match", B("a\0b"), B("[^\0]+$"), NULL, NULL},
    {"match", B("a\0b"), B("%c"), NULL, NULL},
    {"match", B("a\0b"), B(".\0."), NULL, NULL},
    {"match", B("a\0b"), B("%\0b"), NULL, NULL},
    {"match", B("a\0\0\0b"), B("\0+"), NULL, NULL},
    {"match", B("a\0\0\0b"), B("[\0-\3]*b"), NULL, NULL},
    {"match", B("a\0b"), B("a\0b$"), NULL, NULL},
    {"match", B("a\0b"), B("a%z"), NULL, NULL},
};

static void test_pattern__match_matches_stock(void **state) {
    fixture_t *f = *state;
    COMPARE(f, MATCH_CASES);
}

/* Each class or set against all 256 bytes: gsub drops what matches. */
static const pcase_t CLASS_CASES[] = {
    {"gsub", LUA("ALL"), B("%a"), "''", NULL},
    {"gsub", LUA("ALL"), B("%A"), "''", NULL},
    {"gsub", LUA("ALL"), B("%c"), "''", NULL},
    {"gsub", LUA("ALL"), B("%C"), "''", NULL},
    {"gsub", LUA("ALL"), B("%d"), "''", NULL},
    {"gsub", LUA("ALL"), B("%D"), "''", NULL},
    {"gsub", LUA("ALL"), B("%g"), "''", NULL},
    {"gsub", LUA("ALL"), B("%G"), "''", NULL},
    {"gsub", LUA("ALL"), B("%l"), "''", NULL},
    {"gsub", LUA("ALL"), B("%L"), "''", NULL},
    {"gsub", LUA("ALL"), B("%p"), "''", NULL},
    {"gsub", LUA("ALL"), B("%P"), "''", NULL},
    {"gsub", LUA("ALL"), B("%s"), "''", NULL},
    {"gsub", LUA("ALL"), B("%S"), "''", NULL},
    {"gsub", LUA("ALL"), B("%u"), "''", NULL},
    {"gsub", LUA("ALL"), B("%U"), "''", NULL},
    {"gsub", LUA("ALL"), B("%w"), "''", NULL},
    {"gsub", LUA("ALL"), B("%W"), "''", NULL},
    {"gsub", LUA("ALL"), B("%x"), "''", NULL},
    {"gsub", LUA("ALL"), B("%X"), "''", NULL},
    {"gsub", LUA("ALL"), B("%z"), "''", NULL},
    {"gsub", LUA("ALL"), B("%Z"), "''", NULL},
    {"gsub", LUA("ALL"), B("."), "''", NULL},
    {"gsub", LUA("ALL"), B("%."), "''", NULL},
    {"gsub", LUA("ALL"), B("%%"), "''", NULL},
    {"gsub", LUA("ALL"), B("%]"), "''", NULL},
    {"gsub", LUA("ALL"), B("%\200"), "''", NULL},
    /* sets */
    {"gsub", LUA("ALL"), B("[^%a]"), "''", NULL},
    {"gsub", LUA("ALL"), B("[%a%d]"), "''", NULL},
    {"gsub", LUA("ALL"), B("[^%a%d%s]"), "''", NULL},
    {"gsub", LUA("ALL"), B("[%W%d]"), "''", NULL},
    {"gsub", LUA("ALL"), B("[\1-\177]"), "''", NULL},
    {"gsub", LUA("ALL"), B("[^\0-\177]"), "''", NULL},
    {"gsub", LUA("ALL"), B("[\200-\377]"), "''", NULL},
    {"gsub", LUA("ALL"), B("[^\1-\376]"), "''", NULL},
    {"gsub", B("abcxyz-]^"), B("[a-c]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[^a-c]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[]]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[^]]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[]a]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[a-]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[-a]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[%a-]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[%-]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[a%-z]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[z-a]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[%]]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[%^]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[a^]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[^^]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[^]^]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[a-c-z]"), "'.'", NULL},
    {"gsub", B("abcxyz-]^"), B("[x-]"), "'.'", NULL},
    {"gsub", B("abc.%xyz"), B("[.]"), "'!'", NULL},
    {"gsub", B("abc.%xyz"), B("[%%]"), "'!'", NULL},
    {"gsub", B("abc.%xyz"), B("[%.%%]+"), "'!'", NULL},
    {"gsub", B("abc.%xyz"), B("[%x]+"), "'!'", NULL},
    {"gsub", B("a_b1 c-d"), B("[%w_]+"), "'<%0>'", NULL},
    {"gsub", B("a(b)c"), B("[()]"), "''", NULL},
    {"gsub", B("a[b]c"), B("[[]"), "''", NULL},
    {"gsub", B("a[b]c"), B("[]%[]"), "''", NULL},
};

static void test_pattern__classes_and_sets_match_stock(void **state) {
    fixture_t *f = *state;
    COMPARE(f, CLASS_CASES);
}

static const pcase_t GMATCH_CASES[] = {
    {"gmatch", B("one two  three"), B("%a+"), NULL, NULL},
    {"gmatch", B("k=v, a=b"), B("(%w+)=(%w+)"), NULL, NULL},
    {"gmatch", B("abc"), B(""), NULL, NULL},
    {"gmatch", B("abc"), B("()"), NULL, NULL},
    {"gmatch", B(""), B(""), NULL, NULL},
    {"gmatch", B(""), B("a"), NULL, NULL},
    {"gmatch", B("abc"), B("a*"), NULL, NULL},
    {"gmatch", B("aXbaa"), B("a*"), NULL, NULL},
    {"gmatch", B("aXb"), B("%a*"), NULL, NULL},
    {"gmatch", B("a,b,,c"), B("([^,]*)"), NULL, NULL},
    {"gmatch", B("hello"), B("()(l)()"), NULL, NULL},
    /* '^' is no anchor for gmatch in 5.4 */
    {"gmatch", B("^a^a"), B("^a"), NULL, NULL},
    {"gmatch", B("aaa"), B("^a"), NULL, NULL},
    {"gmatch", B("aaa"), B("a$"), NULL, NULL},
    /* init (the third argument, new in 5.4) */
    {"gmatch", B("hello world"), B("%a+"), "3", NULL},
    {"gmatch", B("hello"), B("."), "-2", NULL},
    {"gmatch", B("hello"), B("."), "0", NULL},
    {"gmatch", B("hello"), B("."), "-100", NULL},
    {"gmatch", B("hello"), B(""), "5", NULL},
    {"gmatch", B("hello"), B(""), "6", NULL},
    {"gmatch", B("hello"), B(""), "7", NULL},
    {"gmatch", B("hello"), B(""), "10", NULL},
    {"gmatch", B("hello"), B("()"), "100", NULL},
    {"gmatch", B("hello"), B(".?"), "math.maxinteger", NULL},
    {"gmatch", B("hello"), B("l"), "'2'", NULL},
    {"gmatch", B("hello"), B("l"), "2.5", NULL},
    {"gmatch", B("a\0b\0"), B("[^\0]*"), NULL, NULL},
    {"gmatch", B("f(a)(b(c))"), B("%b()"), NULL, NULL},
    {"gmatch", B("THE (quick) fox"), B("%f[%a]%a+"), NULL, NULL},
    /* errors surface when iterating */
    {"gmatch", B("abc"), B("[a"), NULL, NULL},
    {"gmatch", B("abc"), B("(a"), NULL, NULL},
    {"gmatch", B("abc"), B("%1"), NULL, NULL},
};

static void test_pattern__gmatch_matches_stock(void **state) {
    fixture_t *f = *state;
    COMPARE(f, GMATCH_CASES);
}

static const pcase_t GSUB_CASES[] = {
    {"gsub", B("hello world"), B("o"), "'0'", NULL},
    {"gsub", B("hello world"), B("xyz"), "'0'", NULL},
    {"gsub", B("hello"), B(""), "'-'", NULL},
    {"gsub", B(""), B(""), "'x'", NULL},
    {"gsub", B(""), B("x*"), "'y'", NULL},
    {"gsub", B("abc"), B("x*"), "'-'", NULL},
    {"gsub", B("abc"), B("b*"), "'-'", NULL},
    {"gsub", B("abc"), B("$"), "'!'", NULL},
    {"gsub", B("abc"), B("^"), "'!'", NULL},
    {"gsub", B("abc"), B("^a"), "'x'", NULL},
    {"gsub", B("aaa"), B("^a"), "'x'", NULL},
    {"gsub", B("baa"), B("^a"), "'x'", NULL},
    {"gsub", B("aaa"), B("^a*"), "'x'", NULL},
    {"gsub", B("hello world"), B("o"), "'0'", "1"},
    {"gsub", B("hello world"), B("o"), "'0'", "0"},
    {"gsub", B("hello world"), B("o"), "'0'", "-1"},
    {"gsub", B("hello world"), B("o"), "'0'", "2.0"},
    {"gsub", B("hello world"), B("o"), "'0'", "1.5"},
    {"gsub", B("hello world"), B("o"), "'0'", "'1'"},
    {"gsub", B("hello world"), B("o"), "'0'", "nil"},
    {"gsub", B("hello world"), B(""), "'.'", "3"},
    /* string replacements */
    {"gsub", B("hello world"), B("(%w+)"), "'<%1>'", NULL},
    {"gsub", B("hello world"), B("%w+"), "'%0 %0'", NULL},
    {"gsub", B("hello world"), B("%w+"), "'[%0]%%'", NULL},
    {"gsub", B("hello"), B("l"), "'%%'", NULL},
    {"gsub", B("hello"), B("(l)(l)"), "'%2%1'", NULL},
    {"gsub", B("hello world"), B("(%w+) (%w+)"), "'%2 %1'", NULL},
    {"gsub", B("abc"), B("%w"), "'%1'", NULL},
    {"gsub", B("abc"), B("%w"), "'%2'", NULL},
    {"gsub", B("abc"), B("(%w)"), "'%2'", NULL},
    {"gsub", B("abc"), B("(%w)"), "'%9'", NULL},
    {"gsub", B("abc"), B("b"), "'%'", NULL},
    {"gsub", B("abc"), B("b"), "'x%'", NULL},
    {"gsub", B("abc"), B("b"), "'%x'", NULL},
    {"gsub", B("abc"), B("b"), "'%\\0'", NULL},
    {"gsub", B("abc"), B("x"), "'%x'", NULL},
    {"gsub", B("abc"), B("()b"), "'%1'", NULL},
    {"gsub", B("abc"), B("()b()"), "'%2-%1'", NULL},
    {"gsub", B("abc"), B("b"), "'\\0'", NULL},
    {"gsub", B("abc"), B("b"), "7", NULL},
    {"gsub", B("abc"), B("b"), "1.5", NULL},
    {"gsub", B("abc"), B("b"), "true", NULL},
    {"gsub", B("abc"), B("b"), "nil", NULL},
    {"gsub", B("abc"), B("b"), NULL, NULL},
    {"gsub", B("abc"), B("b"), "'%0%0%0'", "0"},
    {"gsub", B("a.b.c"), B("%."), "'/'", NULL},
    {"gsub", B("a\0b\0c"), B("\0"), "'-'", NULL},
    {"gsub", B("a\0b\0c"), B("%z"), "'-'", NULL},
    {"gsub", B("a\0b"), B("[\0]"), "'%0%0'", NULL},
    {"gsub", B("  trim  "), B("^%s+"), "''", NULL},
    {"gsub", B("  trim  "), B("%s+$"), "''", NULL},
    {"gsub", B("f(a(b)c) g(d)"), B("%b()"), "''", NULL},
    {"gsub", B("THE (quick) fox"), B("%f[%a]%a+"), "'W'", NULL},
    {"gsub", B("abc"), B("%f[%w]"), "'|'", NULL},
    {"gsub", B("hello world"), B("%f[%w]%w"), "string.upper", NULL},
    /* tables */
    {"gsub", B("hello world"), B("%w+"), "{hello = 'HI'}", NULL},
    {"gsub", B("$name is $age"), B("%$(%w+)"), "{name = 'Ann', age = 42}", NULL},
    {"gsub", B("$name is $age"), B("%$(%w+)"), "{name = false}", NULL},
    {"gsub", B("$name is $age"), B("%$(%w+)"), "{name = 1.5}", NULL},
    {"gsub", B("$name"), B("%$(%w+)"), "{name = {}}", NULL},
    {"gsub", B("$name"), B("%$(%w+)"), "{name = true}", NULL},
    {"gsub", B("abc"), B("()b"), "{[2] = 'X'}", NULL},
    {"gsub", B("abc"), B("%w"),
     "setmetatable({}, {__index = function(_, k)"
     " return k:upper() end})",
     NULL},
    {"gsub", B("a b c"), B("%w"), "{a = 1, b = 2, c = 3}", "2"},
    /* functions */
    {"gsub", B("hello world"), B("%w+"), "function(w) return w:upper() end", NULL},
    {"gsub", B("hello world"), B("%w+"), "function() end", NULL},
    {"gsub", B("hello world"), B("%w+"), "function() return nil end", NULL},
    {"gsub", B("hello world"), B("%w+"), "function() return false end", NULL},
    {"gsub", B("hello world"), B("%w+"),
     "function(w) if w == 'hello' then return false end return '!' end", NULL},
    {"gsub", B("hello world"), B("%w+"), "function() return 42 end", NULL},
    {"gsub", B("hello world"), B("%w+"), "function() return 0.5 end", NULL},
    {"gsub", B("hello world"), B("%w+"), "function() return {} end", NULL},
    {"gsub", B("hello world"), B("%w+"), "function() return true end", NULL},
    {"gsub", B("hello world"), B("(%w)(%w*)"), "function(a, b) return b .. a end", NULL},
    {"gsub", B("hello"), B("()l()"), "function(a, b) return a .. ':' .. b end", NULL},
    {"gsub", B("abc"), B(""), "function(...) return select('#', ...) end", NULL},
    {"gsub", B("hello world"), B("%w+"), "function(w) return #w end", "1"},
    {"gsub", B("abc"), B("(b)(c)"), "function(...) return table.concat({...}, '+') end", NULL},
    {"gsub", B("abc"), B("b"), "function(w) return w .. '\\0' end", NULL},
    /* errors */
    {"gsub", B("abc"), B("(b"), "'x'", NULL},
    {"gsub", B("abc"), B("b)"), "'x'", NULL},
    {"gsub", B("abc"), B("(b"), "function(w) return w end", NULL},
    {"gsub", B("abc"), B("(b"), "{}", NULL},
};

static void test_pattern__gsub_matches_stock(void **state) {
    fixture_t *f = *state;
    COMPARE(f, GSUB_CASES);
}

static const pcase_t ERROR_CASES[] = {
    {"find", B("abc"), B("%"), NULL, NULL},
    {"find", B("abc"), B("a%"), NULL, NULL},
    {"match", B("abc"), B("[a"), NULL, NULL},
    {"match", B("abc"), B("["), NULL, NULL},
    {"match", B("abc"), B("[^"), NULL, NULL},
    {"match", B("abc"), B("[]"), NULL, NULL},
    {"match", B("abc"), B("[^]"), NULL, NULL},
    {"match", B("abc"), B("[a%"), NULL, NULL},
    {"match", B("abc"), B("[a%]"), NULL, NULL},
    {"match", B("abc"), B("x[a"), NULL, NULL},
    {"match", B("abc"), B("%1"), NULL, NULL},
    {"match", B("abc"), B("%0"), NULL, NULL},
    {"match", B("abc"), B("(a)%2"), NULL, NULL},
    {"match", B("abc"), B("(a%1)"), NULL, NULL},
    {"match", B("abc"), B("x%1"), NULL, NULL},
    {"match", B("abc"), B(")"), NULL, NULL},
    {"match", B("abc"), B("a)"), NULL, NULL},
    {"match", B("abc"), B("x)"), NULL, NULL},
    {"match", B("abc"), B("(()"), NULL, NULL},
    {"match", B("abc"), B("("), NULL, NULL},
    {"match", B("abc"), B("(a"), NULL, NULL},
    {"find", B("abc"), B("(a"), NULL, NULL},
    {"match", B("abc"), B("(x"), NULL, NULL},
    {"match", B("abc"), B("%f"), NULL, NULL},
    {"match", B("abc"), B("%fa"), NULL, NULL},
    {"match", B("abc"), B("%f["), NULL, NULL},
    {"match", B("abc"), B("%f[a"), NULL, NULL},
    {"match", B("abc"), B("%b"), NULL, NULL},
    {"match", B("abc"), B("%bx"), NULL, NULL},
    {"match", B("abc"), B("%b("), NULL, NULL},
    {"match", LUA("''"), LUA("string.rep('()', 33)"), NULL, NULL},
    {"match", B("abc"), LUA("string.rep('(', 40)"), NULL, NULL},
    {"gsub", B("abc"), B("b"), "'%'", NULL},
    {"gsub", B("abc"), B("b"), "'%a'", NULL},
    {"gsub", B("abc"), B("b"), "{b = {}}", NULL},
    {"gsub", B("abc"), B("b"), "function() return {} end", NULL},
    /* the matcher's depth: stock's is 200 nested calls */
    {"match", LUA("string.rep('a', 300)"), LUA("string.rep('a?', 300)"), NULL, NULL},
    {"match", LUA("string.rep('a', 199)"), LUA("string.rep('a?', 199)"), NULL, NULL},
    {"match", LUA("string.rep('a', 198)"), LUA("string.rep('a?', 198)"), NULL, NULL},
    {"match", LUA("''"), LUA("string.rep('x*', 300)"), NULL, NULL},
    {"match", LUA("''"), LUA("string.rep('x-', 300)"), NULL, NULL},
    {"match", LUA("''"), LUA("string.rep('x?', 300)"), NULL, NULL},
    {"match", LUA("string.rep('a', 300)"), LUA("string.rep('a*', 300)"), NULL, NULL},
    {"match", LUA("string.rep('ab', 300)"), LUA("string.rep('a-b', 300)"), NULL, NULL},
    {"match", LUA("string.rep('a', 300)"), LUA("string.rep('a', 300)"), NULL, NULL},
    {"find", LUA("string.rep('a', 2000)"), B(".-b"), NULL, NULL},
    {"gsub", LUA("string.rep('a', 300)"), LUA("string.rep('a?', 300)"), "''", NULL},
    {"gmatch", LUA("string.rep('a', 300)"), LUA("string.rep('a?', 300)"), NULL, NULL},
};

static void test_pattern__errors_match_stock(void **state) {
    fixture_t *f = *state;
    COMPARE(f, ERROR_CASES);
}

/* ---- random patterns ---- */

/* Case `i` of the random cases: a pattern built from random items (sets,
 * classes, quantifiers, anchors, captures, back-references, %b, %f), a
 * random subject, a random function, init and replacement; the generator
 * is seeded by the index, so both worlds build the same case.  "hash"
 * mode folds the serialized outcomes of cases first..first+count-1 into a
 * number; "one" mode returns case `first` and its outcome. */
static const char FUZZ[] =
    "local MODE, FIRST, COUNT = '%s', %d, %d\n"
    "local seed\n"
    "local function rnd(n) seed = (seed * 1103515245 + 12345) %% 2147483648"
    " return seed // 65536 %% n + 1 end\n"
    "local function pick(t) return t[rnd(#t)] end\n"
    "local ATOMS = {'a', 'b', 'c', '.', '%%a', '%%d', '%%s', '%%w', '%%W', '%%p', '[ab]',"
    " '[^a]', '[a-c]', '[%%d ]', '[]a]', '[^]b]', 'x', '%%(', '%%.', ' ', '1', '%%z', '\\0',"
    " '[%%a-]', '[^%%s]', '%%-', '%%A', '-', '%%x', '[\\0-b]'}\n"
    "local QUANTS = {'', '', '', '*', '+', '-', '?'}\n"
    "local function item(depth)\n"
    "  local k = rnd(14)\n"
    "  if k == 1 and depth < 3 then\n"
    "    local t = {} for i = 1, rnd(3) do t[i] = item(depth + 1) end\n"
    "    return '(' .. table.concat(t) .. ')'\n"
    "  elseif k == 2 then return '()'\n"
    "  elseif k == 3 then return pick({'%%b()', '%%bab', '%%b((', '%%b)('})\n"
    "  elseif k == 4 then return pick({'%%f[%%w]', '%%f[%%W]', '%%f[a]', '%%f[^a]'})\n"
    "  elseif k == 5 then return '%%' .. rnd(3)\n"
    "  end\n"
    "  return pick(ATOMS) .. pick(QUANTS)\n"
    "end\n"
    "local function case(i)\n"
    "  seed = i * 7919 + 17\n"
    "  local p = {}\n"
    "  if rnd(4) == 1 then p[#p + 1] = '^' end\n"
    "  for j = 1, rnd(6) do p[#p + 1] = item(0) end\n"
    "  if rnd(4) == 1 then p[#p + 1] = '$' end\n"
    "  local s = {}\n"
    "  for j = 1, rnd(20) - 1 do s[j] = pick({'a', 'a', 'b', 'c', '1', ' ', '(', ')', '.', 'x',"
    " '\\0', 'A'}) end\n"
    "  local fn = pick({'find', 'match', 'gmatch', 'gsub'})\n"
    "  local a3 = rnd(3) == 1 and rnd(16) - 4 or nil\n"
    "  if fn == 'gsub' then a3 = pick({'<%%0>', '%%1', '', '%%2', {a = 'A', b = false},"
    " function(x, y) return y end}) end\n"
    "  return fn, table.concat(s), table.concat(p), a3\n"
    "end\n"
    "local function run(fn, s, p, a3)\n"
    "  if fn == 'gmatch' then\n"
    "    return ser(pcall(function() return all(string.gmatch(s, p, a3)) end))\n"
    "  end\n"
    "  return ser(pcall(string[fn], s, p, a3))\n"
    "end\n"
    "if MODE == 'one' then\n"
    "  local fn, s, p, a3 = case(FIRST)\n"
    "  local shown = (type(a3) == 'table' or type(a3) == 'function') and type(a3) or val(a3)\n"
    "  return fn .. '(' .. val(s) .. ', ' .. val(p) .. ', ' .. shown .. ') = ' .."
    " run(fn, s, p, a3)\n"
    "end\n"
    "local h = 0\n"
    "for i = FIRST, FIRST + COUNT - 1 do\n"
    "  local out = run(case(i))\n"
    "  for j = 1, #out do h = (h * 31 + out:byte(j)) & 0x7fffffff end\n"
    "end\n"
    "return h\n";

static void fuzz_source(src_t *s, const char *mode, int first, int count) {
    char tail[sizeof(FUZZ) + 64];
    snprintf(tail, sizeof(tail), FUZZ, mode, first, count);
    s->len = 0;
    src_adds(s, PRELUDE);
    src_adds(s, tail);
}

static void test_pattern__random_patterns_match_stock(void **state) {
    fixture_t *f = *state;
    static src_t src;
    enum { CASES = 20000, BATCH = 200 };
    int differ = 0;
    for (int first = 0; first < CASES; first += BATCH) {
        char stock[4096], want[4200];
        fuzz_source(&src, "hash", first, BATCH);
        run_stock(f->stock, &src, stock, sizeof(stock));
        h_result_t r = h_run(f->env, "patterns", src.text);
        assert_int_equal(r.status, TF_LUA_OK);
        if (strcmp(r.result, stock) == 0) {
            continue;
        }
        /* Narrow the batch down to its cases. */
        for (int i = first; i < first + BATCH; i++) {
            fuzz_source(&src, "one", i, 1);
            run_stock(f->stock, &src, stock, sizeof(stock));
            snprintf(want, sizeof(want), "\"%s\"", stock);
            r = h_run(f->env, "patterns", src.text);
            if (r.status != TF_LUA_OK || strcmp(r.result, want) != 0) {
                differ++;
                print_error("random case %d\n  stock: %s\n  ours:  %s%s\n", i, want, r.error_type,
                            r.status == TF_LUA_OK ? r.result : r.error_message);
            }
        }
    }
    assert_int_equal(differ, 0);
}

/* ---- limits ---- */

static void test_pattern__catastrophic_pattern_stops_at_deadline(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = 1000000000, .timeout_ms = 300};
    h_env_t *env = h_open(&lim);
    static const char *const hostile[] = {
        "local s = ('a'):rep(3000) return s:find(('a-'):rep(6) .. 'b')",
        "local s = ('a'):rep(3000) return s:match(('a*'):rep(8) .. 'b')",
        "local s = ('a'):rep(3000) return s:gsub(('a-'):rep(6) .. 'b', '')",
        "local s = ('a'):rep(3000) for m in s:gmatch(('.-'):rep(6) .. 'b') do end",
        /* pcall cannot swallow the kill */
        "local s = ('a'):rep(3000)"
        " return pcall(string.find, s, ('a-'):rep(6) .. 'b'), 'swallowed'",
        "local s = ('a'):rep(3000) while true do"
        " pcall(string.match, s, ('a*'):rep(8) .. 'b') end",
    };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        uint64_t start = uv_hrtime();
        h_result_t r = h_run(env, "t", hostile[i]);
        uint64_t elapsed_ms = (uv_hrtime() - start) / 1000000;
        h_assert_failed(r, "lua_deadline", "time limit");
        assert_true(elapsed_ms >= 250);
        assert_true(elapsed_ms < 5000);
        h_assert_ok(h_run(env, "t", "return ('abc'):match('b.')"), "\"bc\"");
    }
    h_close(env);
}

static void test_pattern__deep_recursion_is_an_error(void **state) {
    fixture_t *f = *state;
    /* Far past any C stack a recursive matcher could afford. */
    h_result_t r = h_run(f->env, "t", "local n = 200000 return ('a'):rep(n):match(('a?'):rep(n))");
    h_assert_failed(r, "lua_error", "pattern too complex");
    r = h_run(f->env, "t",
              "local n = 200000 local s, p = ('a'):rep(n), ('a?'):rep(n)"
              " local out = {}"
              " for _, fn in ipairs({string.find, string.match}) do"
              "   local ok, err = pcall(fn, s, p)"
              "   out[#out + 1] = tostring(ok) .. ' ' .. err"
              " end"
              " local ok, err = pcall(string.gsub, s, p, '')"
              " out[#out + 1] = tostring(ok) .. ' ' .. err"
              " local ok, err = pcall(function() for _ in s:gmatch(p) do end end)"
              " out[#out + 1] = tostring(ok) .. ' ' .. err"
              " return out");
    h_assert_ok(r, "[\"false pattern too complex\",\"false pattern too complex\","
                   "\"false pattern too complex\",\"false test:1: pattern too complex\"]");
    /* Deeply nested sets of captures and balanced items stay errors too. */
    r = h_run(f->env, "t", "return {pcall(string.match, 'x', ('('):rep(100000))}");
    h_assert_ok(r, "[false,\"too many captures\"]");
    r = h_run(f->env, "t",
              "local n = 100000"
              " return (('()'):rep(n)):match(('%b()'):rep(n))");
    assert_int_equal(r.status, TF_LUA_OK);
    /* The VM is fine afterwards. */
    h_assert_ok(h_run(f->env, "t", "return ('key=val'):match('(%w+)=(%w+)')"), "\"key\"");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pattern__find_matches_stock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pattern__match_matches_stock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pattern__classes_and_sets_match_stock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pattern__gmatch_matches_stock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pattern__gsub_matches_stock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pattern__errors_match_stock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pattern__random_patterns_match_stock, setup, teardown),
        cmocka_unit_test(test_pattern__catastrophic_pattern_stops_at_deadline),
        cmocka_unit_test_setup_teardown(test_pattern__deep_recursion_is_an_error, setup, teardown),
    };
    return cmocka_run_group_tests_name("lua patterns", tests, NULL, NULL);
}
