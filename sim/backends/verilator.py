"""The Verilator backend: Verilog from Amaranth's RTLIL, compiled by Verilator.

Optional: used where ``verilator`` is on PATH (Debian/Ubuntu package
``verilator``), mainly to cross-check the CXXRTL backend with an independent
compiler. The Verilog comes from the same RTLIL as CXXRTL's, through Yosys
(``proc; memory_collect; write_verilog -norename``, as
``amaranth.back.verilog`` does); Verilator turns it into C++ (``--trace`` for
waveforms), and the generated adapter (the same shared driver as CXXRTL's)
is compiled with it, the Verilator runtime included, into one shared library.
"""

import shutil
import subprocess
import time
from pathlib import Path

from amaranth.back import rtlil

from ..cache import Progress, cache_key, cached_build
from .cxxrtl import top_ports
from .driver_cc import DRIVER_CC, PORT_REF_CC
from .toolchain import (BuildError, compile_shared, cxx_version, find_cxx, output_tail, run_yosys,
                        yosys_command, yosys_version)

__all__ = ["build", "generate_adapter", "VerilatorError"]

CXX_FLAGS = ("-std=c++17", "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-w")
ARTIFACT = "model.so"


class VerilatorError(BuildError):
    """Verilator is missing or failed."""


def _verilator():
    path = shutil.which("verilator")
    if path is None:
        raise VerilatorError("The verilator backend needs Verilator on PATH "
                             "(Debian/Ubuntu: apt-get install verilator)")
    return path


