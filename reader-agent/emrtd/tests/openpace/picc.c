/*
 * A card (PICC) for PACE with the CAN and one exchange of secure messaging, built on OpenPACE
 * (libeac), to check the Rust terminal against an independent implementation.
 *
 * Usage: picc EF_CARDACCESS_HEX CAN
 *
 * Speaks one command APDU per line on stdin and answers one response APDU per line on stdout,
 * both in hex. It expects, in order:
 *   1. MSE:Set AT (00 22 C1 A4) with DO83 = 02 (CAN): answers 9000;
 *   2.-5. the four GENERAL AUTHENTICATE steps: every cryptographic step is OpenPACE's
 *      (nonce encryption, mapping, key agreement, key derivation, tokens); a terminal token
 *      that does not verify is answered 6300 and the program ends;
 *   6. one command protected with secure messaging (DO87, DO97, DO8E) under OpenPACE's
 *      session keys and counter: a MAC that does not verify is answered 6988; otherwise the
 *      answer is protected by OpenPACE and carries the decrypted command data reversed,
 *      followed by "OpenPACE".
 * Diagnostics go to stderr. The APDU framing and the TLV walking here are test scaffolding; all
 * cryptography is libeac's.
 */
#include <eac/eac.h>
#include <eac/pace.h>
#include <openssl/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *why) {
    fprintf(stderr, "picc: %s\n", why);
    exit(2);
}

static BUF_MEM *buf(const unsigned char *data, size_t len) {
    BUF_MEM *b = BUF_MEM_new();
    if (!b || (len && !BUF_MEM_grow(b, len))) die("out of memory");
    if (len) memcpy(b->data, data, len);
    b->length = len;
    return b;
}

