/*
 * timefmt.c - RFC 3339 formatting and parsing of millisecond timestamps
 * (see timefmt.h).
 *
 * Role: the one place where TaskFlow turns int64 Unix milliseconds into text
 * and back, for the API, the database layer and scripts.
 * Dates are converted with Howard Hinnant's days_from_civil/civil_from_days
 * algorithms on the proleptic Gregorian calendar, so no libc time zone or
 * locale state is involved.  Leap seconds (second 60) are rejected, as
 * TaskFlow's clock is POSIX time, which has none.
 * Pure; any thread.
 */
#include "engine/timefmt.h"

#include <stdbool.h>

#include "engine/error.h"

#define MS_PER_SECOND INT64_C(1000)
#define MS_PER_DAY INT64_C(86400000)
/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
#define TIME_MIN_MS INT64_C(-62167219200000)
#define TIME_MAX_MS INT64_C(253402300799999)

typedef struct {
    int64_t year;
    int month; /* 1..12 */
    int day;   /* 1..31 */
} civil_date_t;

int64_t tf_days_from_civil(int64_t year, int month, int day) {
    year -= month <= 2;
    const int64_t era = (year >= 0 ? year : year - 399) / 400;
    const int64_t year_of_era = year - era * 400;
    const int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    const int64_t day_of_era =
        year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

static civil_date_t civil_from_days(int64_t days) {
    days += 719468;
    const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const int64_t day_of_era = days - era * 146097;
    const int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    const int64_t day_of_year =
        day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    const int64_t month_index = (5 * day_of_year + 2) / 153; /* 0 = March */
    civil_date_t date;
    date.day = (int)(day_of_year - (153 * month_index + 2) / 5 + 1);
    date.month = (int)(month_index < 10 ? month_index + 3 : month_index - 9);
    date.year = year_of_era + era * 400 + (date.month <= 2);
    return date;
}

void tf_civil_from_days(int64_t days, int64_t *year, int *month, int *day) {
    const civil_date_t date = civil_from_days(days);
    *year = date.year;
    *month = date.month;
    *day = date.day;
}

int tf_weekday(int64_t days) {
    return (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
}

static bool is_leap_year(int64_t year) {
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int64_t year, int month) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap_year(year) ? 29 : days[month - 1];
}

/* Writes `value` as exactly `width` decimal digits at `out`. */
static void put_digits(char *out, int64_t value, int width) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

int tf_time_format(int64_t unix_ms, char out[TF_TIME_STR_LEN + 1]) {
    if (unix_ms < TIME_MIN_MS || unix_ms > TIME_MAX_MS) {
        return TF_ERANGE;
    }
    /* Floor division, so times before 1970 land on the right day. */
    int64_t days = unix_ms / MS_PER_DAY;
    int64_t ms_of_day = unix_ms % MS_PER_DAY;
    if (ms_of_day < 0) {
        ms_of_day += MS_PER_DAY;
        days--;
    }
    const civil_date_t date = civil_from_days(days);
    const int64_t seconds_of_day = ms_of_day / MS_PER_SECOND;

    put_digits(out, date.year, 4);
    out[4] = '-';
    put_digits(out + 5, date.month, 2);
    out[7] = '-';
    put_digits(out + 8, date.day, 2);
    out[10] = 'T';
    put_digits(out + 11, seconds_of_day / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, seconds_of_day / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, seconds_of_day % 60, 2);
    out[19] = '.';
    put_digits(out + 20, ms_of_day % MS_PER_SECOND, 3);
    out[23] = 'Z';
    out[24] = '\0';
    return 0;
}

/* A cursor over the input; every reader fails instead of running past the end. */
typedef struct {
    const char *text;
    size_t len;
    size_t pos;
} time_cursor_t;

/* Reads exactly `width` digits into `*value`. */
static bool read_digits(time_cursor_t *cur, int width, int *value) {
    if (cur->len - cur->pos < (size_t)width) {
        return false;
    }
    int result = 0;
    for (int i = 0; i < width; i++) {
        const char c = cur->text[cur->pos + (size_t)i];
        if (c < '0' || c > '9') {
            return false;
        }
        result = result * 10 + (c - '0');
    }
    cur->pos += (size_t)width;
    *value = result;
    return true;
}

/* Consumes one character if it is `lower` or `upper`. */
static bool read_char(time_cursor_t *cur, char lower, char upper) {
    if (cur->pos >= cur->len) {
        return false;
    }
    const char c = cur->text[cur->pos];
    if (c != lower && c != upper) {
        return false;
    }
    cur->pos++;
    return true;
}

/* Reads an optional ".digits" fraction; keeps the first three digits as ms. */
static bool read_fraction(time_cursor_t *cur, int *ms) {
    *ms = 0;
    if (!read_char(cur, '.', '.')) {
        return true;
    }
    int digits = 0;
    int scale = 100;
    while (cur->pos < cur->len && cur->text[cur->pos] >= '0' && cur->text[cur->pos] <= '9') {
        *ms += (cur->text[cur->pos] - '0') * scale;
        scale /= 10;
        digits++;
        cur->pos++;
    }
    return digits > 0;
}

/* Reads 'Z' or "+hh:mm" / "-hh:mm" into minutes east of UTC. */
static bool read_offset(time_cursor_t *cur, int *offset_minutes) {
    *offset_minutes = 0;
    if (read_char(cur, 'z', 'Z')) {
        return true;
    }
    int sign;
    if (read_char(cur, '+', '+')) {
        sign = 1;
    } else if (read_char(cur, '-', '-')) {
        sign = -1;
    } else {
        return false;
    }
    int hours;
    int minutes;
    if (!read_digits(cur, 2, &hours) || !read_char(cur, ':', ':') ||
        !read_digits(cur, 2, &minutes) || hours > 23 || minutes > 59) {
        return false;
    }
    *offset_minutes = sign * (hours * 60 + minutes);
    return true;
}

typedef struct {
    int year, month, day, hour, minute, second, ms, offset_minutes;
} time_fields_t;

static bool read_fields(time_cursor_t *cur, time_fields_t *f) {
    return read_digits(cur, 4, &f->year) && read_char(cur, '-', '-') &&
           read_digits(cur, 2, &f->month) && read_char(cur, '-', '-') &&
           read_digits(cur, 2, &f->day) && read_char(cur, 't', 'T') &&
           read_digits(cur, 2, &f->hour) && read_char(cur, ':', ':') &&
           read_digits(cur, 2, &f->minute) && read_char(cur, ':', ':') &&
           read_digits(cur, 2, &f->second) && read_fraction(cur, &f->ms) &&
           read_offset(cur, &f->offset_minutes) && cur->pos == cur->len;
}

static bool fields_in_range(const time_fields_t *f) {
    return f->month >= 1 && f->month <= 12 && f->day >= 1 &&
           f->day <= days_in_month(f->year, f->month) && f->hour <= 23 && f->minute <= 59 &&
           f->second <= 59;
}

int tf_time_parse(const char *text, size_t len, int64_t *out_unix_ms) {
    if (text == NULL || out_unix_ms == NULL) {
        return TF_EINVAL;
    }
    time_cursor_t cur = {.text = text, .len = len, .pos = 0};
    time_fields_t f;
    if (!read_fields(&cur, &f) || !fields_in_range(&f)) {
        return TF_EINVAL;
    }
    const int64_t days = tf_days_from_civil(f.year, f.month, f.day);
    const int64_t seconds =
        days * 86400 + f.hour * 3600 + f.minute * 60 + f.second - (int64_t)f.offset_minutes * 60;
    *out_unix_ms = seconds * MS_PER_SECOND + f.ms;
    return 0;
}
