"""Committing a CXXRTL model's registers from a table instead of straight-line code.

CXXRTL's ``commit()`` has one statement per register,
``if (p_x.commit(observer)) changed = true;``, and a register's commit is
``if (curr != next) { curr = next; ... }``. A network accelerator has thousands
of small registers, changing at random, so that code cost as much as
``eval()``: first through mispredicted branches, then, once branch-free, through
its size (CNV's commit is about 100 kB of instructions, run every cycle, which
evicts ``eval`` from the instruction cache).

:func:`table_commits` replaces the registers' statements of each ``commit``
with loops over a table of their offsets in the module: a few hundred bytes of
code. It first declares the registers grouped by width (:func:`group_registers`),
so that the table is a few long runs of adjacent registers. The table is built on the
first commit from the members' addresses (the same for every instance of the
class), so it relies on nothing but CXXRTL's ``wire<N>`` layout: ``curr`` then
``next``, each a ``value<N>`` that is an array of 32-bit chunks (checked by
``static_assert``). ``changed`` still says whether any register changed. The
observer is not told of updates: this package never passes one (it serves
CXXRTL's record/replay). Memories keep their own commit.
"""

import re

__all__ = ["COMMIT_TABLE_CC", "group_registers", "table_commits"]

# One register statement of a generated commit function.
COMMIT_WIRE = re.compile(r"[ \t]*if \((p_\w+)\.commit\(observer\)\) changed = true;\n")
MODULE_START = re.compile(r"^struct p_\w+ : public module \{\n", re.M)
WIRE_DECLARATION = re.compile(r"\twire<(\d+)> p_\w+( \{[^;]*\})?;\n")
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
    // Runs of adjacent one-chunk registers, laid out [curr next][curr next]...: (offset of
    // the first, registers in the run). Wider registers, few in a network: (offset, chunks).
    std::vector<std::pair<uint32_t, uint32_t>> runs1;
    std::vector<std::pair<uint32_t, uint32_t>> wider;

    // ``registers``: each register's ``curr`` and its size in bytes.
    qs_commit_table(const void *module, std::initializer_list<std::pair<const void *, size_t>> registers) {
        std::vector<uint32_t> one;
        for (const auto &r : registers) {
            const uint32_t offset = (uint32_t)((const char *)r.first - (const char *)module);
            const uint32_t chunks = (uint32_t)(r.second / sizeof(uint32_t));
            assert(r.second % sizeof(uint32_t) == 0);
            if (chunks == 1) one.push_back(offset);
            else wider.emplace_back(offset, chunks);
        }
        runs1 = runs(one);
        std::sort(wider.begin(), wider.end());
    }

    static std::vector<std::pair<uint32_t, uint32_t>> runs(std::vector<uint32_t> offsets) {
        const uint32_t size = 2 * sizeof(uint32_t);    // curr and next of one chunk
        std::sort(offsets.begin(), offsets.end());
        std::vector<std::pair<uint32_t, uint32_t>> out;
        for (uint32_t offset : offsets) {
            if (!out.empty() && out.back().first + out.back().second * size == offset) out.back().second++;
            else out.emplace_back(offset, 1);
        }
        return out;
    }

    // curr = next for every register; whether any of them changed. The run loop over
    // one-chunk registers (nearly all of a network's) is the one that must vectorize:
    // a local count and accumulator, and a restrict pointer, let the compiler see
    // that its stores touch neither the table nor each other's loads.
    bool commit(void *module) const {
        char *base = (char *)module;
        uint32_t diff = 0;
        for (const auto &run : runs1) {
            uint32_t *__restrict c = (uint32_t *)(base + run.first);
            const uint32_t count = run.second;
            uint32_t d = 0;
            #pragma clang loop vectorize(enable)
            for (uint32_t i = 0; i < count; i++) {
                const uint32_t next = c[2 * i + 1];
                d |= c[2 * i] ^ next;
                c[2 * i] = next;
            }
            diff |= d;
        }
        for (const auto &w : wider) {
            uint32_t *c = (uint32_t *)(base + w.first);
            const uint32_t chunks = w.second;
            for (uint32_t k = 0; k < chunks; k++) {
                const uint32_t next = c[chunks + k];
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


def _group_registers_of(design_cc, start):
    """The module's leading ``wire`` members (its registers) from ``start``, sorted by chunks."""
    lines = design_cc[start:].splitlines(keepends=True)
    members, comments, used = [], [], 0
    for line in lines:
        if line.startswith("\t//"):
            comments.append(line)
            continue
        declaration = WIRE_DECLARATION.fullmatch(line)
        if declaration is None:
            break
        chunks = (int(declaration.group(1)) + 31) // 32
        members.append((chunks, "".join(comments) + line))
        used += sum(len(c) for c in comments) + len(line)
        comments = []
    members.sort(key=lambda member: member[0])      # stable: netlist order within a width
    return design_cc[:start] + "".join(text for _, text in members) + design_cc[start + used:]


def group_registers(design_cc):
    """``design_cc`` with each module's registers declared grouped by width.

    CXXRTL declares a module's registers first, in netlist order, as ``wire<N>``
    members. Grouped, the registers of one 32-bit chunk lie side by side, so the
    commit table holds a few long runs, whose loop vectorizes (1.19x the cycles/s
    of the ungrouped table on CNV, alternating runs). Declaration order matters
    to nothing else: ``reset()`` initialises the members.
    """
    for match in reversed(list(MODULE_START.finditer(design_cc))):
        design_cc = _group_registers_of(design_cc, match.end())
    return design_cc


def table_commits(design_cc):
    """``design_cc`` (``write_cxxrtl`` output) with every register committed from a table.

    Text without the expected statements comes back unchanged, so a Yosys whose
    output differs runs at CXXRTL's own speed (a test checks a built model).
    """
    if INCLUDE not in design_cc or not COMMIT_WIRE.search(design_cc):
        return design_cc
    rewritten = COMMIT_FUNCTION.sub(_rewrite_function, group_registers(design_cc))
    return rewritten.replace(INCLUDE, INCLUDE + COMMIT_TABLE_CC, 1)
