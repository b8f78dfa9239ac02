/*
 * The C side of TapBatchWriteBenchmark: a batch of frames written into a TAP queue, one writev
 * system call per frame, or all of them through io_uring with one io_uring_enter (raw system
 * calls, no liburing, as the Java side does it). Compiled at bench time with gcc -O2 -shared and
 * called through FFM with the TAP's descriptor and the frames' iovecs.
 *
 * Every function returns the frames written, or minus the errno with *failed_call naming the call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

long vffm_tap_writev_batch(int tap, const struct iovec *iovs, int batch, const char **failed_call) {
    for (int i = 0; i < batch; i++) {
        ssize_t n = writev(tap, &iovs[i], 1);
        if (n < 0) {
            if (errno == EINTR) {
                i--;
                continue;
            }
            *failed_call = "writev";
            return -errno;
        }
    }
    return batch;
}

struct vffm_ring {
    int fd;
    unsigned sq_entries, cq_entries;
    void *sq_map, *cq_map;
    size_t sq_map_size, cq_map_size;
    struct io_uring_sqe *sqes;
    size_t sqes_size;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
};

void vffm_uring_close(struct vffm_ring *r) {
    if (r == NULL) {
        return;
    }
    if (r->sqes != NULL && r->sqes != MAP_FAILED) {
        munmap(r->sqes, r->sqes_size);
    }
    if (r->cq_map != NULL && r->cq_map != MAP_FAILED && r->cq_map != r->sq_map) {
        munmap(r->cq_map, r->cq_map_size);
    }
    if (r->sq_map != NULL && r->sq_map != MAP_FAILED) {
        munmap(r->sq_map, r->sq_map_size);
    }
    if (r->fd >= 0) {
        close(r->fd);
    }
    free(r);
}

struct vffm_ring *vffm_uring_open(unsigned entries, const char **failed_call) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    struct vffm_ring *r = calloc(1, sizeof *r);
    if (r == NULL) {
        *failed_call = "calloc";
        return NULL;
    }
    r->fd = (int) syscall(__NR_io_uring_setup, entries, &p);
    if (r->fd < 0) {
        *failed_call = "io_uring_setup";
        free(r);
        return NULL;
    }
    r->sq_entries = p.sq_entries;
    r->cq_entries = p.cq_entries;
    r->sq_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_map_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (r->cq_map_size > r->sq_map_size) {
            r->sq_map_size = r->cq_map_size;
        }
        r->cq_map_size = r->sq_map_size;
    }
    r->sq_map = mmap(NULL, r->sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                     IORING_OFF_SQ_RING);
    if (r->sq_map == MAP_FAILED) {
        *failed_call = "mmap";
        vffm_uring_close(r);
        return NULL;
    }
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        r->cq_map = r->sq_map;
    } else {
        r->cq_map = mmap(NULL, r->cq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                         IORING_OFF_CQ_RING);
        if (r->cq_map == MAP_FAILED) {
            *failed_call = "mmap";
            vffm_uring_close(r);
            return NULL;
        }
    }
    r->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) {
        *failed_call = "mmap";
        vffm_uring_close(r);
        return NULL;
    }
    char *sq = r->sq_map, *cq = r->cq_map;
    r->sq_head = (unsigned *) (sq + p.sq_off.head);
    r->sq_tail = (unsigned *) (sq + p.sq_off.tail);
    r->sq_mask = (unsigned *) (sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *) (sq + p.sq_off.array);
    r->cq_head = (unsigned *) (cq + p.cq_off.head);
    r->cq_tail = (unsigned *) (cq + p.cq_off.tail);
    r->cq_mask = (unsigned *) (cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *) (cq + p.cq_off.cqes);
    return r;
}

/* batch writevs of one iovec each into tap, submitted and awaited with one io_uring_enter. */
long vffm_uring_writev_batch(struct vffm_ring *r, int tap, const struct iovec *iovs, int batch,
                             const char **failed_call) {
    if ((unsigned) batch > r->sq_entries) {
        *failed_call = "batch";
        return -EINVAL;
    }
    unsigned tail = *r->sq_tail; /* ours */
    unsigned mask = *r->sq_mask;
    for (int i = 0; i < batch; i++) {
        unsigned index = (tail + i) & mask;
        struct io_uring_sqe *sqe = &r->sqes[index];
        memset(sqe, 0, sizeof *sqe);
        sqe->opcode = IORING_OP_WRITEV;
        sqe->fd = tap;
        sqe->off = (__u64) -1;
        sqe->addr = (__u64) (unsigned long) &iovs[i];
        sqe->len = 1;
        sqe->user_data = (__u64) i;
        r->sq_array[index] = index;
    }
    /* release: the entries before the tail the kernel reads */
    atomic_store_explicit((_Atomic unsigned *) r->sq_tail, tail + batch, memory_order_release);
    int submitted;
    do {
        submitted = (int) syscall(__NR_io_uring_enter, r->fd, batch, batch, IORING_ENTER_GETEVENTS, NULL, 0);
    } while (submitted < 0 && errno == EINTR);
    if (submitted < 0) {
        *failed_call = "io_uring_enter";
        return -errno;
    }
    unsigned head = *r->cq_head; /* ours */
    unsigned ready_tail = atomic_load_explicit((_Atomic unsigned *) r->cq_tail, memory_order_acquire);
    long done = 0;
    int failure = 0;
    while (head != ready_tail) {
        struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
        if (cqe->res < 0 && failure == 0) {
            failure = cqe->res;
        }
        done++;
        head++;
    }
    atomic_store_explicit((_Atomic unsigned *) r->cq_head, head, memory_order_release);
    if (failure < 0) {
        *failed_call = "io_uring writev";
        return failure;
    }
    return done;
}
