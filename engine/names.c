/*
 * names.c - see names.h.
 */
#include "engine/names.h"

#include <string.h>

int tf_name_valid(const char *name, size_t max) {
    size_t len = strlen(name);
    if (len == 0 || len > max) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-')) {
            return 0;
        }
    }
    return 1;
}
