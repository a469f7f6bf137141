/*
 * The handshake load generator: opens WebSocket connections to a server and closes
 * them again, as fast as one core allows, with CONCURRENCY connections at a time.
 *
 *   hsload PORT CONCURRENCY WARMUP DURATION REQUEST_HEX CLOSE_HEX
 *
 * Each connection: TCP connect to 127.0.0.1:PORT, write REQUEST, read the response
 * head (it must start with "HTTP/1.1 101"), write the masked close frame CLOSE, read
 * frames until the server closes TCP, then close with a reset (the server's side is
 * closed by then). A connection counts as done when the server's close frame arrived
 * before its TCP close, and as bad otherwise.
 *
 * The Python load generator spends most of a core on its own side of each
 * connection (asyncio's create_connection, the protocol objects); this one spends
 * little beyond the kernel's work, so the server is what limits the rate.
 *
 * Output on stdout, one line each, flushed: "START" when the measured window opens
 * (after WARMUP seconds), then "END <done> <seconds> <bad>" when it closes. Exit
 * status 0, or 1 with a message on stderr (bad arguments, the server refused
 * connections, a response other than 101).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING, HEAD, FRAMES };

typedef struct {
    int fd;
    int state;
    int close_seen;
    size_t have;        /* bytes kept in buf: a partial head or frame header */
    uint64_t skip;      /* payload bytes of the current frame still to come */
    unsigned char buf[1024];
} conn_t;

static struct sockaddr_in addr;
static unsigned char *request, *close_frame;
static size_t request_len, close_len;
static int epfd;
static long done, bad;

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    fprintf(stderr, "hsload: %s: %s\n", what, errno ? strerror(errno) : "error");
    exit(1);
}

static unsigned char *
from_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2)
        return NULL;
    unsigned char *out = malloc(n / 2 + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) {
            free(out);
            return NULL;
        }
        out[i] = (unsigned char)byte;
    }
    *len = n / 2;
    return out;
}

static void
open_conn(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->close_seen = 0;
    c->have = 0;
    c->skip = 0;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        die("connect");
    /* The request goes out once connected: EPOLLOUT says when. */
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void
finish(conn_t *c, int ok)
{
    if (ok) {
        /* The server has closed its side already: reset ours rather than exchange
         * FINs. Both kernels skip that exchange and the server's TIME_WAIT, which on
         * a 2-CPU machine would otherwise make this client the bottleneck. */
        struct linger reset = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    if (ok)
        done++;
    else
        bad++;
}

/* Walk the frames in data[0..n): payloads are skipped; a header split across reads is
 * kept in c->buf until it is whole. */
static void
scan_frames(conn_t *c, const unsigned char *data, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        if (c->skip) {
            uint64_t take = c->skip < n - pos ? c->skip : n - pos;
            c->skip -= take;
            pos += (size_t)take;
            continue;
        }
        size_t copy = n - pos < 14 - c->have ? n - pos : 14 - c->have;
        memcpy(c->buf + c->have, data + pos, copy);
        size_t avail = c->have + copy;
        const unsigned char *hdr = c->buf;
        size_t hlen = 2;
        if (avail >= 2) {
            uint64_t code = hdr[1] & 0x7F;
            hlen = code == 126 ? 4 : code == 127 ? 10 : 2;
            if (hdr[1] & 0x80)
                hlen += 4;
        }
        if (avail < hlen || avail < 2) {
            c->have = avail;
            return; /* copy was all of the rest of data */
        }
        uint64_t length = hdr[1] & 0x7F;
        if (length == 126)
            length = ((uint64_t)hdr[2] << 8) | hdr[3];
        else if (length == 127) {
            length = 0;
            for (int i = 2; i < 10; i++)
                length = (length << 8) | hdr[i];
        }
        if ((hdr[0] & 0x0F) == 8)
            c->close_seen = 1;
        pos += hlen - c->have; /* the header's bytes that came from data */
        c->have = 0;
        c->skip = length;
    }
}

static int
on_readable(conn_t *c)
{
    unsigned char data[4096];
    for (;;) {
        ssize_t got = read(c->fd, data, sizeof data);
        if (got == 0) {
            finish(c, c->state == FRAMES && c->close_seen);
            return 1;
        }
        if (got < 0) {
            if (errno == EAGAIN)
                return 0;
            finish(c, 0);
            return 1;
        }
        size_t n = (size_t)got;
        if (c->state == HEAD) {
            size_t copy = n < sizeof c->buf - c->have ? n : sizeof c->buf - c->have;
            memcpy(c->buf + c->have, data, copy);
            c->have += copy;
            unsigned char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
            if (end == NULL) {
                if (c->have == sizeof c->buf) {
                    errno = 0;
                    die("response head too long");
                }
                continue;
            }
            if (c->have < 12 || memcmp(c->buf, "HTTP/1.1 101", 12) != 0) {
                unsigned char *eol = memchr(c->buf, '\r', c->have);
                fprintf(stderr, "hsload: handshake refused: %.*s\n", (int)(eol - c->buf), c->buf);
                exit(1);
            }
            size_t head = (size_t)(end - c->buf) + 4;
            /* Bytes after the head in this read: frames. */
            size_t kept_before = c->have - copy;
            size_t rest_from = head > kept_before ? head - kept_before : 0;
            c->state = FRAMES;
            c->have = 0;
            if (write(c->fd, close_frame, close_len) != (ssize_t)close_len) {
                finish(c, 0);
                return 1;
            }
            if (rest_from < n)
                scan_frames(c, data + rest_from, n - rest_from);
        } else {
            scan_frames(c, data, n);
        }
    }
}

int
main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: hsload PORT CONCURRENCY WARMUP DURATION REQUEST_HEX CLOSE_HEX\n");
        return 1;
    }
    int port = atoi(argv[1]);
    int concurrency = atoi(argv[2]);
    double warmup = atof(argv[3]), duration = atof(argv[4]);
    request = from_hex(argv[5], &request_len);
    close_frame = from_hex(argv[6], &close_len);
    if (port <= 0 || concurrency <= 0 || request == NULL || close_frame == NULL) {
        fprintf(stderr, "hsload: bad arguments\n");
        return 1;
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    epfd = epoll_create1(0);
    if (epfd < 0)
        die("epoll_create1");
    conn_t *conns = calloc((size_t)concurrency, sizeof *conns);
    if (conns == NULL)
        die("calloc");
    for (int i = 0; i < concurrency; i++)
        open_conn(&conns[i]);

    double t0 = now(), start = t0 + warmup, stop = start + duration, began = 0;
    long done0 = 0;
    int measuring = 0, stopping = 0, live = concurrency;
    struct epoll_event events[256];
    while (live > 0) {
        double t = now();
        if (!measuring && !stopping && t >= start) {
            measuring = 1;
            done0 = done;
            began = t;
            printf("START\n");
            fflush(stdout);
        }
        if (measuring && t >= stop) {
            measuring = 0;
            stopping = 1;
            printf("END %ld %.6f %ld\n", done - done0, t - began, bad);
            fflush(stdout);
            stop = t + 5; /* then at most 5 s for the connections still open */
        } else if (stopping && t >= stop) {
            break;
        }
        int n = epoll_wait(epfd, events, 256, 20);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->fd < 0)
                continue;
            int closed = 0;
            if (c->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    errno = err;
                    die("connect");
                }
                if (write(c->fd, request, request_len) != (ssize_t)request_len)
                    die("write");
                c->state = HEAD;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                closed = on_readable(c);
            if (closed) {
                if (stopping)
                    live--;
                else
                    open_conn(c);
            }
        }
    }
    return 0;
}
