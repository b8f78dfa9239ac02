/*
 * The C baseline of UserspaceDatapathBenchmark: the same work as the benchmark's Java side, done
 * by C on the same TAP queues and the same AF_PACKET socket, one system call per frame, on one
 * thread over all the queues (as the benchmark's guest side is one thread over all its pairs).
 *
 * transmit: a batch of writev calls into the TAP, taking the queues in turn, each of one buffer holding the 12-byte vnet
 *   header and the frame (what the datapath's writev gets from a guest's one-descriptor chain);
 *   then the far side receives from the packet socket (recv MSG_DONTWAIT | MSG_TRUNC, poll when
 *   it is empty, as PacketSocket.receive does) until the whole batch has arrived.
 * receive: the far side sends a batch of frames into the TAP from the packet socket (send, as
 *   PacketSocket.send does), taking the flows (UDP frames that differ in their source port) in
 *   turn, so that the TAP's flow hash spreads them over its queues; then readv from the queues in
 *   turn into a buffer until the whole batch has arrived (poll on all of them when every queue is
 *   empty; they may be non-blocking), counting in per_queue[q] the frames each queue gave.
 *
 * A frame counts as arrived when it has the expected length and the same bytes as the one sent
 * from the EtherType on (at most 20 bytes: the numbered frame's type and magic), as the Java side
 * checks the length and the numbered frame's magic. Compiled by the benchmark's set-up with gcc
 * -O2 into a shared library and called through FFM with the descriptors the fixture opened.
 *
 * Each function returns the frames that arrived (the batch; fewer when timeout_ms passed without
 * one), or a negative errno, the failed call's name in *failed_call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define VNET_HEADER 12
#define COMPARED 20
#define ETHERTYPE_AT 12
#define MAX_QUEUES 16

static int compared(long frame_len) {
    long n = frame_len - ETHERTYPE_AT;
    return n < COMPARED ? (int) n : COMPARED;
}

/* Waits for events on fd; 1 when ready, 0 on timeout, -errno on failure. */
static int wait_for(int fd, short events, int timeout_ms, const char **failed_call) {
    struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
    for (;;) {
        int ready = poll(&p, 1, timeout_ms);
        if (ready >= 0) {
            return ready;
        }
        if (errno != EINTR) {
            *failed_call = "poll";
            return -errno;
        }
    }
}

/* Waits for POLLIN on any of n fds (at most MAX_QUEUES); 1 when one is ready, 0 on timeout, -errno on failure. */
static int wait_any(const int *fds, int n, int timeout_ms, const char **failed_call) {
    struct pollfd p[MAX_QUEUES];
    for (int q = 0; q < n; q++) {
        p[q].fd = fds[q];
        p[q].events = POLLIN;
        p[q].revents = 0;
    }
    for (;;) {
        int ready = poll(p, (nfds_t) n, timeout_ms);
        if (ready >= 0) {
            return ready > 0 ? 1 : 0;
        }
        if (errno != EINTR) {
            *failed_call = "poll";
            return -errno;
        }
    }
}

/*
 * Makes fd non-blocking (for more than one queue: a blocking readv on an empty queue would wait
 * while the frames sit on another); 0, or -errno with the failed call's name in *failed_call.
 */
long vffm_baseline_nonblocking(int fd, const char **failed_call) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        *failed_call = "fcntl";
        return -errno;
    }
    return 0;
}

long vffm_baseline_transmit(const int *taps, int queues, int sock, const unsigned char *packet, long packet_len,
                            unsigned char *buffer, long buffer_len, int batch, int timeout_ms,
                            const char **failed_call) {
    struct iovec iov = { .iov_base = (void *) packet, .iov_len = (size_t) packet_len };
    long frame_len = packet_len - VNET_HEADER;
    const unsigned char *frame = packet + VNET_HEADER;
    int cmp = compared(frame_len);
    if (queues < 1 || queues > MAX_QUEUES) {
        *failed_call = "queues";
        return -EINVAL;
    }
    for (int i = 0; i < batch; i++) {
        int tap = taps[i % queues];
        ssize_t n = writev(tap, &iov, 1);
        if (n < 0) {
            if (errno == EINTR) {
                i--;
                continue;
            }
            if (errno == EAGAIN || errno == ENOBUFS) {
                int r = wait_for(tap, POLLOUT, timeout_ms, failed_call);
                if (r <= 0) {
                    return r < 0 ? r : i;
                }
                i--;
                continue;
            }
            *failed_call = "writev";
            return -errno;
        }
    }
    int arrived = 0;
    while (arrived < batch) {
        ssize_t n = recv(sock, buffer, (size_t) buffer_len, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                *failed_call = "recv";
                return -errno;
            }
            int r = wait_for(sock, POLLIN, timeout_ms, failed_call);
            if (r <= 0) {
                return r < 0 ? r : arrived;
            }
            continue;
        }
        if (n == frame_len && memcmp(buffer + ETHERTYPE_AT, frame + ETHERTYPE_AT, (size_t) cmp) == 0) {
            arrived++;
        }
    }
    return arrived;
}

long vffm_baseline_receive(int sock, const int *taps, int queues, const unsigned char *frames, long frame_len,
                           int flows, unsigned char *buffer, long buffer_len, int batch, int timeout_ms,
                           long *per_queue, const char **failed_call) {
    int cmp = compared(frame_len);
    if (queues < 1 || queues > MAX_QUEUES || flows < 1) {
        *failed_call = "queues";
        return -EINVAL;
    }
    for (int i = 0; i < batch; i++) {
        ssize_t n = send(sock, frames + (long) (i % flows) * frame_len, (size_t) frame_len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                i--;
                continue;
            }
            *failed_call = "send";
            return -errno;
        }
    }
    struct iovec iov = { .iov_base = buffer, .iov_len = (size_t) buffer_len };
    int arrived = 0;
    int empty = 0; /* queues found empty in a row: all of them, and it is time to poll */
    int q = 0;
    while (arrived < batch) {
        ssize_t n = readv(taps[q], &iov, 1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                *failed_call = "readv";
                return -errno;
            }
            q = (q + 1) % queues;
            if (++empty < queues) {
                continue;
            }
            empty = 0;
            int r = wait_any(taps, queues, timeout_ms, failed_call);
            if (r <= 0) {
                return r < 0 ? r : arrived;
            }
            continue;
        }
        empty = 0;
        if (n == VNET_HEADER + frame_len
                && memcmp(buffer + VNET_HEADER + ETHERTYPE_AT, frames + ETHERTYPE_AT, (size_t) cmp) == 0) {
            arrived++;
            per_queue[q]++;
        }
    }
    return arrived;
}
