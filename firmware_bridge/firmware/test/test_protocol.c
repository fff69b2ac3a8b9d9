/*
 * test_protocol.c - native check of bg_protocol.h against the test vectors.
 *
 * Built by the host's test suite with the system gcc:
 *   gcc -std=c99 -Wall -Wextra -Werror -I../beatguard_ad8232 -I<dir of vectors.h>
 * where vectors.h is generated from firmware_bridge/test_vectors.json. Prints
 * one line per failed check and exits with the number of failures.
 */
#include <stdio.h>
#include <string.h>

#include "bg_protocol.h"
#include "vectors.h"

static int failures;

static void check(int ok, const char *what, const char *name) {
    if (!ok) {
        printf("FAIL %s: %s\n", what, name);
        failures++;
    }
}

static void test_crc(void) {
    size_t i;
    for (i = 0; i < sizeof(CRCS) / sizeof(CRCS[0]); i++) {
        check(bg_crc16(CRCS[i].data, CRCS[i].len) == CRCS[i].crc, "crc", CRCS[i].name);
    }
}

static void test_cobs(void) {
    size_t i;
    uint8_t out[BG_MAX_WIRE];
    for (i = 0; i < sizeof(COBS) / sizeof(COBS[0]); i++) {
        size_t n = bg_cobs_encode(COBS[i].decoded, COBS[i].dlen, out);
        check(n == COBS[i].elen && memcmp(out, COBS[i].encoded, n) == 0, "cobs encode",
              COBS[i].name);
        check(bg_cobs_decode(COBS[i].encoded, COBS[i].elen, out) == (int)COBS[i].dlen &&
                  memcmp(out, COBS[i].decoded, COBS[i].dlen) == 0,
              "cobs decode", COBS[i].name);
    }
}

static void test_frames(void) {
    size_t i;
    uint8_t j;
    for (i = 0; i < sizeof(FRAMES) / sizeof(FRAMES[0]); i++) {
        const vec_frame_t *v = &FRAMES[i];
        uint8_t wire[BG_MAX_WIRE];
        bg_frame_t f;
        size_t n;
        if (v->type == BG_TYPE_SAMPLES) {
            uint16_t words[BG_MAX_SAMPLES];
            for (j = 0; j < v->count; j++) {
                words[j] = bg_sample_word(v->values[j], v->lo_plus[j], v->lo_minus[j]);
            }
            n = bg_encode_samples(v->seq, words, v->count, wire);
        } else {
            n = bg_encode_announce(&v->ann, wire);
        }
        check(n == v->wire_len && memcmp(wire, v->wire, n) == 0, "encode", v->name);
        memset(&f, 0, sizeof(f));
        check(bg_decode(v->wire, v->wire_len - 1, &f) == 0 && f.type == v->type, "decode",
              v->name);
        if (v->type == BG_TYPE_SAMPLES) {
            check(f.seq == v->seq && f.count == v->count, "decode seq/count", v->name);
            for (j = 0; j < v->count && j < f.count; j++) {
                check((f.words[j] & BG_VALUE_MASK) == v->values[j] &&
                          !!(f.words[j] & BG_LO_PLUS) == v->lo_plus[j] &&
                          !!(f.words[j] & BG_LO_MINUS) == v->lo_minus[j],
                      "decode sample", v->name);
            }
        } else {
            check(f.version == BG_PROTOCOL_VERSION &&
                      f.announce.fs_mhz == v->ann.fs_mhz &&
                      f.announce.adc_bits == v->ann.adc_bits &&
                      f.announce.new_per_frame == v->ann.new_per_frame &&
                      f.announce.window == v->ann.window &&
                      f.announce.gain_centi == v->ann.gain_centi &&
                      f.announce.baseline_counts == v->ann.baseline_counts &&
                      f.announce.fw_major == v->ann.fw_major &&
                      f.announce.fw_minor == v->ann.fw_minor &&
                      f.announce.fw_patch == v->ann.fw_patch &&
                      f.announce.board_sample == v->ann.board_sample,
                  "decode announce", v->name);
        }
    }
}

static void test_invalid(void) {
    size_t i;
    for (i = 0; i < sizeof(INVALID) / sizeof(INVALID[0]); i++) {
        bg_frame_t f;
        check(bg_decode(INVALID[i].wire, INVALID[i].len - 1, &f) != 0, "reject",
              INVALID[i].name);
    }
}

int main(void) {
    test_crc();
    test_cobs();
    test_frames();
    test_invalid();
    printf("%d failure(s)\n", failures);
    return failures;
}
