// SPDX-License-Identifier: MIT
/* cacard-vpcd DBDIR PORT: plugs libcacard's emulated CAC card (the code QEMU's ccid-card-emulated
 * and SPICE use; keys and certificates cert1..cert3 in the NSS database sql:DBDIR) into vpcd,
 * vsmartcard's PC/SC reader driver, listening on 127.0.0.1:PORT.  The card is in the reader while
 * this process runs: the tests pull it by stopping the process and insert it by starting it again.
 *
 * vpcd's wire format: each message is a 2-byte big-endian length and a payload, both ways.  A
 * 1-byte payload from vpcd is a control code (0 power off, 1 power on, 2 reset, 4 get ATR); a
 * longer one is a command APDU, answered with the response APDU (data, SW1, SW2).
 * Exit status: 0 when vpcd closed the connection, 1 on a setup error, 2 on bad usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <libcacard.h>

static const int one = 1;

/* Reads exactly n bytes; -1 on EOF or error. */
static int read_full(int fd, unsigned char* buf, size_t n) {
    while (n > 0) {
        /* vpcd writes the length and the payload in two writes without TCP_NODELAY: with Nagle
         * on its side and a delayed ACK on ours each APDU would wait ~40 ms.  TCP_QUICKACK is not
         * sticky, so it is re-armed before every read. */
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
        ssize_t r = read(fd, buf, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        buf += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_msg(int fd, const unsigned char* buf, size_t n) {
    unsigned char len[2] = {(unsigned char)(n >> 8), (unsigned char)(n & 0xff)};
    struct iovec v[2] = {{len, 2}, {(void*)buf, n}};
    return writev(fd, v, 2) == (ssize_t)(n + 2) ? 0 : -1;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DBDIR PORT\n", argv[0]);
        return 2;
    }
    char* end = NULL;
    long port = strtol(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || port <= 0 || port > 65535) {
        fprintf(stderr, "cacard-vpcd: bad port '%s'\n", argv[2]);
        return 2;
    }
    /* soft=(NSS slot (default), virtual reader name, card type, type parameters, certificates) */
    char opts[4096];
    int w = snprintf(opts, sizeof opts, "db=\"sql:%s\" use_hw=no soft=(,cac-test,CAC,,cert1,cert2,cert3)", argv[1]);
    if (w < 0 || (size_t)w >= sizeof opts) {
        fprintf(stderr, "cacard-vpcd: database path too long\n");
        return 2;
    }
    VReader* reader = NULL;
    if (vcard_emul_init(vcard_emul_options(opts)) != VCARD_EMUL_OK ||
        (reader = vreader_get_reader_by_name("cac-test")) == NULL) {
        fprintf(stderr, "cacard-vpcd: libcacard cannot emulate a card from sql:%s (cert1..cert3 present?)\n", argv[1]);
        return 1;
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        perror("cacard-vpcd: socket");
        return 1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) {
        fprintf(stderr, "cacard-vpcd: connect to vpcd at 127.0.0.1:%ld: %s\n", port, strerror(errno));
        return 1;
    }
    /* pcscd asks vpcd for the card's presence every 400 ms and vpcd sends "get ATR" each time.
     * Powering the card on for each poll would reset it (log out, deselect the applet), so the
     * polls are answered from the ATR of the last power-on. */
    static unsigned char atr[64], in[65536], out[65536];
    int atr_len = sizeof atr;
    vreader_power_on(reader, atr, &atr_len);
    unsigned char head[2];
    while (read_full(s, head, 2) == 0) {
        size_t n = (size_t)head[0] << 8 | head[1];
        if (n == 0 || read_full(s, in, n) != 0) break;
        if (n == 1) {
            switch (in[0]) {
            case 0: vreader_power_off(reader); break;
            case 1:
            case 2:
                atr_len = sizeof atr;
                vreader_power_on(reader, atr, &atr_len);
                break;
            case 4:
                if (write_msg(s, atr, (size_t)atr_len) != 0) return 0;
                break;
            default: break;
            }
            continue;
        }
        int out_len = sizeof out;
        if (vreader_xfr_bytes(reader, in, (int)n, out, &out_len) != VREADER_OK) {
            /* a transfer libcacard refuses is a card error to PC/SC, not a dead reader */
            out[0] = 0x6f;
            out[1] = 0x00;
            out_len = 2;
        }
        if (write_msg(s, out, (size_t)out_len) != 0) break;
    }
    return 0;
}
