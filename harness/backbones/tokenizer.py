"""The embedded model's tokenizer as the runtime reads it: special tokens, chat template, loading.

It is saved as a transformers PreTrainedTokenizerFast, so the embedded backbone uses the same
`apply_chat_template` path as LLaDA and Dream. Training one: harness/training/tokenizer.py.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from harness.errors import HarnessError

MASK, EOS, PAD = "<|mask|>", "<|eos|>", "<|pad|>"
ROLES = ("system", "user", "assistant")
SPECIAL_TOKENS = [MASK, EOS, PAD] + [f"<|{role}|>" for role in ROLES]

# Each message is its role token followed by its text; the generation prompt ends with
# `<|assistant|>`, so the answer starts right after the prompt ids.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown chat role ' + message['role']) }}{% endif %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer saved in `directory`; a missing or unreadable one is a HarnessError."""
    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise HarnessError(f"no tokenizer at {path}; train one with `python -m harness train`")
    try:
        return AutoTokenizer.from_pretrained(str(directory))
    except Exception as err:  # transformers raises many types for a malformed file
        raise HarnessError(f"cannot read the tokenizer in {directory}: {err}") from None
