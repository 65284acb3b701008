"""Run images through a streaming accelerator in simulation, observing every tensor.

:func:`run_images` pushes images into ``i`` (with random input stalls) and takes
results from ``o`` (with random backpressure). On pysim it can also record every
word that passes each tensor's stream (:meth:`StreamingAccelerator.tap`) and
decode them into the model's tensors, to compare layer by layer with
:func:`sim.reference.run_reference`; on the compiled backends it uses
:func:`sim.streams.run_stream` (outputs only). An accelerator built with
``stream_output=True`` (a part of a cut model) gives no classes; its output
tensor, decoded, is in ``tensors`` and its raw words in ``words`` (the next
part's input words).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["RunResult", "run_images"]


@dataclass
class RunResult:
    """Classes (N,) (None with a streamed output), logits (N, classes) or None,
    decoded tensors {name: (N, *shape)} (pysim with ``taps=True``; a streamed
    output's tensor always), total cycles, the mean cycles between consecutive
    images' results (the steady-state interval; None for one image, and for a
    streamed output unless ``taps=True``: the stream driver does not time each
    word), and the output words."""

    classes: np.ndarray
    logits: np.ndarray
    tensors: dict
    cycles: int
    interval: float
    words: list = None


def run_images(accelerator, images, *, backend="pysim", stall=0.0, backpressure=0.0, seed=0,
               taps=False, max_cycles=None):
    """Run ``images`` (N, C, H, W) through ``accelerator``; see the module docstring."""
    images = np.asarray(images)
    tokens = accelerator.encode_inputs(images)
    count = images.shape[0]
    if max_cycles is None:
        max_cycles = 100_000 + 4 * count * max(accelerator.interval, len(tokens))
    fmt = accelerator.output_format
    if backend != "pysim" or not taps:
        from sim.streams import run_stream
        expected = count * (1 if fmt is None else fmt.words)
        result = run_stream(accelerator, tokens, backend=backend, stall=stall,
                            backpressure=backpressure, seed=seed, expected_count=expected,
                            max_cycles=max_cycles, quiet=True)
        if fmt is not None:
            name = accelerator.model.outputs[-1]
            return RunResult(None, None, {name: accelerator.decode_outputs(result.outputs)},
                             result.cycles, _image_interval(result.outputs, fmt.words, None),
                             list(result.outputs))
        decoded = [accelerator.decode_output(word) for word in result.outputs]
        logits = None if not decoded or decoded[0][1] is None else np.array([l for _, l in decoded])
        return RunResult(np.array([c for c, _ in decoded]), logits, {}, result.cycles,
                         result.interval, list(result.outputs))
    return _run_with_taps(accelerator, tokens, count, stall, backpressure, seed, max_cycles)


def _image_interval(outputs, per_image, stamps):
    """Mean cycles between the last words of consecutive images (None for one image,
    or without time stamps)."""
    images = len(outputs) // per_image
    if stamps is None or images < 2:
        return None
    return (stamps[-1] - stamps[per_image - 1]) / (images - 1)


def _run_with_taps(accelerator, tokens, count, stall, backpressure, seed, max_cycles):
    from sim.simulation import Simulation
    names = accelerator.tensor_names()
    taps = {}
    for name in names:
        interface, _ = accelerator.tap(name)
        taps.setdefault(id(interface), (interface, []))[1].append(name)
    recorded = {key: [] for key in taps}
    rng = np.random.default_rng(seed)
    outputs, stamps = [], []
    state = {"cycles": 0}
    sim = Simulation(accelerator, "pysim")
    dut = accelerator
    out_format = accelerator.output_format
    per_image = 1 if out_format is None else out_format.words
    expected = count * per_image

    async def testbench(ctx):
        sent = 0
        presenting = False
        cycle = 0
        while cycle < max_cycles and (len(outputs) < expected or sent < len(tokens)):
            if not presenting and sent < len(tokens) and rng.random() >= stall:
                ctx.set(dut.i.payload, tokens[sent])
                presenting = True
            ctx.set(dut.i.valid, int(presenting))
            ready = rng.random() >= backpressure
            ctx.set(dut.o.ready, int(ready))
            in_ready = ctx.get(dut.i.ready)
            for key, (interface, _) in taps.items():
                if interface is dut.i:
                    continue
                if ctx.get(interface.valid) and ctx.get(interface.ready):
                    recorded[key].append(int(ctx.get(interface.payload.as_value())))
            if presenting and in_ready and id(dut.i) in recorded:
                recorded[id(dut.i)].append(tokens[sent])
            if ready and ctx.get(dut.o.valid):
                outputs.append(int(ctx.get(dut.o.payload.as_value())))
                stamps.append(cycle)
            await ctx.tick()
            if presenting and in_ready:
                sent += 1
                presenting = False
            cycle += 1
        state["cycles"] = cycle

    sim.add_testbench(testbench)
    sim.run()
    if len(outputs) < expected:
        raise TimeoutError(f"Stream run timed out after {state['cycles']} cycles: "
                           f"{len(outputs)} of {expected} results")
    tensors = {}
    for key, (interface, tensor_names) in taps.items():
        words = recorded[key]
        for name in tensor_names:
            # Words of this tensor per image (not of the output: ``per_image``).
            size = accelerator.plan.formats[name].words
            images = [accelerator.decode(name, words[k * size:(k + 1) * size])
                      for k in range(min(count, len(words) // size))]
            tensors[name] = np.array(images)
    interval = _image_interval(outputs, per_image, stamps)
    if out_format is not None:
        tensors[accelerator.model.outputs[-1]] = accelerator.decode_outputs(outputs)
        return RunResult(None, None, tensors, state["cycles"], interval, outputs)
    decoded = [accelerator.decode_output(word) for word in outputs]
    logits = None if decoded[0][1] is None else np.array([l for _, l in decoded])
    return RunResult(np.array([c for c, _ in decoded]), logits, tensors, state["cycles"], interval,
                     outputs)
