/*
 * beatguard_ad8232 - stream an AD8232 ECG front end to the host.
 *
 * Board: Arduino Uno or Nano (ATmega328P, 16 MHz).
 * Wiring: AD8232 OUTPUT -> A0, LO+ -> D10, LO- -> D11, 3.3V -> 3.3V,
 *         GND -> GND (SDN left open). USB to the Raspberry Pi.
 *
 * Timer1 in CTC mode interrupts at SAMPLE_RATE_HZ (360 Hz by default). The
 * interrupt reads A0 and the two leads-off pins and stores one sample word
 * in a ring buffer; loop() sends a frame every NEW_PER_FRAME samples
 * carrying the last WINDOW samples (the older ones repeated, so the host
 * loses nothing when up to three frames in a row are corrupted on the
 * wire), and an announce at boot and every ANNOUNCE_EVERY_S seconds. The
 * framing is in bg_protocol.h; the byte layout in PROTOCOL.md.
 *
 * If loop() ever falls more than the ring buffer behind, it skips ahead;
 * the sequence counter then jumps and the host reports the lost samples.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "bg_protocol.h"

#define ECG_PIN A0
#define LO_PLUS_PIN 10
#define LO_MINUS_PIN 11

#define SAMPLE_RATE_HZ 360UL
#define SERIAL_BAUD 115200UL
#define NEW_PER_FRAME 4
#define WINDOW 16
#define RING_SIZE 64 /* power of two, > WINDOW */
#define ANNOUNCE_EVERY_S 2UL

/* AD8232 gain 1100 into a 10-bit ADC referenced to 5 V:
 * 1100 * 1024 / 5000 = 225.28 counts per millivolt; its reference output
 * sits at mid-supply (3.3 V / 2), i.e. 1.65 V / 5 V * 1024 = 338 counts. */
#define ADC_BITS 10
#define GAIN_CENTI_COUNTS_PER_MV 22528UL
#define BASELINE_COUNTS 338

#define FW_MAJOR 1
#define FW_MINOR 0
#define FW_PATCH 0

/* Timer1 compare value: prescaler 1 when the count fits 16 bits, else 8. */
#if (F_CPU / SAMPLE_RATE_HZ - 1UL) <= 65535UL
#define TIMER_PRESCALE 1UL
#define TIMER_CS_BITS (1 << CS10)
#else
#define TIMER_PRESCALE 8UL
#define TIMER_CS_BITS (1 << CS11)
#endif
#define TIMER_TOP ((F_CPU + TIMER_PRESCALE * SAMPLE_RATE_HZ / 2UL) / \
                   (TIMER_PRESCALE * SAMPLE_RATE_HZ) - 1UL)
/* The true rate the timer gives, in millihertz, announced to the host. */
#define TRUE_RATE_MHZ ((F_CPU * 1000ULL) / (TIMER_PRESCALE * (TIMER_TOP + 1ULL)))

static volatile uint16_t ring[RING_SIZE];
static volatile uint32_t samples_taken; /* written only by the interrupt */
static uint32_t samples_sent;           /* first sample of the next frame's new part */
static uint32_t next_announce;

ISR(TIMER1_COMPA_vect) {
    uint16_t value = (uint16_t)analogRead(ECG_PIN);
    uint8_t lo_plus = digitalRead(LO_PLUS_PIN) == HIGH;
    uint8_t lo_minus = digitalRead(LO_MINUS_PIN) == HIGH;
    ring[(uint8_t)samples_taken & (RING_SIZE - 1)] = bg_sample_word(value, lo_plus, lo_minus);
    samples_taken++;
}

static void send_announce(uint32_t board_sample) {
    bg_announce_t a;
    uint8_t wire[BG_WIRE_SIZE(1 + BG_ANNOUNCE_BODY + BG_CRC_BYTES)];
    a.fs_mhz = (uint32_t)TRUE_RATE_MHZ;
    a.adc_bits = ADC_BITS;
    a.new_per_frame = NEW_PER_FRAME;
    a.window = WINDOW;
    a.gain_centi = GAIN_CENTI_COUNTS_PER_MV;
    a.baseline_counts = BASELINE_COUNTS;
    a.fw_major = FW_MAJOR;
    a.fw_minor = FW_MINOR;
    a.fw_patch = FW_PATCH;
    a.board_sample = board_sample;
    Serial.write(wire, bg_encode_announce(&a, wire));
}

static void send_frame(uint32_t end) {
    uint16_t words[WINDOW];
    uint8_t wire[BG_WIRE_SIZE(1 + 2 + 2 * WINDOW + BG_CRC_BYTES)];
    uint32_t first = end >= WINDOW ? end - WINDOW : 0;
    uint8_t count = (uint8_t)(end - first);
    uint8_t i;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
        for (i = 0; i < count; i++) {
            words[i] = ring[(uint8_t)(first + i) & (RING_SIZE - 1)];
        }
    }
    Serial.write(wire, bg_encode_samples((uint16_t)first, words, count, wire));
}

static void start_timer(void) {
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
        TCCR1A = 0;
        TCCR1B = (1 << WGM12) | TIMER_CS_BITS; /* CTC, TOP = OCR1A */
        TCNT1 = 0;
        OCR1A = (uint16_t)TIMER_TOP;
        TIMSK1 = (1 << OCIE1A);
    }
}

void setup() {
    pinMode(LO_PLUS_PIN, INPUT);
    pinMode(LO_MINUS_PIN, INPUT);
    Serial.begin(SERIAL_BAUD);
    Serial.write((uint8_t)0); /* end whatever the host saw before the boot */
    send_announce(0);
    next_announce = SAMPLE_RATE_HZ * ANNOUNCE_EVERY_S;
    start_timer();
}

void loop() {
    uint32_t taken;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { taken = samples_taken; }
    if (taken - samples_sent > RING_SIZE - WINDOW) {
        /* Fell behind: skip ahead; the host sees the sequence jump. */
        samples_sent = taken - (taken % NEW_PER_FRAME);
    }
    while (taken - samples_sent >= NEW_PER_FRAME) {
        if (samples_sent >= next_announce) {
            send_announce(samples_sent);
            next_announce += SAMPLE_RATE_HZ * ANNOUNCE_EVERY_S;
        }
        samples_sent += NEW_PER_FRAME;
        send_frame(samples_sent);
    }
}
