// Declarations of picohttpparser's request parser as exported by Debian's libh2o (libh2o-dev ships
// the library but not picohttpparser.h). Written from the documented C API; the ABI is stable.
#ifndef SLUICE_BENCH_PICOHTTPPARSER_H
#define SLUICE_BENCH_PICOHTTPPARSER_H
#include <stddef.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/// Returns bytes consumed, -1 on error, -2 when incomplete.
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);
#endif
