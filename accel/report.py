"""The build report of a streaming accelerator: folding, cycles, bottleneck, resources."""

import json
import os
import tempfile

__all__ = ["BuildReport"]


class BuildReport:
    """What :func:`accel.build` decided, and what it expects.

    Per layer: the folding (PE x SIMD), multiply units and their kind, schedule
    entries per vector (dense and with zero skipping), estimated cycles per image,
    memory bits, accumulator width. For the whole pipeline: the steady-state
    interval (the slowest layer, the *bottleneck*), multiply units by kind, memory
    bits, and the expected PE utilization (useful MACs / (units x interval)).
    """

    def __init__(self, model_name, plan, policy, device=None):
        from .device import device as lookup, estimate
        self._model_name = model_name
        self._policy = dict(policy)
        self._estimate = estimate(plan)
        self._device = None if device is None else lookup(device)
        self._layers = [dict(
            name=layer.name, type=layer.op_type, pe=layer.pe, simd=layer.simd,
            multipliers=layer.multipliers, multiplier=layer.multiplier_kind,
            weight_kind=layer.weight_kind, schedule_length=layer.schedule_length,
            dense_length=layer.dense_length, in_words=layer.in_words, vectors=layer.vectors,
            macs=layer.macs, cycles=layer.cycles, memory_bits=layer.memory_bits,
            acc_bits=layer.acc_bits, dsp=layer.hard_multipliers, dense=layer.dense,
            resources=dict(self._estimate["layers"][layer.name]),
            notes=list(layer.notes)) for layer in plan.layers]
        self._interval = plan.interval
        self._bottleneck = plan.bottleneck

    @property
    def layers(self):
        return [dict(layer) for layer in self._layers]

    @property
    def interval(self):
        """Estimated cycles per image in steady state."""
        return self._interval

    @property
    def bottleneck(self):
        return self._bottleneck

    @property
    def multipliers(self):
        """Multiply units by kind of unit, and the total."""
        counts = {}
        for layer in self._layers:
            if layer["multipliers"]:
                counts[layer["multiplier"]] = counts.get(layer["multiplier"], 0) + layer["multipliers"]
        counts["total"] = sum(counts.values())
        return counts

    @property
    def resources(self):
        """Estimated ECP5 resources (:func:`accel.device.estimate`): LUT, FF, DSP, BRAM, LUTRAM."""
        return {k: v for k, v in self._estimate.items() if k != "layers"}

    @property
    def device(self):
        """The device the folding was fitted to, or None."""
        return None if self._device is None else self._device.name

    @property
    def memory_bits(self):
        return sum(layer["memory_bits"] for layer in self._layers)

    @property
    def macs(self):
        """Useful multiply-accumulates per image (non-zero weights only)."""
        return sum(layer["macs"] for layer in self._layers)

    @property
    def utilization(self):
        """Expected PE utilization: useful MACs / (multiply units x interval)."""
        units = self.multipliers["total"]
        return self.macs / (units * self._interval) if units else 0.0

    def as_dict(self):
        return {"model": self._model_name, "policy": self._policy, "interval": self._interval,
                "bottleneck": self._bottleneck, "multipliers": self.multipliers,
                "memory_bits": self.memory_bits, "macs": self.macs,
                "utilization": self.utilization, "device": self.device,
                "resources": self.resources, "layers": self.layers}

    def to_json(self):
        return json.dumps(self.as_dict(), indent=2)

    def text(self):
        header = ("layer", "type", "PExSIMD", "units", "unit kind", "T", "dense T", "cycles",
                  "mem bits", "acc")
        rows = [header]
        for layer in self._layers:
            fold = f"{layer['pe']}x{layer['simd']}" if layer["pe"] else ""
            mark = " <" if layer["name"] == self._bottleneck else ""
            rows.append((layer["name"], layer["type"], fold, str(layer["multipliers"] or ""),
                         layer["multiplier"], str(layer["schedule_length"] or ""),
                         str(layer["dense_length"] or ""), f"{layer['cycles']}{mark}",
                         str(layer["memory_bits"] or ""), str(layer["acc_bits"] or "")))
        widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        units = ", ".join(f"{k} {v}" for k, v in self.multipliers.items())
        policy = ", ".join(f"{k}={v}" for k, v in self._policy.items()) or "default"
        lines += [
            "",
            f"model {self._model_name}; folding policy: {policy}",
            f"interval {self._interval} cycles/image (bottleneck: {self._bottleneck})",
            f"multiply units: {units}; memory {self.memory_bits} bits; "
            f"expected PE utilization {self.utilization:.1%}",
            "estimated ECP5 resources: " + ", ".join(
                f"{k} {v}" for k, v in self.resources.items())
            + (f" (device {self.device}: LUT {self._device.lut}, FF {self._device.ff}, "
               f"DSP {self._device.dsp}, BRAM {self._device.bram})" if self._device else ""),
        ]
        for layer in self._layers:
            for note in layer["notes"]:
                lines.append(f"{layer['name']}: {note}")
        return "\n".join(lines)

    def write(self, path):
        """Write the JSON report atomically (.json) or the text (any other suffix)."""
        path = os.fspath(path)
        content = self.to_json() if path.endswith(".json") else self.text() + "\n"
        directory = os.path.dirname(os.path.abspath(path))
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".report-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise

    def __str__(self):
        return self.text()
