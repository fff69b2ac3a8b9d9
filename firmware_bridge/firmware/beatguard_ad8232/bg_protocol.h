/*
 * bg_protocol.h - framing and checksum of the beatguard wire protocol.
 *
 * Plain C99, no Arduino dependency: the sketch includes it, and a native
 * test compiled with the system gcc checks it against the same test
 * vectors (test_vectors.json) as the host's Python codec. The byte layout
 * is described in PROTOCOL.md.
 *
 * A frame on the wire is COBS(type, body, CRC-16/CCITT-FALSE little-endian)
 * followed by one 0x00 delimiter. All multi-byte fields are little-endian.
 */
#ifndef BG_PROTOCOL_H
#define BG_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define BG_PROTOCOL_VERSION 1u
#define BG_TYPE_ANNOUNCE 0x41u /* 'A' */
#define BG_TYPE_SAMPLES 0x53u  /* 'S' */

#define BG_VALUE_MASK 0x0FFFu    /* bits 0-11: ADC value */
#define BG_LO_PLUS 0x1000u       /* bit 12: LO+ pin high (electrode off) */
#define BG_LO_MINUS 0x2000u      /* bit 13: LO- pin high (electrode off) */
#define BG_RESERVED_MASK 0xC000u /* bits 14-15: always zero */

#define BG_MAX_SAMPLES 64u
#define BG_ANNOUNCE_BODY 21u /* bytes after the type byte */
#define BG_CRC_BYTES 2u
/* Longest unencoded frame (type, body, CRC) and its wire form. */
#define BG_MAX_RAW (1u + 2u + 2u * BG_MAX_SAMPLES + BG_CRC_BYTES)
#define BG_WIRE_SIZE(raw_len) ((raw_len) + 2u) /* COBS code + delimiter */
#define BG_MAX_WIRE BG_WIRE_SIZE(BG_MAX_RAW)

typedef struct {
    uint32_t fs_mhz;           /* sample rate in millihertz */
    uint8_t adc_bits;          /* ADC resolution */
    uint8_t new_per_frame;     /* samples each frame adds */
    uint8_t window;            /* samples each frame carries */
    uint32_t gain_centi;       /* counts per millivolt, times 100 */
    uint16_t baseline_counts;  /* count of 0 mV */
    uint8_t fw_major, fw_minor, fw_patch;
    uint32_t board_sample;     /* counter of the next sample sent */
} bg_announce_t;

typedef struct {
    uint8_t type;           /* BG_TYPE_ANNOUNCE or BG_TYPE_SAMPLES */
    uint8_t version;        /* announce only */
    bg_announce_t announce; /* announce only */
    uint16_t seq;           /* samples only: counter of words[0] mod 2^16 */
    uint8_t count;          /* samples only */
    uint16_t words[BG_MAX_SAMPLES];
} bg_frame_t;

/* One CRC-16/CCITT-FALSE step (poly 0x1021, init 0xFFFF, no reflection). */
static inline uint16_t bg_crc16_update(uint16_t crc, uint8_t byte) {
    uint8_t bit;
    crc ^= (uint16_t)((uint16_t)byte << 8);
    for (bit = 0; bit < 8; bit++) {
        crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

static inline uint16_t bg_crc16(const uint8_t *data, size_t len) {
    uint16_t crc = 0xFFFFu;
    size_t i;
    for (i = 0; i < len; i++) crc = bg_crc16_update(crc, data[i]);
    return crc;
}

/* COBS-encode len bytes (len < 254) into out (len + 1 bytes, no zeros).
 * Returns the encoded length. */
static inline size_t bg_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t read = 0, write = 1, code_at = 0;
    uint8_t code = 1;
    while (read < len) {
        if (in[read] == 0) {
            out[code_at] = code;
            code = 1;
            code_at = write++;
        } else {
            out[write++] = in[read];
            code++;
        }
        read++;
    }
    out[code_at] = code;
    return write;
}

/* Undo bg_cobs_encode (input without its delimiter, blocks < 254 bytes).
 * Returns the decoded length, or -1 if the input is not valid COBS. */
static inline int bg_cobs_decode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t read = 0, write = 0, i;
    while (read < len) {
        uint8_t code = in[read];
        if (code == 0 || read + code > len) return -1;
        read++;
        for (i = 1; i < code; i++) {
            if (in[read] == 0) return -1;
            out[write++] = in[read++];
        }
        if (code < 0xFF && read < len) out[write++] = 0;
    }
    return (int)write;
}

/* Append the CRC to raw[0..len) (raw needs len + 2 bytes), COBS-encode it
 * into wire and add the delimiter. Returns the number of wire bytes. */
static inline size_t bg_finish(uint8_t *raw, size_t len, uint8_t *wire) {
    uint16_t crc = bg_crc16(raw, len);
    size_t n;
    raw[len] = (uint8_t)(crc & 0xFFu);
    raw[len + 1] = (uint8_t)(crc >> 8);
    n = bg_cobs_encode(raw, len + BG_CRC_BYTES, wire);
    wire[n] = 0;
    return n + 1;
}

