/*
 * fuzz_main.c - runs a fuzz target without libFuzzer (gcc builds, the test
 * suite): every file of a corpus folder, then mutations of them (bytes
 * flipped, inserted, removed, spliced) from a fixed seed, for a number of
 * iterations.  A finding aborts (the target's checks) or is reported by
 * the sanitizers, as under libFuzzer.
 *
 *   fuzz_x <corpus folder> [iterations (2000)] [seed (1)]
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_INPUT_MAX 4096
#define MAX_SEEDS 256

static uint8_t *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static size_t nseeds;
static uint64_t rng;

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void load(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        perror(dir);
        exit(2);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nseeds < MAX_SEEDS) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            continue;
        }
        uint8_t *buf = malloc(FUZZ_INPUT_MAX);
        size_t n = fread(buf, 1, FUZZ_INPUT_MAX, f);
        fclose(f);
        seeds[nseeds] = buf;
        seed_len[nseeds++] = n;
    }
    closedir(d);
}

static size_t mutate(uint8_t *buf, size_t len) {
    int edits = 1 + (int)(next() % 4);
    for (int i = 0; i < edits; i++) {
        switch (next() % 5) {
        case 0: /* flip a byte */
            if (len > 0) {
                buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
            }
            break;
        case 1: /* a random byte in */
            if (len < FUZZ_INPUT_MAX) {
                size_t at = len > 0 ? next() % (len + 1) : 0;
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)next();
                len++;
            }
            break;
        case 2: /* a byte out */
            if (len > 0) {
                size_t at = next() % len;
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            }
            break;
        case 3: /* splice another seed's tail */
            if (nseeds > 0) {
                size_t s = next() % nseeds;
                size_t from = seed_len[s] > 0 ? next() % seed_len[s] : 0;
                size_t at = len > 0 ? next() % len : 0;
                size_t take = seed_len[s] - from;
                if (at + take > FUZZ_INPUT_MAX) {
                    take = FUZZ_INPUT_MAX - at;
                }
                memcpy(buf + at, seeds[s] + from, take);
                len = at + take;
            }
            break;
        default: /* repeat a chunk */
            if (len > 0 && len < FUZZ_INPUT_MAX / 2) {
                size_t from = next() % len;
                size_t take = 1 + next() % (len - from);
                memcpy(buf + len, buf + from, take);
                len += take;
            }
            break;
        }
    }
    return len;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s <corpus folder> [iterations] [seed]\n", argv[0]);
        return 2;
    }
    long iterations = argc > 2 ? atol(argv[2]) : 2000;
    rng = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    rng = rng != 0 ? rng : 1;
    load(argv[1]);
    for (size_t i = 0; i < nseeds; i++) {
        LLVMFuzzerTestOneInput(seeds[i], seed_len[i]);
    }
    uint8_t *buf = malloc(FUZZ_INPUT_MAX);
    for (long i = 0; i < iterations; i++) {
        size_t len = 0;
        if (nseeds > 0) {
            size_t s = next() % nseeds;
            memcpy(buf, seeds[s], seed_len[s]);
            len = seed_len[s];
        }
        len = mutate(buf, len);
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("%zu seeds and %ld mutations ran\n", nseeds, iterations);
    free(buf);
    for (size_t i = 0; i < nseeds; i++) {
        free(seeds[i]);
    }
    return 0;
}
