"""The README's troubleshooting table quotes messages users see: each quoted message (its parts
between "...") must be one the pack can still print."""

import ast
import re

from conftest import PACK_SOURCES, ROOT


def message_texts():
    """Every string the pack's code holds, f-strings as their fixed parts."""
    texts = []
    for path in PACK_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append(node.value)
    return texts


def quoted_messages():
    section = ROOT.joinpath("README.md").read_text().split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    quoted = []
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| symptom") and not line.startswith("| ---"):
            symptom = line.split(" | ")[0]
            quoted += re.findall(r"`([^`]+)`", symptom)
    return quoted


def test_every_quoted_message_is_one_the_code_prints():
    texts = message_texts()
    quoted = quoted_messages()
    assert len(quoted) >= 15
    missing = []
    for message in quoted:
        parts = [p.strip() for p in message.split("...") if len(p.strip()) >= 4]
        for part in parts:
            if not any(part in text for text in texts):
                missing.append((message, part))
    assert not missing, missing
