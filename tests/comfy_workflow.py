"""Turns a UI workflow (what ComfyUI's editor saves and loads) into the API prompt that
POST /prompt takes, using the server's /object_info for widget names and order."""

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_names(info) -> list:
    inputs = info["input"]
    order = info.get("input_order") or {k: list(v) for k, v in inputs.items() if k != "hidden"}
    names = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = inputs.get(section, {}).get(name)
            if spec is not None and is_widget(spec):
                names.append(name)
    return names


def workflow_to_prompt(workflow: dict, object_info: dict) -> dict:
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        info = object_info[node["type"]]
        names = widget_names(info)
        values = node.get("widgets_values") or []
        inputs = {}
        if isinstance(values, dict):
            inputs.update({name: values[name] for name in names if name in values})
        else:
            position = 0
            for name in names:
                if position >= len(values):
                    break
                inputs[name] = values[position]
                position += 1
                spec = {**info["input"].get("required", {}), **info["input"].get("optional", {})}[name]
                if len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("control_after_generate"):
                    position += 1
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, origin, origin_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(origin), origin_slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
