/*
 * fullduplex._speedups: optional C versions of the receive and send hot paths, and
 * of the server's opening handshake.
 *
 * Every function here has a pure-Python twin with the same results, bit for bit:
 *
 *     apply_mask          protocol/mask.py       (RFC 6455 §5.3 masking)
 *     mask_into           protocol/_accel_py.py  (the same, in place in a bytearray)
 *     utf8_check          protocol/_accel_py.py  (incremental UTF-8 DFA, Unicode Table 3-7)
 *     encode_frame        protocol/frames.py     (RFC 6455 §5.2 frame encoding)
 *     scan                protocol/_accel_py.py  (whole single-frame data messages)
 *     Payload             protocol/_accel_py.py  (a large frame's payload, piece by piece)
 *     parse_request_head  protocol/_accel_py.py  (a request head that arrived whole)
 *     websocket_accept    protocol/_accel_py.py  (RFC 6455 §4.2.2 Sec-WebSocket-Accept)
 *
 * protocol/_accel.py picks these or the twins; tests/protocol/test_speedups.py and
 * test_speedups_handshake.py check that both give the same answers, and fuzzing/
 * feeds them arbitrary input under AddressSanitizer.
 *
 * Plain C API, no third-party build dependency. Arguments are taken with the
 * vectorcall convention (METH_FASTCALL | METH_KEYWORDS) because these functions run
 * once per frame and argument parsing is a large part of the cost for small frames.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ arguments */

/*
 * Bind positional and keyword arguments to `out[0..ntotal)` by parameter name.
 * The first `nreq` parameters are required; at most `npos` may be passed by
 * position (the rest are keyword-only). Missing optional parameters are NULL.
 * The references in `out` are borrowed.
 */
static int
bind_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
          const char *const *names, Py_ssize_t npos, Py_ssize_t nreq, Py_ssize_t ntotal,
          PyObject **out)
{
    Py_ssize_t i, j, nkw;

    if (nargs > npos) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most %zd positional arguments (%zd given)",
                     fname, npos, nargs);
        return -1;
    }
    for (i = 0; i < ntotal; i++) {
        out[i] = i < nargs ? args[i] : NULL;
    }
    nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        for (j = 0; j < ntotal; j++) {
            if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
                break;
            }
        }
        if (j == ntotal) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'", fname, key);
            return -1;
        }
        if (out[j] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'", fname, names[j]);
            return -1;
        }
        out[j] = args[nargs + i];
    }
    for (i = 0; i < nreq; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s'", fname, names[i]);
            return -1;
        }
    }
    return 0;
}

/* A masking key: any bytes-like object of exactly 4 bytes. */
static int
get_key(PyObject *obj, uint8_t key[4])
{
    Py_buffer view;

    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (view.len != 4) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "mask key must be 4 bytes");
        return -1;
    }
    memcpy(key, view.buf, 4);
    PyBuffer_Release(&view);
    return 0;
}

/* An offset into the key stream: any int, used modulo 4 (like Python's `offset & 3`). */
static int
get_offset(PyObject *obj, unsigned int *offset)
{
    PyObject *index;
    unsigned long long value;

    if (obj == NULL) {
        *offset = 0;
        return 0;
    }
    index = PyNumber_Index(obj);
    if (index == NULL) {
        return -1;
    }
    /* Reduction modulo 2**64 keeps the two low bits of any int, negative ones too. */
    value = PyLong_AsUnsignedLongLongMask(index);
    Py_DECREF(index);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    *offset = (unsigned int)(value & 3);
    return 0;
}

/* A position in a buffer: an int in [lo, hi], else ValueError. */
static int
get_position(PyObject *obj, const char *what, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t *out)
{
    PyObject *index;
    Py_ssize_t value;

    index = PyNumber_Index(obj);
    if (index == NULL) {
        return -1;
    }
    value = PyNumber_AsSsize_t(index, NULL); /* clamps instead of overflowing */
    Py_DECREF(index);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < lo || value > hi) {
        PyErr_Format(PyExc_ValueError, "%s out of range", what);
        return -1;
    }
    *out = value;
    return 0;
}

/* -------------------------------------------------------------------- masking */

/*
 * dst[i] = src[i] ^ key[(i + offset) % 4] for i in [0, n). src and dst may be the
 * same pointer (unmasking in place); they must not otherwise overlap.
 *
 * The bulk goes 8 bytes at a time with a 64-bit key; memcpy keeps the loads and
 * stores legal at any alignment and compiles to plain moves. Because the 8-byte key
 * is built from the rotated key in memory order, this works on either endianness.
 */
static void
xor_mask(const uint8_t *src, uint8_t *dst, Py_ssize_t n, const uint8_t key[4],
         unsigned int offset)
{
    uint8_t rotated[8];
    uint64_t k64, w0, w1, w2, w3;
    Py_ssize_t i = 0;

    for (unsigned int j = 0; j < 8; j++) {
        rotated[j] = key[(j + offset) & 3];
    }
    memcpy(&k64, rotated, 8);
    for (; i + 32 <= n; i += 32) {
        memcpy(&w0, src + i, 8);
        memcpy(&w1, src + i + 8, 8);
        memcpy(&w2, src + i + 16, 8);
        memcpy(&w3, src + i + 24, 8);
        w0 ^= k64;
        w1 ^= k64;
        w2 ^= k64;
        w3 ^= k64;
        memcpy(dst + i, &w0, 8);
        memcpy(dst + i + 8, &w1, 8);
        memcpy(dst + i + 16, &w2, 8);
        memcpy(dst + i + 24, &w3, 8);
    }
    for (; i + 8 <= n; i += 8) {
        memcpy(&w0, src + i, 8);
        w0 ^= k64;
        memcpy(dst + i, &w0, 8);
    }
    /* i is a multiple of 8 here, so the key position is simply i & 3. */
    for (; i < n; i++) {
        dst[i] = src[i] ^ rotated[i & 3];
    }
}

PyDoc_STRVAR(apply_mask_doc,
"apply_mask(data, key, offset=0)\n--\n\n"
"XOR data with the 4-byte key, starting at key position offset % 4.\n\n"
"Masking and unmasking are the same operation; returns new bytes.");