static inline void bg_put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static inline void bg_put32(uint8_t *p, uint32_t v) {
    bg_put16(p, (uint16_t)(v & 0xFFFFu));
    bg_put16(p + 2, (uint16_t)(v >> 16));
}

static inline uint16_t bg_get16(const uint8_t *p) {
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}

static inline uint32_t bg_get32(const uint8_t *p) {
    return (uint32_t)bg_get16(p) | ((uint32_t)bg_get16(p + 2) << 16);
}

/* A sample word: 12-bit ADC value and the two leads-off pins. */
static inline uint16_t bg_sample_word(uint16_t value, uint8_t lo_plus, uint8_t lo_minus) {
    return (uint16_t)((value & BG_VALUE_MASK) | (lo_plus ? BG_LO_PLUS : 0u) |
                      (lo_minus ? BG_LO_MINUS : 0u));
}

/* Encode a sample frame of count words (1..64) starting at counter seq.
 * wire needs BG_WIRE_SIZE(5 + 2 * count) bytes. Returns the wire length,
 * or 0 if count is out of range. */
static inline size_t bg_encode_samples(uint16_t seq, const uint16_t *words, uint8_t count,
                                       uint8_t *wire) {
    uint8_t raw[BG_MAX_RAW];
    uint8_t i;
    if (count == 0 || count > BG_MAX_SAMPLES) return 0;
    raw[0] = BG_TYPE_SAMPLES;
    bg_put16(raw + 1, seq);
    for (i = 0; i < count; i++) bg_put16(raw + 3 + 2u * i, words[i]);
    return bg_finish(raw, 3u + 2u * count, wire);
}

/* Encode an announce; wire needs BG_WIRE_SIZE(1 + 21 + 2) = 26 bytes. */
static inline size_t bg_encode_announce(const bg_announce_t *a, uint8_t *wire) {
    uint8_t raw[1 + BG_ANNOUNCE_BODY + BG_CRC_BYTES];
    raw[0] = BG_TYPE_ANNOUNCE;
    raw[1] = BG_PROTOCOL_VERSION;
    bg_put32(raw + 2, a->fs_mhz);
    raw[6] = a->adc_bits;
    raw[7] = a->new_per_frame;
    raw[8] = a->window;
    bg_put32(raw + 9, a->gain_centi);
    bg_put16(raw + 13, a->baseline_counts);
    raw[15] = a->fw_major;
    raw[16] = a->fw_minor;
    raw[17] = a->fw_patch;
    bg_put32(raw + 18, a->board_sample);
    return bg_finish(raw, 1u + BG_ANNOUNCE_BODY, wire);
}

/* Decode one frame's wire bytes (without the delimiter). Returns 0 on
 * success, or a negative code: -1 bad COBS, -2 too short, -3 CRC mismatch,
 * -4 bad length, -5 reserved bits set, -6 unknown type. */
static inline int bg_decode(const uint8_t *wire, size_t len, bg_frame_t *f) {
    uint8_t raw[BG_MAX_RAW];
    int n;
    uint8_t i;
    size_t body;
    if (len > BG_MAX_RAW + 1u) return -4;
    n = bg_cobs_decode(wire, len, raw);
    if (n < 0) return -1;
    if (n < (int)(1u + BG_CRC_BYTES)) return -2;
    if (bg_crc16(raw, (size_t)n - BG_CRC_BYTES) != bg_get16(raw + n - BG_CRC_BYTES)) return -3;
    body = (size_t)n - 1u - BG_CRC_BYTES;
    f->type = raw[0];
    if (raw[0] == BG_TYPE_SAMPLES) {
        if (body < 4u || (body - 2u) % 2u != 0u || (body - 2u) / 2u > BG_MAX_SAMPLES) return -4;
        f->seq = bg_get16(raw + 1);
        f->count = (uint8_t)((body - 2u) / 2u);
        for (i = 0; i < f->count; i++) {
            f->words[i] = bg_get16(raw + 3 + 2u * i);
            if (f->words[i] & BG_RESERVED_MASK) return -5;
        }
        return 0;
    }
    if (raw[0] == BG_TYPE_ANNOUNCE) {
        if (body != BG_ANNOUNCE_BODY) return -4;
        f->version = raw[1];
        f->announce.fs_mhz = bg_get32(raw + 2);
        f->announce.adc_bits = raw[6];
        f->announce.new_per_frame = raw[7];
        f->announce.window = raw[8];
        f->announce.gain_centi = bg_get32(raw + 9);
        f->announce.baseline_counts = bg_get16(raw + 13);
        f->announce.fw_major = raw[15];
        f->announce.fw_minor = raw[16];
        f->announce.fw_patch = raw[17];
        f->announce.board_sample = bg_get32(raw + 18);
        return 0;
    }
    return -6;
}

#endif /* BG_PROTOCOL_H */
