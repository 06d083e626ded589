"""Parameter declaration with descriptors, ranges and on-set validation."""
from __future__ import annotations

from typing import Any, Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter


class ParameterSet:
    """Declares a node's parameters and validates every later change.

    ``declare(name, default, description, ...)`` attaches a descriptor (with an
    integer/float range or a set of choices); ``validate`` registers one
    callback that rejects a set-parameters request with a reason instead of
    letting a node run with a bad value. Read-only parameters cannot change after start.
    """

    def __init__(self, node: Node):
        self._node = node
        self._choices: dict[str, tuple] = {}
        self._validators: dict[str, Callable[[Any], str | None]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        node.add_on_set_parameters_callback(self._on_set)

    def declare(self, name: str, default: Any, description: str, *, minimum=None, maximum=None, step=None,
                choices: tuple | None = None, read_only: bool = False,
                validator: Callable[[Any], str | None] | None = None) -> Any:
        descriptor = ParameterDescriptor(description=description, read_only=read_only)
        if minimum is not None or maximum is not None:
            if isinstance(default, bool):
                raise TypeError(f"{name}: a boolean parameter cannot have a range")
            if isinstance(default, int):
                descriptor.integer_range = [IntegerRange(from_value=int(minimum), to_value=int(maximum), step=int(step or 0))]
            else:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(minimum), to_value=float(maximum), step=float(step or 0.0))]
        if choices:
            self._choices[name] = tuple(choices)
            descriptor.additional_constraints = f"one of: {', '.join(map(str, choices))}"
        if validator:
            self._validators[name] = validator
        value = self._node.declare_parameter(name, default, descriptor).value
        problem = self._check(name, value)
        if problem:
            raise ValueError(f"parameter {name}: {problem}")
        return value

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener({name: value})`` after accepted changes."""
        self._listeners.append(listener)

    def _check(self, name: str, value: Any) -> str | None:
        if name in self._choices and value not in self._choices[name]:
            return f"{value!r} is not one of {list(self._choices[name])}"
        if name in self._validators:
            return self._validators[name](value)
        return None

    def _on_set(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            problem = self._check(parameter.name, parameter.value)
            if problem:
                return SetParametersResult(successful=False, reason=f"{parameter.name}: {problem}")
        if self._listeners:
            changed = {p.name: p.value for p in parameters}
            # rclpy applies the values after this callback returns; listeners get them directly.
            for listener in self._listeners:
                listener(changed)
        return SetParametersResult(successful=True)
