// SPDX-License-Identifier: MIT
/* floor-agent: the cheapest correct password agent we can think of, as the
 * bench's yardstick.  It does what every agent must do and nothing more:
 * inotify on the ask directory (IN_MOVED_TO | IN_CLOSE_WRITE), read the named
 * ask file, take its Socket= line, and send "+PASSWORD" from root.  No policy,
 * no NotAfter, no Id matching, no cache: a real agent's cost above this floor
 * is the price of its features.
 *
 * The password comes from a file (--password-file PATH, or "-" for stdin),
 * never from argv or the environment.
 *
 * Deliberate faults, for the bench's self-test (the harness must be able to
 * fail):  --wrong           answer with a different password
 *         --drop-every K    ignore every K-th question (K, 2K, ...)
 *         --fake-uid UID    send with SCM_CREDENTIALS naming UID (root may
 *                           claim any uid; systemd must then ignore the reply)
 *         --exit-after K    exit (status 3) right after the K-th reply, as a
 *                           crashing agent would
 *
 * Readiness: when NOTIFY_SOCKET is set it sends READY=1 after the watch is in
 * place and before the first scan, as a Type=notify service would.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* systemd's receive buffer is LINE_MAX + 1 = 2049 bytes, '+' included. */
enum { REPLY_MAX = 2049, ASK_FILE_MAX = 64 * 1024 };

struct agent {
    const char* ask_dir;
    int dir_fd;
    int inotify_fd;
    int send_fd;
    char reply[REPLY_MAX];
    size_t reply_len;
    unsigned long drop_every;
    unsigned long seen;
    unsigned long sent;
    unsigned long exit_after;
    long fake_uid; /* -1: send with our own credentials */
    /* Names answered and not yet closed by their asker: an open-addressing
     * hash set, so the check costs one hash and usually one compare.  It keeps
     * a file seen both by the start-up scan and by an event, or by an overflow
     * rescan, from being answered twice. */
    struct slot* slots;
    size_t capacity, used, tombstones;
};

/* systemd's names are "ask." plus 6 characters; a longer name is answered
 * but not remembered (at worst answered again after an overflow rescan). */
enum { NAME_MAX_STORED = 31 };
enum slot_state { SLOT_EMPTY, SLOT_USED, SLOT_DELETED };
struct slot {
    uint32_t hash;
    unsigned char state;
    char name[NAME_MAX_STORED + 1];
};

static uint32_t hash_name(const char* name) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char* p = (const unsigned char*)name; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

/* The slot holding `name`, or NULL; with `insert`, the slot to store it in. */
static struct slot* find_slot(struct agent* a, const char* name, uint32_t h, int insert) {
    if (a->capacity == 0) return NULL;
    struct slot* free_slot = NULL;
    for (size_t i = h & (a->capacity - 1), n = 0; n < a->capacity; i = (i + 1) & (a->capacity - 1), n++) {
        struct slot* s = &a->slots[i];
        if (s->state == SLOT_EMPTY) return insert ? (free_slot ? free_slot : s) : NULL;
        if (s->state == SLOT_DELETED) {
            if (!free_slot) free_slot = s;
        } else if (s->hash == h && strcmp(s->name, name) == 0) {
            return s;
        }
    }
    return insert ? free_slot : NULL;
}

static int rehash(struct agent* a) {
    size_t old_cap = a->capacity;
    struct slot* old = a->slots;
    /* Mostly tombstones (answered and closed): rehash in place, don't grow. */
    a->capacity = old_cap == 0 ? 1024 : (a->used + 1) * 4 > old_cap ? old_cap * 2 : old_cap;
    a->slots = calloc(a->capacity, sizeof *a->slots);
    if (!a->slots) {
        a->slots = old;
        a->capacity = old_cap;
        return -1;
    }
    a->used = a->tombstones = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].state != SLOT_USED) continue;
        *find_slot(a, old[i].name, old[i].hash, 1) = old[i];
        a->used++;
    }
    free(old);
    return 0;
}

