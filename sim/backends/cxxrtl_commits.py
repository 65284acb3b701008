"""Committing a CXXRTL model's registers from a table instead of straight-line code.

CXXRTL's ``commit()`` has one statement per register,
``if (p_x.commit(observer)) changed = true;``, and a register's commit is
``if (curr != next) { curr = next; ... }``. A network accelerator has thousands
of small registers, changing at random, so that code cost as much as
``eval()``: first through mispredicted branches, then, once branch-free, through
its size (CNV's commit is about 100 kB of instructions, run every cycle, which
evicts ``eval`` from the instruction cache).

:func:`table_commits` replaces the registers' statements of each ``commit``
with one loop over a table of their offsets in the module, grouped by width (one
32-bit chunk, two, wider): a few hundred bytes of code. The table is built on the
first commit from the members' addresses (the same for every instance of the
class), so it relies on nothing but CXXRTL's ``wire<N>`` layout: ``curr`` then
``next``, each a ``value<N>`` that is an array of 32-bit chunks (checked by
``static_assert``). ``changed`` still says whether any register changed. The
observer is not told of updates: this package never passes one (it serves
CXXRTL's record/replay). Memories keep their own commit.
"""

import re

__all__ = ["COMMIT_TABLE_CC", "table_commits"]

# One register statement of a generated commit function.
COMMIT_WIRE = re.compile(r"[ \t]*if \((p_\w+)\.commit\(observer\)\) changed = true;\n")
COMMIT_FUNCTION = re.compile(r"bool commit\(ObserverT &observer\) \{\n(.*?)\n\t*return changed;",
                             re.S)
INCLUDE = "#include <cxxrtl/cxxrtl.h>\n"

COMMIT_TABLE_CC = r"""
#include <algorithm>
#include <cassert>
#include <initializer_list>
#include <utility>
#include <vector>

// qaccel (sim.backends.cxxrtl_commits): registers committed from a table.
static_assert(sizeof(cxxrtl::value<33>) == 2 * sizeof(uint32_t) &&
              offsetof(cxxrtl::wire<33>, next) == sizeof(cxxrtl::value<33>),
              "CXXRTL's wire layout changed: sim.backends.cxxrtl_commits needs curr, then next");

struct qs_commit_table {
    std::vector<uint32_t> one, two;                      // offsets of 1- and 2-chunk registers
    std::vector<std::pair<uint32_t, uint32_t>> wider;    // offset and chunks of the rest

    // ``registers``: each register's ``curr`` and its size in bytes.
    qs_commit_table(const void *module, std::initializer_list<std::pair<const void *, size_t>> registers) {
        for (const auto &r : registers) {
            const uint32_t offset = (uint32_t)((const char *)r.first - (const char *)module);
            const uint32_t chunks = (uint32_t)(r.second / sizeof(uint32_t));
            assert(r.second % sizeof(uint32_t) == 0);
            if (chunks == 1) one.push_back(offset);
            else if (chunks == 2) two.push_back(offset);
            else wider.emplace_back(offset, chunks);
        }
        // Ascending offsets: the loops walk the module's memory in order.
        std::sort(one.begin(), one.end());
        std::sort(two.begin(), two.end());
        std::sort(wider.begin(), wider.end());
    }

    // curr = next for every register; whether any of them changed.
    bool commit(void *module) const {
        char *base = (char *)module;
        uint32_t diff = 0;
        for (uint32_t offset : one) {
            uint32_t *c = (uint32_t *)(base + offset);
            const uint32_t next = c[1];
            diff |= c[0] ^ next;
            c[0] = next;
        }
        for (uint32_t offset : two) {
            uint32_t *c = (uint32_t *)(base + offset);
            const uint32_t next0 = c[2], next1 = c[3];
            diff |= (c[0] ^ next0) | (c[1] ^ next1);
            c[0] = next0;
            c[1] = next1;
        }
        for (const auto &w : wider) {
            uint32_t *c = (uint32_t *)(base + w.first);
            for (uint32_t k = 0; k < w.second; k++) {
                const uint32_t next = c[w.second + k];
                diff |= c[k] ^ next;
                c[k] = next;
            }
        }
        return diff != 0;
    }
};
"""


def _rewrite_function(match):
    body = match.group(1)
    names = COMMIT_WIRE.findall(body + "\n")
    if not names:
        return match.group(0)
    indent = re.match(r"\s*", body).group(0)
    entries = ",\n".join(f"{indent}\t{{&{name}.curr, sizeof({name}.curr)}}" for name in names)
    table = (f"{indent}static const qs_commit_table qs_registers(this, {{\n{entries}}});\n"
             f"{indent}changed |= qs_registers.commit(this);\n")
    rest = COMMIT_WIRE.sub("", body + "\n")
    # The table's commit goes where ``bool changed = false;`` ends.
    head, sep, tail = rest.partition("bool changed = false;\n")
    if not sep:
        return match.group(0)
    return match.group(0).replace(body, f"{head}{sep}{table}{tail}".rstrip("\n"), 1)


def table_commits(design_cc):
    """``design_cc`` (``write_cxxrtl`` output) with every register committed from a table.

    Text without the expected statements comes back unchanged, so a Yosys whose
    output differs runs at CXXRTL's own speed (a test checks a built model).
    """
    if INCLUDE not in design_cc or not COMMIT_WIRE.search(design_cc):
        return design_cc
    rewritten = COMMIT_FUNCTION.sub(_rewrite_function, design_cc)
    return rewritten.replace(INCLUDE, INCLUDE + COMMIT_TABLE_CC, 1)
