// CEpoll: the thin C shim under Sluice's event loop (epoll, eventfd, sockets, signalfd, splice).
// Only what Swift cannot call cleanly lives here: every call returns its result or -errno, so Swift
// never reads the thread-local errno and typed errors are made in Swift (EventLoop/Syscalls.swift).
#ifndef SLUICE_CEPOLL_H
#define SLUICE_CEPOLL_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define SLUICE_RET(expr) do { long _r = (long)(expr); return _r < 0 ? -errno : _r; } while (0)

// MARK: epoll and eventfd

static inline int sluice_epoll_create(void) { SLUICE_RET(epoll_create1(EPOLL_CLOEXEC)); }

/// Adds, modifies or deletes `fd`; `token` comes back in each event (slot index + generation).
static inline int sluice_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    SLUICE_RET(epoll_ctl(epfd, op, fd, &ev));
}

static inline int sluice_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms) {
    SLUICE_RET(epoll_wait(epfd, events, max, timeout_ms));
}

/// epoll_event is packed on x86_64; these read it without Swift having to know its layout.
static inline uint32_t sluice_event_mask(const struct epoll_event *events, int i) { return events[i].events; }
static inline uint64_t sluice_event_token(const struct epoll_event *events, int i) { return events[i].data.u64; }
static inline size_t sluice_epoll_event_size(void) { return sizeof(struct epoll_event); }

static inline int sluice_eventfd(void) { SLUICE_RET(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)); }
static inline int sluice_eventfd_signal(int fd) { uint64_t one = 1; SLUICE_RET(write(fd, &one, sizeof one)); }
static inline int sluice_eventfd_drain(int fd) { uint64_t value; SLUICE_RET(read(fd, &value, sizeof value)); }

// MARK: time

/// CLOCK_MONOTONIC through the vDSO: no syscall.
static inline uint64_t sluice_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch (log timestamps, the KPA's wall clock).
static inline int64_t sluice_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + (int64_t)ts.tv_nsec;
}

/// printf's "%.*f" into `out` (glibc rounds the exact binary value, as Go's strconv does); variadic
/// snprintf is not callable from Swift. Returns the length it needed, as snprintf does.
static inline int sluice_format_fixed(char *out, size_t size, double value, int precision) {
    return snprintf(out, size, "%.*f", precision, value);
}

// MARK: sockets

/// Fills `out` from a numeric IPv4 or IPv6 literal; returns 0, or -EINVAL when `host` is not one.
int sluice_make_address(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len);
/// Writes the numeric host of `address` into `host` (at least INET6_ADDRSTRLEN bytes); returns the port.
int sluice_format_address(const struct sockaddr_storage *address, char *host, size_t host_len);

static inline int sluice_socket(int family) {
    SLUICE_RET(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}
static inline int sluice_set_int_option(int fd, int level, int name, int value) {
    SLUICE_RET(setsockopt(fd, level, name, &value, sizeof value));
}
/// Returns the pending socket error (SO_ERROR) as a positive errno, 0 for none, or -errno if the call failed.
static inline int sluice_socket_error(int fd) {
    int value = 0;
    socklen_t len = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len) < 0) return -errno;
    return value;
}
static inline int sluice_get_int_option(int fd, int level, int name) {
    int value = 0;
    socklen_t len = sizeof value;
    if (getsockopt(fd, level, name, &value, &len) < 0) return -errno;
    return value;
}
static inline int sluice_bind(int fd, const struct sockaddr_storage *a, socklen_t len) {
    SLUICE_RET(bind(fd, (const struct sockaddr *)a, len));
}
static inline int sluice_listen(int fd, int backlog) { SLUICE_RET(listen(fd, backlog)); }
static inline int sluice_connect(int fd, const struct sockaddr_storage *a, socklen_t len) {
    SLUICE_RET(connect(fd, (const struct sockaddr *)a, len));
}
static inline int sluice_local_address(int fd, struct sockaddr_storage *a, socklen_t *len) {
    *len = sizeof *a;
    SLUICE_RET(getsockname(fd, (struct sockaddr *)a, len));
}
static inline int sluice_peer_address(int fd, struct sockaddr_storage *a, socklen_t *len) {
    *len = sizeof *a;
    SLUICE_RET(getpeername(fd, (struct sockaddr *)a, len));
}
/// Accepted sockets are non-blocking and close-on-exec from birth (no fcntl per connection).
int sluice_accept(int fd);
static inline int sluice_shutdown(int fd, int how) { SLUICE_RET(shutdown(fd, how)); }
static inline int sluice_close(int fd) { return close(fd) < 0 ? -errno : 0; }

// MARK: I/O

static inline long sluice_read(int fd, void *buffer, size_t count) { SLUICE_RET(read(fd, buffer, count)); }
/// send with MSG_NOSIGNAL: a peer that went away gives EPIPE, never SIGPIPE.
static inline long sluice_send(int fd, const void *buffer, size_t count) {
    SLUICE_RET(send(fd, buffer, count, MSG_NOSIGNAL));
}
/// Vectored send (writev with MSG_NOSIGNAL).
static inline long sluice_sendv(int fd, const struct iovec *iov, int count) {
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = (struct iovec *)iov;
    message.msg_iovlen = (size_t)count;
    SLUICE_RET(sendmsg(fd, &message, MSG_NOSIGNAL));
}
static inline long sluice_write(int fd, const void *buffer, size_t count) { SLUICE_RET(write(fd, buffer, count)); }
static inline long sluice_readv(int fd, const struct iovec *iov, int count) { SLUICE_RET(readv(fd, iov, count)); }
static inline long sluice_writev(int fd, const struct iovec *iov, int count) { SLUICE_RET(writev(fd, iov, count)); }
static inline void sluice_iovec_set(struct iovec *iov, int i, const void *base, size_t len) {
    iov[i].iov_base = (void *)base;
    iov[i].iov_len = len;
}
static inline size_t sluice_iovec_size(void) { return sizeof(struct iovec); }

int sluice_pipe(int fds[2]);
/// splice(2) with SPLICE_F_MOVE|SPLICE_F_NONBLOCK; one side must be a pipe.
long sluice_splice(int from, int to, size_t count);

// MARK: signals

/// Blocks `signals` in the calling thread (threads created afterwards inherit the mask).
int sluice_block_signals(const int *signals, int count);
/// A non-blocking signalfd for `signals` (which must already be blocked).
int sluice_signalfd(const int *signals, int count);
/// Reads one pending signal number from a signalfd; 0 when none is pending, -errno on error.
int sluice_signalfd_read(int fd);
/// SIG_IGN for SIGPIPE: splice(2) has no MSG_NOSIGNAL, so a relay to a closed peer would kill the process.
void sluice_ignore_sigpipe(void);

// MARK: threads and limits

/// Starts a joinable thread running `body(context)`; returns 0 or a positive error number.
int sluice_thread_start(pthread_t *thread, void *(*body)(void *), void *context);
static inline int sluice_thread_join(pthread_t thread) { return pthread_join(thread, NULL); }
static inline uint64_t sluice_thread_id(void) { return (uint64_t)pthread_self(); }
int sluice_set_thread_name(const char *name);

/// CPUs this process may run on (honours taskset / cgroup cpusets), at least 1.
int sluice_cpu_count(void);

static inline int sluice_set_nofile_limit(uint64_t soft) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0) return -errno;
    limit.rlim_cur = soft;
    SLUICE_RET(setrlimit(RLIMIT_NOFILE, &limit));
}

#endif
