// CEpoll: the thin C shim under Sluice's event loop (epoll, eventfd, sockets, signalfd, splice).
// Only what Swift cannot call cleanly lives here; typed errors are made in Swift.
#ifndef SLUICE_CEPOLL_H
#define SLUICE_CEPOLL_H

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <fcntl.h>

#endif
