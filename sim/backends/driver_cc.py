"""The C++ side that every compiled backend shares.

A backend's generated adapter defines ``struct qs::Model`` (the model, its
port table, ``settle()`` (evaluate until stable), ``edge()`` (one evaluation
that at least updates the registers on a rising clock), ``commit()`` (what
``edge`` computed takes effect; may be empty), ``fall_committed()`` (lower
the clock when the last edge is committed and nothing else is pending: the same
as ``set_clock(0)`` then ``commit()``, only cheaper), ``single_eval_edge`` (whether
one ``edge()`` evaluation both settles the combinational logic before the
edge and computes the registers, with the outputs keeping their pre-edge
values until ``commit()``), ``set_clock(level)``, ``vcd_open/vcd_sample/vcd_close``)
and then includes :data:`DRIVER_CC`, which adds the ``extern "C"`` functions
that :mod:`sim.backends.compiled` loads with ctypes: create/destroy, set/get a
port (one 64-bit word or several), settle, clock ticks, and the bulk loops
(stream driving, per-cycle vectors) that keep the per-cycle work in C++.

Timing (the same as Amaranth's testbenches): a value set is visible to ``get``
at once (combinational logic settled); a tick lowers the clock, settles,
raises it (the edge samples what was set before) and settles again, so a
``get`` after the tick sees the state right after the edge.
"""

__all__ = ["PORT_REF_CC", "DRIVER_CC"]

# Included before the backend's Model: how one port is reached.
PORT_REF_CC = r"""
namespace qs {
// One port: where to read it (curr), where to write it (next; the same as curr
// for plain values), its width and the size of one storage element (1, 2 or 8
// bytes for a single element; 4 for arrays of 32-bit words).
struct PortRef {
    void *curr;
    void *next;
    uint32_t width;
    uint32_t elem;
};
} // namespace qs
"""