static PyObject *
apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"data", "key", "offset"};
    PyObject *argv[3];
    Py_buffer data;
    uint8_t key[4];
    unsigned int offset;
    PyObject *result;

    (void)module;
    if (bind_args("apply_mask", args, nargs, kwnames, names, 3, 2, 3, argv) < 0) {
        return NULL;
    }
    if (get_key(argv[1], key) < 0 || get_offset(argv[2], &offset) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(argv[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result != NULL) {
        xor_mask((const uint8_t *)data.buf, (uint8_t *)PyBytes_AS_STRING(result), data.len,
                 key, offset);
    }
    PyBuffer_Release(&data);
    return result;
}

PyDoc_STRVAR(mask_into_doc,
"mask_into(buffer, start, end, key, offset=0)\n--\n\n"
"XOR buffer[start:end] in place with the 4-byte key, from key position offset % 4.\n\n"
"buffer must be writable (a bytearray); 0 <= start <= end <= len(buffer).");

static PyObject *
mask_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"buffer", "start", "end", "key", "offset"};
    PyObject *argv[5];
    Py_buffer view;
    Py_ssize_t start, end;
    uint8_t key[4];
    unsigned int offset;
    uint8_t *p;

    (void)module;
    if (bind_args("mask_into", args, nargs, kwnames, names, 5, 4, 5, argv) < 0) {
        return NULL;
    }
    if (get_key(argv[3], key) < 0 || get_offset(argv[4], &offset) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(argv[0], &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (get_position(argv[1], "start", 0, view.len, &start) < 0
        || get_position(argv[2], "end", start, view.len, &end) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    p = (uint8_t *)view.buf + start;
    xor_mask(p, p, end - start, key, offset);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------- UTF-8 */

/*
 * A DFA over Table 3-7 of the Unicode standard ("Well-Formed UTF-8 Byte
 * Sequences"). The states, shared with the Python twin:
 *
 *   0  between characters
 *   1  one more continuation byte (80..BF) wanted
 *   2  two more, the next one 80..BF
 *   3  three more, the next one 80..BF
 *   4  after E0: next A0..BF (no overlong 3-byte forms), then one more
 *   5  after ED: next 80..9F (no surrogates), then one more
 *   6  after F0: next 90..BF (no overlong 4-byte forms), then two more
 *   7  after F4: next 80..8F (nothing above U+10FFFF), then two more
 *
 * Only the byte right after the lead has a narrowed range, so these eight states
 * are all the memory needed. A byte with no transition is "impossible": no
 * continuation could make the input valid (RFC 6455 §8.1 fails the connection
 * there, without waiting for the end of the message).
 */
#define UTF8_STATES 8
/* An extra, absorbing state, so the inner loop needs no test per byte. */
#define UTF8_REJECT 8

static uint8_t utf8_next[UTF8_STATES + 1][256];

/*
 * The same DFA as a "shift DFA": state s is kept as the bit offset 6 * s, and
 * utf8_rows[byte] holds, at bit offset 6 * s, the offset of the state that byte
 * leads to from s. A step is then `st = utf8_rows[byte] >> (st & 63)`: the load
 * depends only on the input byte, so the chain from one byte to the next is one
 * shift instead of a dependent table load, which makes mixed text several times
 * faster.
 */
static uint64_t utf8_rows[256];

static void
utf8_set(int state, int lo, int hi, uint8_t next)
{
    for (int b = lo; b <= hi; b++) {
        utf8_next[state][b] = next;
    }
}

static void
utf8_init(void)
{
    /* Every byte without a transition below, and every byte from the reject state. */
    memset(utf8_next, UTF8_REJECT, sizeof(utf8_next));
    utf8_set(0, 0x00, 0x7F, 0);
    utf8_set(0, 0xC2, 0xDF, 1);
    utf8_set(0, 0xE0, 0xE0, 4);
    utf8_set(0, 0xE1, 0xEC, 2);
    utf8_set(0, 0xED, 0xED, 5);
    utf8_set(0, 0xEE, 0xEF, 2);
    utf8_set(0, 0xF0, 0xF0, 6);
    utf8_set(0, 0xF1, 0xF3, 3);
    utf8_set(0, 0xF4, 0xF4, 7);
    utf8_set(1, 0x80, 0xBF, 0);
    utf8_set(2, 0x80, 0xBF, 1);
    utf8_set(3, 0x80, 0xBF, 2);
    utf8_set(4, 0xA0, 0xBF, 1);
    utf8_set(5, 0x80, 0x9F, 1);
    utf8_set(6, 0x90, 0xBF, 2);
    utf8_set(7, 0x80, 0x8F, 2);
    for (int b = 0; b < 256; b++) {
        uint64_t row = 0;
        for (int state = 0; state <= UTF8_STATES; state++) {
            row |= (uint64_t)(6 * utf8_next[state][b]) << (6 * state);
        }
        utf8_rows[b] = row;
    }
}

#define HIGH_BITS 0x8080808080808080ULL

/* Bytes the DFA takes in one go after a non-ASCII byte, before looking for ASCII. */
#define UTF8_BLOCK 16

/* Run the DFA over p[0..n) from `state`; the new state, or -1 at an impossible byte. */
static int
utf8_run(const uint8_t *p, Py_ssize_t n, unsigned int state)
{
    Py_ssize_t i = 0, stop;
    uint64_t w0, w1, w2, w3, st;

    while (i < n) {
        if (state == 0) {
            /* Between characters, skip ASCII a word at a time. */
            for (; i + 32 <= n; i += 32) {
                memcpy(&w0, p + i, 8);
                memcpy(&w1, p + i + 8, 8);
                memcpy(&w2, p + i + 16, 8);
                memcpy(&w3, p + i + 24, 8);
                if ((w0 | w1 | w2 | w3) & HIGH_BITS) {
                    break;
                }
            }
            for (; i + 8 <= n; i += 8) {
                memcpy(&w0, p + i, 8);
                if (w0 & HIGH_BITS) {
                    break;
                }
            }
            if (i == n) {
                break;
            }
        }
        /*
         * Mixed text: a shift-DFA walk over a block. Its only branch is the
         * loop's, so the cost does not depend on how the characters are mixed
         * (per-byte tests mispredict on text that alternates widths). A rejected
         * byte leads to the absorbing state, checked once per block.
         */
        stop = n - i > UTF8_BLOCK ? i + UTF8_BLOCK : n;
        st = 6 * state;
        for (; i < stop; i++) {
            st = utf8_rows[p[i]] >> (st & 63);
        }
        state = (unsigned int)(st & 63) / 6;
        if (state == UTF8_REJECT) {
            return -1;
        }
    }
    return (int)state;
}

PyDoc_STRVAR(utf8_check_doc,
"utf8_check(data, state=0)\n--\n\n"
"Validate the next piece of a UTF-8 stream.\n\n"
"state is 0 at the start of a stream, or what the previous call returned.\n"
"Returns the new state: 0 if data ends between characters, 1..7 if it ends\n"
"inside a sequence that may still be completed, or -1 as soon as a byte\n"
"appears that no continuation could make valid.");

static PyObject *
utf8_check(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"data", "state"};
    PyObject *argv[2];
    Py_buffer data;
    long state = 0;
    int result;

    (void)module;
    if (bind_args("utf8_check", args, nargs, kwnames, names, 2, 1, 2, argv) < 0) {
        return NULL;
    }
    if (argv[1] != NULL) {
        PyObject *index = PyNumber_Index(argv[1]);
        int overflow;
        if (index == NULL) {
            return NULL;
        }
        state = PyLong_AsLongAndOverflow(index, &overflow);
        Py_DECREF(index);
        if (state == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (overflow || state < 0 || state >= UTF8_STATES) {
            PyErr_SetString(PyExc_ValueError, "state must be in range(8)");
            return NULL;
        }
    }
    if (PyObject_GetBuffer(argv[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    result = utf8_run((const uint8_t *)data.buf, data.len, (unsigned int)state);
    PyBuffer_Release(&data);
    return PyLong_FromLong(result);
}

/* --------------------------------------------------------------------- frames */

/* Write a frame header at `out`; returns its length (2, 4 or 10). */
static Py_ssize_t
put_header(uint8_t *out, uint8_t b0, uint8_t mbit, uint64_t length)
{
    out[0] = b0;
    if (length < 126) {
        out[1] = mbit | (uint8_t)length;
        return 2;
    }
    if (length < 0x10000) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(length >> 8);
        out[3] = (uint8_t)length;
        return 4;
    }
    out[1] = mbit | 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(length >> (56 - 8 * i));
    }
    return 10;
}

PyDoc_STRVAR(encode_frame_doc,
"encode_frame(opcode, payload=b'', *, fin=True, rsv1=False, mask_key=None)\n--\n\n"
"Encode one frame: header, masking key if given, and the (masked) payload,\n"
"in one allocation, with the minimal length encoding (RFC 6455 §5.2).");

static PyObject *
encode_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"opcode", "payload", "fin", "rsv1", "mask_key"};
    PyObject *argv[5];
    Py_buffer payload = {0};
    int have_payload = 0, fin = 1, rsv1 = 0, masked = 0;
    long opcode;
    uint8_t key[4], header[14];
    Py_ssize_t hlen, total;
    PyObject *result = NULL;

    (void)module;
    if (bind_args("encode_frame", args, nargs, kwnames, names, 2, 1, 5, argv) < 0) {
        return NULL;
    }
    opcode = PyLong_AsLong(argv[0]);
    if (opcode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (opcode < 0 || opcode > 15) {
        PyErr_SetString(PyExc_ValueError, "opcode must be in range(16)");
        return NULL;
    }
    if (argv[2] != NULL && (fin = PyObject_IsTrue(argv[2])) < 0) {
        return NULL;
    }
    if (argv[3] != NULL && (rsv1 = PyObject_IsTrue(argv[3])) < 0) {
        return NULL;
    }
    if (argv[4] != NULL && argv[4] != Py_None) {
        if (get_key(argv[4], key) < 0) {
            return NULL;
        }
        masked = 1;
    }
    if (argv[1] != NULL) {
        if (PyObject_GetBuffer(argv[1], &payload, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        have_payload = 1;
    }
    hlen = put_header(header, (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode),
                      masked ? 0x80 : 0, (uint64_t)payload.len);
    if (masked) {
        memcpy(header + hlen, key, 4);
        hlen += 4;
    }
    if (payload.len > PY_SSIZE_T_MAX - hlen) {
        PyErr_NoMemory();
        goto done;
    }
    total = hlen + payload.len;
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) {
        goto done;
    }
    {
        uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
        memcpy(out, header, (size_t)hlen);
        if (payload.len == 0) {
            /* nothing */
        }
        else if (masked) {
            xor_mask((const uint8_t *)payload.buf, out + hlen, payload.len, key, 0);
        }
        else {
            memcpy(out + hlen, payload.buf, (size_t)payload.len);
        }
    }
done:
    if (have_payload) {
        PyBuffer_Release(&payload);
    }
    return result;
}

/* ------------------------------------------------------------------- scanning */

PyDoc_STRVAR(scan_doc,
"scan(buffer, pos, end, is_client, max_size)\n--\n\n"
"Take whole single-frame data messages from buffer[pos:end].\n\n"
"Parses frames while each one is complete, FIN set, RSV bits clear, opcode\n"
"text or binary, masked exactly when is_client is false, its 64-bit length\n"
"below 2**63, its length at most max_size (None: no limit), and, for text,\n"
"valid UTF-8. Stops without consuming at the first frame that is anything else,\n"
"leaving it to the caller. Returns (new_pos, messages): str for text, bytes for\n"
"binary. Masked payloads may be unmasked in place in buffer[pos:new_pos];\n"
"buffer[new_pos:] is left as it was. buffer must be writable (a bytearray).");

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"buffer", "pos", "end", "is_client", "max_size"};
    PyObject *argv[5];
    Py_buffer view;
    Py_ssize_t pos, end;
    int client, limited = 0, take_nothing = 0;
    uint64_t max_size = 0;
    const uint8_t *base;
    PyObject *messages = NULL, *result;

    (void)module;
    if (bind_args("scan", args, nargs, kwnames, names, 5, 5, 5, argv) < 0) {
        return NULL;
    }
    if ((client = PyObject_IsTrue(argv[3])) < 0) {
        return NULL;
    }
    if (argv[4] != Py_None) {
        PyObject *index = PyNumber_Index(argv[4]);
        long long value;
        int overflow;
        if (index == NULL) {
            return NULL;
        }
        value = PyLong_AsLongLongAndOverflow(index, &overflow);
        Py_DECREF(index);
        if (value == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (overflow < 0 || (overflow == 0 && value < 0)) {
            /* Every length is over a negative limit. */
            take_nothing = 1;
        }
        else if (overflow == 0) {
            limited = 1;
            max_size = (uint64_t)value;
        }
        /* overflow > 0: a limit of 2**63 or more never binds (lengths are below it). */
    }
    if (PyObject_GetBuffer(argv[0], &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (get_position(argv[1], "pos", 0, view.len, &pos) < 0
        || get_position(argv[2], "end", pos, view.len, &end) < 0) {
        goto error;
    }
    messages = PyList_New(0);
    if (messages == NULL) {
        goto error;
    }
    base = (const uint8_t *)view.buf;

    while (!take_nothing && end - pos >= 2) {
        const uint8_t *p = base + pos;
        uint8_t b0 = p[0], b1 = p[1];
        uint64_t length;
        Py_ssize_t hlen = 2, start, n;
        uint8_t key[4];
        PyObject *message;

        /* FIN set, RSV1-3 clear, opcode text (1) or binary (2). */
        if (b0 != 0x81 && b0 != 0x82) {
            break;
        }
        /* RFC 6455 §5.1: a server gets masked frames only, a client unmasked. */
        if ((b1 & 0x80) != (client ? 0 : 0x80)) {
            break;
        }
        length = b1 & 0x7F;
        if (length == 126) {
            if (end - pos < 4) {
                break;
            }
            length = ((uint64_t)p[2] << 8) | p[3];
            hlen = 4;
        }
        else if (length == 127) {
            if (end - pos < 10) {
                break;
            }
            length = 0;
            for (int i = 0; i < 8; i++) {
                length = (length << 8) | p[2 + i];
            }
            if (length >> 63) {
                break;
            }
            hlen = 10;
        }
        if (limited && length > max_size) {
            break;
        }
        if (!client) {
            if (end - pos < hlen + 4) {
                break;
            }
            memcpy(key, p + hlen, 4);
            hlen += 4;
        }
        start = pos + hlen;
        if (length > (uint64_t)(end - start)) {
            break;
        }
        n = (Py_ssize_t)length;

        if (b0 == 0x81) {
            uint8_t *text = (uint8_t *)view.buf + start;
            if (!client) {
                xor_mask(text, text, n, key, 0);
            }
            message = PyUnicode_DecodeUTF8((const char *)text, n, NULL);
            if (message == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    goto error;
                }
                /* Not ours to judge: restore the frame and leave it to the caller. */
                PyErr_Clear();
                if (!client) {
                    xor_mask(text, text, n, key, 0);
                }
                break;
            }
        }
        else if (client) {
            message = PyBytes_FromStringAndSize((const char *)base + start, n);
        }
        else {
            /* Unmask while copying out: one pass, and the buffer is left alone. */
            message = PyBytes_FromStringAndSize(NULL, n);
            if (message != NULL) {
                xor_mask(base + start, (uint8_t *)PyBytes_AS_STRING(message), n, key, 0);
            }
        }
        if (message == NULL) {
            goto error;
        }
        if (PyList_Append(messages, message) < 0) {
            Py_DECREF(message);
            goto error;
        }
        Py_DECREF(message);
        pos = start + n;
    }
    PyBuffer_Release(&view);
    result = Py_BuildValue("(nN)", pos, messages);
    return result;

error:
    Py_XDECREF(messages);
    PyBuffer_Release(&view);
    return NULL;
}

/* ------------------------------------------------------------------- payloads */

/*
 * Payload: the payload of one large data frame, assembled as it arrives.
 *
 * The bytes object handed out at the end is the buffer the pieces were copied
 * into (unmasked on the way), so a large frame costs one copy instead of
 * buffer-append, slice, unmask and join. The object is private until take():
 * nothing else holds a reference, which is what makes growing it with
 * _PyBytes_Resize and writing into it legal.
 *
 * Up to PAYLOAD_EAGER bytes it is allocated whole at the first piece: growing it
 * by reallocation makes the allocator map fresh pages for every message (hundreds
 * of page faults per MiB), while one allocation of a steady size is recycled. The
 * allocation is not touched beyond what arrives, so it stays virtual, not
 * resident, until the peer actually sends the bytes (and the caller has already
 * checked the declared size against its limit). Above that it grows by doubling
 * with what has arrived, so an unlimited peer announcing a huge frame gets no more
 * memory than it sends.
 */
typedef struct {
    PyObject_HEAD
    PyObject *data;      /* bytes under construction, NULL before the first byte */
    Py_ssize_t size;     /* the frame's payload length */
    Py_ssize_t filled;   /* bytes written so far */
    Py_ssize_t cap;      /* bytes allocated in data */
    uint8_t key[4];
    int masked;
    int taken;
} PayloadObject;

#define PAYLOAD_EAGER ((Py_ssize_t)64 << 20)

static PyObject *
Payload_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", "key", NULL};
    Py_ssize_t size;
    PyObject *key = Py_None;
    PayloadObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|O:Payload", kwlist, &size, &key)) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
    self = (PayloadObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->size = size;
    if (key != Py_None) {
        if (get_key(key, self->key) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        self->masked = 1;
    }
    return (PyObject *)self;
}

static void
Payload_dealloc(PayloadObject *self)
{
    Py_XDECREF(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(Payload_feed_doc,
"feed(data, start=0)\n--\n\n"
"Copy data[start:] into the payload, unmasking it, up to the bytes still missing.\n\n"
"Returns how many bytes were taken.");

static PyObject *
Payload_feed(PayloadObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"data", "start"};
    PyObject *argv[2];
    Py_buffer view;
    Py_ssize_t start = 0, n, need;

    if (bind_args("feed", args, nargs, kwnames, names, 2, 1, 2, argv) < 0) {
        return NULL;
    }
    if (self->taken) {
        PyErr_SetString(PyExc_ValueError, "the payload was already taken");
        return NULL;
    }
    if (PyObject_GetBuffer(argv[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (argv[1] != NULL && get_position(argv[1], "start", 0, view.len, &start) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    n = view.len - start;
    if (n > self->size - self->filled) {
        n = self->size - self->filled;
    }
    if (n > 0) {
        need = self->filled + n;
        if (need > self->cap) {
            Py_ssize_t cap = self->cap;
            /* The whole frame up to PAYLOAD_EAGER, then doubling, capped at the
             * frame's size; no overflow since cap <= size <= PY_SSIZE_T_MAX. */
            cap = cap > self->size / 2 ? self->size : cap * 2;
            if (cap < PAYLOAD_EAGER) {
                cap = PAYLOAD_EAGER < self->size ? PAYLOAD_EAGER : self->size;
            }
            if (cap < need) {
                cap = need;
            }
            if (self->data == NULL) {
                self->data = PyBytes_FromStringAndSize(NULL, cap);
                if (self->data == NULL) {
                    PyBuffer_Release(&view);
                    return NULL;
                }
            }
            else if (_PyBytes_Resize(&self->data, cap) < 0) {
                /* data is NULL now; the payload cannot be completed. */
                self->taken = 1;
                PyBuffer_Release(&view);
                return NULL;
            }
            self->cap = cap;
        }
        {
            const uint8_t *src = (const uint8_t *)view.buf + start;
            uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(self->data) + self->filled;
            if (self->masked) {
                xor_mask(src, dst, n, self->key, (unsigned int)(self->filled & 3));
            }
            else {
                memcpy(dst, src, (size_t)n);
            }
        }
        self->filled += n;
    }
    else {
        n = 0;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(n);
}

PyDoc_STRVAR(Payload_take_doc,
"take()\n--\n\n"
"Return the whole payload as bytes; only once, and only when nothing is missing.");

static PyObject *
Payload_take(PayloadObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *data;

    if (self->taken) {
        PyErr_SetString(PyExc_ValueError, "the payload was already taken");
        return NULL;
    }
    if (self->filled != self->size) {
        PyErr_SetString(PyExc_ValueError, "the payload is not complete");
        return NULL;
    }
    self->taken = 1;
    if (self->data == NULL) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    data = self->data;
    self->data = NULL;
    return data;
}

static PyObject *
Payload_get_remaining(PayloadObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->taken ? 0 : self->size - self->filled);
}

static PyMethodDef Payload_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))Payload_feed, METH_FASTCALL | METH_KEYWORDS,
     Payload_feed_doc},
    {"take", (PyCFunction)Payload_take, METH_NOARGS, Payload_take_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Payload_getset[] = {
    {"remaining", (getter)Payload_get_remaining, NULL,
     "Bytes still missing (0 once complete or taken).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(Payload_doc,
"Payload(size, key=None)\n--\n\n"
"The payload of one data frame of size bytes, assembled from pieces as they\n"
"arrive and unmasked with key (4 bytes) when given; see feed() and take().");

static PyTypeObject PayloadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "fullduplex._speedups.Payload",
    .tp_basicsize = sizeof(PayloadObject),
    .tp_dealloc = (destructor)Payload_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Payload_doc,
    .tp_methods = Payload_methods,
    .tp_getset = Payload_getset,
    .tp_new = Payload_new,
};

/* ------------------------------------------------------------------ handshake */

/*
 * Byte classes of a request head, each including the ones after it:
 *
 *   TC  tchar (RFC 9110 §5.6.2): a method's or a field name's bytes
 *   VC  VCHAR: a request-target's bytes (RFC 9112 §3.2)
 *   VA  a field value's bytes: HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5)
 *   NO  CR, LF, the other controls and DEL
 */
#define HB_VALUE 1
#define HB_VCHAR 2
#define HB_TCHAR 4
#define NO 0
#define VA HB_VALUE
#define VC (HB_VALUE | HB_VCHAR)
#define TC (HB_VALUE | HB_VCHAR | HB_TCHAR)

static const uint8_t head_bytes[256] = {
    NO, NO, NO, NO, NO, NO, NO, NO, NO, VA, NO, NO, NO, NO, NO, NO,  /* 00 */
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,  /* 10 */
    VA, TC, VC, TC, TC, TC, TC, TC, VC, VC, TC, TC, VC, TC, TC, VC,  /* 20 */
    TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, VC, VC, VC, VC, VC, VC,  /* 30 */
    VC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC,  /* 40 */
    TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, VC, VC, VC, TC, TC,  /* 50 */
    TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC,  /* 60 */
    TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, TC, VC, TC, VC, TC, NO,  /* 70 */
    VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA,  /* 80 */
    VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA,  /* 90 */
    VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA,  /* A0 */
    VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA,  /* B0 */
    VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA,  /* C0 */
    VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA,  /* D0 */
    VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA,  /* E0 */
    VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA, VA,  /* F0 */
};

#undef NO
#undef VA
#undef VC
#undef TC

/*
 * Field names most clients send, the same list as _COMMON_NAMES in _accel_py.py.
 * Their strings are made once, at module init, in both spellings, and kept for the
 * life of the process like the module's other statics: a request made of these
 * names costs no string but its values, and the lower-case ones, interned, are the
 * very objects that handshake.py's literal look-ups ("host", ...) hash and compare
 * by identity.
 */
typedef struct {
    const char *name;
    const char *lower;
    Py_ssize_t len;
} CommonName;

#define COMMON(name, lower) {name, lower, (Py_ssize_t)sizeof(name) - 1}

static const CommonName common_names[] = {
    COMMON("Host", "host"),
    COMMON("Upgrade", "upgrade"),
    COMMON("Connection", "connection"),
    COMMON("Sec-WebSocket-Key", "sec-websocket-key"),
    COMMON("Sec-WebSocket-Version", "sec-websocket-version"),
    COMMON("Sec-WebSocket-Extensions", "sec-websocket-extensions"),
    COMMON("Sec-WebSocket-Protocol", "sec-websocket-protocol"),
    COMMON("Origin", "origin"),
    COMMON("User-Agent", "user-agent"),
    COMMON("Accept", "accept"),
    COMMON("Accept-Encoding", "accept-encoding"),
    COMMON("Accept-Language", "accept-language"),
    COMMON("Cache-Control", "cache-control"),
    COMMON("Pragma", "pragma"),
    COMMON("Cookie", "cookie"),
    COMMON("Authorization", "authorization"),
    COMMON("X-Forwarded-For", "x-forwarded-for"),
    COMMON("X-Forwarded-Proto", "x-forwarded-proto"),
    COMMON("X-Real-IP", "x-real-ip"),
};

#undef COMMON

#define N_COMMON (sizeof(common_names) / sizeof(common_names[0]))

/* [k][0]: common_names[k].name, [k][1]: its lower case; immutable once made. */
static PyObject *common_str[N_COMMON][2];
static PyObject *str_GET;

static int
handshake_init(void)
{
    /* Idempotent, so a failed or repeated init neither leaks nor replaces. */
    for (size_t k = 0; k < N_COMMON; k++) {
        if (common_str[k][0] == NULL
            && (common_str[k][0] = PyUnicode_InternFromString(common_names[k].name)) == NULL) {
            return -1;
        }
        if (common_str[k][1] == NULL
            && (common_str[k][1] = PyUnicode_InternFromString(common_names[k].lower)) == NULL) {
            return -1;
        }
    }
    if (str_GET == NULL && (str_GET = PyUnicode_InternFromString("GET")) == NULL) {
        return -1;
    }
    return 0;
}

static inline uint8_t
ascii_lower(uint8_t c)
{
    return (uint8_t)((unsigned int)(c - 'A') < 26u ? c + ('a' - 'A') : c);
}

/*
 * The index in common_names of the name p[0..n) spells in any case, or -1; *exact
 * is 1 for the usual spelling, 2 for the lower-case one, else 0.
 */
static Py_ssize_t
find_common(const uint8_t *p, Py_ssize_t n, int *exact)
{
    uint8_t first = ascii_lower(p[0]);

    for (size_t k = 0; k < N_COMMON; k++) {
        const char *lower = common_names[k].lower;
        Py_ssize_t i = 1;

        if (common_names[k].len != n || (uint8_t)lower[0] != first) {
            continue;
        }
        if (memcmp(p, common_names[k].name, (size_t)n) == 0) {
            *exact = 1;
            return (Py_ssize_t)k;
        }
        while (i < n && ascii_lower(p[i]) == (uint8_t)lower[i]) {
            i++;
        }
        if (i == n) {
            *exact = memcmp(p, lower, (size_t)n) == 0 ? 2 : 0;
            return (Py_ssize_t)k;
        }
    }
    return -1;
}

/*
 * A str of the latin-1 bytes p[0..n); `ascii` says none is 0x80 or above. Lengths 0
 * and 1 go through the codec for CPython's shared empty and one-character strings.
 */
static PyObject *
latin1_str(const uint8_t *p, Py_ssize_t n, int ascii)
{
    PyObject *s;

    if (n <= 1) {
        return PyUnicode_DecodeLatin1((const char *)p, n, NULL);
    }
    s = PyUnicode_New(n, ascii ? 127 : 255);
    if (s != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(s), p, (size_t)n);
    }
    return s;
}

/* The field name p[0..n) (a token) and its index key, as new references. */
static int
field_name(const uint8_t *p, Py_ssize_t n, PyObject **name, PyObject **key)
{
    int exact;
    Py_ssize_t k = find_common(p, n, &exact), i;
    uint8_t *out;

    if (k >= 0) {
        if (exact) {
            *name = common_str[k][exact - 1];
            Py_INCREF(*name);
        }
        else if ((*name = latin1_str(p, n, 1)) == NULL) {
            return -1;
        }
        *key = common_str[k][1];
        Py_INCREF(*key);
        return 0;
    }
    *name = latin1_str(p, n, 1);
    if (*name == NULL) {
        return -1;
    }
    for (i = 0; i < n && (unsigned int)(p[i] - 'A') >= 26u; i++) {
    }
    if (i == n) {
        /* Already lower case: one object serves as both (str is immutable). */
        *key = *name;
        Py_INCREF(*key);
        return 0;
    }
    *key = PyUnicode_New(n, 127);
    if (*key == NULL) {
        Py_CLEAR(*name);
        return -1;
    }
    out = PyUnicode_1BYTE_DATA(*key);
    for (i = 0; i < n; i++) {
        out[i] = ascii_lower(p[i]);
    }
    return 0;
}

/*
 * Read the head at p[0..n), n already cut to the head size limit + 4: a final
 * CRLFCRLF past that cut would make the head too long anyway. Returns the result
 * tuple, None to decline, or NULL with an exception (memory only).
 *
 * This is one pass over the bytes in which each byte must be what the grammar
 * allows at its place. That is the same set of heads the Python twin accepts by
 * splitting and matching: its checks (no control byte or DEL; no CR or LF outside a
 * CRLF; three parts in the request line; token names followed by a colon) refuse
 * exactly the heads where some byte is out of place here, and the first CRLFCRLF
 * ends the head in both, since every CR before it is met here as the end of a line.
 */
static PyObject *
read_head(const uint8_t *p, Py_ssize_t n, Py_ssize_t max_headers)
{
    Py_ssize_t i = 0, start, stop, count = 0;
    PyObject *method = NULL, *target = NULL, *items = NULL, *index = NULL;
    PyObject *name = NULL, *key = NULL, *value = NULL, *result = NULL;

    /* RFC 9112 §3: request-line = method SP request-target SP HTTP-version CRLF */
    while (i < n && (head_bytes[p[i]] & HB_TCHAR)) {
        i++;
    }
    if (i == 0 || i == n || p[i] != ' ') {
        goto decline;
    }
    if (i == 3 && memcmp(p, "GET", 3) == 0) {
        method = str_GET;
        Py_INCREF(method);
    }
    else if ((method = latin1_str(p, i, 1)) == NULL) {
        goto error;
    }
    start = ++i;
    while (i < n && (head_bytes[p[i]] & HB_VCHAR)) {
        i++;
    }
    if (i == start || i == n || p[i] != ' ') {
        goto decline;
    }
    if ((target = latin1_str(p + start, i - start, 1)) == NULL) {
        goto error;
    }
    i++;
    if (n - i < 10 || memcmp(p + i, "HTTP/1.1\r\n", 10) != 0) {
        goto decline;
    }
    i += 10;
    if ((items = PyList_New(0)) == NULL || (index = PyDict_New()) == NULL) {
        goto error;
    }

    /* RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, then CRLF */
    while (!(n - i >= 2 && p[i] == '\r' && p[i + 1] == '\n')) {
        PyObject *values, *known, *pair;
        Py_ssize_t name_start = i, name_end;
        uint8_t high = 0;

        if (++count > max_headers) {
            goto decline;
        }
        while (i < n && (head_bytes[p[i]] & HB_TCHAR)) {
            i++;
        }
        /* An empty name: obs-fold, a line starting with ":", a bare CR. */
        if (i == name_start || i == n || p[i] != ':') {
            goto decline;
        }
        name_end = i++;
        while (i < n && (p[i] == ' ' || p[i] == '\t')) {
            i++;
        }
        start = i;
        while (i < n && (head_bytes[p[i]] & HB_VALUE)) {
            high |= p[i];
            i++;
        }
        if (n - i < 2 || p[i] != '\r' || p[i + 1] != '\n') {
            goto decline;
        }
        stop = i;
        while (stop > start && (p[stop - 1] == ' ' || p[stop - 1] == '\t')) {
            stop--;
        }
        i += 2;
        if (field_name(p + name_start, name_end - name_start, &name, &key) < 0) {
            goto error;
        }
        if ((value = latin1_str(p + start, stop - start, !(high & 0x80))) == NULL) {
            goto error;
        }
        if ((pair = PyTuple_New(2)) == NULL) {
            goto error;
        }
        Py_INCREF(name);
        Py_INCREF(value);
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        if (PyList_Append(items, pair) < 0) {
            Py_DECREF(pair);
            goto error;
        }
        Py_DECREF(pair);
        /* A repeated name is rare: make its list up front, and look the key up
         * once. */
        if ((values = PyList_New(1)) == NULL) {
            goto error;
        }
        Py_INCREF(value);
        PyList_SET_ITEM(values, 0, value);
        known = PyDict_SetDefault(index, key, values); /* borrowed */
        if (known == NULL || (known != values && PyList_Append(known, value) < 0)) {
            Py_DECREF(values);
            goto error;
        }
        Py_DECREF(values);
        Py_CLEAR(name);
        Py_CLEAR(key);
        Py_CLEAR(value);
    }
    /* i - 2 is where the final CRLFCRLF starts. */
    result = PyTuple_New(5);
    if (result == NULL) {
        goto error;
    }
    {
        PyObject *rest = PyLong_FromSsize_t(i + 2);
        if (rest == NULL) {
            Py_CLEAR(result);
            goto error;
        }
        PyTuple_SET_ITEM(result, 0, method);
        PyTuple_SET_ITEM(result, 1, target);
        PyTuple_SET_ITEM(result, 2, items);
        PyTuple_SET_ITEM(result, 3, index);
        PyTuple_SET_ITEM(result, 4, rest);
    }
    return result;

decline:
    result = Py_None;
    Py_INCREF(result);
error:
    Py_XDECREF(name);
    Py_XDECREF(key);
    Py_XDECREF(value);
    Py_XDECREF(method);
    Py_XDECREF(target);
    Py_XDECREF(items);
    Py_XDECREF(index);
    return result;
}

/* An int limit, clamped to the Py_ssize_t range (which orders it the same way). */
static int
get_limit(PyObject *obj, Py_ssize_t *out)
{
    PyObject *index = PyNumber_Index(obj);

    if (index == NULL) {
        return -1;
    }
    *out = PyNumber_AsSsize_t(index, NULL);
    Py_DECREF(index);
    if (*out == -1 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(parse_request_head_doc,
"parse_request_head(data, max_line, max_header_size, max_headers)\n--\n\n"
"Read a plainly well-formed HTTP/1.1 request head at the start of data (bytes).\n\n"
"Returns (method, target, items, index, rest): the (name, value) fields in order,\n"
"the values of each lower-cased name in order, and the offset just past the\n"
"head's final CRLFCRLF; or None for any other input (see handshake.parse_request).");

static PyObject *
parse_request_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames)
{
    static const char *const names[] = {"data", "max_line", "max_header_size", "max_headers"};
    PyObject *argv[4];
    Py_ssize_t max_line, max_header_size, max_headers, limit, n;

    (void)module;
    if (bind_args("parse_request_head", args, nargs, kwnames, names, 4, 4, 4, argv) < 0) {
        return NULL;
    }
    if (!PyBytes_Check(argv[0])) {
        PyErr_Format(PyExc_TypeError, "data must be bytes, not %.100s",
                     Py_TYPE(argv[0])->tp_name);
        return NULL;
    }
    if (get_limit(argv[1], &max_line) < 0 || get_limit(argv[2], &max_header_size) < 0
        || get_limit(argv[3], &max_headers) < 0) {
        return NULL;
    }
    /* Every line is shorter than the whole head, so the head within both line limits
     * is what keeps every line within them. */
    limit = max_line < max_header_size ? max_line : max_header_size;
    if (limit < 0 || max_headers < 0) {
        Py_RETURN_NONE;
    }
    n = PyBytes_GET_SIZE(argv[0]);
    if (n - 4 > limit) {
        n = limit + 4;
    }
    return read_head((const uint8_t *)PyBytes_AS_STRING(argv[0]), n, max_headers);
}

/* SHA-1 (FIPS 180-4) of one 64-byte block into the state h. */
static void
sha1_block(uint32_t h[5], const uint8_t *block)
{
    uint32_t w[16], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

#define ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define F1(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define F2(b, c, d) ((b) ^ (c) ^ (d))
#define F3(b, c, d) (((b) & (c)) | ((d) & ((b) | (c))))
    /* The message schedule as a ring of 16 words, extended as the rounds go. */
#define LOAD(i)                                                                     \
    (w[i] = (uint32_t)block[4 * (i)] << 24 | (uint32_t)block[4 * (i) + 1] << 16     \
            | (uint32_t)block[4 * (i) + 2] << 8 | (uint32_t)block[4 * (i) + 3])
#define NEXT(i)                                                                     \
    (w[(i) & 15] = ROTL(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ w[((i) + 2) & 15]  \
                            ^ w[(i) & 15],                                          \
                        1))
#define ROUND(a, b, c, d, e, f, k, i)                                               \
    do {                                                                            \
        (e) += ROTL(a, 5) + f(b, c, d) + (k) + ((i) < 16 ? LOAD(i) : NEXT(i));      \
        (b) = ROTL(b, 30);                                                          \
    } while (0)
    /* Fully unrolled, each round renaming the variables instead of moving them:
     * several times faster than a loop, with gcc especially. */
#define FIVE(f, k, i)                                                               \
    do {                                                                            \
        ROUND(a, b, c, d, e, f, k, i);                                              \
        ROUND(e, a, b, c, d, f, k, (i) + 1);                                        \
        ROUND(d, e, a, b, c, f, k, (i) + 2);                                        \
        ROUND(c, d, e, a, b, f, k, (i) + 3);                                        \
        ROUND(b, c, d, e, a, f, k, (i) + 4);                                        \
    } while (0)
    FIVE(F1, 0x5A827999, 0);
    FIVE(F1, 0x5A827999, 5);
    FIVE(F1, 0x5A827999, 10);
    FIVE(F1, 0x5A827999, 15);
    FIVE(F2, 0x6ED9EBA1, 20);
    FIVE(F2, 0x6ED9EBA1, 25);
    FIVE(F2, 0x6ED9EBA1, 30);
    FIVE(F2, 0x6ED9EBA1, 35);
    FIVE(F3, 0x8F1BBCDC, 40);
    FIVE(F3, 0x8F1BBCDC, 45);
    FIVE(F3, 0x8F1BBCDC, 50);
    FIVE(F3, 0x8F1BBCDC, 55);
    FIVE(F2, 0xCA62C1D6, 60);
    FIVE(F2, 0xCA62C1D6, 65);
    FIVE(F2, 0xCA62C1D6, 70);
    FIVE(F2, 0xCA62C1D6, 75);
#undef FIVE
#undef ROUND
#undef NEXT
#undef LOAD
#undef F3
#undef F2
#undef F1
#undef ROTL
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* RFC 6455 §1.3. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#define KEY_LEN 24                          /* base64 of 16 bytes */
#define GUID_LEN ((int)sizeof(ws_guid) - 1) /* 36 */
#define ACCEPT_LEN 28                       /* base64 of a 20-byte digest */

static const char b64_digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64(SHA-1(key + GUID)) of a 24-byte key, into out[0..28). */
static void
accept_value(const uint8_t key[KEY_LEN], uint8_t out[ACCEPT_LEN])
{
    /* key + GUID is 60 bytes: with the 0x80 byte and the 64-bit bit length, two
     * blocks. */
    uint8_t msg[128] = {0}, digest[21];
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const uint64_t bits = 8 * (KEY_LEN + GUID_LEN);
    int i;

    memcpy(msg, key, KEY_LEN);
    memcpy(msg + KEY_LEN, ws_guid, GUID_LEN);
    msg[KEY_LEN + GUID_LEN] = 0x80;
    for (i = 0; i < 8; i++) {
        msg[127 - i] = (uint8_t)(bits >> (8 * i));
    }
    sha1_block(h, msg);
    sha1_block(h, msg + 64);
    for (i = 0; i < 20; i++) {
        digest[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
    }
    /* 20 bytes are six 3-byte groups and two bytes, padded with a zero byte and
     * written as three digits and one "=". */
    digest[20] = 0;
    for (i = 0; i < 7; i++) {
        uint32_t v = (uint32_t)digest[3 * i] << 16 | (uint32_t)digest[3 * i + 1] << 8
                     | digest[3 * i + 2];
        out[4 * i] = (uint8_t)b64_digits[v >> 18];
        out[4 * i + 1] = (uint8_t)b64_digits[(v >> 12) & 63];
        out[4 * i + 2] = (uint8_t)b64_digits[(v >> 6) & 63];
        out[4 * i + 3] = (uint8_t)b64_digits[v & 63];
    }
    out[ACCEPT_LEN - 1] = '=';
}

static inline int
is_b64_digit(uint8_t c)
{
    return (unsigned int)((c | 0x20) - 'a') < 26u || (unsigned int)(c - '0') < 10u || c == '+'
           || c == '/';
}

PyDoc_STRVAR(websocket_accept_doc,
"websocket_accept(key)\n--\n\n"
"Return the Sec-WebSocket-Accept value answering key, base64(SHA-1(key + GUID)),\n"
"or None unless key is a str holding the base64 of exactly 16 bytes\n"
"(RFC 6455 §4.2.1): 22 base64 digits, then \"==\".");

static PyObject *
websocket_accept(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key"};
    PyObject *key, *result;
    const uint8_t *s;

    (void)module;
    if (bind_args("websocket_accept", args, nargs, kwnames, names, 1, 1, 1, &key) < 0) {
        return NULL;
    }
    if (!PyUnicode_Check(key)) {
        Py_RETURN_NONE;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(key) < 0) {
        return NULL;
    }
#endif
    if (!PyUnicode_IS_ASCII(key) || PyUnicode_GET_LENGTH(key) != KEY_LEN) {
        Py_RETURN_NONE;
    }
    s = (const uint8_t *)PyUnicode_DATA(key);
    /* The padding fixes the length at 16 bytes; the 4 unused bits of the last digit
     * may be anything, as base64.b64decode(validate=True) also allows. */
    for (int i = 0; i < KEY_LEN - 2; i++) {
        if (!is_b64_digit(s[i])) {
            Py_RETURN_NONE;
        }
    }
    if (s[KEY_LEN - 2] != '=' || s[KEY_LEN - 1] != '=') {
        Py_RETURN_NONE;
    }
    result = PyUnicode_New(ACCEPT_LEN, 127);
    if (result != NULL) {
        accept_value(s, PyUnicode_1BYTE_DATA(result));
    }
    return result;
}

/* --------------------------------------------------------------------- module */

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL | METH_KEYWORDS,
     apply_mask_doc},
    {"mask_into", (PyCFunction)(void (*)(void))mask_into, METH_FASTCALL | METH_KEYWORDS,
     mask_into_doc},
    {"utf8_check", (PyCFunction)(void (*)(void))utf8_check, METH_FASTCALL | METH_KEYWORDS,
     utf8_check_doc},
    {"encode_frame", (PyCFunction)(void (*)(void))encode_frame, METH_FASTCALL | METH_KEYWORDS,
     encode_frame_doc},
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL | METH_KEYWORDS, scan_doc},
    {"parse_request_head", (PyCFunction)(void (*)(void))parse_request_head,
     METH_FASTCALL | METH_KEYWORDS, parse_request_head_doc},
    {"websocket_accept", (PyCFunction)(void (*)(void))websocket_accept,
     METH_FASTCALL | METH_KEYWORDS, websocket_accept_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "fullduplex._speedups",
    "Optional C versions of fullduplex's masking, UTF-8, framing and handshake hot paths.",
    -1,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module;

    utf8_init();
    if (handshake_init() < 0 || PyType_Ready(&PayloadType) < 0) {
        return NULL;
    }
    module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&PayloadType);
    if (PyModule_AddObject(module, "Payload", (PyObject *)&PayloadType) < 0) {
        Py_DECREF(&PayloadType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
