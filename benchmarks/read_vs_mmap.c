/* Reading a capture through read() into a reused buffer against mmap windows: what the
 * kernel's page-cache copy costs, and what mapping would save (docs/performance.md,
 * "Native engine, part 4"). Walks the pcap records as the engine does, touching each
 * packet's first 64 bytes, then `work` rounds of arithmetic per packet (the engine's own
 * work, about 100 rounds ~ 0.1 us); prints wall and CPU (user, system) times.
 *
 *   cc -O2 -o /tmp/rvm benchmarks/read_vs_mmap.c
 *   for i in $(seq 9); do for m in "read 256" "mmap 1024" "mmap 8192"; do
 *     /tmp/rvm $m benchmarks/data/bench.pcap 100; done; done
 *
 * Modes: read KIB (read() KIB at a time, the unconsumed tail moved to the front, as
 * src/sources/chunks.rs does), mmap KIB (windows of KIB with MADV_SEQUENTIAL, each
 * unmapped once walked), mmappop KIB (the same with MAP_POPULATE). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int work;
static uint64_t packets;

/* The complete records of p[0..n): returns the bytes they take. */
static size_t walk(const unsigned char *p, size_t n, uint64_t *sum) {
    size_t at = 0;
    while (at + 16 <= n) {
        uint32_t caplen;
        memcpy(&caplen, p + at + 8, 4);
        if (at + 16 + caplen > n)
            break;
        const unsigned char *frame = p + at + 16;
        uint64_t x = 0, w;
        for (int i = 0; i < 8 && i * 8 + 8 <= (int)caplen; i++) {
            memcpy(&w, frame + i * 8, 8);
            x ^= w;
        }
        for (int k = 0; k < work; k++)
            x = x * 0x9E3779B97F4A7C15ull + (x >> 17);
        *sum += x;
        packets++;
        at += 16 + caplen;
    }
    return at;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s read|mmap|mmappop KIB FILE WORK\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    size_t window = strtoul(argv[2], 0, 0) << 10;
    work = atoi(argv[4]);
    int fd = open(argv[3], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[3]);
        return 1;
    }
    size_t size = st.st_size;
    double t0 = now();
    uint64_t sum = 0;
    if (!strcmp(mode, "read")) {
        unsigned char *buf = malloc(window);
        size_t have = 0;
        ssize_t k;
        lseek(fd, 24, SEEK_SET); /* past the file header */
        while ((k = read(fd, buf + have, window - have)) > 0) {
            have += k;
            size_t used = walk(buf, have, &sum);
            memmove(buf, buf + used, have - used);
            have -= used;
        }
    } else {
        int populate = !strcmp(mode, "mmappop") ? MAP_POPULATE : 0;
        size_t off = 24;
        while (off < size) {
            size_t base = off & ~(size_t)4095;
            size_t n = size - base < window ? size - base : window;
            unsigned char *p = mmap(0, n, PROT_READ, MAP_PRIVATE | populate, fd, base);
            if (p == MAP_FAILED) {
                perror("mmap");
                return 1;
            }
            madvise(p, n, MADV_SEQUENTIAL);
            size_t used = walk(p + (off - base), n - (off - base), &sum);
            munmap(p, n);
            if (used == 0)
                break;
            off += used;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s %zuK wall %.1f user %.1f sys %.1f minflt %ld packets %llu sum %llx\n", mode,
           window >> 10, (now() - t0) * 1e3,
           ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3,
           ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3, ru.ru_minflt,
           (unsigned long long)packets, (unsigned long long)sum);
    return 0;
}