DRIVER_CC = r"""
namespace qs {

static inline uint64_t low_mask(uint32_t width) {
    return width >= 64 ? ~uint64_t(0) : ((uint64_t(1) << width) - 1);
}

static inline void put(const PortRef &p, const uint64_t *w) {
    switch (p.elem) {
    case 1: *(uint8_t *)p.next = (uint8_t)(w[0] & low_mask(p.width)); return;
    case 2: *(uint16_t *)p.next = (uint16_t)(w[0] & low_mask(p.width)); return;
    case 8: *(uint64_t *)p.next = w[0] & low_mask(p.width); return;
    default: {
        uint32_t *c = (uint32_t *)p.next;
        uint32_t n = (p.width + 31) / 32;
        for (uint32_t i = 0; i < n; i++)
            c[i] = (uint32_t)(w[i / 2] >> (32 * (i & 1)));
        if (p.width % 32)
            c[n - 1] &= (uint32_t(1) << (p.width % 32)) - 1;
    }
    }
}

static inline void get(const PortRef &p, uint64_t *w) {
    switch (p.elem) {
    case 1: w[0] = *(const uint8_t *)p.curr; return;
    case 2: w[0] = *(const uint16_t *)p.curr; return;
    case 8: w[0] = *(const uint64_t *)p.curr; return;
    default: {
        const uint32_t *c = (const uint32_t *)p.curr;
        uint32_t n = (p.width + 31) / 32;
        uint32_t nw = (p.width + 63) / 64;
        for (uint32_t i = 0; i < nw; i++) w[i] = 0;
        for (uint32_t i = 0; i < n; i++)
            w[i / 2] |= uint64_t(c[i]) << (32 * (i & 1));
    }
    }
}

static inline void put64(Model &m, int idx, uint64_t v) { put(m.ports[idx], &v); }

static inline uint64_t get64(Model &m, int idx) {
    const PortRef &p = m.ports[idx];
    switch (p.elem) {
    case 1: return *(const uint8_t *)p.curr;
    case 2: return *(const uint16_t *)p.curr;
    case 8: return *(const uint64_t *)p.curr;
    default: {
        const uint32_t *c = (const uint32_t *)p.curr;
        return p.width > 32 ? (c[0] | (uint64_t(c[1]) << 32)) : c[0];
    }
    }
}

static inline void settle(Model &m) {
    if (m.dirty) { m.settle(); m.dirty = false; }
}

// The first half of a clock cycle: clock low, inputs free to change.
static inline void fall(Model &m) { m.set_clock(0); m.dirty = true; }

// The second half: settle what was set (the falling edge too), raise the clock.
// Without waveforms the edge is one evaluation (registers take their new
// values) and the combinational logic after it is settled lazily, by the next
// get or the next cycle's settle: two evaluations per cycle instead of three.
static inline void rise(Model &m) {
    settle(m);
    if (m.vcd_on) m.vcd_sample(m.now + m.half);
    m.set_clock(1);
    m.now += 2 * m.half;
    m.edges++;
    if (m.vcd_on) {
        m.settle();
        m.dirty = false;
        m.vcd_sample(m.now);
    } else {
        m.edge();
        m.commit();
        m.dirty = true;
    }
}

static inline void tick(Model &m) { fall(m); rise(m); }

} // namespace qs

#define QS_API extern "C" __attribute__((visibility("default")))

QS_API int qs_abi_version(void) { return 1; }
QS_API int qs_port_count(void) { return qs::Model::port_count; }
QS_API void *qs_create(void) { return new qs::Model(); }
QS_API void qs_destroy(void *h) {
    qs::Model *m = (qs::Model *)h;
    if (m->vcd_on) m->vcd_close();
    delete m;
}
QS_API void qs_set(void *h, int idx, const uint64_t *w) {
    qs::Model *m = (qs::Model *)h;
    qs::put(m->ports[idx], w);
    m->dirty = true;
}
QS_API void qs_set64(void *h, int idx, uint64_t v) {
    qs::Model *m = (qs::Model *)h;
    qs::put(m->ports[idx], &v);
    m->dirty = true;
}
QS_API void qs_get(void *h, int idx, uint64_t *w) {
    qs::Model *m = (qs::Model *)h;
    qs::settle(*m);
    qs::get(m->ports[idx], w);
}
QS_API uint64_t qs_get64(void *h, int idx) {
    qs::Model *m = (qs::Model *)h;
    qs::settle(*m);
    return qs::get64(*m, idx);
}
QS_API void qs_settle(void *h) { qs::settle(*(qs::Model *)h); }
QS_API void qs_tick(void *h, int64_t n) {
    qs::Model *m = (qs::Model *)h;
    for (int64_t i = 0; i < n; i++) qs::tick(*m);
}
QS_API uint64_t qs_edges(void *h) { return ((qs::Model *)h)->edges; }

// VCD: time unit 1 ps, `half` ps per half clock period. Returns 0 on success.
QS_API int qs_vcd_open(void *h, const char *path, uint64_t half) {
    qs::Model *m = (qs::Model *)h;
    if (m->vcd_on) m->vcd_close();
    m->half = half;
    if (!m->vcd_open(path)) return -1;
    m->vcd_on = true;
    m->vcd_sample(m->now);
    return 0;
}
QS_API void qs_vcd_close(void *h) {
    qs::Model *m = (qs::Model *)h;
    if (!m->vcd_on) return;
    qs::settle(*m);
    m->vcd_sample(m->now + m->half);  // what the testbench set after the last edge
    m->vcd_close();
    m->vcd_on = false;
}

// Push tokens into a stream input and collect an output stream, for at most
// n_cycles cycles (one chunk; the caller loops). cfg: port indices of
// in.valid, in.ready, in.payload, out.valid, out.ready, out.payload (-1: absent).
// st: [0] cycle, [1] tokens accepted, [2] outputs received, [3] presenting,
// [4] cycle of the first input transfer, [5] of the first output transfer,
// [6] of the last output transfer, [7] outputs expected (all -1/0 at start).
// Output payloads go to outs (out_words words each, room for n_cycles).
// Returns 1 when every token went in and the expected outputs came out.
QS_API int qs_stream(void *h, const int32_t *cfg,
                     const uint64_t *tokens, int64_t n_tokens, int32_t in_words,
                     uint64_t *outs, int32_t out_words,
                     const uint8_t *stall, const uint8_t *backpressure, int64_t n_cycles,
                     int64_t *st) {
    qs::Model &m = *(qs::Model *)h;
    const int in_valid = cfg[0], in_ready = cfg[1], in_payload = cfg[2];
    const int out_valid = cfg[3], out_ready = cfg[4], out_payload = cfg[5];
    int64_t k = 0;
    bool presenting = st[3] != 0;
    if (st[2] >= st[7] && st[1] >= n_tokens) return 1;
    // One evaluation per cycle where the model allows it (see Model::single_eval_edge):
    // the inputs of a cycle never depend on what the outputs show in that cycle,
    // so the edge evaluation itself yields the pre-edge outputs, read before commit.
    const bool fast = qs::Model::single_eval_edge && !m.vcd_on;
    for (int64_t j = 0; j < n_cycles; j++) {
        if (fast && j > 0) {
            m.fall_committed();  // the falling edge: nothing to evaluate, the last edge committed
        } else if (fast) {
            m.set_clock(0);
            m.commit();  // whatever the caller left pending takes effect first
        } else {
            qs::fall(m);
        }
        if (!presenting && st[1] < n_tokens && !stall[j]) {
            presenting = true;
            if (in_payload >= 0) qs::put(m.ports[in_payload], tokens + st[1] * in_words);
        }
        if (in_valid >= 0) qs::put64(m, in_valid, presenting ? 1 : 0);
        const bool oready = !backpressure[j];
        if (out_ready >= 0) qs::put64(m, out_ready, oready ? 1 : 0);
        if (fast) {
            m.set_clock(1);
            m.edge();  // evaluation only: outputs hold their pre-edge values until commit
        } else {
            qs::settle(m);
        }
        const bool iready = in_ready < 0 || qs::get64(m, in_ready);
        const bool ovalid = out_valid < 0 || qs::get64(m, out_valid);
        const bool out_xfer = ovalid && (out_ready < 0 || oready);
        if (out_xfer && out_payload >= 0) qs::get(m.ports[out_payload], outs + k * out_words);
        if (fast) {
            m.commit();
            m.now += 2 * m.half;
            m.edges++;
            m.dirty = true;
        } else {
            qs::rise(m);
        }
        const int64_t cycle = st[0]++;
        if (presenting && iready) {
            if (st[4] < 0) st[4] = cycle;
            st[1]++;
            presenting = false;
        }
        if (out_xfer) {
            k++;
            st[2]++;
            if (st[5] < 0) st[5] = cycle;
            st[6] = cycle;
        }
        if (st[2] >= st[7] && st[1] >= n_tokens) { st[3] = presenting; return 1; }
    }
    st[3] = presenting;
    return 0;
}

// Per-cycle vectors: before each edge set the n_in input ports from in_data
// (row stride in_stride words), after it record the n_out output ports to
// out_data (row stride out_stride words).
QS_API void qs_vectors(void *h, int32_t n_in, const int32_t *in_idx, const uint64_t *in_data,
                       int64_t in_stride, int32_t n_out, const int32_t *out_idx,
                       uint64_t *out_data, int64_t out_stride, int64_t n_cycles) {
    qs::Model &m = *(qs::Model *)h;
    for (int64_t c = 0; c < n_cycles; c++) {
        qs::fall(m);
        const uint64_t *row = in_data + c * in_stride;
        for (int32_t i = 0; i < n_in; i++) {
            const qs::PortRef &p = m.ports[in_idx[i]];
            qs::put(p, row);
            row += (p.width + 63) / 64;
        }
        qs::rise(m);
        qs::settle(m);
        uint64_t *orow = out_data + c * out_stride;
        for (int32_t i = 0; i < n_out; i++) {
            const qs::PortRef &p = m.ports[out_idx[i]];
            qs::get(p, orow);
            orow += (p.width + 63) / 64;
        }
    }
}
"""
