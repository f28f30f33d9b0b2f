// CEpoll shim: out-of-line helpers (the header holds the static inline ones).
// Addresses, signal sets and thread start: calls with C structs Swift cannot build cleanly.
#define _GNU_SOURCE
#include <sched.h>
#include "CEpoll.h"

int sluice_accept(int fd) {
    // accept4: accepted sockets are non-blocking and close-on-exec from birth (no fcntl per connection).
    SLUICE_RET(accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

int sluice_pipe(int fds[2]) { SLUICE_RET(pipe2(fds, O_NONBLOCK | O_CLOEXEC)); }

long sluice_splice(int from, int to, size_t count) {
    SLUICE_RET(splice(from, NULL, to, NULL, count, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
}

int sluice_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }

int sluice_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int sluice_make_address(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len) {
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof *v4;
        return 0;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof *v6;
        return 0;
    }
    return -EINVAL;
}

int sluice_format_address(const struct sockaddr_storage *address, char *host, size_t host_len) {
    if (address->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        if (inet_ntop(AF_INET, &v4->sin_addr, host, (socklen_t)host_len) == NULL) return -errno;
        return ntohs(v4->sin_port);
    }
    if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
        if (inet_ntop(AF_INET6, &v6->sin6_addr, host, (socklen_t)host_len) == NULL) return -errno;
        return ntohs(v6->sin6_port);
    }
    return -EAFNOSUPPORT;
}

static void fill_set(sigset_t *set, const int *signals, int count) {
    sigemptyset(set);
    for (int i = 0; i < count; i++) sigaddset(set, signals[i]);
}

int sluice_block_signals(const int *signals, int count) {
    sigset_t set;
    fill_set(&set, signals, count);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    return rc == 0 ? 0 : -rc;
}

int sluice_signalfd(const int *signals, int count) {
    sigset_t set;
    fill_set(&set, signals, count);
    SLUICE_RET(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
}

int sluice_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    for (;;) {
        ssize_t n = read(fd, &info, sizeof info);
        if (n == (ssize_t)sizeof info) return (int)info.ssi_signo;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        return n < 0 ? -errno : -EIO;
    }
}

void sluice_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

int sluice_thread_start(pthread_t *thread, void *(*body)(void *), void *context) {
    return pthread_create(thread, NULL, body, context);
}