static int nibble(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses a hex string into out; returns its length or -1. */
static long unhex(const char *s, unsigned char *out, size_t cap) {
    size_t n = 0;
    while (*s && *s != '\n' && *s != '\r') {
        int hi = nibble(s[0]), lo = s[1] ? nibble(s[1]) : -1;
        if (hi < 0 || lo < 0 || n >= cap) return -1;
        out[n++] = (unsigned char)(hi << 4 | lo);
        s += 2;
    }
    return (long)n;
}

static void answer(const unsigned char *data, size_t len, unsigned sw) {
    for (size_t i = 0; i < len; i++) printf("%02X", data[i]);
    printf("%02X%02X\n", (sw >> 8) & 0xFF, sw & 0xFF);
    fflush(stdout);
}

/* Reads one command APDU; returns the command data (Lc bytes) via data/len. */
static int read_command(unsigned char *apdu, size_t cap, size_t *apdu_len,
                        const unsigned char **data, size_t *len) {
    char line[8192];
    if (!fgets(line, sizeof line, stdin)) return 0;
    long n = unhex(line, apdu, cap);
    if (n < 4) die("bad command line");
    *apdu_len = (size_t)n;
    *data = apdu + 5;
    *len = 0;
    if (n > 5) {
        size_t lc = apdu[4];
        if (lc == 0) { /* extended length */
            if (n < 7) die("bad extended APDU");
            lc = (size_t)apdu[5] << 8 | apdu[6];
            *data = apdu + 7;
            if ((size_t)n < 7 + lc) die("Lc beyond the APDU");
        } else if ((size_t)n < 5 + lc) {
            die("Lc beyond the APDU");
        }
        *len = lc;
    }
    return 1;
}

/* One BER-TLV object with a one-byte tag: returns the value and advances *p. */
static const unsigned char *tlv(const unsigned char **p, const unsigned char *end,
                                unsigned char *tag, size_t *len) {
    const unsigned char *q = *p;
    if (end - q < 2) return NULL;
    *tag = *q++;
    size_t l = *q++;
    if (l == 0x81) {
        if (end - q < 1) return NULL;
        l = *q++;
    } else if (l == 0x82) {
        if (end - q < 2) return NULL;
        l = (size_t)q[0] << 8 | q[1];
        q += 2;
    } else if (l > 0x80) {
        return NULL;
    }
    if ((size_t)(end - q) < l) return NULL;
    *len = l;
    *p = q + l;
    return q;
}

/* The value of tag `want` inside 7C, or NULL. */
static BUF_MEM *dynamic_authentication_data(const unsigned char *data, size_t len,
                                            unsigned char want) {
    const unsigned char *p = data, *end = data + len;
    unsigned char tag;
    size_t l;
    const unsigned char *v = tlv(&p, end, &tag, &l);
    if (!v || tag != 0x7C) return NULL;
    const unsigned char *q = v, *inner_end = v + l;
    const unsigned char *w = tlv(&q, inner_end, &tag, &l);
    if (!w || tag != want) return NULL;
    return buf(w, l);
}

static void reply_object(unsigned char tag, const BUF_MEM *value) {
    unsigned char out[1024];
    size_t n = 0, l = value->length;
    if (l + 8 > sizeof out) die("answer too long");
    unsigned char inner[1024];
    size_t m = 0;
    inner[m++] = tag;
    if (l >= 0x80) inner[m++] = 0x81;
    inner[m++] = (unsigned char)l;
    memcpy(inner + m, value->data, l);
    m += l;
    out[n++] = 0x7C;
    if (m >= 0x80) out[n++] = 0x81;
    out[n++] = (unsigned char)m;
    memcpy(out + n, inner, m);
    n += m;
    answer(out, n, 0x9000);
}

static void append(BUF_MEM *b, const void *data, size_t len) {
    size_t old = b->length;
    if (!BUF_MEM_grow(b, old + len)) die("out of memory");
    memcpy(b->data + old, data, len);
}

int main(int argc, char **argv) {
    if (argc != 3) die("usage: picc EF_CARDACCESS_HEX CAN");
    unsigned char card_access[512];
    long card_access_len = unhex(argv[1], card_access, sizeof card_access);
    if (card_access_len <= 0) die("bad EF.CardAccess hex");

    EAC_init();
    EAC_CTX *ctx = EAC_CTX_new();
    if (!ctx || !EAC_CTX_init_ef_cardaccess(card_access, (size_t)card_access_len, ctx))
        die("EAC_CTX_init_ef_cardaccess failed");
    PACE_SEC *can = PACE_SEC_new(argv[2], strlen(argv[2]), PACE_CAN);
    if (!can) die("PACE_SEC_new failed");

    unsigned char apdu[4096];
    size_t apdu_len, len;
    const unsigned char *data;

    /* 1. MSE:Set AT with the CAN. */
    if (!read_command(apdu, sizeof apdu, &apdu_len, &data, &len)) die("no MSE:Set AT");
    {
        int has_can = 0;
        const unsigned char *p = data, *end = data + len;
        unsigned char tag;
        size_t l;
        const unsigned char *v;
        while (p < end && (v = tlv(&p, end, &tag, &l)))
            if (tag == 0x83 && l == 1 && v[0] == 0x02) has_can = 1;
        if (apdu[1] != 0x22 || apdu[2] != 0xC1 || apdu[3] != 0xA4 || !has_can) {
            answer(NULL, 0, 0x6A80);
            return 1;
        }
        answer(NULL, 0, 0x9000);
    }

    /* 2. Encrypted nonce. */
    if (!read_command(apdu, sizeof apdu, &apdu_len, &data, &len)) die("no GA 1");
    BUF_MEM *enc_nonce = PACE_STEP1_enc_nonce(ctx, can);
    if (!enc_nonce) die("PACE_STEP1_enc_nonce failed");
    reply_object(0x80, enc_nonce);

    /* 3. Mapping. */
    if (!read_command(apdu, sizeof apdu, &apdu_len, &data, &len)) die("no GA 2");
    BUF_MEM *pcd_mapping = dynamic_authentication_data(data, len, 0x81);
    if (!pcd_mapping) die("GA 2 without DO81");
    BUF_MEM *picc_mapping = PACE_STEP3A_generate_mapping_data(ctx);
    if (!picc_mapping || !PACE_STEP3A_map_generator(ctx, pcd_mapping))
        die("OpenPACE mapping failed");
    reply_object(0x82, picc_mapping);

    /* 4. Key agreement and key derivation. */
    if (!read_command(apdu, sizeof apdu, &apdu_len, &data, &len)) die("no GA 3");
    BUF_MEM *pcd_key = dynamic_authentication_data(data, len, 0x83);
    if (!pcd_key) die("GA 3 without DO83");
    BUF_MEM *picc_key = PACE_STEP3B_generate_ephemeral_key(ctx);
    if (!picc_key || !PACE_STEP3B_compute_shared_secret(ctx, pcd_key) ||
        !PACE_STEP3C_derive_keys(ctx))
        die("OpenPACE key agreement failed");
    reply_object(0x84, picc_key);

    /* 5. Tokens. */
    if (!read_command(apdu, sizeof apdu, &apdu_len, &data, &len)) die("no GA 4");
    BUF_MEM *pcd_token = dynamic_authentication_data(data, len, 0x85);
    if (!pcd_token) die("GA 4 without DO85");
    if (PACE_STEP3D_verify_authentication_token(ctx, pcd_token) != 1) {
        fprintf(stderr, "picc: terminal token does not verify\n");
        answer(NULL, 0, 0x6300);
        return 0;
    }
    BUF_MEM *picc_token = PACE_STEP3D_compute_authentication_token(ctx, pcd_key);
    if (!picc_token) die("PACE_STEP3D_compute_authentication_token failed");
    reply_object(0x86, picc_token);
    if (!EAC_CTX_set_encryption_ctx(ctx, EAC_ID_PACE)) die("EAC_CTX_set_encryption_ctx failed");

    /* 6. One protected command. */
    if (!read_command(apdu, sizeof apdu, &apdu_len, &data, &len)) die("no protected command");
    if ((apdu[0] & 0x0C) != 0x0C) die("command not protected");
    const unsigned char *p = data, *end = data + len;
    const unsigned char *do87 = NULL, *do97 = NULL, *mac = NULL;
    size_t do87_len = 0, do97_len = 0, mac_len = 0;
    const unsigned char *v, *start;
    unsigned char tag;
    size_t l;
    while (p < end) {
        start = p;
        v = tlv(&p, end, &tag, &l);
        if (!v) die("malformed protected command");
        if (tag == 0x87) { do87 = start; do87_len = (size_t)(p - start); }
        else if (tag == 0x97) { do97 = start; do97_len = (size_t)(p - start); }
        else if (tag == 0x8E) { mac = v; mac_len = l; }
        else die("unexpected object in protected command");
    }
    if (!mac) die("protected command without DO8E");
    if (!EAC_increment_ssc(ctx)) die("EAC_increment_ssc failed");
    unsigned char header[4] = {apdu[0], apdu[1], apdu[2], apdu[3]};
    BUF_MEM *h = buf(header, 4);
    BUF_MEM *to_mac = EAC_add_iso_pad(ctx, h);
    if (do87) append(to_mac, do87, do87_len);
    if (do97) append(to_mac, do97, do97_len);
    BUF_MEM *padded = EAC_add_iso_pad(ctx, to_mac);
    BUF_MEM *mac_buf = buf(mac, mac_len);
    if (EAC_verify_authentication(ctx, padded, mac_buf) != 1) {
        fprintf(stderr, "picc: command MAC does not verify\n");
        answer(NULL, 0, 0x6988);
        return 0;
    }
    BUF_MEM *plain = NULL;
    if (do87) {
        const unsigned char *q = do87;
        v = tlv(&q, do87 + do87_len, &tag, &l);
        if (!v || l < 2 || v[0] != 0x01) die("malformed DO87");
        BUF_MEM *cryptogram = buf(v + 1, l - 1);
        BUF_MEM *decrypted = EAC_decrypt(ctx, cryptogram);
        if (!decrypted) die("EAC_decrypt failed");
        plain = EAC_remove_iso_pad(decrypted);
        if (!plain) die("bad padding in the command");
    } else {
        plain = buf(NULL, 0);
    }
    fprintf(stderr, "picc: command data decrypted, %zu bytes\n", plain->length);

    /* The answer: the command data reversed, then "OpenPACE". */
    BUF_MEM *reply = buf(NULL, 0);
    for (size_t i = plain->length; i > 0; i--) append(reply, plain->data + i - 1, 1);
    append(reply, "OpenPACE", 8);
    if (!EAC_increment_ssc(ctx)) die("EAC_increment_ssc failed");
    BUF_MEM *enc = EAC_encrypt(ctx, EAC_add_iso_pad(ctx, reply));
    if (!enc) die("EAC_encrypt failed");
    BUF_MEM *objects = buf(NULL, 0);
    unsigned char do87_head[4];
    size_t head_len = 0;
    do87_head[head_len++] = 0x87;
    if (enc->length + 1 >= 0x80) do87_head[head_len++] = 0x81;
    do87_head[head_len++] = (unsigned char)(enc->length + 1);
    do87_head[head_len++] = 0x01;
    append(objects, do87_head, head_len);
    append(objects, enc->data, enc->length);
    const unsigned char do99[4] = {0x99, 0x02, 0x90, 0x00};
    append(objects, do99, 4);
    BUF_MEM *response_mac = EAC_authenticate(ctx, EAC_add_iso_pad(ctx, objects));
    if (!response_mac) die("EAC_authenticate failed");
    unsigned char do8e_head[2] = {0x8E, (unsigned char)response_mac->length};
    append(objects, do8e_head, 2);
    append(objects, response_mac->data, response_mac->length);
    answer((unsigned char *)objects->data, objects->length, 0x9000);

    PACE_SEC_clear_free(can);
    EAC_CTX_clear_free(ctx);
    EAC_cleanup();
    return 0;
}