def _verilator_root(verilator):
    try:
        out = subprocess.run([verilator, "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True)
        root = Path(out.stdout.strip())
        if (root / "include" / "verilated.h").exists():
            return root
    except OSError:
        pass
    for root in (Path("/usr/share/verilator"), Path("/usr/local/share/verilator")):
        if (root / "include" / "verilated.h").exists():
            return root
    raise VerilatorError("Verilator's runtime (include/verilated.h) was not found")


def _verilator_version(verilator):
    out = subprocess.run([verilator, "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def verilator_name(name):
    """The C++ member name Verilator gives the port ``name`` (its encodeName)."""
    out = []
    i = 0
    while i < len(name):
        char = name[i]
        if char.isascii() and (char.isalpha() or (i > 0 and char.isdigit())):
            out.append(char)
        elif char == "_":
            if i + 1 < len(name) and name[i + 1] == "_":
                out.append("___05F")
                i += 1
            elif i + 1 == len(name):
                out.append("__05F")
            else:
                out.append("_")
        else:
            out.append(f"__0{ord(char):X}")
        i += 1
    return "".join(out)


def _ref(port):
    width = port.width
    member = f"top->{verilator_name(port.name)}"
    if width <= 8:
        return f"PortRef{{&{member}, &{member}, {width}u, 1u}}"
    if width <= 16:
        return f"PortRef{{&{member}, &{member}, {width}u, 2u}}"
    if width <= 32:
        return f"PortRef{{&{member}, &{member}, {width}u, 4u}}"
    if width <= 64:
        return f"PortRef{{&{member}, &{member}, {width}u, 8u}}"
    return f"PortRef{{{member}.data(), {member}.data(), {width}u, 4u}}"


def _runtime(verilator, cxx, flags, progress):
    """Verilator's runtime (verilated.cpp, its VCD writer, threads), compiled
    once per Verilator/compiler/flags and cached: it is most of a build's time."""
    include = _verilator_root(verilator) / "include"
    include_flags = [f"-I{include}", f"-I{include / 'vltstd'}", "-DVM_TRACE=1", "-DVM_TRACE_VCD=1"]
    sources = [include / "verilated.cpp", include / "verilated_vcd_c.cpp"]
    if (include / "verilated_threads.cpp").exists():
        sources.append(include / "verilated_threads.cpp")
    compile_flags = [f for f in flags if f != "-shared"] + include_flags + ["-c"]
    key = cache_key("verilator-runtime/1", _verilator_version(verilator), str(include), " ".join(cxx),
                    cxx_version(cxx), " ".join(compile_flags))

    def do_build(directory):
        with progress.stage("Verilator runtime (once per Verilator/compiler)"):
            for source in sources:
                compile_shared(cxx, compile_flags, [source], f"{source.stem}.o", cwd=directory)
        (directory / "done").write_text("")

    result = cached_build("verilator-runtime", key, do_build, artifact="done", progress=progress)
    return [Path(result.path) / f"{s.stem}.o" for s in sources], include_flags


def generate_adapter(ports, netlist_ports):
    lines = []
    for port in ports:
        if port.name in netlist_ports:
            lines.append(f"        ports[{port.index}] = {_ref(port)};  // {port.name}")
        elif port.signal is not None:
            raise RuntimeError(f"Port {port.name!r} is missing from the netlist")
        else:
            lines.append(f"        ports[{port.index}] = PortRef{{absent, absent, {port.width}u, 4u}};")
    max_width = max([p.width for p in ports] + [1])
    clock = "top->clk = (uint8_t)v;" if "clk" in netlist_ports else "(void)v;"
    return f"""// Generated by qaccel's sim.backends.verilator from the component's ports; do not edit.
#include <cstdint>
#include <memory>
#include "Vtop.h"
#include "verilated.h"
#include "verilated_vcd_c.h"
{PORT_REF_CC}
namespace qs {{
struct Model {{
    static const int port_count = {len(ports)};
    std::unique_ptr<VerilatedContext> context;
    Vtop *top;
    PortRef ports[{len(ports)}];
    uint32_t absent[{(max_width + 31) // 32}] = {{}};
    bool dirty = true, vcd_on = false;
    uint64_t now = 0, half = 1, edges = 0;
    VerilatedVcdC *trace = nullptr;

    Model() : context(new VerilatedContext) {{
        context->traceEverOn(true);
        top = new Vtop(context.get(), "top");
{chr(10).join(lines)}
    }}
    ~Model() {{ top->final(); delete top; }}
    // Verilator's eval settles everything after the edge: pre-edge outputs are gone.
    static const bool single_eval_edge = false;
    void settle() {{ top->eval(); }}
    void edge() {{ top->eval(); }}
    void commit() {{}}
    void set_clock(uint64_t v) {{ {clock} }}
    void fall_committed() {{ set_clock(0); }}
    bool vcd_open(const char *path) {{
        trace = new VerilatedVcdC;
        top->trace(trace, 99);
        trace->open(path);
        return trace->isOpen();
    }}
    void vcd_sample(uint64_t t) {{ trace->dump(t); }}
    void vcd_close() {{ trace->close(); delete trace; trace = nullptr; }}
}};
}} // namespace qs
{DRIVER_CC}"""


def build(component, ports, *, quiet=False, name=None):
    """Build (or fetch from the cache) the Verilator model of ``component``."""
    progress = Progress(f"verilator {name or type(component).__name__}", quiet)
    verilator = _verilator()
    start = time.perf_counter()
    il_text = rtlil.convert(component, name="top", ports=ports.rtlil_ports(), emit_src=False)
    rtlil_seconds = time.perf_counter() - start
    netlist_ports = top_ports(il_text)
    adapter = generate_adapter(ports, netlist_ports)
    # g++ first (the default order): Verilator's Fashion model ran at half the
    # cycles/s when clang++ compiled it, the opposite of CXXRTL's.
    cxx = find_cxx()
    yosys = yosys_command()
    flags = list(CXX_FLAGS)
    key = cache_key("verilator/1", il_text, adapter, " ".join(cxx), cxx_version(cxx), " ".join(flags),
                    yosys_version(yosys), _verilator_version(verilator))

    runtime_objects, include_flags = _runtime(verilator, cxx, flags, progress)

    def do_build(directory):
        progress.note(f"RTLIL from Amaranth ({rtlil_seconds:.2f} s)")
        (directory / "design.il").write_text(il_text)
        (directory / "adapter.cc").write_text(adapter)
        with progress.stage(f"Yosys write_verilog ({yosys[0]})"):
            run_yosys(yosys, ["read_rtlil design.il", "proc -nomux -norom", "memory_collect",
                              "write_verilog -norename design.v"], cwd=directory)
        with progress.stage("Verilator"):
            command = [verilator, "--cc", "design.v", "--top-module", "top", "--prefix", "Vtop",
                       "-Mdir", "obj", "--trace", "--timescale", "1ps/1ps", "-Wno-fatal", "-Wno-lint",
                       "-Wno-style"]
            result = subprocess.run(command, cwd=directory, capture_output=True, text=True)
            if result.returncode != 0:
                raise VerilatorError(
                    f"Verilator failed:\n{output_tail(result.stdout + result.stderr)}")
        sources = ["adapter.cc", *sorted((directory / "obj").glob("Vtop*.cpp")), *runtime_objects]
        with progress.stage(f"C++ compile ({' '.join(cxx)} {' '.join(flags[:2])})"):
            compile_shared(cxx, [*flags, "-Iobj", *include_flags], sources, ARTIFACT, cwd=directory)
            # Sources compiled, the objects are not needed again.
            shutil.rmtree(directory / "obj", ignore_errors=True)

    result = cached_build("verilator", key, do_build, artifact=ARTIFACT, progress=progress)
    if not result.hit:
        progress.note(f"built in {result.seconds + rtlil_seconds:.2f} s ({result.path})")
    return Path(result.path) / ARTIFACT, netlist_ports, result
