"""POST /prompt validation, mirroring `execution.validate_prompt`/`validate_inputs` of ComfyUI 0.3.64.

The code follows ComfyUI's own control flow on purpose (Python operations on the client's JSON, errors
caught at the same places), so odd input produces the same error types, messages, details and
extra_info strings as the real server - including Python reprs such as `"'99'"` or list reprs.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from linkpix.simulator.catalogue import Catalogue

# Nodes whose VALIDATE_INPUTS names these inputs (so list/min/max checks are skipped for them).
CUSTOM_VALIDATED: dict[str, tuple[str, ...]] = {"LoadImage": ("image",), "LoadImageMask": ("image",)}


# ComfyUI coerces declared scalar inputs with these (reference §3.4 step 3): "16" -> 16, 1.9 -> 1.
_COERCE = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}

def full_type_name(klass: type) -> str:
    module = klass.__module__
    if module == "builtins":
        return klass.__qualname__
    return module + "." + klass.__qualname__


def annotated_filepath(name: str, dirs: dict[str, Path]) -> tuple[str, Path | None]:
    """Strip a ` [output]`/` [input]`/` [temp]` annotation, returning the name and its folder."""
    for kind in ("output", "input", "temp"):
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], dirs[kind]
    return name, None


def exists_annotated_filepath(name: str, dirs: dict[str, Path]) -> bool:
    name, base = annotated_filepath(name, dirs)
    if base is None:
        base = dirs["input"]
    return os.path.exists(os.path.join(base, name))


def validate_node_input(received_type: Any, input_type: Any) -> bool:
    """Link type check: equal, `*` wildcard, or intersecting comma unions."""
    if received_type == input_type or received_type == "*" or input_type == "*":
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {t.strip() for t in received_type.split(",")}
    wanted = {t.strip() for t in input_type.split(",")}
    return len(received & wanted) > 0


def get_input_info(class_inputs: dict[str, Any], name: str) -> tuple[Any, str | None, dict[str, Any] | None]:
    for category in ("required", "optional"):
        section = class_inputs.get(category, {})
        if name in section:
            spec = section[name]
            extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            return spec[0], category, extra
    return None, None, None


class Validator:
    """Validates one prompt against the live catalogue."""

    def __init__(self, catalogue: Catalogue, dirs: dict[str, Path]) -> None:
        self.catalogue = catalogue
        self.dirs = dirs

    def validate_prompt(self, prompt: Any, partial: Any) -> tuple[bool, Any, list[str], dict[str, Any]]:
        outputs: list[str] = []
        for x in prompt:
            if "class_type" not in prompt[x]:
                return (False, {"type": "invalid_prompt",
                                "message": "Cannot execute because a node is missing the class_type property.",
                                "details": f"Node ID '#{x}'", "extra_info": {}}, [], {})
            class_type = prompt[x]["class_type"]
            if not self.catalogue.has_class(class_type):
                return (False, {"type": "invalid_prompt",
                                "message": f"Cannot execute because node {class_type} does not exist.",
                                "details": f"Node ID '#{x}'", "extra_info": {}}, [], {})
            if self.catalogue.is_output_node(class_type):
                if (partial is None or x in partial) and x not in outputs:
                    outputs.append(x)
        if len(outputs) == 0:
            return (False, {"type": "prompt_no_outputs", "message": "Prompt has no outputs",
                            "details": "", "extra_info": {}}, [], {})

        good_outputs: list[str] = []
        errors: list[tuple[str, list[dict[str, Any]]]] = []
        node_errors: dict[str, Any] = {}
        validated: dict[str, tuple[bool, list[dict[str, Any]], str]] = {}
        for o in outputs:
            try:
                valid, reasons, _ = self.validate_inputs(prompt, o, validated, set())
            except Exception as ex:
                typ, _, tb = sys.exc_info()
                valid = False
                reasons = [{"type": "exception_during_validation", "message": "Exception when validating node",
                            "details": str(ex),
                            "extra_info": {"exception_type": full_type_name(typ),
                                           "traceback": traceback.format_tb(tb)}}]
                validated[o] = (False, reasons, o)
            if valid is True:
                good_outputs.append(o)
                continue
            errors.append((o, reasons))
            for node_id, result in validated.items():
                if result[0] is not True and len(result[1]) > 0:
                    if node_id not in node_errors:
                        node_errors[node_id] = {"errors": result[1], "dependent_outputs": [],
                                                "class_type": prompt[node_id]["class_type"]}
                    node_errors[node_id]["dependent_outputs"].append(o)

        if len(good_outputs) == 0:
            lines = [f"{e['message']}: {e['details']}" for _, errs in errors for e in errs]
            return (False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                            "details": "\n".join(lines), "extra_info": {}}, [], node_errors)
        return (True, None, good_outputs, node_errors)

    def validate_inputs(self, prompt: Any, unique_id: Any, validated: dict[str, Any],
                        visiting: set[Any]) -> tuple[bool, list[dict[str, Any]], Any]:
        if unique_id in validated:
            return validated[unique_id]
        if unique_id in visiting:  # dependency cycle: invalid, but no error is attached to any node
            return (False, [], unique_id)
        visiting = visiting | {unique_id}

        inputs = prompt[unique_id]["inputs"]
        class_type = prompt[unique_id]["class_type"]
        class_info = self.catalogue.class_info(class_type)
        class_inputs = class_info["input"]
        declared = list(class_inputs.get("required", {})) + list(class_inputs.get("optional", {}))
        custom = CUSTOM_VALIDATED.get(class_type, ())

        errors: list[dict[str, Any]] = []
        valid = True
        for x in declared:
            input_type, category, extra_info = get_input_info(class_inputs, x)
            if x not in inputs:
                if category == "required":
                    errors.append({"type": "required_input_missing", "message": "Required input is missing",
                                   "details": f"{x}", "extra_info": {"input_name": x}})
                continue
            val = inputs[x]
            info = [input_type, extra_info]
            if isinstance(val, list):
                if len(val) != 2:
                    errors.append({"type": "bad_linked_input",
                                   "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                   "details": f"{x}", "extra_info": {"input_name": x, "input_config": info,
                                                                    "received_value": val}})
                    continue
                o_id = val[0]
                o_class_type = prompt[o_id]["class_type"]
                received_type = self.catalogue.return_types(o_class_type)[val[1]]
                if not validate_node_input(received_type, input_type):
                    errors.append({"type": "return_type_mismatch",
                                   "message": "Return type mismatch between linked nodes",
                                   "details": f"{x}, received_type({received_type}) mismatch input_type({input_type})",
                                   "extra_info": {"input_name": x, "input_config": info,
                                                  "received_type": received_type, "linked_node": val}})
                    continue
                try:
                    r = self.validate_inputs(prompt, o_id, validated, visiting)
                    if r[0] is False:
                        valid = False
                        continue
                except Exception as ex:
                    typ, _, tb = sys.exc_info()
                    valid = False
                    reasons = [{"type": "exception_during_inner_validation",
                                "message": "Exception when validating inner node", "details": str(ex),
                                "extra_info": {"input_name": x, "input_config": info, "exception_message": str(ex),
                                               "exception_type": full_type_name(typ),
                                               "traceback": traceback.format_tb(tb), "linked_node": val}}]
                    validated[o_id] = (False, reasons, o_id)
                    continue
            else:
                try:
                    if isinstance(val, dict) and "__value__" in val:
                        val = val["__value__"]
                        inputs[x] = val
                    convert = _COERCE.get(input_type) if isinstance(input_type, str) else None
                    if convert is not None:
                        val = convert(val)
                        inputs[x] = val
                except Exception as ex:
                    errors.append({"type": "invalid_input_type",
                                   "message": f"Failed to convert an input value to a {input_type} value",
                                   "details": f"{x}, {val}, {ex}",
                                   "extra_info": {"input_name": x, "input_config": info, "received_value": val,
                                                  "exception_message": str(ex)}})
                    continue
                if x in custom:
                    continue
                if "min" in extra_info and val < extra_info["min"]:
                    errors.append({"type": "value_smaller_than_min",
                                   "message": "Value {} smaller than min of {}".format(val, extra_info["min"]),
                                   "details": f"{x}", "extra_info": {"input_name": x, "input_config": info,
                                                                    "received_value": val}})
                    continue
                if "max" in extra_info and val > extra_info["max"]:
                    errors.append({"type": "value_bigger_than_max",
                                   "message": "Value {} bigger than max of {}".format(val, extra_info["max"]),
                                   "details": f"{x}", "extra_info": {"input_name": x, "input_config": info,
                                                                    "received_value": val}})
                    continue
                if isinstance(input_type, list) and val not in input_type:
                    input_config: Any = info
                    if len(input_type) > 20:
                        list_info = f"(list of length {len(input_type)})"
                        input_config = None
                    else:
                        list_info = str(input_type)
                    errors.append({"type": "value_not_in_list", "message": "Value not in list",
                                   "details": f"{x}: '{val}' not in {list_info}",
                                   "extra_info": {"input_name": x, "input_config": input_config,
                                                  "received_value": val}})
                    continue

        for x in custom:
            if x in inputs and not isinstance(inputs[x], list):
                if not exists_annotated_filepath(inputs[x], self.dirs):
                    errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                   "details": f"{x} - Invalid image file: {inputs[x]}",
                                   "extra_info": {"input_name": x}})

        ret = (False, errors, unique_id) if len(errors) > 0 or valid is not True else (True, [], unique_id)
        validated[unique_id] = ret
        return ret