static int is_answered(struct agent* a, const char* name) { return find_slot(a, name, hash_name(name), 0) != NULL; }

static void forget_answered(struct agent* a, const char* name) {
    struct slot* s = find_slot(a, name, hash_name(name), 0);
    if (s) {
        s->state = SLOT_DELETED;
        a->used--;
        a->tombstones++;
    }
}

static void remember_answered(struct agent* a, const char* name) {
    size_t len = strlen(name);
    if (len > NAME_MAX_STORED) return;
    if ((a->used + a->tombstones + 1) * 2 > a->capacity && rehash(a) < 0)
        return; /* at worst a duplicate answer later; the asker ignores it */
    uint32_t h = hash_name(name);
    struct slot* s = find_slot(a, name, h, 1);
    if (!s || s->state == SLOT_USED) return;
    if (s->state == SLOT_DELETED) a->tombstones--;
    s->hash = h;
    s->state = SLOT_USED;
    memcpy(s->name, name, len + 1);
    a->used++;
}

/* Returns the value of the first "Socket=" line in the buffer, NUL-terminated
 * in place, or NULL. */
static char* find_socket(char* buf, size_t len) {
    char *p = buf, *end = buf + len;
    while (p < end) {
        char* nl = memchr(p, '\n', (size_t)(end - p));
        char* line_end = nl ? nl : end;
        if ((size_t)(line_end - p) > 7 && memcmp(p, "Socket=", 7) == 0) {
            *line_end = '\0';
            return p + 7;
        }
        p = line_end + 1;
    }
    return NULL;
}

static int send_reply(struct agent* a, const char* socket_path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(socket_path);
    if (plen >= sizeof(sa.sun_path)) return -1;
    memcpy(sa.sun_path, socket_path, plen + 1);
    struct iovec iov = {.iov_base = a->reply, .iov_len = a->reply_len};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct msghdr msg = {
        .msg_name = &sa,
        .msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1),
        .msg_iov = &iov,
        .msg_iovlen = 1,
    };
    if (a->fake_uid >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_CREDENTIALS;
        c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
        struct ucred cred = {.pid = getpid(), .uid = (uid_t)a->fake_uid, .gid = getgid()};
        memcpy(CMSG_DATA(c), &cred, sizeof cred);
    }
    /* Blocking send: each asker's socket receives exactly one datagram, so
     * its queue cannot be full; an asker that has gone gives ECONNREFUSED or
     * ENOENT at once. */
    while (sendmsg(a->send_fd, &msg, MSG_NOSIGNAL) < 0) {
        if (errno != EINTR) return -1;
    }
    return 0;
}

/* Reads one ask file and answers it.  Anything odd (vanished, not a regular
 * file, no Socket=) is skipped silently: the floor has no policy. */
