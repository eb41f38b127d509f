/* A stand-in for the C tool's client, for bench/bench_run.py only (never shipped).

   The C implementation's `tcr exec` sends one request on the abstract socket and, when the reply
   carries execArgs, execs them (`crun exec ...`) itself. This program does exactly that and nothing
   more, so `tcr exec` can be compared with a C client of the same protocol against the same daemon
   (the C tool itself is not on the build machines).

       exec_client ABSTRACT_NAME CONTAINER CMD [ARG...]
*/
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_MESSAGE (1 << 20)
#define MAX_ARGS 1024

static char out[MAX_MESSAGE];
static size_t used;

static void put(const char *s, size_t n) {
    if (used + n >= sizeof out) {
        fputs("exec_client: request too long\n", stderr);
        exit(125);
    }
    memcpy(out + used, s, n);
    used += n;
}

static void put_str(const char *s) { put(s, strlen(s)); }

static void put_json_string(const char *s) {
    char esc[8];
    put("\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(esc, 6);
        } else {
            put((const char *)&c, 1);
        }
    }
    put("\"", 1);
}

/* Parses one JSON string at *p (after its opening quote) into dst, in place; ASCII \u escapes. */
static char *parse_string(char **p) {
    char *src = *p, *dst = *p, *start = *p;
    while (*src && *src != '"') {
        if (*src == '\\') {
            src++;
            switch (*src) {
            case 'n': *dst++ = '\n'; break;
            case 't': *dst++ = '\t'; break;
            case 'r': *dst++ = '\r'; break;
            case 'b': *dst++ = '\b'; break;
            case 'f': *dst++ = '\f'; break;
            case 'u': {
                char hex[5] = {0};
                if (strlen(src + 1) < 4) return NULL;
                memcpy(hex, src + 1, 4);
                *dst++ = (char)strtol(hex, NULL, 16);
                src += 4;
                break;
            }
            case '\0': return NULL;
            default: *dst++ = *src; break;
            }
            src++;
        } else {
            *dst++ = *src++;
        }
    }
    if (*src != '"') return NULL;
    *dst = '\0';
    *p = src + 1;
    return start;
}

static void print_field(char *reply, const char *key, FILE *to) {
    char *p = strstr(reply, key);
    if (!p) return;
    p += strlen(key);
    char *s = parse_string(&p);
    if (s) fputs(s, to);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fputs("usage: exec_client ABSTRACT_NAME CONTAINER CMD [ARG...]\n", stderr);
        return 125;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(argv[1]);
    if (fd < 0 || n + 1 > sizeof sa.sun_path) return 125;
    memcpy(sa.sun_path + 1, argv[1], n);
    if (connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0) {
        fprintf(stderr, "exec_client: connect @%s: %s\n", argv[1], strerror(errno));
        return 125;
    }
    char cwd[4096], num[32];
    if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "/");
    put_str("{\"id\":1,\"method\":\"exec\",\"params\":{\"args\":[");
    for (int i = 2; i < argc; i++) {
        if (i > 2) put(",", 1);
        put_json_string(argv[i]);
    }
    put_str("],\"pwd\":");
    put_json_string(cwd);
    snprintf(num, sizeof num, ",\"pid\":%d}}", (int)getpid());
    put_str(num);
    if (send(fd, out, used, 0) < 0) return 125;
    ssize_t got = recv(fd, out, sizeof out - 1, 0);
    if (got <= 0) return 125;
    out[got] = '\0';
    close(fd);

    char *p = strstr(out, "\"execArgs\":[");
    if (p) {
        static char *args[MAX_ARGS + 1];
        int k = 0;
        p += strlen("\"execArgs\":[");
        while (*p && *p != ']' && k < MAX_ARGS) {
            if (*p == '"') {
                p++;
                if (!(args[k++] = parse_string(&p))) return 125;
            } else {
                p++;
            }
        }
        args[k] = NULL;
        if (k == 0) return 125;
        execvp(args[0], args);
        fprintf(stderr, "exec_client: %s: %s\n", args[0], strerror(errno));
        return 127;
    }
    print_field(out, "\"stdOut\":\"", stdout);
    print_field(out, "\"stdErr\":\"", stderr);
    p = strstr(out, "\"exitCode\":");
    if (p) return atoi(p + strlen("\"exitCode\":"));
    print_field(out, "\"message\":\"", stderr);
    fputc('\n', stderr);
    return 125;
}