static void answer_file(struct agent* a, const char* name) {
    if (strncmp(name, "ask.", 4) != 0 || is_answered(a, name)) return;
    int fd = openat(a->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return;
    char buf[4096];
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    char* socket_path = find_socket(buf, (size_t)n);
    if (!socket_path) return;
    remember_answered(a, name);
    a->seen++;
    if (a->drop_every && a->seen % a->drop_every == 0) return;
    (void)send_reply(a, socket_path);
    if (a->exit_after && ++a->sent == a->exit_after) _exit(3);
}

/* Full scan: at start and after an inotify queue overflow. */
static void scan_dir(struct agent* a) {
    int fd = openat(a->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    DIR* d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent* de;
    while ((de = readdir(d)) != NULL) answer_file(a, de->d_name);
    closedir(d);
}

/* One read of the inotify fd; events are parsed with memcpy into an aligned
 * struct because the buffer packs them at arbitrary offsets. */
static int drain_inotify(struct agent* a) {
    char buf[64 * 1024];
    for (;;) {
        ssize_t n = read(a->inotify_fd, buf, sizeof buf);
        if (n < 0) return errno == EAGAIN ? 0 : (errno == EINTR ? 0 : -1);
        int overflow = 0;
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            struct inotify_event ev;
            memcpy(&ev, buf + off, sizeof ev);
            const char* name = buf + off + sizeof ev;
            off += (ssize_t)(sizeof ev + ev.len);
            if (ev.mask & IN_Q_OVERFLOW) {
                overflow = 1;
                continue;
            }
            if (ev.len == 0) continue;
            /* systemd closes its ask file only after deleting it, so a close
             * of an answered name means the question is gone: forget it.  A
             * close of an unknown name may be an asker that wrote the file in
             * place, without rename: treat it as new. */
            if ((ev.mask & IN_CLOSE_WRITE) && is_answered(a, name)) forget_answered(a, name);
            else answer_file(a, name);
        }
        if (overflow) scan_dir(a);
    }
}

static int read_password(const char* path, struct agent* a) {
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    a->reply[0] = '+';
    size_t len = 1;
    for (;;) {
        ssize_t n = read(fd, a->reply + len, sizeof a->reply - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) break;
        len += (size_t)n;
        if (len == sizeof a->reply) break;
    }
    if (fd != STDIN_FILENO) close(fd);
    while (len > 1 && a->reply[len - 1] == '\n') len--;
    a->reply_len = len;
    return 0;
}

static void notify_ready(void) {
    const char* path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@')) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(path);
    if (plen >= sizeof sa.sun_path) return;
    memcpy(sa.sun_path, path, plen);
    if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    (void)sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr*)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen));
    close(fd);
}

static void usage(FILE* out) {
    fprintf(out,
            "usage: floor-agent [--ask-dir DIR] --password-file PATH|-\n"
            "                   [--wrong] [--drop-every K] [--fake-uid UID] [--exit-after K]\n");
}

int main(int argc, char** argv) {
    struct agent a = {.ask_dir = "/run/systemd/ask-password", .fake_uid = -1};
    const char* password_file = NULL;
    int wrong = 0;
    static const struct option opts[] = {
        {"ask-dir", required_argument, NULL, 'd'},  {"password-file", required_argument, NULL, 'p'},
        {"wrong", no_argument, NULL, 'w'},          {"drop-every", required_argument, NULL, 'k'},
        {"fake-uid", required_argument, NULL, 'u'}, {"exit-after", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},           {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a.ask_dir = optarg; break;
        case 'p': password_file = optarg; break;
        case 'w': wrong = 1; break;
        case 'k': a.drop_every = strtoul(optarg, NULL, 10); break;
        case 'u': a.fake_uid = strtol(optarg, NULL, 10); break;
        case 'x': a.exit_after = strtoul(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!password_file || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (read_password(password_file, &a) < 0) {
        fprintf(stderr, "floor-agent: cannot read the password file: %s\n", strerror(errno));
        return 1;
    }
    if (wrong) {
        /* Still a well-formed reply, just not the password. */
        if (a.reply_len < sizeof a.reply) a.reply[a.reply_len++] = 'X';
        else a.reply[a.reply_len - 1] ^= 1;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    a.dir_fd = open(a.ask_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    a.inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    a.send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sig_fd < 0 || a.dir_fd < 0 || a.inotify_fd < 0 || a.send_fd < 0 ||
        inotify_add_watch(a.inotify_fd, a.ask_dir, IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR) < 0) {
        fprintf(stderr, "floor-agent: cannot watch %s: %s\n", a.ask_dir, strerror(errno));
        return 1;
    }
    /* Watch first, then scan: a question renamed in between is seen twice
     * (the answered set drops the second), never zero times. */
    notify_ready();
    scan_dir(&a);

    struct pollfd pfd[2] = {{.fd = a.inotify_fd, .events = POLLIN}, {.fd = sig_fd, .events = POLLIN}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (pfd[1].revents) break;
        if (pfd[0].revents && drain_inotify(&a) < 0) return 1;
    }
    explicit_bzero(a.reply, sizeof a.reply);
    return 0;
}
